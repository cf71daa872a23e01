"""Intake's use cases on the fakes: every command, every consumed event type, the errors, the events
published and the collections kept beside the petition. No network: bootstrap builds the service on
petition_common.fakes (the stores still validate every event against the contract)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from petition_common.auth import Staff
from petition_common.config import Settings
from petition_common.consumer import MessageMeta
from petition_common.contract import SchemaViolation
from petition_common.envelope import Event
from petition_common.fakes import ManualClock, MemoryDatabase, RecordingPublisher
from petition_common.store import AggregateStore, Conflict
from petition_common.topics import EVENT_TYPES, ROUTING
from petition_kernel.times import format_time
from services.intake import domain
from services.intake.bootstrap import IntakeParts, bootstrap
from services.intake.handlers import BATCH, batch_handler, event_handlers
from services.intake.service import IdempotencyMismatch, NotFound

START = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # 09:30 in Beijing
GRID = "T01V01G001"
PHONE = "13812340002"


class Intake:
    """The service built by bootstrap on fakes, with what a test looks at."""

    def __init__(self) -> None:
        self.db = MemoryDatabase()
        self.published = RecordingPublisher()
        self.clock = ManualClock(START)
        self.parts: IntakeParts = bootstrap(
            Settings(service="intake"), db=self.db, publisher=self.published, clock=self.clock
        )
        self.handlers = self.parts.handlers
        self.service = self.parts.service

    def submit(
        self, content: str = "小区门口下水道堵了三天", phone: str = PHONE, key: str | None = None, **location: Any
    ) -> dict[str, Any]:
        body = _body(content, phone, **location)
        sub = domain.validate_submission(body, self.parts.config.categories)
        receipt, _ = self.handlers["submit"](sub, domain.body_fingerprint(body), key)
        return receipt

    def state(self, pid: str) -> dict[str, Any]:
        return self.service.load(pid)

    def routing(self, event_type: str, pid: str, **data: Any) -> Event:
        """Routing's event, delivered as the consumer delivers it (one at a time)."""
        event = _routing_event(event_type, pid, self.clock(), **data)
        self.handlers[event_type](event, _meta())
        return event

    def published_types(self, pid: str) -> list[str]:
        return [e.type for e in self.published.of(pid)]


@pytest.fixture
def intake() -> Iterator[Intake]:
    yield Intake()


def _body(content: str, phone: str, **location: Any) -> dict[str, Any]:
    return {
        "channel": "web",
        "category": "drainage",
        "content": content,
        "location": {"town": "", "village": "", **location},
        "citizen": {"name": "刘洋", "phone": phone},
    }


def _routing_event(event_type: str, pid: str, at: datetime, **data: Any) -> Event:
    defaults: dict[str, dict[str, Any]] = {
        "petition.assigned": {"grid_id": GRID, "village": "一村", "town": "一镇", "department": "d", "reason": "grid"},
        "petition.transferred": {"grid_id": "T02V01G001", "village": "二村", "town": "二镇", "reason": "wrong grid"},
        "petition.replied": {"resolution": "resolved", "summary": "已疏通", "replied_at": format_time(at)},
        "petition.reopened": {"reason": "not fixed"},
        "petition.closed": {"closed_by": "citizen_feedback"},
    }
    payload = {"petition_id": pid, **defaults.get(event_type, {}), **data}
    return Event(type=event_type, source="petitions/routing", subject=pid, data=payload, time=format_time(at))


def _noted(intake: Intake) -> dict[str, datetime]:
    """The petitions waiting in the retention queue, with when they ended."""
    return {p["petition_id"]: p["ended_at"] for p in intake.service.notes.queue.waiting()}


def _meta(offset: int = 0) -> MessageMeta:
    return MessageMeta(ROUTING, 0, offset, None)


def _replied(intake: Intake, pid: str) -> None:
    intake.routing("petition.assigned", pid)
    intake.routing("petition.replied", pid)


# ---- submit


