"""Pure functions between the SLA domain and the service: projections, HTTP views, access and paging.

Nothing here does I/O or asks what time it is: `now` and the loaded records come in as arguments.

`open_clocks` (the projection the scanner and `GET /v1/sla/overdue` read) holds one document per
petition that still needs watching: it has a running clock, or a notice that is not emitted yet, or
a clock that ended after its deadline less than `keep_breached` ago (so the overdue list still
shows recently breached clocks for a while), or a reply clock that cannot be computed because the
calendar lacks a year. Its clock deadlines are computed with any pause still going on counted as
far as the cap allows (`clock_states(now=None)`): a clock that is paused now cannot be overdue
before that deadline, and once unpaused, the resume event recomputes the document.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from petition_common.auth import Staff
from petition_kernel.access import Area, may_read
from petition_kernel.calendar import WorkCalendar, YearNotCovered
from petition_kernel.sla.clock import ClockState, clock_states, next_due_at
from petition_kernel.sla.policy import SlaPolicy
from petition_kernel.sla.record import PauseMark, SlaRecord
from petition_kernel.times import format_time, parse_time

WARNING, BREACHED = "warning", "breached"


# -- clocks, tolerating a calendar gap ------------------------------------------------------------


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


def _ladder(clock: ClockState, policy: SlaPolicy, category: str | None) -> list[tuple[int, datetime]]:
    return [(step.level, clock.deadline + step.after_breach) for step in policy.rules_for(category).escalation]


# -- the open_clocks projection -------------------------------------------------------------------


def projection_doc(
    record: SlaRecord,
    seq: int,
    now: datetime,
    policy: SlaPolicy,
    calendar: WorkCalendar,
    keep_breached: timedelta,
) -> dict[str, Any] | None:
    """The record's `open_clocks` document, or None when nothing about it needs watching any more."""
    clocks = clocks_of(record, None, policy, calendar)
    if not clocks.states:
        return None  # submission not seen yet: no clock has started
    uncovered = clocks.uncovered
    due = next_due_at(record, now, policy, calendar, skip_uncovered=uncovered is not None)
    paused = current_pause(record, policy)
    entries = []
    rechecks = [] if due is None else [due]
    for clock in clocks.states:
        late = clock.ended_at is not None and clock.ended_at > clock.deadline
        running = clock.running_at(now)
        if not running:
            if not late or clock.ended_at + keep_breached <= now:  # type: ignore[operator]
                continue
            rechecks.append(clock.ended_at + keep_breached)  # type: ignore[operator]
        entries.append(
            {
                "clock": clock.clock,
                "generation": clock.generation,
                "started_at": format_time(clock.started_at),
                "deadline": format_time(clock.deadline),
                "warning_at": format_time(clock.warning_at),
                "ended_at": format_time(clock.ended_at) if clock.ended_at else None,
                "outcome": clock.outcome,
                "paused": clock.clock == "reply" and running and paused is not None,
                "provisional": clock.provisional,
                "levels": [
                    {"level": level, "due_at": format_time(at)} for level, at in _ladder(clock, policy, record.category)
                ],
            }
        )
    if not entries and due is None and uncovered is None:
        return None
    return {
        "_id": record.petition_id,
        "seq": seq,
        "category": record.category,
        "grid_id": record.grid_id,
        "town": record.town,
        "submitted_at": format_time(record.submitted_at) if record.submitted_at else None,
        "next_due_at": format_time(due) if due else None,
        # when the scanner must look at this petition again: a notice falls due, or a breached clock
        # leaves the overdue list
        "recheck_at": format_time(min(rechecks)) if rechecks else None,
        "uncovered_year": uncovered.year if uncovered else None,
        "clocks": entries,
        "projected_at": format_time(now),
    }


def needs_attention(doc: Mapping[str, Any], now: datetime, calendar: WorkCalendar) -> bool:
    """Whether the scanner must load this petition now."""
    recheck = doc.get("recheck_at")
    if recheck is not None and parse_time(recheck) <= now:
        return True
    year = doc.get("uncovered_year")
    # the operator added the missing year and restarted: compute the reply clock now
    return year is not None and year in calendar.covered_years()


