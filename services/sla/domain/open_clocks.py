"""The `open_clocks` read model: which petitions the scanner watches, when it looks again, its gauges.

`open_clocks` (read by the scanner and by `GET /v1/sla/overdue`) holds one document per petition
that still needs watching: it has a running clock, or a notice that is not emitted yet, or a clock
that ended after its deadline less than `keep_breached` ago (so the overdue list still shows recently
breached clocks for a while), or a reply clock that cannot be computed because the calendar lacks a
year. Its clock deadlines are computed with any pause still going on counted as far as the cap
allows (`clock_states(now=None)`): a clock that is paused now cannot be overdue before that deadline,
and once unpaused, the resume event recomputes the document.

A petition no longer watched whose reply deadline counts days of a provisional calendar year is
still listed apart (`provisional_clocks`), so importing that year's notice re-derives it too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from petition_kernel.calendar import WorkCalendar
from petition_kernel.sla.clock import next_due_at
from petition_kernel.sla.policy import SlaPolicy
from petition_kernel.sla.record import SlaRecord
from petition_kernel.times import format_time, parse_time
from services.sla.domain.clocks import clocks_of, current_pause, escalation_ladder, has_provisional_deadline
from services.sla.domain.config import SlaConfig


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
    due = next_due_at(record, now, policy, calendar, clocks=clocks.states)
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
                    {"level": level, "due_at": format_time(at)}
                    for level, at in escalation_ladder(clock, policy, record.category)
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
        # the calendar the times above were derived with: an instance still on an older one must not
        # overwrite them with its own (the scanner takes a newer calendar up first, `derived_elsewhere`)
        "calendar": calendar.fingerprint,
    }


@dataclass(frozen=True)
class Watch:
    """What to write for one version of a record."""

    doc: dict[str, Any] | None  # its open_clocks document; None: not watched any more
    provisional: bool  # not watched, but its reply deadline may still move with the calendar

    @property
    def uncovered_year(self) -> int | None:
        return self.doc["uncovered_year"] if self.doc is not None else None


def watch(record: SlaRecord, seq: int, now: datetime, config: SlaConfig) -> Watch:
    doc = projection_doc(record, seq, now, config.policy, config.calendar, config.keep_breached)
    provisional = doc is None and has_provisional_deadline(record, config.policy, config.calendar)
    return Watch(doc, provisional)


def needs_attention(doc: Mapping[str, Any], now: datetime, calendar: WorkCalendar) -> bool:
    """Whether the scanner must load this petition now."""
    if derived_elsewhere(doc, calendar):
        return True  # derived with another calendar: derive it again with this one
    recheck = doc.get("recheck_at")
    if recheck is not None and parse_time(recheck) <= now:
        return True
    year = doc.get("uncovered_year")
    # the operator added the missing year and restarted: compute the reply clock now
    return year is not None and year in calendar.covered_years()


def derived_elsewhere(doc: Mapping[str, Any], calendar: WorkCalendar) -> bool:
    """Whether the document's times were derived with a calendar other than `calendar` (documents
    written before the stamp existed carry none: taken as derived with it)."""
    stamp = doc.get("calendar")
    return stamp is not None and stamp != calendar.fingerprint


# -- one clock entry of a document, read back ------------------------------------------------------


def entry_times(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A document's clock entry with its instants parsed."""
    return {
        **entry,
        "started_at": parse_time(entry["started_at"]),
        "deadline": parse_time(entry["deadline"]),
        "warning_at": parse_time(entry["warning_at"]),
        "ended_at": parse_time(entry["ended_at"]) if entry.get("ended_at") else None,
    }


def entry_levels(entry: Mapping[str, Any]) -> list[tuple[int, datetime]]:
    return [(int(x["level"]), parse_time(x["due_at"])) for x in entry.get("levels", [])]


def entry_running(entry: Mapping[str, Any], now: datetime) -> bool:
    return entry["ended_at"] is None or entry["ended_at"] > now


# -- the scanner's gauges --------------------------------------------------------------------------


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
            entry = entry_times(raw)
            if not entry_running(entry, now):
                continue
            state = "breached" if now >= entry["deadline"] else "warned" if now >= entry["warning_at"] else "on_track"
            counts[(entry["clock"], state)] = counts.get((entry["clock"], state), 0) + 1
            provisional += bool(entry.get("provisional"))
            if oldest is None or entry["started_at"] < oldest:
                oldest = entry["started_at"]
    return OpenSummary(counts, oldest, uncovered, provisional)
