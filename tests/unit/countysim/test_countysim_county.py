"""The synthetic county: scale, tiling, roster rules, names and the grid registry GeoJSON."""

import json
import re
import time
from collections import Counter

import numpy as np
import pytest
import shapely
from shapely.geometry import LinearRing, box

from countysim import County, generate_county
from countysim import names as names_mod
from countysim.county import COUNTY_BOUNDS
from tests.conftest import COUNTY_SEED

AREA_TOLERANCE = 1e-9  # square degrees; one grid is ~1e-4


def _symdiff_area(a, b) -> float:
    return shapely.symmetric_difference(a, b).area


def test_reference_scale_is_exact(county):
    assert (len(county.towns), len(county.villages), len(county.grids)) == (12, 119, 2635)


def test_ids_are_well_formed_unique_and_nested(county):
    assert [t.town_id for t in county.towns] == [f"T{i:02d}" for i in range(1, 13)]
    assert len({v.village_id for v in county.villages}) == 119
    assert len({g.grid_id for g in county.grids}) == 2635
    for v in county.villages:
        assert re.fullmatch(r"T\d\dV\d\d", v.village_id) and v.village_id.startswith(v.town_id)
    for g in county.grids:
        assert re.fullmatch(r"T\d\dV\d\dG\d{3}", g.grid_id)
        assert g.grid_id.startswith(g.village_id) and g.village_id.startswith(g.town_id)


def test_villages_and_grids_are_spread_unevenly(county):
    villages_per_town = Counter(v.town_id for v in county.villages)
    grids_per_village = Counter(g.village_id for g in county.grids)
    assert len(set(villages_per_town.values())) > 3
    assert max(grids_per_village.values()) > 2 * min(grids_per_village.values())


def test_households_and_population(county):
    assert all(30 <= g.households <= 60 for g in county.grids)
    assert all(2.7 <= g.population / g.households <= 3.5 for g in county.grids)
    assert 420_000 <= sum(g.population for g in county.grids) <= 440_000


def test_polygons_are_valid_and_inside_the_bounding_box(county):
    polygons = [g.polygon for g in county.grids]
    assert shapely.is_valid(polygons).all()
    west, south, east, north = shapely.total_bounds(polygons)
    assert west > 119.8 and east < 120.3 and south > 36.0 and north < 36.5


def test_grids_tile_their_village(county):
    by_village: dict[str, list] = {}
    for g in county.grids:
        by_village.setdefault(g.village_id, []).append(g.polygon)
    for v in county.villages:
        assert _symdiff_area(shapely.union_all(by_village[v.village_id]), v.polygon) < AREA_TOLERANCE
        assert abs(sum(p.area for p in by_village[v.village_id]) - v.polygon.area) < AREA_TOLERANCE


def test_villages_tile_their_town_and_towns_tile_the_county(county):
    for t in county.towns:
        parts = [v.polygon for v in county.villages if v.town_id == t.town_id]
        assert _symdiff_area(shapely.union_all(parts), t.polygon) < AREA_TOLERANCE
        assert abs(sum(p.area for p in parts) - t.polygon.area) < AREA_TOLERANCE
    outline = box(COUNTY_BOUNDS.west, COUNTY_BOUNDS.south, COUNTY_BOUNDS.east, COUNTY_BOUNDS.north)
    assert _symdiff_area(shapely.union_all([t.polygon for t in county.towns]), outline) < AREA_TOLERANCE


@pytest.mark.parametrize("level", ["grids", "villages", "towns"])
def test_no_two_areas_overlap(county, level):
    polygons = np.array([a.polygon for a in getattr(county, level)])
    left, right = shapely.STRtree(polygons).query(polygons, predicate="intersects")
    pairs = left < right
    overlap = shapely.area(shapely.intersection(polygons[left[pairs]], polygons[right[pairs]]))
    assert pairs.sum() > 0 and overlap.max() < 1e-15


def test_same_seed_same_county_other_seed_other_county(county):
    assert generate_county(seed=COUNTY_SEED).to_geojson() == county.to_geojson()
    other = generate_county(seed=COUNTY_SEED + 1).to_geojson()
    assert other != county.to_geojson()
    assert len(other["features"]) == 2635


def test_generation_takes_under_three_seconds():
    t0 = time.perf_counter()
    generate_county(seed=99)
    assert time.perf_counter() - t0 < 3.0


