"""The grid map's geometry: routing's registry simplified for the browser, area outlines, and houses.

Built once per registry version (routing's `GET /v1/grids`, re-checked with its ETag at most once a
minute) and kept in memory: the demo county's 2,635 grids are 2.1 MB as imported, 0.96 MB simplified
(plus 31 KB of outlines).
No I/O here except reading the houses file; `MapCache` fetches through `Backends`.
"""

from __future__ import annotations

import csv
import gzip
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import shapely
from shapely.geometry import mapping, shape

from petition_common.auth import Staff
from petition_kernel.access import Area, may_read
from services.web.backends import Backends

# ~1 m at 36° N: invisible at the zoom levels a county map is read at, and shared edges stay shared
# because both neighbours snap to the same precision grid
SIMPLIFY_DEG = 1e-5
PRECISION_DEG = 1e-5
REFRESH_S = 60.0
COUNTY_ROLES = ("county_dispatcher", "auditor")


@dataclass(frozen=True)
class GridInfo:
    grid_id: str
    name: str
    village_id: str
    village: str
    town_id: str
    town: str
    households: int
    population: int
    leader: dict[str, str]
    cadre: dict[str, str]
    helpers: tuple[dict[str, str], ...]
    centroid: tuple[float, float]  # lon, lat

    @property
    def area(self) -> Area:
        return Area(self.grid_id, self.village_id, self.town_id)


@dataclass
class CountyMap:
    """One registry version, simplified, with what the map asks of it."""

    version: int
    grids: dict[str, GridInfo]
    shapes: dict[str, Any]  # grid_id -> simplified shapely polygon
    village_shapes: dict[str, Any]
    town_shapes: dict[str, Any]
    _cache: dict[tuple[str, str], bytes] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def from_registry(cls, fc: dict[str, Any]) -> CountyMap:
        grids: dict[str, GridInfo] = {}
        polygons = []
        for feature in fc.get("features", []):
            p = feature["properties"]
            polygon = shape(feature["geometry"])
            polygons.append(polygon)
            point = polygon.representative_point()
            grids[p["grid_id"]] = GridInfo(
                p["grid_id"], p["grid_name"], p["village_id"], p["village"], p["town_id"], p["town"],
                int(p.get("households") or 0), int(p.get("population") or 0),
                p.get("leader") or {}, p.get("cadre") or {}, tuple(p.get("helpers") or ()),
                (round(point.x, 6), round(point.y, 6)),
            )  # fmt: skip
        simple = shapely.set_precision(
            shapely.simplify(np.array(polygons), SIMPLIFY_DEG, preserve_topology=True), PRECISION_DEG
        )
        shapes = dict(zip(grids, simple, strict=True))
        by_village: dict[str, list[Any]] = defaultdict(list)
        by_town: dict[str, list[Any]] = defaultdict(list)
        for gid, polygon in zip(grids, polygons, strict=True):
            by_village[grids[gid].village_id].append(polygon)
            by_town[grids[gid].town_id].append(polygon)

        def outline(parts: list[Any]) -> Any:
            # a full union: a registry's neighbouring grids need not share every vertex (no coverage union)
            return shapely.set_precision(shapely.simplify(shapely.union_all(parts), 5e-5), PRECISION_DEG)

        return cls(
            version=int(fc.get("version") or 0),
            grids=grids,
            shapes=shapes,
            village_shapes={v: outline(ps) for v, ps in by_village.items()},
            town_shapes={t: outline(ps) for t, ps in by_town.items()},
        )

    # ---- who sees what

    def principal(self, staff_id: str, role: str, town_id: str | None) -> Staff:
        """The platform's Staff principal for a page session. The session carries role and town; the
        grids of a grid leader and the village of a cadre are the registry's 1+1+N roster."""
        if role == "grid_leader":
            led = frozenset(g.grid_id for g in self.grids.values() if g.leader.get("staff_id") == staff_id)
            return Staff(staff_id, role, town_id=town_id, grid_ids=led)
        if role == "village_cadre":
            village = next((g.village_id for g in self.grids.values() if g.cadre.get("staff_id") == staff_id), None)
            return Staff(staff_id, role, town_id=town_id, village_id=village)
        return Staff(staff_id, role, town_id=town_id)

    def visible(self, staff: Staff) -> list[GridInfo]:
        return [g for g in self.grids.values() if may_read(staff, g.area)]

    @staticmethod
    def scope_key(staff: Staff) -> str:
        if staff.role in COUNTY_ROLES:
            return "county"
        if staff.role == "town_supervisor":
            return f"town:{staff.town_id}"
        if staff.role == "village_cadre":
            return f"village:{staff.village_id}"
        return "grids:" + ",".join(sorted(staff.grid_ids))

    # ---- GeoJSON for the browser

    def grids_geojson(self, staff: Staff) -> bytes:
        return self._cached("grids", staff, lambda: self._grid_features(staff))

    def outlines_geojson(self, staff: Staff) -> bytes:
        return self._cached("outlines", staff, lambda: self._outline_features(staff))

    def _cached(self, kind: str, staff: Staff, build: Any) -> bytes:
        key = (kind, self.scope_key(staff))
        with self._lock:
            found = self._cache.get(key)
        if found is None:
            found = orjson.dumps({"type": "FeatureCollection", "version": self.version, "features": build()})
            with self._lock:
                if len(self._cache) > 512:  # one entry per scope; grid leaders are many
                    self._cache.clear()
                self._cache[key] = found
        return found

    def _grid_features(self, staff: Staff) -> list[dict[str, Any]]:
        return [
            {
                "type": "Feature",
                "id": g.grid_id,
                "geometry": mapping(self.shapes[g.grid_id]),
                "properties": {
                    "grid_id": g.grid_id,
                    "name": g.name,
                    "village_id": g.village_id,
                    "town_id": g.town_id,
                    "population": g.population,
                },
            }
            for g in self.visible(staff)
        ]

    def _outline_features(self, staff: Staff) -> list[dict[str, Any]]:
        grids = self.visible(staff)
        villages = {g.village_id: g for g in grids}
        towns = {g.town_id: g for g in grids}
        out = []
        for vid, g in sorted(villages.items()):
            geometry = mapping(self.village_shapes[vid].boundary)
            out.append({"type": "Feature", "geometry": geometry,
                        "properties": {"level": "village", "id": vid, "name": g.village}})  # fmt: skip
        if staff.role in COUNTY_ROLES or staff.role == "town_supervisor":
            for tid, g in sorted(towns.items()):
                geometry = mapping(self.town_shapes[tid].boundary)
                out.append({"type": "Feature", "geometry": geometry,
                            "properties": {"level": "town", "id": tid, "name": g.town}})  # fmt: skip
        return out

    def bounds(self, staff: Staff) -> list[float] | None:
        grids = self.visible(staff)
        if not grids:
            return None
        return [float(v) for v in shapely.total_bounds([self.shapes[g.grid_id] for g in grids])]

    def area_point(self, level: str, area_id: str, town_name: str | None) -> tuple[float, float] | None:
        """Where an alert's area is: a grid by id; a village or town by the names the events carry."""
        if level == "grid":
            grid = self.grids.get(area_id)
            return grid.centroid if grid else None
        if level == "village":
            for g in self.grids.values():
                if g.village == area_id and (town_name is None or g.town == town_name):
                    p = self.village_shapes[g.village_id].representative_point()
                    return (round(p.x, 6), round(p.y, 6))
            return None
        for g in self.grids.values():
            if g.town == area_id:
                p = self.town_shapes[g.town_id].representative_point()
                return (round(p.x, 6), round(p.y, 6))
        return None