def test_submit_commits_the_petition_and_publishes_its_masked_event(intake: Intake) -> None:
    receipt = intake.submit("我的电话13812349999，下水道堵了", lat=36.2, lon=120.05)
    pid = receipt["petition_id"]
    assert pid == "JZ20260302000001"  # the day in Beijing, the first number of the day
    assert receipt["status"] == "submitted" and receipt["duplicate_of"] is None

    [event] = intake.published.of(pid)
    assert event.type == "petition.submitted"
    assert event.data["citizen"]["name_masked"] == "刘*"
    assert event.data["citizen"]["phone_masked"] == "138****0002"
    assert "13812349999" not in event.data["content"]
    state = intake.state(pid)
    assert state["status"] == "submitted" and "13812349999" not in state["content"]
    assert "tracking_code" not in str(state) and receipt["tracking_code"] not in str(state)
    # the details only in the encrypted contacts record, "near me" only the cell
    contact = intake.service.contacts.get(state["citizen"]["contact_id"])
    assert contact is not None
    assert contact["phone"] == PHONE and "13812349999" in contact["content"]
    assert intake.db["open_points"].find_one({"_id": pid}) == {
        "_id": pid,
        "category": "drainage",
        **dict(zip(("cell_lat", "cell_lon"), domain.coarse_point(36.2, 120.05), strict=True)),
    }


def test_submit_with_the_same_idempotency_key_replays_the_same_petition(intake: Intake) -> None:
    body = _body("路灯坏了", PHONE)
    sub = domain.validate_submission(body, intake.parts.config.categories)
    first, replayed_first = intake.handlers["submit"](sub, domain.body_fingerprint(body), "key-1")
    again, replayed_again = intake.handlers["submit"](sub, domain.body_fingerprint(body), "key-1")
    assert (replayed_first, replayed_again) == (False, True)
    assert again == first  # the same number and tracking code, derived again from the stored nonce
    assert intake.published_types(first["petition_id"]) == ["petition.submitted"]

    other = _body("路灯坏了，很危险", PHONE)
    with pytest.raises(IdempotencyMismatch):
        intake.handlers["submit"](
            domain.validate_submission(other, intake.parts.config.categories), domain.body_fingerprint(other), "key-1"
        )


def test_submit_is_accepted_while_the_broker_is_down_and_its_event_waits_in_the_outbox(intake: Intake) -> None:
    intake.published.fail = ConnectionError("broker unreachable")
    pid = intake.submit()["petition_id"]
    assert intake.state(pid)["status"] == "submitted"
    assert intake.published.events == []
    [marker] = list(intake.db["outbox"].find({}))
    assert marker["aggregate_id"] == pid


def test_a_near_identical_petition_within_a_day_links_to_the_first(intake: Intake) -> None:
    first = intake.submit("小区门口下水道堵了三天")["petition_id"]
    intake.clock.advance(timedelta(hours=2))
    second = intake.submit("小区门口下水道堵了三天！")
    assert second["duplicate_of"] == first
    assert intake.state(first)["affected_citizens"] == 2
    assert intake.published.of(second["petition_id"])[0].data["duplicate_of"] == first

    intake.clock.advance(timedelta(hours=25))
    assert intake.submit("小区门口下水道堵了三天")["duplicate_of"] is None  # outside the 24 h window
    assert intake.submit("小区门口下水道堵了三天", phone="13912340003")["duplicate_of"] is None  # another citizen


def test_a_duplicate_entry_of_a_petition_that_never_committed_is_dropped(intake: Intake) -> None:
    sub = domain.validate_submission(_body("下水道堵了", PHONE), intake.parts.config.categories)
    key = intake.service.codes.duplicate_key(PHONE, "drainage")
    ghost = {"petition_id": "JZ20990101000001", "norm": domain._normalized(domain.masked_content(sub)), "at": START}
    intake.service.duplicates.commit(intake.service.duplicates.load(key), {"recent": [{**ghost, "duplicate_of": None}]})
    intake.clock.advance(timedelta(minutes=5))
    assert intake.submit("下水道堵了")["duplicate_of"] is None
    recent = intake.service.duplicates.load(key).state["recent"]
    assert [e["petition_id"] for e in recent] == ["JZ20260302000001"]


