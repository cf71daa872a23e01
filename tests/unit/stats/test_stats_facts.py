"""Facts merge order-free and idempotently; a petition's contribution follows the documented definitions."""

from __future__ import annotations

import itertools
import random
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from petition_kernel.calendar import WorkCalendar
from petition_kernel.sla.policy import load_policy
from petition_kernel.times import BEIJING
from services.stats.domain.changes import BadEvent, change_of
from services.stats.domain.facts import (
    INDEX,
    Change,
    Facts,
    SlaRules,
    cells_of,
    contribution,
    merge,
    to_us,
)

REPO = Path(__file__).resolve().parents[3]
PID = "JZ20240705000001"


@pytest.fixture(scope="module")
def rules() -> SlaRules:
    return SlaRules(load_policy(REPO / "config" / "sla-policy.yaml"), WorkCalendar.load(REPO / "config" / "calendar"))


def cst(text: str) -> int:
    return to_us(datetime.fromisoformat(text).replace(tzinfo=BEIJING))


def submitted(at: str, category: str = "roads", duplicate: bool = False, eid: str = "e-sub") -> Change:
    return Change(PID, "submitted", cst(at), eid, (category, "hotline", duplicate))


def at(kind: str, when: str, eid: str, value: tuple = ()) -> Change:
    return Change(PID, kind, cst(when), eid, value)


def assigned(when: str, grid: str | None = "T01V01G001", eid: str = "e-asg", kind: str = "assigned") -> Change:
    return Change(
        PID, kind, cst(when), eid, (grid, "东村新村" if grid else None, "城关街道", "county_transport_bureau")
    )


def facts_of(changes: list[Change]) -> Facts | None:
    f = None
    for c in changes:
        f = merge(f, c)
    return f


def value(c, name: str) -> int:
    return c.values[INDEX[name]]


# a full lifecycle: Friday 2024-07-05 16:00 submitted (contact deadline 22:00; reply deadline = end of
# Friday 2024-07-12, the 5th working day after the submission day)
LIFE = [
    submitted("2024-07-05 16:00"),
    assigned("2024-07-05 16:00:05"),
    assigned("2024-07-06 09:00", grid="T01V01G002", eid="e-tr", kind="transferred"),
    at("contacted", "2024-07-05 21:59", "e-c1"),
    at("contacted", "2024-07-06 08:00", "e-c2"),
    at("paused", "2024-07-08 09:00", "e-p", ("third_party",)),
    at("resumed", "2024-07-09 09:00", "e-r"),
    at("replied", "2024-07-13 08:00", "e-rep"),  # a day after the unpaused deadline, within the paused one
    at("feedback", "2024-07-13 12:00", "e-f1", ("dissatisfied",)),
    at("reopened", "2024-07-13 12:00", "e-ro"),
    at("replied", "2024-07-15 10:00", "e-rep2"),
    at("feedback", "2024-07-15 12:00", "e-f2", ("basically_satisfied",)),
    at("closed", "2024-07-15 12:00", "e-cl"),
    Change(PID, "sla_warning", 0, "e-w"),
]


def test_merging_is_order_free_and_idempotent():
    expected = facts_of(LIFE)
    rng = random.Random(3)
    for _ in range(200):
        changes = LIFE + rng.sample(LIFE, 5)  # redeliveries
        rng.shuffle(changes)
        assert facts_of(changes) == expected
    assert merge(expected, LIFE[3]) is expected  # a repeated fact changes nothing


def test_facts_survive_their_stored_form():
    f = facts_of(LIFE)
    assert Facts.from_list(f.to_list()) == f


def test_contribution_of_a_full_lifecycle(rules):
    c = contribution(PID, facts_of(LIFE), rules)
    day = datetime(2024, 7, 5).toordinal()
    assert c.key == (day, "T01V01G002", "东村新村", "城关街道", "roads", "county_transport_bureau", "hotline")
    expect = {
        "accepted": 1,
        "duplicates": 0,
        "assigned": 1,
        "contacted": 1,
        "contacted_on_time": 1,  # the earliest contact, 21:59, within 6 h
        "contact_seconds": 5 * 3600 + 59 * 60,
        "replied": 1,
        "replied_on_time": 1,  # the 24 h pause moved the deadline past Saturday 08:00
        "reply_working_days": 5,  # Mon..Fri after Friday the 5th; Saturday the 13th is not one
        "closed": 1,
        "transferred": 1,
        "reopened": 1,
        "withdrawn": 0,
        "feedback": 1,
        "satisfied": 0,
        "basically_satisfied": 1,  # the latest rating counts
        "dissatisfied": 0,
        "sla_warned": 1,
        "sla_breached": 0,
    }
    assert {name: value(c, name) for name in expect} == expect


def test_without_the_pause_the_same_reply_is_late(rules):
    life = [c for c in LIFE if c.kind not in ("paused", "resumed")]
    assert value(contribution(PID, facts_of(life), rules), "replied_on_time") == 0


