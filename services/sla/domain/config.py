"""The rules one sla instance applies: read from the files by bootstrap, replaced when the calendar changes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from petition_kernel.calendar import WorkCalendar
from petition_kernel.sla.policy import SlaPolicy


@dataclass(frozen=True)
class SlaConfig:
    policy: SlaPolicy
    calendar: WorkCalendar
    # a clock that ended after its deadline stays on the overdue list this long
    keep_breached: timedelta = timedelta(days=7)
