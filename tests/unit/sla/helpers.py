from __future__ import annotations

from datetime import datetime
from pathlib import Path

from petition_kernel.times import BEIJING, UTC

REPO = Path(__file__).resolve().parents[3]
CALENDAR_DIR = REPO / "config" / "calendar"
POLICY_FILE = REPO / "config" / "sla-policy.yaml"
CATEGORIES_FILE = REPO / "config" / "categories.yaml"


def cst(text: str) -> datetime:
    """'2025-03-10 09:00' read as Beijing time."""
    return datetime.fromisoformat(text).replace(tzinfo=BEIJING)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)
