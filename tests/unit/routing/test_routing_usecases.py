"""Routing's use cases on the fakes: bootstrap() with an in-memory database, a recording publisher and a
manual clock, driven through the handler table as the HTTP views and the consumer drive it.

Every command and every consumed event type; the errors (not found, not allowed, invalid transition or
argument, a lost race retried, a redelivery); the events published (checked against the contract by
the stores, as in production) and the projections written (open_orders, the area index lists).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from petition_common.auth import Staff
from petition_common.config import Settings
from petition_common.consumer import MessageMeta
from petition_common.due import DEFAULT_GRACE, HOUR
from petition_common.envelope import Event
from petition_common.fakes import ManualClock, MemoryDatabase, RecordingPublisher
from petition_common.store import Conflict
from petition_kernel.times import format_time
from services.routing import domain
from services.routing.app import ACTION_FIELDS
from services.routing.bootstrap import RoutingParts, bootstrap
from services.routing.handlers import ACTIONS, BATCH, REGISTRY_IMPORT, event_handlers
from services.routing.service import NotFound
from tests.unit.held_group import queued_behind_a_held_write

from .routing_county import COUNTY, latlon

T0 = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)
SETTINGS = Settings(service="routing")
DISPATCHER = Staff("S000001", "county_dispatcher")
AUDITOR = Staff("A000001", "auditor")
CADRE = Staff("CT01V01", "village_cadre", town_id="T01", village_id="T01V01")
SUPERVISOR = Staff("TS00001", "town_supervisor", town_id="T01")
P1, P2, P3 = "JZ20260309000001", "JZ20260309000002", "JZ20260309000003"
# the timeout scanner takes an hour's orders once that hour has passed (petition_common.due), so an
# order whose time has come is taken within this much after it
TAKEN = HOUR + DEFAULT_GRACE + timedelta(seconds=1)


def leader(grid_id: str) -> Staff:
    return Staff(
        f"L{grid_id}", "grid_leader", town_id=grid_id[:3], village_id=grid_id[:6], grid_ids=frozenset({grid_id})
    )


class InterleavingClock(ManualClock):
    """A manual clock that runs `between` once, the next time a use case asks for the time: a use case
    asks after loading and before committing, so that is where another writer gets in."""

    def __init__(self, start: datetime):
        super().__init__(start)
        self.between: Callable[[], object] | None = None

    def __call__(self) -> datetime:
        between, self.between = self.between, None
        if between is not None:
            between()
        return super().__call__()


class World:
    """A routing instance on the fakes, plus a second one over the same database (another process)."""

    def __init__(self) -> None:
        self.db = MemoryDatabase()
        self.published = RecordingPublisher()
        self.clock = InterleavingClock(T0)
        self.parts = self._instance()
        self.other = self._instance()
        self.offset = 0

    def _instance(self) -> RoutingParts:
        return bootstrap(SETTINGS, db=self.db, publisher=self.published, clock=self.clock)

    @property
    def service(self) -> Any:
        return self.parts.service

    def deliver(self, *events: Event, batch: bool = False) -> None:
        """Intake's events as the consumer hands them over: one by one, or as one poll batch."""
        metas = []
        for event in events:
            metas.append((event, MessageMeta("petitions.intake.v1", 0, self.offset, event.subject)))
            self.offset += 1
        if batch:
            self.parts.handlers[BATCH](metas)
        else:
            consumer = event_handlers(self.parts.handlers)
            for event, meta in metas:
                consumer[event.type](event, meta)

    def act(self, pid: str, staff: Staff, action: str, parts: RoutingParts | None = None, **body: Any) -> Any:
        return (parts or self.parts).handlers[action](pid, staff, **body)

    def types(self, pid: str) -> list[str]:
        return [e.type for e in self.published.of(pid)]

    def open_order(self, pid: str) -> dict[str, Any] | None:
        return self.db["open_orders"].find_one({"_id": pid})

    def listed(self, staff: Staff, **filters: Any) -> list[str]:
        return [o["petition_id"] for o in self.service.list_orders(staff, **filters)]


@pytest.fixture
def world() -> World:
    w = World()
    w.parts.handlers[REGISTRY_IMPORT](copy.deepcopy(COUNTY), "S000001")
    return w


def submitted(pid: str, *, event_id: str | None = None, **location: Any) -> Event:
    data = {
        "petition_id": pid,
        "channel": "hotline",
        "category": "roads",
        "content": "路灯不亮",
        "location": location or {"grid_id": "T01V01G001"},
        "citizen": {"name_masked": "刘*", "phone_masked": "138****1234"},
        "submitted_at": format_time(T0),
    }
    return Event(
        type="petition.submitted", source="petitions/intake", subject=pid, data=data, id=event_id or f"{pid}-s"
    )


def feedback(pid: str, satisfaction: str, event_id: str | None = None) -> Event:
    data = {"petition_id": pid, "satisfaction": satisfaction, "received_at": format_time(T0)}
    return Event(
        type="petition.feedback_received", source="petitions/intake", subject=pid, data=data, id=event_id or f"{pid}-f"
    )


def withdrawn(pid: str) -> Event:
    data = {"petition_id": pid, "withdrawn_at": format_time(T0)}
    return Event(type="petition.withdrawn", source="petitions/intake", subject=pid, data=data, id=f"{pid}-w")


def handled_to_reply(world: World, pid: str, staff: Staff, parts: RoutingParts | None = None) -> None:
    world.act(pid, staff, "contact", parts=parts)
    world.act(pid, staff, "reply", parts=parts, resolution="resolved", summary="已修复")


