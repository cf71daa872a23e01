"""Whether the working-day calendar changed since the reply deadlines were last derived, and which years.

The calendar they were last derived with is stored as one document (`WorkCalendar.to_doc`), so a
calendar changed while the service was down is still compared with the one before it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from petition_kernel.calendar import WorkCalendar


@dataclass(frozen=True)
class CalendarChange:
    since: int  # the first year the stored calendar describes
    before: WorkCalendar | None  # None: nothing stored yet, so nothing to derive again
    years: tuple[int, ...]  # the years whose working days differ (none: only store the calendar)


def calendar_change(stored: Mapping[str, Any] | None, calendar: WorkCalendar, now: datetime) -> CalendarChange | None:
    """The change from the stored calendar to `calendar`, or None when they are the same."""
    since = stored["since"] if stored is not None else now.year - 1
    if stored is None:
        return CalendarChange(since, None, ())
    if stored.get("revision") == calendar.revision(since):
        return None
    before = WorkCalendar.from_doc(stored)
    return CalendarChange(since, before, before.changed_years(calendar))
