"""Hotspot detection settings: one `Rule` per (level, category), parsed from config/hotspots.yaml.

Parsing is separate from detection and takes text or a mapping; the service layer reads the file
(HOTSPOTS_FILE or `DEFAULT_PATH`) and passes its text to `config_from_yaml`.

Precedence, most specific last: built-in `DEFAULT_LEVELS` < `defaults` < `levels.<level>` <
`categories.<category>` (fields for every level) < `categories.<category>.<level>`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

LEVELS = ("grid", "village", "town")
DEFAULT_PATH = Path(__file__).resolve().parents[3] / "config" / "hotspots.yaml"


@dataclass(frozen=True)
class Rule:
    """Thresholds for one (level, category). Field meanings are documented in config/hotspots.yaml."""

    window_hours: float = 72.0
    threshold: int = 5  # concentrated: at least this many petitions in the window
    baseline_days: int = 28  # emerging: trailing whole days before the window's first day
    alpha: float = 1e-5  # emerging: per-test significance level (see hotspots.py for the choice)
    min_count: int = 5  # emerging: never alarm on fewer petitions than this
    prior_count: float = 2.0  # emerging: pseudo-petitions added to the baseline (λ floor)
    min_baseline_days: int = 7  # emerging: no test until this many observed baseline days

    def __post_init__(self) -> None:
        problems = {
            "window_hours": self.window_hours > 0,
            "threshold": self.threshold >= 1,
            "baseline_days": self.baseline_days >= 1,
            "alpha": 0.0 < self.alpha < 1.0,
            "min_count": self.min_count >= 1,
            "prior_count": self.prior_count > 0,
            "min_baseline_days": 1 <= self.min_baseline_days <= self.baseline_days,
        }
        bad = [name for name, ok in problems.items() if not ok]
        if bad:
            raise ValueError(f"invalid hotspot rule fields {bad}: {self}")

    @property
    def window(self) -> timedelta:
        return timedelta(hours=self.window_hours)


# Concentrated thresholds scale with the number of households an area holds (grid 30–60).
DEFAULT_LEVELS: Mapping[str, Rule] = {
    "grid": Rule(threshold=4),
    "village": Rule(threshold=5),
    "town": Rule(threshold=15),
}
_RULE_FIELDS = frozenset(f.name for f in fields(Rule))
_INT_FIELDS = frozenset({"threshold", "baseline_days", "min_count", "min_baseline_days"})


@dataclass(frozen=True)
class HotspotConfig:
    """Rules per level with per-category overrides, and the allowed lateness of events."""

    levels: Mapping[str, Rule] = field(default_factory=lambda: dict(DEFAULT_LEVELS))
    overrides: Mapping[tuple[str, str], Rule] = field(default_factory=dict)  # (level, category)
    lateness_hours: float = 24.0

    def __post_init__(self) -> None:
        if set(self.levels) != set(LEVELS):
            raise ValueError(f"rules needed for exactly the levels {LEVELS}, got {sorted(self.levels)}")
        if self.lateness_hours < 0:
            raise ValueError("lateness_hours must be >= 0")

    def rule(self, level: str, category: str) -> Rule:
        return self.overrides.get((level, category)) or self.levels[level]

    @property
    def lateness(self) -> timedelta:
        return timedelta(hours=self.lateness_hours)


def _fields(where: str, raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _RULE_FIELDS)
    if unknown:
        raise ValueError(f"{where}: unknown fields {unknown}; allowed {sorted(_RULE_FIELDS)}")
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where}.{name}: expected a number, got {value!r}")
        if name in _INT_FIELDS and value != int(value):
            raise ValueError(f"{where}.{name}: expected an integer, got {value!r}")
        out[name] = int(value) if name in _INT_FIELDS else float(value)
    return out


def _rule(where: str, base: Rule, changes: Mapping[str, Any]) -> Rule:
    try:
        return replace(base, **changes)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def config_from_dict(data: Mapping[str, Any], *, categories: Iterable[str] | None = None) -> HotspotConfig:
    """Build and validate a config; `categories`, if given, are the only codes allowed to appear."""
    unknown_top = sorted(set(data) - {"lateness_hours", "defaults", "levels", "categories"})
    if unknown_top:
        raise ValueError(f"hotspots: unknown top-level keys {unknown_top}")
    defaults = _fields("defaults", data.get("defaults"))
    raw_levels = data.get("levels") or {}
    bad_levels = sorted(set(raw_levels) - set(LEVELS))
    if bad_levels:
        raise ValueError(f"levels: unknown levels {bad_levels}; allowed {list(LEVELS)}")
    levels = {
        lv: _rule(f"levels.{lv}", DEFAULT_LEVELS[lv], {**defaults, **_fields(f"levels.{lv}", raw_levels.get(lv))})
        for lv in LEVELS
    }
    allowed = set(categories) if categories is not None else None
    overrides: dict[tuple[str, str], Rule] = {}
    for cat, raw in (data.get("categories") or {}).items():
        where = f"categories.{cat}"
        if allowed is not None and cat not in allowed:
            raise ValueError(f"{where}: unknown category code")
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where}: expected a mapping")
        common = _fields(where, {k: v for k, v in raw.items() if k not in LEVELS})
        for lv in LEVELS:
            per_level = _fields(f"{where}.{lv}", raw.get(lv))
            if common or per_level:
                overrides[(lv, cat)] = _rule(f"{where}.{lv}", levels[lv], {**common, **per_level})
    lateness = data.get("lateness_hours", 24.0)
    if isinstance(lateness, bool) or not isinstance(lateness, int | float) or lateness < 0:
        raise ValueError(f"lateness_hours: expected a number >= 0, got {lateness!r}")
    return HotspotConfig(levels=levels, overrides=overrides, lateness_hours=float(lateness))


def config_from_yaml(text: str, *, categories: Iterable[str] | None = None) -> HotspotConfig:
    """Parse the YAML text of config/hotspots.yaml."""
    data = yaml.safe_load(text) or {}
    if not isinstance(data, Mapping):
        raise ValueError("hotspots: the document must be a mapping")
    return config_from_dict(data, categories=categories)