def _entry_times(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {
        **entry,
        "started_at": parse_time(entry["started_at"]),
        "deadline": parse_time(entry["deadline"]),
        "warning_at": parse_time(entry["warning_at"]),
        "ended_at": parse_time(entry["ended_at"]) if entry.get("ended_at") else None,
    }


def _levels(entry: Mapping[str, Any]) -> list[tuple[int, datetime]]:
    return [(int(x["level"]), parse_time(x["due_at"])) for x in entry.get("levels", [])]


def _running(entry: Mapping[str, Any], now: datetime) -> bool:
    return entry["ended_at"] is None or entry["ended_at"] > now


@dataclass
class OpenSummary:
    """What the scanner's gauges show: running clocks by (clock, state), the oldest start, calendar gaps."""

    counts: dict[tuple[str, str], int]
    oldest_started_at: datetime | None
    uncovered: int
    provisional: int = 0  # running reply clocks whose deadline counts days of a provisional calendar year


def summarize(docs: Iterable[Mapping[str, Any]], now: datetime) -> OpenSummary:
    counts: dict[tuple[str, str], int] = {}
    oldest: datetime | None = None
    uncovered = provisional = 0
    for doc in docs:
        if doc.get("uncovered_year") is not None:
            uncovered += 1
        for raw in doc.get("clocks", []):
            entry = _entry_times(raw)
            if not _running(entry, now):
                continue
            state = "breached" if now >= entry["deadline"] else "warned" if now >= entry["warning_at"] else "on_track"
            counts[(entry["clock"], state)] = counts.get((entry["clock"], state), 0) + 1
            provisional += bool(entry.get("provisional"))
            if oldest is None or entry["started_at"] < oldest:
                oldest = entry["started_at"]
    return OpenSummary(counts, oldest, uncovered, provisional)


def has_provisional_deadline(record: SlaRecord, policy: SlaPolicy, calendar: WorkCalendar) -> bool:
    """Whether any reply clock's deadline counts days of a provisional calendar year (so it may move)."""
    return any(clock.provisional for clock in clocks_of(record, None, policy, calendar).states)


# -- the overdue list -----------------------------------------------------------------------------


@dataclass(frozen=True)
class OverdueFilter:
    town: str | None = None
    grid_id: str | None = None
    clock: str | None = None
    level: int | None = None
    open: bool | None = None


def overdue_items(
    docs: Iterable[Mapping[str, Any]], now: datetime, staff: Staff, flt: OverdueFilter
) -> list[dict[str, Any]]:
    """Clocks past their deadline: still running, or ended late within the keep window; by deadline."""
    items = []
    for doc in docs:
        grid_id, town = doc.get("grid_id"), doc.get("town")
        if not may_read(staff, Area(grid_id=grid_id)):
            continue
        if flt.grid_id and grid_id != flt.grid_id:
            continue
        if flt.town and flt.town != town and not (grid_id and grid_id.startswith(flt.town)):
            continue  # a town by name, or by id (grid ids nest in their town's id)
        for raw in doc.get("clocks", []):
            entry = _entry_times(raw)
            if flt.clock and entry["clock"] != flt.clock:
                continue
            running = _running(entry, now)
            until = now if running else entry["ended_at"]
            if until < entry["deadline"] or (not running and entry["ended_at"] <= entry["deadline"]):
                continue
            if flt.open is not None and flt.open != running:
                continue
            level = reached_level(entry, _levels(entry), now)
            if flt.level and level < flt.level:
                continue
            items.append(
                {
                    "petition_id": doc["_id"],
                    "clock": entry["clock"],
                    "generation": entry["generation"],
                    "deadline": raw["deadline"],
                    "overdue_seconds": int((until - entry["deadline"]) // timedelta(seconds=1)),
                    "level": max(level, 1),
                    "open": running,
                    "ended_at": raw.get("ended_at") if not running else None,
                    "outcome": entry.get("outcome") if not running else None,
                    "paused": bool(entry.get("paused")) and running,
                    "grid_id": grid_id,
                    "town": town,
                    "category": doc.get("category"),
                }
            )
    items.sort(key=overdue_sort_key)
    return items


def overdue_sort_key(item: Mapping[str, Any]) -> tuple[str, str, str, int]:
    # deadlines are RFC 3339 UTC strings from format_time; compare them as instants
    return (format_time(parse_time(item["deadline"])), item["petition_id"], item["clock"], item["generation"])


def encode_cursor(item: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(overdue_sort_key(item)))).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str, str, int]:
    """The sort key after which the next page starts; ValueError if the cursor is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        deadline, pid, clock, generation = orjson.loads(raw)
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError) as exc:
        raise ValueError("not a cursor of this endpoint") from exc
    if not all(isinstance(x, str) for x in (deadline, pid, clock)) or not isinstance(generation, int):
        raise ValueError("not a cursor of this endpoint")
    try:
        # in the sort key's written form, also for a cursor issued before deadlines carried milliseconds
        deadline = format_time(parse_time(deadline))
    except ValueError as exc:
        raise ValueError("not a cursor of this endpoint") from exc
    return deadline, pid, clock, generation


def page(items: list[dict[str, Any]], limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """Keyset paging over items sorted by `overdue_sort_key`: stable while time passes."""
    if cursor is not None:
        after = decode_cursor(cursor)
        items = [i for i in items if overdue_sort_key(i) > after]
    chunk = items[:limit]
    return chunk, encode_cursor(chunk[-1]) if len(items) > limit else None


# -- access ---------------------------------------------------------------------------------------


# -- one petition ---------------------------------------------------------------------------------


def current_pause(record: SlaRecord, policy: SlaPolicy) -> PauseMark | None:
    """The pause the reply clock is in now, by the domain's pairing rule, or None.

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


