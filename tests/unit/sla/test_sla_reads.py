"""sla's batch read and the overdue list's snapshot (services/sla/reads.py): the pure parts, and the
snapshot's freshness rule over a collection stand-in that counts its whole reads."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from petition_common.auth import Staff
from petition_kernel.calendar import WorkCalendar
from petition_kernel.sla.policy import SlaPolicy
from services.sla import reads
from services.sla.domain.open_clocks import projection_doc
from services.sla.domain.overdue_list import OverdueFilter, overdue_items
from services.sla.domain.petition_clocks import petition_view

from .helpers import cst
from .test_clock import build, ev, routed, submitted

COUNTY = Staff("D1", "county_dispatcher")
LEADER = Staff("S1", "grid_leader", town_id="T01", village_id="T01V01", grid_ids=frozenset({"T01V01G001"}))
KEEP = timedelta(days=7)


def test_ids_are_parsed_distinct_in_order() -> None:
    assert reads.parse_ids("JZ20250310000002,JZ20250310000001,JZ20250310000002") == (
        ["JZ20250310000002", "JZ20250310000001"],
        None,
    )
    hundred = ",".join(f"JZ20250310{n:06d}" for n in range(100))
    assert len(reads.parse_ids(hundred)[0]) == 100


@pytest.mark.parametrize(
    ("raw", "word"),
    [
        (None, "required"),
        ("", "required"),
        (",".join(f"JZ20250310{n:06d}" for n in range(101)), "at most 100"),
        ("JZ20250310000001,", "separated by commas"),
        ("jz20250310000001", "separated by commas"),
        ("JZ2025031000000１", "separated by commas"),  # a full-width digit
        ("JZ20250310000001 ", "separated by commas"),
    ],
)
def test_bad_ids_are_refused_with_a_field_message(raw: str | None, word: str) -> None:
    ids, problem = reads.parse_ids(raw)
    assert ids == [] and problem is not None and word in problem


def _petition(pid: str, grid: str, town: str, at: str) -> list:
    """A petition submitted and assigned at `at` (Beijing time)."""
    sub, asg = submitted(at=at, eid=f"{pid}-s"), routed("assigned", at, grid, town, f"{pid}-a")
    return [ev(sub[0], sub[2], **{**sub[1], "petition_id": pid}), ev(asg[0], asg[2], **{**asg[1], "petition_id": pid})]


def test_the_batch_keeps_only_what_the_rule_lets_the_caller_read(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    records = [
        build(_petition("JZ20250310000001", "T01V01G001", "城关镇", "2025-03-10 09:00")),
        build(_petition("JZ20250310000002", "T02V01G001", "河口镇", "2025-03-10 09:00")),
    ]
    now = cst("2025-03-10 12:00")

    def view(record: Any) -> dict:
        return petition_view(record, now, policy, calendar, [])

    every = reads.readable_views(records, COUNTY, view)
    assert [v["petition_id"] for v in every] == ["JZ20250310000001", "JZ20250310000002"]
    assert all("notices" not in v and v["clocks"] for v in every)
    assert every[0] == {k: v for k, v in view(records[0]).items() if k != "notices"}
    assert [v["petition_id"] for v in reads.readable_views(records, LEADER, view)] == ["JZ20250310000001"]


@pytest.fixture
def docs(policy: SlaPolicy, calendar: WorkCalendar) -> list[dict]:
    """Three petitions submitted a day apart: contact deadlines 3/10, 3/11 and 3/12 15:00 (Beijing)."""
    out = []
    for n, day in enumerate(("10", "11", "12"), start=1):
        events = _petition(f"JZ202503{day}00000{n}", "T01V01G001", "城关镇", f"2025-03-{day} 09:00")
        doc = projection_doc(build(events), 2, cst(f"2025-03-{day} 09:30"), policy, calendar, KEEP)
        assert doc is not None
        out.append(doc)
    return out


def test_the_snapshot_answers_as_a_whole_read_would(docs: list[dict]) -> None:
    read_at = cst("2025-03-11 16:00")
    snap = reads.Snapshot.of(docs, 0.0, read_at, read_at + timedelta(hours=1))
    # the third petition cannot be overdue before the snapshot expires: not kept
    assert [d["_id"][-1] for d in snap.docs] == ["1", "2"]
    for now in ("2025-03-10 14:00", "2025-03-10 15:30", "2025-03-11 15:30", "2025-03-11 16:30"):
        at = cst(now)
        assert overdue_items(snap.overdue_by(at), at, COUNTY, OverdueFilter()) == overdue_items(
            docs, at, COUNTY, OverdueFilter()
        )
    assert snap.overdue_by(cst("2025-03-10 14:00")) == []


class Collection:
    """The `open_clocks` stand-in: `find` answers the documents and counts the whole reads."""

    def __init__(self, docs: list[dict]):
        self.docs = docs
        self.reads = 0

    def find(self, query: dict, fields: dict) -> list[dict]:
        assert query == {}
        self.reads += 1
        return [{k: v for k, v in d.items() if k in fields} for d in self.docs]


class Times:
    def __init__(self, now: datetime):
        self.mono = 100.0
        self.now = now

    def wait(self, seconds: float) -> None:
        self.mono += seconds
        self.now += timedelta(seconds=seconds)


def test_the_snapshot_is_renewed_in_the_background_then_waited_for(docs: list[dict]) -> None:
    collection = Collection(docs[:1])
    times = Times(cst("2025-03-10 16:00"))
    spawned: list = []
    snapshot = reads.OverdueSnapshot(
        collection,  # type: ignore[arg-type]
        lambda: times.now,
        refresh_s=5,
        max_age_s=30,
        monotonic=lambda: times.mono,
        spawn=spawned.append,
    )

    def listed() -> list[str]:
        return [i["petition_id"][-1] for i in snapshot.overdue(COUNTY, OverdueFilter(), 100, None)[0]]

    assert listed() == ["1"] and collection.reads == 1  # none yet: read before answering
    collection.docs = docs[:2]  # the second petition's projection appears (its deadline passed on 3/11)
    times.wait(4)
    assert listed() == ["1"] and collection.reads == 1 and spawned == []
    times.wait(2)  # older than refresh_s: answered from the old read, a new one started
    assert listed() == ["1"] and len(spawned) == 1
    assert listed() == ["1"] and len(spawned) == 1  # one renewal at a time
    spawned.pop()()
    assert collection.reads == 2
    times.now = cst("2025-03-11 15:30")  # the service's clock jumps a day: the read is too old, read now
    assert listed() == ["1", "2"] and collection.reads == 3
    page = snapshot.overdue(COUNTY, OverdueFilter(), 100, None)
    assert page[3] == times.now and page[2] == times.now  # read at, and computed for, this instant
    times.mono += 31  # too old by the wall clock alone
    collection.docs = docs[1:2]  # the first one's clock was met meanwhile
    assert listed() == ["2"] and collection.reads == 4
    times.now -= timedelta(hours=1)  # a clock moved backwards: the read is unusable
    listed()
    assert collection.reads == 5 and spawned == []
