"""From an event's type, data and id to the `Change` stats applies; strict about the fields it reads.

Stats reads a few fields of each event and checks exactly those (types, RFC 3339 times, enums).
A message whose fields stats cannot use is refused with `BadEvent`, which the consumer
dead-letters; event types stats does not count give None.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from petition_kernel.times import parse_time
from services.stats.domain.facts import SATISFACTION, Change, to_us

CHANNELS = frozenset({"miniprogram", "hotline", "web", "visit", "other"})
PAUSE_REASONS = frozenset({"citizen_unreachable", "third_party", "citizen_deferred"})

# event type -> (change kind, the data field holding its time)
_TIMED: dict[str, tuple[str, str]] = {
    "petition.contacted": ("contacted", "contacted_at"),
    "petition.replied": ("replied", "replied_at"),
    "petition.reopened": ("reopened", "reopened_at"),
    "petition.closed": ("closed", "closed_at"),
    "petition.withdrawn": ("withdrawn", "withdrawn_at"),
    "petition.sla_resumed": ("resumed", "at"),
}
HANDLED_TYPES = frozenset(
    {
        *_TIMED,
        "petition.submitted",
        "petition.assigned",
        "petition.transferred",
        "petition.sla_paused",
        "petition.feedback_received",
        "sla.warning",
        "sla.breached",
        "sla.deadline_changed",
    }
)


class BadEvent(ValueError):
    """The event lacks a field stats needs, or the field is malformed; `field` names it."""

    def __init__(self, event_type: str, field: str, problem: str):
        self.field = field
        super().__init__(f"{event_type}: data.{field}: {problem}")


def _time(event_type: str, data: Mapping[str, Any], name: str) -> int:
    raw = data.get(name)
    if not isinstance(raw, str):
        raise BadEvent(event_type, name, "missing or not a string")
    try:
        return to_us(parse_time(raw))
    except ValueError as exc:
        raise BadEvent(event_type, name, str(exc)) from None


def _text(event_type: str, data: Mapping[str, Any], name: str, *, optional: bool = False) -> str | None:
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise BadEvent(event_type, name, "missing or not a non-empty string")
    return value


def _choice(event_type: str, data: Mapping[str, Any], name: str, allowed: frozenset[str] | tuple[str, ...]) -> str:
    value = data.get(name)
    if value not in allowed:
        raise BadEvent(event_type, name, f"must be one of {', '.join(sorted(allowed))}")
    return str(value)


def _citizen_ref(data: Mapping[str, Any]) -> str | None:
    """`citizen.ref` of a submission (who filed it, pseudonymously), or None: an optional field."""
    citizen = data.get("citizen")
    ref = citizen.get("ref") if isinstance(citizen, Mapping) else None
    if ref is not None and not (isinstance(ref, str) and 0 < len(ref) <= 64):
        raise BadEvent("petition.submitted", "citizen.ref", "must be a non-empty string of at most 64 characters")
    return ref


def change_of(event_type: str, data: Mapping[str, Any], event_id: str) -> Change | None:
    """The change an event makes to its petition's facts; None for a type stats does not count."""
    if event_type not in HANDLED_TYPES:
        return None
    pid = _text(event_type, data, "petition_id")
    assert pid is not None
    if event_type in _TIMED:
        kind, field = _TIMED[event_type]
        return Change(pid, kind, _time(event_type, data, field), event_id)
    if event_type == "petition.submitted":
        category = _text(event_type, data, "category")
        channel = _choice(event_type, data, "channel", CHANNELS)
        duplicate_of = data.get("duplicate_of")
        if duplicate_of is not None and not isinstance(duplicate_of, str):
            raise BadEvent(event_type, "duplicate_of", "must be a petition id or null")
        at = _time(event_type, data, "submitted_at")
        return Change(pid, "submitted", at, event_id, (category, channel, bool(duplicate_of), _citizen_ref(data)))
    if event_type in ("petition.assigned", "petition.transferred"):
        value = (
            _text(event_type, data, "grid_id", optional=True),
            _text(event_type, data, "village", optional=True),
            _text(event_type, data, "town", optional=True),
            _text(event_type, data, "department"),
        )
        kind = "assigned" if event_type == "petition.assigned" else "transferred"
        return Change(pid, kind, _time(event_type, data, "assigned_at"), event_id, value)
    if event_type == "petition.sla_paused":
        reason = _choice(event_type, data, "reason", PAUSE_REASONS)
        return Change(pid, "paused", _time(event_type, data, "at"), event_id, (reason,))
    if event_type == "petition.feedback_received":
        satisfaction = _choice(event_type, data, "satisfaction", SATISFACTION)
        return Change(pid, "feedback", _time(event_type, data, "received_at"), event_id, (satisfaction,))
    if event_type == "sla.deadline_changed":
        # which deadline does not matter here: stats derives the verdicts again with the same calendar
        _choice(event_type, data, "clock", ("reply",))
        return Change(pid, "deadline_changed", 0, event_id)
    # sla.warning / sla.breached: only the fact that one was issued counts
    _choice(event_type, data, "clock", ("contact", "reply"))
    return Change(pid, "sla_warning" if event_type == "sla.warning" else "sla_breached", 0, event_id)