# ---- the table ------------------------------------------------------------------------------------


def test_the_table_names_every_command_and_consumed_event(world: World) -> None:
    table = world.parts.handlers
    assert set(ACTIONS) | {REGISTRY_IMPORT, BATCH} | set(domain.CONSUMED) == set(table)
    assert set(event_handlers(table)) == {"petition.submitted", "petition.feedback_received", "petition.withdrawn"}


def test_every_field_a_view_may_pass_is_a_parameter_of_its_handler(world: World) -> None:
    for action, fields in ACTION_FIELDS.items():
        inspect.signature(world.parts.handlers[action]).bind(P1, DISPATCHER, **dict.fromkeys(fields))


def test_a_contact_note_is_accepted_and_not_kept(world: World) -> None:
    world.deliver(submitted(P1))
    world.act(P1, DISPATCHER, "contact", note="电话联系")
    assert "电话联系" not in str(world.service.load(P1)) and "电话联系" not in str(world.published.events)


# ---- the grid registry ----------------------------------------------------------------------------


def test_an_import_replaces_the_registry_and_says_what_it_holds() -> None:
    w = World()
    assert w.service.current_registry() is None and w.service.registry_geojson() is None
    summary = w.parts.handlers[REGISTRY_IMPORT](copy.deepcopy(COUNTY), "S000001")
    assert summary["version"] == 1 and summary["grids"] == len(COUNTY["features"])
    registry = w.service.current_registry()
    assert registry is not None and registry.grid("T01V01G001") is not None
    again = w.parts.handlers[REGISTRY_IMPORT](copy.deepcopy(COUNTY), "S000001")
    assert again["version"] == 2
    # the other instance sees the newest version as soon as it asks without a max age
    assert w.other.service.current_registry() is not None and w.other.service.registry.version == 2
    version, body = w.service.registry_geojson()
    assert version == 2 and b'"FeatureCollection"' in body
    assert w.published.events == []  # a registry import publishes nothing


def test_an_invalid_registry_is_refused_whole_and_nothing_is_stored() -> None:
    w = World()
    broken = copy.deepcopy(COUNTY)
    broken["features"][0]["properties"]["leader"] = {"staff_id": ""}
    del broken["features"][1]["properties"]["grid_id"]
    with pytest.raises(domain.RegistryInvalid) as refused:
        w.parts.handlers[REGISTRY_IMPORT](broken, "S000001")
    assert len(refused.value.errors) >= 2 and all(refused.value.fields().values())
    assert w.service.current_registry() is None and w.db["registry_commits"].count_documents({}) == 0


# ---- petition.submitted ---------------------------------------------------------------------------


def test_a_submitted_petition_is_routed_assigned_published_and_projected(world: World) -> None:
    world.deliver(submitted(P1, grid_id="T01V01G001"))
    [assigned] = world.published.of(P1)
    assert assigned.type == "petition.assigned" and assigned.source == "petitions/routing"
    assert assigned.data["grid_id"] == "T01V01G001" and assigned.data["department"]
    assert assigned.data["assignee"] == {"staff_id": "LT01V01G001", "role": "grid_leader"}
    assert assigned.data["assigned_at"] == format_time(T0) == assigned.time
    order = world.service.view(P1, leader("T01V01G001"))
    assert order["status"] == "assigned" and order["route"] == "grid_id" and order["category"] == "roads"
    doc = world.open_order(P1)
    assert doc is not None
    assert (doc["seq"], doc["status"], doc["grid_id"], doc["town_id"]) == (1, "assigned", "T01V01G001", "T01")
    assert (doc["assignee"], doc["replied_at"], doc["finished_at"]) == ("LT01V01G001", None, None)
    assert world.listed(leader("T01V01G001")) == [P1] == world.listed(CADRE) == world.listed(SUPERVISOR)
    assert world.listed(leader("T01V01G002")) == []


def test_a_point_and_a_village_route_too_and_the_rest_goes_to_triage(world: World) -> None:
    lat, lon = latlon(1.5, 0.5)
    world.deliver(
        submitted(P1, lat=lat, lon=lon),
        submitted(P2, village="大王庄", address="第4网格"),
        submitted(P3, address="不详", town="柳河镇"),
    )
    assert world.service.load(P1)[1].assignment.grid_id == "T01V01G002"
    assert world.service.load(P2)[1].assignment.grid_id == "T01V01G004"
    triaged = world.service.load(P3)[1]
    assert triaged.route == "triage" and triaged.assignment.grid_id is None and triaged.assignment.town_id == "T02"
    assert triaged.assignment.assignee == domain.Assignee("S000001", "county_dispatcher")
    assert world.listed(DISPATCHER, triage=True) == [P3] == world.listed(AUDITOR, triage=True)
    assert set(world.listed(DISPATCHER)) == {P1, P2, P3}


def test_before_any_import_every_petition_goes_to_triage() -> None:
    w = World()
    w.deliver(submitted(P1, grid_id="T01V01G001"))
    order = w.service.load(P1)[1]
    assert order.route == "triage" and "no grid registry has been imported" in order.route_reason


def test_a_redelivered_submission_changes_nothing_and_restores_a_lost_projection(world: World) -> None:
    world.deliver(submitted(P1))
    world.db["open_orders"].delete_one({"_id": P1})  # the delivery before stopped before projecting
    world.deliver(submitted(P1))
    assert world.types(P1) == ["petition.assigned"]
    assert world.service.load(P1)[0].seq == 1
    assert world.open_order(P1)["seq"] == 1  # type: ignore[index]
    # the same petition republished under another event id is routed once too
    world.deliver(submitted(P1, event_id="another-id", grid_id="T01V01G002"))
    assert world.types(P1) == ["petition.assigned"] and world.service.load(P1)[1].assignment.grid_id == "T01V01G001"


