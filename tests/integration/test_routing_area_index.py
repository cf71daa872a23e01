"""Routing's area index on the real FerretDB: a grid leader's, a village cadre's and a town supervisor's
lists read only their own orders, stay right through assign, transfer, close and the end of listing,
and survive a redelivered event, a lost index and two writers at once."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import MongoClient

from petition_common.auth import Staff
from petition_common.config import REPO_ROOT, Settings
from petition_common.consumer import MessageMeta
from petition_common.envelope import Event
from petition_common.store import AggregateStore
from services.routing.area_index import AreaIndex, Move, shard_of
from services.routing.bootstrap import bootstrap, load_departments
from services.routing.handlers import handlers
from services.routing.service import RoutingConfig, RoutingService
from tests.conftest import make_settings
from tests.unit.routing.routing_county import COUNTY

T0 = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)
DEPARTMENTS = load_departments(REPO_ROOT / "config" / "categories.yaml")
DISPATCHER = Staff("S000001", "county_dispatcher")
AUDITOR = Staff("A1", "auditor")


def leader(grid_id: str) -> Staff:
    return Staff(f"L{grid_id}", "grid_leader", town_id=grid_id[:3], grid_ids=frozenset({grid_id}))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _service(settings: Settings, db: Any, clock: Clock) -> RoutingService:
    # stores without a publisher: the events stay in the outbox, the index is what is tested
    stores = lambda name: AggregateStore(db, name)  # noqa: E731
    return bootstrap(settings, db=db, clock=clock, stores=stores, config=RoutingConfig(DEPARTMENTS)).service


@pytest.fixture
def world(unique_prefix: str) -> Iterator[tuple[RoutingService, RoutingService, Clock, Any]]:
    """Two routing instances over one database (each its own client and stores, as two processes)."""
    settings = make_settings("routing", unique_prefix)
    clock = Clock()
    clients = [MongoClient(settings.mongo_uri, tz_aware=True) for _ in range(2)]
    first, second = (_service(settings, c[settings.database], clock) for c in clients)
    first.import_registry(copy.deepcopy(COUNTY), "S000001")
    first.ensure_area_index()
    yield first, second, clock, clients[0][settings.database]
    for client in clients:
        client.close()


def submitted(pid: str, grid_id: str) -> Event:
    data = {
        "petition_id": pid,
        "channel": "hotline",
        "category": "roads",
        "content": "路灯不亮",
        "location": {"grid_id": grid_id},
        "citizen": {"name_masked": "刘*", "phone_masked": "138****1234"},
        "submitted_at": T0.isoformat().replace("+00:00", "Z"),
    }
    return Event(type="petition.submitted", source="test", subject=pid, data=data, id=f"{pid}-sub")


def deliver(service: RoutingService, *events: Event) -> None:
    service.on_intake_events([(e, MessageMeta("intake", 0, n, e.subject)) for n, e in enumerate(events)])


def act(service: RoutingService, pid: str, staff: Staff, action: str, body: dict[str, Any]) -> None:
    """A staff action as the HTTP view makes it: through the handler table."""
    handlers(service)[action](pid, staff, **body)


def ids(service: RoutingService, staff: Staff, **filters: Any) -> list[str]:
    return [o["petition_id"] for o in service.list_orders(staff, **filters)]


def everything_visible(service: RoutingService, staff: Staff, pids: list[str]) -> set[str]:
    """What the staff member may see among these orders, by the service's own rule on each order."""
    return {pid for pid in pids if service._covers(staff, service.load(pid)[1])}


def test_lists_follow_assign_transfer_and_close(world: Any) -> None:
    service, other, clock, _ = world
    deliver(service, submitted("P1", "T01V01G001"), submitted("P2", "T01V01G002"), submitted("P3", "T02V01G001"))
    clock.now = T0 + timedelta(minutes=1)
    deliver(service, submitted("P4", "T01V01G001"))
    a, b, far = leader("T01V01G001"), leader("T01V01G002"), leader("T02V01G001")
    cadre = Staff("CT01V01", "village_cadre", village_id="T01V01")
    town1, town2 = Staff("TS1", "town_supervisor", town_id="T01"), Staff("TS2", "town_supervisor", town_id="T02")

    assert ids(service, a) == ["P4", "P1"]  # newest first, as before the index
    assert ids(service, b) == ["P2"]
    assert ids(service, far) == ["P3"]
    assert set(ids(service, cadre)) == {"P1", "P2", "P4"}
    assert set(ids(service, town1)) == {"P1", "P2", "P4"} and ids(service, town2) == ["P3"]
    assert ids(service, Staff("X", "helper")) == [] and ids(service, Staff("TS0", "town_supervisor")) == []
    every = ["P1", "P2", "P3", "P4"]
    for staff in (a, b, far, cadre, town1, town2, DISPATCHER, AUDITOR):
        assert set(ids(service, staff)) == everything_visible(service, staff, every)

    # a transfer to another town's grid, made through the other instance: it leaves every old list
    clock.now = T0 + timedelta(minutes=2)
    act(other, "P1", DISPATCHER, "transfer", {"grid_id": "T02V01G001", "reason": "属柳河镇"})
    assert ids(service, a) == ["P4"]
    assert ids(service, far) == ["P1", "P3"]
    assert "P1" not in ids(service, cadre) and "P1" not in ids(service, town1) and "P1" in ids(service, town2)
    assert ids(service, a, grid_id="T02V01G001") == []  # filters cannot reach past the caller's area

    # handled and closed by its new leader: still listed while recently finished, then gone
    for action, body in (("contact", {}), ("reply", {"resolution": "resolved", "summary": "已修复"}), ("close", {})):
        act(service, "P1", far, action, body)
    assert ids(service, far, status="closed") == ["P1"]
    clock.now = T0 + RoutingConfig(DEPARTMENTS).keep_finished + timedelta(days=1)
    service.close_timed_out()
    assert ids(service, far) == ["P3"] and ids(service, town2) == ["P3"]
    assert "P1" not in service.areas.members("assignee:LT02V01G001")
    assert ids(service, DISPATCHER, assignee="LT01V01G001") == ["P4"]


