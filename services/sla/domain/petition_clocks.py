"""`GET /v1/sla/petitions/{id}`: every clock of one petition as of now, its pauses and its notices."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from petition_kernel.calendar import WorkCalendar
from petition_kernel.sla.clock import ClockState
from petition_kernel.sla.policy import SlaPolicy
from petition_kernel.sla.record import PauseMark, SlaRecord
from petition_kernel.times import format_time
from services.sla.domain.clocks import clocks_of, current_pause, escalation_ladder, reached_level


def petition_view(
    record: SlaRecord,
    now: datetime,
    policy: SlaPolicy,
    calendar: WorkCalendar,
    notices: list[dict[str, Any]],
) -> dict[str, Any]:
    """The response body: every clock as of `now`, the pauses, and `notices` (`notices.notice_entry`)."""
    clocks = clocks_of(record, now, policy, calendar)
    pause = current_pause(record, policy)
    out_clocks = []
    for clock in clocks.states:
        running = clock.running_at(now)
        late = clock.ended_at is not None and clock.ended_at > clock.deadline
        level = reached_level(clock, escalation_ladder(clock, policy, record.category), now)
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