@pytest.mark.parametrize("batch", [False, True])
def test_a_submission_is_routed_without_looking_for_its_order_first(world: World, batch: bool) -> None:
    """Issue #23: a submission creates the order, so an instance that remembers nothing of the petition
    reads nothing before committing; the commit's unique insert is the check."""
    world.db.commands.clear()
    world.deliver(submitted(P1), submitted(P2), batch=batch)
    assert world.db.commands[("insert", "workorders_commits")] == (1 if batch else 2)
    # nor after: a new order is projected before its commit, so no newer version can be overtaken
    assert world.db.commands[("find", "workorders_commits")] == 0
    assert world.open_order(P1)["seq"] == world.open_order(P2)["seq"] == 1  # type: ignore[index]
    assert world.open_order(P1)["status"] == "assigned"  # type: ignore[index]


@pytest.mark.parametrize("batch", [False, True])
def test_a_submission_redelivered_to_an_instance_that_does_not_remember_it_changes_nothing(
    world: World, batch: bool
) -> None:
    world.deliver(submitted(P1))
    other = World.__new__(World)  # a restarted instance: same database, nothing remembered
    other.__dict__.update(world.__dict__, parts=world.other)
    other.deliver(submitted(P1), submitted(P2), batch=batch)
    assert world.types(P1) == ["petition.assigned"] and world.types(P2) == ["petition.assigned"]
    assert world.service.load(P1)[0].seq == 1 and world.open_order(P1)["seq"] == 1  # type: ignore[index]


@pytest.mark.parametrize("batch", [False, True])
def test_a_late_redelivered_submission_leaves_the_newest_order_projected(world: World, batch: bool) -> None:
    """A new order's projection is written before its commit. A redelivery to an instance that does not
    remember the order writes the first version's document over the newest one before its commit
    loses; it then finds the event applied and projects the newest version again."""
    world.deliver(submitted(P1))
    world.act(P1, leader("T01V01G001"), "contact")
    other = World.__new__(World)  # a restarted instance: same database, nothing remembered
    other.__dict__.update(world.__dict__, parts=world.other)
    other.deliver(submitted(P1), submitted(P2), batch=batch)
    assert world.types(P1) == ["petition.assigned", "petition.contacted"]
    doc = world.open_order(P1)
    assert doc is not None and doc["seq"] == 2 and doc["status"] == "in_progress"


# ---- petition.feedback_received and petition.withdrawn --------------------------------------------


@pytest.mark.parametrize("satisfaction", ["satisfied", "basically_satisfied"])
def test_a_good_rating_closes_the_order(world: World, satisfaction: str) -> None:
    world.deliver(submitted(P1))
    handled_to_reply(world, P1, leader("T01V01G001"))
    world.clock.advance(timedelta(hours=2))
    world.deliver(feedback(P1, satisfaction))
    assert world.types(P1)[-1] == "petition.closed"
    closed = world.published.of(P1)[-1].data
    assert closed["closed_by"] == "feedback" and closed["closed_at"] == format_time(T0 + timedelta(hours=2))
    order = world.service.load(P1)[1]
    assert order.status == "closed" and order.satisfaction == satisfaction
    assert world.open_order(P1)["finished_at"] == format_time(T0 + timedelta(hours=2))  # type: ignore[index]


def test_a_bad_rating_reopens_once_then_closes(world: World) -> None:
    grid_leader = leader("T01V01G001")
    world.deliver(submitted(P1))
    handled_to_reply(world, P1, grid_leader)
    world.deliver(feedback(P1, "dissatisfied", "f1"))
    assert world.types(P1)[-1] == "petition.reopened" and world.service.load(P1)[1].status == "reopened"
    world.act(P1, grid_leader, "reply", resolution="explained", summary="已说明")
    world.deliver(feedback(P1, "dissatisfied", "f2"))
    assert world.types(P1)[-1] == "petition.closed"
    assert world.service.load(P1)[1].reopen_count == 1


def test_a_withdrawal_finishes_the_order_and_publishes_nothing(world: World) -> None:
    world.deliver(submitted(P1))
    world.act(P1, leader("T01V01G001"), "pause", reason="citizen_unreachable")
    world.clock.advance(timedelta(minutes=30))
    world.deliver(withdrawn(P1))
    order = world.service.load(P1)[1]
    assert order.status == "withdrawn" and order.pause is None and order.paused_seconds == 1800.0
    assert world.types(P1) == ["petition.assigned", "petition.sla_paused"]
    assert world.open_order(P1)["finished_at"] == format_time(T0 + timedelta(minutes=30))  # type: ignore[index]


def test_an_intake_event_the_state_refuses_is_recorded_and_changes_nothing_else(world: World) -> None:
    world.deliver(submitted(P1))
    handled_to_reply(world, P1, leader("T01V01G001"))
    seq = world.service.load(P1)[0].seq
    world.deliver(withdrawn(P1))  # crossed our reply: intake decided without seeing it; ours stands
    loaded, order = world.service.load(P1)
    assert order.status == "replied" and loaded.seq == seq + 1 and f"{P1}-w" in loaded.state["seen"]  # type: ignore[index]
    world.deliver(withdrawn(P1))  # and its redelivery is not even recorded again
    assert world.service.load(P1)[0].seq == seq + 1
    assert world.types(P1)[-1] == "petition.replied"


