"""The county's data model and its GeoJSON form, the grid registry import format.

`County.to_geojson()` returns what the routing service takes at `POST /v1/grids/import`: a
FeatureCollection with one Feature per grid::

    {"type": "FeatureCollection",
     "features": [{
        "type": "Feature",
        "geometry": {"type": "Polygon",
                     "coordinates": [[[lon, lat], ..., [lon, lat]]]},  # WGS84, closed, exterior CCW
        "properties": {
            "grid_id": "T01V01G001", "grid_name": "大王庄新村第1网格",
            "village_id": "T01V01", "village": "大王庄新村",
            "town_id": "T01", "town": "城关街道",
            "households": 48, "population": 157,
            "leader": {"staff_id": "S00042", "name": "王伟"},       # 网格长, handles the grid's petitions
            "cadre": {"staff_id": "S00031", "name": "李敏"},        # 包联村干部, supervises
            "helpers": [{"staff_id": "S00043", "name": "张强"}],    # the "N" of 1+1+N
            "village_aliases": ["大王庄", "大王庄村", "大汪庄新村", "大汪庄"]}}]}

Coordinates are in lon/lat order with 7 decimals. Neighbouring grids share identical edge
coordinates, villages are the union of their grids and towns the union of their villages. Staff phone
numbers, town supervisors and the county dispatcher are not part of the format; `County.from_geojson`
therefore restores grid-level staff with an empty phone and without the town and county roles.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import shapely
from shapely.geometry import Polygon
from shapely.geometry.polygon import orient

Role = Literal["village_cadre", "grid_leader", "helper", "town_supervisor", "county_dispatcher"]
AreaLevel = Literal["grid", "village", "town"]


@dataclass(frozen=True)
class Town:
    town_id: str  # T01..T12
    name: str
    polygon: Polygon


@dataclass(frozen=True)
class Village:
    village_id: str  # T01V01
    name: str  # always ends in 新村
    town_id: str
    polygon: Polygon
    aliases: tuple[str, ...]  # what citizens type instead; unique county-wide


@dataclass(frozen=True)
class Grid:
    grid_id: str  # T01V01G001
    name: str  # 大王庄新村第1网格
    village_id: str
    town_id: str
    polygon: Polygon
    households: int  # 30–60
    population: int
    leader_id: str  # 网格长: the one who handles the grid's petitions
    cadre_id: str  # 包联村干部: supervises this grid (and possibly others of the same village)
    helper_ids: tuple[str, ...]  # 2–6 party-member households and welfare posts


@dataclass(frozen=True)
class RosterMember:
    """A person on the county's staff roster (not a signed-in identity: that is petition_common.auth.Staff)."""

    staff_id: str  # S00001
    name: str
    role: Role
    phone: str  # 11-digit mobile; empty when restored from GeoJSON
    town_id: str | None  # None only for the county dispatcher
    village_id: str | None  # None for town supervisors and the county dispatcher
    grid_ids: tuple[str, ...]  # grids this person is attached to; empty for town and county roles


