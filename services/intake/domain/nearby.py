""" "Near me": open petitions of a category around a point, before a citizen files the same problem again.

Positions are kept and compared only as the cell of a 0.001° grid they fall in (~111 m north-south,
~90 m east-west at the county's latitude), and distances are told in 100 m bands, so no number of
queries from well-chosen points locates a petition closer than its cell.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

CELL_DEGREES = 0.001
DISTANCE_BAND_M = 100


def distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres (haversine); plenty for "near me" within a county."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_000 * math.asin(math.sqrt(a))


def coarse_point(lat: float, lon: float) -> tuple[float, float]:
    """The centre of the grid cell the point falls in."""
    return (
        round((math.floor(lat / CELL_DEGREES) + 0.5) * CELL_DEGREES, 4),
        round((math.floor(lon / CELL_DEGREES) + 0.5) * CELL_DEGREES, 4),
    )


def distance_band(distance_m: float) -> int:
    """The distance rounded up to its band: 100 means "within 100 m", 200 "100 to 200 m"."""
    return max(1, math.ceil(distance_m / DISTANCE_BAND_M)) * DISTANCE_BAND_M


def open_point(petition_id: str, category: str, lat: float, lon: float) -> dict[str, Any]:
    """The "near me" index entry of an open petition: its category and its cell, never its point."""
    cell_lat, cell_lon = coarse_point(lat, lon)
    return {"_id": petition_id, "category": category, "cell_lat": cell_lat, "cell_lon": cell_lon}


def within(
    points: Iterable[Mapping[str, Any]], lat: float, lon: float, category: str, radius_m: float
) -> list[tuple[float, str]]:
    """(distance, petition id) of the index entries of this category within the radius, nearest first."""
    found = []
    for doc in points:
        if doc["category"] != category:
            continue
        # entries written before cells were kept hold the exact point: coarsen it here too
        cell = coarse_point(doc.get("cell_lat", doc.get("lat")), doc.get("cell_lon", doc.get("lon")))
        distance = distance_m(lat, lon, *cell)
        if distance <= radius_m:
            found.append((distance, doc["_id"]))
    return sorted(found)
