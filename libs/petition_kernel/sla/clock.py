"""The SLA clocks of one petition, derived from its record's facts, and the notices they call for.

Clocks: one contact clock (starts at submission) and one reply clock per generation: generation 0
starts at submission, generation k at the k-th reopening. A reply clock is met by the first reply at or
after its start (and before the next reopening); it is stopped by a closure, a withdrawal or a newer
reopening. The contact clock is met by the first contact and stopped by a closure or withdrawal;
transfers and reopenings never restart it. Pauses act on reply clocks only (rules in `deadlines.py`).

Notices (at most one per clock, generation, kind and level; keys like "reply.1:breached:2"):
  - warning, level 1: due at the warning point, sent only while the clock is still running and not yet
    past its deadline (after the deadline the breach says more).
  - breach, level L: due at deadline + the ladder's delay for L, if the clock was still running then.
    A breach is a fact, so it is reported even when found late (after an outage), with the overdue time
    measured from the true deadline: to `now`, or to the met/stopped time if the clock has ended since.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from petition_kernel.calendar import WorkCalendar, YearNotCovered
from petition_kernel.times import format_time, to_utc

from .deadlines import (
    Pause,
    apply_pauses,
    contact_deadline,
    reply_deadline,
    reply_deadline_is_provisional,
    warning_point,
)
from .policy import ClockRules, SlaPolicy
from .record import PauseMark, SlaRecord, apply, mark_emitted

__all__ = [
    "ClockState",
    "DeadlineChange",
    "Notice",
    "SlaRecord",
    "apply",
    "clock_states",
    "deadline_changes",
    "due_notices",
    "mark_emitted",
    "next_due_at",
    "open_state",
]

CONTACT, REPLY = "contact", "reply"
MET, STOPPED = "met", "stopped"
WARNING, BREACHED = "warning", "breached"


@dataclass(frozen=True)
class ClockState:
    clock: str  # "contact" | "reply"
    generation: int  # 0 for the contact clock and the first reply clock; k after the k-th reopening
    started_at: datetime
    deadline: datetime  # moved by counted pauses, as of the `now` it was derived at
    warning_at: datetime
    ended_at: datetime | None  # when it was met or stopped; None while running
    outcome: str | None  # "met" | "stopped" | None
    paused: timedelta  # pause time counted
    provisional: bool = False  # the deadline counts days of a provisional calendar year

    @property
    def id(self) -> str:
        return f"{self.clock}.{self.generation}"

    def running_at(self, t: datetime) -> bool:
        return self.ended_at is None or self.ended_at > t

    def state(self, now: datetime) -> str:
        """on_track | warned | breached | met | stopped."""
        now = to_utc(now)
        if self.outcome is not None and not self.running_at(now):
            return self.outcome
        if now >= self.deadline:
            return BREACHED
        if now >= self.warning_at:
            return "warned"
        return "on_track"


@dataclass(frozen=True)
class Notice:
    """An `sla.warning` or `sla.breached` that is due; `data()` is the event's contract `data`."""

    petition_id: str
    kind: str  # "warning" | "breached"
    clock: str
    generation: int
    level: int
    deadline: datetime
    due_at: datetime
    grid_id: str | None
    town: str | None
    remaining_seconds: int | None = None
    overdue_seconds: int | None = None
    provisional: bool = False

    @property
    def key(self) -> str:
        return f"{self.clock}.{self.generation}:{self.kind}:{self.level}"

    @property
    def event_type(self) -> str:
        return f"sla.{self.kind}"

    def data(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "petition_id": self.petition_id,
            "clock": self.clock,
            "deadline": format_time(self.deadline),
            "grid_id": self.grid_id,
            "town": self.town,
            "level": self.level,
            "generation": self.generation,  # optional addition: which reply clock (0 = before any reopening)
            # optional addition: the deadline counts days of a year whose holiday notice is not imported yet
            "provisional": self.provisional,
        }
        if self.kind == WARNING:
            out["remaining_seconds"] = self.remaining_seconds
        else:
            out["overdue_seconds"] = self.overdue_seconds
        return out


# -- deriving the clocks ------------------------------------------------------------------------


