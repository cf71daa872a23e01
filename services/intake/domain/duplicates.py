"""Duplicates (重复件): a citizen's near-identical petitions in one category within 24 h link to the first.

The duplicate index keeps, per citizen and category (a blind key, codes.py), the last petitions'
normalised masked texts; these functions decide on that list, the service stores it.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Any

from rapidfuzz import fuzz

DUPLICATE_WINDOW_S = 24 * 3600
DUPLICATE_SIMILARITY = 90.0
_KEEP = 20


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
    """The index after this petition: entries older than the window go, the newest 20 stay."""
    kept = [e for e in recent if (at - e["at"]).total_seconds() <= DUPLICATE_WINDOW_S]
    kept.append({"petition_id": petition_id, "norm": _normalized(content), "at": at, "duplicate_of": duplicate_of})
    return kept[-_KEEP:]


def entry_of(recent: list[dict[str, Any]], petition_id: str) -> dict[str, Any] | None:
    """The petition's own entry (a retry of the same petition finds it)."""
    return next((e for e in recent if e["petition_id"] == petition_id), None)


def without_petition(recent: list[dict[str, Any]], petition_id: str) -> list[dict[str, Any]]:
    """The index without a petition that never committed: its entry, and those linked to it."""
    return [e for e in recent if petition_id not in (e["petition_id"], e.get("duplicate_of"))]


def without_entry(recent: list[dict[str, Any]], petition_id: str) -> list[dict[str, Any]]:
    """The index without the petition's own entry (its commit failed: the entry is taken back)."""
    return [e for e in recent if e["petition_id"] != petition_id]
