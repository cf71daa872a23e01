"""Time-zone helpers: every instant is timezone-aware, computed and emitted in UTC.

Working days and "end of day" are civil concepts of mainland China, so the calendar side of the
rules reads instants in Asia/Shanghai; everything stored or put on the wire is UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")

__all__ = [
    "SHANGHAI",
    "UTC",
    "format_instant",
    "local_date",
    "local_day_start",
    "parse_instant",
    "to_utc",
]


def to_utc(dt: datetime) -> datetime:
    """The same instant in UTC; a naive datetime is refused because its meaning is a guess."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime {dt.isoformat()}: a time zone is required")
    return dt.astimezone(UTC)


def local_date(dt: datetime) -> date:
    """The Asia/Shanghai calendar date on which an instant falls."""
    return to_utc(dt).astimezone(SHANGHAI).date()


def local_day_start(d: date) -> datetime:
    """00:00 Asia/Shanghai of a date, as a UTC instant (so 24:00 of day d is local_day_start(d + 1))."""
    return datetime.combine(d, time(0), tzinfo=SHANGHAI).astimezone(UTC)


def parse_instant(value: str | datetime) -> datetime:
    """An RFC 3339 string (or an aware datetime) as a UTC datetime."""
    if isinstance(value, datetime):
        return to_utc(value)
    if not isinstance(value, str):
        raise ValueError(f"expected an RFC 3339 timestamp, got {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"not an RFC 3339 timestamp: {value!r}") from exc
    return to_utc(parsed)


def format_instant(dt: datetime) -> str:
    """RFC 3339 in UTC with a `Z`, the form the contract uses on the wire."""
    return to_utc(dt).isoformat().replace("+00:00", "Z")
