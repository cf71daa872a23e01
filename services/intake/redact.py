"""Masking identifiers a citizen writes into free text, before the text leaves intake. Pure, no I/O.

A petition's content, a street address, a follower's comment may hold a phone number, an ID-card
number (身份证号), a bank card or an e-mail address; the citizen's own name and address may be in it
too. Everything that leaves intake (events, "near me", the statistics' samples) and everything
intake keeps outside the encrypted contacts carries the masked text; staff with the right to
contact details read the original from the contacts document (contacts.py).

Patterns are deliberately greedy on digits: a run of digits that could be a phone number is
masked even when it is not one (an order number), because a missed phone number is worse than a
masked order number. A run is never masked inside a longer run of digits, whose meaning is unknown.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "*"

# 18-digit resident ID (GB 11643): 6 area, 8 birth date, 3 sequence, 1 check (0-9 or X); 15-digit
# first-generation IDs have no check digit
_ID18 = re.compile(r"(?<![0-9A-Za-z])(\d{6})(\d{11})([\dXx])(?![0-9A-Za-z])")
_ID15 = re.compile(r"(?<!\d)(\d{6})(\d{6})(\d{3})(?!\d)")
# mainland mobiles, optionally with +86 and separators (138 1234 1234, 138-1234-1234)
_MOBILE = re.compile(r"(?<!\d)((?:\+?86[\s-]?)?1[3-9]\d)([\s-]?)(\d{4})([\s-]?)(\d{4})(?!\d)")
# landlines with an area code: 0532-88881234, (0532)88881234
_LANDLINE = re.compile(r"(?<!\d)(\(?0\d{2,3}\)?[\s-]?)(\d{3,4})(\d{4})(?!\d)")
# bank cards: 16-19 digits passing the Luhn check
_CARD = re.compile(r"(?<!\d)\d{16,19}(?!\d)")
_EMAIL = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*(@[A-Za-z0-9.-]+\.[A-Za-z]{2,})")
# house numbers in an address: 12号, 3栋, 502室, 2单元, 4弄, 7幢, 3楼 (not 第3网格 / 3号网格: routing reads those)
_HOUSE_NUMBER = re.compile(r"\d+(?=(?:号(?!网格)|栋|幢|座|单元|室|楼|弄|户|层))")

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_check_digit(first17: str) -> str:
    """The check character of an 18-digit ID number (ISO 7064 MOD 11-2)."""
    return _ID_CHECK[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def is_id_number(text: str) -> bool:
    return len(text) == 18 and text[:17].isdigit() and id_check_digit(text[:17]) == text[17].upper()


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _mask_id18(m: re.Match[str]) -> str:
    if not is_id_number(m.group(0)):
        return m.group(0)  # 18 digits that fail the check: left for the card and phone patterns
    return m.group(1)[:3] + MASK * 11 + m.group(0)[-4:]


def _mask_card(m: re.Match[str]) -> str:
    digits = m.group(0)
    return digits[:4] + MASK * (len(digits) - 8) + digits[-4:] if _luhn(digits) else digits


def mask_identifiers(text: str, known: Iterable[str] = ()) -> str:
    """`text` with ID-card numbers, bank cards, phone numbers and e-mail addresses masked, and every
    occurrence of a `known` value (the citizen's own name and address) replaced by its mask."""
    for value in sorted({v for v in known if v and len(v) >= 2}, key=len, reverse=True):
        text = text.replace(value, mask_known(value))
    text = _ID18.sub(_mask_id18, text)
    text = _CARD.sub(_mask_card, text)
    text = _ID15.sub(lambda m: m.group(1)[:3] + MASK * 12, text)
    text = _MOBILE.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK * 4}{m.group(4)}{m.group(5)}", text)
    text = _LANDLINE.sub(lambda m: f"{m.group(1)}{MASK * len(m.group(2))}{m.group(3)}", text)
    return _EMAIL.sub(lambda m: f"{m.group(1)}***{m.group(2)}", text)


def mask_known(value: str) -> str:
    """A known personal value written in free text: its first character and a star per other one."""
    return value[:1] + MASK * (len(value) - 1)


def mask_address(address: str) -> str:
    """A street address without its house, building and room numbers (幸福路12号3栋502室 ->
    幸福路*号*栋*室), and without identifiers written in it; the street and any grid it names
    (第3网格) stay, for routing."""
    return _HOUSE_NUMBER.sub(MASK, mask_identifiers(address))