class MapCache:
    """The newest registry as a `CountyMap`; asks routing at most every REFRESH_S, with its ETag."""

    def __init__(self, backends: Backends):
        self.backends = backends
        self._map: CountyMap | None = None
        self._checked = -1e9
        self._lock = threading.Lock()

    def get(self, token: str) -> CountyMap | None:
        if self._map is not None and time.monotonic() - self._checked < REFRESH_S:
            return self._map
        with self._lock:
            if self._map is not None and time.monotonic() - self._checked < REFRESH_S:
                return self._map
            headers = {"If-None-Match": f'"registry-{self._map.version}"'} if self._map else {}
            answer = self.backends.get("routing", "/v1/grids", token=token, headers=headers)
            if answer.status == 200 and answer.body.get("features"):
                self._map = CountyMap.from_registry(answer.body)
            if answer.status in (200, 304):
                self._checked = time.monotonic()
            return self._map


@dataclass(frozen=True)
class Houses:
    """The house layer: points with the grid each lies in (WEB_HOUSES_FILE: gzip CSV lon,lat,grid_id)."""

    lon: np.ndarray
    lat: np.ndarray
    grid: np.ndarray  # index into grid_ids
    grid_ids: tuple[str, ...]

    @classmethod
    def load(cls, path: Path) -> Houses:
        lons, lats, grids = [], [], []
        index: dict[str, int] = {}
        with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                lons.append(float(row["lon"]))
                lats.append(float(row["lat"]))
                grids.append(index.setdefault(row["grid_id"], len(index)))
        return cls(np.array(lons), np.array(lats), np.array(grids, dtype=np.int32), tuple(index))

    def within(self, bbox: tuple[float, float, float, float], allowed: set[str] | None, limit: int) -> tuple[list, int]:
        """Points in the box (in the grids `allowed`, None for all): ([[lon, lat], ...] up to `limit`, total)."""
        west, south, east, north = bbox
        mask = (self.lon >= west) & (self.lon <= east) & (self.lat >= south) & (self.lat <= north)
        if allowed is not None:
            mask &= np.isin(self.grid, [i for i, g in enumerate(self.grid_ids) if g in allowed])
        hits = np.flatnonzero(mask)
        total = len(hits)
        hits = hits[:limit]
        return np.column_stack((self.lon[hits], self.lat[hits])).tolist(), total
