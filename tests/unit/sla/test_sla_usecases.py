"""sla's use cases on the fakes (petition_common.fakes): built by `bootstrap` as the app builds them, with
an in-memory database, a recording publisher and a manual clock, so they run in milliseconds.

Every event type the consumer takes, the staff API's two reads, the scanner's notices (once each, in
escalation order), the calendar's re-derivation, the projection's repairs, and the errors: a petition
not found (or outside the reader's area), an event the rules cannot use, a lost race retried (and one
that keeps being lost), a redelivered event. The same guarantees on the real FerretDB, with two
instances racing, are in tests/integration/test_sla_service.py.
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import TopicPartition
from prometheus_client import CollectorRegistry

from petition_common.auth import Staff
from petition_common.config import REPO_ROOT, Settings
from petition_common.consumer import MessageMeta
from petition_common.envelope import Event
from petition_common.fakes import GroupMember, ManualClock, MemoryDatabase, RecordingPublisher
from petition_common.ownership import Ownership, partition_of
from petition_common.store import Conflict, commit_id
from petition_kernel.calendar import WorkCalendar, load_year_overrides
from petition_kernel.sla.record import HANDLED_EVENTS, EventDataError, SlaRecord
from petition_kernel.times import format_time, parse_time
from services.sla.bootstrap import SlaParts, bootstrap
from services.sla.domain.notices import notice_id
from services.sla.domain.overdue_list import OverdueFilter
from services.sla.handlers import event_handlers
from services.sla.reads import ClockReader
from services.sla.service import NotFound, SlaService

T0 = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)  # Monday 09:00 in Beijing
COUNTY = Staff("D1", "county_dispatcher")
LEADER = Staff("L1", "grid_leader", grid_ids=("T01V01G001",))
OTHER_LEADER = Staff("L2", "grid_leader", grid_ids=("T02V01G001",))


@dataclass
class Sla:
    """One instance built by bootstrap on the fakes, and what it writes to."""

    parts: SlaParts
    db: MemoryDatabase
    published: RecordingPublisher
    clock: ManualClock
    registry: CollectorRegistry

    @property
    def service(self) -> SlaService:
        return self.parts.service

    def handle(self, name: str, *args: Any) -> Any:
        return self.parts.handlers[name](*args)

    def consume(self, *events: Event) -> None:
        """As the consumer loop does with one message at a time: through the table's event entries.
        The clock moves to each event's time first (if later): the service sees events as they happen."""
        table = event_handlers(self.parts.handlers)
        for e in events:
            happened = [parse_time(v) for k, v in e.data.items() if k == "at" or k.endswith("_at")]
            self.clock.now = max([self.clock.now, *happened])
            table[e.type](e, None)

    def types(self) -> list[str]:
        return self.published.types()

    def open_doc(self, pid: str) -> dict[str, Any] | None:
        return self.db["open_clocks"].find_one({"_id": pid})

    def record(self, pid: str) -> SlaRecord:
        state = self.parts.clocks.load(pid).state
        assert state is not None
        return SlaRecord.from_dict(state)


def build(
    db: MemoryDatabase, clock: ManualClock, settings: Settings | None = None, ownership: Ownership | None = None
) -> Sla:
    published, registry = RecordingPublisher(), CollectorRegistry()
    parts = bootstrap(
        settings or Settings(service="sla"),
        db=db,
        publisher=published,
        clock=clock,
        registry=registry,
        ownership=ownership,
    )
    return Sla(parts, db, published, clock, registry)


@pytest.fixture
def sla() -> Sla:
    return build(MemoryDatabase(), ManualClock(T0))


def iso(t: datetime) -> str:
    return format_time(t)


def event(event_type: str, pid: str, eid: str, **data: Any) -> Event:
    return Event(type=event_type, source="test", subject=pid, data={"petition_id": pid, **data}, id=eid)


def submitted(pid: str, at: datetime = T0, grid: str = "T01V01G001", category: str = "roads") -> Event:
    return event(
        "petition.submitted",
        pid,
        f"{pid}-sub",
        channel="hotline",
        category=category,
        content="路灯不亮",
        location={"town": "城关镇", "village": "东村", "grid_id": grid},
        citizen={"name_masked": "刘*", "phone_masked": "138****1234"},
        submitted_at=iso(at),
    )


def h(n: float) -> str:
    return iso(T0 + timedelta(hours=n))


ROUTED = {"village": "东村", "department": "county_transport_bureau", "reason": "grid"}
ASSIGNEE = {"staff_id": "S1", "role": "grid_leader"}


def assigned(pid: str, at: float, grid: str = "T01V01G001", eid: str = "a") -> Event:
    return event(
        "petition.assigned",
        pid,
        f"{pid}-{eid}",
        grid_id=grid,
        town="城关镇",
        assignee=ASSIGNEE,
        assigned_at=h(at),
        **ROUTED,
    )


