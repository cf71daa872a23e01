"""The routing decision (派单): which grid, department and person a new petition goes to, and why.

Rules, first that applies wins: (1) an explicit grid_id that exists; (2) the grid whose polygon contains
lat/lon; (3) a village named confidently enough, plus its address; (4) the county dispatch centre's
triage queue. A rule that is tried and fails says so in the reason, so a dispatcher can see why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .model import Grid
from .names import MIN_MARGIN, MIN_SCORE, grid_number_in
from .registry import GridRegistry

DISPATCH_CENTRE = "county_dispatch_centre"
DEFAULT_DISPATCHER_ID = "S000001"

ROLE_GRID_LEADER = "grid_leader"
ROLE_COUNTY_DISPATCHER = "county_dispatcher"

RouteKind = Literal["grid_id", "point", "village", "triage"]


@dataclass(frozen=True, slots=True)
class Assignee:
    staff_id: str
    role: str

    def to_dict(self) -> dict[str, str]:
        return {"staff_id": self.staff_id, "role": self.role}


@dataclass(frozen=True)
class Assignment:
    """Who handles a petition. The ids are for authorisation; the event data carries the names."""

    grid_id: str | None
    village: str | None
    town: str | None
    department: str
    assignee: Assignee
    village_id: str | None = None
    town_id: str | None = None

    def event_fields(self) -> dict[str, Any]:
        """The assignment part of `petition.assigned` / `petition.transferred` data."""
        return {
            "grid_id": self.grid_id,
            "village": self.village,
            "town": self.town,
            "department": self.department,
            "assignee": self.assignee.to_dict(),
        }

    @classmethod
    def for_grid(cls, grid: Grid, department: str) -> Assignment:
        return cls(
            grid_id=grid.grid_id,
            village=grid.village,
            town=grid.town,
            department=department,
            assignee=Assignee(grid.leader.staff_id, ROLE_GRID_LEADER),
            village_id=grid.village_id,
            town_id=grid.town_id,
        )


@dataclass(frozen=True, kw_only=True)
class RouteDecision(Assignment):
    route: RouteKind
    reason: str  # human-readable: which rule chose the route, and which rules were tried and failed


@dataclass(frozen=True)
class RoutingRules:
    """What a routing decision and a transfer are checked against: the grid registry (None before the
    first import), the category → department table, and who triages what no grid takes."""

    registry: GridRegistry | None
    departments: Mapping[str, str]
    dispatcher_id: str = DEFAULT_DISPATCHER_ID


def department_for(category: Any, departments: Mapping[str, str]) -> str:
    """The category's department; an unknown category goes to the dispatch centre, which re-dispatches."""
    return departments.get(category, DISPATCH_CENTRE) if isinstance(category, str) else DISPATCH_CENTRE


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _fmt(x: float) -> str:
    return f"{x:.6f}".rstrip("0").rstrip(".")


# A rule's verdict: the grid, the route kind, and why. A rule that fails appends to `notes` instead.
_Found = tuple[Grid, RouteKind, str]


def _by_grid_id(location: Mapping[str, Any], registry: GridRegistry, notes: list[str]) -> _Found | None:
    grid_id = location.get("grid_id")
    grid_id = grid_id.strip() if isinstance(grid_id, str) else grid_id
    if grid_id in (None, ""):
        return None
    grid = registry.grid(grid_id) if isinstance(grid_id, str) else None
    if grid is None:
        notes.append(f"grid_id {grid_id!r} is not in the registry")
        return None
    return grid, "grid_id", f"explicit grid_id {grid.grid_id} ({grid.village}, {grid.town})"


def _by_point(location: Mapping[str, Any], registry: GridRegistry, notes: list[str]) -> _Found | None:
    lat, lon = _number(location.get("lat")), _number(location.get("lon"))
    if lat is None or lon is None:
        if location.get("lat") is not None or location.get("lon") is not None:
            notes.append("lat/lon incomplete or not numbers")
        return None
    where = f"point ({_fmt(lat)}, {_fmt(lon)})"
    hits = registry.grids_at(lat, lon)
    if not hits:
        notes.append(f"{where} lies outside every grid")
        return None
    if len(hits) == 1:
        return hits[0], "point", f"{where} lies in grid {hits[0].grid_id}"
    ids = ", ".join(g.grid_id for g in hits)
    return hits[0], "point", f"{where} lies on the shared border of {ids}; the smallest grid_id {hits[0].grid_id} wins"


def _by_village(location: Mapping[str, Any], registry: GridRegistry, notes: list[str]) -> _Found | None:
    name = location.get("village")
    if not isinstance(name, str) or not name.strip():
        return None
    town = location.get("town") if isinstance(location.get("town"), str) else None
    found = registry.match_village(name, town)
    best, second = found.best, found.runner_up
    if found.outcome == "matched" and best is not None:
        village = best.village
        matched = f"village name {name!r} matched {village.name} ({village.town}, score {best.score:.0f})"
        address = location.get("address") if isinstance(location.get("address"), str) else None
        grid = registry.grid_named_in_address(village, address)
        if grid is not None:
            return grid, "village", f"{matched}; the address names grid {grid.grid_id}"
        grid = registry.grid_for_address(village, address)
        number = grid_number_in(address) if address else None
        named = "no grid" if number is None else f"grid {number}, which the village does not have"
        return grid, "village", f"{matched}; the address names {named}, so the village's default grid {grid.grid_id}"
    if found.outcome == "ambiguous" and best is not None and second is not None:
        notes.append(
            f"village name {name!r} is ambiguous: {best.village.name} ({best.village.town}, {best.score:.0f}) "
            f"vs {second.village.name} ({second.village.town}, {second.score:.0f}), margin under {MIN_MARGIN:.0f}"
        )
    elif best is not None:
        notes.append(
            f"village name {name!r} matched no village (best {best.village.name}, "
            f"score {best.score:.0f} < {MIN_SCORE:.0f})"
        )
    else:
        notes.append(f"village name {name!r} matched no village")
    return None


def route(
    petition_data: Mapping[str, Any],
    registry: GridRegistry | None,
    departments: Mapping[str, str],
    *,
    dispatcher_id: str = DEFAULT_DISPATCHER_ID,
) -> RouteDecision:
    """Decide where a petition goes. `petition_data` is the `petition.submitted` data (category and
    location are read). With no registry imported yet everything goes to triage."""
    department = department_for(petition_data.get("category"), departments)
    location = petition_data.get("location")
    location = location if isinstance(location, Mapping) else {}
    notes: list[str] = []
    if registry is None:
        notes.append("no grid registry has been imported")
    else:
        for rule in (_by_grid_id, _by_point, _by_village):
            found = rule(location, registry, notes)
            if found is not None:
                grid, kind, why = found
                assignment = Assignment.for_grid(grid, department)
                return RouteDecision(**vars(assignment), route=kind, reason="; ".join([*notes, why]))

    # (4) triage: the county dispatch centre decides by hand
    if not notes:
        notes.append("no grid_id, point or village name given")
    town_id = registry.town_id(location.get("town")) if registry is not None else None
    return RouteDecision(
        grid_id=None,
        village=None,
        # A recognised town is kept for supervision and statistics; free text is not, it would pollute them.
        town=registry.town_name(town_id) if registry is not None and town_id else None,
        department=department,
        assignee=Assignee(dispatcher_id, ROLE_COUNTY_DISPATCHER),
        town_id=town_id,
        route="triage",
        reason="; ".join([*notes, "sent to the county dispatch centre for triage"]),
    )
