"""The platform the fault scenarios break: all four services on one test's fleet."""

from __future__ import annotations

from pathlib import Path

import pytest

from countysim import County
from petition_devtools.processes import ServiceFleet
from tests.faults.support import start_platform


@pytest.fixture
def platform(fleet: ServiceFleet, county: County, tmp_path: Path) -> ServiceFleet:
    """The four services with the county's staff tokens and grids imported, on `fleet` (a module may
    override `fleet`, as test_cluster.py does for a three-broker cluster). A restarted instance
    needs `platform.extra_env`."""
    fleet.extra_env = start_platform(fleet, county, tmp_path)  # type: ignore[attr-defined]
    return fleet
