"""The one table from a command or event type to the sla use case that handles it.

The HTTP views call the command entries (`current_handlers()["petition"](petition_id, staff)`), the
consumer loop gets the event entries (`event_handlers`) and the batch entry, the periodic jobs and
the repair command call theirs: every way into the service goes through this table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from petition_kernel.sla.record import HANDLED_EVENTS
from services.sla.reads import ClockReader, OverdueSnapshot
from services.sla.service import SlaService

Handlers = dict[str, Callable[..., Any]]


def handlers(service: SlaService, clocks: ClockReader, overdue: OverdueSnapshot) -> Handlers:
    table: Handlers = {
        # the staff API (reads only: sla takes no commands over HTTP)
        "petition": service.petition,
        "petitions": clocks.petitions,  # several petitions' clocks in one call (the grid leader's queue)
        "overdue": overdue.overdue,  # from a snapshot of at most SLA_OVERDUE_MAX_AGE_S (docs/sla.md)
        # the consumer's batch handler: a poll's events at once, petition by petition
        "batch": service.on_events,
        # periodic jobs: the scanner (which checks the calendar first) and the projection audit
        "scan": service.scan_when_due,
        "audit": service.audit,
        # the operator's repair (python -m services.sla.repair)
        "rebuild": service.rebuild,
    }
    # intake's and routing's events, one at a time: every type the record takes facts from
    table.update({event_type: service.on_event for event_type in sorted(HANDLED_EVENTS)})
    return table


def event_handlers(table: Handlers) -> Handlers:
    """The consumer's entries: the event types, without the commands."""
    return {name: handler for name, handler in table.items() if name in HANDLED_EVENTS}
