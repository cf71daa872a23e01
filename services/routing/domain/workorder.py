"""The work order (工单) state machine, as pure functions.

    action              allowed from                        to
    contact             assigned, reopened                  in_progress
    reply               in_progress, reopened               replied
    feedback (ok)       replied                             closed, by feedback
    feedback (bad)      replied, never reopened             reopened
    feedback (bad)      replied, reopened once already      closed, by feedback (dissatisfied)
    close_by_staff      replied                             closed, by staff
    close_by_timeout    replied, feedback window passed     closed, by timeout
    withdraw            assigned, in_progress (no reply)    withdrawn
    transfer            assigned, in_progress, reopened     unchanged (new grid/department/assignee)
    pause / resume      assigned, in_progress, reopened     unchanged (the reply clock stops/runs)

A reply to a paused order resumes the clock first (sla_resumed, then replied). Every function returns
the new order and the contract events to publish, or raises InvalidTransition (HTTP 409) and changes
nothing; malformed arguments raise InvalidArgument (HTTP 422). Times are passed in (`now`), so the
rules stay testable.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from petition_kernel.times import format_time

from . import events as ev
from .decide import Assignment, RouteDecision, RoutingRules
from .events import WorkOrderEvent

ROLE_TOWN_SUPERVISOR = "town_supervisor"

PAUSE_REASONS = ("citizen_unreachable", "third_party", "citizen_deferred")
RESOLUTIONS = ("resolved", "explained", "unresolvable")
SATISFACTIONS = ("satisfied", "basically_satisfied", "dissatisfied")
MAX_REOPENS = 1  # a second dissatisfied rating closes the order as dissatisfied


class Status(StrEnum):
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    REPLIED = "replied"
    REOPENED = "reopened"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"


# States in which a handler owes the citizen a (new) reply: transfer and pause are allowed only here.
OPEN = frozenset({Status.ASSIGNED, Status.IN_PROGRESS, Status.REOPENED})


class InvalidTransition(Exception):
    """The action is not allowed in the order's current state (→ 409)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InvalidArgument(ValueError):
    """An argument of the action is malformed, whatever the state (→ 422)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Pause:
    reason: str
    since: datetime
    staff_id: str


@dataclass(frozen=True)
class WorkOrder:
    petition_id: str
    status: Status
    assignment: Assignment
    route: str  # how the first assignment was chosen: grid_id | point | village | triage
    route_reason: str
    assigned_at: datetime  # of the current assignment (a transfer resets it)
    contacted_at: datetime | None = None  # first contact
    replied_at: datetime | None = None  # latest reply: the feedback window runs from it
    resolution: str | None = None
    satisfaction: str | None = None  # latest rating
    reopen_count: int = 0
    transfer_count: int = 0
    pause: Pause | None = None
    paused_seconds: float = 0.0  # total time the reply clock stood still, for display; sla owns deadlines
    closed_at: datetime | None = None
    closed_by: str | None = None  # feedback | timeout | staff
    withdrawn_at: datetime | None = None


class Transition(NamedTuple):
    order: WorkOrder
    events: tuple[WorkOrderEvent, ...]


def _event(order: WorkOrder, type_: str, now: datetime, **data: object) -> WorkOrderEvent:
    return WorkOrderEvent(
        type=type_, subject=order.petition_id, time=now, data={"petition_id": order.petition_id, **data}
    )


def _require(order: WorkOrder, allowed: set[Status] | frozenset[Status], action: str) -> None:
    if order.status not in allowed:
        names = ", ".join(sorted(allowed))
        raise InvalidTransition("invalid_state", f"cannot {action} an order that is {order.status} (only {names})")


def _plain(assignment: Assignment) -> Assignment:
    """Store the assignment itself, not the RouteDecision subclass that may carry it."""
    return Assignment(**{f.name: getattr(assignment, f.name) for f in dataclasses.fields(Assignment)})


def _text(field: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(field, "required")
    return value


def _one_of(field: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InvalidArgument(field, f"must be one of {', '.join(allowed)}")
    return str(value)


def _unpaused(order: WorkOrder, staff_id: str, now: datetime) -> Transition:
    """The order with its reply clock running again, plus the resume event if it was paused."""
    if order.pause is None:
        return Transition(order, ())
    seconds = order.paused_seconds + max(0.0, (now - order.pause.since).total_seconds())
    resumed = replace(order, pause=None, paused_seconds=seconds)
    return Transition(resumed, (_event(order, ev.SLA_RESUMED, now, staff_id=staff_id, at=format_time(now)),))


# --- transitions -------------------------------------------------------------------------------------


def assign(petition_id: str, decision: RouteDecision, *, now: datetime) -> Transition:
    """A new work order for a routed petition."""
    order = WorkOrder(
        petition_id=_text("petition_id", petition_id),
        status=Status.ASSIGNED,
        assignment=_plain(decision),
        route=decision.route,
        route_reason=decision.reason,
        assigned_at=now,
    )
    data = {**decision.event_fields(), "reason": decision.reason, "assigned_at": format_time(now)}
    return Transition(order, (_event(order, ev.ASSIGNED, now, **data),))


def contact(order: WorkOrder, *, staff_id: str, now: datetime) -> Transition:
    """The handler reached the citizen: assigned → in_progress (also reopened → in_progress)."""
    _text("staff_id", staff_id)
    _require(order, {Status.ASSIGNED, Status.REOPENED}, "record contact for")
    new = replace(order, status=Status.IN_PROGRESS, contacted_at=order.contacted_at or now)
    return Transition(new, (_event(order, ev.CONTACTED, now, staff_id=staff_id, contacted_at=format_time(now)),))


def reply(order: WorkOrder, *, staff_id: str, resolution: str, summary: str, now: datetime) -> Transition:
    """The formal answer: in_progress/reopened → replied. A paused clock is resumed first (two events)."""
    _text("staff_id", staff_id)
    _one_of("resolution", resolution, RESOLUTIONS)
    _text("summary", summary)
    _require(order, {Status.IN_PROGRESS, Status.REOPENED}, "reply to")
    running, resumed = _unpaused(order, staff_id, now)
    new = replace(running, status=Status.REPLIED, replied_at=now, resolution=resolution)
    replied = _event(
        order, ev.REPLIED, now, staff_id=staff_id, replied_at=format_time(now), resolution=resolution, summary=summary
    )
    return Transition(new, (*resumed, replied))


def transfer(order: WorkOrder, to: Assignment, *, reason: str, now: datetime) -> Transition:
    """Hand the order to another grid or department; the state (and any pause) is kept."""
    _text("reason", reason)
    _require(order, OPEN, "transfer")
    if to.event_fields() == order.assignment.event_fields():
        raise InvalidTransition("same_assignment", "the order is already assigned there")
    new = replace(order, assignment=_plain(to), assigned_at=now, transfer_count=order.transfer_count + 1)
    data = {**to.event_fields(), "reason": reason, "assigned_at": format_time(now)}
    return Transition(new, (_event(order, ev.TRANSFERRED, now, **data),))


def transfer_target(order: WorkOrder, grid_id: object, department: object, rules: RoutingRules) -> Assignment:
    """Where a transfer request sends the order: a grid of the registry (its leader takes it), a
    department, or both; the grid keeps the order's department unless one is given."""
    if grid_id is None and department is None:
        raise InvalidArgument("grid_id", "give a grid_id, a department, or both")
    if department is not None and (
        not isinstance(department, str) or department not in set(rules.departments.values())
    ):
        raise InvalidArgument("department", "unknown department")
    if grid_id is None:
        return replace(order.assignment, department=department)
    grid = rules.registry.grid(grid_id) if rules.registry is not None and isinstance(grid_id, str) else None
    if grid is None:
        raise InvalidArgument("grid_id", "no such grid in the registry")
    return Assignment.for_grid(grid, department or order.assignment.department)


