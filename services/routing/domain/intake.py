"""What intake's events do to routing's aggregate, as pure functions.

    event                        aggregate before        after
    petition.submitted           none                    a new work order, routed (decide.route)
    petition.submitted           exists                  unchanged (republished under another id)
    petition.feedback_received   replied                 closed or reopened (workorder.feedback)
    petition.withdrawn           assigned, in_progress   withdrawn (workorder.withdraw)
    any, id applied before       any                     unchanged (a redelivery)

A rating or withdrawal the order's state refuses (say a withdrawal that crossed our reply: intake
decided without seeing it) is recorded as applied and changes nothing else: routing keeps its own
state. An event for a petition routing never saw submitted is an error: intake's events of one
petition share a partition, so `submitted` always comes first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, NamedTuple

from .decide import RoutingRules, route
from .workorder import InvalidTransition, Transition, WorkOrder, assign, feedback, withdraw

SUBMITTED = "petition.submitted"
FEEDBACK_RECEIVED = "petition.feedback_received"
WITHDRAWN = "petition.withdrawn"
CONSUMED = (SUBMITTED, FEEDBACK_RECEIVED, WITHDRAWN)
# how many applied intake event ids an aggregate remembers (a petition has a handful of events)
SEEN_KEEP = 64


class NeverSubmitted(ValueError):
    """An intake event for a petition that routing has no work order for."""


@dataclass(frozen=True)
class IntakeEvent:
    """What routing reads of an intake event: its id (for idempotence), its type and its data."""

    id: str
    type: str
    data: Mapping[str, Any]

    @property
    def petition_id(self) -> str:
        return str(self.data["petition_id"])


@dataclass(frozen=True)
class RoutedPetition:
    """Routing's aggregate: the work order, what routing keeps of the submitted petition, and the ids
    of the intake events it applied (the newest SEEN_KEEP), so a redelivery changes nothing."""

    order: WorkOrder
    category: Any
    duplicate_of: Any
    seen: tuple[str, ...]

    def applied(self, event_id: str) -> bool:
        return event_id in self.seen


class Step(NamedTuple):
    """The aggregate after an event and the transition that made it; `ignored` says why an event
    that the order's state refused changed nothing but the applied ids."""

    petition: RoutedPetition
    transition: Transition
    ignored: str | None = None


def on_intake_event(
    petition: RoutedPetition | None, event: IntakeEvent, rules: RoutingRules, *, now: datetime
) -> Step | None:
    """The aggregate after `event`; None when the event changes nothing (applied before, a second
    `submitted`, or a type routing does not act on)."""
    if petition is not None and petition.applied(event.id):
        return None
    if event.type == SUBMITTED:
        if petition is not None:
            return None  # already routed (the same petition republished under another event id)
        decision = route(event.data, rules.registry, rules.departments, dispatcher_id=rules.dispatcher_id)
        transition = assign(event.petition_id, decision, now=now)
        routed = RoutedPetition(
            transition.order, event.data.get("category"), event.data.get("duplicate_of"), (event.id,)
        )
        return Step(routed, transition)
    if petition is None:
        raise NeverSubmitted(f"{event.type} for petition {event.petition_id} that routing never saw submitted")
    ignored = None
    try:
        if event.type == FEEDBACK_RECEIVED:
            transition = feedback(petition.order, satisfaction=event.data["satisfaction"], now=now)
        elif event.type == WITHDRAWN:
            transition = withdraw(petition.order, now=now)
        else:
            return None
    except InvalidTransition as exc:
        transition, ignored = Transition(petition.order, ()), exc.message
    seen = (*petition.seen, event.id)[-SEEN_KEEP:]
    return Step(replace(petition, order=transition.order, seen=seen), transition, ignored)