def transferred(pid: str, at: float, grid: str) -> Event:
    return event(
        "petition.transferred",
        pid,
        f"{pid}-t",
        grid_id=grid,
        town="城关镇",
        assignee=ASSIGNEE,
        assigned_at=h(at),
        **ROUTED,
    )


def contacted(pid: str, at: float, eid: str = "c") -> Event:
    return event("petition.contacted", pid, f"{pid}-{eid}", staff_id="S1", contacted_at=h(at))


def replied(pid: str, at: float, eid: str = "rep") -> Event:
    return event(
        "petition.replied", pid, f"{pid}-{eid}", staff_id="S1", replied_at=h(at), resolution="resolved", summary="好"
    )


def closed(pid: str, at: float, eid: str = "cl") -> Event:
    return event("petition.closed", pid, f"{pid}-{eid}", closed_at=h(at), closed_by="feedback")


def reopened(pid: str, at: float) -> Event:
    return event("petition.reopened", pid, f"{pid}-ro", reopened_at=h(at), reason="不满意")


def withdrawn(pid: str, at: float) -> Event:
    return event("petition.withdrawn", pid, f"{pid}-w", withdrawn_at=h(at), reason="已解决")


def paused(pid: str, at: float) -> Event:
    return event("petition.sla_paused", pid, f"{pid}-p", staff_id="S1", at=h(at), reason="third_party")


def resumed(pid: str, at: float) -> Event:
    return event("petition.sla_resumed", pid, f"{pid}-r", staff_id="S1", at=h(at))


def notice_commits(sla: Sla) -> list[dict[str, Any]]:
    return [d for d in sla.db["notices_commits"].find({}) if not d.get("void")]


def metric(sla: Sla, name: str, **labels: str) -> float:
    return sla.registry.get_sample_value(name, labels) or 0.0


# ---- the table ---------------------------------------------------------------------------------


def test_the_table_routes_every_consumed_event_type_and_each_command(sla: Sla) -> None:
    table = sla.parts.handlers
    assert set(event_handlers(table)) == HANDLED_EVENTS
    assert {"petition", "petitions", "overdue", "batch", "scan", "audit", "rebuild"} <= set(table)
    assert set(table) - HANDLED_EVENTS == {"petition", "petitions", "overdue", "batch", "scan", "audit", "rebuild"}


# ---- following the petitions' events -------------------------------------------------------------


def test_every_event_type_adds_its_fact_and_the_projection_follows(sla: Sla) -> None:
    pid = "JZ20260309000001"
    sla.consume(submitted(pid))
    doc = sla.open_doc(pid)
    assert doc is not None and doc["seq"] == 1 and doc["grid_id"] == "T01V01G001"
    assert [(c["clock"], c["deadline"]) for c in doc["clocks"]] == [
        ("contact", h(6)),  # 6 calendar hours
        ("reply", iso(datetime(2026, 3, 16, 16, 0, tzinfo=UTC))),  # 24:00 Beijing, Monday: the 5th working day
    ]
    assert doc["recheck_at"] == h(6 * 0.8)  # the contact warning at 80 %

    sla.consume(assigned(pid, 0.1), transferred(pid, 1, "T01V02G001"))
    assert sla.record(pid).grid_id == "T01V02G001"
    assert sla.open_doc(pid)["grid_id"] == "T01V02G001"  # type: ignore[index]

    sla.consume(contacted(pid, 2))
    contact = sla.handle("petition", pid, COUNTY)["clocks"][0]
    assert (contact["outcome"], contact["on_time"], contact["met_at"]) == ("met", True, h(2))
    assert metric(sla, "petitions_sla_clocks_met_total", clock="contact", on_time="true") == 1

    sla.consume(paused(pid, 24))
    assert sla.handle("petition", pid, COUNTY)["pause_reason"] == "third_party"
    assert sla.open_doc(pid)["clocks"][-1]["paused"] is True  # type: ignore[index]
    sla.consume(resumed(pid, 48))
    view = sla.handle("petition", pid, COUNTY)
    assert view["paused"] is False and [p["kind"] for p in view["pauses"]] == ["pause", "resume"]

    sla.consume(replied(pid, 50))
    assert metric(sla, "petitions_sla_clocks_met_total", clock="reply", on_time="true") == 1
    assert sla.open_doc(pid) is None  # both clocks met in time: nothing left to watch

    sla.consume(closed(pid, 60), reopened(pid, 61))
    reopened_doc = sla.open_doc(pid)
    assert reopened_doc is not None
    assert [(c["clock"], c["generation"]) for c in reopened_doc["clocks"]] == [("reply", 1)]  # a fresh reply clock
    assert reopened_doc["clocks"][0]["started_at"] == h(61)

    sla.consume(withdrawn(pid, 62))
    assert sla.open_doc(pid) is None  # withdrawal stops every clock
    last = sla.handle("petition", pid, COUNTY)["clocks"][-1]
    assert (last["generation"], last["outcome"], last["ended_at"]) == (1, "stopped", h(62))
    assert sla.parts.clocks.load(pid).seq == 10  # one commit per event
    assert sla.types() == []  # following the events publishes nothing


