"""Days, weeks and months of the county's calendar (Asia/Shanghai), as proleptic day ordinals.

Statistics are kept per submission day, so a period is a half-open range of days [first, end).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime

from petition_kernel.times import BEIJING

TIME_ZONE = BEIJING.key  # the zone's name, as the API reports it
INTERVALS = ("day", "week", "month")


def day_start(day: int) -> datetime:
    """00:00 local time of the day, as an aware datetime in the county's zone."""
    return datetime.combine(date.fromordinal(day), datetime.min.time(), tzinfo=BEIJING)


def format_day_start(day: int) -> str:
    return day_start(day).isoformat()


def interval_start(day: int, interval: str) -> int:
    d = date.fromordinal(day)
    if interval == "day":
        return day
    if interval == "week":
        return day - d.weekday()  # Monday
    if interval == "month":
        return d.replace(day=1).toordinal()
    raise ValueError(f"unknown interval {interval!r}")


def next_start(start: int, interval: str) -> int:
    if interval == "day":
        return start + 1
    if interval == "week":
        return start + 7
    d = date.fromordinal(start)
    return (date(d.year + 1, 1, 1) if d.month == 12 else date(d.year, d.month + 1, 1)).toordinal()


def intervals(first: int, end: int, interval: str) -> Iterator[tuple[int, int]]:
    """The intervals that cover [first, end), each clipped to it: (start, stop) day ordinals."""
    start = interval_start(first, interval)
    while start < end:
        stop = next_start(start, interval)
        yield max(start, first), min(stop, end)
        start = stop


def local_midnight_day(moment: datetime) -> int | None:
    """The day whose 00:00 (local) is exactly `moment`, or None when `moment` is not a day boundary."""
    local = moment.astimezone(BEIJING)
    if local.time() != datetime.min.time():
        return None
    return local.date().toordinal()
