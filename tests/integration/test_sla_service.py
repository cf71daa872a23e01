"""The sla service's use cases on the real FerretDB: notices exactly once with several instances at
once, consumers racing on the same petition, late detection, a calendar gap, projection repair."""

from __future__ import annotations

import random
import shutil
import threading
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pymongo import MongoClient

from petition_common.auth import Staff
from petition_common.config import REPO_ROOT
from petition_common.contract import ContractValidator
from petition_common.envelope import Event
from petition_common.store import AggregateStore, commit_id
from petition_kernel.calendar import CalendarDirectory, WorkCalendar, load_year_overrides
from petition_kernel.sla.policy import load_policy
from petition_kernel.sla.record import SlaRecord, apply
from petition_kernel.taxonomy import load_categories
from petition_kernel.times import format_time
from services.sla.metrics import SlaMetrics
from services.sla.service import SlaConfig, SlaService
from services.sla.views import notice_id, projection_doc
from tests.conftest import make_settings

T0 = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)  # Monday 09:00 in Beijing
CONFIG = SlaConfig(
    policy=load_policy(
        REPO_ROOT / "config" / "sla-policy.yaml", frozenset(load_categories(REPO_ROOT / "config" / "categories.yaml"))
    ),
    calendar=WorkCalendar.load(REPO_ROOT / "config" / "calendar"),
)
VALIDATOR = ContractValidator(REPO_ROOT / "contract")
OFFICIAL_ONLY = WorkCalendar.from_library(load_year_overrides(REPO_ROOT / "config" / "calendar"))


class FakeClock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def instances(unique_prefix):
    """Two sla instances over one database: each with its own client, stores and metrics, as two processes."""
    settings = make_settings("sla", unique_prefix)
    clock = FakeClock(T0)
    clients, services = [], []
    for _ in range(2):
        client = MongoClient(settings.mongo_uri, tz_aware=True)
        db = client[settings.database]
        clocks = AggregateStore(db, "clocks", validate=VALIDATOR.validate)
        notices = AggregateStore(db, "notices", validate=VALIDATOR.validate)
        clients.append(client)
        services.append(SlaService(db, clocks, notices, CONFIG, SlaMetrics(CollectorRegistry()), clock))
    yield services[0], services[1], clock
    for client in clients:
        client.close()


def event(event_type: str, pid: str, eid: str, **data: Any) -> Event:
    return Event(type=event_type, source="test", subject=pid, data={"petition_id": pid, **data}, id=eid)


def submitted(pid: str, at: datetime = T0, grid: str = "T01V01G001") -> Event:
    return event(
        "petition.submitted",
        pid,
        f"{pid}-sub",
        channel="hotline",
        category="roads",
        content="路灯不亮",
        location={"town": "城关镇", "village": "东村", "grid_id": grid},
        citizen={"name_masked": "刘*", "phone_masked": "138****1234"},
        submitted_at=format_time(at),
    )


def life(pid: str) -> list[Event]:
    """Routed, transferred, contacted twice, paused and resumed, replied, closed, reopened, replied, closed."""
    h = lambda n: format_time(T0 + timedelta(hours=n))  # noqa: E731
    routed = {"village": "东村", "department": "county_transport_bureau", "reason": "grid"}
    assignee = {"staff_id": "S1", "role": "grid_leader"}
    return [
        submitted(pid),
        event(
            "petition.assigned",
            pid,
            f"{pid}-a",
            grid_id="T01V01G001",
            town="城关镇",
            assignee=assignee,
            assigned_at=h(0.1),
            **routed,
        ),
        event(
            "petition.transferred",
            pid,
            f"{pid}-t",
            grid_id="T01V02G001",
            town="城关镇",
            assignee=assignee,
            assigned_at=h(1),
            **routed,
        ),
        event("petition.contacted", pid, f"{pid}-c1", staff_id="S1", contacted_at=h(2)),
        event("petition.contacted", pid, f"{pid}-c2", staff_id="S1", contacted_at=h(3)),
        event("petition.sla_paused", pid, f"{pid}-p", staff_id="S1", at=h(24), reason="third_party"),
        event("petition.sla_resumed", pid, f"{pid}-r", staff_id="S1", at=h(48)),
        event(
            "petition.replied", pid, f"{pid}-rep1", staff_id="S1", replied_at=h(50), resolution="resolved", summary="好"
        ),
        event("petition.closed", pid, f"{pid}-cl1", closed_at=h(60), closed_by="feedback"),
        event("petition.reopened", pid, f"{pid}-ro", reopened_at=h(61), reason="不满意"),
        event(
            "petition.replied",
            pid,
            f"{pid}-rep2",
            staff_id="S1",
            replied_at=h(70),
            resolution="explained",
            summary="好",
        ),
        event("petition.closed", pid, f"{pid}-cl2", closed_at=h(71), closed_by="feedback"),
    ]