def test_events_out_of_order_make_the_same_record(sla: Sla) -> None:
    pid = "JZ20260309000002"
    sla.consume(contacted(pid, 1))  # before the submission is known: a fact, but no clock yet
    assert sla.open_doc(pid) is None
    sla.consume(submitted(pid))
    contact = sla.handle("petition", pid, COUNTY)["clocks"][0]
    assert contact["outcome"] == "met" and contact["met_at"] == h(1)
    other = build(MemoryDatabase(), ManualClock(T0))
    other.consume(submitted(pid), contacted(pid, 1))
    assert sla.record(pid) == other.record(pid)


def test_a_redelivered_event_changes_nothing_but_restores_a_lost_projection(sla: Sla) -> None:
    pid = "JZ20260309000003"
    sla.consume(submitted(pid), contacted(pid, 1))
    good = sla.open_doc(pid)
    sla.db["open_clocks"].delete_one({"_id": pid})  # a crash cost the projection after the commit
    sla.consume(contacted(pid, 1))  # redelivered
    assert sla.parts.clocks.load(pid).seq == 2  # no new commit
    assert sla.open_doc(pid) == good
    assert metric(sla, "petitions_sla_clocks_met_total", clock="contact", on_time="true") == 1  # counted once


def test_an_event_the_rules_cannot_use_is_refused_and_nothing_written(sla: Sla) -> None:
    pid = "JZ20260309000004"
    bad = event("petition.contacted", pid, f"{pid}-c", staff_id="S1")  # no contacted_at
    with pytest.raises(EventDataError, match="contacted_at"):
        sla.consume(bad)  # the consumer dead-letters it after its retries
    assert sla.parts.clocks.load(pid).seq == 0 and sla.open_doc(pid) is None


def test_a_lost_race_is_retried_on_the_newer_version() -> None:
    db, clock = MemoryDatabase(), ManualClock(T0)
    a, b = build(db, clock), build(db, clock)  # two instances over one database
    pid = "JZ20260309000005"
    a.consume(submitted(pid))  # a remembers version 1
    b.consume(assigned(pid, 0.1))  # b commits version 2
    a.consume(contacted(pid, 1))  # a's commit on version 1 loses, and is retried on version 2
    assert a.parts.clocks.load(pid).seq == 3
    record = a.record(pid)
    assert record.grid_id == "T01V01G001" and record.contacted_at == T0 + timedelta(hours=1)
    assert a.open_doc(pid)["seq"] == 3  # type: ignore[index]


def test_a_race_lost_every_time_gives_up_with_conflict(sla: Sla, monkeypatch: pytest.MonkeyPatch) -> None:
    pid = "JZ20260309000006"
    attempts = []

    def always_lose(*args: Any, **kwargs: Any) -> Any:
        attempts.append(1)
        raise Conflict(pid)

    monkeypatch.setattr(sla.parts.clocks, "commit", always_lose)
    with pytest.raises(Conflict):
        sla.consume(submitted(pid))  # the consumer loop retries, then stops and lets Kafka redeliver
    assert len(attempts) == 8


def test_a_batch_commits_once_per_petition_and_replays_a_lost_one() -> None:
    db, clock = MemoryDatabase(), ManualClock(T0)
    a, b = build(db, clock), build(db, clock)
    p1, p2, p3 = "JZ20260309000011", "JZ20260309000012", "JZ20260309000013"
    a.consume(submitted(p3))  # a remembers p3 at version 1 ...
    b.consume(contacted(p3, 0.5))  # ... and b moves it to version 2
    meta = MessageMeta("petitions.routing", 0, 0, None)
    clock.now = T0 + timedelta(hours=3)
    batch = [submitted(p1), contacted(p1, 1), submitted(p2), replied(p3, 2), submitted(p2)]
    a.handle("batch", [(e, meta) for e in batch])
    assert a.parts.clocks.load(p1).seq == 1  # both events in one commit
    assert a.parts.clocks.load(p2).seq == 1  # the duplicate in the batch changed nothing
    assert a.parts.clocks.load(p3).seq == 3  # lost on version 1, replayed on version 2
    assert a.record(p3).contacted_at is not None and a.record(p3).replied_at
    assert a.open_doc(p1)["seq"] == 1 and a.open_doc(p2)["seq"] == 1  # type: ignore[index]
    assert a.open_doc(p3) is None  # contacted and replied in time
    a.handle("batch", [(e, meta) for e in batch])  # the whole batch redelivered
    assert [a.parts.clocks.load(p).seq for p in (p1, p2, p3)] == [1, 1, 3]


# ---- the scanner -------------------------------------------------------------------------------


