"""One petition's facts as stats keeps them, and the petition's contribution to the counters.

Facts are what the events said, kept so that the order and repetition of events do not matter:
every field is merged with an operation that is commutative, associative and idempotent (the
earliest submission, the latest assignment, the earliest contact, sets of reply/reopen/close
times, a set of pause marks, the latest rating, flags). So `merge` applied to any order of the
same events, with any of them repeated, gives equal facts, and no event ids need remembering.
Two different events at the same microsecond are ordered by their data (a fixed total order), so
the result does not depend on which came first; two events with the same time and the same data
are the same fact.

The counters are a pure function of the facts: `contribution(facts)` says which cell a petition
counts in and with which numbers. The service keeps, per cell, the sum of the contributions of
its petitions; an event replaces a petition's contribution by the new one (counters +=
after - before), which makes the counters exact, idempotent and order-independent by construction.

Definitions (docs/statistics.md has them with formulas). A petition counts in the cell of its
submission day (Asia/Shanghai), its current area and department (the latest `petition.assigned`
or `petition.transferred`), its category and channel; before it is known to be submitted it
counts nowhere. A petition with `duplicate_of` counts only in `duplicates`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from petition_kernel.calendar import CalendarDirectory, WorkCalendar, YearNotCovered
from petition_kernel.sla.clock import ClockState, clock_states
from petition_kernel.sla.policy import SlaPolicy
from petition_kernel.sla.record import PauseMark, SlaRecord
from petition_kernel.times import local_date

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

# The counters of a cell, in storage order. Sums over the petitions counted in the cell.
COUNTERS: tuple[str, ...] = (
    "accepted",  # submitted, not a duplicate (intake rejects invalid petitions before they exist)
    "duplicates",  # submitted with duplicate_of set; counted in nothing else
    "assigned",  # accepted and assigned (petition.assigned or .transferred seen)
    "contacted",  # accepted with a petition.contacted
    "contacted_on_time",  # accepted whose contact clock was met by the deadline (sla rules)
    "contact_seconds",  # sum over `contacted` of whole seconds from submission to first contact
    "replied",  # accepted with a petition.replied
    "replied_on_time",  # accepted whose first reply clock was met by its deadline (sla rules)
    "reply_working_days",  # sum over `replied` of working days from submission day to first reply day
    "closed",  # accepted with a petition.closed
    "transferred",  # accepted with at least one petition.transferred
    "reopened",  # accepted with at least one petition.reopened
    "withdrawn",  # accepted with petition.withdrawn
    "feedback",  # accepted with at least one petition.feedback_received
    "satisfied",  # ... whose latest rating is satisfied
    "basically_satisfied",
    "dissatisfied",
    "sla_warned",  # accepted with at least one sla.warning
    "sla_breached",  # accepted with at least one sla.breached
    # ... (added later, so stored cells may be shorter: read as 0)
    "replied_provisional",  # replied, whose first reply deadline counts days of a provisional calendar year
)
INDEX: dict[str, int] = {name: i for i, name in enumerate(COUNTERS)}
N_COUNTERS = len(COUNTERS)
SATISFACTION = ("satisfied", "basically_satisfied", "dissatisfied")

PAUSE, RESUME = 0, 1
SLA_WARNED, SLA_BREACHED = 1, 2


def to_us(moment: datetime) -> int:
    """Microseconds since 1970 UTC: exact for every RFC 3339 time the events carry."""
    return (moment - EPOCH) // _US


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


# ---- facts ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Facts:
    submitted: tuple[int, str, str, bool] | None = None  # the earliest: (at, category, channel, duplicate)
    assignment: tuple[int, str | None, str | None, str | None, str | None] | None = None
    # ^ the latest: (at, grid_id, village, town, department)
    transferred: bool = False
    contacted: int | None = None  # the earliest contact
    replied: tuple[int, ...] = ()  # every reply time, sorted, distinct
    reopened: tuple[int, ...] = ()
    closed: tuple[int, ...] = ()
    withdrawn: int | None = None  # the earliest withdrawal
    pauses: tuple[tuple[int, int, str | None], ...] = ()  # (at, PAUSE|RESUME, reason), sorted, distinct
    feedback: tuple[int, str] | None = None  # the latest: (received at, satisfaction)
    sla: int = 0  # SLA_WARNED | SLA_BREACHED bits
    # ids of the sla.deadline_changed events seen: each one means "derive the on-time verdicts again",
    # with the working-day calendar as it is now (the event follows an imported holiday notice)
    rederived: tuple[str, ...] = ()

    def to_list(self) -> list[Any]:
        """A JSON-able form (stored inside compressed blocks, never as a MongoDB document)."""
        return [
            self.submitted,
            self.assignment,
            self.transferred,
            self.contacted,
            self.replied,
            self.reopened,
            self.closed,
            self.withdrawn,
            self.pauses,
            self.feedback,
            self.sla,
            self.rederived,
        ]

    @classmethod
    def from_list(cls, raw: list[Any]) -> Facts:
        sub, asg, transferred, contacted, replied, reopened, closed, withdrawn, pauses, feedback, sla = raw[:11]
        rederived = raw[11] if len(raw) > 11 else ()  # blocks written before the field existed
        return cls(
            submitted=(sub[0], sub[1], sub[2], bool(sub[3])) if sub else None,
            assignment=(asg[0], asg[1], asg[2], asg[3], asg[4]) if asg else None,
            transferred=bool(transferred),
            contacted=contacted,
            replied=tuple(replied),
            reopened=tuple(reopened),
            closed=tuple(closed),
            withdrawn=withdrawn,
            pauses=tuple((p[0], p[1], p[2]) for p in pauses),
            feedback=(feedback[0], feedback[1]) if feedback else None,
            sla=int(sla),
            rederived=tuple(rederived),
        )


def _order(value: tuple[Any, ...]) -> tuple[Any, ...]:
    """A total order on fact tuples whose fields may be None (None sorts first)."""
    return tuple(("", "") if v is None else (type(v).__name__, v) for v in value)


class Change(NamedTuple):
    """What one event says about one petition (see changes.py for how events become changes)."""

    petition_id: str
    kind: str
    at: int  # microseconds since 1970 UTC; 0 for kinds without a time
    event_id: str
    value: tuple[Any, ...] = ()


KINDS = (
    "submitted",  # value: (category, channel, duplicate: bool, citizen ref or None: for hotspots only)
    "assigned",  # value: (grid_id, village, town, department)
    "transferred",  # value: as assigned
    "contacted",
    "replied",
    "reopened",
    "closed",
    "withdrawn",
    "paused",  # value: (reason,)
    "resumed",
    "feedback",  # value: (satisfaction,)
    "sla_warning",
    "sla_breached",
    "deadline_changed",  # sla derived a reply deadline again (calendar change): the verdicts follow
)


def _add(times: tuple[int, ...], at: int) -> tuple[int, ...]:
    return times if at in times else tuple(sorted((*times, at)))


def _earliest(current: int | None, at: int) -> int:
    return at if current is None else min(current, at)


def merge(facts: Facts | None, change: Change) -> Facts:
    """The facts with this change added; returns `facts` itself when the change adds nothing."""
    f = facts if facts is not None else Facts()
    at, value = change.at, change.value
    match change.kind:
        case "submitted":
            new = (at, value[0], value[1], bool(value[2]))
            if f.submitted is not None and _order(f.submitted) <= _order(new):
                return f
            return replace(f, submitted=new)
        case "assigned" | "transferred":
            new_asg = (at, value[0], value[1], value[2], value[3])
            transferred = f.transferred or change.kind == "transferred"
            if f.assignment is not None and _order(f.assignment) >= _order(new_asg):
                return f if transferred == f.transferred else replace(f, transferred=transferred)
            return replace(f, assignment=new_asg, transferred=transferred)
        case "contacted":
            earliest = _earliest(f.contacted, at)
            return f if earliest == f.contacted else replace(f, contacted=earliest)
        case "replied":
            times = _add(f.replied, at)
            return f if times is f.replied else replace(f, replied=times)
        case "reopened":
            times = _add(f.reopened, at)
            return f if times is f.reopened else replace(f, reopened=times)
        case "closed":
            times = _add(f.closed, at)
            return f if times is f.closed else replace(f, closed=times)
        case "withdrawn":
            earliest = _earliest(f.withdrawn, at)
            return f if earliest == f.withdrawn else replace(f, withdrawn=earliest)
        case "paused" | "resumed":
            mark = (at, PAUSE if change.kind == "paused" else RESUME, value[0] if value else None)
            if mark in f.pauses:
                return f
            return replace(f, pauses=tuple(sorted((*f.pauses, mark), key=_order)))
        case "feedback":
            new_fb = (at, value[0])
            if f.feedback is not None and f.feedback >= new_fb:
                return f
            return replace(f, feedback=new_fb)
        case "sla_warning" | "sla_breached":
            bits = f.sla | (SLA_WARNED if change.kind == "sla_warning" else SLA_BREACHED)
            return f if bits == f.sla else replace(f, sla=bits)
        case "deadline_changed":
            if change.event_id in f.rederived:
                return f
            return replace(f, rederived=tuple(sorted((*f.rederived, change.event_id))))
    raise ValueError(f"unknown change kind {change.kind!r}")


# ---- contribution --------------------------------------------------------------------------------

CellKey = tuple[int, str | None, str | None, str | None, str, str | None, str]
# (submission day as a proleptic ordinal of the Asia/Shanghai date, grid_id, village, town, category,
#  department, channel)


class Contribution(NamedTuple):
    key: CellKey
    values: tuple[int, ...]

    def to_list(self) -> list[Any]:
        return [list(self.key), list(self.values)]

    @classmethod
    def from_list(cls, raw: list[Any] | None) -> Contribution | None:
        if raw is None:
            return None
        key, values = raw
        return cls(tuple(key), tuple(values))  # type: ignore[arg-type]


@dataclass
class SlaRules:
    """The sla service's policy and working-day calendar: "on time" means what it means to sla.

    `calendar` is replaced when the calendar files change (`refresh_calendar`, with a directory): the
    petitions whose deadlines that moves are recomputed when sla's sla.deadline_changed arrives."""

    policy: SlaPolicy
    calendar: WorkCalendar
    calendar_files: CalendarDirectory | None = None

    def refresh_calendar(self) -> bool:
        """Read the calendar files again if they changed; True if the calendar did. A malformed file
        raises CalendarFileError and leaves the calendar as it was."""
        if self.calendar_files is None:
            return False
        fresh = self.calendar_files.refresh()
        if fresh is None:
            return False
        self.calendar = fresh
        return True