def pause(order: WorkOrder, *, staff_id: str, reason: str, now: datetime) -> Transition:
    """Stop the reply clock for a reason the rules accept (the citizen is unreachable, ...)."""
    _text("staff_id", staff_id)
    _one_of("reason", reason, PAUSE_REASONS)
    _require(order, OPEN, "pause")
    if order.pause is not None:
        raise InvalidTransition("already_paused", f"the reply clock is already paused ({order.pause.reason})")
    new = replace(order, pause=Pause(reason, now, staff_id))
    return Transition(new, (_event(order, ev.SLA_PAUSED, now, staff_id=staff_id, at=format_time(now), reason=reason),))


def resume(order: WorkOrder, *, staff_id: str, now: datetime) -> Transition:
    _text("staff_id", staff_id)
    _require(order, OPEN, "resume")
    if order.pause is None:
        raise InvalidTransition("not_paused", "the reply clock is not paused")
    return _unpaused(order, staff_id, now)


def _close(order: WorkOrder, closed_by: str, now: datetime, **changes: object) -> Transition:
    new = replace(order, status=Status.CLOSED, closed_at=now, closed_by=closed_by, **changes)
    return Transition(new, (_event(order, ev.CLOSED, now, closed_at=format_time(now), closed_by=closed_by),))


