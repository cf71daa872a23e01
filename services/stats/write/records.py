"""What stats reads from Kafka: its topics, and a record (or a parsed event) as the `Change` it applies.

The live counter, the hotspot detector and the rebuild all judge a record the same way here, so a
rebuilt state is the live one: an event that is unparseable, invalid by the contract's schema
(petition_common.contract) or unusable by stats (domain/changes.py, `BadEvent`) is applied by none of
them (the live counter dead-letters it).
"""

from __future__ import annotations

from typing import Any

from petition_common.consumer import type_header
from petition_common.contract import ContractValidator
from petition_common.envelope import Event
from petition_common.topics import INTAKE, ROUTING, SLA
from services.stats.domain.changes import HANDLED_TYPES, BadEvent, change_of
from services.stats.domain.facts import Change

PETITION_TOPICS = (INTAKE, ROUTING, SLA)
DETECTOR_TOPICS = (INTAKE, ROUTING)
DETECTOR_TYPES = frozenset({"petition.submitted", "petition.assigned"})


def offset_key(topic: str, partition: int) -> str:
    """The key of a topic-partition's next offset in a checkpoint (logical topic name)."""
    return f"{topic}:{partition}"


def change_of_event(event: Event, key: str | None) -> Change | None:
    """The change a valid event makes; None for a type stats does not count. Raises BadEvent."""
    change = change_of(event.type, event.data, event.id)
    if change is not None and key is not None and key != change.petition_id:
        raise BadEvent(event.type, "petition_id", f"differs from the message key {key!r}")
    return change


def decode(
    record: Any, validator: ContractValidator, wanted: frozenset[str] = HANDLED_TYPES
) -> tuple[str | None, Change | None]:
    """(event type, change) of a Kafka record; (type, None) for types not wanted.

    Raises EnvelopeError, SchemaViolation or BadEvent for a message that can never be applied.
    """
    named = type_header(record)
    if named is not None and named not in wanted:
        return named, None  # skipped without parsing the body
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    event = Event.from_bytes(record.value, key=key)
    if event.type not in wanted:
        return event.type, None
    validator.validate(event)
    return event.type, change_of_event(event, key)