def test_an_event_for_a_petition_never_submitted_is_an_error(world: World) -> None:
    with pytest.raises(domain.NeverSubmitted):
        world.deliver(feedback(P1, "satisfied"))
    with pytest.raises(ValueError):
        world.deliver(withdrawn(P1), batch=True)
    assert world.published.events == []


def test_a_redelivered_rating_is_applied_once(world: World) -> None:
    world.deliver(submitted(P1))
    handled_to_reply(world, P1, leader("T01V01G001"))
    world.deliver(feedback(P1, "dissatisfied"))
    world.deliver(feedback(P1, "dissatisfied"))  # the same event id again: not a second bad rating
    assert world.types(P1).count("petition.reopened") == 1 and "petition.closed" not in world.types(P1)


# ---- the batch handler ----------------------------------------------------------------------------


def test_a_batch_gives_what_one_by_one_gives(world: World) -> None:
    one_by_one = World()
    one_by_one.parts.handlers[REGISTRY_IMPORT](copy.deepcopy(COUNTY), "S000001")
    for w in (world, one_by_one):
        w.deliver(submitted(P1), submitted(P2, grid_id="T02V01G001"), submitted(P3, address="不详"))
    world.deliver(withdrawn(P2), submitted(P2), withdrawn(P3), batch=True)  # P2 redelivered in the same batch
    one_by_one.deliver(withdrawn(P2), submitted(P2), withdrawn(P3))
    for pid in (P1, P2, P3):
        assert world.service.load(pid)[1] == one_by_one.service.load(pid)[1]
        assert world.types(pid) == one_by_one.types(pid)
        assert world.open_order(pid) == one_by_one.open_order(pid)
    assert world.listed(DISPATCHER) == one_by_one.listed(DISPATCHER)


def test_a_batch_of_new_petitions_is_projected_and_listed(world: World) -> None:
    world.deliver(submitted(P1), submitted(P2, grid_id="T01V01G002"), batch=True)
    assert world.types(P1) == ["petition.assigned"] == world.types(P2)
    assert world.open_order(P1)["seq"] == 1 and world.open_order(P2)["seq"] == 1  # type: ignore[index]
    assert set(world.listed(SUPERVISOR)) == {P1, P2}
    assert world.listed(leader("T01V01G002")) == [P2]


def test_a_batch_whose_commit_lost_a_race_replays_it_on_the_newer_version(world: World) -> None:
    grid_leader = leader("T01V01G001")
    world.deliver(submitted(P1), submitted(P2))  # this instance now remembers both orders at version 1
    world.act(P1, grid_leader, "contact", parts=world.other)  # another instance commits version 2 of P1
    world.deliver(withdrawn(P1), withdrawn(P2), batch=True)  # P1's commit on version 1 loses: replayed
    loaded, order = world.service.load(P1)
    assert order.status == "withdrawn" and order.contacted_at is not None and loaded.seq == 3
    assert world.service.load(P2)[1].status == "withdrawn"
    assert world.open_order(P1)["seq"] == 3 and world.open_order(P1)["finished_at"]  # type: ignore[index]


# ---- staff actions --------------------------------------------------------------------------------


def test_the_whole_handling_publishes_each_step(world: World) -> None:
    grid_leader = leader("T01V01G001")
    world.deliver(submitted(P1))
    world.clock.advance(timedelta(minutes=5))
    assert world.act(P1, grid_leader, "contact")["status"] == "in_progress"
    world.act(P1, grid_leader, "pause", reason="third_party")
    world.clock.advance(timedelta(hours=1))
    world.act(P1, grid_leader, "resume")
    world.act(P1, grid_leader, "pause", reason="citizen_deferred")
    world.clock.advance(timedelta(hours=1))
    replied = world.act(P1, grid_leader, "reply", resolution="resolved", summary="已修复")  # resumes first
    assert replied["status"] == "replied" and replied["paused_seconds"] == 7200.0
    world.act(P1, grid_leader, "close")
    assert world.types(P1) == [
        "petition.assigned",
        "petition.contacted",
        "petition.sla_paused",
        "petition.sla_resumed",
        "petition.sla_paused",
        "petition.sla_resumed",
        "petition.replied",
        "petition.closed",
    ]
    assert world.published.of(P1)[-1].data["closed_by"] == "staff"
    assert world.published.of(P1)[1].data == {
        "petition_id": P1,
        "staff_id": "LT01V01G001",
        "contacted_at": format_time(T0 + timedelta(minutes=5)),
    }
    doc = world.open_order(P1)
    assert (
        doc is not None and doc["status"] == "closed" and doc["seq"] == 7
    )  # a reply that resumes the clock is one commit


def test_a_transfer_moves_the_order_between_lists(world: World) -> None:
    world.deliver(submitted(P1))
    world.clock.advance(timedelta(minutes=1))
    moved = world.act(P1, DISPATCHER, "transfer", grid_id="T02V01G001", reason="属柳河镇")
    assert moved["assignment"]["grid_id"] == "T02V01G001" and moved["transfer_count"] == 1
    transferred = world.published.of(P1)[-1]
    assert transferred.type == "petition.transferred"
    assert transferred.data["assignee"] == {"staff_id": "LT02V01G001", "role": "grid_leader"}
    assert world.listed(leader("T01V01G001")) == [] and world.listed(CADRE) == [] and world.listed(SUPERVISOR) == []
    assert world.listed(leader("T02V01G001")) == [P1]
    assert world.open_order(P1)["town_id"] == "T02"  # type: ignore[index]
    # a department only: the grid and its leader stay
    world.act(P1, DISPATCHER, "transfer", department="county_housing_bureau", reason="属住房物业")
    order = world.service.load(P1)[1]
    assert order.assignment.department == "county_housing_bureau" and order.assignment.grid_id == "T02V01G001"