def clock_states(
    record: SlaRecord,
    now: datetime | None,
    policy: SlaPolicy,
    calendar: WorkCalendar,
    *,
    skip_uncovered: bool = False,
) -> list[ClockState]:
    """The contact clock and every reply clock, oldest first; [] before the submission is known.

    A pause still going on counts up to `now`; with `now=None` it counts as far as the cap allows.
    A reply deadline in a year the calendar does not cover raises `YearNotCovered`; with
    `skip_uncovered=True` that reply clock and every later one are left out instead (the contact
    clock and the earlier reply clocks do not depend on them), so a caller that has already
    reported the gap can still watch what it can compute.
    """
    if record.submitted_at is None:
        return []
    rules = policy.rules_for(record.category)
    return [_contact_clock(record, rules), *_reply_clocks(record, rules, policy, calendar, now, skip_uncovered)]


def _contact_clock(record: SlaRecord, rules: ClockRules) -> ClockState:
    start = record.submitted_at
    assert start is not None
    deadline = contact_deadline(start, rules.contact_hours)
    stop = _earliest(_first_at_or_after(record.closed_at, start), record.withdrawn_at)
    met = record.contacted_at
    if met is not None and (stop is None or met <= stop):
        ended, outcome = met, MET
    else:
        ended, outcome = stop, (STOPPED if stop is not None else None)
    return ClockState(
        clock=CONTACT,
        generation=0,
        started_at=start,
        deadline=deadline,
        warning_at=warning_point(start, deadline, rules.warning_fraction),
        ended_at=ended,
        outcome=outcome,
        paused=timedelta(0),
    )


def _reply_clocks(
    record: SlaRecord,
    rules: ClockRules,
    policy: SlaPolicy,
    calendar: WorkCalendar,
    now: datetime | None,
    skip_uncovered: bool = False,
) -> Iterator[ClockState]:
    withdrawn = record.withdrawn_at
    starts = _reply_starts(record)
    pauses = _pause_intervals(record.pause_marks, policy.pause_reasons)
    cap_left = policy.pause_cap  # shared by all reply clocks of the petition, in time order
    for generation, start in enumerate(starts):
        superseded_at = starts[generation + 1] if generation + 1 < len(starts) else None
        closed = _first_at_or_after(record.closed_at, start)
        if closed is not None and superseded_at is not None and closed >= superseded_at:
            closed = None  # that closure belongs to a later clock
        stop = _earliest(closed, withdrawn)
        reply = next(
            (
                r
                for r in record.replied_at
                if r >= start and (superseded_at is None or r < superseded_at) and (stop is None or r <= stop)
            ),
            None,
        )
        if reply is not None:
            ended, outcome = reply, MET
        else:
            ended = _earliest(stop, superseded_at)
            outcome = STOPPED if ended is not None else None
        try:
            base = reply_deadline(start, rules.reply_working_days, calendar)
            provisional = reply_deadline_is_provisional(start, rules.reply_working_days, calendar)
        except YearNotCovered:
            if skip_uncovered:
                return  # later clocks start later, and their pauses depend on this one's share of the cap
            raise
        moved = apply_pauses(
            start,
            base,
            pauses,
            cap_left=cap_left,
            warning_fraction=rules.warning_fraction,
            ended_at=ended,
            until=now,
        )
        cap_left = moved.cap_left
        yield ClockState(
            clock=REPLY,
            generation=generation,
            started_at=start,
            deadline=moved.deadline,
            warning_at=moved.warning_at,
            ended_at=ended,
            outcome=outcome,
            paused=moved.paused,
            provisional=provisional,
        )


def _reply_starts(record: SlaRecord) -> list[datetime]:
    """When each reply clock starts: the submission, then every reopening before any withdrawal."""
    submitted = record.submitted_at
    assert submitted is not None
    withdrawn = record.withdrawn_at
    return [submitted] + [r for r in record.reopened_at if r > submitted and (withdrawn is None or r < withdrawn)]


