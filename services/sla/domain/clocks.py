"""A record's clocks as sla shows and watches them: a calendar gap tolerated, escalation levels, pauses."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from petition_kernel.calendar import WorkCalendar, YearNotCovered
from petition_kernel.sla.clock import ClockState, clock_states
from petition_kernel.sla.policy import SlaPolicy
from petition_kernel.sla.record import PauseMark, SlaRecord


@dataclass(frozen=True)
class Clocks:
    """A record's clocks; `uncovered` is set when a reply clock was left out for a missing calendar year."""

    states: list[ClockState]
    uncovered: YearNotCovered | None = None


def clocks_of(record: SlaRecord, now: datetime | None, policy: SlaPolicy, calendar: WorkCalendar) -> Clocks:
    try:
        return Clocks(clock_states(record, now, policy, calendar))
    except YearNotCovered as exc:
        return Clocks(clock_states(record, now, policy, calendar, skip_uncovered=True), exc)


def reached_level(clock: Mapping[str, Any] | ClockState, levels: Iterable[tuple[int, datetime]], now: datetime) -> int:
    """The highest escalation level whose breach fell due while the clock ran (0 = not breached yet)."""
    ended = clock["ended_at"] if isinstance(clock, Mapping) else clock.ended_at
    until = now if ended is None or ended > now else ended
    reached = 0
    for level, due in levels:
        if due <= until and (ended is None or ended > due):
            reached = max(reached, level)
    return reached


def escalation_ladder(clock: ClockState, policy: SlaPolicy, category: str | None) -> list[tuple[int, datetime]]:
    """(level, when its breach falls due) for every escalation level of the clock's category."""
    return [(step.level, clock.deadline + step.after_breach) for step in policy.rules_for(category).escalation]


def current_pause(record: SlaRecord, policy: SlaPolicy) -> PauseMark | None:
    """The pause the reply clock is in now, by the kernel's pairing rule, or None.

    Marks in time order: a pause opens only when none is open and its reason is one the policy
    counts; a resume closes the open pause; anything else changes nothing (clock._pause_intervals).
    """
    open_mark: PauseMark | None = None
    for mark in sorted(record.pause_marks, key=PauseMark.sort_key):
        if mark.kind == "pause":
            if open_mark is None and mark.reason in policy.pause_reasons:
                open_mark = mark
        else:
            open_mark = None
    return open_mark


def has_provisional_deadline(record: SlaRecord, policy: SlaPolicy, calendar: WorkCalendar) -> bool:
    """Whether any reply clock's deadline counts days of a provisional calendar year (so it may move)."""
    return any(clock.provisional for clock in clocks_of(record, None, policy, calendar).states)