def test_notices_are_emitted_once_each_in_escalation_order(sla: Sla) -> None:
    pid = "JZ20260309000021"
    sla.consume(submitted(pid))
    assert sla.handle("scan", 0).emitted == []  # nothing due yet
    sla.clock.advance(timedelta(hours=5))  # past the contact warning (4h48m), before the deadline
    assert sla.service.scan().emitted == [notice_id(pid, "contact.0:warning:1")]
    [warning] = sla.published.events
    assert (warning.type, warning.data["remaining_seconds"], warning.data["deadline"]) == ("sla.warning", 3600, h(6))
    assert warning.source == "petitions/sla" and warning.subject == pid
    assert sla.service.scan().emitted == []  # nothing twice
    sla.clock.advance(timedelta(hours=2))  # 1 h past the deadline: level 1
    assert sla.service.scan().emitted == [notice_id(pid, "contact.0:breached:1")]
    sla.clock.advance(timedelta(days=3))  # "down" for days: levels 2 and 3 at once, true overdue times
    assert sorted(sla.service.scan().emitted) == [notice_id(pid, f"contact.0:breached:{n}") for n in (2, 3)]
    breaches = [e for e in sla.published.events if e.type == "sla.breached"]
    assert [e.data["level"] for e in breaches] == [1, 2, 3]
    overdue = int((sla.clock() - (T0 + timedelta(hours=6))).total_seconds())
    assert [e.data["overdue_seconds"] for e in breaches] == [3600, overdue, overdue]
    assert breaches[2].data["due_at"] == h(6 + 72)
    assert sla.service.scan().emitted == []
    # the record remembers them, one notice aggregate each, one event each, ids derived from the notice
    assert set(sla.record(pid).emitted) >= {"contact.0:warning:1", "contact.0:breached:3"}
    commits = notice_commits(sla)
    assert Counter(c["aggregate_id"] for c in commits) == Counter(
        [notice_id(pid, "contact.0:warning:1")] + [notice_id(pid, f"contact.0:breached:{n}") for n in (1, 2, 3)]
    )
    assert len({e.id for e in sla.published.events}) == 4
    assert metric(sla, "petitions_sla_clocks_breached_total", clock="contact") == 1
    assert metric(sla, "petitions_sla_notices_total", type="sla.breached", level="2") == 1


def test_a_second_instance_finds_a_notice_emitted_and_emits_nothing() -> None:
    db, clock = MemoryDatabase(), ManualClock(T0)
    a, b = build(db, clock), build(db, clock)
    pid = "JZ20260309000022"
    a.consume(submitted(pid))
    clock.advance(timedelta(hours=5))
    assert a.service.scan().emitted == [notice_id(pid, "contact.0:warning:1")]
    # b's record lost the mark (as if a crashed between the notice's commit and the mark's)
    loaded = b.parts.clocks.load(pid)
    b.parts.clocks.commit(loaded, {**loaded.state, "emitted": []})  # type: ignore[dict-item]
    b.service.reproject(pid)
    assert b.service.scan().emitted == [notice_id(pid, "contact.0:warning:1")]  # confirmed, not re-emitted
    assert b.published.events == [] and len(notice_commits(a)) == 1


def test_a_scan_emitting_a_notice_reads_the_record_once_and_the_notice_never(sla: Sla) -> None:
    """Issue #23's budget: the new notice is committed without asking first (its unique insert is the
    check) and the record is marked on the version just read; the reads left are the record's and the
    projection's check after writing."""
    pid = "JZ20260309000023"
    sla.consume(submitted(pid))
    sla.clock.advance(timedelta(hours=5))
    sla.db.commands.clear()
    assert sla.service.scan().emitted == [notice_id(pid, "contact.0:warning:1")]
    assert sla.db.commands[("find", "clocks_commits")] == 2
    assert sla.db.commands[("find", "notices_commits")] == 0
    assert sla.db.commands[("insert", "notices_commits")] == 1


def test_a_scan_commits_the_notices_of_many_petitions_with_a_few_writes(sla: Sla) -> None:
    """Issue #23: the notices a scan finds due are committed in one insert (their markers in one
    more), the records' marks in one, their projections in one bulk write: not four writes each."""
    pids = [f"JZ2026030900004{n}" for n in range(5)]
    sla.consume(*[submitted(pid) for pid in pids])
    sla.clock.advance(timedelta(hours=5))
    sla.db.commands.clear()
    stats = sla.service.scan()
    assert sorted(stats.emitted) == sorted(notice_id(pid, "contact.0:warning:1") for pid in pids)
    assert sla.db.commands[("insert", "notices_commits")] == 1
    assert sla.db.commands[("insert", "outbox")] == 1
    assert sla.db.commands[("insert", "clocks_commits")] == 1
    assert sla.db.commands[("update", "open_clocks")] == 1
    assert sorted(e.type for e in sla.published.events) == ["sla.warning"] * 5
    for pid in pids:  # each record knows its notice is out, and its projection says so
        assert sla.record(pid).emitted == ("contact.0:warning:1",)
        assert sla.open_doc(pid)["seq"] == sla.parts.clocks.load(pid).seq  # type: ignore[index]
    assert sla.service.scan().emitted == []