def notice_ids(record: SlaRecord, states: list[ClockState], policy: SlaPolicy) -> list[str]:
    """The notice-store ids of every notice the record's clocks could ever call for."""
    ladder = policy.rules_for(record.category).escalation
    ids = []
    for clock in states:
        ids.append(notice_id(record.petition_id, f"{clock.id}:{WARNING}:1"))
        ids += [notice_id(record.petition_id, f"{clock.id}:{BREACHED}:{step.level}") for step in ladder]
    return ids


def notice_id(petition_id: str, key: str) -> str:
    """The aggregate id of one notice in the `notices` store: its unique insert is the emission."""
    return f"{petition_id}|{key}"


def petition_view(
    record: SlaRecord,
    now: datetime,
    policy: SlaPolicy,
    calendar: WorkCalendar,
    notices: list[dict[str, Any]],
) -> dict[str, Any]:
    """`GET /v1/sla/petitions/{id}`: every clock as of `now`, the pauses, and the notices emitted."""
    clocks = clocks_of(record, now, policy, calendar)
    pause = current_pause(record, policy)
    out_clocks = []
    for clock in clocks.states:
        running = clock.running_at(now)
        late = clock.ended_at is not None and clock.ended_at > clock.deadline
        level = reached_level(clock, _ladder(clock, policy, record.category), now)
        out_clocks.append(
            {
                "clock": clock.clock,
                "generation": clock.generation,
                "state": clock.state(now),
                "started_at": format_time(clock.started_at),
                "deadline": format_time(clock.deadline),
                "warning_at": format_time(clock.warning_at),
                "met_at": format_time(clock.ended_at) if clock.outcome == "met" and clock.ended_at else None,
                "ended_at": format_time(clock.ended_at) if clock.ended_at and not running else None,
                "outcome": clock.outcome if not running else None,
                "on_time": None if running else not late,
                "paused": clock.clock == "reply" and running and pause is not None,
                "provisional": clock.provisional,
                "paused_seconds": int(clock.paused // timedelta(seconds=1)),
                "level": level or None,
                "remaining_seconds": _seconds(clock.deadline - now) if running and now < clock.deadline else None,
                "overdue_seconds": _overdue(clock, now),
            }
        )
    if clocks.uncovered is not None:
        out_clocks.append(
            {
                "clock": "reply",
                "generation": len(clocks.states) - 1,
                "state": "unknown",
                "error": str(clocks.uncovered),
            }
        )
    return {
        "petition_id": record.petition_id,
        "category": record.category,
        "grid_id": record.grid_id,
        "town": record.town,
        "submitted_at": format_time(record.submitted_at) if record.submitted_at else None,
        "as_of": format_time(now),
        "paused": pause is not None,
        "pause_reason": pause.reason if pause else None,
        "paused_since": format_time(pause.at) if pause else None,
        "pauses": [
            {"kind": m.kind, "at": format_time(m.at), "reason": m.reason}
            for m in sorted(record.pause_marks, key=PauseMark.sort_key)
        ],
        "clocks": out_clocks,
        "notices": sorted(notices, key=lambda n: (n["due_at"], n["clock"], n["generation"], n["type"], n["level"])),
    }


def _overdue(clock: ClockState, now: datetime) -> int | None:
    until = now if clock.running_at(now) else clock.ended_at
    assert until is not None
    return _seconds(until - clock.deadline) if until > clock.deadline else None


def _seconds(delta: timedelta) -> int:
    return int(delta // timedelta(seconds=1))


def met_transitions(before: list[ClockState], after: list[ClockState]) -> list[tuple[str, bool]]:
    """(clock, on_time) for every clock that `after` has met and `before` had not."""
    was_met = {c.id for c in before if c.outcome == "met"}
    return [
        (c.clock, c.ended_at is not None and c.ended_at <= c.deadline)
        for c in after
        if c.outcome == "met" and c.id not in was_met
    ]