def test_a_transfer_out_of_triage_leaves_the_triage_queue(world: World) -> None:
    world.deliver(submitted(P1, address="不详"))
    world.act(P1, DISPATCHER, "transfer", grid_id="T01V01G001", reason="人工分派")
    assert world.listed(DISPATCHER, triage=True) == [] and world.listed(leader("T01V01G001")) == [P1]


def test_a_queue_worked_from_its_oldest_end_keeps_the_oldest_orders_within_its_limit(world: World) -> None:
    pids = [f"JZ20250310{n:06d}" for n in range(5)]
    for pid in pids:
        world.deliver(submitted(pid, address="不详"))
        world.clock.advance(timedelta(minutes=1))
    assert world.listed(DISPATCHER, triage=True, limit=2) == [pids[4], pids[3]]  # newest first by default
    assert world.listed(DISPATCHER, triage=True, limit=2, oldest_first=True) == pids[:2]
    assert world.listed(DISPATCHER, triage=True, oldest_first=True) == pids


def test_a_queue_sorted_elsewhere_takes_its_ids_and_loads_one_page(world: World) -> None:
    """The ids of an area come from its index without loading an order; loading a page by id keeps the
    given order and shows only what the caller may see now (an id that left the area is absent)."""
    pids = [f"JZ20250310{n:06d}" for n in range(4)]
    for pid in pids:
        world.deliver(submitted(pid))
        world.clock.advance(timedelta(minutes=1))
    grid_leader = leader("T01V01G001")
    assert world.service.listed_ids(grid_leader) == pids[::-1]
    assert world.service.listed_ids(grid_leader, limit=2, oldest_first=True) == pids[:2]
    assert world.service.listed_ids(Staff("X", "helper")) == []  # a role that sees no order
    world.act(pids[1], DISPATCHER, "transfer", grid_id="T02V01G001", reason="属柳河镇")
    assert pids[1] not in world.service.listed_ids(grid_leader)
    page = [pids[2], pids[1], pids[0], P2]  # P2: no such order
    assert world.listed(grid_leader, ids=page) == [pids[2], pids[0]]
    assert world.listed(leader("T02V01G001"), ids=page) == [pids[1]]
    assert world.listed(grid_leader, ids=page, limit=1) == [pids[2]]
    world.db.commands.clear()
    assert world.listed(Staff("X", "helper"), ids=page) == []
    assert not world.db.commands  # a role that may see no order has nothing loaded for it


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": "x"}, "grid_id"),  # neither grid nor department
        ({"grid_id": "T09V09G009", "reason": "x"}, "grid_id"),
        ({"department": "no_such_department", "reason": "x"}, "department"),
        ({"grid_id": "T01V01G002"}, "reason"),
    ],
)
def test_a_malformed_transfer_is_refused_and_nothing_is_written(world: World, body: dict[str, Any], field: str) -> None:
    world.deliver(submitted(P1))
    with pytest.raises(domain.InvalidArgument) as refused:
        world.act(P1, DISPATCHER, "transfer", **body)
    assert refused.value.field == field
    assert world.service.load(P1)[0].seq == 1 and world.types(P1) == ["petition.assigned"]


@pytest.mark.parametrize(
    ("action", "body", "code"),
    [
        ("reply", {"resolution": "resolved", "summary": "s"}, "invalid_state"),  # no contact yet
        ("close", {}, "invalid_state"),  # no reply yet
        ("resume", {}, "not_paused"),
        ("transfer", {"grid_id": "T01V01G001", "reason": "同一网格"}, "same_assignment"),
    ],
)
def test_an_action_the_state_refuses_is_a_conflict_and_writes_nothing(
    world: World, action: str, body: dict[str, Any], code: str
) -> None:
    world.deliver(submitted(P1))
    with pytest.raises(domain.InvalidTransition) as refused:
        world.act(P1, DISPATCHER, action, **body)
    assert refused.value.code == code
    assert world.service.load(P1)[0].seq == 1 and world.types(P1) == ["petition.assigned"]


def test_a_malformed_argument_is_refused_whatever_the_state(world: World) -> None:
    world.deliver(submitted(P1))
    world.act(P1, DISPATCHER, "contact")
    with pytest.raises(domain.InvalidArgument) as refused:
        world.act(P1, DISPATCHER, "reply", resolution="done", summary="s")
    assert refused.value.field == "resolution"
    with pytest.raises(domain.InvalidArgument):
        world.act(P1, DISPATCHER, "pause", reason="lunch")


def test_an_order_no_one_may_act_on_is_not_found(world: World) -> None:
    world.deliver(submitted(P1))
    for staff in (CADRE, AUDITOR, leader("T01V01G002"), Staff("X", "helper")):
        with pytest.raises(NotFound):
            world.act(P1, staff, "contact")
    with pytest.raises(NotFound):
        world.act(P2, DISPATCHER, "contact")  # no such order
    # a cadre and an auditor see it, though; another grid's leader does not
    assert world.service.view(P1, CADRE)["petition_id"] == P1 == world.service.view(P1, AUDITOR)["petition_id"]
    with pytest.raises(NotFound):
        world.service.view(P1, leader("T01V01G002"))
    assert world.types(P1) == ["petition.assigned"]


