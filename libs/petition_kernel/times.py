"""Time, once for the whole platform: every instant is timezone-aware, computed and emitted in UTC.

One written form: RFC 3339 in UTC with milliseconds and a `Z` (`2024-07-17T00:30:00.123Z`), the
CloudEvents envelope's `time` and every time a service stores or puts on the wire. Working days and
"end of day" are civil concepts of mainland China, so the calendar side of the rules reads instants
in Beijing time (the IANA zone Asia/Shanghai, UTC+8 without daylight saving).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

BEIJING = ZoneInfo("Asia/Shanghai")

__all__ = [
    "BEIJING",
    "UTC",
    "format_time",
    "from_bson",
    "local_date",
    "local_day_start",
    "parse_time",
    "to_utc",
    "utc_now",
]


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_utc(moment: datetime) -> datetime:
    """The same instant in UTC; a naive datetime is refused because its meaning is a guess."""
    if moment.tzinfo is UTC:  # most are already, and this is called for nearly every time handled
        return moment
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime {moment.isoformat()}: every time in this platform is timezone-aware")
    return moment.astimezone(UTC)


def from_bson(moment: datetime) -> datetime:
    """A datetime read back from MongoDB as an aware UTC instant: pymongo returns BSON dates naive,
    and BSON dates are UTC by definition."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and a Z, e.g. 2024-07-17T00:30:00.123Z (finer digits are cut)."""
    return to_utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str | datetime) -> datetime:
    """An RFC 3339 date-time with an offset (or an aware datetime) as a UTC datetime.

    `T`/`Z` may be lower case, as RFC 3339 allows; a time without an offset is refused.
    """
    if isinstance(value, datetime):
        return to_utc(value)
    if not isinstance(value, str):
        raise ValueError(f"expected an RFC 3339 timestamp, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value.upper())
    except ValueError as exc:
        raise ValueError(f"not an RFC 3339 timestamp: {value[:40]!r}") from exc
    if parsed.tzinfo is None:
        raise ValueError(f"time without an offset: {value[:40]!r}")
    return parsed.astimezone(UTC)


def local_date(moment: datetime) -> date:
    """The Beijing calendar date on which an instant falls."""
    return to_utc(moment).astimezone(BEIJING).date()


def local_day_start(d: date) -> datetime:
    """00:00 Beijing time of a date, as a UTC instant (so 24:00 of day d is local_day_start(d + 1))."""
    return datetime.combine(d, time(0), tzinfo=BEIJING).astimezone(UTC)
