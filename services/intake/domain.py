"""Intake's domain (受理): validating a submission, masking personal data, and the status a citizen
sees as the petition moves through its lifecycle. Pure functions, no I/O."""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import orjson
from rapidfuzz import fuzz

CHANNELS = ("miniprogram", "hotline", "web", "visit", "other")
SATISFACTION = ("satisfied", "basically_satisfied", "dissatisfied")
MAX_CONTENT = 5000

_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^(0\d{2,3})-?(\d{7,8})$")
_GRID_ID = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
_SUBMISSION_FIELDS = {"channel", "category", "content", "location", "citizen"}
_LOCATION_FIELDS = {"town", "village", "grid_id", "address", "lat", "lon"}
_CITIZEN_FIELDS = {"name", "phone"}


class InvalidInput(ValueError):
    """Field-level problems with a request; every problem found is listed, not just the first."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


class ActionRefused(Exception):
    """The petition's state does not allow this action now (HTTP 409)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Submission:
    channel: str
    category: str
    content: str
    location: dict[str, Any]
    citizen_name: str
    citizen_phone: str


@dataclass(frozen=True)
class Follower:
    """A citizen joining someone else's open petition."""

    name: str
    phone: str
    channel: str
    comment: str | None


def validate_follower(body: Mapping[str, Any]) -> Follower:
    """The joining citizen; the body's types and lengths were checked against JoinRequest already."""
    errors: dict[str, str] = {}
    citizen = body.get("citizen") if isinstance(body.get("citizen"), dict) else {}
    name = _text(citizen.get("name"), "citizen.name", errors, min_len=1, max_len=30, allowed_controls="")
    phone = normalize_phone(citizen["phone"]) if isinstance(citizen.get("phone"), str) else None
    if phone is None:
        errors["citizen.phone"] = "must be a mainland mobile (11 digits, 1[3-9]...) or a landline with area code"
    comment = body.get("comment")
    if comment is not None:
        comment = _text(comment, "comment", errors, min_len=0, max_len=1000)
    if errors:
        raise InvalidInput(errors)
    return Follower(name, str(phone), str(body.get("channel")), comment)


def normalize_phone(raw: str) -> str | None:
    """A mainland mobile (13812341234) or landline with area code (0532-88881234), else None."""
    text = re.sub(r"[\s()]", "", raw)
    text = re.sub(r"^(\+86|0086)-?", "", text)
    if _MOBILE.match(text.replace("-", "")):
        return text.replace("-", "")
    m = _LANDLINE.match(text)
    if m:
        return f"{m.group(1)}-{m.group(2)}"
    return None


def _has_controls(text: str, allowed: str = "\n\t\r") -> bool:
    return any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in text)


def _text(
    value: Any, name: str, errors: dict[str, str], *, min_len: int, max_len: int, allowed_controls: str = "\n\t\r"
) -> str:
    if not isinstance(value, str):
        errors[name] = "must be a string"
        return ""
    stripped = value.strip()
    if _has_controls(stripped, allowed_controls):
        errors[name] = "must not contain control characters"
    elif len(stripped) < min_len:
        errors[name] = "is required" if min_len == 1 and not stripped else f"must be at least {min_len} characters"
    elif len(stripped) > max_len:
        errors[name] = f"must be at most {max_len} characters (got {len(stripped)})"
    return stripped


def _unknown(obj: Mapping[str, Any], allowed: set[str], prefix: str, errors: dict[str, str]) -> None:
    for key in obj:
        if key not in allowed:
            errors[f"{prefix}{key}"] = "unknown field"


def validate_submission(body: Mapping[str, Any], categories: Collection[str]) -> Submission:
    errors: dict[str, str] = {}
    _unknown(body, _SUBMISSION_FIELDS, "", errors)
    channel = body.get("channel")
    if channel not in CHANNELS:
        errors["channel"] = f"must be one of {', '.join(CHANNELS)}"
    category = body.get("category")
    if not isinstance(category, str) or category not in categories:
        errors["category"] = "unknown category; see config/categories.yaml for the codes"
    content = _text(body.get("content"), "content", errors, min_len=1, max_len=MAX_CONTENT)

    location: dict[str, Any] = {}
    raw_loc = body.get("location")
    if not isinstance(raw_loc, dict):
        errors["location"] = "must be an object with town and village"
    else:
        _unknown(raw_loc, _LOCATION_FIELDS, "location.", errors)
        for key in ("town", "village"):
            # may be empty: the citizen did not know it
            location[key] = _text(
                raw_loc.get(key, ""), f"location.{key}", errors, min_len=0, max_len=50, allowed_controls=""
            )
        if "town" not in raw_loc:
            errors["location.town"] = "is required (may be empty if unknown)"
        if raw_loc.get("grid_id") is not None:
            grid_id = raw_loc["grid_id"]
            if not isinstance(grid_id, str) or not _GRID_ID.match(grid_id):
                errors["location.grid_id"] = "must be a grid id such as T01V01G001"
            else:
                location["grid_id"] = grid_id
        if raw_loc.get("address") is not None:
            location["address"] = _text(raw_loc["address"], "location.address", errors, min_len=0, max_len=200)
        lat, lon = raw_loc.get("lat"), raw_loc.get("lon")
        if (lat is None) != (lon is None):
            errors["location.lat" if lat is None else "location.lon"] = "lat and lon must be given together"
        elif lat is not None:
            for key, value, bound in (("lat", lat, 90), ("lon", lon, 180)):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    errors[f"location.{key}"] = "must be a number"
                elif not -bound <= value <= bound:
                    errors[f"location.{key}"] = f"must be between -{bound} and {bound}"
                else:
                    location[key] = float(value)

    name, phone = "", ""
    raw_cit = body.get("citizen")
    if not isinstance(raw_cit, dict):
        errors["citizen"] = "must be an object with name and phone"
    else:
        _unknown(raw_cit, _CITIZEN_FIELDS, "citizen.", errors)
        name = _text(raw_cit.get("name"), "citizen.name", errors, min_len=1, max_len=30, allowed_controls="")
        raw_phone = raw_cit.get("phone")
        if not isinstance(raw_phone, str):
            errors["citizen.phone"] = "must be a string"
        else:
            phone = normalize_phone(raw_phone) or ""
            if not phone:
                errors["citizen.phone"] = (
                    "must be a mainland mobile (11 digits, 1[3-9]...) or a landline with area code"
                )
    if errors:
        raise InvalidInput(errors)
    return Submission(str(channel), str(category), content, location, name, phone)


