"""The SLA policy (督办规则): clock lengths, warning point, pauses and the escalation ladder.

`parse_policy` validates an already-parsed mapping (pure); `load_policy` reads `config/sla-policy.yaml`.
Every error is a `PolicyError` whose `key` is the dotted path of the bad setting, e.g.
`categories.emergency.contact_hours` or `escalation[1].after_breach_hours`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ESCALATION_TARGETS",
    "PAUSE_REASONS",
    "ClockRules",
    "EscalationStep",
    "PolicyError",
    "SlaPolicy",
    "load_policy",
    "parse_policy",
]

# Contract v1: the pause reasons an event may carry, and who each escalation level is.
PAUSE_REASONS = frozenset({"citizen_unreachable", "third_party", "citizen_deferred"})
ESCALATION_TARGETS = {1: "grid", 2: "town", 3: "county"}

_TOP_KEYS = frozenset({"defaults", "pauses", "escalation", "categories"})
_RULE_KEYS = frozenset({"contact_hours", "reply_working_days", "warning_fraction"})
_CATEGORY_KEYS = _RULE_KEYS | {"escalation"}
_PAUSE_KEYS = frozenset({"cap_days", "reasons"})
_STEP_KEYS = frozenset({"level", "notify", "after_breach_hours"})


class PolicyError(ValueError):
    def __init__(self, key: str, problem: str, source: str | None = None) -> None:
        self.key = key
        self.problem = problem
        prefix = f"{source}: " if source else ""
        super().__init__(f"{prefix}{key}: {problem}")


@dataclass(frozen=True)
class EscalationStep:
    """Who is told of a breach, and how long after the breach."""

    level: int
    after_breach: timedelta

    @property
    def target(self) -> str:
        return ESCALATION_TARGETS[self.level]


@dataclass(frozen=True)
class ClockRules:
    """The rules that apply to one petition, after its category's overrides."""

    contact_hours: float
    reply_working_days: int
    warning_fraction: float
    escalation: tuple[EscalationStep, ...]


@dataclass(frozen=True)
class SlaPolicy:
    defaults: ClockRules
    pause_cap: timedelta
    pause_reasons: frozenset[str]
    categories: Mapping[str, ClockRules] = field(default_factory=dict)

    def rules_for(self, category: str | None) -> ClockRules:
        """The category's rules, or the defaults for an unknown or missing category."""
        if category is None:
            return self.defaults
        return self.categories.get(category, self.defaults)


# -- parsing ------------------------------------------------------------------------------------


def parse_policy(content: Any, category_codes: Iterable[str] | None = None) -> SlaPolicy:
    """Validate a parsed policy file. With `category_codes`, an override for an unknown code is an error."""
    top = _mapping(content, "(top level)")
    _only_keys(top, _TOP_KEYS, "")
    for key in ("defaults", "pauses", "escalation"):
        if key not in top:
            raise PolicyError(key, "missing")

    defaults_map = _mapping(top["defaults"], "defaults")
    _only_keys(defaults_map, _RULE_KEYS, "defaults.")
    for key in sorted(_RULE_KEYS):
        if key not in defaults_map:
            raise PolicyError(f"defaults.{key}", "missing")
    ladder = _escalation(top["escalation"], "escalation")
    defaults = _rules(defaults_map, "defaults", base=None, ladder=ladder)

    pauses = _mapping(top["pauses"], "pauses")
    _only_keys(pauses, _PAUSE_KEYS, "pauses.")
    for key in sorted(_PAUSE_KEYS):
        if key not in pauses:
            raise PolicyError(f"pauses.{key}", "missing")
    cap_days = _number(pauses["cap_days"], "pauses.cap_days", minimum=0, maximum=365)
    reasons = _reasons(pauses["reasons"], "pauses.reasons")

    known = frozenset(category_codes) if category_codes is not None else None
    categories: dict[str, ClockRules] = {}
    raw_categories = top.get("categories") or {}
    for code, override in _mapping(raw_categories, "categories").items():
        key = f"categories.{code}"
        if known is not None and code not in known:
            raise PolicyError(key, f"unknown category code; known: {', '.join(sorted(known))}")
        override_map = _mapping(override, key)
        _only_keys(override_map, _CATEGORY_KEYS, f"{key}.")
        own_ladder = (
            _escalation(override_map["escalation"], f"{key}.escalation")
            if "escalation" in override_map
            else defaults.escalation
        )
        categories[str(code)] = _rules(override_map, key, base=defaults, ladder=own_ladder)

    return SlaPolicy(
        defaults=defaults,
        pause_cap=timedelta(days=cap_days),
        pause_reasons=reasons,
        categories=categories,
    )


