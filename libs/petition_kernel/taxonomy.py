"""The category taxonomy (config/categories.yaml), parsed here and nowhere else.

Each code has a name (shown to people), the department it is routed to, and a share (the fraction
of a year's petitions the generator draws for it; shares sum to 1, not checked here because an
operator may add a code with share 0). Intake accepts only these codes, routing reads the
departments, sla and stats check their own configuration against the codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DEFAULT_FILE", "Category", "TaxonomyError", "load_categories"]

DEFAULT_FILE = Path(__file__).resolve().parents[2] / "config" / "categories.yaml"


class TaxonomyError(ValueError):
    """The categories file is malformed; the message names the file and the key, so start-up fails readably."""

    def __init__(self, source: str, key: str, problem: str) -> None:
        self.key = key
        super().__init__(f"{source}: {key}: {problem}")


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    department: str
    share: float


def load_categories(path: str | Path = DEFAULT_FILE) -> dict[str, Category]:
    """Category code → Category, in the file's order (reads a file)."""
    source = str(path)
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise TaxonomyError(source, "(file)", f"not valid YAML: {exc}") from exc
    entries = doc.get("categories") if isinstance(doc, Mapping) else None
    if not isinstance(entries, Mapping) or not entries:
        raise TaxonomyError(source, "categories", "expected a non-empty `categories:` mapping")
    return {str(code): _category(source, str(code), spec) for code, spec in entries.items()}


def _category(source: str, code: str, spec: Any) -> Category:
    where = f"categories.{code}"
    if not isinstance(spec, Mapping):
        raise TaxonomyError(source, where, "expected a mapping with name and department")
    for text in ("name", "department"):
        if not isinstance(spec.get(text), str) or not spec[text]:
            raise TaxonomyError(source, f"{where}.{text}", "missing or not a non-empty string")
    share = spec.get("share", 0)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise TaxonomyError(source, f"{where}.share", "expected a number between 0 and 1")
    return Category(code, spec["name"], spec["department"], float(share))
