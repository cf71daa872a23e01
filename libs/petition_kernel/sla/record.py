"""One petition's SLA record: the set of facts its events carried, nothing derived.

Events may arrive late, twice, or out of order across topics, so the record keeps facts in forms
that do not depend on arrival order (earliest contact, sorted sets of reply/reopen/close times, the
latest assignment by (assigned_at, event id), pause marks sorted by time). `apply` only adds facts;
the clocks are derived from them in `clock.py`. Hence any order or duplication of the same events
gives an equal record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from typing import Any

from petition_kernel.times import format_time, from_bson, parse_time

__all__ = [
    "HANDLED_EVENTS",
    "EventDataError",
    "PauseMark",
    "SlaRecord",
    "apply",
    "mark_emitted",
]

HANDLED_EVENTS = frozenset(
    {
        "petition.submitted",
        "petition.assigned",
        "petition.transferred",
        "petition.contacted",
        "petition.replied",
        "petition.reopened",
        "petition.withdrawn",
        "petition.closed",
        "petition.sla_paused",
        "petition.sla_resumed",
    }
)

_PAUSE, _RESUME = "pause", "resume"


class EventDataError(ValueError):
    """An event's `data` lacks a field this service needs, or has a bad value (dead-letter it)."""

    def __init__(self, event_type: str, field: str, problem: str) -> None:
        self.field = field
        super().__init__(f"{event_type}: data.{field}: {problem}")


@dataclass(frozen=True)
class PauseMark:
    """A `petition.sla_paused` (kind "pause") or `petition.sla_resumed` (kind "resume") fact."""

    at: datetime
    kind: str
    event_id: str
    reason: str | None = None

    def sort_key(self) -> tuple[datetime, int, str]:
        # At one instant a pause sorts before a resume: a zero-length pause then closes at once
        # instead of staying open, which could only lengthen the deadline by accident.
        return (self.at, 0 if self.kind == _PAUSE else 1, self.event_id)


@dataclass(frozen=True)
class SlaRecord:
    petition_id: str
    category: str | None = None
    submitted_at: datetime | None = None
    submitted_event_id: str | None = None
    location_grid_id: str | None = None
    location_town: str | None = None
    assigned_at: datetime | None = None
    assigned_event_id: str | None = None
    assigned_grid_id: str | None = None
    assigned_town: str | None = None
    contacted_at: datetime | None = None
    replied_at: tuple[datetime, ...] = ()
    reopened_at: tuple[datetime, ...] = ()
    closed_at: tuple[datetime, ...] = ()
    withdrawn_at: datetime | None = None
    pause_marks: tuple[PauseMark, ...] = ()
    event_ids: tuple[str, ...] = ()
    emitted: tuple[str, ...] = ()

    @property
    def grid_id(self) -> str | None:
        """The latest assignment's grid, else the grid given at submission."""
        return self.assigned_grid_id if self.assigned_at is not None else self.location_grid_id

    @property
    def town(self) -> str | None:
        return self.assigned_town if self.assigned_at is not None else self.location_town

    # -- storage ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON/BSON-ready dict, instants in the platform's written form (`format_time`, milliseconds)."""
        return _encode(asdict(self))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> SlaRecord:
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in raw:
                continue
            value = raw[f.name]
            if f.name in _INSTANTS:
                value = _decode_instant(value)
            elif f.name in _INSTANT_LISTS:
                value = tuple(_decode_instant(v) for v in value)
            elif f.name == "pause_marks":
                value = tuple(
                    PauseMark(
                        at=_decode_instant(m["at"]), kind=m["kind"], event_id=m["event_id"], reason=m.get("reason")
                    )
                    for m in value
                )
            elif f.name in ("event_ids", "emitted"):
                value = tuple(value)
            values[f.name] = value
        return cls(**values)


_INSTANTS = frozenset({"submitted_at", "assigned_at", "contacted_at", "withdrawn_at"})
_INSTANT_LISTS = frozenset({"replied_at", "reopened_at", "closed_at"})


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    return value


