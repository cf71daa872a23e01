"""Petition ids as the contract spells them, and the comma-separated lists that batch reads take."""

from __future__ import annotations

import re
from collections.abc import Sequence

# two letters, the date and a daily sequence (contract/schemas/common.json)
PETITION_ID = re.compile(r"[A-Z]{2}[0-9]{14}")


def parse_ids(raw: str | None, max_ids: int) -> tuple[list[str], str | None]:
    """The distinct ids of an `ids` parameter in their order, or the field error that refuses it."""
    if not raw:
        return [], "required: petition ids separated by commas"
    ids = list(dict.fromkeys(raw.split(",")))
    if len(raw.split(",")) > max_ids:
        return [], f"at most {max_ids} petition ids"
    if not all(PETITION_ID.fullmatch(i) for i in ids):
        return [], "petition ids (two capital letters and 14 digits) separated by commas"
    return ids, None


def ids_param(values: Sequence[str], max_ids: int) -> tuple[list[str], str | None]:
    """`parse_ids` of a query's `ids` as given (every occurrence): it must be given once."""
    if len(values) > 1:
        return [], "give ids once, separated by commas"
    return parse_ids(values[0] if values else None, max_ids)
