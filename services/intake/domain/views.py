"""What each reader of a petition sees: its submitter, a citizen who joined it, staff who cover it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def citizen_view(state: Mapping[str, Any]) -> dict[str, Any]:
    assignment = state.get("assignment") or {}
    return {
        "petition_id": state["petition_id"],
        "status": state["status"],
        "category": state["category"],
        "channel": state["channel"],
        "submitted_at": state["submitted_at"],
        "duplicate_of": state.get("duplicate_of"),
        "affected_citizens": state.get("affected_citizens", 1),
        "assigned_to": {k: assignment.get(k) for k in ("town", "village", "grid_id", "department")}
        if assignment
        else None,
        "reply": state.get("reply"),
        "feedback": state.get("feedback"),
        "timeline": state.get("timeline", []),
    }


def follower_view(state: Mapping[str, Any]) -> dict[str, Any]:
    """What a citizen who joined sees: how the shared problem progresses, not what the submitter
    wrote or was told (notes, the reply's text, the rating's comment may be about them)."""
    view = citizen_view(state)
    reply = view.get("reply")
    return {
        **{k: v for k, v in view.items() if k not in ("reply", "feedback", "timeline", "duplicate_of")},
        "reply": {"resolution": reply.get("resolution"), "replied_at": reply.get("replied_at")} if reply else None,
        "timeline": [{k: e.get(k) for k in ("at", "event", "status")} for e in view["timeline"]],
    }


def staff_view(state: Mapping[str, Any], contact: Mapping[str, str] | None) -> dict[str, Any]:
    """What staff who cover the petition see: the citizen's contact details and original text from
    the decrypted contacts record `contact` (None once erased); after erasure, the masked text and
    no contact details."""
    citizen = state["citizen"]
    content, location = state["content"], state["location"]
    if "contact_id" in citizen:
        contact = contact or {}
        content = contact.get("content", content)
        if "address" in contact:
            location = {**location, "address": contact["address"]}
        person = {"name": contact.get("name", ""), "phone": contact.get("phone", "")}
    elif "erased_at" in citizen:
        person = {"name": "", "phone": "", "erased_at": citizen["erased_at"]}
    else:  # petitions stored before the contacts records kept the details in their state
        person = {"name": citizen["name"], "phone": citizen["phone"]}
    return {
        **citizen_view(state),
        "content": content,
        "location": location,
        "citizen": person,
        "affected_citizens": state.get("affected_citizens", 1),
        "assignment": state.get("assignment"),
    }