def _decode_instant(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return from_bson(value)
    return parse_time(value)


# -- applying events ----------------------------------------------------------------------------


def apply(record: SlaRecord | None, event_type: str, data: Mapping[str, Any], event_id: str) -> SlaRecord:
    """The record with this event's facts added. Idempotent by `event_id`; order does not matter.

    `record` may be None for a petition not seen before. Event types this service does not use
    leave the record as it is.
    """
    petition_id = _text(event_type, data, "petition_id")
    if record is None:
        record = SlaRecord(petition_id=petition_id)
    elif record.petition_id != petition_id:
        raise EventDataError(event_type, "petition_id", f"{petition_id!r} applied to record {record.petition_id!r}")
    if event_type not in HANDLED_EVENTS or event_id in record.event_ids:
        return record

    updated = _add_fact(record, event_type, data, event_id)
    return replace(updated, event_ids=tuple(sorted({*record.event_ids, event_id})))


def _add_fact(record: SlaRecord, event_type: str, data: Mapping[str, Any], event_id: str) -> SlaRecord:
    match event_type:
        case "petition.submitted":
            at = _instant(event_type, data, "submitted_at")
            category = _text(event_type, data, "category")
            location = data.get("location")
            if not isinstance(location, Mapping):
                raise EventDataError(event_type, "location", "missing or not an object")
            # Should a submission be published twice with different ids, keep the earliest, deterministically.
            if record.submitted_at is not None and (record.submitted_at, record.submitted_event_id or "") <= (
                at,
                event_id,
            ):
                return record
            return replace(
                record,
                category=category,
                submitted_at=at,
                submitted_event_id=event_id,
                location_grid_id=_optional_text(location.get("grid_id")),
                location_town=_optional_text(location.get("town")),
            )
        case "petition.assigned" | "petition.transferred":
            at = _instant(event_type, data, "assigned_at")
            # The latest route wins; a transfer changes who is supervised, never the clocks.
            if record.assigned_at is not None and (record.assigned_at, record.assigned_event_id or "") >= (
                at,
                event_id,
            ):
                return record
            return replace(
                record,
                assigned_at=at,
                assigned_event_id=event_id,
                assigned_grid_id=_optional_text(data.get("grid_id")),
                assigned_town=_optional_text(data.get("town")),
            )
        case "petition.contacted":
            at = _instant(event_type, data, "contacted_at")
            earliest = at if record.contacted_at is None else min(record.contacted_at, at)
            return replace(record, contacted_at=earliest)
        case "petition.replied":
            return replace(record, replied_at=_with(record.replied_at, _instant(event_type, data, "replied_at")))
        case "petition.reopened":
            return replace(record, reopened_at=_with(record.reopened_at, _instant(event_type, data, "reopened_at")))
        case "petition.closed":
            return replace(record, closed_at=_with(record.closed_at, _instant(event_type, data, "closed_at")))
        case "petition.withdrawn":
            at = _instant(event_type, data, "withdrawn_at")
            earliest = at if record.withdrawn_at is None else min(record.withdrawn_at, at)
            return replace(record, withdrawn_at=earliest)
        case "petition.sla_paused" | "petition.sla_resumed":
            kind = _PAUSE if event_type == "petition.sla_paused" else _RESUME
            reason = _text(event_type, data, "reason") if kind == _PAUSE else None
            mark = PauseMark(at=_instant(event_type, data, "at"), kind=kind, event_id=event_id, reason=reason)
            marks = sorted({*record.pause_marks, mark}, key=PauseMark.sort_key)
            return replace(record, pause_marks=tuple(marks))
    raise AssertionError(f"unhandled event type {event_type}")  # pragma: no cover - HANDLED_EVENTS guards


def mark_emitted(record: SlaRecord, keys: Iterable[str]) -> SlaRecord:
    """The record with these notice keys recorded as published (a set union, so order-free too)."""
    return replace(record, emitted=tuple(sorted({*record.emitted, *keys})))


def _with(times: tuple[datetime, ...], at: datetime) -> tuple[datetime, ...]:
    return tuple(sorted({*times, at}))


def _instant(event_type: str, data: Mapping[str, Any], name: str) -> datetime:
    if data.get(name) is None:
        raise EventDataError(event_type, name, "missing")
    try:
        at = parse_time(data[name])
    except ValueError as exc:
        raise EventDataError(event_type, name, str(exc)) from None
    # Facts keep the precision they are stored with (milliseconds), so a record read back equals
    # the record written, and its deadlines are the same before and after a reload.
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def _text(event_type: str, data: Mapping[str, Any], name: str) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value:
        raise EventDataError(event_type, name, "missing or not a non-empty string")
    return value


def _optional_text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