def test_an_action_that_lost_a_race_runs_again_on_the_newer_version(world: World) -> None:
    grid_leader = leader("T01V01G001")
    world.deliver(submitted(P1))
    # between this instance's load and its commit, another instance pauses the clock
    world.clock.between = lambda: world.act(P1, grid_leader, "pause", parts=world.other, reason="third_party")
    world.act(P1, grid_leader, "contact")
    loaded, order = world.service.load(P1)
    assert loaded.seq == 3 and order.status == "in_progress" and order.pause is not None
    assert world.types(P1) == ["petition.assigned", "petition.sla_paused", "petition.contacted"]
    # the rerun decides on the newer version: the clock the other instance resumed is not paused any more
    world.clock.between = lambda: world.act(P1, grid_leader, "resume", parts=world.other)
    with pytest.raises(domain.InvalidTransition) as refused:
        world.act(P1, DISPATCHER, "resume")
    assert refused.value.code == "not_paused" and world.types(P1).count("petition.sla_resumed") == 1


def test_a_transfer_whose_area_move_comes_after_a_newer_one_is_corrected(world: World, monkeypatch: Any) -> None:
    """This instance transfers an order to T02 (version 2) and, before it writes the area move, another
    instance transfers it back (version 3) and writes its move: the late move must not take the order
    out of T01's lists. The check after a move that leaves areas finds version 3 and projects it."""
    world.deliver(submitted(P1))
    apply = world.service.areas.apply
    overtaken: list[bool] = []

    def slow_apply(moves: Any) -> None:
        moves = list(moves)
        if not overtaken and any(m.remove for m in moves):
            overtaken.append(True)
            world.act(P1, DISPATCHER, "transfer", parts=world.other, grid_id="T01V01G001", reason="回原网格")
        apply(moves)

    monkeypatch.setattr(world.service.areas, "apply", slow_apply)
    world.act(P1, DISPATCHER, "transfer", grid_id="T02V01G001", reason="属柳河镇")
    assert overtaken == [True]
    doc = world.open_order(P1)
    assert doc is not None and (doc["seq"], doc["town_id"]) == (3, "T01")
    assert world.listed(leader("T01V01G001")) == [P1] and world.listed(SUPERVISOR) == [P1]
    assert world.listed(leader("T02V01G001")) == []


def test_a_document_written_for_a_commit_that_lost_is_projected_again(world: World) -> None:
    """This instance remembers version 1; another instance transfers the order to T02 (version 2). This
    instance's contact writes the document of its version 2 first, over the transferred one, then loses
    the commit: it projects the newest version again, and the action is refused on it (not T01's now)."""
    world.deliver(submitted(P1))
    world.act(P1, DISPATCHER, "transfer", parts=world.other, grid_id="T02V01G001", reason="属柳河镇")
    with pytest.raises(NotFound):
        world.act(P1, leader("T01V01G001"), "contact")
    doc = world.open_order(P1)
    assert doc is not None and (doc["seq"], doc["town_id"], doc["status"]) == (2, "T02", "assigned")


def test_a_document_written_for_a_commit_the_database_failed_is_projected_again(world: World, monkeypatch: Any) -> None:
    world.deliver(submitted(P1))

    def database_away(*args: Any, **kwargs: Any) -> None:
        raise AutoReconnect("away")

    monkeypatch.setattr(world.service.orders, "commit_many", database_away)
    with pytest.raises(AutoReconnect):
        world.act(P1, leader("T01V01G001"), "contact")
    doc = world.open_order(P1)
    assert doc is not None and (doc["seq"], doc["status"]) == (1, "assigned")


def test_a_document_of_a_close_that_was_never_committed_does_not_make_the_order_leave(world: World) -> None:
    """A process died between writing the document of a close and committing it: the scanner that
    finds it past keep_finished projects the order as it is instead of forgetting it."""
    world.deliver(submitted(P1))
    phantom = {**world.open_order(P1), "seq": 2, "status": "closed", "finished_at": format_time(T0)}
    world.db["open_orders"].replace_one({"_id": P1}, phantom)  # and its time in the lists queued, as a close does
    world.service.timeouts.add([(T0 + world.parts.config.keep_finished, {"petition_id": P1, "why": "finished"})], T0)
    world.clock.advance(world.parts.config.keep_finished + TAKEN)
    world.service.close_timed_out()
    doc = world.open_order(P1)
    assert doc is not None and (doc["seq"], doc["status"]) == (1, "assigned")
    assert world.listed(leader("T01V01G001")) == [P1]


# ---- the timeout scanner --------------------------------------------------------------------------


def test_a_reply_without_a_rating_closes_when_the_window_passes_and_later_leaves_the_lists(world: World) -> None:
    grid_leader = leader("T01V01G001")
    world.deliver(submitted(P1), submitted(P2))
    handled_to_reply(world, P1, grid_leader)
    window = world.parts.config.feedback_window
    world.clock.advance(window - timedelta(seconds=1))
    assert world.service.close_timed_out() == 0
    world.clock.advance(TAKEN)  # the hour the window ends in has passed
    assert world.service.close_timed_out() == 1 and world.service.close_timed_out() == 0
    closed = world.published.of(P1)[-1]
    assert closed.type == "petition.closed" and closed.data["closed_by"] == "timeout"
    assert world.listed(grid_leader, status="closed") == [P1]
    world.clock.advance(world.parts.config.keep_finished + TAKEN)
    world.service.close_timed_out()
    assert world.open_order(P1) is None and world.listed(grid_leader) == [P2]
    assert world.service.load(P1)[1].status == "closed"  # the order itself stays


