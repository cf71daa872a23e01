"""A small hand-made county for the routing tests.

Coordinates are in units of 1/128 degree from (120.0 E, 36.25 N): binary fractions, so points placed
exactly on a shared edge or vertex (even a diagonal one) are exactly on it in floating point too.

    y=4 ┌───────────────────┐
        │ T03V01 幸福村 (三里镇) │
    y=3 ├───────────────────┼──────────────┬──────────────┬───────────────────┐
        │ T01V03 幸福社区      │ T02V01 东山村 │ T02V02 西山村 │ T02V03 河口村       │
    y=2 ├─────────┬─────────┼───┐ (U)   ┌──┴──┐  (U)     │   ┌───────────┐   │
        │ V01G003 │ V01G004 │V02│   ┌───┤ res │          │   │ T02V04    │   │
    y=1 ├─────────┼─────────┤ ╱ │   └───┤ervoir         │   │ 河心村     │   │
        │ V01G001 │ V01G002 │╱  │       └─────┘          │   └───────────┘   │
    y=0 └─────────┴─────────┴───┴────────────────────────┴───────────────────┘
        x=0       1         2   3      4  4.5  5         6   7           8   9

T01 王台镇: V01 大王庄新村 (four squares), V02 小王庄新村 (two triangles split by the diagonal
(2,0)–(3,2)), V03 幸福社区. T02 柳河镇: 东山村 and 西山村 are U-shapes around a reservoir [4,5]×[1,2]
that belongs to no grid (a gap of the county, not of any one village); 河心村 is an enclave filling the
hole of 河口村's grid.
"""

from __future__ import annotations

from typing import Any

UNIT = 1 / 128
LON0, LAT0 = 120.0, 36.25

Point = tuple[float, float]


def lonlat(x: float, y: float) -> list[float]:
    return [LON0 + x * UNIT, LAT0 + y * UNIT]


def latlon(x: float, y: float) -> tuple[float, float]:
    """The (lat, lon) of a map point, as petitions carry it."""
    lon, lat = lonlat(x, y)
    return lat, lon


def ring(*points: Point) -> list[list[float]]:
    return [lonlat(x, y) for x, y in (*points, points[0])]


def box(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return ring((x0, y0), (x1, y0), (x1, y1), (x0, y1))


_TOWNS = {"T01": "王台镇", "T02": "柳河镇", "T03": "三里镇", "T04": "北岭镇"}
_VILLAGES = {
    "T01V01": ("大王庄新村", ["大王庄"]),
    "T01V02": ("小王庄新村", []),
    "T01V03": ("幸福社区", []),
    "T02V01": ("东山村", []),
    "T02V02": ("西山村", []),
    "T02V03": ("河口村", []),
    "T02V04": ("河心村", []),
    "T03V01": ("幸福村", []),
    "T04V01": ("北岭村", []),
}


def feature(grid_id: str, *rings: list[list[float]]) -> dict[str, Any]:
    """A valid grid Feature; staff ids derive from the grid id so each grid has its own leader."""
    village_id, town_id = grid_id[:6], grid_id[:3]
    village, aliases = _VILLAGES[village_id]
    number = int(grid_id[7:])
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": list(rings)},
        "properties": {
            "grid_id": grid_id,
            "grid_name": f"{village}第{number}网格",
            "village_id": village_id,
            "village": village,
            "town_id": town_id,
            "town": _TOWNS[town_id],
            "households": 40 + number,
            "population": 120 + number,
            "leader": {"staff_id": f"L{grid_id}", "name": "王*"},
            "cadre": {"staff_id": f"C{village_id}", "name": "李*"},
            "helpers": [{"staff_id": f"H{grid_id}", "name": "张*"}],
            "village_aliases": aliases,
        },
    }


def _county() -> dict[str, Any]:
    features = [
        feature("T01V01G001", box(0, 0, 1, 1)),
        feature("T01V01G002", box(1, 0, 2, 1)),
        feature("T01V01G003", box(0, 1, 1, 2)),
        feature("T01V01G004", box(1, 1, 2, 2)),
        feature("T01V02G001", ring((2, 0), (3, 0), (3, 2))),
        feature("T01V02G002", ring((2, 0), (3, 2), (2, 2))),
        feature("T01V03G001", box(0, 2, 3, 3)),
        feature("T02V01G001", ring((3, 0), (4.5, 0), (4.5, 1), (4, 1), (4, 2), (4.5, 2), (4.5, 3), (3, 3))),
        feature("T02V02G001", ring((4.5, 0), (6, 0), (6, 3), (4.5, 3), (4.5, 2), (5, 2), (5, 1), (4.5, 1))),
        feature("T02V03G001", box(6, 0, 9, 3), box(7, 1, 8, 2)),
        feature("T02V04G001", box(7, 1, 8, 2)),
        feature("T03V01G001", box(0, 3, 3, 4)),
    ]
    return {"type": "FeatureCollection", "features": features}


COUNTY = _county()