# ---- reading


def test_the_submitter_reads_with_the_tracking_code_and_no_one_else_does(intake: Intake) -> None:
    receipt = intake.submit()
    pid, code = receipt["petition_id"], receipt["tracking_code"]
    view = intake.handlers["read"](pid, code)
    assert view["status"] == "submitted" and view["timeline"][0]["event"] == "petition.submitted"
    for wrong in (None, "", "x" * 16, "Fabc.def"):
        with pytest.raises(NotFound):
            intake.handlers["read"](pid, wrong)
    with pytest.raises(NotFound):
        intake.handlers["read"]("JZ20260302000099", code)


def test_staff_read_the_contact_details_only_in_their_area(intake: Intake) -> None:
    pid = intake.submit(address="幸福路12号")["petition_id"]
    intake.routing("petition.assigned", pid)
    leader = Staff("s1", "grid_leader", grid_ids=frozenset({GRID}))
    view = intake.handlers["read_as_staff"](pid, leader)
    assert view["citizen"] == {"name": "刘洋", "phone": PHONE}
    assert view["location"]["address"] == "幸福路12号"
    assert view["assignment"]["grid_id"] == GRID
    with pytest.raises(NotFound):
        intake.handlers["read_as_staff"](pid, Staff("s2", "grid_leader", grid_ids=frozenset({"T09V01G001"})))
    with pytest.raises(NotFound):
        intake.handlers["read_as_staff"]("JZ20260302000099", Staff("s3", "county_dispatcher"))


# ---- the submitter's actions


def test_feedback_after_a_reply_once_per_reply(intake: Intake) -> None:
    receipt = intake.submit()
    pid, code = receipt["petition_id"], receipt["tracking_code"]
    with pytest.raises(domain.ActionRefused) as refused:
        intake.handlers["feedback"](pid, code, "satisfied", None)
    assert refused.value.code == "not_replied"

    _replied(intake, pid)
    view = intake.handlers["feedback"](pid, code, "dissatisfied", "还是堵，打13812349999")
    assert view["feedback"]["satisfaction"] == "dissatisfied" and view["feedback"]["round"] == 1
    assert "13812349999" not in view["feedback"]["comment"]
    event = intake.published.of(pid)[-1]
    assert event.type == "petition.feedback_received"
    assert event.data == {
        "petition_id": pid,
        "satisfaction": "dissatisfied",
        "received_at": format_time(START),
        "round": 1,
    }
    with pytest.raises(domain.ActionRefused) as again:
        intake.handlers["feedback"](pid, code, "satisfied", None)
    assert again.value.code == "feedback_given"

    intake.routing("petition.reopened", pid)
    intake.routing("petition.replied", pid)  # a second reply may be rated again
    assert intake.handlers["feedback"](pid, code, "satisfied", None)["feedback"]["round"] == 2


def test_withdraw_ends_the_petition_and_notes_it_for_retention(intake: Intake) -> None:
    receipt = intake.submit()
    pid, code = receipt["petition_id"], receipt["tracking_code"]
    with pytest.raises(NotFound):
        intake.handlers["withdraw"](pid, "wrong-code-0000")
    intake.clock.advance(timedelta(minutes=10))
    view = intake.handlers["withdraw"](pid, code)
    assert view["status"] == "withdrawn"
    assert intake.published_types(pid) == ["petition.submitted", "petition.withdrawn"]
    assert intake.published.of(pid)[-1].data == {"petition_id": pid, "withdrawn_at": format_time(intake.clock())}
    assert _noted(intake) == {pid: intake.clock()}
    with pytest.raises(domain.ActionRefused) as refused:
        intake.handlers["withdraw"](pid, code)
    assert refused.value.code == "too_late"


def test_withdraw_is_refused_after_a_reply(intake: Intake) -> None:
    receipt = intake.submit()
    _replied(intake, receipt["petition_id"])
    with pytest.raises(domain.ActionRefused) as refused:
        intake.handlers["withdraw"](receipt["petition_id"], receipt["tracking_code"])
    assert refused.value.code == "too_late"