@dataclass
class CalendarGaps:
    """Counts petitions whose reply deadline fell in a year the calendar does not cover."""

    count: int = 0
    on_gap: Callable[[], None] | None = None

    def add(self) -> None:
        self.count += 1
        if self.on_gap is not None:
            self.on_gap()


def _on_time(clock: ClockState | None) -> bool:
    return (
        clock is not None
        and clock.outcome == "met"
        and clock.ended_at is not None
        and (clock.ended_at <= clock.deadline)
    )


def _sla_record(petition_id: str, f: Facts) -> SlaRecord:
    assert f.submitted is not None
    return SlaRecord(
        petition_id=petition_id,
        category=f.submitted[1],
        submitted_at=from_us(f.submitted[0]),
        contacted_at=from_us(f.contacted) if f.contacted is not None else None,
        replied_at=tuple(from_us(t) for t in f.replied),
        reopened_at=tuple(from_us(t) for t in f.reopened),
        closed_at=tuple(from_us(t) for t in f.closed),
        withdrawn_at=from_us(f.withdrawn) if f.withdrawn is not None else None,
        pause_marks=tuple(  # the mark's data stands in for the event id in the sla rules' tie-break
            PauseMark(
                at=from_us(at), kind="pause" if kind == PAUSE else "resume", event_id=f"{kind}:{reason}", reason=reason
            )
            for at, kind, reason in f.pauses
        ),
    )


