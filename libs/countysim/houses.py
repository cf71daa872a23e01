"""The county's houses (门牌): ~210,000 points, each inside its grid, for the grid map's house layer.

A house is a numbered building plot, not a household: the county counts ~130,000 households in
~210,000 houses (empty houses, outbuildings, shops). Each grid gets houses in proportion to its
households, the county total drawn within HOUSES_TARGET, placed uniformly inside the grid's polygon.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely

from countysim.model import County
from countysim.sampling import apportion, sub_rng

HOUSES_TARGET = (208_000, 212_000)
DIGITS = 6  # about 0.1 m


@dataclass(frozen=True)
class Houses:
    lon: np.ndarray  # float64
    lat: np.ndarray
    grid_ids: tuple[str, ...]  # grid_ids[grid[i]] is the grid of house i
    grid: np.ndarray  # int32 index into grid_ids

    def __len__(self) -> int:
        return len(self.lon)

    def write_csv(self, path: Path) -> Path:
        """`lon,lat,grid_id` per line, gzip-compressed (the web service's WEB_HOUSES_FILE format)."""
        with gzip.open(path, "wt", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(("lon", "lat", "grid_id"))
            for x, y, g in zip(self.lon.tolist(), self.lat.tolist(), self.grid.tolist(), strict=True):
                writer.writerow((x, y, self.grid_ids[g]))
        return path


def generate_houses(county: County, seed: int = 1) -> Houses:
    """The houses of `county`; the same county and seed always give the same houses."""
    rng = sub_rng(seed, "houses")
    total = rng.randint(*HOUSES_TARGET)
    counts = apportion(total, [g.households for g in county.grids], minimum=1)
    points = np.random.default_rng(rng.getrandbits(64))
    lons, lats, owners = [], [], []
    for i, (grid, n) in enumerate(zip(county.grids, counts, strict=True)):
        west, south, east, north = grid.polygon.bounds
        shapely.prepare(grid.polygon)
        found_x: list[np.ndarray] = []
        got = 0
        while got < n:
            x = points.uniform(west, east, 2 * n)
            y = points.uniform(south, north, 2 * n)
            inside = shapely.contains_xy(grid.polygon, x, y)
            found_x.append(np.column_stack((x[inside], y[inside])))
            got += int(inside.sum())
        xy = np.concatenate(found_x)[:n]
        lons.append(xy[:, 0])
        lats.append(xy[:, 1])
        owners.append(np.full(n, i, dtype=np.int32))
    return Houses(
        lon=np.round(np.concatenate(lons), DIGITS),
        lat=np.round(np.concatenate(lats), DIGITS),
        grid_ids=tuple(g.grid_id for g in county.grids),
        grid=np.concatenate(owners),
    )
