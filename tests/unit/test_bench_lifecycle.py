"""The year replay's planning (petition_bench.lifecycle): shares, slot order and the expected end state."""

import random
from collections import Counter
from datetime import date, timedelta

import pytest

from petition_bench.lifecycle import (
    PHASES,
    Plan,
    Shares,
    build_schedule,
    draw_plan,
    expected_outcome,
    slot_instant,
)
from petition_kernel.calendar import WorkCalendar

CALENDAR = WorkCalendar.load()


def weekdays_only(d: date, n: int) -> date:
    while n:
        d += timedelta(days=1)
        n -= d.weekday() < 5
    return d


def actions_of(schedule, index):
    """(slot, kind, round) of one petition, in schedule order."""
    return [
        (slot, a.kind, a.round) for slot, tasks in schedule.items() for task in tasks for a in task if a.index == index
    ]


def test_drawn_plans_follow_the_shares():
    rng = random.Random(1)
    shares = Shares()
    plans = [draw_plan(rng, shares) for _ in range(40_000)]
    n = len(plans)
    assert sum(p.withdraw for p in plans) / n == pytest.approx(shares.withdraw, abs=0.003)
    handled = [p for p in plans if not p.withdraw]
    assert sum(p.late_contact for p in handled) / len(handled) == pytest.approx(shares.late_contact, abs=0.005)
    assert sum(p.transfer for p in handled) / len(handled) == pytest.approx(shares.transfer, abs=0.005)
    firsts = Counter(p.first_rating for p in handled)
    assert firsts["dissatisfied"] / len(handled) == pytest.approx(0.12, abs=0.008)
    # a second rating exactly for the reopened ones
    assert all((p.second_rating is not None) == p.reopened for p in handled)
    rated = [p for p in handled if p.final_rating != "none"]
    satisfied = sum(p.final_rating in ("satisfied", "basically_satisfied") for p in rated) / len(rated)
    assert satisfied == pytest.approx(0.94, abs=0.01)  # near the reference county's 94.18 %


def test_a_reopened_petition_runs_through_two_handlings_in_order():
    plan = Plan(reply_working_day=2, first_rating="dissatisfied", second_rating="satisfied", transfer=True)
    friday = date(2025, 3, 7)
    schedule = build_schedule([friday], [plan], weekdays_only, Shares())
    got = actions_of(schedule, 0)
    assert [(k, r) for _, k, r in got] == [
        ("submit", 1),
        ("contact", 1),
        ("transfer", 1),
        ("reply", 1),
        ("feedback", 1),
        ("contact", 2),
        ("reply", 2),
        ("feedback", 2),
    ]
    slots = [slot for slot, _, _ in got]
    assert slots[0] == (friday, "submit") and slots[1] == slots[2] == (friday, "contact")
    assert slots[3] == (date(2025, 3, 11), "reply")  # Tuesday: the 2nd working day after a Friday
    assert slots[4] == (date(2025, 3, 12), "morning")  # rated the next morning
    assert slots[5] == (date(2025, 3, 13), "morning")  # contacted again the day after the reopening
    assert slots[6] == (date(2025, 3, 17), "reply")  # two working days later
    assert slots[7] == (date(2025, 3, 18), "morning")
    instants = [slot_instant(s) for s in slots]
    assert instants == sorted(instants)


def test_late_contacts_unrated_and_withdrawn_petitions():
    day = date(2025, 5, 6)
    plans = [
        Plan(late_contact=True, reply_working_day=1, first_rating="none"),
        Plan(withdraw=True),
    ]
    schedule = build_schedule([day, day], plans, CALENDAR.add_working_days, Shares())
    late = actions_of(schedule, 0)
    assert [(s, k) for s, k, _ in late] == [
        ((day, "submit"), "submit"),
        ((day + timedelta(days=1), "morning"), "contact"),
        ((day + timedelta(days=1), "reply"), "reply"),  # no feedback: routing's timeout closes it
    ]
    assert [(s, k) for s, k, _ in actions_of(schedule, 1)] == [
        ((day, "submit"), "submit"),
        ((day, "contact"), "withdraw"),
    ]


def test_slots_come_in_time_order_and_each_petition_has_one_task_per_slot():
    rng = random.Random(3)
    days = [date(2025, 1, 1) + timedelta(days=rng.randrange(60)) for _ in range(500)]
    plans = [draw_plan(rng, Shares()) for _ in days]
    schedule = build_schedule(days, plans, CALENDAR.add_working_days, Shares())
    keys = list(schedule)
    assert keys == sorted(keys, key=lambda s: (s[0], PHASES.index(s[1])))
    for tasks in schedule.values():
        owners = [task[0].index for task in tasks]
        assert len(owners) == len(set(owners))
        assert all(len({a.index for a in task}) == 1 for task in tasks)
    assert sum(a.kind == "submit" for tasks in schedule.values() for t in tasks for a in t) == 500


def test_expected_outcome_counts_only_accepted_petitions():
    plans = [
        Plan(),
        Plan(withdraw=True),
        Plan(first_rating="dissatisfied", second_rating="dissatisfied", transfer=True),
        Plan(transfer=True),
    ]
    got = expected_outcome(plans, [True, True, True, False])  # the last one was a duplicate
    assert (got.accepted, got.withdrawn, got.closed, got.reopened, got.transferred) == (3, 1, 2, 1, 1)
