"""Routing's aggregates to and from stored documents, the open_orders projection's document, and
routing's work-order events to CloudEvents (and intake's CloudEvents to what the domain reads)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from petition_common.envelope import Event
from petition_kernel.times import format_time, parse_time
from services.routing.domain import (
    Assignee,
    Assignment,
    IntakeEvent,
    Pause,
    RoutedPetition,
    Status,
    WorkOrder,
    WorkOrderEvent,
)

SOURCE = "petitions/routing"


def to_cloudevent(event: WorkOrderEvent) -> Event:
    return Event(type=event.type, source=SOURCE, subject=event.subject, data=event.data, time=format_time(event.time))


def _time(value: datetime | None) -> str | None:
    return format_time(value) if value is not None else None


def intake_event(event: Event) -> IntakeEvent:
    return IntakeEvent(id=event.id, type=event.type, data=event.data)


def _parse(value: str | None) -> datetime | None:
    return parse_time(value) if value else None


def assignment_to_dict(a: Assignment) -> dict[str, Any]:
    return {**a.event_fields(), "village_id": a.village_id, "town_id": a.town_id}


def assignment_from_dict(d: dict[str, Any]) -> Assignment:
    return Assignment(
        grid_id=d["grid_id"],
        village=d["village"],
        town=d["town"],
        department=d["department"],
        assignee=Assignee(d["assignee"]["staff_id"], d["assignee"]["role"]),
        village_id=d.get("village_id"),
        town_id=d.get("town_id"),
    )


def order_to_dict(order: WorkOrder) -> dict[str, Any]:
    return {
        "petition_id": order.petition_id,
        "status": str(order.status),
        "assignment": assignment_to_dict(order.assignment),
        "route": order.route,
        "route_reason": order.route_reason,
        "assigned_at": _time(order.assigned_at),
        "contacted_at": _time(order.contacted_at),
        "replied_at": _time(order.replied_at),
        "resolution": order.resolution,
        "satisfaction": order.satisfaction,
        "reopen_count": order.reopen_count,
        "transfer_count": order.transfer_count,
        "pause": None
        if order.pause is None
        else {"reason": order.pause.reason, "since": _time(order.pause.since), "staff_id": order.pause.staff_id},
        "paused_seconds": order.paused_seconds,
        "closed_at": _time(order.closed_at),
        "closed_by": order.closed_by,
        "withdrawn_at": _time(order.withdrawn_at),
    }


def order_from_dict(d: dict[str, Any]) -> WorkOrder:
    pause = d.get("pause")
    assigned_at = _parse(d["assigned_at"])
    assert assigned_at is not None
    return WorkOrder(
        petition_id=d["petition_id"],
        status=Status(d["status"]),
        assignment=assignment_from_dict(d["assignment"]),
        route=d["route"],
        route_reason=d["route_reason"],
        assigned_at=assigned_at,
        contacted_at=_parse(d.get("contacted_at")),
        replied_at=_parse(d.get("replied_at")),
        resolution=d.get("resolution"),
        satisfaction=d.get("satisfaction"),
        reopen_count=int(d.get("reopen_count", 0)),
        transfer_count=int(d.get("transfer_count", 0)),
        pause=None if not pause else Pause(pause["reason"], _parse(pause["since"]), pause["staff_id"]),  # type: ignore[arg-type]
        paused_seconds=float(d.get("paused_seconds", 0.0)),
        closed_at=_parse(d.get("closed_at")),
        closed_by=d.get("closed_by"),
        withdrawn_at=_parse(d.get("withdrawn_at")),
    )


def petition_to_state(petition: RoutedPetition) -> dict[str, Any]:
    """The state a `workorders` commit stores."""
    return {
        "seen": list(petition.seen),
        "category": petition.category,
        "duplicate_of": petition.duplicate_of,
        "order": order_to_dict(petition.order),
    }


def petition_from_state(state: dict[str, Any]) -> RoutedPetition:
    return RoutedPetition(
        order=order_from_dict(state["order"]),
        category=state.get("category"),
        duplicate_of=state.get("duplicate_of"),
        seen=tuple(state.get("seen", ())),
    )


def open_order_doc(order: WorkOrder, seq: int) -> dict[str, Any]:
    """The order's open_orders document: only what lists and the timeout scanner filter on (FerretDB
    scans this collection for every write to it, so small documents keep that cheap)."""
    a = order.assignment
    finished = order.closed_at or order.withdrawn_at
    return {
        "_id": order.petition_id,
        "seq": seq,
        "status": str(order.status),
        "grid_id": a.grid_id,
        "town": a.town,
        "town_id": a.town_id,
        "assignee": a.assignee.staff_id,
        "assigned_at": format_time(order.assigned_at),
        "replied_at": _time(order.replied_at),
        "finished_at": _time(finished),
    }
