"""The notices a record calls for, and the one commit that emits each (and each deadline change).

A notice is an aggregate of its own in the `notices` store, id `f"{petition_id}|{key}"` with key like
`reply.0:breached:2`. Emitting it IS its first commit: the state below plus its one event, whose id
derives from the aggregate id, so even an impossible second publication carries the same id and is
dropped by consumers' de-duplication. `sla.deadline_changed` is emitted the same way, one aggregate
per reply clock and calendar revision. The transition is "nothing → emitted": a notice that has a
state is never committed again (`Emission` is built only for one that has none).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from petition_common.envelope import Event
from petition_kernel.calendar import YearNotCovered
from petition_kernel.sla.clock import ClockState, DeadlineChange, Notice, due_notices
from petition_kernel.sla.policy import SlaPolicy
from petition_kernel.sla.record import SlaRecord
from petition_kernel.times import format_time
from services.sla.domain.config import SlaConfig

SOURCE = "petitions/sla"
WARNING, BREACHED = "warning", "breached"
_NOTICE_NAMESPACE = uuid.UUID("5b1f0a57-2c3e-4a53-9d0e-6b7a1c2f9e40")


def notice_id(petition_id: str, key: str) -> str:
    """The aggregate id of one notice in the `notices` store: its unique insert is the emission."""
    return f"{petition_id}|{key}"


def notice_ids(record: SlaRecord, states: list[ClockState], policy: SlaPolicy) -> list[str]:
    """The notice-store ids of every notice the record's clocks could ever call for."""
    ladder = policy.rules_for(record.category).escalation
    ids = []
    for clock in states:
        ids.append(notice_id(record.petition_id, f"{clock.id}:{WARNING}:1"))
        ids += [notice_id(record.petition_id, f"{clock.id}:{BREACHED}:{step.level}") for step in ladder]
    return ids


@dataclass(frozen=True)
class Due:
    notices: list[Notice]
    uncovered_year: int | None = None  # a reply clock was skipped: the calendar lacks this year


def due(record: SlaRecord, now: datetime, config: SlaConfig) -> Due:
    """The notices due now and not known emitted; a reply clock in a year the calendar lacks is
    skipped (and named) rather than holding back every other notice of the petition."""
    try:
        return Due(due_notices(record, now, config.policy, config.calendar))
    except YearNotCovered as exc:
        return Due(due_notices(record, now, config.policy, config.calendar, skip_uncovered=True), exc.year)


@dataclass(frozen=True)
class Emission:
    """The first (and only) commit of a notice aggregate: its state and the event it publishes."""

    aggregate_id: str
    state: dict[str, Any]
    event: Event


def _emission(
    nid: str, event_type: str, petition_id: str, data: dict[str, Any], state: dict[str, Any], now: datetime
) -> Emission:
    event = Event(
        type=event_type,
        source=SOURCE,
        subject=petition_id,
        data=data,
        time=format_time(now),
        id=str(uuid.uuid5(_NOTICE_NAMESPACE, nid)),
    )
    return Emission(nid, {**state, "event_id": event.id, "data": data}, event)


def notice_emission(notice: Notice, now: datetime) -> Emission:
    """The commit that emits an `sla.warning` or `sla.breached`."""
    data = {**notice.data(), "due_at": format_time(notice.due_at)}
    state = {
        "petition_id": notice.petition_id,
        "key": notice.key,
        "type": notice.event_type,
        "clock": notice.clock,
        "generation": notice.generation,
        "level": notice.level,
        "deadline": data["deadline"],
        "due_at": data["due_at"],
        "emitted_at": format_time(now),
    }
    nid = notice_id(notice.petition_id, notice.key)
    return _emission(nid, notice.event_type, notice.petition_id, data, state, now)


def deadline_change_emission(change: DeadlineChange, years: tuple[int, ...], revision: str, now: datetime) -> Emission:
    """The commit that emits one `sla.deadline_changed` for the calendar revision `revision`."""
    nid = notice_id(change.petition_id, f"reply.{change.generation}:deadline:{revision}")
    state = {"petition_id": change.petition_id, "type": "sla.deadline_changed", "emitted_at": format_time(now)}
    return _emission(nid, "sla.deadline_changed", change.petition_id, change.data(years), state, now)


def notice_entry(state: dict[str, Any]) -> dict[str, Any]:
    """An emitted notice as `GET /v1/sla/petitions/{id}` lists it, from its aggregate's state."""
    return {k: state[k] for k in ("key", "type", "clock", "generation", "level", "deadline")} | {
        "due_at": state["due_at"],
        "emitted_at": state["emitted_at"],
        "event_id": state["event_id"],
        "remaining_seconds": state["data"].get("remaining_seconds"),
        "overdue_seconds": state["data"].get("overdue_seconds"),
    }
