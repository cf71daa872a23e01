"""Pure domain logic of the routing service (派单): grid registry, routing decision, work-order states,
and what intake's events do to a work order.

No I/O: the category → department table comes in from bootstrap.py, the registry from its holder.
"""

from .decide import (
    DEFAULT_DISPATCHER_ID,
    DISPATCH_CENTRE,
    Assignee,
    Assignment,
    RouteDecision,
    RoutingRules,
    department_for,
    route,
)
from .events import WorkOrderEvent
from .intake import CONSUMED, SUBMITTED, IntakeEvent, NeverSubmitted, RoutedPetition, Step, on_intake_event
from .model import Grid, RosterMember, Village
from .names import MIN_MARGIN, MIN_SCORE, VillageLookup
from .registry import GridRegistry, RegistryInvalid, VillageMatch
from .validation import FieldError
from .workorder import (
    InvalidArgument,
    InvalidTransition,
    Pause,
    Status,
    Transition,
    WorkOrder,
    assign,
    close_by_staff,
    close_by_timeout,
    contact,
    due_for_timeout_close,
    feedback,
    pause,
    reply,
    resume,
    transfer,
    transfer_target,
    withdraw,
)

__all__ = [
    "CONSUMED",
    "DEFAULT_DISPATCHER_ID",
    "DISPATCH_CENTRE",
    "MIN_MARGIN",
    "MIN_SCORE",
    "SUBMITTED",
    "Assignee",
    "Assignment",
    "FieldError",
    "Grid",
    "GridRegistry",
    "IntakeEvent",
    "InvalidArgument",
    "InvalidTransition",
    "NeverSubmitted",
    "Pause",
    "RegistryInvalid",
    "RosterMember",
    "RouteDecision",
    "RoutedPetition",
    "RoutingRules",
    "Status",
    "Step",
    "Transition",
    "Village",
    "VillageLookup",
    "VillageMatch",
    "WorkOrder",
    "WorkOrderEvent",
    "assign",
    "close_by_staff",
    "close_by_timeout",
    "contact",
    "department_for",
    "due_for_timeout_close",
    "feedback",
    "on_intake_event",
    "pause",
    "reply",
    "resume",
    "route",
    "transfer",
    "transfer_target",
    "withdraw",
]