def test_a_petition_that_fails_in_a_scan_group_fails_alone(sla: Sla, monkeypatch: pytest.MonkeyPatch) -> None:
    import services.sla.service as service_module

    pids = ["JZ20260309000051", "JZ20260309000052", "JZ20260309000053"]
    sla.consume(*[submitted(pid) for pid in pids])
    sla.clock.advance(timedelta(hours=5))
    real_due = service_module.due

    def due(record: SlaRecord, now: datetime, config: Any) -> Any:
        if record.petition_id == pids[1]:
            raise RuntimeError("a bug met by one petition")
        return real_due(record, now, config)

    monkeypatch.setattr(service_module, "due", due)
    stats = sla.service.scan()
    assert sorted(stats.emitted) == sorted(notice_id(pid, "contact.0:warning:1") for pid in (pids[0], pids[2]))
    assert stats.failed == 1 and metric(sla, "petitions_sla_scan_errors_total") == 1
    monkeypatch.setattr(service_module, "due", real_due)
    assert sla.service.scan().emitted == [notice_id(pids[1], "contact.0:warning:1")]


def test_a_notice_whose_first_attempt_the_relay_voided_is_emitted_on_top_of_the_void(sla: Sla) -> None:
    pid = "JZ20260309000024"
    nid = notice_id(pid, "contact.0:warning:1")
    sla.consume(submitted(pid))
    # an instance died between the notice's outbox marker and its commit; the relay voided that version
    void = {"_id": commit_id(nid, 1), "aggregate_id": nid, "seq": 1, "void": True, "at": T0, "events": []}
    sla.db["notices_commits"].insert_one(void)
    sla.clock.advance(timedelta(hours=5))
    assert sla.service.scan().emitted == [nid]
    [warning] = sla.published.events
    assert warning.type == "sla.warning" and sla.parts.notices.load(nid).seq == 2


def test_the_scan_refreshes_the_gauges(sla: Sla) -> None:
    sla.consume(submitted("JZ20260309000031"), submitted("JZ20260309000032"))
    sla.consume(contacted("JZ20260309000032", 1))
    sla.clock.now = T0 + timedelta(hours=5)
    sla.service.scan()
    assert metric(sla, "petitions_sla_open_clocks", clock="contact", state="warned") == 1
    assert metric(sla, "petitions_sla_open_clocks", clock="reply", state="on_track") == 2
    assert metric(sla, "petitions_sla_oldest_open_clock_age_seconds") == 5 * 3600
    assert metric(sla, "petitions_sla_last_scan_timestamp_seconds") == sla.clock().timestamp()


# ---- reading -----------------------------------------------------------------------------------


def test_a_petition_unknown_or_outside_the_readers_area_is_not_found(sla: Sla) -> None:
    pid = "JZ20260309000041"
    with pytest.raises(NotFound):
        sla.handle("petition", pid, COUNTY)
    sla.consume(submitted(pid))
    assert sla.handle("petition", pid, LEADER)["petition_id"] == pid
    with pytest.raises(NotFound):
        sla.handle("petition", pid, OTHER_LEADER)


def test_the_petition_view_lists_the_notices_emitted(sla: Sla) -> None:
    pid = "JZ20260309000042"
    sla.consume(submitted(pid))
    sla.clock.advance(timedelta(hours=7))
    sla.service.scan()
    view = sla.handle("petition", pid, COUNTY)
    assert [n["key"] for n in view["notices"]] == ["contact.0:breached:1"]  # its warning window was stepped over
    [notice] = view["notices"]
    assert notice["event_id"] == sla.published.events[0].id and notice["overdue_seconds"] == 3600
    assert view["clocks"][0]["state"] == "breached" and view["clocks"][0]["level"] == 1


def test_the_overdue_list_pages_what_the_reader_may_see(sla: Sla) -> None:
    pids = [f"JZ2026030900005{n}" for n in range(5)]
    for n, pid in enumerate(pids):
        sla.consume(submitted(pid, at=T0 + timedelta(minutes=n), grid="T01V01G001" if n % 2 == 0 else "T02V01G001"))
    sla.clock.advance(timedelta(hours=7))
    flt = OverdueFilter()
    items, cursor, as_of, _read_at = sla.handle("overdue", COUNTY, flt, 2, None)
    assert as_of == sla.clock() and [i["petition_id"] for i in items] == pids[:2] and cursor is not None
    seen = list(items)
    while cursor is not None:
        items, cursor, _, _ = sla.handle("overdue", COUNTY, flt, 2, cursor)
        seen += items
    assert [i["petition_id"] for i in seen] == pids and {i["clock"] for i in seen} == {"contact"}
    mine, _, _, _ = sla.handle("overdue", LEADER, flt, 100, None)
    assert [i["petition_id"] for i in mine] == pids[::2]


# ---- repairs -----------------------------------------------------------------------------------


