"""The grid registry: which grid, village and town a petition belongs to, and who leads it."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Mapping
from typing import Any, NamedTuple

import shapely
from shapely import Point, STRtree

from .model import Grid, Village
from .names import VillageLookup, VillageMatcher, grid_number_in, normalise
from .validation import FieldError, validate

# A point this close to a grid (about 0.1 mm) is on it: absorbs float slivers where two producers'
# shared edges do not have identical vertices.
EDGE_TOLERANCE_DEG = 1e-9


class RegistryInvalid(Exception):
    """The import was rejected; `errors` lists every problem found, not just the first."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(
            f"grid registry invalid: {len(errors)} problem(s); first: {errors[0].path}: {errors[0].message}"
        )
        self.errors = errors

    def fields(self) -> dict[str, str]:
        """`{path: message}` for the contract's error body (messages of one path joined)."""
        out: dict[str, str] = {}
        for error in self.errors:
            out[error.path] = f"{out[error.path]}; {error.message}" if error.path in out else error.message
        return out


class VillageMatch(NamedTuple):
    village: Village
    score: float


class GridRegistry:
    """Immutable once built; build it with `from_geojson`, which is all-or-nothing."""

    def __init__(self, grids: list[Grid]) -> None:
        self._grids = tuple(sorted(grids, key=lambda g: g.grid_id))
        self._by_id = {g.grid_id: g for g in self._grids}
        self._tree = STRtree([g.polygon for g in self._grids])
        members: dict[str, list[Grid]] = defaultdict(list)
        for grid in self._grids:
            members[grid.village_id].append(grid)
        self._villages = {
            vid: Village(
                village_id=vid,
                name=gs[0].village,
                town_id=gs[0].town_id,
                town=gs[0].town,
                aliases=tuple(sorted({a for g in gs for a in g.village_aliases})),
                grid_ids=tuple(g.grid_id for g in gs),
            )
            for vid, gs in sorted(members.items())
        }
        self._matcher = VillageMatcher(self._villages.values())

    @classmethod
    def from_geojson(cls, fc: Any, known_villages: Collection[str] | None = None) -> GridRegistry:
        """Build from a FeatureCollection (one Polygon per grid), or raise `RegistryInvalid` with all errors.

        `known_villages`, when given, is the county's official village list (ids or exact names).
        """
        errors, grids = validate(fc, known_villages)
        if errors:
            raise RegistryInvalid(errors)
        return cls(grids)

    # --- lookups ------------------------------------------------------------------------------------

    @property
    def grids(self) -> tuple[Grid, ...]:
        return self._grids

    @property
    def villages(self) -> tuple[Village, ...]:
        return tuple(self._villages.values())

    def grid(self, grid_id: str) -> Grid | None:
        return self._by_id.get(grid_id)

    def village(self, village_id: str) -> Village | None:
        return self._villages.get(village_id)

    def town_id(self, text: object) -> str | None:
        """The town a free-text town name or id refers to, or None."""
        return self._matcher.town_id(text)

    def town_name(self, town_id: str) -> str | None:
        return next((v.town for v in self._villages.values() if v.town_id == town_id), None)

    def grids_at(self, lat: float, lon: float) -> list[Grid]:
        """Every grid covering the point (boundary included), sorted by grid_id; [] outside the county."""
        if not (_finite(lat) and _finite(lon)):
            return []
        point = Point(lon, lat)
        hits = self._tree.query(point, predicate="covered_by")
        if len(hits) == 0:
            hits = self._tree.query(point, predicate="dwithin", distance=EDGE_TOLERANCE_DEG)
        return sorted((self._grids[k] for k in hits.tolist()), key=lambda g: g.grid_id)

    def locate(self, lat: float, lon: float) -> Grid | None:
        """The grid containing the point. On a shared edge or vertex every touching grid covers the
        point, and the smallest grid_id wins, so the answer never depends on index order."""
        hits = self.grids_at(lat, lon)
        return hits[0] if hits else None

    def match_village(self, text: str, town: str | None = None) -> VillageLookup:
        """The full outcome of a fuzzy village-name lookup (matched / ambiguous / no_match)."""
        return self._matcher.lookup(text, town)

    def village_by_name(self, text: str, town: str | None = None) -> VillageMatch | None:
        """The village a free-text name means, with its score (0–100), or None when no village is a
        confident match (too low, or too close to the runner-up). `town` narrows the search when known."""
        result = self._matcher.lookup(text, town)
        if result.outcome != "matched" or result.best is None:
            return None
        return VillageMatch(result.best.village, result.best.score)

    def grid_named_in_address(self, village: Village, address: str | None) -> Grid | None:
        """The village's grid an address names: by grid name (longest first), else by number (第3网格)."""
        if not address:
            return None
        grids = [self._by_id[gid] for gid in village.grid_ids]
        text = normalise(address)
        for grid in sorted(grids, key=lambda g: (-len(g.grid_name), g.grid_id)):
            name = normalise(grid.grid_name)
            if len(name) >= 2 and name in text:
                return grid
        number = grid_number_in(address)
        return next((g for g in grids if number is not None and g.number == number), None)

    def grid_for_address(self, village: Village, address: str | None) -> Grid:
        """The grid inside `village` for a free-text address. If the address names no grid of the village,
        the village's default grid, the first by grid_id: its leader knows the village and re-dispatches."""
        return self.grid_named_in_address(village, address) or self._by_id[village.grid_ids[0]]

    def areas(self) -> list[dict[str, Any]]:
        """Towns with their villages, for pickers: the citizen's location and staff transfers. Place names
        and ids only, no staff: they are public, as on any county's signposts."""
        towns: dict[str, dict[str, Any]] = {}
        for village in self._villages.values():
            town = towns.setdefault(village.town_id, {"town_id": village.town_id, "town": village.town, "villages": []})
            town["villages"].append({"village_id": village.village_id, "village": village.name})
        return [towns[t] for t in sorted(towns)]

    def village_grids(self, village_id: str) -> list[dict[str, str]] | None:
        """The grids of one village (ids and names), or None for an unknown village."""
        village = self._villages.get(village_id)
        if village is None:
            return None
        return [{"grid_id": g, "grid_name": self._by_id[g].grid_name} for g in village.grid_ids]

    def to_summary(self) -> dict[str, Any]:
        minx, miny, maxx, maxy = shapely.total_bounds([g.polygon for g in self._grids]).tolist()
        return {
            "towns": len({g.town_id for g in self._grids}),
            "villages": len(self._villages),
            "grids": len(self._grids),
            "households": sum(g.households for g in self._grids),
            "population": sum(g.population for g in self._grids),
            "bbox": {"min_lon": minx, "min_lat": miny, "max_lon": maxx, "max_lat": maxy},
            "grids_by_town": _count_by_town(self._grids),
        }


def _count_by_town(grids: tuple[Grid, ...]) -> Mapping[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for grid in grids:
        counts[grid.town_id] += 1
    return dict(sorted(counts.items()))


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
