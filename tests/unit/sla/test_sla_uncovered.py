"""The domain's `skip_uncovered` option: a calendar gap costs the reply clocks it touches, nothing else."""

from __future__ import annotations

from datetime import date

import pytest

from petition_kernel.calendar import WorkCalendar, YearNotCovered, YearSchedule
from petition_kernel.sla.clock import clock_states, due_notices, next_due_at, open_state
from petition_kernel.sla.policy import SlaPolicy

from .helpers import cst
from .test_clock import build, contacted, reopened, replied, submitted

ONLY_2025 = WorkCalendar.from_schedules([YearSchedule(2025, frozenset({date(2025, 1, 1)}), frozenset(), "test")])


def test_without_the_option_a_gap_still_raises(policy: SlaPolicy) -> None:
    record = build([submitted(at="2025-12-29 09:00")])
    for call in (
        lambda: clock_states(record, None, policy, ONLY_2025),
        lambda: next_due_at(record, cst("2025-12-29 10:00"), policy, ONLY_2025),
        lambda: open_state(record, cst("2025-12-29 10:00"), policy, ONLY_2025),
    ):
        with pytest.raises(YearNotCovered, match="2026"):
            call()


def test_the_contact_clock_is_still_watched(policy: SlaPolicy) -> None:
    record = build([submitted(at="2025-12-29 09:00")])
    clocks = clock_states(record, None, policy, ONLY_2025, skip_uncovered=True)
    assert [c.id for c in clocks] == ["contact.0"]
    # warning at 80% of 6 hours, then the breach at the deadline
    assert next_due_at(record, cst("2025-12-29 10:00"), policy, ONLY_2025, skip_uncovered=True) == cst(
        "2025-12-29 13:48"
    )
    notices = due_notices(record, cst("2025-12-29 15:30"), policy, ONLY_2025, skip_uncovered=True)
    assert [n.key for n in notices] == ["contact.0:breached:1"]
    assert open_state(record, cst("2025-12-29 10:00"), policy, ONLY_2025, skip_uncovered=True) == {
        "contact": "on_track",
        "reply": "unknown",
    }


def test_only_the_uncovered_generation_and_later_are_left_out(policy: SlaPolicy) -> None:
    record = build(
        [
            submitted(at="2025-12-01 09:00"),
            contacted("2025-12-01 10:00", "c"),
            replied("2025-12-03 10:00", "r"),
            reopened("2025-12-29 09:00", "o"),
        ]
    )
    with pytest.raises(YearNotCovered):
        clock_states(record, None, policy, ONLY_2025)
    clocks = clock_states(record, None, policy, ONLY_2025, skip_uncovered=True)
    assert [c.id for c in clocks] == ["contact.0", "reply.0"]
    assert open_state(record, cst("2025-12-29 10:00"), policy, ONLY_2025, skip_uncovered=True)["reply"] == "unknown"


def test_a_covered_record_is_unchanged_by_the_option(policy: SlaPolicy, calendar: WorkCalendar) -> None:
    record = build([submitted(at="2025-03-10 09:00")])
    now = cst("2025-03-14 09:00")
    assert clock_states(record, now, policy, calendar, skip_uncovered=True) == clock_states(
        record, now, policy, calendar
    )
    assert open_state(record, now, policy, calendar, skip_uncovered=True) == open_state(record, now, policy, calendar)
