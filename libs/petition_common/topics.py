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

PLATFORM_TOPICS: tuple[str, ...] = (INTAKE, ROUTING, SLA, ALERTS, DEADLETTER)

# Who may do what on the bus, as ACLs (petition_devtools.kafka_access grants them; docs/security.md):
# each service writes only its own topic and the dead letters, and reads only what it consumes (the
# contract's topic table and asyncapi.yaml's operations); `reader`, the principal for other government
# systems, reads the petition topics and the alerts and writes nothing.
WRITES: dict[str, tuple[str, ...]] = {
    "intake": (INTAKE, DEADLETTER),
    "routing": (ROUTING, DEADLETTER),
    "sla": (SLA, DEADLETTER),
    "stats": (ALERTS, DEADLETTER),
}
READS: dict[str, tuple[str, ...]] = {
    "intake": (ROUTING,),
    "routing": (INTAKE,),
    "sla": (INTAKE, ROUTING),
    "stats": (INTAKE, ROUTING, SLA, ALERTS),
    "reader": (INTAKE, ROUTING, SLA, ALERTS),
}