def test_a_lost_race_is_retried_on_fresh_state(intake: Intake, monkeypatch: pytest.MonkeyPatch) -> None:
    receipt = intake.submit()
    pid = receipt["petition_id"]
    other = AggregateStore(intake.db, "petitions")  # another instance, following routing meanwhile
    event = _routing_event("petition.assigned", pid, intake.clock())
    commit = intake.service.petitions.commit
    raced = []

    def racing_commit(loaded: Any, state: dict[str, Any], events: Any = ()) -> Any:
        if not raced:
            raced.append(True)
            current = other.load(pid)
            other.commit(current, domain.apply_lifecycle(current.state, event.type, event.data, event.id, event.time))
        return commit(loaded, state, events)

    monkeypatch.setattr(intake.service.petitions, "commit", racing_commit)
    assert intake.handlers["withdraw"](pid, receipt["tracking_code"])["status"] == "withdrawn"
    state = intake.state(pid)
    assert [e["event"] for e in state["timeline"]] == ["petition.submitted", "petition.assigned", "petition.withdrawn"]
    assert intake.published_types(pid).count("petition.withdrawn") == 1


def test_a_petition_that_keeps_losing_races_answers_conflict(intake: Intake, monkeypatch: pytest.MonkeyPatch) -> None:
    receipt = intake.submit()

    def always_lost(loaded: Any, state: dict[str, Any], events: Any = ()) -> Any:
        raise Conflict(loaded.aggregate_id)

    monkeypatch.setattr(intake.service.petitions, "commit", always_lost)
    with pytest.raises(Conflict):
        intake.handlers["withdraw"](receipt["petition_id"], receipt["tracking_code"])


# ---- joining, and "near me"


def test_a_citizen_joins_an_open_petition_once_and_follows_it(intake: Intake) -> None:
    pid = intake.submit()["petition_id"]
    follower = domain.Follower("王芳", "13912345678", "web", "我家也堵了，电话13912345678")
    joined = intake.handlers["join"](pid, follower)
    assert joined["affected_citizens"] == 2 and joined["tracking_code"].startswith("F")
    assert intake.handlers["join"](pid, follower) == joined  # the same phone again: the same follower
    assert intake.state(pid)["affected_citizens"] == 2
    [doc] = list(intake.db["followers"].find({}))
    assert "13912345678" not in doc["comment"]
    assert intake.service.contacts.get(doc["contact_id"])["phone"] == "13912345678"

    _replied(intake, pid)
    view = intake.handlers["read"](pid, joined["tracking_code"])
    assert view["reply"] == {"resolution": "resolved", "replied_at": view["reply"]["replied_at"]}  # no summary
    assert "feedback" not in view and "duplicate_of" not in view
    with pytest.raises(NotFound):  # a follower reads; only the submitter acts
        intake.handlers["feedback"](pid, joined["tracking_code"], "satisfied", None)


def test_joining_an_absent_or_ended_petition_is_not_found_alike(intake: Intake) -> None:
    follower = domain.Follower("王芳", "13912345678", "web", None)
    for pid in ("JZ20260302000099", "not-a-number"):
        with pytest.raises(NotFound):
            intake.handlers["join"](pid, follower)
    pid = intake.submit()["petition_id"]
    intake.routing("petition.closed", pid)
    with pytest.raises(NotFound):
        intake.handlers["join"](pid, follower)
    assert intake.db["followers"].count_documents({}) == 0


def test_a_join_counted_nowhere_leaves_no_follower_behind(intake: Intake, monkeypatch: pytest.MonkeyPatch) -> None:
    """The petition closes between the open check and the count (another instance applies routing's
    close): the follower and their details go."""
    pid = intake.submit()["petition_id"]
    other = bootstrap(Settings(service="intake"), db=intake.db, publisher=intake.published, clock=intake.clock)
    followers = intake.service.followers
    insert_one = followers.insert_one

    def closing_meanwhile(doc: dict[str, Any]) -> Any:
        result = insert_one(doc)
        other.handlers["petition.closed"](_routing_event("petition.closed", pid, intake.clock()), _meta())
        return result

    monkeypatch.setattr(followers, "insert_one", closing_meanwhile)
    with pytest.raises(NotFound):
        intake.handlers["join"](pid, domain.Follower("王芳", "13912345678", "web", None))
    assert intake.db["followers"].count_documents({}) == 0
    assert intake.db["contacts"].count_documents({}) == 1  # the submitter's only


