from __future__ import annotations

import pytest

from petition_kernel.calendar import WorkCalendar
from petition_kernel.sla.policy import SlaPolicy, load_policy
from petition_kernel.taxonomy import load_categories

from .helpers import CALENDAR_DIR, CATEGORIES_FILE, POLICY_FILE


@pytest.fixture(scope="session")
def calendar() -> WorkCalendar:
    """The calendar the service uses: the library plus config/calendar/."""
    return WorkCalendar.load(CALENDAR_DIR)


@pytest.fixture(scope="session")
def policy() -> SlaPolicy:
    return load_policy(POLICY_FILE, frozenset(load_categories(CATEGORIES_FILE)))
