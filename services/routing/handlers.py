"""The one table from a command (what the HTTP views call) or a consumed event type (what the consumer
dispatches) to the routing use case that handles it.

    "registry.import"                  (geojson, imported_by) -> summary
    "contact" "reply" "transfer"
    "pause" "resume" "close"           (petition_id, staff, **body) -> the work order
    "petition.submitted"
    "petition.feedback_received"
    "petition.withdrawn"               (event, meta): one intake event
    "batch"                            ([(event, meta), ...]): a poll batch of them
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from petition_common.consumer import Handler
from services.routing import domain
from services.routing.service import RoutingService

Handlers = dict[str, Callable[..., Any]]

REGISTRY_IMPORT = "registry.import"
# the staff actions on a work order, by the name the HTTP path uses
ACTIONS = ("contact", "reply", "transfer", "pause", "resume", "close")
BATCH = "batch"


def handlers(service: RoutingService) -> Handlers:
    return {
        REGISTRY_IMPORT: service.import_registry,
        "contact": service.contact,
        "reply": service.reply,
        "transfer": service.transfer,
        "pause": service.pause,
        "resume": service.resume,
        "close": service.close,
        **{event_type: service.on_intake_event for event_type in domain.CONSUMED},
        BATCH: service.on_intake_events,
    }


def event_handlers(table: Handlers) -> dict[str, Handler]:
    """The consumer's part of the table: one handler per consumed event type."""
    return {event_type: table[event_type] for event_type in domain.CONSUMED}