def test_the_timeout_scanner_builds_on_the_orders_it_remembers(world: World) -> None:
    """Issue #23: closing a timed-out order and forgetting a finished one read no order first (the
    close's commit checks it is the newest; a finished order never changes again)."""
    world.deliver(submitted(P1))
    handled_to_reply(world, P1, leader("T01V01G001"))
    world.clock.advance(world.parts.config.feedback_window + TAKEN)
    world.db.commands.clear()
    assert world.service.close_timed_out() == 1
    assert world.db.commands[("find", "workorders_commits")] == 0  # the document was written before the commit
    world.clock.advance(world.parts.config.keep_finished + TAKEN)
    world.db.commands.clear()
    world.service.close_timed_out()
    assert world.open_order(P1) is None and world.db.commands[("find", "workorders_commits")] == 0


def test_the_scanner_forgets_all_spent_orders_at_once(world: World, monkeypatch) -> None:
    """Issue #23: the finished orders a scan finds past keep_finished leave their areas in one commit per
    shard and open_orders in one bulk write of deletes by `_id`, not a command or two per order, and not
    a delete by `$in` (a read of the whole collection on FerretDB)."""
    grid_leader = leader("T01V01G001")
    pids = [f"JZ20260302{n:06d}" for n in range(1, 7)]
    world.deliver(*(submitted(pid, grid_id="T01V01G001") for pid in pids))
    for pid in pids:
        handled_to_reply(world, pid, grid_leader)
    world.clock.advance(world.parts.config.feedback_window + TAKEN)
    assert world.service.close_timed_out() == len(pids)
    assert sorted(world.listed(grid_leader, status="closed")) == sorted(pids)
    world.clock.advance(world.parts.config.keep_finished + TAKEN)
    world.db.commands.clear()
    monkeypatch.setattr(world.db["open_orders"], "delete_many", lambda *a, **k: pytest.fail("a delete by filter"))
    world.service.close_timed_out()
    assert all(world.open_order(pid) is None for pid in pids) and world.listed(grid_leader) == []
    assert world.db.commands[("delete", "open_orders")] == 1
    assert world.db.commands[("insert", "area_index_commits")] == 1  # every changed shard in one insert


def test_a_timeout_close_refused_on_a_stale_remembered_order_is_decided_again_on_the_newest(world: World) -> None:
    world.deliver(submitted(P1))
    handled_to_reply(world, P1, leader("T01V01G001"), parts=world.other)  # this instance remembers version 1
    world.clock.advance(world.parts.config.feedback_window + TAKEN)
    assert world.service.close_timed_out() == 1
    assert world.service.load(P1)[1].status == "closed"


def test_the_scanner_reads_the_orders_whose_time_has_come_not_the_open_orders(world: World) -> None:
    """Issue #23: the scanner read open_orders whole on every run (~13,700 orders at the year's backlog,
    every minute in production); it takes the orders whose window has ended from the timeouts queue."""
    grid_leader = leader("T01V01G001")
    pids = [f"JZ20260309{n:06d}" for n in range(1, 6)]
    world.deliver(*(submitted(pid) for pid in pids))
    for pid in pids[:3]:
        handled_to_reply(world, pid, grid_leader)
    world.service.close_timed_out()  # a process's first run: the database's queue was built with it
    world.clock.advance(timedelta(days=1))
    world.db.commands.clear()
    assert world.service.close_timed_out() == 0
    assert world.db.commands[("find", "open_orders")] == 0
    # the cursor, and an hour each from the first the replies could use (02:00) to the last passed (23:00)
    assert world.db.commands[("find", "timeouts")] == 1 + 22
    world.clock.advance(timedelta(minutes=4))
    world.db.commands.clear()  # no hour has passed its grace since (00:00-01:00 is taken at 01:05)
    assert world.service.close_timed_out() == 0 and sum(world.db.commands.values()) == 0
    world.clock.advance(world.parts.config.feedback_window)
    assert world.service.close_timed_out() == 3
    assert [world.service.load(pid)[1].status for pid in pids] == ["closed"] * 3 + ["assigned"] * 2


def test_a_reply_queues_its_window_and_a_reopened_order_waits_for_its_next_reply(world: World) -> None:
    grid_leader = leader("T01V01G001")
    world.deliver(submitted(P1))
    world.act(P1, grid_leader, "contact")
    world.db.commands.clear()
    world.act(P1, grid_leader, "reply", resolution="resolved", summary="已修复")
    assert world.db.commands[("insert", "timeouts")] >= 1  # the window, before the reply's commit
    world.deliver(feedback(P1, "dissatisfied", "f1"))  # reopened: the first window is passed over
    world.clock.advance(timedelta(days=3))
    world.act(P1, grid_leader, "reply", resolution="explained", summary="已说明")
    world.clock.advance(world.parts.config.feedback_window - timedelta(days=3) + TAKEN)
    assert world.service.close_timed_out() == 0  # the first reply's window ended; the order was reopened
    world.clock.advance(timedelta(days=3))
    assert world.service.close_timed_out() == 1
    assert world.service.load(P1)[1].closed_by == "timeout"


def test_a_withdrawn_order_leaves_the_lists_after_its_time_in_them(world: World) -> None:
    world.deliver(submitted(P1), submitted(P2))
    world.deliver(withdrawn(P1), batch=True)
    assert world.listed(leader("T01V01G001")) != [P2]
    world.clock.advance(world.parts.config.keep_finished + TAKEN)
    world.service.close_timed_out()
    assert world.open_order(P1) is None and world.listed(leader("T01V01G001")) == [P2]


