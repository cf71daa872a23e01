"""The petition as intake keeps it, and every change of it.

A transition takes the current state (and the time, and what the request or event says) and
returns the new state with the events to publish, or raises ActionRefused (the state does not allow
it, HTTP 409) or PetitionClosed. The service loads, asks here, and commits what comes back.

Routing owns the handling; intake only follows it (`apply_lifecycle`), so that a citizen sees the
status. Withdrawal and closure are final.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from petition_common.envelope import Event
from petition_kernel.access import Area
from petition_kernel.times import format_time, parse_time
from services.intake.domain.masking import mask_name, mask_phone, masked_comment, masked_content, masked_location
from services.intake.domain.submission import Submission

SOURCE = "petitions/intake"

SUBMITTED, ASSIGNED, IN_PROGRESS, REPLIED, REOPENED, CLOSED, WITHDRAWN = (
    "submitted",
    "assigned",
    "in_progress",
    "replied",
    "reopened",
    "closed",
    "withdrawn",
)
TERMINAL = (CLOSED, WITHDRAWN)
_SEEN_KEEP = 64

State = dict[str, Any]
Change = tuple[State, list[Event]]


class ActionRefused(Exception):
    """The petition's state does not allow this action now (HTTP 409)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class PetitionClosed(Exception):
    """The petition is closed or withdrawn: no one joins it any more."""


def format_petition_id(prefix: str, day: date, seq: int) -> str:
    """JZ20240717000123: a prefix, the day of acceptance (Beijing time) and the day's number."""
    if not 1 <= seq <= 999_999:
        raise ValueError(f"sequence {seq} out of range for one day")
    return f"{prefix}{day:%Y%m%d}{seq:06d}"


@dataclass(frozen=True)
class Credentials:
    """What the server key derives for a new petition (codes.py); the domain only stores them."""

    tracking_digest: str  # of the submitter's tracking code, which is never stored
    citizen_ref: str  # the citizen's pseudonym in events
    contact_id: str  # the encrypted contacts record of the submitter


def submit(
    pid: str, sub: Submission, now: datetime, keys: Credentials, duplicate_of: str | None
) -> tuple[State, Event]:
    """The new petition's first state and its `petition.submitted` event: masked forms only."""
    submitted_at = format_time(now)
    masked = {"name_masked": mask_name(sub.citizen_name), "phone_masked": mask_phone(sub.citizen_phone)}
    content, location = masked_content(sub), masked_location(sub.location)
    data: dict[str, Any] = {
        "petition_id": pid,
        "channel": sub.channel,
        "category": sub.category,
        "content": content,
        "location": location,
        "citizen": {**masked, "ref": keys.citizen_ref},
        "submitted_at": submitted_at,
        "duplicate_of": duplicate_of,
    }
    state = {
        "petition_id": pid,
        "tracking_digest": keys.tracking_digest,
        "channel": sub.channel,
        "category": sub.category,
        "content": content,
        "location": location,
        "citizen": {"contact_id": keys.contact_id, **masked},
        "submitted_at": submitted_at,
        "status": SUBMITTED,
        "duplicate_of": duplicate_of,
        "affected_citizens": 1,
        "timeline": [{"at": submitted_at, "event": "petition.submitted", "status": SUBMITTED}],
        "reply_round": 0,
        "feedback_round": 0,
    }
    event = Event(type="petition.submitted", source=SOURCE, subject=pid, data=data, time=submitted_at)
    return state, event


def is_open(state: Mapping[str, Any]) -> bool:
    return state["status"] not in TERMINAL


# ---- the submitter's actions


def check_feedback(state: Mapping[str, Any]) -> None:
    """Feedback once per reply, and only after a reply."""
    if state["status"] != REPLIED:
        raise ActionRefused("not_replied", f"feedback is possible after a reply; the petition is {state['status']}")
    if int(state.get("feedback_round", 0)) >= int(state.get("reply_round", 0)):
        raise ActionRefused("feedback_given", "feedback for this reply has already been given")


def give_feedback(state: State, satisfaction: str, comment: str | None, now: datetime) -> Change:
    """The submitter rates the latest reply (comment masked: it is kept in the petition's commits)."""
    check_feedback(state)
    at = format_time(now)
    round_ = int(state.get("reply_round", 0))
    new = {
        **state,
        "feedback_round": round_,
        "feedback": {
            "satisfaction": satisfaction,
            "comment": masked_comment(comment),
            "received_at": at,
            "round": round_,
        },
        "timeline": [
            *state["timeline"],
            {"at": at, "event": "petition.feedback_received", "status": state["status"], "note": satisfaction},
        ],
    }
    event = Event(
        type="petition.feedback_received",
        source=SOURCE,
        subject=state["petition_id"],
        time=at,
        data={"petition_id": state["petition_id"], "satisfaction": satisfaction, "received_at": at, "round": round_},
    )
    return new, [event]


