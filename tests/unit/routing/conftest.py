"""Fixtures over the hand-made county in `county.py`."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from services.routing.bootstrap import load_departments
from services.routing.domain import GridRegistry

from .routing_county import COUNTY

CATEGORIES = Path(__file__).resolve().parents[3] / "config" / "categories.yaml"


@pytest.fixture
def county_fc() -> dict[str, Any]:
    """A fresh copy, so a test may mutate it."""
    return copy.deepcopy(COUNTY)


@pytest.fixture(scope="session")
def registry() -> GridRegistry:
    return GridRegistry.from_geojson(copy.deepcopy(COUNTY))


@pytest.fixture(scope="session")
def departments() -> dict[str, str]:
    return load_departments(CATEGORIES)