@pytest.mark.parametrize(
    ("category", "contact", "on_time"),
    [
        ("roads", "2024-07-05 22:00", 1),  # exactly at the 6 h deadline
        ("roads", "2024-07-05 22:00:01", 0),
        ("emergency", "2024-07-05 18:00", 1),  # 2 h for emergencies
        ("emergency", "2024-07-05 18:30", 0),
        ("utilities", "2024-07-06 15:00", 1),  # 24 h for utilities
    ],
)
def test_contact_deadline_is_the_sla_policy(rules, category, contact, on_time):
    f = facts_of([submitted("2024-07-05 16:00", category), at("contacted", contact, "e-c")])
    assert value(contribution(PID, f, rules), "contacted_on_time") == on_time


def test_reply_deadline_skips_holidays(rules):
    # submitted Monday 2024-09-30; 10-01..10-07 is the National Day holiday, Sunday 09-29 and Saturday
    # 10-12 are make-up working days: days 1-5 are 10-08, 09, 10, 11, 12 -> due by the end of Saturday 10-12
    base = [submitted("2024-09-30 10:00")]
    on_time = contribution(PID, facts_of([*base, at("replied", "2024-10-12 23:59", "r")]), rules)
    late = contribution(PID, facts_of([*base, at("replied", "2024-10-13 00:00:01", "r")]), rules)
    assert value(on_time, "replied_on_time") == 1 and value(on_time, "reply_working_days") == 5
    assert value(late, "replied_on_time") == 0 and value(late, "reply_working_days") == 5


def test_a_reply_after_closure_or_a_stopped_clock_is_not_on_time(rules):
    f = facts_of(
        [submitted("2024-07-01 10:00"), at("closed", "2024-07-01 12:00", "c"), at("replied", "2024-07-02 10:00", "r")]
    )
    c = contribution(PID, f, rules)
    assert value(c, "replied") == 1 and value(c, "replied_on_time") == 0 and value(c, "closed") == 1


def test_a_duplicate_counts_only_as_a_duplicate(rules):
    f = facts_of([submitted("2024-07-01 10:00", duplicate=True), assigned("2024-07-01 10:00:01"),
                  at("contacted", "2024-07-01 11:00", "c"), at("closed", "2024-07-02 10:00", "x")])  # fmt: skip
    c = contribution(PID, f, rules)
    assert value(c, "duplicates") == 1
    assert sum(c.values) == 1


def test_nothing_counts_before_the_submission_is_known(rules):
    f = facts_of([assigned("2024-07-01 10:00:01"), at("contacted", "2024-07-01 11:00", "c")])
    assert contribution(PID, f, rules) is None
    f = merge(f, submitted("2024-07-01 10:00"))
    assert value(contribution(PID, f, rules), "contacted_on_time") == 1


def test_the_earliest_submission_and_the_latest_assignment_win():
    a = facts_of([submitted("2024-07-01 10:00", "roads"), submitted("2024-07-01 09:00", "drainage")])
    assert a.submitted[1] == "drainage"
    same_time = [
        assigned("2024-07-01 10:00", grid="G2", eid="a"),
        assigned("2024-07-01 10:00", grid="G1", eid="b"),
        assigned("2024-07-01 10:00", grid=None, eid="c"),
    ]
    for order in itertools.permutations(same_time):
        assert facts_of(list(order)).assignment[1] == "G2"  # equal times: a fixed order of the data


def test_cells_sum_contributions(rules):
    contributions = [contribution(PID, facts_of(LIFE), rules), contribution(PID, facts_of(LIFE), rules)]
    cells = cells_of(contributions)
    (row,) = cells.values()
    assert row[INDEX["accepted"]] == 2


def test_events_become_changes():
    data = {"petition_id": PID, "contacted_at": "2024-07-01T02:00:00.000Z", "staff_id": "S1"}
    assert change_of("petition.contacted", data, "e1") == Change(
        PID, "contacted", to_us(datetime.fromisoformat("2024-07-01T02:00:00+00:00")), "e1"
    )
    assert change_of(
        "petition.sla_paused", {**data, "at": data["contacted_at"], "reason": "third_party"}, "e2"
    ).value == ("third_party",)
    assert change_of("sla.warning", {"petition_id": PID, "clock": "reply"}, "e3").kind == "sla_warning"
    assert change_of("alert.hotspot", {}, "e4") is None
    with pytest.raises(BadEvent, match="contacted_at"):
        change_of("petition.contacted", {"petition_id": PID, "contacted_at": "yesterday"}, "e5")
    with pytest.raises(BadEvent, match="contacted_at"):
        change_of("petition.contacted", {"petition_id": PID, "contacted_at": "2024-07-01T02:00:00"}, "e6")
    with pytest.raises(BadEvent, match="channel"):
        change_of("petition.submitted", {"petition_id": PID, "channel": "fax", "category": "roads"}, "e7")


def test_times_keep_microseconds():
    moment = datetime(2024, 7, 1, 1, 2, 3, 456789, tzinfo=BEIJING)
    assert to_us(moment) - to_us(moment - timedelta(microseconds=1)) == 1
