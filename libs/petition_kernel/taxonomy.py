"""The category taxonomy (config/categories.yaml): codes, names, and their departments."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml


@dataclass(frozen=True)
class Category:
    code: str
    name: str
    department: str
    share: float


def load_categories(path: Path) -> dict[str, Category]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = {}
    for code, spec in (doc or {}).get("categories", {}).items():
        out[code] = Category(code, spec["name"], spec["department"], float(spec.get("share", 0)))
    if not out:
        raise ValueError(f"{path}: no categories defined")
    return out