def _pause_intervals(marks: tuple[PauseMark, ...], reasons: frozenset[str]) -> list[Pause]:
    """Pair pause/resume marks in time order: a pause while paused, or a resume while running, is a no-op."""
    intervals: list[Pause] = []
    open_since: datetime | None = None
    for mark in sorted(marks, key=PauseMark.sort_key):
        if mark.kind == "pause":
            if open_since is None and mark.reason in reasons:
                open_since = mark.at
        elif open_since is not None:
            intervals.append(Pause(open_since, mark.at))
            open_since = None
    if open_since is not None:
        intervals.append(Pause(open_since, None))
    return intervals


def _first_at_or_after(times: tuple[datetime, ...], start: datetime) -> datetime | None:
    return next((t for t in times if t >= start), None)


def _earliest(*times: datetime | None) -> datetime | None:
    present = [t for t in times if t is not None]
    return min(present) if present else None


# -- notices ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Planned:
    clock: ClockState
    kind: str
    level: int
    due_at: datetime

    @property
    def key(self) -> str:
        return f"{self.clock.id}:{self.kind}:{self.level}"


def _planned(clocks: list[ClockState], rules: ClockRules) -> Iterator[_Planned]:
    """Every notice the clocks call for at some time, whether or not that time has come."""
    for clock in clocks:
        if clock.running_at(clock.warning_at):
            yield _Planned(clock, WARNING, 1, clock.warning_at)
        for step in rules.escalation:
            due = clock.deadline + step.after_breach
            if not clock.running_at(due):
                break  # met or stopped before this level fell due, so before every later one too
            yield _Planned(clock, BREACHED, step.level, due)


def due_notices(
    record: SlaRecord, now: datetime, policy: SlaPolicy, calendar: WorkCalendar, *, skip_uncovered: bool = False
) -> list[Notice]:
    """The notices due at `now` that `record.emitted` does not list yet, in due order.

    `skip_uncovered` as in `clock_states`: without it, a reply clock in an uncovered year raises.
    """
    now = to_utc(now)
    rules = policy.rules_for(record.category)
    emitted = set(record.emitted)
    notices = []
    for plan in _planned(clock_states(record, now, policy, calendar, skip_uncovered=skip_uncovered), rules):
        clock = plan.clock
        if plan.key in emitted or plan.due_at > now:
            continue
        if plan.kind == WARNING:
            if not clock.running_at(now) or now >= clock.deadline:
                continue
            remaining, overdue = _whole_seconds(clock.deadline - now), None
        else:
            measured_to = now if clock.running_at(now) else clock.ended_at
            assert measured_to is not None
            remaining, overdue = None, _whole_seconds(measured_to - clock.deadline)
        notices.append(
            Notice(
                petition_id=record.petition_id,
                kind=plan.kind,
                clock=clock.clock,
                generation=clock.generation,
                level=plan.level,
                deadline=clock.deadline,
                due_at=plan.due_at,
                grid_id=record.grid_id,
                town=record.town,
                remaining_seconds=remaining,
                overdue_seconds=overdue,
                provisional=clock.provisional,
            )
        )
    return sorted(notices, key=lambda n: (n.due_at, n.clock, n.generation, n.level, n.kind))


def next_due_at(
    record: SlaRecord,
    now: datetime,
    policy: SlaPolicy,
    calendar: WorkCalendar,
    *,
    skip_uncovered: bool = False,
    clocks: list[ClockState] | None = None,
) -> datetime | None:
    """When `due_notices` next needs to run for this record, if no new event arrives before then.

    A pause still going on is assumed to go on (any resume is an event, which recomputes this), so the
    answer never comes too early to matter. The result may be <= now: a notice is due already.
    `clocks`: `clock_states(record, None, policy, calendar, skip_uncovered=…)`, when the caller has
    them already (deriving them is most of the cost).
    """
    now = to_utc(now)
    rules = policy.rules_for(record.category)
    emitted = set(record.emitted)
    times = []
    if clocks is None:
        clocks = clock_states(record, None, policy, calendar, skip_uncovered=skip_uncovered)
    for plan in _planned(clocks, rules):
        if plan.key in emitted:
            continue
        if plan.kind == WARNING and (not plan.clock.running_at(now) or now >= plan.clock.deadline):
            continue  # a warning that can no longer be sent
        times.append(plan.due_at)
    return min(times) if times else None


