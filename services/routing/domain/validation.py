"""Validation of a grid registry import (a GeoJSON FeatureCollection, one Polygon Feature per grid).

Every problem is collected, not just the first: an operator fixing a 2,635-grid file wants the whole
list in one round trip. Each error names the feature index and the field inside the feature.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

import shapely
from shapely import Polygon, STRtree

from .model import Grid, RosterMember
from .names import grid_number_in

# Overlaps and gaps smaller than this are float noise from the producer, not a governance problem.
AREA_TOLERANCE_M2 = 1.0

_TEXT_FIELDS = ("grid_id", "grid_name", "village_id", "village", "town_id", "town")
_COUNT_FIELDS = ("households", "population")
_STAFF_FIELDS = ("leader", "cadre")


@dataclass(frozen=True, slots=True)
class FieldError:
    index: int | None  # the feature's index in `features`; None for the collection as a whole
    field: str  # dotted path inside the feature, e.g. "properties.leader.staff_id"
    message: str

    @property
    def path(self) -> str:
        return self.field if self.index is None else f"features[{self.index}].{self.field}"

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "message": self.message}


def square_metres(area_deg2: float, lat: float) -> float:
    """Approximate area in m² of `area_deg2` square degrees at latitude `lat` (plenty for tolerances)."""
    return area_deg2 * 110_574.0 * 111_320.0 * math.cos(math.radians(lat))


def validate(fc: Any, known_villages: Collection[str] | None = None) -> tuple[list[FieldError], list[Grid]]:
    """All problems of `fc`, and the grids it describes (complete only when there are no problems)."""
    errors: list[FieldError] = []
    if not isinstance(fc, dict) or fc.get("type") != "FeatureCollection":
        return [FieldError(None, "type", "must be a GeoJSON FeatureCollection")], []
    features = fc.get("features")
    if not isinstance(features, list) or not features:
        return [FieldError(None, "features", "must be a non-empty list of Features, one per grid")], []

    polygons: dict[int, Polygon] = {}
    props: dict[int, dict[str, Any]] = {}
    for i, feature in enumerate(features):
        if not isinstance(feature, dict) or feature.get("type") != "Feature":
            errors.append(FieldError(i, "type", "must be a GeoJSON Feature"))
            continue
        polygon = _parse_polygon(i, feature.get("geometry"), errors)
        if polygon is not None:
            polygons[i] = polygon
        parsed = _parse_properties(i, feature.get("properties"), errors)
        if parsed is not None:
            props[i] = parsed

    _check_duplicates(props, errors)
    _check_hierarchy(props, errors)
    _check_overlaps(polygons, props, errors)
    _check_holes(polygons, props, errors)
    if known_villages is not None:
        _check_known(props, set(known_villages), errors)

    errors.sort(key=lambda e: (-1 if e.index is None else e.index, e.field, e.message))
    grids = [_grid(props[i], polygons[i]) for i in sorted(props.keys() & polygons.keys())]
    return errors, grids


# --- one feature -------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _parse_polygon(i: int, geometry: Any, errors: list[FieldError]) -> Polygon | None:
    if geometry is None:
        errors.append(FieldError(i, "geometry", "missing; every grid needs a Polygon"))
        return None
    if not isinstance(geometry, dict):
        errors.append(FieldError(i, "geometry", "must be a GeoJSON geometry object"))
        return None
    if geometry.get("type") != "Polygon":
        errors.append(FieldError(i, "geometry.type", f"must be Polygon, got {geometry.get('type')!r}"))
        return None
    coordinates = geometry.get("coordinates")
    if not isinstance(coordinates, list) or not coordinates:
        errors.append(FieldError(i, "geometry.coordinates", "must be a non-empty list of linear rings"))
        return None
    rings: list[list[tuple[float, float]]] = []
    before = len(errors)
    for r, ring in enumerate(coordinates):
        where = f"geometry.coordinates[{r}]"
        if not isinstance(ring, list):
            errors.append(FieldError(i, where, "must be a list of positions"))
            continue
        positions = []
        for p, position in enumerate(ring):
            if not (isinstance(position, list) and len(position) in (2, 3) and all(map(_is_number, position))):
                errors.append(FieldError(i, f"{where}[{p}]", "must be a position [lon, lat]"))
                break
            lon, lat = position[0], position[1]
            if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                errors.append(FieldError(i, f"{where}[{p}]", f"{position} is out of range; positions are [lon, lat]"))
                break
            positions.append((float(lon), float(lat)))
        else:
            if len(positions) < 4:
                errors.append(FieldError(i, where, f"has {len(positions)} positions; a ring needs at least 4"))
            elif positions[0] != positions[-1]:
                errors.append(FieldError(i, where, "is not closed: the first and last positions differ"))
            rings.append(positions)
    if len(errors) > before:
        return None
    polygon = Polygon(rings[0], rings[1:])
    reason = shapely.is_valid_reason(polygon)
    if reason != "Valid Geometry":
        # e.g. "Self-intersection[120.01 36.2]", "Ring Self-intersection[...]", "Hole lies outside shell[...]"
        errors.append(FieldError(i, "geometry", f"invalid polygon: {reason}"))
        return None
    shapely.prepare(polygon)
    return polygon


def _text(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def _parse_staff(i: int, field: str, value: Any, errors: list[FieldError]) -> RosterMember | None:
    if not isinstance(value, dict):
        errors.append(FieldError(i, field, "missing or not an object {staff_id, name}"))
        return None
    ok = True
    for key in ("staff_id", "name"):
        if not _text(value.get(key)):
            errors.append(FieldError(i, f"{field}.{key}", "missing or empty"))
            ok = False
    return RosterMember(value["staff_id"], value["name"]) if ok else None


def _parse_properties(i: int, properties: Any, errors: list[FieldError]) -> dict[str, Any] | None:
    if not isinstance(properties, dict):
        errors.append(FieldError(i, "properties", "missing or not an object"))
        return None
    before = len(errors)
    parsed: dict[str, Any] = {}
    for key in _TEXT_FIELDS:
        if _text(properties.get(key)):
            parsed[key] = properties[key]
        else:
            errors.append(FieldError(i, f"properties.{key}", "missing or empty"))
    for key in _COUNT_FIELDS:
        value = properties.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            parsed[key] = value
        else:
            errors.append(FieldError(i, f"properties.{key}", "missing or not a non-negative integer"))
    for key in _STAFF_FIELDS:
        parsed[key] = _parse_staff(i, f"properties.{key}", properties.get(key), errors)
    # helpers and village_aliases may be absent (an empty list); when present they must be well formed.
    helpers = properties.get("helpers", [])
    if isinstance(helpers, list):
        parsed["helpers"] = tuple(
            _parse_staff(i, f"properties.helpers[{h}]", helper, errors) for h, helper in enumerate(helpers)
        )
    else:
        errors.append(FieldError(i, "properties.helpers", "must be a list of {staff_id, name}"))
    aliases = properties.get("village_aliases", [])
    if isinstance(aliases, list) and all(map(_text, aliases)):
        parsed["village_aliases"] = tuple(aliases)
    else:
        errors.append(FieldError(i, "properties.village_aliases", "must be a list of non-empty strings"))
    return parsed if len(errors) == before else None


def _grid(p: dict[str, Any], polygon: Polygon) -> Grid:
    number = grid_number_in(p["grid_name"])
    if number is None:
        digits = p["grid_id"][len(p["grid_id"].rstrip("0123456789")) :]
        number = int(digits) if digits else None
    return Grid(
        grid_id=p["grid_id"],
        grid_name=p["grid_name"],
        village_id=p["village_id"],
        village=p["village"],
        town_id=p["town_id"],
        town=p["town"],
        households=p["households"],
        population=p["population"],
        leader=p["leader"],
        cadre=p["cadre"],
        helpers=p["helpers"],
        village_aliases=p["village_aliases"],
        number=number,
        polygon=polygon,
    )


# --- across features ---------------------------------------------------------------------------------


def _check_duplicates(props: dict[int, dict[str, Any]], errors: list[FieldError]) -> None:
    first: dict[str, int] = {}
    for i, p in props.items():
        if p["grid_id"] in first:
            errors.append(
                FieldError(
                    i,
                    "properties.grid_id",
                    f"duplicate grid_id {p['grid_id']} (first at feature {first[p['grid_id']]})",
                )
            )
        else:
            first[p["grid_id"]] = i


def _majority(values: Iterable[tuple[int, str]]) -> str:
    """The most common value; on a tie, the one seen first (so the report is stable)."""
    counts: Counter[str] = Counter()
    first: dict[str, int] = {}
    for i, value in values:
        counts[value] += 1
        first.setdefault(value, i)
    return max(counts, key=lambda v: (counts[v], -first[v]))


def _check_hierarchy(props: dict[int, dict[str, Any]], errors: list[FieldError]) -> None:
    """Ids nest (T01 ⊃ T01V01 ⊃ T01V01G001), and a village lies in one town, under one name."""
    by_village: dict[str, list[int]] = defaultdict(list)
    by_town: dict[str, list[int]] = defaultdict(list)
    for i, p in props.items():
        by_village[p["village_id"]].append(i)
        by_town[p["town_id"]].append(i)
        if not p["grid_id"].startswith(p["village_id"]):
            errors.append(FieldError(i, "properties.grid_id", f"does not start with its village_id {p['village_id']}"))
        if not p["village_id"].startswith(p["town_id"]):
            errors.append(FieldError(i, "properties.village_id", f"does not start with its town_id {p['town_id']}"))
    for village_id, indexes in by_village.items():
        for key in ("town_id", "village"):
            expected = _majority((i, props[i][key]) for i in indexes)
            for i in indexes:
                if props[i][key] != expected:
                    errors.append(
                        FieldError(
                            i,
                            f"properties.{key}",
                            f"{props[i][key]!r} disagrees with the other grids of village {village_id} ({expected!r})",
                        )
                    )
    for town_id, indexes in by_town.items():
        expected = _majority((i, props[i]["town"]) for i in indexes)
        for i in indexes:
            if props[i]["town"] != expected:
                errors.append(
                    FieldError(
                        i, "properties.town", f"{props[i]['town']!r} disagrees with town {town_id} ({expected!r})"
                    )
                )


def _label(i: int, props: dict[int, dict[str, Any]]) -> str:
    return f"feature {i} ({props[i]['grid_id']})" if i in props else f"feature {i}"


def _check_overlaps(polygons: dict[int, Polygon], props: dict[int, dict[str, Any]], errors: list[FieldError]) -> None:
    indexes = sorted(polygons)
    if len(indexes) < 2:
        return
    geoms = [polygons[i] for i in indexes]
    tree = STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    pairs = left < right  # each unordered pair once; also drops a polygon meeting itself
    left, right = left[pairs], right[pairs]
    # Interiors meet ("T********") only when the intersection has area; touching borders do not count.
    meeting = shapely.relate_pattern(tree.geometries.take(left), tree.geometries.take(right), "T********")
    for a, b in zip(left[meeting].tolist(), right[meeting].tolist(), strict=True):
        shared = geoms[a].intersection(geoms[b])
        area = square_metres(shared.area, shared.centroid.y) if not shared.is_empty else 0.0
        if area > AREA_TOLERANCE_M2:
            i, j = indexes[a], indexes[b]
            errors.append(FieldError(j, "geometry", f"overlaps {_label(i, props)} by about {area:.0f} m²"))


def _check_holes(polygons: dict[int, Polygon], props: dict[int, dict[str, Any]], errors: list[FieldError]) -> None:
    """A village's outline is the union of its grids; a gap inside it is a place no grid leader covers.

    A gap filled by another village's grids is an enclave (飞地), not a gap, and is not reported.
    """
    by_village: dict[str, list[int]] = defaultdict(list)
    for i, p in props.items():
        by_village[p["village_id"]].append(i)
    indexes = sorted(polygons)
    tree = STRtree([polygons[i] for i in indexes])
    for village_id, members in sorted(by_village.items()):
        if any(i not in polygons for i in members):
            continue  # a broken grid would show up as a false gap; its own error is enough
        outline = shapely.union_all([polygons[i] for i in members])
        for part in getattr(outline, "geoms", [outline]):
            for ring in part.interiors:
                hole = Polygon(ring)
                others = [polygons[indexes[k]] for k in tree.query(hole, predicate="intersects").tolist()]
                gap = hole.difference(shapely.union_all(others)) if others else hole
                if gap.is_empty:
                    continue
                area = square_metres(gap.area, gap.centroid.y)
                if area <= AREA_TOLERANCE_M2:
                    continue
                point = gap.representative_point()
                bordering = [i for i in sorted(members) if polygons[i].distance(hole) == 0] or sorted(members)
                errors.append(
                    FieldError(
                        bordering[0],
                        "geometry",
                        f"village {village_id} has a gap of about {area:.0f} m² inside its outline, near "
                        f"({point.y:.6f}, {point.x:.6f}), covered by no grid",
                    )
                )


def _check_known(props: dict[int, dict[str, Any]], known: set[str], errors: list[FieldError]) -> None:
    """Each unknown village once, at its first grid; a village is known by its id or its exact name."""
    seen: set[str] = set()
    for i in sorted(props):
        p = props[i]
        if p["village_id"] in seen or p["village_id"] in known or p["village"] in known:
            continue
        seen.add(p["village_id"])
        errors.append(
            FieldError(
                i,
                "properties.village_id",
                f"unknown village {p['village_id']} {p['village']}: not in the county's official village list",
            )
        )
