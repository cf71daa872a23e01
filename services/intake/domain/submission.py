"""What a citizen sends: a petition (validated field by field, every problem listed), a request to
join someone else's petition, and the body an Idempotency-Key is bound to."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

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


def body_fingerprint(body: Mapping[str, Any]) -> str:
    """What an Idempotency-Key is bound to: a retry must send the same body."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