def test_a_stale_or_lost_projection_is_repaired(sla: Sla) -> None:
    pids = ["JZ20260309000061", "JZ20260309000062"]
    sla.consume(*(submitted(pid) for pid in pids))
    good = {pid: sla.open_doc(pid) for pid in pids}
    sla.db["open_clocks"].replace_one({"_id": pids[0]}, {**good[pids[0]], "seq": 0, "recheck_at": None})
    assert sla.handle("audit") == 1
    assert sla.open_doc(pids[0]) == good[pids[0]]
    assert sla.handle("audit") == 0
    sla.db["open_clocks"].delete_many({})
    assert sla.handle("rebuild") == 2
    assert {pid: sla.open_doc(pid) for pid in pids} == good


def test_a_projection_written_for_an_older_version_is_followed_by_the_newest() -> None:
    db, clock = MemoryDatabase(), ManualClock(T0)
    a, b = build(db, clock), build(db, clock)
    pid = "JZ20260309000063"
    a.consume(submitted(pid))  # a remembers version 1
    b.consume(contacted(pid, 1))  # version 2, projected by b
    a.consume(submitted(pid))  # redelivered to a: a duplicate of its version 1, so a re-projects that ...
    doc = a.open_doc(pid)
    assert doc is not None and doc["seq"] == 2  # ... finds version 2 committed meanwhile and projects it
    assert [c["clock"] for c in doc["clocks"]] == ["reply"]  # the contact clock is met


# ---- owning petitions (petition_common.ownership) ---------------------------------------------

TOPICS = ("intake", "routing")


def owner_of(numbers: Iterable[int]) -> tuple[Ownership, GroupMember]:
    """An ownership whose member holds these partition numbers of both topics (4 partitions each)."""
    ownership, member = Ownership(TOPICS), GroupMember(TOPICS)
    ownership.assigned(member, [TopicPartition(t, n) for t in TOPICS for n in numbers])  # type: ignore[arg-type]
    ownership.polled(member)  # type: ignore[arg-type]
    return ownership, member


def pid_on(number: int, start: int = 0) -> str:
    """A petition id whose events the producers put on partition `number` of 4."""
    return next(
        pid for pid in (f"JZ20260309{n:06d}" for n in range(start, start + 1000)) if partition_of(pid, 4) == number
    )


def test_an_owner_follows_and_scans_its_petitions_without_reading_them() -> None:
    """Issue #23: the owner of a petition's partitions is its only writer, so it builds on the state it
    remembers and skips the projection's check for a newer version."""
    ownership, _ = owner_of(range(4))
    sla = build(MemoryDatabase(), ManualClock(T0), ownership=ownership)
    pid = pid_on(1, start=100)
    sla.consume(submitted(pid))  # a submission creates the record: nothing looked for
    assert sla.db.commands[("find", "clocks_commits")] == 0
    sla.clock.advance(timedelta(hours=5))
    assert sla.service.scan().emitted == [notice_id(pid, "contact.0:warning:1")]
    meta = MessageMeta("routing", 1, 0, None)
    sla.handle("batch", [(assigned(pid, 5.1), meta), (contacted(pid, 5.2), meta)])
    assert sla.db.commands[("find", "clocks_commits")] == 0
    doc = sla.open_doc(pid)
    assert doc is not None and doc["seq"] == sla.parts.clocks.load(pid).seq == 3
    assert sla.record(pid).contacted_at is not None


def test_a_petition_another_member_holds_is_left_to_that_members_scanner() -> None:
    db, clock = MemoryDatabase(), ManualClock(T0)
    a = build(db, clock, ownership=owner_of([0, 1])[0])
    b = build(db, clock, ownership=owner_of([2, 3])[0])
    mine, theirs = pid_on(0, start=200), pid_on(2, start=200)
    a.consume(submitted(mine))
    b.consume(submitted(theirs))
    clock.advance(timedelta(hours=5))
    assert a.service.scan().emitted == [notice_id(mine, "contact.0:warning:1")]
    assert b.service.scan().emitted == [notice_id(theirs, "contact.0:warning:1")]


class _Interrupted:
    """The projection collection, with something happening just before the next replace_one."""

    def __init__(self, collection: Any, meanwhile: Any):
        self._collection, self._meanwhile = collection, meanwhile

    def replace_one(self, *args: Any, **kwargs: Any) -> Any:
        meanwhile, self._meanwhile = self._meanwhile, None
        if meanwhile is not None:
            meanwhile()
        return self._collection.replace_one(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)


def test_a_lease_lost_while_writing_makes_the_writer_check_and_project_the_newest() -> None:
    db, clock = MemoryDatabase(), ManualClock(T0)
    ownership, _ = owner_of(range(4))
    a, b = build(db, clock, ownership=ownership), build(db, clock)
    pid = pid_on(3, start=300)
    a.consume(submitted(pid))

    def partitions_move() -> None:  # a rebalance, and the new owner commits version 3 and projects it
        ownership.revoked([TopicPartition(t, n) for t in TOPICS for n in range(4)])
        b.consume(contacted(pid, 0.05))

    a.service.projection.collection = _Interrupted(a.service.projection.collection, partitions_move)  # type: ignore[assignment]
    a.consume(assigned(pid, 0.1))  # a commits version 2; its projection lands after b's version 3
    doc = db["open_clocks"].find_one({"_id": pid})
    assert doc is not None and doc["seq"] == 3
    assert doc == b.service.reproject(pid)  # what the newest version projects to


