"""Synthetic petitions: intake bodies, the ground truth behind them, mixes, timing and hotspots."""

import re
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
import shapely
from shapely.geometry import Point

from countysim import (
    CHANNEL_MIX,
    LOCATION_MIX,
    generate_petitions,
    load_category_shares,
    plant_hotspot,
    templates,
)
from countysim import names as names_mod
from petition_kernel.times import BEIJING

START = datetime(2024, 7, 1, tzinfo=UTC)
N = 4000
MOBILE = re.compile(r"1[3-9]\d{9}")
LANDLINE = re.compile(r"0532-8\d{7}")


@pytest.fixture(scope="module")
def petitions(county):
    return generate_petitions(county, N, seed=7, start=START, days=14)


@pytest.fixture(scope="module")
def village_of_name(county) -> dict[str, str]:
    """Every spelling routing should accept → village_id."""
    return {spelling: v.village_id for v in county.villages for spelling in (v.name, *v.aliases)}


def by_route(petitions, route):
    return [p for p in petitions if p.truth.route == route]


def test_category_shares_load_from_config():
    shares = load_category_shares()
    assert len(shares) == 14 and "drainage" in shares
    assert sum(shares.values()) == pytest.approx(1.0)


def test_every_category_has_at_least_five_templates_that_format():
    for code in load_category_shares():
        assert len(templates.TEMPLATES[code]) >= 5
    fillers = {"place": "某地", "days": "", "time": "", "neighbour": "", "elder": "", "child": "", "road": ""}
    for template in [t for ts in templates.TEMPLATES.values() for t in ts] + list(templates.GENERIC):
        template.format_map(fillers)


def test_bodies_have_exactly_the_intake_shape(petitions, county):
    categories = set(load_category_shares())
    towns = {t.name for t in county.towns}
    for p in petitions:
        body = p.body
        assert set(body) == {"channel", "category", "content", "location", "citizen"}
        assert body["channel"] in CHANNEL_MIX and body["category"] in categories
        assert 10 <= len(body["content"]) <= 300
        assert set(body["location"]) <= {"town", "village", "grid_id", "address", "lat", "lon"}
        assert body["location"]["town"] in towns and isinstance(body["location"]["village"], str)
        assert set(body["citizen"]) == {"name", "phone"} and body["citizen"]["name"]
        phone = body["citizen"]["phone"]
        assert MOBILE.fullmatch(phone) or (body["channel"] == "hotline" and LANDLINE.fullmatch(phone))
    contents = Counter(p.body["content"] for p in petitions)
    assert len(contents) > N * 0.8  # varied, not a handful of fixed texts
    assert max(len(c) for c in contents) > 150


def test_some_hotline_callers_give_a_landline(petitions):
    hotline = [p.body["citizen"]["phone"] for p in petitions if p.body["channel"] == "hotline"]
    landlines = sum(bool(LANDLINE.fullmatch(phone)) for phone in hotline)
    assert 0.05 < landlines / len(hotline) < 0.3


def test_mixes_match_their_shares(petitions):
    def assert_mix(observed: Counter, shares: dict) -> None:
        total = sum(shares.values())
        for key, share in shares.items():
            assert abs(observed[key] - N * share / total) <= 1, key

    assert_mix(Counter(p.truth.route for p in petitions), dict(LOCATION_MIX))
    assert_mix(Counter(p.body["channel"] for p in petitions), dict(CHANNEL_MIX))
    assert_mix(Counter(p.body["category"] for p in petitions), load_category_shares())


def test_grid_id_route_names_the_truth_grid(petitions, county):
    for p in by_route(petitions, "grid_id"):
        location, grid = p.body["location"], county.grids_by_id[p.truth.grid_id]
        assert location["grid_id"] == grid.grid_id
        assert location["village"] == county.villages_by_id[grid.village_id].name
        assert "lat" not in location and "lon" not in location


def test_point_route_lies_inside_the_truth_grid_only(petitions, county):
    points = by_route(petitions, "point")
    polygons = np.array([g.polygon for g in county.grids])
    xy = np.array([(p.body["location"]["lon"], p.body["location"]["lat"]) for p in points])
    point_idx, grid_idx = shapely.STRtree(polygons).query(shapely.points(xy), predicate="intersects")
    assert list(point_idx) == list(range(len(points)))  # each point in exactly one grid
    for p, g in zip(points, grid_idx, strict=True):
        grid = county.grids[g]
        assert grid.grid_id == p.truth.grid_id and "grid_id" not in p.body["location"]
        lon, lat = p.body["location"]["lon"], p.body["location"]["lat"]
        assert grid.polygon.exterior.distance(Point(lon, lat)) > 0
        assert p.body["location"]["village"] in ("", county.villages_by_id[grid.village_id].name)


