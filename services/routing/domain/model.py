"""Registry entities: grids, villages and the roster members (the staff named in the grid registry)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shapely import Polygon
from shapely.geometry import mapping


@dataclass(frozen=True, slots=True)
class RosterMember:
    """A person the registry names for a grid (leader, cadre, helper); not a signed-in identity
    (that is petition_common.auth.Staff)."""

    staff_id: str
    name: str

    def to_dict(self) -> dict[str, str]:
        return {"staff_id": self.staff_id, "name": self.name}


@dataclass(frozen=True, slots=True)
class Grid:
    grid_id: str
    grid_name: str
    village_id: str
    village: str
    town_id: str
    town: str
    households: int
    population: int
    leader: RosterMember  # 网格长: the assignee of petitions routed to this grid
    cadre: RosterMember  # 包联村干部
    helpers: tuple[RosterMember, ...]
    village_aliases: tuple[str, ...]
    # The number citizens use for the grid ("第3网格"); None when neither name nor id carries one.
    number: int | None
    polygon: Polygon = field(compare=False, repr=False)

    def properties(self) -> dict[str, Any]:
        return {
            "grid_id": self.grid_id,
            "grid_name": self.grid_name,
            "village_id": self.village_id,
            "village": self.village,
            "town_id": self.town_id,
            "town": self.town,
            "households": self.households,
            "population": self.population,
            "leader": self.leader.to_dict(),
            "cadre": self.cadre.to_dict(),
            "helpers": [h.to_dict() for h in self.helpers],
            "village_aliases": list(self.village_aliases),
        }

    def to_feature(self) -> dict[str, Any]:
        """The grid as the GeoJSON Feature it was imported from (what `GET /v1/grids/{id}` shows)."""
        return {"type": "Feature", "geometry": mapping(self.polygon), "properties": self.properties()}


@dataclass(frozen=True, slots=True)
class Village:
    village_id: str
    name: str
    town_id: str
    town: str
    aliases: tuple[str, ...]
    grid_ids: tuple[str, ...]  # sorted; grid_ids[0] is the village's default grid