def test_a_change_of_assignment_forgets_the_states_an_owner_remembers() -> None:
    db, clock = MemoryDatabase(), ManualClock(T0)
    ownership, member = owner_of(range(4))
    a, b = build(db, clock, ownership=ownership), build(db, clock)
    pid = pid_on(2, start=400)
    a.consume(submitted(pid))  # a remembers version 1
    first = a.open_doc(pid)
    ownership.revoked([TopicPartition(t, n) for t in TOPICS for n in range(4)])
    b.consume(contacted(pid, 1))  # meanwhile the petition's next owner records the contact ...
    db["open_clocks"].replace_one({"_id": pid}, first)  # ... whose projection is still to come
    ownership.assigned(member, [TopicPartition(t, n) for t in TOPICS for n in range(4)])  # type: ignore[arg-type]
    ownership.polled(member)  # type: ignore[arg-type]
    clock.advance(timedelta(hours=5))
    # on the remembered version 1, a would warn of a contact that was made
    assert a.service.scan().emitted == []
    assert a.published.types() == []


def _contact_state(reader: ClockReader, pid: str) -> str:
    items = reader.petitions([pid], COUNTY)["items"]
    return next(c["state"] for c in items[0]["clocks"] if c["clock"] == "contact")


def _assigned_on_owner(pid: str) -> tuple[MemoryDatabase, Ownership, Sla, Sla]:
    """Instance a owns every partition and has followed `pid` until its assignment; b owns nothing."""
    db, clock = MemoryDatabase(), ManualClock(T0)
    ownership, _ = owner_of(range(4))
    a, b = build(db, clock, ownership=ownership), build(db, clock)
    a.consume(submitted(pid))
    a.consume(assigned(pid, 0.1))
    return db, ownership, a, b


def test_an_owner_answers_staff_reads_from_the_records_it_remembers() -> None:
    """Issue #20: a grid leader's queue reads every open order's clocks; the owner of a petition is its
    only writer, so what it remembers is the newest record, as for its writers."""
    pid = pid_on(1, start=500)
    db, ownership, a, b = _assigned_on_owner(pid)
    finds = db.commands[("find", "clocks_commits")]
    assert _contact_state(ClockReader(a.service), pid) == "on_track"
    assert a.service.petition(pid, COUNTY)["petition_id"] == pid
    assert db.commands[("find", "clocks_commits")] == finds  # nothing read
    assert _contact_state(ClockReader(b.service), pid) == "on_track"  # b holds nothing: it reads
    assert db.commands[("find", "clocks_commits")] > finds
    # once the partitions move, the next owner's writes are read, not a's memory
    ownership.revoked([TopicPartition(t, n) for t in TOPICS for n in range(4)])
    b.consume(contacted(pid, 0.2))
    assert _contact_state(ClockReader(a.service), pid) == "met"


def test_a_lease_lost_during_a_staff_read_makes_the_reader_read_the_database() -> None:
    pid = pid_on(2, start=600)
    _, ownership, a, b = _assigned_on_owner(pid)
    remembered = a.parts.clocks.load_to_write

    def remembered_then_partitions_move(petition_id: str, new: bool = False) -> Any:
        loaded = remembered(petition_id, new)
        ownership.revoked([TopicPartition(t, n) for t in TOPICS for n in range(4)])
        b.consume(contacted(pid, 0.2))  # the next owner writes just after a took what it remembers
        return loaded

    a.parts.clocks.load_to_write = remembered_then_partitions_move  # type: ignore[method-assign]
    assert _contact_state(ClockReader(a.service), pid) == "met"


# ---- the working-day calendar ------------------------------------------------------------------

# A hypothetical 2027 notice (as in the integration test): New Year's Day alone, Saturday 2 January worked
NOTICE_2027 = """notice: 国务院办公厅关于2027年部分节假日安排的通知（测试用，虚构）
holidays: [2027-01-01, 2027-02-06, 2027-02-07, 2027-02-08, 2027-02-09, 2027-02-10, 2027-02-11, 2027-02-12]
workdays: [2027-01-02]
"""


def cst(day: str, hour: int) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00+08:00").astimezone(UTC)