def open_state(
    record: SlaRecord, now: datetime, policy: SlaPolicy, calendar: WorkCalendar, *, skip_uncovered: bool = False
) -> dict[str, str]:
    """{"contact": state, "reply": state of the newest reply clock}; "pending" before the submission is known.

    With `skip_uncovered`, a newest reply clock that cannot be computed (uncovered year) is "unknown".
    """
    clocks = clock_states(record, to_utc(now), policy, calendar, skip_uncovered=skip_uncovered)
    if not clocks:
        return {CONTACT: "pending", REPLY: "pending"}
    reply = clocks[-1].state(now) if len(clocks) > 1 and _all_reply_clocks(record, clocks) else "unknown"
    return {CONTACT: clocks[0].state(now), REPLY: reply}


def _all_reply_clocks(record: SlaRecord, clocks: list[ClockState]) -> bool:
    """Whether `clocks` holds every reply clock the record calls for (none skipped as uncovered)."""
    return len(clocks) - 1 == len(_reply_starts(record))


def _whole_seconds(delta: timedelta) -> int:
    return int(delta // timedelta(seconds=1))


# -- deadlines derived again after a calendar change --------------------------------------------


@dataclass(frozen=True)
class DeadlineChange:
    """A reply clock whose deadline (or its provisional mark) differs between two calendars."""

    petition_id: str
    generation: int
    previous_deadline: datetime
    previous_provisional: bool
    deadline: datetime
    provisional: bool
    grid_id: str | None
    town: str | None
    corrected: tuple[str, ...]  # keys of notices sent that the new deadline would not have called for yet

    def data(self, calendar_years: tuple[int, ...]) -> dict[str, Any]:
        """The `sla.deadline_changed` event's data (contract/schemas/events/sla.deadline_changed.json)."""
        return {
            "petition_id": self.petition_id,
            "clock": REPLY,
            "generation": self.generation,
            "deadline": format_time(self.deadline),
            "previous_deadline": format_time(self.previous_deadline),
            "provisional": self.provisional,
            "previous_provisional": self.previous_provisional,
            "grid_id": self.grid_id,
            "town": self.town,
            "reason": "calendar",
            "calendar_years": list(calendar_years),
            "corrected": [
                {"key": key, "type": f"sla.{key.split(':')[1]}", "level": int(key.split(":")[2])}
                for key in self.corrected
            ],
        }


def deadline_changes(
    record: SlaRecord, now: datetime, policy: SlaPolicy, before: WorkCalendar, after: WorkCalendar
) -> list[DeadlineChange]:
    """The reply clocks whose deadline or provisional mark `after` changes from what `before` gave.

    Both are derived as of `now` (pause time counted so far), so a difference is the calendar's alone.
    A clock `before` could not compute (its year was not covered) had no deadline to change: the scanner
    computes it for the first time. Notices already sent stay sent; those the new deadline would not
    have called for by `now` are listed in `corrected`.
    """
    now = to_utc(now)
    old = {c.id: c for c in clock_states(record, now, policy, before, skip_uncovered=True) if c.clock == REPLY}
    new_clocks = clock_states(record, now, policy, after, skip_uncovered=True)
    rules = policy.rules_for(record.category)
    called_for = {plan.key for plan in _planned(new_clocks, rules) if plan.due_at <= now}
    changes = []
    for clock in new_clocks:
        previous = old.get(clock.id)
        if clock.clock != REPLY or previous is None:
            continue
        if (previous.deadline, previous.provisional) == (clock.deadline, clock.provisional):
            continue
        sent = [key for key in record.emitted if key.startswith(f"{clock.id}:")]
        changes.append(
            DeadlineChange(
                petition_id=record.petition_id,
                generation=clock.generation,
                previous_deadline=previous.deadline,
                previous_provisional=previous.provisional,
                deadline=clock.deadline,
                provisional=clock.provisional,
                grid_id=record.grid_id,
                town=record.town,
                corrected=tuple(sorted(key for key in sent if key not in called_for)),
            )
        )
    return changes
