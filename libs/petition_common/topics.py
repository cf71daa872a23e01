"""Topic names and which event types each carries (CONTRACT.md, "Kafka topics")."""

from __future__ import annotations

INTAKE = "petitions.intake.v1"
ROUTING = "petitions.routing.v1"
SLA = "petitions.sla.v1"
ALERTS = "petitions.alerts.v1"
DEADLETTER = "petitions.deadletter.v1"

EVENT_TYPES: dict[str, tuple[str, ...]] = {
    INTAKE: ("petition.submitted", "petition.feedback_received", "petition.withdrawn"),
    ROUTING: (
        "petition.assigned",
        "petition.transferred",
        "petition.contacted",
        "petition.replied",
        "petition.closed",
        "petition.reopened",
        "petition.sla_paused",
        "petition.sla_resumed",
    ),
    # sla.deadline_changed is an addition to CONTRACT.md v1 (contract/README.md)
    SLA: ("sla.warning", "sla.breached", "sla.deadline_changed"),
    ALERTS: ("alert.hotspot",),
}

TOPIC_OF_TYPE: dict[str, str] = {t: topic for topic, types in EVENT_TYPES.items() for t in types}
ALL_TYPES: tuple[str, ...] = tuple(TOPIC_OF_TYPE)