def _clocks(petition_id: str, f: Facts, rules: SlaRules, gaps: CalendarGaps | None) -> list[ClockState]:
    record = _sla_record(petition_id, f)
    try:
        return clock_states(record, None, rules.policy, rules.calendar)
    except YearNotCovered:
        if gaps is not None:
            gaps.add()
        try:  # the sla domain can leave out the reply clocks it cannot compute
            return clock_states(record, None, rules.policy, rules.calendar, skip_uncovered=True)  # type: ignore[call-arg]
        except (TypeError, YearNotCovered):
            return []


def cell_key(f: Facts) -> CellKey | None:
    if f.submitted is None:
        return None
    at, category, channel, _ = f.submitted
    grid = village = town = department = None
    if f.assignment is not None:
        _, grid, village, town, department = f.assignment
    day = local_date(from_us(at)).toordinal()
    return (day, grid, village, town, category, department, channel)


def _sla_inputs(f: Facts) -> tuple[Any, ...]:
    """What the on-time verdicts depend on (an assignment or a rating changes none of them)."""
    return (f.submitted, f.contacted, f.replied, f.reopened, f.closed, f.withdrawn, f.pauses, f.rederived)


_ON_TIME = (
    INDEX["contacted_on_time"],
    INDEX["replied_on_time"],
    INDEX["reply_working_days"],
    INDEX["replied_provisional"],
)


