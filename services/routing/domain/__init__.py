"""Pure domain logic of the routing service (派单): grid registry, routing decision, work-order states.

No I/O here except the explicit config loader `load_departments`.
"""

from .decide import (
    DEFAULT_DISPATCHER_ID,
    DISPATCH_CENTRE,
    Assignee,
    Assignment,
    RouteDecision,
    department_for,
    load_departments,
    route,
)
from .events import Event
from .model import Grid, Staff, Village
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
    withdraw,
)

__all__ = [
    "DEFAULT_DISPATCHER_ID",
    "DISPATCH_CENTRE",
    "MIN_MARGIN",
    "MIN_SCORE",
    "Assignee",
    "Assignment",
    "Event",
    "FieldError",
    "Grid",
    "GridRegistry",
    "InvalidArgument",
    "InvalidTransition",
    "Pause",
    "RegistryInvalid",
    "RouteDecision",
    "Staff",
    "Status",
    "Transition",
    "Village",
    "VillageLookup",
    "VillageMatch",
    "WorkOrder",
    "assign",
    "close_by_staff",
    "close_by_timeout",
    "contact",
    "department_for",
    "due_for_timeout_close",
    "feedback",
    "load_departments",
    "pause",
    "reply",
    "resume",
    "route",
    "transfer",
    "withdraw",
]