def test_the_triage_queue_holds_orders_without_a_grid_until_one_is_given(world: Any) -> None:
    service, _, clock, _ = world
    nowhere = submitted("P9", "T09V09G009")  # no such grid, no point, no village: triage
    nowhere.data["location"] = {"address": "不详"}
    deliver(service, nowhere, submitted("P1", "T01V01G001"))
    assert ids(service, DISPATCHER, triage=True) == ["P9"] == ids(service, AUDITOR, triage=True)
    assert set(ids(service, DISPATCHER)) == {"P1", "P9"}
    assert ids(service, leader("T01V01G001"), triage=True) == []
    clock.now = T0 + timedelta(minutes=1)
    act(service, "P9", DISPATCHER, "transfer", {"grid_id": "T01V01G001", "reason": "人工分派"})
    assert ids(service, DISPATCHER, triage=True) == []
    assert ids(service, leader("T01V01G001")) == ["P9", "P1"]


def test_a_redelivered_event_and_a_rebuild_restore_a_lost_index(world: Any) -> None:
    service, other, _, db = world
    deliver(service, submitted("P1", "T01V01G001"), submitted("P2", "T01V02G001"))
    a = leader("T01V01G001")
    for name in db.list_collection_names():
        if name.startswith("area_index"):
            db.drop_collection(name)
    # a process that committed the orders and died before indexing them: the redelivery indexes them
    deliver(other, submitted("P1", "T01V01G001"))
    assert ids(other, a) == ["P1"]
    assert ids(other, leader("T01V02G001")) == []  # not redelivered (yet): the rebuild finds it
    other.ensure_area_index()
    assert ids(other, leader("T01V02G001")) == ["P2"] and ids(other, a) == ["P1"]
    assert other.rebuild_area_index() == 2  # repeatable


def test_two_writers_at_once_lose_no_order(world: Any) -> None:
    first, second, _, _ = world
    pids = [f"P{n}" for n in range(40)]

    def feed(service: RoutingService, mine: list[str]) -> None:
        for k in range(0, len(mine), 4):
            deliver(service, *(submitted(pid, "T01V01G001") for pid in mine[k : k + 4]))

    threads = [threading.Thread(target=feed, args=(s, pids[i::2])) for i, s in enumerate((first, second))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert sorted(ids(first, leader("T01V01G001"))) == sorted(pids)
    assert sorted(ids(second, Staff("TS1", "town_supervisor", town_id="T01"))) == sorted(pids)


def test_an_index_written_before_2026_12_07_is_read_and_rewritten_by_its_next_change(world: Any) -> None:
    """Shards once held one small document per order; they are read as they are and written in today's
    format (two lists) by the first move that changes them."""
    _, _, _, db = world
    key = "town:T01"
    before = {"P1": "2026-03-09T01:00:00Z", "P2": "2026-03-09T01:01:00Z", "P3": "2026-03-09T01:02:00Z"}
    old_store = AggregateStore(db, "legacy_index")
    shards: dict[str, list[dict[str, str]]] = {}
    for pid, at in before.items():
        shards.setdefault(shard_of(key, pid), []).append({"p": pid, "at": at})
    for shard, entries in shards.items():
        old_store.commit(old_store.load(shard), {"orders": entries})

    def fresh() -> AreaIndex:  # another process: nothing remembered
        return AreaIndex(AggregateStore(db, "legacy_index"), db["legacy_index_meta"])

    assert fresh().members(key) == before
    fresh().apply(
        [
            Move("P4", "2026-03-09T01:03:00Z", frozenset({key}), frozenset()),
            Move("P1", "", frozenset(), frozenset({key})),
        ]
    )
    assert fresh().members(key) == {"P2": before["P2"], "P3": before["P3"], "P4": "2026-03-09T01:03:00Z"}
    for pid in ("P1", "P4"):
        assert set(fresh().store.load(shard_of(key, pid)).state or {}) == {"p", "at"}


def test_a_move_that_changes_nothing_reads_and_writes_no_shard(world: Any, monkeypatch: Any) -> None:
    """Issue #23: every commit of an order passes its areas to the index; when they did not change, the
    shards this instance holds decoded answer without a read, a decode or a commit."""
    service, _, clock, db = world
    deliver(service, submitted("P1", "T01V01G001"))
    clock.now = T0 + timedelta(minutes=1)
    store = service.areas.store
    reads: list[str] = []

    def spy(read: Any) -> Any:
        return lambda shard, *args, **kwargs: reads.append(shard) or read(shard, *args, **kwargs)

    for name in ("load", "load_to_write"):
        monkeypatch.setattr(store, name, spy(getattr(store, name)))
    commits = db["area_index_commits"].count_documents({})
    act(service, "P1", leader("T01V01G001"), "contact", {})
    assert reads == [] and db["area_index_commits"].count_documents({}) == commits
    assert service.load("P1")[1].status == "in_progress"  # the action did commit a new version of the order