def test_a_rating_reads_nothing_before_its_commit(intake: Intake) -> None:
    """Issue #23: the code is checked and the rating decided on the state this instance remembers (the
    commit checks it is the newest); the one petition read left is none."""
    receipt = intake.submit()
    pid, code = receipt["petition_id"], receipt["tracking_code"]
    _replied(intake, pid)
    intake.db.commands.clear()
    intake.handlers["feedback"](pid, code, "satisfied", None)
    assert intake.db.commands[("find", "petitions_commits")] == 0
    assert intake.db.commands[("insert", "petitions_commits")] == 1


def test_a_rating_refused_on_a_stale_remembered_state_is_decided_again_on_the_newest(intake: Intake) -> None:
    receipt = intake.submit()
    pid, code = receipt["petition_id"], receipt["tracking_code"]
    other = bootstrap(Settings(service="intake"), db=intake.db, publisher=intake.published, clock=intake.clock)
    for event_type in ("petition.assigned", "petition.replied"):  # applied by another instance
        other.handlers[event_type](_routing_event(event_type, pid, intake.clock()), _meta())
    # this instance remembers the petition as submitted, with nothing to rate
    view = intake.handlers["feedback"](pid, code, "satisfied", None)
    assert view["feedback"]["satisfaction"] == "satisfied"
    assert intake.published_types(pid)[-1] == "petition.feedback_received"


def test_nearby_finds_open_petitions_of_the_category_in_bands(intake: Intake) -> None:
    near = intake.submit(lat=36.2000, lon=120.0500)["petition_id"]
    intake.submit("另一处下水道堵了", phone="13912340003", lat=36.2100, lon=120.0500)  # ~1.1 km north
    ended = intake.submit("第三处下水道堵了", phone="13912340004", lat=36.2002, lon=120.0501)["petition_id"]
    intake.routing("petition.closed", ended)
    assert intake.db["open_points"].find_one({"_id": ended}) is None
    found = intake.handlers["nearby"](36.2001, 120.0501, "drainage", 500)
    assert [f["petition_id"] for f in found] == [near]
    assert found[0]["distance_m"] == 100
    assert intake.handlers["nearby"](36.2001, 120.0501, "roads", 500) == []
    assert len(intake.handlers["nearby"](36.2001, 120.0501, "drainage", 2000)) == 2


# ---- following routing


@pytest.mark.parametrize(
    ("events", "status"),
    [
        (["petition.assigned"], "assigned"),
        (["petition.assigned", "petition.transferred"], "assigned"),
        (["petition.assigned", "petition.contacted"], "in_progress"),
        (["petition.assigned", "petition.sla_paused", "petition.sla_resumed"], "assigned"),
        (["petition.assigned", "petition.replied"], "replied"),
        (["petition.assigned", "petition.replied", "petition.reopened"], "reopened"),
        (["petition.assigned", "petition.replied", "petition.closed"], "closed"),
    ],
)
def test_routing_events_move_the_status_a_citizen_sees(intake: Intake, events: list[str], status: str) -> None:
    pid = intake.submit()["petition_id"]
    for event_type in events:
        intake.routing(event_type, pid)
    state = intake.state(pid)
    assert state["status"] == status
    assert [e["event"] for e in state["timeline"]] == ["petition.submitted", *events]
    assert intake.published_types(pid) == ["petition.submitted"]  # intake publishes nothing for them


def test_every_routing_event_type_has_a_handler(intake: Intake) -> None:
    assert set(event_handlers(intake.handlers)) == set(EVENT_TYPES[ROUTING])
    assert batch_handler(intake.handlers) == intake.handlers[BATCH]


