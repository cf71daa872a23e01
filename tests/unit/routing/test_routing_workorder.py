"""The work-order state machine: every action in every state and the events (who may act: test_access_rule.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from petition_kernel.times import BEIJING, format_time
from services.routing.domain import (
    Assignee,
    Assignment,
    InvalidArgument,
    InvalidTransition,
    RouteDecision,
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
    timers,
    transfer,
    withdraw,
)

T0 = datetime(2024, 7, 17, 0, 30, tzinfo=UTC)
WINDOW = timedelta(days=3)
LEADER = "LT01V01G001"

DECISION = RouteDecision(
    grid_id="T01V01G001",
    village="大王庄新村",
    town="王台镇",
    department="county_housing_bureau",
    assignee=Assignee(LEADER, "grid_leader"),
    village_id="T01V01",
    town_id="T01",
    route="point",
    reason="point (36.25, 120.0) lies in grid T01V01G001",
)
OTHER_GRID = Assignment(
    grid_id="T01V02G001",
    village="小王庄新村",
    town="王台镇",
    department="county_housing_bureau",
    assignee=Assignee("LT01V02G001", "grid_leader"),
    village_id="T01V02",
    town_id="T01",
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def new_order() -> WorkOrder:
    return assign("JZ20240717000123", DECISION, now=T0).order


def in_state(status: str, *, paused: bool = False) -> WorkOrder:
    """An order brought to `status` through the real transitions."""
    order = new_order()
    path: dict[str, list[Callable[[WorkOrder], Transition]]] = {
        "assigned": [],
        "in_progress": [lambda o: contact(o, staff_id=LEADER, now=at(10))],
        "replied": [
            lambda o: contact(o, staff_id=LEADER, now=at(10)),
            lambda o: reply(o, staff_id=LEADER, resolution="resolved", summary="已疏通", now=at(60)),
        ],
        "reopened": [
            lambda o: contact(o, staff_id=LEADER, now=at(10)),
            lambda o: reply(o, staff_id=LEADER, resolution="resolved", summary="已疏通", now=at(60)),
            lambda o: feedback(o, satisfaction="dissatisfied", now=at(120)),
        ],
        "closed": [
            lambda o: contact(o, staff_id=LEADER, now=at(10)),
            lambda o: reply(o, staff_id=LEADER, resolution="resolved", summary="已疏通", now=at(60)),
            lambda o: feedback(o, satisfaction="satisfied", now=at(120)),
        ],
        "withdrawn": [lambda o: withdraw(o, now=at(5))],
    }
    for step in path[status]:
        order = step(order).order
    if paused:
        order = pause(order, staff_id=LEADER, reason="citizen_unreachable", now=at(200)).order
    assert order.status == status
    return order


NOW = at(60 * 24 * 10)  # well after any feedback window

# action name → (function, the states it is allowed in, the status it leads to; None = unchanged)
ACTIONS: dict[str, tuple[Callable[[WorkOrder], Transition], set[str], str | None]] = {
    "contact": (lambda o: contact(o, staff_id=LEADER, now=NOW), {"assigned", "reopened"}, "in_progress"),
    "reply": (
        lambda o: reply(o, staff_id=LEADER, resolution="explained", summary="已解释", now=NOW),
        {"in_progress", "reopened"},
        "replied",
    ),
    "transfer": (
        lambda o: transfer(o, OTHER_GRID, reason="属小王庄新村", now=NOW),
        {"assigned", "in_progress", "reopened"},
        None,
    ),
    "pause": (
        lambda o: pause(o, staff_id=LEADER, reason="third_party", now=NOW),
        {"assigned", "in_progress", "reopened"},
        None,
    ),
    "close_by_staff": (lambda o: close_by_staff(o, staff_id=LEADER, now=NOW), {"replied"}, "closed"),
    "close_by_timeout": (lambda o: close_by_timeout(o, now=NOW, feedback_window=WINDOW), {"replied"}, "closed"),
    "feedback_satisfied": (lambda o: feedback(o, satisfaction="satisfied", now=NOW), {"replied"}, "closed"),
    "feedback_basically": (lambda o: feedback(o, satisfaction="basically_satisfied", now=NOW), {"replied"}, "closed"),
    "feedback_dissatisfied": (lambda o: feedback(o, satisfaction="dissatisfied", now=NOW), {"replied"}, "reopened"),
    "withdraw": (lambda o: withdraw(o, now=NOW), {"assigned", "in_progress"}, "withdrawn"),
}
STATES = [s.value for s in Status]


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_in_every_state(action: str, state: str) -> None:
    do, allowed, target = ACTIONS[action]
    order = in_state(state)
    if state in allowed:
        new, _ = do(order)
        assert new.status == (target or state)
    else:
        with pytest.raises(InvalidTransition) as raised:
            do(order)
        assert raised.value.code == "invalid_state" and state in raised.value.message


@pytest.mark.parametrize("state", STATES)
def test_resume_in_every_state(state: str) -> None:
    order = in_state(state, paused=state in {"assigned", "in_progress", "reopened"})
    if order.pause is None:
        with pytest.raises(InvalidTransition):
            resume(order, staff_id=LEADER, now=NOW)
    else:
        new, events = resume(order, staff_id=LEADER, now=at(260))
        assert (new.status, new.pause, new.paused_seconds) == (order.status, None, 3600.0)
        assert [e.type for e in events] == ["petition.sla_resumed"]


# --- the events' data, exactly as CONTRACT.md ------------------------------------------------------------


def test_assign_creates_the_order_and_the_assigned_event() -> None:
    order, events = assign("JZ20240717000123", DECISION, now=T0)
    assert (order.status, order.route, order.assignment.grid_id, order.assignment.town_id) == (
        "assigned",
        "point",
        "T01V01G001",
        "T01",
    )
    assert type(order.assignment) is Assignment  # not the RouteDecision it came from
    (event,) = events
    assert (event.type, event.subject, event.time) == ("petition.assigned", "JZ20240717000123", T0)
    assert event.data == {
        "petition_id": "JZ20240717000123",
        "grid_id": "T01V01G001",
        "village": "大王庄新村",
        "town": "王台镇",
        "department": "county_housing_bureau",
        "assignee": {"staff_id": LEADER, "role": "grid_leader"},
        "reason": "point (36.25, 120.0) lies in grid T01V01G001",
        "assigned_at": "2024-07-17T00:30:00.000Z",
    }


def test_triage_assignment_event_has_null_grid() -> None:
    triage = RouteDecision(
        grid_id=None,
        village=None,
        town=None,
        department="county_dispatch_centre",
        assignee=Assignee("S000001", "county_dispatcher"),
        route="triage",
        reason="no grid_id, point or village name given",
    )
    (event,) = assign("P1", triage, now=T0).events
    assert event.data["grid_id"] is None and event.data["assignee"] == {
        "staff_id": "S000001",
        "role": "county_dispatcher",
    }


def _data(transition: Transition) -> list[tuple[str, dict[str, Any]]]:
    return [(e.type, e.data) for e in transition.events]


def test_event_data_of_each_transition() -> None:
    pid = "JZ20240717000123"
    order = new_order()
    t = pause(order, staff_id=LEADER, reason="citizen_unreachable", now=at(1))
    assert _data(t) == [
        (
            "petition.sla_paused",
            {"petition_id": pid, "staff_id": LEADER, "at": "2024-07-17T00:31:00.000Z", "reason": "citizen_unreachable"},
        )
    ]
    t = resume(t.order, staff_id=LEADER, now=at(2))
    assert _data(t) == [
        ("petition.sla_resumed", {"petition_id": pid, "staff_id": LEADER, "at": "2024-07-17T00:32:00.000Z"})
    ]
    t = contact(t.order, staff_id=LEADER, now=at(3))
    assert _data(t) == [
        ("petition.contacted", {"petition_id": pid, "staff_id": LEADER, "contacted_at": "2024-07-17T00:33:00.000Z"})
    ]
    t = transfer(t.order, OTHER_GRID, reason="地址属小王庄新村", now=at(4))
    assert _data(t) == [
        (
            "petition.transferred",
            {
                "petition_id": pid,
                "grid_id": "T01V02G001",
                "village": "小王庄新村",
                "town": "王台镇",
                "department": "county_housing_bureau",
                "assignee": {"staff_id": "LT01V02G001", "role": "grid_leader"},
                "reason": "地址属小王庄新村",
                "assigned_at": "2024-07-17T00:34:00.000Z",
            },
        )
    ]
    t = reply(t.order, staff_id="LT01V02G001", resolution="unresolvable", summary="需县住建局", now=at(5))
    assert _data(t) == [
        (
            "petition.replied",
            {
                "petition_id": pid,
                "staff_id": "LT01V02G001",
                "replied_at": "2024-07-17T00:35:00.000Z",
                "resolution": "unresolvable",
                "summary": "需县住建局",
            },
        )
    ]
    t = feedback(t.order, satisfaction="dissatisfied", now=at(6))
    assert _data(t) == [
        (
            "petition.reopened",
            {
                "petition_id": pid,
                "reopened_at": "2024-07-17T00:36:00.000Z",
                "reason": "the citizen rated the reply dissatisfied",
            },
        )
    ]
    t = reply(t.order, staff_id="LT01V02G001", resolution="resolved", summary="已修复", now=at(7))
    t = close_by_staff(t.order, staff_id="LT01V02G001", now=at(8))
    assert _data(t) == [
        ("petition.closed", {"petition_id": pid, "closed_at": "2024-07-17T00:38:00.000Z", "closed_by": "staff"})
    ]


def test_event_times_are_utc() -> None:
    (event,) = contact(new_order(), staff_id=LEADER, now=datetime(2024, 7, 17, 9, 0, 0, 250000, tzinfo=BEIJING)).events
    assert event.data["contacted_at"] == "2024-07-17T01:00:00.250Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        format_time(datetime(2024, 7, 17, 9, 0))


# --- feedback and reopening ---------------------------------------------------------------------------


@pytest.mark.parametrize("satisfaction", ["satisfied", "basically_satisfied"])
def test_good_feedback_closes(satisfaction: str) -> None:
    new, events = feedback(in_state("replied"), satisfaction=satisfaction, now=NOW)
    assert (new.status, new.closed_by, new.satisfaction, new.closed_at) == ("closed", "feedback", satisfaction, NOW)
    assert [e.type for e in events] == ["petition.closed"]
    assert events[0].data["closed_by"] == "feedback"


def test_reopen_once_then_closed_as_dissatisfied() -> None:
    order = in_state("reopened")
    assert order.reopen_count == 1
    order = contact(order, staff_id=LEADER, now=at(130)).order  # contacting again is allowed
    assert order.contacted_at == at(10)  # the first contact is what the contact clock measured
    order = reply(order, staff_id=LEADER, resolution="explained", summary="再次答复", now=at(140)).order
    assert order.replied_at == at(140)
    new, events = feedback(order, satisfaction="dissatisfied", now=at(150))
    assert (new.status, new.closed_by, new.satisfaction, new.reopen_count) == ("closed", "feedback", "dissatisfied", 1)
    assert [e.type for e in events] == ["petition.closed"]


def test_reopened_order_may_be_replied_without_new_contact() -> None:
    new, events = reply(in_state("reopened"), staff_id=LEADER, resolution="resolved", summary="复核", now=NOW)
    assert new.status == "replied" and [e.type for e in events] == ["petition.replied"]


# --- withdraw -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["assigned", "in_progress"])
def test_withdraw_before_reply(state: str) -> None:
    new, events = withdraw(in_state(state), now=NOW)
    assert (new.status, new.withdrawn_at, events) == ("withdrawn", NOW, ())


@pytest.mark.parametrize("state", ["replied", "reopened", "closed", "withdrawn"])
def test_no_withdraw_after_a_reply(state: str) -> None:
    with pytest.raises(InvalidTransition):
        withdraw(in_state(state), now=NOW)


def test_withdraw_while_paused_stops_the_pause() -> None:
    new, _ = withdraw(in_state("in_progress", paused=True), now=at(230))
    assert (new.pause, new.paused_seconds) == (None, 1800.0)


# --- transfer -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["assigned", "in_progress", "reopened"])
def test_transfer_keeps_the_state(state: str) -> None:
    order = in_state(state)
    new, events = transfer(order, OTHER_GRID, reason="属小王庄新村", now=NOW)
    assert new.status == order.status
    assert new.assignment == OTHER_GRID and new.assigned_at == NOW and new.transfer_count == 1
    assert (new.contacted_at, new.replied_at, new.reopen_count) == (
        order.contacted_at,
        order.replied_at,
        order.reopen_count,
    )
    assert [e.type for e in events] == ["petition.transferred"]


def test_transfer_to_a_department() -> None:
    to_bureau = Assignment(
        grid_id="T01V01G001",
        village="大王庄新村",
        town="王台镇",
        department="county_transport_bureau",
        assignee=Assignee("S000321", "department_handler"),
        village_id="T01V01",
        town_id="T01",
    )
    new, events = transfer(new_order(), to_bureau, reason="属交通局职责", now=NOW)
    assert new.assignment.department == "county_transport_bureau"
    assert events[0].data["assignee"] == {"staff_id": "S000321", "role": "department_handler"}


def test_transfer_keeps_a_pause() -> None:
    order = in_state("in_progress", paused=True)
    new, _ = transfer(order, OTHER_GRID, reason="属小王庄新村", now=NOW)
    assert new.pause == order.pause


def test_transfer_to_the_same_assignment_is_refused() -> None:
    with pytest.raises(InvalidTransition) as raised:
        transfer(new_order(), DECISION, reason="再派", now=NOW)
    assert raised.value.code == "same_assignment"


def test_transfer_needs_a_reason() -> None:
    with pytest.raises(InvalidArgument) as raised:
        transfer(new_order(), OTHER_GRID, reason=" ", now=NOW)
    assert raised.value.field == "reason"


# --- pause and resume ---------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["citizen_unreachable", "third_party", "citizen_deferred"])
def test_pause_reasons(reason: str) -> None:
    new, events = pause(in_state("in_progress"), staff_id=LEADER, reason=reason, now=NOW)
    assert new.pause is not None and new.pause.reason == reason and new.status == "in_progress"
    assert events[0].data["reason"] == reason


def test_pause_reason_must_be_known() -> None:
    with pytest.raises(InvalidArgument):
        pause(new_order(), staff_id=LEADER, reason="lunch", now=NOW)


def test_cannot_pause_twice() -> None:
    with pytest.raises(InvalidTransition) as raised:
        pause(in_state("assigned", paused=True), staff_id=LEADER, reason="third_party", now=NOW)
    assert raised.value.code == "already_paused"


def test_cannot_resume_when_not_paused() -> None:
    with pytest.raises(InvalidTransition) as raised:
        resume(in_state("in_progress"), staff_id=LEADER, now=NOW)
    assert raised.value.code == "not_paused"


def test_pause_time_accumulates_across_pauses() -> None:
    order = in_state("in_progress")
    order = pause(order, staff_id=LEADER, reason="third_party", now=at(100)).order
    order = resume(order, staff_id=LEADER, now=at(110)).order
    order = pause(order, staff_id=LEADER, reason="citizen_deferred", now=at(120)).order
    order = resume(order, staff_id=LEADER, now=at(125)).order
    assert order.paused_seconds == 900.0


def test_reply_while_paused_resumes_first() -> None:
    new, events = reply(
        in_state("in_progress", paused=True), staff_id=LEADER, resolution="resolved", summary="好", now=at(210)
    )
    assert [e.type for e in events] == ["petition.sla_resumed", "petition.replied"]
    assert (new.status, new.pause, new.paused_seconds) == ("replied", None, 600.0)


# --- timeout close ------------------------------------------------------------------------------------


def test_due_for_timeout_close() -> None:
    replied = in_state("replied")  # replied at minute 60
    assert not due_for_timeout_close(replied, at(60) + WINDOW - timedelta(seconds=1), WINDOW)
    assert due_for_timeout_close(replied, at(60) + WINDOW, WINDOW)
    for state in ("assigned", "in_progress", "reopened", "closed", "withdrawn"):
        assert not due_for_timeout_close(in_state(state), NOW, WINDOW)


def test_timeout_close() -> None:
    new, events = close_by_timeout(in_state("replied"), now=at(60) + WINDOW, feedback_window=WINDOW)
    assert (new.status, new.closed_by) == ("closed", "timeout")
    assert events[0].data["closed_by"] == "timeout"


def test_timeout_close_before_the_window_is_refused() -> None:
    with pytest.raises(InvalidTransition) as raised:
        close_by_timeout(in_state("replied"), now=at(61), feedback_window=WINDOW)
    assert raised.value.code == "not_due"


def test_feedback_after_timeout_close_is_refused() -> None:
    closed = close_by_timeout(in_state("replied"), now=NOW, feedback_window=WINDOW).order
    with pytest.raises(InvalidTransition):
        feedback(closed, satisfaction="satisfied", now=NOW)


# --- malformed arguments (422, whatever the state) ------------------------------------------------------


@pytest.mark.parametrize(
    ("do", "field"),
    [
        (lambda o: reply(o, staff_id=LEADER, resolution="done", summary="x", now=NOW), "resolution"),
        (lambda o: reply(o, staff_id=LEADER, resolution="resolved", summary="", now=NOW), "summary"),
        (lambda o: contact(o, staff_id="", now=NOW), "staff_id"),
        (lambda o: feedback(o, satisfaction="meh", now=NOW), "satisfaction"),
        (lambda o: pause(o, staff_id=LEADER, reason=None, now=NOW), "reason"),
    ],
)
def test_invalid_arguments(do: Callable[[WorkOrder], Transition], field: str) -> None:
    with pytest.raises(InvalidArgument) as raised:
        do(in_state("in_progress"))
    assert raised.value.field == field


def test_assign_needs_a_petition_id() -> None:
    with pytest.raises(InvalidArgument):
        assign("", DECISION, now=T0)


# ---- when the timeout scanner must look at an order again

KEEP = timedelta(days=7)


def test_a_reply_starts_its_window_and_a_finish_its_time_in_the_lists() -> None:
    replied, in_progress = in_state("replied"), in_state("in_progress")
    assert timers(replied, in_progress, WINDOW, KEEP) == [(at(60) + WINDOW, "reply")]
    assert timers(replied, replied, WINDOW, KEEP) == []  # a change that is not a new reply (say a re-projection)
    assert timers(in_state("closed"), replied, WINDOW, KEEP) == [(at(120) + KEEP, "finished")]
    assert timers(in_state("withdrawn"), new_order(), WINDOW, KEEP) == [(at(5) + KEEP, "finished")]
    assert timers(in_state("reopened"), replied, WINDOW, KEEP) == []
    assert timers(new_order(), None, WINDOW, KEEP) == []


def test_a_second_reply_starts_a_window_of_its_own() -> None:
    reopened = in_state("reopened")
    again = reply(reopened, staff_id=LEADER, resolution="explained", summary="已说明", now=at(300)).order
    assert timers(again, reopened, WINDOW, KEEP) == [(at(300) + WINDOW, "reply")]


def test_a_timeout_close_starts_the_time_in_the_lists() -> None:
    replied = in_state("replied")
    closed = close_by_timeout(replied, now=at(60) + WINDOW, feedback_window=WINDOW).order
    assert timers(closed, replied, WINDOW, KEEP) == [(at(60) + WINDOW + KEEP, "finished")]
