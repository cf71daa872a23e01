"""Planar layout of the county: nested rectangles, and grids as jittered cells that tile a village.

Every cut line is computed once, rounded once (7 decimals, about 1 cm) and then shared by the cells on
both sides of it, so neighbours have bit-identical edges and the tiling is exact, not approximately so.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import shapely
from shapely.geometry import Point, Polygon

from countysim.sampling import apportion

DIGITS = 7
# Longitude degrees are shorter than latitude degrees at 36° N; used only to keep cells roughly square.
LON_SCALE = math.cos(math.radians(36.25))


def _r(v: float) -> float:
    return round(v, DIGITS)


@dataclass(frozen=True)
class Rect:
    west: float
    south: float
    east: float
    north: float

    @property
    def aspect(self) -> float:
        """Width over height in metres (approximately)."""
        return (self.east - self.west) * LON_SCALE / (self.north - self.south)

    def polygon(self) -> Polygon:
        # counter-clockwise, starting at the south-west corner
        w, s, e, n = self.west, self.south, self.east, self.north
        return Polygon([(w, s), (e, s), (e, n), (w, n)])


def _cuts(start: float, end: float, weights: Sequence[float]) -> list[float]:
    """Boundaries from `start` to `end` splitting it proportionally; the ends are kept exactly."""
    total = float(sum(weights))
    cuts = [start]
    acc = 0.0
    for w in weights[:-1]:
        acc += w
        cuts.append(_r(start + (end - start) * acc / total))
    cuts.append(end)
    return cuts


def split_columns(rect: Rect, weights: Sequence[float]) -> list[Rect]:
    """Rectangles side by side, west to east, widths proportional to `weights`."""
    xs = _cuts(rect.west, rect.east, weights)
    return [Rect(xs[i], rect.south, xs[i + 1], rect.north) for i in range(len(weights))]


def split_rows(rect: Rect, weights: Sequence[float]) -> list[Rect]:
    """Rectangles stacked north to south, heights proportional to `weights`."""
    ys = _cuts(rect.north, rect.south, weights)
    return [Rect(rect.west, ys[i + 1], rect.east, ys[i]) for i in range(len(weights))]


def layout_bands(rect: Rect, weights: Sequence[float], band_sizes: Sequence[int]) -> list[Rect]:
    """Rows of rectangles (north to south, each west to east) with areas proportional to `weights`."""
    bands: list[list[float]] = []
    i = 0
    for size in band_sizes:
        bands.append(list(weights[i : i + size]))
        i += size
    rows = split_rows(rect, [sum(b) for b in bands])
    return [cell for row, band in zip(rows, bands, strict=True) for cell in split_columns(row, band)]


def layout_columns(rect: Rect, weights: Sequence[float]) -> list[Rect]:
    """Columns of stacked rectangles with areas proportional to `weights`, in column-major order.

    The column count follows the rectangle's shape so that the pieces come out roughly square.
    """
    n = len(weights)
    n_cols = min(n, max(1, round(math.sqrt(n * rect.aspect))))
    per_col = apportion(n, [1.0] * n_cols)
    groups: list[list[float]] = []
    i = 0
    for size in per_col:
        groups.append(list(weights[i : i + size]))
        i += size
    cols = split_columns(rect, [sum(g) for g in groups])
    return [cell for col, group in zip(cols, groups, strict=True) for cell in split_rows(col, group)]


def jittered_cells(rect: Rect, n: int, rng: random.Random) -> list[Polygon]:
    """`n` cells tiling `rect`: rows north to south, in each row cells west to east.

    Rows are separated by straight lines; inside a row the cells are separated by shared polylines
    wobbling around evenly spaced cut positions (±27 % of a cell width at most, so they never cross).
    Rings are counter-clockwise.
    """
    n_rows = min(n, max(1, round(math.sqrt(n / rect.aspect))))
    per_row = apportion(n, [1.0] * n_rows)
    cells: list[Polygon] = []
    for row, k in zip(split_rows(rect, per_row), per_row, strict=True):
        lines = [[(row.west, row.south), (row.west, row.north)]]
        width = (row.east - row.west) / k
        height = row.north - row.south
        for j in range(1, k):
            centre = row.west + j * width + rng.uniform(-0.15, 0.15) * width
            inner_ys = sorted(_r(row.south + height * rng.uniform(0.2, 0.8)) for _ in range(rng.randint(1, 2)))
            ys = [row.south, *inner_ys, row.north]
            lines.append([(_r(centre + rng.uniform(-0.12, 0.12) * width), y) for y in ys])
        lines.append([(row.east, row.south), (row.east, row.north)])
        for left, right in pairwise(lines):
            # up the right boundary, back down the left one: counter-clockwise
            cells.append(Polygon([*right, *reversed(left)]))
    return cells


def sample_point_inside(
    polygon: Polygon, rng: random.Random, margin: float = 1e-5, digits: int = 6
) -> tuple[float, float]:
    """A point (lon, lat), rounded to `digits`, at least `margin` degrees inside `polygon`.

    The margin (about 1 m) keeps the answer unambiguous for any point-in-polygon test downstream.
    """
    west, south, east, north = polygon.bounds
    boundary = polygon.exterior
    for _ in range(10_000):
        x = round(rng.uniform(west, east), digits)
        y = round(rng.uniform(south, north), digits)
        if shapely.contains_xy(polygon, x, y) and boundary.distance(Point(x, y)) >= margin:
            return x, y
    raise ValueError("polygon too thin to place a point inside it")