def test_a_transfer_moves_the_petition_to_another_area(intake: Intake) -> None:
    pid = intake.submit()["petition_id"]
    intake.routing("petition.assigned", pid)
    intake.routing("petition.transferred", pid)
    state = intake.state(pid)
    assert state["assignment"]["grid_id"] == "T02V01G001" and state["town_id"] == "T02"


def test_a_redelivered_event_is_applied_once(intake: Intake) -> None:
    pid = intake.submit()["petition_id"]
    event = intake.routing("petition.replied", pid)
    intake.handlers[event.type](event, _meta())
    intake.handlers[BATCH]([(event, _meta())])
    state = intake.state(pid)
    assert state["reply_round"] == 1
    assert [e["event"] for e in state["timeline"]].count("petition.replied") == 1


def test_closure_ends_the_petition_for_retention_and_near_me(intake: Intake) -> None:
    pid = intake.submit(lat=36.2, lon=120.05)["petition_id"]
    intake.clock.advance(timedelta(days=3))
    intake.routing("petition.closed", pid)
    assert intake.state(pid)["status"] == "closed"
    assert _noted(intake) == {pid: intake.clock()}
    assert intake.db["open_points"].find_one({"_id": pid}) is None


def test_a_withdrawn_petition_stays_withdrawn_whatever_routing_says(intake: Intake) -> None:
    receipt = intake.submit()
    pid = receipt["petition_id"]
    intake.handlers["withdraw"](pid, receipt["tracking_code"])
    for event_type in ("petition.assigned", "petition.replied", "petition.closed"):
        intake.routing(event_type, pid)
    state = intake.state(pid)
    assert state["status"] == "withdrawn" and "reply" not in state


def test_an_event_for_an_unknown_petition_is_refused(intake: Intake) -> None:
    event = _routing_event("petition.assigned", "JZ20260302000099", START)
    with pytest.raises(ValueError, match="unknown petition"):
        intake.handlers[event.type](event, _meta())
    with pytest.raises(ValueError, match="unknown petition"):
        intake.handlers[BATCH]([(event, _meta())])


def test_a_batch_applies_each_petitions_events_in_order(intake: Intake) -> None:
    first = intake.submit(lat=36.2, lon=120.05)["petition_id"]
    second = intake.submit("路灯坏了", phone="13912340003")["petition_id"]
    batch: list[tuple[Event, MessageMeta]] = []
    for offset, (event_type, pid) in enumerate(
        [
            ("petition.assigned", first),
            ("petition.assigned", second),
            ("petition.contacted", second),
            ("petition.replied", first),
            ("petition.closed", first),
        ]
    ):
        batch.append((_routing_event(event_type, pid, START), _meta(offset)))
    intake.handlers[BATCH](batch)
    assert intake.state(first)["status"] == "closed"
    assert intake.state(second)["status"] == "in_progress"
    assert intake.db["open_points"].find_one({"_id": first}) is None
    assert set(_noted(intake)) == {first}


def test_a_batch_that_ends_several_petitions_notes_them_for_retention_in_one_write(intake: Intake) -> None:
    pids = [intake.submit(f"第{n}号路灯坏了", phone=f"1391234{n:04d}")["petition_id"] for n in range(5)]
    intake.db.commands.clear()
    intake.handlers[BATCH]([(_routing_event("petition.closed", pid, START), _meta(n)) for n, pid in enumerate(pids)])
    # the queue's first write makes sure of the cursor, then claims the hour's first number: no read
    assert intake.db.commands[("insert", "retention_queue")] == 2
    assert intake.db.commands[("find", "retention_queue")] == 0
    more = [intake.submit(f"第{n}号井盖丢了", phone=f"1391235{n:04d}")["petition_id"] for n in range(3)]
    intake.db.commands.clear()
    intake.handlers[BATCH]([(_routing_event("petition.closed", pid, START), _meta(n)) for n, pid in enumerate(more)])
    assert intake.db.commands[("insert", "retention_queue")] == 1  # the next numbers: one insert, no read
    assert intake.db.commands[("find", "retention_queue")] == 0
    assert _noted(intake) == dict.fromkeys(pids + more, START)