def test_a_notice_imported_moves_provisional_deadlines_once(tmp_path: Path) -> None:
    calendar_dir = tmp_path / "calendar"
    shutil.copytree(REPO_ROOT / "config" / "calendar", calendar_dir)
    settings = Settings(service="sla", extra={"SLA_CALENDAR_DIR": str(calendar_dir)})
    db, clock = MemoryDatabase(), ManualClock(cst("2026-12-28", 10))
    a, b = build(db, clock, settings), build(db, clock, settings)
    assert a.service.check_calendar() == 0  # the first check only stores the calendar in use
    open_pid, met_pid = "JZ20261228000001", "JZ20261230000002"
    a.consume(submitted(open_pid, at=cst("2026-12-28", 10)))
    clock.now = cst("2026-12-31", 12)
    a.consume(submitted(met_pid, at=cst("2026-12-30", 10)))
    a.consume(
        event("petition.contacted", met_pid, "mc", staff_id="S1", contacted_at=iso(cst("2026-12-30", 11))),
        event(
            "petition.replied",
            met_pid,
            "mr",
            staff_id="S1",
            replied_at=iso(clock()),
            resolution="resolved",
            summary="好",
        ),
    )
    assert a.open_doc(met_pid) is None and db["provisional_clocks"].find_one({"_id": met_pid}) is not None
    reply = a.handle("petition", open_pid, COUNTY)["clocks"][1]
    assert reply["provisional"] is True and reply["deadline"] == iso(cst("2027-01-06", 0))

    (calendar_dir / "2027.yaml").write_text(NOTICE_2027, encoding="utf-8")
    assert a.service.check_calendar() + b.service.check_calendar() == 2  # one change each, published once
    changes = [e for e in a.published.events + b.published.events if e.type == "sla.deadline_changed"]
    by_pid = {e.data["petition_id"]: e.data for e in changes}
    assert len(changes) == 2 and set(by_pid) == {open_pid, met_pid}
    assert by_pid[open_pid]["deadline"] == iso(cst("2027-01-05", 0))  # a day earlier: 2 January is worked
    assert by_pid[open_pid]["previous_deadline"] == iso(cst("2027-01-06", 0))
    assert by_pid[open_pid]["provisional"] is False and by_pid[open_pid]["calendar_years"] == [2027]
    assert db["provisional_clocks"].find_one({"_id": met_pid}) is None  # official now: nothing left to move
    assert a.service.config.calendar.official_years()[-1] == 2027
    assert a.service.check_calendar() == 0 and b.service.check_calendar() == 0  # nothing twice


def test_an_owner_still_on_the_old_calendar_takes_up_the_one_another_instance_derived_with(
    tmp_path: Path,
) -> None:
    """Found in CI: instance a took the 2027 notice up and derived every deadline again; the owner b,
    whose scan came before its own look at the directory, derived the late reply with the old calendar,
    found it on time, and overwrote a's projection: the breach was never sent."""
    calendar_dir = tmp_path / "calendar"
    shutil.copytree(REPO_ROOT / "config" / "calendar", calendar_dir)
    settings = Settings(service="sla", extra={"SLA_CALENDAR_DIR": str(calendar_dir)})
    db, clock = MemoryDatabase(), ManualClock(cst("2026-12-28", 10))
    a, b = build(db, clock, settings), build(db, clock, settings, ownership=owner_of(range(4))[0])
    assert b.service.check_calendar() == 0
    pid = "JZ20261228000001"
    b.consume(
        submitted(pid, at=cst("2026-12-28", 10)),
        event("petition.contacted", pid, "c", staff_id="S1", contacted_at=iso(cst("2026-12-28", 11))),
    )
    clock.now = cst("2027-01-05", 12)  # on time for the provisional deadline (6 January), late for the official one
    b.consume(
        event("petition.replied", pid, "r", staff_id="S1", replied_at=iso(clock()), resolution="resolved", summary="好")
    )
    clock.now = cst("2027-01-06", 1)
    assert b.service.scan().emitted == []

    (calendar_dir / "2027.yaml").write_text(NOTICE_2027, encoding="utf-8")
    assert a.service.check_calendar() == 1  # a publishes the change; b has not looked yet
    assert b.service.scan().emitted == [notice_id(pid, "reply.0:breached:1")]
    assert b.service.config.calendar.official_years()[-1] == 2027
    assert b.service.scan().emitted == [] and b.service.check_calendar() == 0


def test_a_year_the_calendar_lacks_costs_only_the_reply_notices(sla: Sla) -> None:
    official = WorkCalendar.from_library(load_year_overrides(REPO_ROOT / "config" / "calendar"))
    sla.service.config = replace(sla.service.config, calendar=official)  # not even a provisional 2027
    pid = "JZ20261229000001"
    at = datetime(2026, 12, 29, 2, 0, tzinfo=UTC)  # the 5th working day after it is in 2027
    sla.clock.now = at
    sla.consume(submitted(pid, at=at))
    assert sla.open_doc(pid)["uncovered_year"] == 2027  # type: ignore[index]
    sla.clock.advance(timedelta(hours=5))
    stats = sla.service.scan()
    assert stats.emitted == [notice_id(pid, "contact.0:warning:1")] and stats.failed == 0
    assert metric(sla, "petitions_sla_calendar_year_not_covered_total", year="2027") == 2
    assert [c["state"] for c in sla.handle("petition", pid, COUNTY)["clocks"]] == ["warned", "unknown"]
