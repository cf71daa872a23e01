"""The deadline rules. One function per rule; every service and report must use these.

Contact deadline (联系时限), counted in calendar hours:
    deadline = submitted_at + N hours (N = 6 by default; per category in the policy). Nights, weekends
    and holidays count: a period counted in hours runs from the stated instant (民法典 第二百零一条第二款).

Reply deadline (答复时限), counted in working days:
    Take the calendar date (Asia/Shanghai) on which the clock starts: the submission, or the reopening
    for a reopened petition. That day is not counted, whatever the hour (民法典 第二百零一条第一款: 开始的
    当日不计入，自下一日开始计算). Count N working days after it (N = 5 by default), skipping weekends
    and public holidays and counting make-up working days (调休上班). The deadline is the end of the
    N-th working day, 24:00 Asia/Shanghai, i.e. 00:00 of the next calendar day (民法典 第二百零三条:
    期间的最后一日的截止时间为二十四时). Counting only working days also gives the 第二百零三条 rule
    that a period ending on a holiday runs to the next working day.
    Examples with N = 5, in local time:
      - submitted Friday 16:00 before an ordinary weekend: days 1-5 are Monday-Friday of the next
        week; deadline next Saturday 00:00 (= end of next Friday).
      - submitted on a holiday or a weekend: the first working day after it is day 1.
      - submitted Wednesday 23:59:59: Thursday is day 1; submitted Thursday 00:00:00: Friday is day 1.
    This is the Civil Code's general rule for periods (第二百零四条: it applies unless a law provides
    otherwise), so a county regulation that says "N个工作日内答复" is read the same way here.

Warning point (预警):
    When the fraction f (default 0.8) of the clock's allowed time has been used, the allowed time being
    the wall-clock span from the start to the unpaused deadline. Paused time is not "used", so each
    counted pause that starts before the warning point moves it by the pause's counted length.

Pauses (暂停计时; reply clock only):
    A counted pause moves the deadline later by its wall-clock length. The pause time counted for one
    petition is capped (default 5 calendar days, shared by all its reply clocks): once the cap is used
    up, a pause that is still going on stops counting and the clock runs again. A pause that starts
    at or after the (already moved) deadline does not count: an overdue clock cannot be paused.

All inputs must be timezone-aware; all results are UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from petition_kernel.calendar import WorkCalendar
from petition_kernel.times import local_date, local_day_start, to_utc

__all__ = [
    "Pause",
    "PausedClock",
    "apply_pauses",
    "contact_deadline",
    "reply_deadline",
    "reply_deadline_is_provisional",
    "warning_point",
]


def contact_deadline(submitted_at: datetime, hours: float) -> datetime:
    """submitted_at + `hours` calendar hours."""
    if hours <= 0:
        raise ValueError(f"contact hours must be positive, got {hours}")
    return to_utc(submitted_at) + timedelta(hours=hours)


def reply_deadline(started_at: datetime, working_days: int, calendar: WorkCalendar) -> datetime:
    """24:00 Asia/Shanghai of the `working_days`-th working day after the start date (start day not counted).

    Raises `YearNotCovered` when the count reaches a year the calendar does not know.
    """
    last_day = calendar.add_working_days(local_date(started_at), working_days)
    return local_day_start(last_day + timedelta(days=1))


def reply_deadline_is_provisional(started_at: datetime, working_days: int, calendar: WorkCalendar) -> bool:
    """Whether the reply deadline counts a day of a provisional calendar year: it may still move when
    that year's State Council notice is imported (a make-up working day, a longer holiday)."""
    start = local_date(started_at)
    return calendar.is_provisional_span(start, calendar.add_working_days(start, working_days))


def warning_point(started_at: datetime, deadline: datetime, fraction: float) -> datetime:
    """The instant at which `fraction` of the span started_at..deadline has elapsed (no pauses)."""
    if not 0 < fraction < 1:
        raise ValueError(f"warning fraction must be between 0 and 1, got {fraction}")
    start = to_utc(started_at)
    return start + (to_utc(deadline) - start) * fraction


@dataclass(frozen=True)
class Pause:
    """A paused interval; `end` is None while the pause is still going on."""

    start: datetime
    end: datetime | None = None


@dataclass(frozen=True)
class PausedClock:
    deadline: datetime
    warning_at: datetime
    paused: timedelta  # pause time counted for this clock
    cap_left: timedelta  # what is left of the petition's cap afterwards


def apply_pauses(
    started_at: datetime,
    base_deadline: datetime,
    pauses: Iterable[Pause],
    *,
    cap_left: timedelta,
    warning_fraction: float,
    ended_at: datetime | None = None,
    until: datetime | None = None,
) -> PausedClock:
    """Move a clock's deadline and warning point by its counted pause time.

    `pauses` must not overlap. A pause is clipped to the clock's life (started_at..ended_at); a pause
    still going on is taken to last until `until` (usually "now"), or, with `until=None`, for as long
    as the cap allows, which gives the latest deadline the facts known so far can produce.
    """
    start = to_utc(started_at)
    deadline = to_utc(base_deadline)
    warning_at = warning_point(start, deadline, warning_fraction)
    end_of_clock = to_utc(ended_at) if ended_at is not None else None
    horizon = to_utc(until) if until is not None else None
    counted = timedelta(0)
    for pause in sorted(pauses, key=lambda p: p.start):
        if cap_left <= timedelta(0):
            break
        p_start = max(to_utc(pause.start), start)
        p_end = to_utc(pause.end) if pause.end is not None else horizon
        if end_of_clock is not None:
            p_end = end_of_clock if p_end is None else min(p_end, end_of_clock)
        if p_start >= deadline:
            break  # sorted by start, so every later pause is past the deadline too
        if p_end is not None and p_end <= p_start:
            continue
        length = cap_left if p_end is None else min(p_end - p_start, cap_left)
        if p_start < warning_at:
            warning_at += length
        deadline += length
        counted += length
        cap_left -= length
    return PausedClock(deadline=deadline, warning_at=warning_at, paused=counted, cap_left=cap_left)
