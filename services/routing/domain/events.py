"""The routing service's contract events (CONTRACT.md), as plain values for the publisher to wrap."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ASSIGNED = "petition.assigned"
TRANSFERRED = "petition.transferred"
CONTACTED = "petition.contacted"
REPLIED = "petition.replied"
CLOSED = "petition.closed"
REOPENED = "petition.reopened"
SLA_PAUSED = "petition.sla_paused"
SLA_RESUMED = "petition.sla_resumed"


@dataclass(frozen=True, slots=True)
class WorkOrderEvent:
    """A fact about a work order, before the publisher wraps it in the envelope (petition_common.envelope.Event)."""

    type: str  # the CloudEvents `type`
    subject: str  # the petition_id: CloudEvents `subject` and the Kafka key
    time: datetime  # when the fact happened: CloudEvents `time`
    data: dict[str, Any] = field(hash=False)