@dataclass(frozen=True)
class County:
    towns: tuple[Town, ...]
    villages: tuple[Village, ...]
    grids: tuple[Grid, ...]
    staff: tuple[RosterMember, ...]

    @cached_property
    def towns_by_id(self) -> dict[str, Town]:
        return {t.town_id: t for t in self.towns}

    @cached_property
    def villages_by_id(self) -> dict[str, Village]:
        return {v.village_id: v for v in self.villages}

    @cached_property
    def grids_by_id(self) -> dict[str, Grid]:
        return {g.grid_id: g for g in self.grids}

    @cached_property
    def staff_by_id(self) -> dict[str, RosterMember]:
        return {s.staff_id: s for s in self.staff}

    def grids_in(self, level: AreaLevel, area_id: str) -> list[Grid]:
        """The grids of one grid, village or town; KeyError for an unknown area."""
        attr = {"grid": "grid_id", "village": "village_id", "town": "town_id"}[level]
        found = [g for g in self.grids if getattr(g, attr) == area_id]
        if not found:
            raise KeyError(f"no {level} {area_id!r}")
        return found

    def to_geojson(self) -> dict[str, Any]:
        """The grid registry import document (format in the module docstring)."""
        return {"type": "FeatureCollection", "features": [self._feature(g) for g in self.grids]}

    def _feature(self, grid: Grid) -> dict[str, Any]:
        village = self.villages_by_id[grid.village_id]

        def ref(staff_id: str) -> dict[str, str]:
            return {"staff_id": staff_id, "name": self.staff_by_id[staff_id].name}

        return {
            "type": "Feature",
            "geometry": _polygon_to_geojson(grid.polygon),
            "properties": {
                "grid_id": grid.grid_id,
                "grid_name": grid.name,
                "village_id": village.village_id,
                "village": village.name,
                "town_id": grid.town_id,
                "town": self.towns_by_id[grid.town_id].name,
                "households": grid.households,
                "population": grid.population,
                "leader": ref(grid.leader_id),
                "cadre": ref(grid.cadre_id),
                "helpers": [ref(h) for h in grid.helper_ids],
                "village_aliases": list(village.aliases),
            },
        }

    @classmethod
    def from_geojson(cls, fc: dict[str, Any]) -> County:
        """Rebuild a county from `to_geojson()` output (see the module docstring for what is lost)."""
        if fc.get("type") != "FeatureCollection":
            raise ValueError("expected a GeoJSON FeatureCollection")
        grids: list[Grid] = []
        village_props: dict[str, dict[str, Any]] = {}
        town_names: dict[str, str] = {}
        staff: dict[str, dict[str, Any]] = {}

        def remember(ref: dict[str, str], role: Role, props: dict[str, Any]) -> None:
            entry = staff.setdefault(
                ref["staff_id"],
                {"name": ref["name"], "role": role, "town_id": props["town_id"],
                 "village_id": props["village_id"], "grid_ids": []},
            )  # fmt: skip
            entry["grid_ids"].append(props["grid_id"])

        for feature in fc["features"]:
            props = feature["properties"]
            polygon = _polygon_from_geojson(feature["geometry"])
            village_props.setdefault(props["village_id"], props)
            town_names.setdefault(props["town_id"], props["town"])
            remember(props["cadre"], "village_cadre", props)
            remember(props["leader"], "grid_leader", props)
            for helper in props["helpers"]:
                remember(helper, "helper", props)
            grids.append(
                Grid(
                    grid_id=props["grid_id"],
                    name=props["grid_name"],
                    village_id=props["village_id"],
                    town_id=props["town_id"],
                    polygon=polygon,
                    households=props["households"],
                    population=props["population"],
                    leader_id=props["leader"]["staff_id"],
                    cadre_id=props["cadre"]["staff_id"],
                    helper_ids=tuple(h["staff_id"] for h in props["helpers"]),
                )
            )
        villages = tuple(
            Village(
                village_id=vid,
                name=props["village"],
                town_id=props["town_id"],
                polygon=_union(g.polygon for g in grids if g.village_id == vid),
                aliases=tuple(props["village_aliases"]),
            )
            for vid, props in village_props.items()
        )
        towns = tuple(
            Town(tid, name, _union(v.polygon for v in villages if v.town_id == tid)) for tid, name in town_names.items()
        )
        people = tuple(
            RosterMember(sid, e["name"], e["role"], "", e["town_id"], e["village_id"], tuple(e["grid_ids"]))
            for sid, e in sorted(staff.items())
        )
        return cls(towns, villages, tuple(grids), people)


def _union(polygons: Iterable[Polygon]) -> Polygon:
    merged = shapely.union_all(list(polygons))
    if not isinstance(merged, Polygon):
        raise ValueError("an area's grids do not form one connected polygon")
    return orient(merged, 1.0)


def _polygon_to_geojson(polygon: Polygon) -> dict[str, Any]:
    ccw = orient(polygon, 1.0)  # RFC 7946: exterior counter-clockwise, holes clockwise
    rings = [ccw.exterior, *ccw.interiors]
    return {"type": "Polygon", "coordinates": [[[x, y] for x, y in ring.coords] for ring in rings]}


def _polygon_from_geojson(geometry: dict[str, Any]) -> Polygon:
    if geometry.get("type") != "Polygon":
        raise ValueError(f"grid geometry must be a Polygon, not {geometry.get('type')!r}")
    exterior, *holes = geometry["coordinates"]
    return Polygon(exterior, holes)