def contribution(
    petition_id: str,
    f: Facts | None,
    rules: SlaRules,
    gaps: CalendarGaps | None = None,
    previous_facts: Facts | None = None,
    previous: Contribution | None = None,
) -> Contribution | None:
    """The cell this petition counts in and its counter values there; None before its submission is known.

    With the petition's previous facts and contribution, the on-time verdicts are reused when
    nothing they depend on changed (they are the costly part: the sla rules' clocks).
    """
    if f is None or f.submitted is None:
        return None
    key = cell_key(f)
    assert key is not None
    values = [0] * N_COUNTERS
    if f.submitted[3]:  # a duplicate: its original carries every other count
        values[INDEX["duplicates"]] = 1
        return Contribution(key, tuple(values))
    submitted_at = f.submitted[0]
    values[INDEX["accepted"]] = 1
    values[INDEX["assigned"]] = int(f.assignment is not None)
    reuse = (
        previous is not None
        and previous_facts is not None
        and previous.values[INDEX["accepted"]]
        and _sla_inputs(previous_facts) == _sla_inputs(f)
    )
    if reuse:
        assert previous is not None
        for i in _ON_TIME:
            values[i] = previous.values[i] if i < len(previous.values) else 0
    elif f.contacted is not None or f.replied:
        clocks = _clocks(petition_id, f, rules, gaps)
        contact = clocks[0] if clocks else None
        first_reply_clock = clocks[1] if len(clocks) > 1 else None
        values[INDEX["contacted_on_time"]] = int(f.contacted is not None and _on_time(contact))
        if f.replied:
            values[INDEX["replied_on_time"]] = int(_on_time(first_reply_clock))
            values[INDEX["replied_provisional"]] = int(first_reply_clock is not None and first_reply_clock.provisional)
            values[INDEX["reply_working_days"]] = _working_days(submitted_at, f.replied[0], rules, gaps)
    if f.contacted is not None:
        values[INDEX["contacted"]] = 1
        values[INDEX["contact_seconds"]] = max(0, f.contacted - submitted_at) // 1_000_000
    values[INDEX["replied"]] = int(bool(f.replied))
    values[INDEX["closed"]] = int(bool(f.closed))
    values[INDEX["transferred"]] = int(f.transferred)
    values[INDEX["reopened"]] = int(bool(f.reopened))
    values[INDEX["withdrawn"]] = int(f.withdrawn is not None)
    if f.feedback is not None:
        values[INDEX["feedback"]] = 1
        values[INDEX[f.feedback[1]]] = 1
    values[INDEX["sla_warned"]] = int(bool(f.sla & SLA_WARNED))
    values[INDEX["sla_breached"]] = int(bool(f.sla & SLA_BREACHED))
    return Contribution(key, tuple(values))


def _working_days(submitted_at: int, replied_at: int, rules: SlaRules, gaps: CalendarGaps | None) -> int:
    """Working days d with submission day < d <= reply day (Asia/Shanghai): the reply's place in the
    working-day count that the reply deadline uses (a reply on the 5th working day is on time)."""
    try:
        return rules.calendar.working_days_between(local_date(from_us(submitted_at)), local_date(from_us(replied_at)))
    except YearNotCovered:
        if gaps is not None:
            gaps.add()
        return 0


# ---- cells ---------------------------------------------------------------------------------------


def add_into(cells: dict[CellKey, list[int]], c: Contribution | None, sign: int) -> None:
    """cells[c.key] += sign * c.values; a cell whose counters all reach 0 is removed."""
    if c is None:
        return
    row = cells.get(c.key)
    if row is None:
        row = cells[c.key] = [0] * N_COUNTERS
    for i, v in enumerate(c.values):
        if v:
            row[i] += sign * v
    if not any(row):
        del cells[c.key]


def cells_of(contributions: Iterable[Contribution | None]) -> dict[CellKey, list[int]]:
    """The cells that these contributions sum to (what the incremental path must always equal)."""
    cells: dict[CellKey, list[int]] = {}
    for c in contributions:
        add_into(cells, c, +1)
    return cells
