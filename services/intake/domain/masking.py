"""What intake keeps and publishes of a citizen instead of their details: masked names, phones, texts
and addresses; the details themselves go to the encrypted contacts record (contacts.py)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.intake import redact
from services.intake.domain.submission import Submission


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


def masked_content(sub: Submission) -> str:
    """The petition's text with the identifiers in it masked, the citizen's own name and address too."""
    known = [sub.citizen_name, sub.location.get("address") or ""]
    return redact.mask_identifiers(sub.content, known)


def masked_location(location: dict[str, Any]) -> dict[str, Any]:
    if not location.get("address"):
        return location
    return {**location, "address": redact.mask_address(location["address"])}


def masked_comment(comment: str | None, known: Iterable[str] = ()) -> str | None:
    """A comment (feedback, joining) as kept: identifiers masked; None and "" as they are."""
    return redact.mask_identifiers(comment, known) if comment else comment


def contact_fields(sub: Submission) -> dict[str, str]:
    """What the contacts record keeps: the details, and the text as written when masking changed it."""
    content = sub.content if masked_content(sub) != sub.content else ""
    return {
        "name": sub.citizen_name,
        "phone": sub.citizen_phone,
        "address": sub.location.get("address") or "",
        "content": content,
    }
