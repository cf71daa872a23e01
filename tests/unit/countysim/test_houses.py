"""The generated houses: ~210,000, each inside its own grid, in proportion to households, repeatable."""

from __future__ import annotations

import numpy as np
import shapely

from countysim import generate_houses
from countysim.houses import HOUSES_TARGET


def test_houses_lie_in_their_grids_in_proportion_to_households(county) -> None:  # type: ignore[no-untyped-def]
    houses = generate_houses(county, seed=7)
    assert HOUSES_TARGET[0] <= len(houses) <= HOUSES_TARGET[1]
    per_grid = np.bincount(houses.grid, minlength=len(county.grids))
    households = np.array([g.households for g in county.grids])
    assert per_grid.min() >= 1
    assert np.corrcoef(per_grid, households)[0, 1] > 0.99
    for i in range(0, len(county.grids), 97):
        mine = houses.grid == i
        # within 1e-6° (the rounding) of the grid: the polygon's buffer covers every one of them
        area = county.grids[i].polygon.buffer(2e-6)
        assert shapely.contains_xy(area, houses.lon[mine], houses.lat[mine]).all()


def test_the_same_county_and_seed_give_the_same_houses(county, tmp_path) -> None:  # type: ignore[no-untyped-def]
    a, b = generate_houses(county, seed=3), generate_houses(county, seed=3)
    assert np.array_equal(a.lon, b.lon) and np.array_equal(a.grid, b.grid)
    assert not np.array_equal(a.lon, generate_houses(county, seed=4).lon)
    path = a.write_csv(tmp_path / "houses.csv.gz")
    assert path.stat().st_size > 100_000