def _rules(raw: Mapping[str, Any], key: str, base: ClockRules | None, ladder: tuple[EscalationStep, ...]) -> ClockRules:
    def pick(name: str) -> Any:
        if name in raw:
            return raw[name]
        assert base is not None  # defaults were checked to have every key
        return getattr(base, name)

    hours = _number(pick("contact_hours"), f"{key}.contact_hours", minimum=0, maximum=24 * 30)
    if hours == 0:
        raise PolicyError(f"{key}.contact_hours", "must be more than 0")
    days = pick("reply_working_days")
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 60:
        raise PolicyError(f"{key}.reply_working_days", f"expected a whole number from 1 to 60, got {days!r}")
    fraction = _number(pick("warning_fraction"), f"{key}.warning_fraction", minimum=0, maximum=1)
    if fraction in (0, 1):
        raise PolicyError(f"{key}.warning_fraction", "must be strictly between 0 and 1")
    return ClockRules(contact_hours=hours, reply_working_days=days, warning_fraction=fraction, escalation=ladder)


def _escalation(raw: Any, key: str) -> tuple[EscalationStep, ...]:
    if not isinstance(raw, list) or not raw:
        raise PolicyError(key, "expected a non-empty list of {level, after_breach_hours}")
    steps: list[EscalationStep] = []
    for i, item in enumerate(raw):
        item_key = f"{key}[{i}]"
        step = _mapping(item, item_key)
        _only_keys(step, _STEP_KEYS, f"{item_key}.")
        level = step.get("level")
        if level != i + 1 or isinstance(level, bool):
            raise PolicyError(f"{item_key}.level", f"expected {i + 1} (levels run 1, 2, 3 in order), got {level!r}")
        if level not in ESCALATION_TARGETS:
            raise PolicyError(f"{item_key}.level", "the contract defines levels 1 (grid), 2 (town), 3 (county)")
        if "notify" in step and step["notify"] != ESCALATION_TARGETS[level]:
            raise PolicyError(
                f"{item_key}.notify", f"level {level} is always {ESCALATION_TARGETS[level]!r} (contract v1)"
            )
        if "after_breach_hours" not in step:
            raise PolicyError(f"{item_key}.after_breach_hours", "missing")
        hours = _number(step["after_breach_hours"], f"{item_key}.after_breach_hours", minimum=0, maximum=24 * 365)
        delay = timedelta(hours=hours)
        if steps and delay <= steps[-1].after_breach:
            raise PolicyError(f"{item_key}.after_breach_hours", "must be later than the level before it")
        steps.append(EscalationStep(level=level, after_breach=delay))
    return tuple(steps)


def _reasons(raw: Any, key: str) -> frozenset[str]:
    if not isinstance(raw, list):
        raise PolicyError(key, "expected a list of pause reasons")
    for i, reason in enumerate(raw):
        if reason not in PAUSE_REASONS:
            raise PolicyError(f"{key}[{i}]", f"{reason!r} is not a contract reason: {', '.join(sorted(PAUSE_REASONS))}")
    if len(set(raw)) != len(raw):
        raise PolicyError(key, "lists a reason twice")
    return frozenset(raw)


def _mapping(raw: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise PolicyError(key, "expected a mapping")
    return raw


def _only_keys(raw: Mapping[str, Any], allowed: frozenset[str], prefix: str) -> None:
    for name in raw:
        if name not in allowed:
            raise PolicyError(f"{prefix}{name}", f"unknown key; allowed here: {', '.join(sorted(allowed))}")


def _number(raw: Any, key: str, *, minimum: float, maximum: float) -> float:
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise PolicyError(key, f"expected a number, got {raw!r}")
    if not minimum <= raw <= maximum:
        raise PolicyError(key, f"{raw} is outside {minimum}..{maximum}")
    return raw


# -- files --------------------------------------------------------------------------------------


def load_policy(path: str | Path, category_codes: Iterable[str] | None = None) -> SlaPolicy:
    """Read and validate the policy file (reads a file)."""
    source = str(path)
    try:
        content = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PolicyError("(file)", f"not valid YAML: {exc}", source) from exc
    try:
        return parse_policy(content, category_codes)
    except PolicyError as exc:
        raise PolicyError(exc.key, exc.problem, source) from None