def close_by_staff(order: WorkOrder, *, staff_id: str, now: datetime) -> Transition:
    """Staff close a replied order (e.g. the citizen confirmed by phone); only after a reply."""
    _text("staff_id", staff_id)
    _require(order, {Status.REPLIED}, "close")
    return _close(order, "staff", now)


def due_for_timeout_close(order: WorkOrder, now: datetime, feedback_window: timedelta) -> bool:
    """True when a reply has waited `feedback_window` without the citizen's rating."""
    return order.status == Status.REPLIED and order.replied_at is not None and now - order.replied_at >= feedback_window


# why the timeout scanner must look at an order again (services/routing/service.py, "the timeout scanner")
REPLY_WAITS = "reply"  # a reply waits for the citizen's rating: closed by timeout once the window has passed
FINISHED = "finished"  # a closed or withdrawn order leaves the lists once it has been listed long enough


def finished_at(order: WorkOrder) -> datetime | None:
    return order.closed_at or order.withdrawn_at


def timers(
    order: WorkOrder, before: WorkOrder | None, feedback_window: timedelta, keep_finished: timedelta
) -> list[tuple[datetime, str]]:
    """When the timeout scanner must look at `order` again because of the change from `before`, and
    why: a new reply starts its feedback window, a close or withdrawal its time in the lists."""
    out = []
    replied = order.status == Status.REPLIED and order.replied_at is not None
    if replied and (before is None or before.replied_at != order.replied_at):
        out.append((order.replied_at + feedback_window, REPLY_WAITS))  # type: ignore[operator]
    finished = finished_at(order)
    if finished is not None and (before is None or finished_at(before) is None):
        out.append((finished + keep_finished, FINISHED))
    return out


def close_by_timeout(order: WorkOrder, *, now: datetime, feedback_window: timedelta) -> Transition:
    _require(order, {Status.REPLIED}, "time out")
    if not due_for_timeout_close(order, now, feedback_window):
        raise InvalidTransition("not_due", "the feedback window after the reply has not passed yet")
    return _close(order, "timeout", now)


def feedback(order: WorkOrder, *, satisfaction: str, now: datetime) -> Transition:
    """The citizen's rating of a reply: satisfied closes; dissatisfied reopens once, then closes."""
    _one_of("satisfaction", satisfaction, SATISFACTIONS)
    _require(order, {Status.REPLIED}, "rate")
    if satisfaction != "dissatisfied" or order.reopen_count >= MAX_REOPENS:
        return _close(order, "feedback", now, satisfaction=satisfaction)
    new = replace(order, status=Status.REOPENED, satisfaction=satisfaction, reopen_count=order.reopen_count + 1)
    reason = "the citizen rated the reply dissatisfied"
    return Transition(new, (_event(order, ev.REOPENED, now, reopened_at=format_time(now), reason=reason),))


def withdraw(order: WorkOrder, *, now: datetime) -> Transition:
    """The citizen withdraws before any reply. Intake publishes petition.withdrawn; routing adds nothing."""
    _require(order, {Status.ASSIGNED, Status.IN_PROGRESS}, "withdraw")
    seconds = order.paused_seconds
    if order.pause is not None:
        seconds += max(0.0, (now - order.pause.since).total_seconds())
    return Transition(replace(order, status=Status.WITHDRAWN, withdrawn_at=now, pause=None, paused_seconds=seconds), ())