def real_notice_commits(service: SlaService) -> list[dict]:
    return [d for d in service.notices.commits.find({}) if not d.get("void")]


def notices_total(*services: SlaService) -> float:
    """petitions_sla_notices_total summed over types, levels and the given instances."""
    return sum(
        sample.value
        for service in services
        for metric in service.metrics.notices.collect()
        for sample in metric.samples
        if sample.name == "petitions_sla_notices_total"
    )


def test_two_instances_scanning_at_once_emit_each_notice_exactly_once(instances) -> None:
    a, b, clock = instances
    pids = [f"JZ20260309{n:06d}" for n in range(1, 21)]
    for pid in pids:
        a.on_event(submitted(pid))
    # four days later, never contacted: the contact clock breached all three levels; its warning
    # can no longer be sent (past the deadline), and the reply clock is not at its warning yet
    clock.now = T0 + timedelta(days=4)
    barrier = threading.Barrier(4)
    results: list[list[str]] = []
    lock = threading.Lock()

    def scanner(service: SlaService) -> None:
        barrier.wait()
        for _ in range(3):
            emitted = service.scan().emitted
            with lock:
                results.append(emitted)

    threads = [threading.Thread(target=scanner, args=(s,)) for s in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    expected = {notice_id(pid, f"contact.0:breached:{level}") for pid in pids for level in (1, 2, 3)}
    commits = real_notice_commits(a)
    assert Counter(c["aggregate_id"] for c in commits) == Counter(expected)  # once each, none missing
    assert all(len(c["events"]) == 1 for c in commits)
    assert len({c["events"][0]["body"]["id"] for c in commits}) == len(expected)
    # every instance's "emitted" answers name only notices that exist; together they name all
    assert set().union(*map(set, results)) == expected
    for pid in pids:
        record = SlaRecord.from_dict(a.clocks.load(pid).state)  # type: ignore[arg-type]
        assert set(record.emitted) == {f"contact.0:breached:{level}" for level in (1, 2, 3)}
    total = notices_total(a, b)
    assert total == len(expected)


def test_late_detection_reports_each_level_with_the_true_overdue_time(instances) -> None:
    a, _, clock = instances
    pid = "JZ20260309000101"
    a.on_event(submitted(pid))
    clock.now = T0 + timedelta(hours=5)  # past the warning point (4h48m), before the deadline
    assert a.scan().emitted == [notice_id(pid, "contact.0:warning:1")]
    clock.now = T0 + timedelta(days=4, minutes=7)  # the service was "down" for days
    assert sorted(a.scan().emitted) == sorted(notice_id(pid, f"contact.0:breached:{n}") for n in (1, 2, 3))
    deadline = T0 + timedelta(hours=6)
    for commit in real_notice_commits(a):
        body = commit["events"][0]["body"]
        data = body["data"]
        assert data["deadline"] == format_time(deadline)
        sent_at = clock.now if "breached" in commit["aggregate_id"] else T0 + timedelta(hours=5)
        assert body["time"] == format_time(sent_at)
        if body["type"] == "sla.breached":
            assert data["overdue_seconds"] == int((clock.now - deadline).total_seconds())
            delay = {1: 0, 2: 24, 3: 72}[data["level"]]
            assert data["due_at"] == format_time(deadline + timedelta(hours=delay))
        else:
            assert data["remaining_seconds"] == 3600
    assert a.scan().emitted == []  # nothing twice


def test_consumers_racing_on_one_petition_in_any_order_and_twice(instances) -> None:
    a, b, clock = instances
    pid = "JZ20260309000201"
    events = life(pid)
    rng = random.Random(7)
    deliveries = events + rng.sample(events, k=6)
    rng.shuffle(deliveries)
    halves = (deliveries[::2], deliveries[1::2])
    clock.now = T0 + timedelta(hours=80)

    def consume(service: SlaService, batch: list[Event]) -> None:
        for e in batch:
            service.on_event(e)

    threads = [threading.Thread(target=consume, args=(s, h)) for s, h in zip((a, b), halves, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    reference = None
    for e in events:
        reference = apply(reference, e.type, e.data, e.id)
    loaded = a.clocks.load(pid)
    assert SlaRecord.from_dict(loaded.state) == reference  # type: ignore[arg-type]
    # the projection is the newest version's, whichever consumer wrote last
    assert reference is not None
    want = projection_doc(reference, loaded.seq, clock.now, CONFIG.policy, CONFIG.calendar, CONFIG.keep_breached)
    got = a.open_clocks.find_one({"_id": pid})
    assert got == want


def test_a_void_or_unconfirmed_attempt_is_retried_and_a_lost_mark_costs_nothing(instances) -> None:
    a, b, clock = instances
    p1, p2 = "JZ20260309000301", "JZ20260309000302"
    a.on_event(submitted(p1))
    a.on_event(submitted(p2))
    # p1: a writer died between its outbox marker and its commit, and the relay voided the version
    void_id = notice_id(p1, "contact.0:warning:1")
    a.notices.commits.insert_one(
        {"_id": commit_id(void_id, 1), "aggregate_id": void_id, "seq": 1, "void": True, "events": []}
    )
    clock.now = T0 + timedelta(hours=5)
    assert sorted(a.scan().emitted) == sorted([void_id, notice_id(p2, "contact.0:warning:1")])
    assert a.notices.load(void_id).seq == 2
    # p2: the notice was committed but the instance died before marking the record
    p2_state = a.clocks.load(p2).state
    assert p2_state is not None and p2_state["emitted"] == ["contact.0:warning:1"]
    # forget the mark by committing the record without it (as if the mark's commit never happened)
    loaded = a.clocks.load(p2)
    a.clocks.commit(loaded, {**loaded.state, "emitted": []})  # type: ignore[dict-item]
    a.reproject(p2)
    assert b.scan().emitted == [notice_id(p2, "contact.0:warning:1")]  # confirmed, not re-emitted
    commits = real_notice_commits(a)
    assert Counter(c["aggregate_id"] for c in commits) == Counter([void_id, notice_id(p2, "contact.0:warning:1")])
    assert notices_total(b) == 0  # b found it there: nothing new was emitted


def test_a_year_the_calendar_lacks_costs_only_the_reply_notices(instances) -> None:
    a, _, clock = instances
    # without its provisional years (the fallback for a year not even those cover)
    a.config = replace(a.config, calendar=OFFICIAL_ONLY)
    pid = "JZ20261229000001"
    at = datetime(2026, 12, 29, 2, 0, tzinfo=UTC)  # the 5th working day after it is in 2027
    a.on_event(submitted(pid, at=at))
    assert a.metrics.calendar_not_covered.labels("2027")._value.get() == 1  # type: ignore[attr-defined]
    doc = a.open_clocks.find_one({"_id": pid})
    assert doc is not None and doc["uncovered_year"] == 2027
    clock.now = at + timedelta(hours=5)
    stats = a.scan()
    assert stats.emitted == [notice_id(pid, "contact.0:warning:1")] and stats.failed == 0
    assert a.metrics.calendar_not_covered.labels("2027")._value.get() == 2  # type: ignore[attr-defined]
    assert a.metrics.uncovered_records._value.get() == 1  # type: ignore[attr-defined]
    view = a.petition(pid, Staff("D", "county_dispatcher"))
    assert [c["state"] for c in view["clocks"]] == ["warned", "unknown"]
    assert [n["key"] for n in view["notices"]] == ["contact.0:warning:1"]


def test_a_stale_or_lost_projection_is_repaired(instances) -> None:
    a, b, _ = instances
    pids = ["JZ20260309000401", "JZ20260309000402"]
    for pid in pids:
        a.on_event(submitted(pid))
    good = {pid: a.open_clocks.find_one({"_id": pid}) for pid in pids}
    # stale: an older version's document; the audit compares versions and re-projects
    a.open_clocks.replace_one({"_id": pids[0]}, {**good[pids[0]], "seq": 0, "recheck_at": None})
    assert b.audit() == 1
    assert a.open_clocks.find_one({"_id": pids[0]}) == good[pids[0]]
    # lost: a redelivered event puts it back ...
    a.open_clocks.delete_one({"_id": pids[0]})
    b.on_event(submitted(pids[0]))
    assert a.open_clocks.find_one({"_id": pids[0]}) == good[pids[0]]
    # ... and so does the operator's rebuild, for all of them
    a.open_clocks.delete_many({})
    assert b.rebuild() == 2
    assert {pid: a.open_clocks.find_one({"_id": pid}) for pid in pids} == good


def test_the_scanner_runs_after_each_step_of_a_clock_that_jumps(instances):
    one, _, clock = instances
    assert one.scan_when_due(30) is None  # just started: not yet due by either clock
    clock.now += timedelta(hours=3)  # a simulated clock moved a step: scan at once, not 30 s later
    assert one.scan_when_due(30) is not None
    assert one.metrics.last_scan._value.get() == clock.now.timestamp()
    assert one.scan_when_due(30) is None
    clock.now += timedelta(seconds=10)
    assert one.scan_when_due(30) is None


# A hypothetical 2027 notice: New Year's Day alone, with Saturday 2 January a make-up working day inside
# the reply windows of late-December petitions (the provisional calendar has no make-up days).
NOTICE_2027 = """notice: 国务院办公厅关于2027年部分节假日安排的通知（测试用，虚构）
holidays: [2027-01-01, 2027-02-06, 2027-02-07, 2027-02-08, 2027-02-09, 2027-02-10, 2027-02-11, 2027-02-12]
workdays: [2027-01-02]
"""


def cst_instant(day: str, hour: int) -> datetime:
    return datetime.fromisoformat(f"{day}T{hour:02d}:00:00+08:00").astimezone(UTC)


def test_importing_a_notice_moves_provisional_deadlines_once_across_instances(instances, tmp_path) -> None:
    a, b, clock = instances
    calendar_dir = tmp_path / "calendar"
    shutil.copytree(REPO_ROOT / "config" / "calendar", calendar_dir)
    clock.now = cst_instant("2026-12-28", 10)
    for service in (a, b):
        service.calendar_files = CalendarDirectory(calendar_dir, today=lambda: clock.now.date())
        service.config = replace(service.config, calendar=service.calendar_files.calendar)
        assert service.check_calendar() == 0  # the first check only stores the calendar in use
    # open: submitted Monday 28 December, contacted, no reply; met: submitted Wednesday 30, replied
    # the next day (no longer watched, but its deadline was provisional); old: counted in 2026 only
    open_pid, met_pid, old_pid = "JZ20261228000001", "JZ20261230000002", "JZ20261221000003"

    def contacted(pid: str, at: datetime) -> Event:
        return event("petition.contacted", pid, f"{pid}-c", staff_id="S1", contacted_at=format_time(at))

    a.on_event(submitted(open_pid, at=cst_instant("2026-12-28", 10)))
    a.on_event(contacted(open_pid, cst_instant("2026-12-28", 11)))
    a.on_event(submitted(old_pid, at=cst_instant("2026-12-21", 10)))
    a.on_event(contacted(old_pid, cst_instant("2026-12-21", 11)))
    clock.now = cst_instant("2026-12-31", 12)
    a.on_event(submitted(met_pid, at=cst_instant("2026-12-30", 10)))
    a.on_event(contacted(met_pid, cst_instant("2026-12-30", 11)))
    reply = event(
        "petition.replied",
        met_pid,
        f"{met_pid}-r",
        staff_id="S1",
        replied_at=format_time(clock.now),
        resolution="resolved",
        summary="好",
    )
    a.on_event(reply)
    staff = Staff("D", "county_dispatcher")
    view = a.petition(open_pid, staff)["clocks"][1]
    # provisional: 29, 30, 31 December, 4 and 5 January (1 January off, then the weekend)
    assert view["provisional"] is True and view["deadline"] == format_time(cst_instant("2027-01-06", 0))
    assert a.petition(old_pid, staff)["clocks"][1]["provisional"] is False
    assert a.provisional_clocks.find_one({"_id": met_pid}) is not None  # the met one stays findable
    clock.now = cst_instant("2027-01-04", 12)
    a.scan()
    assert a.metrics.provisional_clocks._value.get() == 1  # type: ignore[attr-defined]
    [warning] = [c for c in real_notice_commits(a) if c["aggregate_id"] == notice_id(open_pid, "reply.0:warning:1")]
    assert warning["events"][0]["body"]["data"]["provisional"] is True

    # the notice is imported while both instances run: each takes it up, the changes are published once
    (calendar_dir / "2027.yaml").write_text(NOTICE_2027, encoding="utf-8")
    barrier = threading.Barrier(2)
    published: list[int] = []

    def check(service: SlaService) -> None:
        barrier.wait()
        published.append(service.check_calendar())

    threads = [threading.Thread(target=check, args=(s,)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    changes = [c for c in real_notice_commits(a) if ":deadline:" in c["aggregate_id"]]
    assert sorted(c["aggregate_id"].split("|")[0] for c in changes) == [open_pid, met_pid]  # once each
    assert sum(published) == 2
    by_pid = {c["aggregate_id"].split("|")[0]: c["events"][0]["body"] for c in changes}
    for body in by_pid.values():
        assert body["type"] == "sla.deadline_changed" and body["data"]["provisional"] is False
    # 29, 30, 31 December, 2 (make-up) and 4 January: a day earlier
    assert by_pid[open_pid]["data"]["deadline"] == format_time(cst_instant("2027-01-05", 0))
    assert by_pid[open_pid]["data"]["previous_deadline"] == format_time(cst_instant("2027-01-06", 0))
    assert by_pid[open_pid]["data"]["corrected"] == []  # its warning point (80 %) had passed either way
    assert by_pid[met_pid]["data"]["deadline"] == format_time(cst_instant("2027-01-07", 0))
    assert a.provisional_clocks.find_one({"_id": met_pid}) is None  # official now: nothing left to move
    assert a.petition(open_pid, staff)["clocks"][1]["provisional"] is False

    # after the import the new deadline passes: the breach follows it, on the official calendar
    clock.now = cst_instant("2027-01-05", 1)
    assert a.scan().emitted == [notice_id(open_pid, "reply.0:breached:1")]
    assert a.metrics.provisional_clocks._value.get() == 0  # type: ignore[attr-defined]

    # a restarted instance (its calendar read after the import) finds nothing left to change
    for service in (a, b):
        assert service.check_calendar() == 0
