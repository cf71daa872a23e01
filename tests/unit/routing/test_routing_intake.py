"""domain/intake.py: what each intake event does to routing's aggregate, with no storage at all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.routing.domain import (
    GridRegistry,
    IntakeEvent,
    NeverSubmitted,
    RoutedPetition,
    RoutingRules,
    Status,
    contact,
    on_intake_event,
    reply,
)
from services.routing.domain.intake import SEEN_KEEP

T0 = datetime(2026, 3, 9, 1, 0, tzinfo=UTC)
PID = "JZ20260309000001"


@pytest.fixture
def rules(registry: GridRegistry, departments: dict[str, str]) -> RoutingRules:
    return RoutingRules(registry, departments)


def event(type_: str, event_id: str, **data: Any) -> IntakeEvent:
    return IntakeEvent(id=event_id, type=f"petition.{type_}", data={"petition_id": PID, **data})


def routed(rules: RoutingRules) -> RoutedPetition:
    submitted = event("submitted", "s1", category="roads", duplicate_of=None, location={"grid_id": "T01V01G001"})
    step = on_intake_event(None, submitted, rules, now=T0)
    assert step is not None
    return step.petition


def replied(rules: RoutingRules) -> RoutedPetition:
    petition = routed(rules)
    order = contact(petition.order, staff_id="L1", now=T0).order
    order = reply(order, staff_id="L1", resolution="resolved", summary="已修复", now=T0 + timedelta(hours=1)).order
    return RoutedPetition(order, petition.category, petition.duplicate_of, petition.seen)


def test_a_submission_creates_the_routed_petition(rules: RoutingRules) -> None:
    submitted = event(
        "submitted", "s1", category="roads", duplicate_of="JZ20260308000009", location={"grid_id": "T01V01G002"}
    )
    step = on_intake_event(None, submitted, rules, now=T0)
    assert step is not None and step.ignored is None
    assert step.petition.seen == ("s1",) and step.petition.category == "roads"
    assert step.petition.duplicate_of == "JZ20260308000009"
    assert step.petition.order.status == Status.ASSIGNED and step.petition.order.assignment.grid_id == "T01V01G002"
    assert [e.type for e in step.transition.events] == ["petition.assigned"]


def test_a_second_submission_or_a_redelivery_changes_nothing(rules: RoutingRules) -> None:
    petition = routed(rules)
    assert on_intake_event(petition, event("submitted", "s2", location={}), rules, now=T0) is None
    assert on_intake_event(petition, event("submitted", "s1", location={}), rules, now=T0) is None
    assert on_intake_event(petition, event("something_else", "x1"), rules, now=T0) is None


def test_ratings_close_or_reopen_and_are_remembered(rules: RoutingRules) -> None:
    good = on_intake_event(replied(rules), event("feedback_received", "f1", satisfaction="satisfied"), rules, now=T0)
    assert good is not None and good.petition.order.status == Status.CLOSED and good.petition.seen == ("s1", "f1")
    bad = on_intake_event(replied(rules), event("feedback_received", "f1", satisfaction="dissatisfied"), rules, now=T0)
    assert bad is not None and bad.petition.order.status == Status.REOPENED
    assert (
        on_intake_event(bad.petition, event("feedback_received", "f1", satisfaction="dissatisfied"), rules, now=T0)
        is None
    )


def test_a_withdrawal_the_order_refuses_is_remembered_with_the_reason(rules: RoutingRules) -> None:
    petition = replied(rules)
    step = on_intake_event(petition, event("withdrawn", "w1"), rules, now=T0)
    assert step is not None and step.transition.events == ()
    assert step.petition.order == petition.order and step.petition.seen == ("s1", "w1")
    assert step.ignored is not None and "withdraw" in step.ignored


def test_events_before_the_submission_are_an_error(rules: RoutingRules) -> None:
    with pytest.raises(NeverSubmitted):
        on_intake_event(None, event("withdrawn", "w1"), rules, now=T0)


def test_the_remembered_ids_are_bounded(rules: RoutingRules) -> None:
    petition = routed(rules)
    for n in range(SEEN_KEEP + 5):
        step = on_intake_event(petition, event("withdrawn", f"w{n}"), rules, now=T0)
        assert step is not None
        petition = step.petition
    assert len(petition.seen) == SEEN_KEEP and petition.seen[-1] == f"w{SEEN_KEEP + 4}"
