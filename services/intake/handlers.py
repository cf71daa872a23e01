"""The one table from what intake is asked to do to the use case that does it.

HTTP views call the command and query entries (`_handlers()["withdraw"](petition_id, code)` in
app.py); the consumer loop gets the entries of routing's event types and the batch entry
(`event_handlers`, `BATCH`). Every consumed event is handled idempotently: the petition remembers
the ids of the events it applied (domain.apply_lifecycle).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from petition_common.consumer import BatchHandler, Handler
from petition_common.topics import EVENT_TYPES, ROUTING
from services.intake.service import IntakeService

Handlers = dict[str, Callable[..., Any]]

# the consumer's handler of a whole poll batch of routing's events
BATCH = "batch"
# the events intake follows: routing's, so that a citizen sees the status
CONSUMED = EVENT_TYPES[ROUTING]


def handlers(service: IntakeService) -> Handlers:
    table: Handlers = {
        # commands (HTTP)
        "submit": service.submit,
        "submit_many": service.submit_many,
        "join": service.join,
        "feedback": service.give_feedback,
        "withdraw": service.withdraw,
        # queries (HTTP)
        "read": service.read,
        "read_as_staff": service.read_as_staff,
        "nearby": service.nearby,
        # routing's events (Kafka), one at a time and a poll batch at once
        BATCH: service.on_routing_events,
    }
    table.update({event_type: service.on_routing_event for event_type in CONSUMED})
    return table


def event_handlers(table: Handlers) -> dict[str, Handler]:
    """The entries the consumer loop dispatches events to, by event type."""
    return {event_type: table[event_type] for event_type in CONSUMED}


def batch_handler(table: Handlers) -> BatchHandler:
    return table[BATCH]