def check_withdraw(state: Mapping[str, Any]) -> None:
    """A citizen may withdraw until the handler has replied."""
    if state["status"] in TERMINAL or int(state.get("reply_round", 0)) > 0:
        raise ActionRefused("too_late", f"a petition that is {state['status']} can no longer be withdrawn")


def withdraw(state: State, now: datetime) -> Change:
    check_withdraw(state)
    at = format_time(now)
    new = {
        **state,
        "status": WITHDRAWN,
        "timeline": [*state["timeline"], {"at": at, "event": "petition.withdrawn", "status": WITHDRAWN}],
    }
    event = Event(
        type="petition.withdrawn",
        source=SOURCE,
        subject=state["petition_id"],
        time=at,
        data={"petition_id": state["petition_id"], "withdrawn_at": at},
    )
    return new, [event]


# ---- more citizens with the same problem


def add_follower(state: State) -> State:
    """One more citizen joined the petition; PetitionClosed if it ended while they were being added."""
    if not is_open(state):
        raise PetitionClosed(state["petition_id"])
    return {**state, "affected_citizens": int(state.get("affected_citizens", 1)) + 1}


def add_duplicate(state: State) -> State:
    """A later near-identical petition of the same citizen was linked to this one."""
    return {**state, "affected_citizens": int(state.get("affected_citizens", 1)) + 1}


# ---- following routing


def already_seen(state: Mapping[str, Any], event_id: str) -> bool:
    return event_id in state.get("seen", ())


def _remember(state: State, event_id: str) -> None:
    state["seen"] = [*state.get("seen", []), event_id][-_SEEN_KEEP:]


def apply_lifecycle(
    state: Mapping[str, Any], event_type: str, data: Mapping[str, Any], event_id: str, event_time: str
) -> State | None:
    """The petition after a routing event, or None if it was already applied.

    Withdrawal and closure are final: a later routing event is kept in the timeline but does
    not change the status (routing honours a withdrawal it receives after replying, so both
    sides end in `withdrawn`).
    """
    if already_seen(state, event_id):
        return None
    new = dict(state)
    status = new["status"]
    entry: dict[str, Any] = {"at": event_time, "event": event_type}
    if event_type in ("petition.assigned", "petition.transferred"):
        new["assignment"] = {k: data.get(k) for k in ("grid_id", "village", "town", "department", "assignee")}
        new["town_id"] = (data.get("grid_id") or "")[:3] or None
        if status == SUBMITTED:
            status = ASSIGNED
        entry["note"] = data.get("reason")
    elif event_type == "petition.contacted":
        if status in (SUBMITTED, ASSIGNED, REOPENED):
            status = IN_PROGRESS
    elif event_type == "petition.replied":
        if status not in TERMINAL:
            status = REPLIED
            new["reply_round"] = int(new.get("reply_round", 0)) + 1
            new["reply"] = {
                "resolution": data.get("resolution"),
                "summary": data.get("summary"),
                "replied_at": data.get("replied_at"),
            }
        entry["note"] = data.get("summary")
    elif event_type == "petition.reopened":
        if status not in TERMINAL:
            status = REOPENED
        entry["note"] = data.get("reason")
    elif event_type == "petition.closed" and status != WITHDRAWN:
        status = CLOSED
        new["closed_by"] = data.get("closed_by")
    # sla_paused / sla_resumed: timeline only
    entry["status"] = status
    new["status"] = status
    new["timeline"] = [*new.get("timeline", []), entry]
    _remember(new, event_id)
    return new


# ---- retention of the citizen's details (retention.py)


def ended_at(before: Mapping[str, Any], after: Mapping[str, Any]) -> datetime | None:
    """When the change from `before` to `after` ended the petition (its last timeline entry), or None
    if it did not end it."""
    if after["status"] not in TERMINAL or before["status"] in TERMINAL:
        return None
    return parse_time(after["timeline"][-1]["at"])


def erase_contacts(state: State, erased_at: datetime) -> State:
    """The petition after its citizen's details were erased: no masked forms, no feedback comment."""
    new = {**state, "citizen": {"erased_at": format_time(erased_at)}}
    if isinstance(state.get("feedback"), dict):
        new["feedback"] = {**state["feedback"], "comment": None}
    return new


def area_of(state: Mapping[str, Any]) -> Area:
    """Where the petition is placed, for the one authorisation rule (petition_kernel.access)."""
    assignment = state.get("assignment") or {}
    return Area(grid_id=assignment.get("grid_id"), town_id=state.get("town_id"))