def test_village_route_gives_a_resolvable_spelling_and_an_address(petitions, county, village_of_name):
    spelled = Counter()
    for p in by_route(petitions, "village"):
        location = p.body["location"]
        assert set(location) == {"town", "village", "address"} and location["address"]
        assert village_of_name[location["village"]] == county.grids_by_id[p.truth.grid_id].village_id
        spelled[location["village"].endswith("新村")] += 1
    assert spelled[False] > 0 and spelled[True] > 0


def test_triage_route_names_nothing_that_exists(petitions, county, village_of_name):
    triage = by_route(petitions, "triage")
    for p in triage:
        location, grid = p.body["location"], county.grids_by_id[p.truth.grid_id]
        assert set(location) <= {"town", "village", "address"}
        assert location["village"] not in village_of_name
        assert location["town"] == county.towns_by_id[grid.town_id].name
        assert county.villages_by_id[grid.village_id].name not in p.body["content"]
    assert {p.body["location"]["village"] == "" for p in triage} == {True, False}


def test_unknown_place_names_share_no_character_with_real_villages(village_of_name):
    real_chars = {c for spelling in village_of_name for c in spelling.removesuffix("新村").removesuffix("村")}
    assert not real_chars & set(names_mod.unknown_place_chars())


def test_times_are_utc_in_the_window_sorted_with_a_daily_rhythm(petitions):
    times = [p.truth.submitted_at for p in petitions]
    assert all(t.tzinfo is not None and t.utcoffset() == timedelta(0) for t in times)
    assert times == sorted(times)
    assert times[0] >= START and times[-1] < START + timedelta(days=14)
    local_hours = Counter(t.astimezone(BEIJING).hour for t in times)
    office = sum(local_hours[h] for h in range(9, 12))
    night = sum(local_hours[h] for h in range(1, 4))
    assert office > 10 * night > 0


def test_same_seed_same_petitions_other_seed_other_petitions(county, petitions):
    again = generate_petitions(county, N, seed=7, start=START, days=14)
    assert [(p.body, p.truth, p.idempotency_key) for p in again] == [
        (p.body, p.truth, p.idempotency_key) for p in petitions
    ]
    other = generate_petitions(county, N, seed=8, start=START, days=14)
    assert [p.body for p in other] != [p.body for p in petitions]
    assert len({p.idempotency_key for p in petitions + other}) == 2 * N


def test_start_in_another_timezone_is_converted_to_utc(county):
    start = datetime(2024, 7, 1, 8, tzinfo=timezone(timedelta(hours=8)))
    petitions = generate_petitions(county, 50, seed=1, start=start, days=0.5)
    assert all(p.truth.submitted_at.tzinfo is UTC for p in petitions)
    assert all(start <= p.truth.submitted_at < start + timedelta(hours=12) for p in petitions)


def test_bad_arguments_are_rejected(county):
    with pytest.raises(ValueError, match="timezone-aware"):
        generate_petitions(county, 10, seed=1, start=datetime(2024, 7, 1), days=1)
    with pytest.raises(ValueError):
        generate_petitions(county, 10, seed=1, start=START, days=0)
    with pytest.raises(ValueError, match="unknown keys"):
        generate_petitions(county, 10, seed=1, start=START, days=1, location_mix={"gps": 1.0})


def test_custom_category_and_location_mix(county):
    petitions = generate_petitions(
        county, 200, seed=3, start=START, days=2,
        categories={"drainage": 3, "roads": 1}, location_mix={"point": 1.0},
    )  # fmt: skip
    assert Counter(p.body["category"] for p in petitions) == {"drainage": 150, "roads": 50}
    assert {p.truth.route for p in petitions} == {"point"}


@pytest.mark.parametrize(("level", "area_id"), [("grid", "T03V02G004"), ("village", "T05V03"), ("town", "T09")])
def test_plant_hotspot_concentrates_in_area_and_window(county, level, area_id):
    start = START + timedelta(days=3)
    planted = plant_hotspot(county, level, area_id, "drainage", 40, start=start, hours=6, seed=11)
    assert len(planted) == 40
    area = {g.grid_id for g in county.grids_in(level, area_id)}
    for p in planted:
        assert p.truth.grid_id in area and p.body["category"] == "drainage"
        assert start <= p.truth.submitted_at < start + timedelta(hours=6)
        assert p.truth.route in ("grid_id", "point")
        if p.truth.route == "grid_id":
            assert p.body["location"]["grid_id"] == p.truth.grid_id
    again = plant_hotspot(county, level, area_id, "drainage", 40, start=start, hours=6, seed=11)
    assert [p.body for p in again] == [p.body for p in planted]


def test_plant_hotspot_in_unknown_area_fails(county):
    with pytest.raises(KeyError):
        plant_hotspot(county, "village", "T99V99", "drainage", 5, start=START, hours=1, seed=1)