def mask_name(name: str) -> str:
    """刘洋 -> 刘*, 欧阳娜娜 -> 欧***: only the family-name character stays, and only if it is a letter.

    A name may start with anything a citizen types ("1号楼住户", an emoji, a right-to-left mark); the
    contract's masked name shows no digit, space or '*' (common.json#/$defs/name_masked), and a
    character that is not a letter is no family name worth showing: it is masked too.
    """
    first = name[:1] if name[:1].isalpha() else "*"
    return first + "*" * max(1, len(name) - 1)


def mask_phone(phone: str) -> str:
    """13812341234 -> 138****1234; 0532-88881234 -> 0532-****1234."""
    if "-" in phone:
        area, number = phone.split("-", 1)
        return f"{area}-****{number[-4:]}"
    return f"{phone[:3]}****{phone[-4:]}"


def format_petition_id(prefix: str, day: date, seq: int) -> str:
    """JZ20240717000123: a prefix, the day of acceptance (Beijing time) and the day's number."""
    if not 1 <= seq <= 999_999:
        raise ValueError(f"sequence {seq} out of range for one day")
    return f"{prefix}{day:%Y%m%d}{seq:06d}"


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine); plenty for "near me" within a county."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(a))


# "near me": positions are kept and compared only as the cell of a 0.001° grid they fall in (~111 m
# north-south, ~90 m east-west at the county's latitude), distances told in 100 m bands
CELL_DEGREES = 0.001
DISTANCE_BAND_M = 100


def coarse_point(lat: float, lon: float) -> tuple[float, float]:
    """The centre of the grid cell the point falls in."""
    return (
        round((math.floor(lat / CELL_DEGREES) + 0.5) * CELL_DEGREES, 4),
        round((math.floor(lon / CELL_DEGREES) + 0.5) * CELL_DEGREES, 4),
    )


def distance_band(distance_m: float) -> int:
    """The distance rounded up to its band: 100 means "within 100 m", 200 "100 to 200 m"."""
    return max(1, math.ceil(distance_m / DISTANCE_BAND_M)) * DISTANCE_BAND_M


def body_fingerprint(body: Mapping[str, Any]) -> str:
    """What an Idempotency-Key is bound to: a retry must send the same body."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


# ---- duplicates (重复件)

DUPLICATE_WINDOW_S = 24 * 3600
DUPLICATE_SIMILARITY = 90.0


def _normalized(content: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", content) if ch.isalnum())


def find_duplicate(content: str, at: datetime, recent: list[dict[str, Any]]) -> str | None:
    """The first earlier petition (same phone and category) within 24 h whose text is near-identical."""
    norm = _normalized(content)
    for entry in sorted(recent, key=lambda e: e["at"]):
        age = (at - entry["at"]).total_seconds()
        if 0 <= age <= DUPLICATE_WINDOW_S and fuzz.ratio(norm, entry["norm"]) >= DUPLICATE_SIMILARITY:
            return str(entry.get("duplicate_of") or entry["petition_id"])
    return None


def remember_for_duplicates(
    recent: list[dict[str, Any]], petition_id: str, content: str, at: datetime, duplicate_of: str | None
) -> list[dict[str, Any]]:
    kept = [e for e in recent if (at - e["at"]).total_seconds() <= DUPLICATE_WINDOW_S]
    kept.append({"petition_id": petition_id, "norm": _normalized(content), "at": at, "duplicate_of": duplicate_of})
    return kept[-20:]


# ---- the status a citizen sees

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


def already_seen(state: Mapping[str, Any], event_id: str) -> bool:
    return event_id in state.get("seen", ())


def _remember(state: dict[str, Any], event_id: str) -> None:
    state["seen"] = [*state.get("seen", []), event_id][-_SEEN_KEEP:]


def apply_lifecycle(
    state: Mapping[str, Any], event_type: str, data: Mapping[str, Any], event_id: str, event_time: str
) -> dict[str, Any] | None:
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


def check_feedback(state: Mapping[str, Any]) -> None:
    """Feedback once per reply, and only after a reply."""
    if state["status"] != REPLIED:
        raise ActionRefused("not_replied", f"feedback is possible after a reply; the petition is {state['status']}")
    if int(state.get("feedback_round", 0)) >= int(state.get("reply_round", 0)):
        raise ActionRefused("feedback_given", "feedback for this reply has already been given")


def check_withdraw(state: Mapping[str, Any]) -> None:
    """A citizen may withdraw until the handler has replied."""
    if state["status"] in TERMINAL or int(state.get("reply_round", 0)) > 0:
        raise ActionRefused("too_late", f"a petition that is {state['status']} can no longer be withdrawn")