def test_a_batch_commit_that_lost_a_race_is_replayed_event_by_event(intake: Intake) -> None:
    pid = intake.submit()["petition_id"]  # the service's store now remembers version 1
    other = AggregateStore(intake.db, "petitions")  # another instance commits version 2 meanwhile
    assigned = _routing_event("petition.assigned", pid, START)
    current = other.load(pid)
    other.commit(current, domain.apply_lifecycle(current.state, assigned.type, assigned.data, assigned.id, START))
    replied = _routing_event("petition.replied", pid, START)
    intake.handlers[BATCH]([(assigned, _meta(0)), (replied, _meta(1))])
    state = intake.state(pid)
    assert state["status"] == "replied"
    assert [e["event"] for e in state["timeline"]] == ["petition.submitted", "petition.assigned", "petition.replied"]


# ---- retention


def test_the_retention_job_erases_the_details_of_petitions_ended_long_enough_ago(intake: Intake) -> None:
    receipt = intake.submit(address="幸福路12号")
    pid = receipt["petition_id"]
    joined = intake.handlers["join"](pid, domain.Follower("王芳", "13912345678", "web", "同样的问题"))
    _replied(intake, pid)
    intake.handlers["feedback"](pid, receipt["tracking_code"], "satisfied", "谢谢")
    intake.routing("petition.closed", pid)
    erased: list[dict[str, Any]] = []
    intake.parts.retention.on_erased = erased.append
    published = len(intake.published.events)

    intake.clock.advance(intake.parts.config.retention - timedelta(days=1))
    assert intake.parts.retention.erase_due() == 0
    intake.clock.advance(timedelta(days=2))
    assert intake.parts.retention.erase_due() == 1

    state = intake.state(pid)
    assert state["citizen"] == {"erased_at": format_time(intake.clock())}
    assert state["feedback"]["comment"] is None and state["feedback"]["satisfaction"] == "satisfied"
    assert intake.db["contacts"].count_documents({}) == 0
    assert intake.db["followers"].count_documents({}) == 0
    assert _noted(intake) == {}
    assert intake.db["erasures"].find_one({"_id": pid})["contacts_erased"] == 2
    assert [e["petition_id"] for e in erased] == [pid]
    assert len(intake.published.events) == published  # statistics keep every figure: nothing is published
    staff = intake.handlers["read_as_staff"](pid, Staff("s", "county_dispatcher"))
    assert staff["citizen"] == {"name": "", "phone": "", "erased_at": state["citizen"]["erased_at"]}
    with pytest.raises(NotFound):  # the follower's credential went with them
        intake.handlers["read"](pid, joined["tracking_code"])
    assert intake.parts.retention.erase_due() == 0


def test_a_note_in_the_collection_before_the_queue_is_erased_or_queued_and_the_collection_emptied(
    intake: Intake,
) -> None:
    ended = [intake.submit(f"第{n}号路灯坏了", phone=f"1391234{n:04d}")["petition_id"] for n in range(3)]
    for pid in ended:
        intake.routing("petition.closed", pid)
    intake.db["retention_queue"].delete_many({})  # as in a database from before the queue
    intake.db["retention"].insert_many([{"_id": pid, "ended_at": START} for pid in ended[:2]])
    later = START + timedelta(days=10)
    intake.db["retention"].insert_one({"_id": ended[2], "ended_at": later})
    open_pid = intake.submit("井盖丢了", phone="13912349999")["petition_id"]
    intake.db["retention"].insert_one({"_id": open_pid, "ended_at": START})  # its ending commit failed
    intake.clock.advance(intake.parts.config.retention + timedelta(days=1))
    assert intake.parts.retention.erase_due() == 2
    assert intake.db["retention"].count_documents({}) == 0
    assert set(_noted(intake)) == {ended[2]}  # not due yet: queued under when it ended
    assert intake.service.contacts.get(intake.state(open_pid)["citizen"]["contact_id"]) is not None
    intake.clock.advance(timedelta(days=10))
    assert intake.parts.retention.erase_due() == 1
    assert "erased_at" in intake.state(ended[2])["citizen"] and _noted(intake) == {}


