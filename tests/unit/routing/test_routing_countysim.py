"""Routing over the full synthetic county (countysim): speed of point location, and agreement with the
ground truth of generated petitions."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import pytest
import shapely

from countysim import generate_petitions
from services.routing.domain import GridRegistry, route

SEED = 20240101


@pytest.fixture(scope="module")
def county_registry(county) -> GridRegistry:
    return GridRegistry.from_geojson(county.to_geojson())


def test_the_generated_county_imports(county_registry: GridRegistry) -> None:
    summary = county_registry.to_summary()
    assert (summary["towns"], summary["villages"], summary["grids"]) == (12, 119, 2635)


def test_locates_2000_random_points_in_under_a_second(county_registry: GridRegistry) -> None:
    rng = random.Random(7)
    points: list[tuple[float, float, str]] = []
    while len(points) < 2000:
        grid = rng.choice(county_registry.grids)
        minx, miny, maxx, maxy = grid.polygon.bounds
        lon, lat = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if shapely.contains_xy(grid.polygon, lon, lat):  # strictly inside: exactly one grid holds it
            points.append((lat, lon, grid.grid_id))

    started = time.perf_counter()
    located = [county_registry.locate(lat, lon) for lat, lon, _ in points]
    elapsed = time.perf_counter() - started

    assert [g.grid_id if g else None for g in located] == [gid for _, _, gid in points]
    assert elapsed < 1.0, f"2,000 lookups took {elapsed:.3f} s"


def test_routes_generated_petitions_as_their_truth(county, county_registry: GridRegistry, departments) -> None:
    petitions = generate_petitions(county, n=1000, seed=3, start=datetime(2024, 7, 1, tzinfo=UTC), days=7)
    wrong = []
    for petition in petitions:
        decision = route(petition.body, county_registry, departments)
        truth = petition.truth
        if truth.route in ("grid_id", "point"):
            ok = (decision.route, decision.grid_id) == (truth.route, truth.grid_id)
        elif truth.route == "village":
            # the address need not name a grid: the village is what the body reveals
            ok = decision.route == "village" and decision.village_id == truth.grid_id[:6]
        else:
            ok = decision.route == "triage"
        if not ok:
            wrong.append((petition.body["location"], truth, decision.reason))
    assert wrong == []