def test_an_order_others_kept_writing_is_looked_at_again_an_hour_or_two_later(world: World, monkeypatch) -> None:
    world.deliver(submitted(P1))
    handled_to_reply(world, P1, leader("T01V01G001"))
    world.clock.advance(world.parts.config.feedback_window + TAKEN)
    service = world.service
    close = service._close_timed_out
    monkeypatch.setattr(service, "_close_timed_out", lambda pid, now: (_ for _ in ()).throw(Conflict(pid)))
    assert service.close_timed_out() == 0
    monkeypatch.setattr(service, "_close_timed_out", close)
    assert service.close_timed_out() == 0  # queued again under the next hour, which has not passed
    world.clock.advance(HOUR + TAKEN)
    assert service.close_timed_out() == 1


def test_the_orders_of_a_database_from_before_the_queue_are_queued_once(world: World) -> None:
    grid_leader = leader("T01V01G001")
    world.deliver(submitted(P1), submitted(P2), submitted(P3))
    handled_to_reply(world, P1, grid_leader)
    world.act(P2, grid_leader, "contact")
    world.act(P2, grid_leader, "reply", resolution="resolved", summary="已修复")
    world.deliver(feedback(P2, "satisfied", "f2"))
    world.db["timeouts"].delete_many({})  # as a database from before the queue holds nothing there
    first, second = world._instance().service, world._instance().service  # processes of the new version
    first.close_timed_out()
    assert {p["petition_id"] for p in first.timeouts.waiting()} == {P1, P2}
    world.db.commands.clear()
    second.close_timed_out()  # another process: the database is marked, open_orders is not read again
    assert world.db.commands[("find", "open_orders")] == 0
    world.clock.advance(world.parts.config.feedback_window + TAKEN)
    assert first.close_timed_out() == 1
    assert world.open_order(P2) is None and world.service.load(P1)[1].closed_by == "timeout"


def test_the_scanner_runs_when_due_by_the_services_clock(world: World) -> None:
    world.deliver(submitted(P1))
    handled_to_reply(world, P1, leader("T01V01G001"))
    world.clock.advance(world.parts.config.feedback_window + TAKEN)
    assert world.service.close_timed_out_when_due(3600) == 1  # a clock moved by a week is past an hour
    assert world.service.close_timed_out_when_due(3600) == 0


def test_a_staff_action_builds_on_the_remembered_version_and_reads_no_order(world: World) -> None:
    """Issue #23: acting on an order this instance just wrote needs no "is there a newer version?" read
    before it (the commit checks), nor after it (the projection was written before the commit)."""
    grid_leader = leader("T01V01G001")
    world.deliver(submitted(P1, grid_id="T01V01G001"))
    world.db.commands.clear()
    world.act(P1, grid_leader, "contact")
    assert world.db.commands[("find", "workorders_commits")] == 0
    assert world.db.commands[("insert", "workorders_commits")] == 1
    assert world.db.commands[("update", "open_orders")] == 1


def test_a_refusal_on_a_stale_remembered_version_is_decided_again_on_the_newest(world: World) -> None:
    """Another instance paused the order after this one remembered it: resuming is refused on the
    remembered version (not paused), so the action is decided again on the newest, and succeeds."""
    grid_leader = leader("T01V01G001")
    world.deliver(submitted(P1, grid_id="T01V01G001"))
    world.act(P1, grid_leader, "contact")  # this instance remembers the contacted order
    world.act(P1, grid_leader, "pause", world.other, reason="third_party")
    resumed = world.act(P1, grid_leader, "resume")
    assert resumed["pause"] is None
    assert world.types(P1)[-2:] == ["petition.sla_paused", "petition.sla_resumed"]
    with pytest.raises(domain.InvalidTransition):  # a refusal that holds on the newest version stands
        world.act(P1, grid_leader, "resume")


def test_staff_actions_arriving_during_a_write_are_committed_together(world: World) -> None:
    """Actions on three orders queue behind a held write and are committed as one group: one insert
    for their commits; two actions on one order in the group go in two rounds, the second on the first's
    version, so the order is contacted once and the other request is refused as a retry would be."""
    world.deliver(submitted(P1), submitted(P2), submitted(P3, grid_id="T01V01G002"))
    commits, sizes = world.service.commits, []
    commits.on_group = sizes.append
    outcomes: dict[str, Any] = {}

    def act(name: str, pid: str, grid: str) -> Callable[[], None]:
        def run() -> None:
            try:
                outcomes[name] = world.act(pid, leader(grid), "contact")["status"]
            except domain.InvalidTransition as exc:
                outcomes[name] = exc.code

        return run

    queued_behind_a_held_write(
        commits,
        act("p1", P1, "T01V01G001"),
        [act("p2", P2, "T01V01G001"), act("p2-again", P2, "T01V01G001"), act("p3", P3, "T01V01G002")],
        while_held=world.db.commands.clear,
    )
    assert sizes[:2] == [1, 3]
    assert outcomes["p1"] == outcomes["p3"] == "in_progress"
    assert sorted([outcomes["p2"], outcomes["p2-again"]]) == ["in_progress", "invalid_state"]
    for pid in (P1, P2, P3):
        assert world.types(pid).count("petition.contacted") == 1
        doc = world.open_order(pid)
        assert doc is not None and (doc["seq"], doc["status"]) == (2, "in_progress")
    # the held one's commit, the group's first round (P2, P3), its second (P2 again, lost)
    assert world.db.commands[("insert", "workorders_commits")] == 3
