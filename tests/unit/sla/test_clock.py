"""One petition's SLA record and clocks: order-independence, notices, escalation, reopen, pauses."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterable
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from petition_kernel.calendar import WorkCalendar, YearNotCovered, YearSchedule
from petition_kernel.sla.clock import (
    SlaRecord,
    apply,
    clock_states,
    due_notices,
    mark_emitted,
    next_due_at,
    open_state,
)
from petition_kernel.sla.policy import SlaPolicy
from petition_kernel.sla.record import EventDataError
from petition_kernel.times import format_time

from .helpers import cst

PID = "JZ20250310000123"
Event = tuple[str, dict[str, Any], str]  # (type, data, event id)


def ev(event_type: str, event_id: str, **data: Any) -> Event:
    return event_type, {"petition_id": PID, **data}, event_id


def iso(text: str) -> str:
    """A Beijing-time string as the RFC 3339 UTC text producers put in `data`."""
    return format_time(cst(text))


def submitted(at: str = "2025-03-10 09:00", category: str = "roads", eid: str = "e-sub") -> Event:
    return ev(
        "petition.submitted",
        eid,
        channel="hotline",
        category=category,
        content="路灯不亮",
        location={"town": "城关镇", "village": "东村", "grid_id": "G-001"},
        citizen={"name_masked": "刘*", "phone_masked": "138****1234"},
        submitted_at=iso(at),
    )


def routed(kind: str, at: str, grid: str, town: str, eid: str) -> Event:
    return ev(
        f"petition.{kind}",
        eid,
        grid_id=grid,
        village="东村",
        town=town,
        department="county_transport_bureau",
        assignee={"staff_id": "S1", "role": "grid_worker"},
        reason="grid of the address",
        assigned_at=iso(at),
    )


def contacted(at: str, eid: str) -> Event:
    return ev("petition.contacted", eid, staff_id="S1", contacted_at=iso(at))


def replied(at: str, eid: str) -> Event:
    return ev("petition.replied", eid, staff_id="S1", replied_at=iso(at), resolution="resolved", summary="修好了")


def closed(at: str, eid: str) -> Event:
    return ev("petition.closed", eid, closed_at=iso(at), closed_by="feedback")


def reopened(at: str, eid: str) -> Event:
    return ev("petition.reopened", eid, reopened_at=iso(at), reason="不满意")


def withdrawn(at: str, eid: str) -> Event:
    return ev("petition.withdrawn", eid, withdrawn_at=iso(at))


def paused(at: str, eid: str, reason: str = "citizen_unreachable") -> Event:
    return ev("petition.sla_paused", eid, staff_id="S1", at=iso(at), reason=reason)


def resumed(at: str, eid: str) -> Event:
    return ev("petition.sla_resumed", eid, staff_id="S1", at=iso(at))


def build(events: Iterable[Event]) -> SlaRecord:
    record: SlaRecord | None = None
    for event_type, data, event_id in events:
        record = apply(record, event_type, data, event_id)
    assert record is not None
    return record


# A realistic life: routed, transferred to another town, contacted twice, paused, replied, closed,
# reopened after a dissatisfied rating, paused again, replied again, closed.
LIFE: list[Event] = [
    submitted(),
    routed("assigned", "2025-03-10 09:10", "G-001", "城关镇", "e-asg"),
    routed("transferred", "2025-03-10 10:30", "G-207", "河口镇", "e-trf"),
    contacted("2025-03-10 12:00", "e-con1"),
    contacted("2025-03-10 14:00", "e-con2"),
    paused("2025-03-11 10:00", "e-p1"),
    resumed("2025-03-12 10:00", "e-r1"),
    replied("2025-03-14 16:00", "e-rep1"),
    closed("2025-03-15 10:00", "e-cls1"),
    ev("petition.feedback_received", "e-fb", satisfaction="dissatisfied", received_at=iso("2025-03-15 11:00")),
    reopened("2025-03-17 09:00", "e-reo"),
    paused("2025-03-18 09:00", "e-p2", reason="third_party"),
    resumed("2025-03-20 09:00", "e-r2"),
    replied("2025-03-25 11:00", "e-rep2"),
    closed("2025-03-26 10:00", "e-cls2"),
]


# -- order independence ------------------------------------------------------------------------


def test_the_life_derives_as_expected(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    record = build(LIFE)
    assert (record.grid_id, record.town) == ("G-207", "河口镇")
    contact, reply0, reply1 = clock_states(record, cst("2025-04-01 00:00"), policy, calendar)
    assert (contact.deadline, contact.ended_at, contact.outcome) == (
        cst("2025-03-10 15:00"),
        cst("2025-03-10 12:00"),
        "met",
    )
    # 5 working days after Mon 3/10 end at 3/18 24:00... i.e. 3/18 00:00; paused 1 day.
    assert (reply0.deadline, reply0.ended_at, reply0.outcome) == (
        cst("2025-03-19 00:00"),
        cst("2025-03-14 16:00"),
        "met",
    )
    # Reopened Mon 3/17: 3/18-3/21, 3/24 → 3/25 00:00; paused 2 days.
    assert (reply1.generation, reply1.started_at, reply1.deadline, reply1.outcome) == (
        1,
        cst("2025-03-17 09:00"),
        cst("2025-03-27 00:00"),
        "met",
    )
    assert reply1.paused == timedelta(days=2)
    assert due_notices(record, cst("2025-04-01 00:00"), policy, calendar) == []


def test_any_order_with_duplicates_gives_the_same_record(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    reference = build(LIFE)
    rng = random.Random(20250310)
    for _ in range(300):
        events = LIFE + rng.sample(LIFE, k=rng.randint(0, len(LIFE)))  # at-least-once: some twice
        rng.shuffle(events)
        record = build(events)
        assert record == reference
        assert record.to_dict() == reference.to_dict()
    now = cst("2025-03-21 00:00")
    assert due_notices(record, now, policy, calendar) == due_notices(reference, now, policy, calendar)


PAUSE_HEAVY: list[Event] = [
    submitted(),
    paused("2025-03-11 10:00", "p1"),
    resumed("2025-03-11 16:00", "r1"),
    paused("2025-03-12 09:00", "p2", reason="citizen_deferred"),
    resumed("2025-03-13 09:00", "r2"),
    reopened("2025-03-13 12:00", "reo"),
    replied("2025-03-14 10:00", "rep"),
]


def test_every_permutation_gives_the_same_record_and_clocks(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    reference = build(PAUSE_HEAVY)
    now = cst("2025-03-20 00:00")
    reference_clocks = clock_states(reference, now, policy, calendar)
    for order in itertools.permutations(PAUSE_HEAVY):
        record = build(order)
        assert record == reference
    assert clock_states(record, now, policy, calendar) == reference_clocks
    # The first pause (6h) belongs to reply clock 0; clock 1 starts 3/13 12:00, after the second pause.
    assert [c.paused for c in reference_clocks[1:]] == [timedelta(hours=30), timedelta(0)]


def test_a_duplicate_event_is_ignored() -> None:
    record = build(LIFE[:4])
    again = apply(record, *LIFE[3])
    assert again is record
    # Same fact re-published under another id adds the id but no new fact.
    event_type, data, _ = LIFE[3]
    other = apply(record, event_type, data, "e-con1-again")
    assert replace(other, event_ids=record.event_ids) == record


def test_unused_event_types_leave_the_record_alone() -> None:
    record = build([submitted()])
    assert apply(record, "petition.feedback_received", {"petition_id": PID}, "x") is record


# -- storage ------------------------------------------------------------------------------------


def test_round_trip_through_a_dict() -> None:
    record = mark_emitted(build(LIFE), ["contact.0:warning:1"])
    stored = json.loads(json.dumps(record.to_dict()))
    assert SlaRecord.from_dict(stored) == record
    assert stored["submitted_at"] == "2025-03-10T01:00:00.000Z"


def test_from_dict_accepts_naive_utc_datetimes_as_pymongo_returns_them() -> None:
    record = build([submitted(), contacted("2025-03-10 12:00", "c")])
    raw = record.to_dict()
    raw["submitted_at"] = datetime(2025, 3, 10, 1, 0)
    raw["contacted_at"] = datetime(2025, 3, 10, 4, 0)
    assert SlaRecord.from_dict(raw) == record


# -- notices and escalation -------------------------------------------------------------------


def _contact(notices: list[Any]) -> list[tuple[str, int, int | None, int | None]]:
    return [(n.kind, n.level, n.remaining_seconds, n.overdue_seconds) for n in notices if n.clock == "contact"]


def test_escalation_ladder_appears_at_the_configured_times(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    record = build([submitted()])  # never contacted; contact deadline 15:00, warning at 80% = 13:48
    steps = [
        ("2025-03-10 13:47:59", []),
        ("2025-03-10 13:48", [("warning", 1, 72 * 60, None)]),
        ("2025-03-10 14:59:59", []),
        ("2025-03-10 15:00", [("breached", 1, None, 0)]),
        ("2025-03-11 14:59:59", []),
        ("2025-03-11 15:00", [("breached", 2, None, 24 * 3600)]),
        ("2025-03-13 14:59:59", []),
        ("2025-03-13 15:00", [("breached", 3, None, 72 * 3600)]),
        ("2025-03-20 00:00", []),
    ]
    for now, expected in steps:
        notices = [n for n in due_notices(record, cst(now), policy, calendar) if n.clock == "contact"]
        assert _contact(notices) == expected, now
        record = mark_emitted(record, [n.key for n in notices])
    assert [k for k in record.emitted if k.startswith("contact")] == [
        "contact.0:breached:1",
        "contact.0:breached:2",
        "contact.0:breached:3",
        "contact.0:warning:1",
    ]


def test_a_late_found_breach_reports_the_true_overdue_time(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    record = build([submitted()])
    # Found three hours after the deadline: no stale warning, the breach with 3 h overdue.
    assert _contact(due_notices(record, cst("2025-03-10 18:00"), policy, calendar)) == [("breached", 1, None, 3 * 3600)]
    # Found after three days: every level that fell due, each with the overdue time at `now`.
    overdue = (3 * 24 + 1) * 3600
    assert _contact(due_notices(record, cst("2025-03-13 16:00"), policy, calendar)) == [
        ("breached", 1, None, overdue),
        ("breached", 2, None, overdue),
        ("breached", 3, None, overdue),
    ]


def test_a_clock_met_after_its_breach(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    record = build([submitted(), contacted("2025-03-10 20:00", "c")])
    # The breach happened (5 h late) and is reported even if found later; the town never got involved.
    assert _contact(due_notices(record, cst("2025-03-14 00:00"), policy, calendar)) == [("breached", 1, None, 5 * 3600)]
    assert open_state(record, cst("2025-03-14 00:00"), policy, calendar)["contact"] == "met"


def test_at_most_one_notice_per_clock_kind_and_level(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    record = build([submitted()])
    seen: list[str] = []
    now = cst("2025-03-10 09:00")
    while now < cst("2025-03-30 00:00"):  # a worker ticking every 10 minutes for 20 days
        notices = due_notices(record, now, policy, calendar)
        for n in notices:
            assert n.due_at <= now < n.due_at + timedelta(minutes=10)  # sent on the first tick after due
        seen += [n.key for n in notices]
        record = mark_emitted(record, [n.key for n in notices])
        now += timedelta(minutes=10)
    assert (
        sorted(seen)
        == sorted(set(seen))
        == [
            "contact.0:breached:1",
            "contact.0:breached:2",
            "contact.0:breached:3",
            "contact.0:warning:1",
            "reply.0:breached:1",
            "reply.0:breached:2",
            "reply.0:breached:3",
            "reply.0:warning:1",
        ]
    )


def test_notice_data_follows_the_contract(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    record = build([submitted(), routed("transferred", "2025-03-10 10:00", "G-207", "河口镇", "t")])
    [warning] = due_notices(record, cst("2025-03-10 14:00"), policy, calendar)
    assert warning.event_type == "sla.warning"
    assert warning.data() == {
        "petition_id": PID,
        "clock": "contact",
        "deadline": "2025-03-10T07:00:00.000Z",
        "grid_id": "G-207",
        "town": "河口镇",
        "level": 1,
        "generation": 0,
        "remaining_seconds": 3600,
        "provisional": False,
    }
    [breach] = due_notices(record, cst("2025-03-10 15:30"), policy, calendar)
    assert breach.event_type == "sla.breached"
    assert breach.data()["overdue_seconds"] == 1800
    assert "remaining_seconds" not in breach.data()


def test_category_clock_lengths(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    record = build([submitted(category="emergency")])
    [breach] = due_notices(record, cst("2025-03-10 11:00"), policy, calendar)
    assert (breach.clock, breach.kind, breach.deadline) == ("contact", "breached", cst("2025-03-10 11:00"))


# -- reopen, withdrawal, transfer -------------------------------------------------------------


def test_reopen_starts_a_fresh_reply_clock_with_its_own_keys(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    base = [
        submitted(),
        contacted("2025-03-10 10:00", "c"),
        replied("2025-03-12 10:00", "r0"),
        closed("2025-03-12 12:00", "x0"),
        reopened("2025-03-17 09:00", "reo"),
    ]
    record = mark_emitted(build(base), ["reply.0:warning:1"])
    now = cst("2025-03-25 00:00")  # Mon 3/17 + 5 working days, no reply yet
    [breach] = due_notices(record, now, policy, calendar)
    assert (breach.key, breach.deadline, breach.overdue_seconds) == ("reply.1:breached:1", now, 0)
    assert open_state(record, now, policy, calendar) == {"contact": "met", "reply": "breached"}
    record = build([*base, replied("2025-03-26 10:00", "r1")])
    assert open_state(record, cst("2025-03-27 00:00"), policy, calendar)["reply"] == "met"


def test_a_reply_before_the_reopening_does_not_meet_the_new_clock(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    record = build([submitted(), replied("2025-03-12 10:00", "r0"), reopened("2025-03-13 09:00", "reo")])
    assert open_state(record, cst("2025-03-14 00:00"), policy, calendar)["reply"] == "on_track"


def test_withdrawal_stops_both_clocks(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    record = build([submitted(), withdrawn("2025-03-10 10:00", "w")])
    assert due_notices(record, cst("2025-04-30 00:00"), policy, calendar) == []
    assert open_state(record, cst("2025-04-30 00:00"), policy, calendar) == {"contact": "stopped", "reply": "stopped"}
    assert next_due_at(record, cst("2025-03-10 10:00"), policy, calendar) is None


def test_withdrawal_after_a_breach_keeps_the_breach_but_stops_escalation(
    policy: SlaPolicy, calendar: WorkCalendar
) -> None:
    record = build([submitted(), withdrawn("2025-03-11 10:00", "w")])
    assert _contact(due_notices(record, cst("2025-03-20 00:00"), policy, calendar)) == [
        ("breached", 1, None, 19 * 3600)
    ]


def test_a_reopening_after_withdrawal_is_ignored(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    record = build([submitted(), withdrawn("2025-03-10 10:00", "w"), reopened("2025-03-12 09:00", "reo")])
    assert len(clock_states(record, cst("2025-03-12 10:00"), policy, calendar)) == 2


def test_transfers_do_not_reset_clocks(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    plain = build([submitted()])
    moved = build(
        [
            submitted(),
            routed("transferred", "2025-03-12 09:00", "G-310", "北镇", "t2"),
            routed("assigned", "2025-03-10 09:05", "G-001", "城关镇", "a1"),
            routed("transferred", "2025-03-11 09:00", "G-207", "河口镇", "t1"),
        ]
    )
    now = cst("2025-03-13 00:00")
    assert clock_states(moved, now, policy, calendar) == clock_states(plain, now, policy, calendar)
    assert (moved.grid_id, moved.town) == ("G-310", "北镇")  # the latest route, whatever the arrival order
    assert {n.grid_id for n in due_notices(moved, now, policy, calendar)} == {"G-310"}


# -- pauses -----------------------------------------------------------------------------------


def _reply(record: SlaRecord, now: str, policy: SlaPolicy, calendar: WorkCalendar) -> Any:
    return clock_states(record, cst(now), policy, calendar)[-1]


def test_a_pause_moves_the_reply_deadline(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    record = build([submitted(), paused("2025-03-11 10:00", "p"), resumed("2025-03-13 10:00", "r")])
    assert _reply(record, "2025-03-14 00:00", policy, calendar).deadline == cst("2025-03-20 00:00")
    # The contact clock is never paused.
    assert clock_states(record, cst("2025-03-14 00:00"), policy, calendar)[0].deadline == cst("2025-03-10 15:00")


def test_an_endless_pause_stops_counting_at_the_cap(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    record = build([submitted(), paused("2025-03-11 10:00", "p")])
    reply = _reply(record, "2025-03-16 00:00", policy, calendar)
    assert reply.state(cst("2025-03-16 00:00")) == "on_track"  # paused past the unpaused warning point
    # Cap of 5 days: the deadline settles at 3/18 + 5 days; the warning at 3/16 11:24 + 5 days.
    now = cst("2025-03-22 23:59")
    [warning] = [n for n in due_notices(record, now, policy, calendar) if n.clock == "reply"]
    assert (warning.kind, warning.deadline, warning.remaining_seconds) == ("warning", cst("2025-03-23 00:00"), 60)
    record = mark_emitted(record, [warning.key])
    assert [n for n in due_notices(record, cst("2025-03-22 23:59:59"), policy, calendar) if n.clock == "reply"] == []
    [breach] = [n for n in due_notices(record, cst("2025-03-23 00:00"), policy, calendar) if n.clock == "reply"]
    assert (breach.kind, breach.level, breach.overdue_seconds) == ("breached", 1, 0)


def test_the_cap_is_per_petition_across_reopenings(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    record = build(
        [
            submitted(),
            paused("2025-03-11 09:00", "p1"),
            resumed("2025-03-15 09:00", "r1"),  # 4 days on clock 0
            replied("2025-03-17 09:00", "rep"),
            reopened("2025-03-18 09:00", "reo"),
            paused("2025-03-19 09:00", "p2"),
            resumed("2025-03-22 09:00", "r2"),  # 3 days asked, 1 day left
        ]
    )
    reply0, reply1 = clock_states(record, cst("2025-03-25 00:00"), policy, calendar)[1:]
    assert (reply0.paused, reply1.paused) == (timedelta(days=4), timedelta(days=1))
    # Tue 3/18: 3/19-3/21, 3/24, 3/25 → 3/26 00:00, plus 1 day.
    assert reply1.deadline == cst("2025-03-27 00:00")


def test_a_pause_for_a_reason_the_policy_does_not_allow_does_not_count(
    policy: SlaPolicy, calendar: WorkCalendar
) -> None:
    strict = replace(policy, pause_reasons=frozenset({"third_party"}))
    record = build(
        [submitted(), paused("2025-03-11 10:00", "p", reason="citizen_deferred"), resumed("2025-03-13 10:00", "r")]
    )
    assert _reply(record, "2025-03-14 00:00", strict, calendar).deadline == cst("2025-03-18 00:00")
    assert _reply(record, "2025-03-14 00:00", policy, calendar).deadline == cst("2025-03-20 00:00")


# -- states and scheduling --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2025-03-10 10:00", {"contact": "on_track", "reply": "on_track"}),
        ("2025-03-10 14:00", {"contact": "warned", "reply": "on_track"}),
        ("2025-03-10 15:00", {"contact": "breached", "reply": "on_track"}),
        ("2025-03-16 11:24", {"contact": "breached", "reply": "warned"}),
        ("2025-03-18 00:00", {"contact": "breached", "reply": "breached"}),
    ],
)
def test_open_state(policy: SlaPolicy, calendar: WorkCalendar, now: str, expected: dict[str, str]) -> None:
    assert open_state(build([submitted()]), cst(now), policy, calendar) == expected


def test_events_before_the_submission_wait_for_it(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    record = build([contacted("2025-03-10 12:00", "c")])
    assert record.submitted_at is None
    now = cst("2025-03-30 00:00")
    assert due_notices(record, now, policy, calendar) == []
    assert open_state(record, now, policy, calendar) == {"contact": "pending", "reply": "pending"}
    assert next_due_at(record, now, policy, calendar) is None


def test_next_due_at(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    record = build([submitted()])
    now = cst("2025-03-10 09:00")
    assert next_due_at(record, now, policy, calendar) == cst("2025-03-10 13:48")
    record = mark_emitted(record, ["contact.0:warning:1"])
    assert next_due_at(record, now, policy, calendar) == cst("2025-03-10 15:00")
    record = build([submitted(), contacted("2025-03-10 12:00", "c")])
    assert next_due_at(record, now, policy, calendar) == cst("2025-03-16 11:24")
    # An open pause is assumed to last: the next check is where the capped deadline would put the warning.
    record = build([submitted(), contacted("2025-03-10 12:00", "c"), paused("2025-03-11 10:00", "p")])
    assert next_due_at(record, now, policy, calendar) == cst("2025-03-21 11:24")
    # Past the deadline a missed warning is not waited for.
    record = mark_emitted(build([submitted()]), ["contact.0:breached:1"])
    assert next_due_at(record, cst("2025-03-10 16:00"), policy, calendar) == cst("2025-03-11 15:00")


def test_next_due_at_on_clocks_the_caller_derived(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    now = cst("2025-03-10 09:00")
    for record in (
        build([submitted()]),
        build([submitted(), contacted("2025-03-10 12:00", "c"), paused("2025-03-11 10:00", "p")]),
    ):
        clocks = clock_states(record, None, policy, calendar)
        assert next_due_at(record, now, policy, calendar, clocks=clocks) == next_due_at(record, now, policy, calendar)


# -- bad events -------------------------------------------------------------------------------


def test_bad_events_name_the_field() -> None:
    record = build([submitted()])
    with pytest.raises(EventDataError, match=r"data\.petition_id"):
        apply(record, "petition.contacted", {"petition_id": "OTHER", "contacted_at": iso("2025-03-10 12:00")}, "x")
    with pytest.raises(EventDataError, match=r"data\.contacted_at: missing"):
        apply(record, "petition.contacted", {"petition_id": PID}, "x")
    with pytest.raises(EventDataError, match=r"data\.replied_at: time without an offset"):
        apply(record, "petition.replied", {"petition_id": PID, "replied_at": "2025-03-10T12:00:00"}, "x")
    with pytest.raises(EventDataError, match=r"data\.reason"):
        apply(record, "petition.sla_paused", {"petition_id": PID, "at": iso("2025-03-11 10:00")}, "x")


def test_a_reply_clock_reaching_an_unknown_year_is_an_error_not_a_guess(policy: SlaPolicy) -> None:
    only_2025 = WorkCalendar.from_schedules([YearSchedule(2025, frozenset({date(2025, 1, 1)}), frozenset(), "test")])
    record = build([submitted(at="2025-12-29 09:00")])
    with pytest.raises(YearNotCovered, match="2026"):
        due_notices(record, cst("2025-12-29 10:00"), policy, only_2025)