def test_staff_roster_is_one_plus_one_plus_n(county):
    staff = county.staff_by_id
    assert len(staff) == len(county.staff)
    assert len({s.phone for s in county.staff}) == len(county.staff)
    assert all(re.fullmatch(r"S\d{5}", s.staff_id) for s in county.staff)
    assert all(re.fullmatch(r"1[3-9]\d{9}", s.phone) for s in county.staff)
    assert all(re.fullmatch(r"[\u4e00-\u9fff]{2,3}", s.name) for s in county.staff)
    leaders = [g.leader_id for g in county.grids]
    assert len(set(leaders)) == len(leaders)
    helpers = [h for g in county.grids for h in g.helper_ids]
    assert len(set(helpers)) == len(helpers)
    for g in county.grids:
        leader, cadre = staff[g.leader_id], staff[g.cadre_id]
        assert (leader.role, leader.grid_ids, leader.village_id) == ("grid_leader", (g.grid_id,), g.village_id)
        assert cadre.role == "village_cadre" and cadre.village_id == g.village_id and g.grid_id in cadre.grid_ids
        assert 2 <= len(g.helper_ids) <= 6
        assert all(staff[h].role == "helper" and staff[h].grid_ids == (g.grid_id,) for h in g.helper_ids)
    cadres = [s for s in county.staff if s.role == "village_cadre"]
    assert any(len(c.grid_ids) > 1 for c in cadres)
    assert {gid for c in cadres for gid in c.grid_ids} == set(county.grids_by_id)
    supervisors = Counter(s.town_id for s in county.staff if s.role == "town_supervisor")
    assert set(supervisors) == set(county.towns_by_id)
    dispatchers = [s for s in county.staff if s.role == "county_dispatcher"]
    assert len(dispatchers) == 1 and dispatchers[0].town_id is None and dispatchers[0].grid_ids == ()


def test_place_names(county):
    town_names = [t.name for t in county.towns]
    assert town_names[0] == "城关街道" and len(set(town_names)) == 12
    assert all(n.endswith(("镇", "街道")) for n in town_names)
    village_names = [v.name for v in county.villages]
    assert len(set(village_names)) == 119
    assert all(n.endswith("新村") for n in village_names)
    grid = county.grids_by_id["T01V01G003"]
    assert grid.name == f"{county.villages_by_id['T01V01'].name}第3网格"


def test_village_aliases_are_unique_and_never_a_real_name(county):
    names = {v.name for v in county.villages}
    aliases = [a for v in county.villages for a in v.aliases]
    assert len(set(aliases)) == len(aliases)
    assert not names & set(aliases)
    for v in county.villages:
        base = v.name.removesuffix("新村")
        assert v.aliases[:2] == (base, f"{base}村")
        slips = v.aliases[2:]
        assert slips and all(names_mod.sound_key(s) in {names_mod.sound_key(v.name), names_mod.sound_key(base)}
                             for s in slips)  # fmt: skip


def test_every_village_name_character_has_a_homophone():
    pools = names_mod._VILLAGE_DIRECTIONS + names_mod._VILLAGE_FEATURES + names_mod._VILLAGE_NATURE + "家戈"
    assert set(pools) | set(names_mod._SURNAME_CHARS) <= set(names_mod.HOMOPHONES)


def test_geojson_has_one_feature_per_grid_in_the_import_format(county):
    fc = county.to_geojson()
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 2635
    keys = {"grid_id", "grid_name", "village_id", "village", "town_id", "town", "households", "population",
            "leader", "cadre", "helpers", "village_aliases"}  # fmt: skip
    for feature, grid in zip(fc["features"], county.grids, strict=True):
        props = feature["properties"]
        assert feature["type"] == "Feature" and set(props) == keys
        assert props["grid_id"] == grid.grid_id
        assert props["leader"] == {"staff_id": grid.leader_id, "name": county.staff_by_id[grid.leader_id].name}
        assert set(props["cadre"]) == {"staff_id", "name"}
        assert all(set(h) == {"staff_id", "name"} for h in props["helpers"])
        geometry = feature["geometry"]
        assert geometry["type"] == "Polygon" and len(geometry["coordinates"]) == 1
        ring = geometry["coordinates"][0]
        assert ring[0] == ring[-1] and len(ring) >= 5
        assert all(119.8 < lon < 120.3 and 36.0 < lat < 36.5 for lon, lat in ring)
        assert LinearRing(ring).is_ccw


def test_geojson_round_trip(county):
    fc = county.to_geojson()
    restored = County.from_geojson(json.loads(json.dumps(fc, ensure_ascii=False)))
    assert restored.to_geojson() == fc
    assert restored.grids == county.grids
    assert [(t.town_id, t.name) for t in restored.towns] == [(t.town_id, t.name) for t in county.towns]
    for before, after in zip(county.villages, restored.villages, strict=True):
        assert (after.village_id, after.name, after.town_id, after.aliases) == (
            before.village_id, before.name, before.town_id, before.aliases)  # fmt: skip
        assert _symdiff_area(after.polygon, before.polygon) < AREA_TOLERANCE
    for before, after in zip(county.towns, restored.towns, strict=True):
        assert _symdiff_area(after.polygon, before.polygon) < AREA_TOLERANCE
    grid_staff = [s for s in county.staff if s.grid_ids]
    assert [(s.staff_id, s.name, s.role, s.grid_ids) for s in restored.staff] == [
        (s.staff_id, s.name, s.role, s.grid_ids) for s in grid_staff
    ]


def test_from_geojson_rejects_other_documents():
    with pytest.raises(ValueError):
        County.from_geojson({"type": "Feature"})