def test_a_queued_note_whose_petition_did_not_end_is_passed_over(intake: Intake) -> None:
    pid = intake.submit()["petition_id"]
    ended = {"status": "closed", "petition_id": pid, "timeline": [{"at": format_time(START)}]}
    intake.service.notes.note_if_ended({"status": "replied"}, ended)  # and then its commit failed
    assert set(_noted(intake)) == {pid}
    intake.clock.advance(intake.parts.config.retention + timedelta(days=1))
    assert intake.parts.retention.erase_due() == 0
    assert _noted(intake) == {}
    assert intake.service.contacts.get(intake.state(pid)["citizen"]["contact_id"]) is not None


def test_a_petition_noted_twice_is_erased_and_recorded_once(intake: Intake) -> None:
    pid = intake.submit()["petition_id"]
    closed = intake.routing("petition.closed", pid)
    intake.service.notes.note_many([({"status": "replied"}, intake.state(pid))])  # a retried change notes it again
    assert len(intake.service.notes.queue.waiting()) == 2
    erased: list[dict[str, Any]] = []
    intake.parts.retention.on_erased = erased.append
    intake.clock.advance(intake.parts.config.retention + timedelta(days=1))
    assert intake.parts.retention.erase_due() == 1
    assert [e["petition_id"] for e in erased] == [pid] and closed.type == "petition.closed"


def test_a_failed_erasure_is_tried_again_by_a_later_run(intake: Intake) -> None:
    pid = intake.submit()["petition_id"]
    intake.routing("petition.closed", pid)
    retention = intake.parts.retention
    calls: list[str] = []

    def fail_once(record: dict[str, Any]) -> None:
        calls.append(record["petition_id"])
        if len(calls) == 1:
            raise RuntimeError("audit trail away")

    retention.on_erased = fail_once
    intake.clock.advance(intake.parts.config.retention + timedelta(days=1))
    assert retention.erase_due() == 0
    assert set(_noted(intake)) == {pid}  # queued again, under the next day (the queue's slot)
    assert retention.erase_due() == 0  # not before that day has passed
    intake.clock.advance(timedelta(days=2))
    assert retention.erase_due() == 1
    assert calls == [pid, pid] and _noted(intake) == {}


def test_every_published_event_is_the_contracts() -> None:
    """The stores bootstrap builds validate events against the contract: a test on the fakes that
    publishes an event the contract refuses fails the way production would."""
    bad = Event(type="petition.withdrawn", source="petitions/intake", subject="x", data={"petition_id": "x"})
    with pytest.raises(SchemaViolation):
        Intake().service.petitions.check([bad])


def test_a_submission_costs_six_database_commands_and_reads_nothing(intake):
    """Issue #23's budget, held on the fakes (which count as a real client does): a new petition
    number has nothing stored under it, so it is not read, and a phone's first petition of a category
    has no duplicate index to read (its commit's unique insert checks). Writes: the Idempotency-Key's
    claim, the index, the contact details, the commit and its outbox marker, and the marker's delete
    once published."""
    intake.submit(phone="13800000001")  # the instance's first block of petition numbers is claimed
    intake.db.commands.clear()
    intake.submit(phone="13800000002", key="k-1")
    assert intake.db.commands == {
        ("insert", "idempotency"): 1,
        ("insert", "duplicates_commits"): 1,
        ("insert", "contacts"): 1,
        ("insert", "outbox"): 1,
        ("insert", "petitions_commits"): 1,
        ("delete", "outbox"): 1,
    }
    intake.db.commands.clear()
    intake.submit(phone="13800000002", key="k-1")  # the same request again: replayed, read back
    assert intake.db.commands[("find", "petitions_commits")] >= 1
    assert ("insert", "petitions_commits") not in intake.db.commands
