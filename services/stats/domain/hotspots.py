"""Hotspot detection: too many petitions of one category in one area within a sliding window.

For every petition, each of its areas (grid, village, town) is tested per category, with the
`Rule` for that (level, category) from `HotspotConfig`. A window is the half-open interval
(end - W, end]; times are timezone-aware and handled in UTC.

- concentrated: the window holds at least `threshold` petitions (an absolute rule).
- emerging: the window holds significantly more than the area's own history predicts. The rate λ
  (per day) comes from the `baseline_days` (B) whole UTC days before the day the window starts on,
  so the baseline never overlaps the window: λ = (S + prior_count) / D, where S is the petitions on
  those days and D the number of them the detector has observed (days before `history_start` are
  unknown, not zero). Expected = λ · W. The alarm needs count >= `min_count` and
  P(X >= count | X ~ Poisson(expected)) < `alpha`. `prior_count` (default 2 pseudo-petitions per
  baseline) floors λ, so that petitions in an area with no history are surprising but not
  infinitely so (5 in 72 h in a silent area still alarm: expected 0.21, P = 3e-6); it also damps
  the plug-in test where a small baseline is low by chance, the main source of excess alarms in
  villages. No emerging test runs until `min_baseline_days` days of history exist.

Choice of alpha (default 1e-5 per test), a multiple-testing budget: a test is made per
(level, area, category) each time a petition arrives. The county has 2,635 grids, 119 villages and
12 towns, times 14 categories: ~39,000 keys. `min_count` = 5 makes most of them moot: a grid's
expected count per category in 72 h is ~0.01–0.1, and P(X >= 5) is then below 1e-7. What remains
is the 168 town keys and the busier of the 1,666 village keys, a few hundred "live" keys.
Re-testing a sliding window on every arrival is worth ~50–100 independent tests per key-month
(measured on a Poisson stream with the true rate: 10 disjoint 72 h windows a month would give
10·alpha, the scan gives 50–100·alpha), and estimating λ from 28 days adds ~1.5–2x. So the county
sees roughly 300 · 100 · 2 · alpha false alarms a month. Measured on simulated pure noise on the
reference county at 200 petitions a day (see test_stats_false_alarms.py): 14 a month at 1e-3,
3 at 1e-4, 0.5 at 1e-5 (60 months; 1.2 a month at 500 petitions a day). The price: a
town category that usually sees 2.5 petitions in 72 h alarms at 13 (5x), one that sees 5 at 18
(3.6x); a silent village at 5. `baseline_days` = 28 is four whole weeks, so every weekday weighs
the same in λ.

Citizens, not petitions: every rule counts the distinct citizens of the window (`citizen`, from the
event's `citizen.ref`; a petition without one is a citizen of its own, so older events still count),
so that one sender, however many petitions they file, is one citizen and cannot raise an alert on
their own. The baseline's daily counts likewise add a petition only when its citizen has none among
the petitions held (area_history.py). An alert's `count` is still its petitions (the contract's
meaning), and `citizens` what the rule compared.

Duplicates: a petition with `duplicate_of` set is not counted (its original already was), and a
petition id the key already holds is ignored, so at-least-once redelivery does not inflate counts.

Published once: an area is "hot" for a kind from the alert until, at the arrival time of a later
petition, the window ending just before that arrival no longer meets the condition (for
concentrated: fewer than `threshold` petitions; for emerging: the test no longer alarms). Between
arrivals a window's count can only fall, so this sees every cooling. After cooling, a new burst
alerts again, where "new" means its window starts at or after the end of the previous alert's
window (so it holds none of the petitions that window ended with): without that, a count hovering
at the threshold (9, one expires: 8, one arrives: 9) would re-alert on the same burst every few
hours, which the simulation showed. `alert_id` is a UUID5 of (kind, level, area id, category,
window_start), so replaying the same events gives the same ids and consumers can de-duplicate.

Out-of-order events (by `at`), per key, with `lateness` L from the config (default 24 h): every
event is checked against each window that contains it and ends at a petition time no earlier
than L before the newest `at` seen for the key, i.e. an event up to L late is judged as if it had
arrived in order; a later one still counts in the recent windows that contain it and in the
baseline, but closed windows more than L old are not reopened, and an event older than W + L
behind only enters the daily baseline counts (and cannot be de-duplicated there). Cooling is only
checked when time advances for the key.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from petition_kernel.times import format_time, to_utc
from services.stats.domain.area_history import AreaKey, KeyState, day_of
from services.stats.domain.hotspot_config import LEVELS, HotspotConfig, Rule
from services.stats.domain.poisson import poisson_sf

CONCENTRATED = "concentrated"
EMERGING = "emerging"
KINDS = (CONCENTRATED, EMERGING)
MAX_PETITION_IDS = 50
# Fixed namespace, so alert ids are stable across processes and releases.
ALERT_NAMESPACE = uuid.UUID("5b0f1c8e-8d43-5a63-9a8e-6f1f3c2d7a10")
DETECTOR_VERSION = 1


@dataclass(frozen=True)
class AlertArea:
    level: str
    id: str
    name: str


@dataclass(frozen=True)
class Alert:
    """The `data` of an `alert.hotspot` event (CONTRACT.md), plus the p-value for emerging alerts."""

    alert_id: str
    kind: str
    area: AlertArea
    category: str
    window_start: datetime
    window_end: datetime
    count: int
    baseline: float | None  # expected count in the window from the area's history; None if too little
    petition_ids: tuple[str, ...]  # the most recent ones in the window, oldest first, at most 50
    p_value: float | None = None  # P(X >= citizens | baseline) for emerging alerts; not on the wire
    citizens: int | None = None  # distinct citizens in the window: what the rule compared (<= count)

    def to_data(self) -> dict[str, Any]:
        return {
            "alert_id": self.alert_id,
            "kind": self.kind,
            "area": {"level": self.area.level, "id": self.area.id, "name": self.area.name},
            "category": self.category,
            "window_start": format_time(self.window_start),
            "window_end": format_time(self.window_end),
            "count": self.count,
            "baseline": self.baseline,
            "petition_ids": list(self.petition_ids),
            **({"citizens": self.citizens} if self.citizens is not None else {}),
        }


def alert_id(kind: str, level: str, area_id: str, category: str, window_start: datetime) -> str:
    name = "|".join((kind, level, area_id, category, to_utc(window_start).isoformat()))
    return str(uuid.uuid5(ALERT_NAMESPACE, name))


class HotspotDetector:
    """Stateful but pure: feed it petitions with `observe`, persist it with `to_dict`/`state_doc`.

    `history_start` is when the detector's view of history begins (defaults to the first `at` it
    sees); baseline days before it are treated as unobserved rather than as days with no petitions.
    """

    def __init__(self, config: HotspotConfig, *, history_start: datetime | None = None) -> None:
        self.config = config
        self._history_start = to_utc(history_start) if history_start else None
        self._states: dict[AreaKey, KeyState] = {}

    @property
    def history_start(self) -> datetime | None:
        return self._history_start

    def observe(
        self,
        petition_id: str,
        area_keys: Mapping[str, str | None],
        category: str,
        at: datetime,
        duplicate_of: str | None = None,
        *,
        area_names: Mapping[str, str] | None = None,
        citizen: str | None = None,
    ) -> list[Alert]:
        """Count one petition in each of its areas; return the alerts it raises (grid first).

        `area_keys` maps level to area id ('grid' may be missing or None: grid_id is optional);
        `area_names` maps level to a display name (default: the id); `citizen` is who filed it (its
        `citizen.ref`; None: the petition counts as a citizen of its own).
        """
        unknown = set(area_keys) - set(LEVELS)
        if unknown:
            raise ValueError(f"unknown area levels {sorted(unknown)}; expected {LEVELS}")
        at = to_utc(at)
        if duplicate_of:
            return []
        if self._history_start is None:
            self._history_start = at
        alerts: list[Alert] = []
        for level in LEVELS:
            area_id = area_keys.get(level)
            if not area_id:
                continue
            name = (area_names or {}).get(level) or area_id
            key = AreaKey(level, area_id, category)
            rule = self.config.rule(level, category)
            alerts.extend(self._observe_key(key, rule, petition_id, citizen, at, name))
        return alerts

    def _observe_key(
        self, key: AreaKey, rule: Rule, petition_id: str, citizen: str | None, at: datetime, name: str
    ) -> list[Alert]:
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = KeyState(key)
        elif state.holds(petition_id):
            return []  # redelivered
        window = rule.window
        if state.watermark is None or at > state.watermark:
            if state.hot:  # has the area cooled since the previous petition? (see module docstring)
                before = state.citizens(at - window, at)
                state.hot = {k for k in state.hot if self._alarms(k, rule, state, before, at)}
            state.watermark = at
        horizon = state.watermark - window - self.config.lateness
        state.add(at, petition_id, citizen, keep_timestamp=at > horizon)
        state.prune(horizon, day_of(horizon) - rule.baseline_days)

        alerts = []
        ends = state.times(max(at, state.watermark - self.config.lateness), at + window)
        for kind in KINDS:
            if kind in state.hot:
                continue
            previous_end = state.last_alert_end.get(kind)
            for end in ends:
                if previous_end is not None and end - window < previous_end:
                    continue  # overlaps the last alert's window: the same burst, not a new one
                citizens = state.citizens(end - window, end)
                if self._alarms(kind, rule, state, citizens, end):
                    alerts.append(self._alert(kind, key, rule, state, end, citizens, name))
                    state.hot.add(kind)
                    state.last_alert_end[kind] = end
                    break
        return alerts

    def expected(self, state: KeyState, rule: Rule, window_start: datetime) -> float | None:
        """λ·W for a window starting at `window_start`, or None with under `min_baseline_days` of history."""
        assert self._history_start is not None
        first_known = day_of(self._history_start)
        if self._history_start.time() != time.min:
            first_known += 1  # a partly observed day would understate λ
        last = day_of(window_start) - 1
        first = max(last - rule.baseline_days + 1, first_known)
        days = last - first + 1
        if days < rule.min_baseline_days:
            return None
        return (state.daily_sum(first, last) + rule.prior_count) / days * rule.window_hours / 24.0

    def _alarms(self, kind: str, rule: Rule, state: KeyState, citizens: int, end: datetime) -> bool:
        if kind == CONCENTRATED:
            return citizens >= rule.threshold
        if citizens < rule.min_count:
            return False
        expected = self.expected(state, rule, end - rule.window)
        return expected is not None and poisson_sf(citizens, expected) < rule.alpha

    def _alert(
        self, kind: str, key: AreaKey, rule: Rule, state: KeyState, end: datetime, citizens: int, name: str
    ) -> Alert:
        start = end - rule.window
        expected = self.expected(state, rule, start)
        return Alert(
            alert_id=alert_id(kind, key.level, key.area_id, key.category, start),
            kind=kind,
            area=AlertArea(key.level, key.area_id, name),
            category=key.category,
            window_start=start,
            window_end=end,
            count=state.count(start, end),
            baseline=expected,
            petition_ids=tuple(state.petition_ids(start, end)[-MAX_PETITION_IDS:]),
            p_value=poisson_sf(citizens, expected) if kind == EMERGING and expected is not None else None,
            citizens=citizens,
        )

    # --- persistence: one document per (level, area, category), plus the detector's own meta ---

    @staticmethod
    def keys_for(area_keys: Mapping[str, str | None], category: str) -> list[AreaKey]:
        """The state keys one petition touches: the documents to save after `observe`."""
        return [AreaKey(lv, area_id, category) for lv in LEVELS if (area_id := area_keys.get(lv))]

    def state_doc(self, key: AreaKey) -> dict[str, Any] | None:
        state = self._states.get(key)
        return state.to_doc() if state else None

    def load_state_doc(self, doc: dict[str, Any]) -> None:
        state = KeyState.from_doc(doc)
        self._states[state.key] = state

    def meta(self) -> dict[str, Any]:
        return {
            "v": DETECTOR_VERSION,
            "history_start": self._history_start.isoformat() if self._history_start else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.meta(), "states": [self._states[k].to_doc() for k in sorted(self._states)]}

    @classmethod
    def from_dict(cls, config: HotspotConfig, data: Mapping[str, Any]) -> HotspotDetector:
        return cls.restore(config, data, data.get("states", ()))

    @classmethod
    def restore(cls, config: HotspotConfig, meta: Mapping[str, Any], docs: Iterable[dict[str, Any]]) -> HotspotDetector:
        """Rebuild from `meta()` and the state documents, e.g. as read back from MongoDB."""
        if meta.get("v") != DETECTOR_VERSION:
            raise ValueError(f"unsupported hotspot detector version {meta.get('v')!r}")
        start = meta.get("history_start")
        detector = cls(config, history_start=datetime.fromisoformat(start) if start else None)
        for doc in docs:
            detector.load_state_doc(doc)
        return detector

    def prune(self, now: datetime) -> list[AreaKey]:
        """Drop keys with nothing that any window ending after `now - lateness` could use.

        `now` is the stream's time (the newest `at` processed), not the wall clock. As long as later
        petitions are not older than `now - lateness`, dropping changes no result (a fresh key
        behaves the same), so the service can delete their documents. Returns the dropped keys.
        """
        now = to_utc(now)
        oldest_needed: dict[tuple[str, str], int] = {}  # per (level, category): tens of thousands of keys share a few
        dropped = []
        for key, state in self._states.items():
            first = oldest_needed.get((key.level, key.category))
            if first is None:
                rule = self.config.rule(key.level, key.category)
                first = day_of(now - self.config.lateness - rule.window) - rule.baseline_days
                oldest_needed[key.level, key.category] = first
            if state.watermark is None or day_of(state.watermark) < first:
                dropped.append(key)
        for key in dropped:
            del self._states[key]
        return dropped

    def __len__(self) -> int:
        return len(self._states)
