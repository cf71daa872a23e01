"""The detector's memory for one (level, area, category): bounded, and a plain dict for MongoDB.

It holds the petitions of the last window plus the allowed lateness (timestamps, ids and citizens,
to count the distinct citizens of sliding windows, name the petitions in an alert and ignore
redeliveries) and daily counts for the trailing baseline. The detector prunes it on every event, so
its size depends on the area's volume over W + lateness (timestamps) and B + W + lateness days (one
integer per day), never on uptime.

Citizens, not petitions, are what the rules count, so that one sender cannot raise an alert: a
petition's citizen is its `citizen.ref` (a keyed digest of the phone, from intake), or the petition
itself when it has none (events from before the ref existed, other producers). A day's count adds
a petition only if its citizen has no petition among the ones held (the last W + lateness): a
citizen who files every hour counts about once per W + lateness in the baseline, as in the window,
without a set of citizens per day.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from operator import itemgetter
from typing import Any

from petition_kernel.times import to_utc

STATE_VERSION = 1
_at = itemgetter(0)


def day_of(at: datetime) -> int:
    """The UTC calendar day of `at`, as a proleptic Gregorian ordinal."""
    return at.date().toordinal()


@dataclass(frozen=True, order=True)
class AreaKey:
    level: str  # grid | village | town
    area_id: str
    category: str


@dataclass
class KeyState:
    key: AreaKey
    watermark: datetime | None = None  # newest `at` seen for this key
    # (at, petition_id, citizen), sorted; citizen is the petition id for a petition without a ref
    events: list[tuple[datetime, str, str]] = field(default_factory=list)
    daily: dict[int, int] = field(default_factory=dict)  # UTC day ordinal -> new citizens that day (docstring)
    hot: set[str] = field(default_factory=set)  # alert kinds raised and not yet cooled
    last_alert_end: dict[str, datetime] = field(default_factory=dict)  # kind -> window_end of its last alert
    # citizen -> how many of `events` are theirs: "is this citizen new?" without a pass over the events
    held: Counter[str] = field(default_factory=Counter, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.held = Counter(citizen for _, _, citizen in self.events)

    def holds(self, petition_id: str) -> bool:
        return any(pid == petition_id for _, pid, _ in self.events)

    def add(self, at: datetime, petition_id: str, citizen: str | None, *, keep_timestamp: bool) -> None:
        citizen = citizen or petition_id
        if not self.held[citizen]:
            day = day_of(at)
            self.daily[day] = self.daily.get(day, 0) + 1
        if keep_timestamp:
            insort(self.events, (at, petition_id, citizen))
            self.held[citizen] += 1

    def _span(self, start: datetime, end: datetime) -> tuple[int, int]:
        """Index range of the events with start < at <= end."""
        return bisect_right(self.events, start, key=_at), bisect_right(self.events, end, key=_at)

    def count(self, start: datetime, end: datetime) -> int:
        """Petitions with start < at <= end."""
        lo, hi = self._span(start, end)
        return hi - lo

    def citizens(self, start: datetime, end: datetime) -> int:
        """Distinct citizens among the petitions with start < at <= end: what the rules count."""
        lo, hi = self._span(start, end)
        return len({citizen for _, _, citizen in self.events[lo:hi]})

    def petition_ids(self, start: datetime, end: datetime) -> list[str]:
        lo, hi = self._span(start, end)
        return [pid for _, pid, _ in self.events[lo:hi]]

    def times(self, lo: datetime, hi: datetime) -> list[datetime]:
        """Distinct event times t with lo <= t < hi, ascending."""
        i, j = bisect_left(self.events, lo, key=_at), bisect_left(self.events, hi, key=_at)
        return sorted({at for at, _, _ in self.events[i:j]})

    def daily_sum(self, first_day: int, last_day: int) -> int:
        return sum(n for day, n in self.daily.items() if first_day <= day <= last_day)

    def prune(self, horizon: datetime, first_day: int) -> None:
        """Forget timestamps at or before `horizon` and daily counts before `first_day`."""
        cut = bisect_right(self.events, horizon, key=_at)
        for _, _, citizen in self.events[:cut]:
            self.held[citizen] -= 1
            if not self.held[citizen]:
                del self.held[citizen]
        del self.events[:cut]
        for day in [d for d in self.daily if d < first_day]:
            del self.daily[day]

    def to_doc(self) -> dict[str, Any]:
        """A JSON- and BSON-safe dict; times as ISO 8601 strings keep microseconds (BSON dates don't)."""
        return {
            "v": STATE_VERSION,
            "level": self.key.level,
            "area_id": self.key.area_id,
            "category": self.key.category,
            "watermark": self.watermark.isoformat() if self.watermark else None,
            # the citizen only when it is not the petition itself (old states and petitions without a ref)
            "events": [[at.isoformat(), pid] if c == pid else [at.isoformat(), pid, c] for at, pid, c in self.events],
            "daily": {date.fromordinal(d).isoformat(): n for d, n in sorted(self.daily.items())},
            "hot": sorted(self.hot),
            "last_alert_end": {kind: end.isoformat() for kind, end in sorted(self.last_alert_end.items())},
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> KeyState:
        if doc.get("v") != STATE_VERSION:
            raise ValueError(f"unsupported hotspot state version {doc.get('v')!r}")
        return cls(
            key=AreaKey(doc["level"], doc["area_id"], doc["category"]),
            watermark=to_utc(datetime.fromisoformat(doc["watermark"])) if doc["watermark"] else None,
            events=sorted(
                (to_utc(datetime.fromisoformat(e[0])), e[1], e[2] if len(e) > 2 else e[1]) for e in doc["events"]
            ),
            daily={date.fromisoformat(d).toordinal(): int(n) for d, n in doc["daily"].items()},
            hot=set(doc["hot"]),
            last_alert_end={k: to_utc(datetime.fromisoformat(v)) for k, v in doc["last_alert_end"].items()},
        )


def _event(entry: list[str]) -> tuple[datetime, str, str]:
    """[at, petition id] or [at, petition id, citizen] as saved by `to_doc`."""
    return to_utc(datetime.fromisoformat(entry[0])), entry[1], entry[2] if len(entry) > 2 else entry[1]
