"""Grid registry: import validation (every problem, with feature index and field) and lookups."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from services.routing.domain import FieldError, GridRegistry, RegistryInvalid
from services.routing.domain.names import cn_number
from services.routing.domain.validation import validate

from .routing_county import COUNTY, box, feature, latlon, ring


def errors_of(fc: Any, known: set[str] | None = None) -> set[tuple[int | None, str]]:
    with pytest.raises(RegistryInvalid) as raised:
        GridRegistry.from_geojson(fc, known_villages=known)
    return {(e.index, e.field) for e in raised.value.errors}


def test_the_fixture_county_is_valid() -> None:
    errors, grids = validate(copy.deepcopy(COUNTY))
    assert errors == []
    assert len(grids) == len(COUNTY["features"])


# --- validation: one problem at a time -----------------------------------------------------------------


def _index(fc: dict[str, Any], grid_id: str) -> int:
    return next(i for i, f in enumerate(fc["features"]) if f["properties"]["grid_id"] == grid_id)


def _set_geometry(fc: dict[str, Any], grid_id: str, geometry: Any) -> int:
    i = _index(fc, grid_id)
    fc["features"][i]["geometry"] = geometry
    return i


def _polygon(*rings: list[list[float]]) -> dict[str, Any]:
    return {"type": "Polygon", "coordinates": list(rings)}


def test_overlap_is_reported_at_the_later_feature(county_fc: dict[str, Any]) -> None:
    i = _set_geometry(county_fc, "T01V01G002", _polygon(box(0.5, 0, 1.5, 1)))
    assert errors_of(county_fc) == {(i, "geometry")}


def test_overlap_message_names_the_other_grid(county_fc: dict[str, Any]) -> None:
    _set_geometry(county_fc, "T01V01G002", _polygon(box(0.5, 0, 1.5, 1)))
    errors, _ = validate(county_fc)
    assert "overlaps feature 0 (T01V01G001)" in errors[0].message


def test_a_grid_contained_in_another_is_an_overlap(county_fc: dict[str, Any]) -> None:
    county_fc["features"].append(feature("T04V01G001", box(0.25, 0.25, 0.75, 0.75)))
    assert errors_of(county_fc) == {(len(county_fc["features"]) - 1, "geometry")}


def test_shared_edges_and_vertices_are_not_overlaps(county_fc: dict[str, Any]) -> None:
    # the fixture is full of them; a grid touching only at a corner adds one more
    county_fc["features"].append(feature("T04V01G001", box(-1, -1, 0, 0)))
    GridRegistry.from_geojson(county_fc)


def test_gap_inside_a_grid_is_a_village_hole(county_fc: dict[str, Any]) -> None:
    # without the enclave 河心村, the hole of 河口村's grid is covered by nobody
    county_fc["features"].pop(_index(county_fc, "T02V04G001"))
    i = _index(county_fc, "T02V03G001")
    assert errors_of(county_fc) == {(i, "geometry")}
    errors, _ = validate(county_fc)
    assert "village T02V03 has a gap" in errors[0].message


def test_gap_enclosed_by_several_grids_is_a_village_hole(county_fc: dict[str, Any]) -> None:
    # eight grids of 北岭村 around an empty square [11, 12] × [1, 2], away from the rest of the county
    cells = [(x, y) for x in (10, 11, 12) for y in (0, 1, 2) if (x, y) != (11, 1)]
    first = len(county_fc["features"])
    for n, (x, y) in enumerate(cells, start=1):
        county_fc["features"].append(feature(f"T04V01G{n:03d}", box(x, y, x + 1, y + 1)))
    assert errors_of(county_fc) == {(first, "geometry")}


def test_gap_between_villages_is_not_a_village_hole(county_fc: dict[str, Any]) -> None:
    # the reservoir between 东山村 and 西山村 is in neither village's outline: the fixture builds
    GridRegistry.from_geojson(county_fc)


def test_enclave_filling_a_hole_is_not_a_gap(registry: GridRegistry) -> None:
    assert registry.grid("T02V04G001") is not None


@pytest.mark.parametrize(
    ("geometry", "field"),
    [
        pytest.param(None, "geometry", id="missing"),
        pytest.param([1, 2], "geometry", id="not-an-object"),
        pytest.param({"type": "MultiPolygon", "coordinates": [[box(0, 0, 1, 1)]]}, "geometry.type", id="multipolygon"),
        pytest.param({"type": "Point", "coordinates": [120.0, 36.25]}, "geometry.type", id="point"),
        pytest.param(_polygon(box(0, 0, 1, 1)[:-1]), "geometry.coordinates[0]", id="unclosed"),
        pytest.param(_polygon(box(0, 0, 1, 1)[:2] + box(0, 0, 1, 1)[:1]), "geometry.coordinates[0]", id="too-few"),
        pytest.param(_polygon(ring((0, 0), (1, 1), (1, 0), (0, 1))), "geometry", id="self-intersecting"),
        pytest.param(_polygon(box(0, 0, 1, 1), box(2, 2, 3, 3)), "geometry", id="hole-outside-shell"),
        pytest.param(
            _polygon([[lat, lon] for lon, lat in box(0, 0, 1, 1)]), "geometry.coordinates[0][0]", id="lat-lon-swapped"
        ),
        pytest.param(_polygon([["120", "36.25"], *box(0, 0, 1, 1)[1:]]), "geometry.coordinates[0][0]", id="strings"),
        pytest.param({"type": "Polygon", "coordinates": []}, "geometry.coordinates", id="no-rings"),
    ],
)
def test_bad_geometry(county_fc: dict[str, Any], geometry: Any, field: str) -> None:
    i = _set_geometry(county_fc, "T01V01G001", geometry)
    # the grid is left out of the overlap and hole checks, so this is the only error
    assert errors_of(county_fc) == {(i, field)}


def test_self_intersection_message_says_where(county_fc: dict[str, Any]) -> None:
    _set_geometry(county_fc, "T01V01G001", _polygon(ring((0, 0), (1, 1), (1, 0), (0, 1))))
    errors, _ = validate(county_fc)
    assert "Self-intersection" in errors[0].message


def test_duplicate_grid_id(county_fc: dict[str, Any]) -> None:
    county_fc["features"].append(feature("T01V01G001", box(-1, 0, 0, 1)))
    assert errors_of(county_fc) == {(len(county_fc["features"]) - 1, "properties.grid_id")}


def _drop(path: str):
    def mutate(props: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for key in parents:
            props = props[key]
        del props[last]

    return mutate


def _set(path: str, value: Any):
    def mutate(props: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for key in parents:
            props = props[key]
        props[last] = value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "fields"),
    [
        pytest.param(_drop("leader"), {"properties.leader"}, id="no-leader"),
        pytest.param(_drop("leader.staff_id"), {"properties.leader.staff_id"}, id="leader-without-id"),
        pytest.param(_set("cadre.name", " "), {"properties.cadre.name"}, id="blank-cadre-name"),
        pytest.param(_drop("grid_name"), {"properties.grid_name"}, id="no-grid-name"),
        pytest.param(_drop("village"), {"properties.village"}, id="no-village"),
        pytest.param(_set("households", "forty"), {"properties.households"}, id="households-text"),
        pytest.param(_set("population", -1), {"properties.population"}, id="negative-population"),
        pytest.param(_set("households", True), {"properties.households"}, id="households-bool"),
        pytest.param(_set("helpers", "张*"), {"properties.helpers"}, id="helpers-not-list"),
        pytest.param(_set("helpers", [{"name": "张*"}]), {"properties.helpers[0].staff_id"}, id="helper-no-id"),
        pytest.param(_set("village_aliases", [""]), {"properties.village_aliases"}, id="blank-alias"),
        pytest.param(
            _set("town_id", "T02"), {"properties.town_id", "properties.village_id", "properties.town"}, id="other-town"
        ),
        pytest.param(_set("village", "小王庄新村"), {"properties.village"}, id="other-village-name"),
        pytest.param(_set("grid_id", "T01V02G009"), {"properties.grid_id"}, id="grid-id-of-other-village"),
    ],
)
def test_bad_properties(county_fc: dict[str, Any], mutate, fields: set[str]) -> None:
    i = _index(county_fc, "T01V01G002")
    mutate(county_fc["features"][i]["properties"])
    assert errors_of(county_fc) == {(i, f) for f in fields}


def test_missing_properties_object(county_fc: dict[str, Any]) -> None:
    del county_fc["features"][3]["properties"]
    assert errors_of(county_fc) == {(3, "properties")}


def test_optional_lists_may_be_absent(county_fc: dict[str, Any]) -> None:
    for f in county_fc["features"]:
        del f["properties"]["helpers"], f["properties"]["village_aliases"]
    assert GridRegistry.from_geojson(county_fc).grid("T01V01G001").helpers == ()


def test_unknown_village_reported_once_at_its_first_grid(county_fc: dict[str, Any]) -> None:
    known = {f["properties"]["village_id"] for f in county_fc["features"]} - {"T01V01"}
    assert errors_of(county_fc, known) == {(0, "properties.village_id")}


def test_known_villages_may_be_given_by_name(county_fc: dict[str, Any]) -> None:
    known = {f["properties"]["village"] for f in county_fc["features"]}
    GridRegistry.from_geojson(county_fc, known_villages=known)


@pytest.mark.parametrize(
    ("fc", "field"),
    [
        pytest.param([], "type", id="list"),
        pytest.param({"type": "Feature"}, "type", id="feature"),
        pytest.param({"type": "FeatureCollection", "features": []}, "features", id="empty"),
        pytest.param({"type": "FeatureCollection"}, "features", id="no-features"),
    ],
)
def test_not_a_feature_collection(fc: Any, field: str) -> None:
    assert errors_of(fc) == {(None, field)}


def test_a_non_feature_entry(county_fc: dict[str, Any]) -> None:
    county_fc["features"][2] = {"type": "Polygon", "coordinates": []}
    assert errors_of(county_fc) == {(2, "type")}


def test_all_problems_are_reported_at_once_and_nothing_is_built(county_fc: dict[str, Any]) -> None:
    features = county_fc["features"]
    features[0]["geometry"]["coordinates"][0].pop()  # unclosed
    del features[1]["properties"]["leader"]
    features[5]["properties"]["grid_id"] = "T01V02G001"  # duplicate of feature 4
    features.append(feature("T04V01G001", box(7.5, 1.5, 8.5, 2.5)))  # overlaps 河口村 and 河心村
    with pytest.raises(RegistryInvalid) as raised:
        GridRegistry.from_geojson(county_fc, known_villages={"T01V01", "T01V02", "T01V03", "T02V01", "T02V02"})
    errors = raised.value.errors
    assert [(e.index, e.field) for e in errors] == [
        (0, "geometry.coordinates[0]"),
        (1, "properties.leader"),
        (5, "properties.grid_id"),
        (9, "properties.village_id"),  # T02V03 unknown
        (10, "properties.village_id"),  # T02V04 unknown
        (11, "properties.village_id"),  # T03V01 unknown
        (12, "geometry"),  # overlaps feature 9
        (12, "geometry"),  # overlaps feature 10
        (12, "properties.village_id"),  # T04V01 unknown
    ]
    fields = raised.value.fields()
    assert "features[12].geometry" in fields and "feature 9" in fields["features[12].geometry"]
    assert all(isinstance(e, FieldError) and e.message for e in errors)


# --- lookups -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "y", "expected"),
    [
        pytest.param(0.5, 0.5, ["T01V01G001"], id="interior"),
        pytest.param(1, 0.5, ["T01V01G001", "T01V01G002"], id="shared-edge"),
        pytest.param(1, 1, ["T01V01G001", "T01V01G002", "T01V01G003", "T01V01G004"], id="shared-vertex-of-four"),
        pytest.param(2.5, 1, ["T01V02G001", "T01V02G002"], id="shared-diagonal-edge"),
        pytest.param(2.75, 1, ["T01V02G001"], id="right-of-diagonal"),
        pytest.param(2.25, 1, ["T01V02G002"], id="left-of-diagonal"),
        pytest.param(0, 0, ["T01V01G001"], id="county-corner"),
        pytest.param(4.5, 1.5, [], id="reservoir"),
        pytest.param(7, 1.5, ["T02V03G001", "T02V04G001"], id="enclave-border"),
        pytest.param(-0.001, 0.5, [], id="just-outside"),
    ],
)
def test_grids_at(registry: GridRegistry, x: float, y: float, expected: list[str]) -> None:
    assert [g.grid_id for g in registry.grids_at(*latlon(x, y))] == expected
    located = registry.locate(*latlon(x, y))
    assert (located.grid_id if located else None) == (expected[0] if expected else None)


@pytest.mark.parametrize(
    ("lat", "lon"), [(float("nan"), 120.0), (36.25, float("inf")), (True, 120.0), (91.0, 120.0), (36.25, 200.0)]
)
def test_locate_nonsense_points(registry: GridRegistry, lat: float, lon: float) -> None:
    assert registry.locate(lat, lon) is None


def test_edge_rule_does_not_depend_on_feature_order(county_fc: dict[str, Any]) -> None:
    county_fc["features"].reverse()
    reversed_registry = GridRegistry.from_geojson(county_fc)
    assert reversed_registry.locate(*latlon(1, 1)).grid_id == "T01V01G001"
    assert reversed_registry.locate(*latlon(2.5, 1)).grid_id == "T01V02G001"


def test_grid_and_village(registry: GridRegistry) -> None:
    grid = registry.grid("T01V01G003")
    assert grid is not None and grid.leader.staff_id == "LT01V01G003" and grid.number == 3
    assert registry.grid("T99V99G999") is None
    village = registry.village("T01V01")
    assert village is not None and village.grid_ids[0] == "T01V01G001" and village.aliases == ("大王庄",)
    feature_out = grid.to_feature()
    assert feature_out["properties"]["grid_id"] == "T01V01G003" and feature_out["geometry"]["type"] == "Polygon"


@pytest.mark.parametrize(
    ("text", "town", "village_id"),
    [
        pytest.param("大王庄新村", None, "T01V01", id="exact"),
        pytest.param("大王庄村", None, "T01V01", id="cun-for-xincun"),
        pytest.param("大王庄", None, "T01V01", id="no-suffix"),
        pytest.param("大旺庄新村", None, "T01V01", id="homophone"),
        pytest.param("小旺庄", None, "T01V02", id="homophone-no-suffix"),
        pytest.param(" 大王庄  新村 ", None, "T01V01", id="spaces"),
        pytest.param("大王庄新村\u3000", None, "T01V01", id="ideographic-space"),
        pytest.param("（大王庄新村）", None, "T01V01", id="full-width-brackets"),
        pytest.param("大王庄村委会", None, "T01V01", id="committee-suffix"),
        pytest.param("王台镇大王庄新村", None, "T01V01", id="town-prefix"),
        pytest.param("幸福社区", None, "T01V03", id="full-name-separates-equal-cores"),
        pytest.param("幸福", "三里镇", "T03V01", id="town-hint"),
        pytest.param("幸福", "三里", "T03V01", id="town-hint-without-suffix"),
        pytest.param("河心", "王台镇", "T02V04", id="wrong-town-hint-falls-back-to-county"),
        pytest.param("王庄", None, None, id="ambiguous-missing-character"),
        pytest.param("幸福", None, None, id="ambiguous-same-core-in-two-towns"),
        pytest.param("山村", None, None, id="ambiguous-east-west"),
        pytest.param("张家湾", None, None, id="unknown"),
        pytest.param("  ", None, None, id="blank"),
    ],
)
def test_village_by_name(registry: GridRegistry, text: str, town: str | None, village_id: str | None) -> None:
    match = registry.village_by_name(text, town)
    assert (match.village.village_id if match else None) == village_id


def test_village_by_name_returns_the_score(registry: GridRegistry) -> None:
    village, score = registry.village_by_name("大旺庄新村")
    assert village.name == "大王庄新村" and 66 < score < 67
    found = registry.match_village("王庄")
    assert found.outcome == "ambiguous" and found.best.score == found.runner_up.score == 80


@pytest.mark.parametrize(
    ("address", "grid_id"),
    [
        pytest.param("大王庄新村第3网格5号", "T01V01G003", id="number"),
        pytest.param("第３网格", "T01V01G003", id="full-width-digit"),
        pytest.param("三号网格东头", "T01V01G003", id="chinese-numeral"),
        pytest.param("12号楼 第 4 网格", "T01V01G004", id="number-after-other-numbers"),
        pytest.param("大王庄新村第2网格", "T01V01G002", id="grid-name"),
        pytest.param("第9网格", "T01V01G001", id="no-such-grid-default"),
        pytest.param("村东头老槐树下", "T01V01G001", id="no-grid-default"),
        pytest.param("", "T01V01G001", id="empty-default"),
        pytest.param(None, "T01V01G001", id="none-default"),
    ],
)
def test_grid_for_address(registry: GridRegistry, address: str | None, grid_id: str) -> None:
    village = registry.village("T01V01")
    assert registry.grid_for_address(village, address).grid_id == grid_id


def test_summary(registry: GridRegistry) -> None:
    summary = registry.to_summary()
    assert (summary["towns"], summary["villages"], summary["grids"]) == (3, 8, 12)
    assert summary["grids_by_town"] == {"T01": 7, "T02": 4, "T03": 1}
    assert summary["bbox"]["min_lon"] == 120.0 and summary["bbox"]["max_lat"] == 36.25 + 4 / 128


def test_every_geometry_broken_reports_each_and_does_not_crash(county_fc: dict[str, Any]) -> None:
    for f in county_fc["features"]:
        f["geometry"] = None
    assert errors_of(county_fc) == {(i, "geometry") for i in range(len(county_fc["features"]))}


def test_a_single_grid_county(county_fc: dict[str, Any]) -> None:
    county_fc["features"] = county_fc["features"][:1]
    assert GridRegistry.from_geojson(county_fc).locate(*latlon(0.5, 0.5)).grid_id == "T01V01G001"


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("3", 3),
        ("三", 3),
        ("十", 10),
        ("十二", 12),
        ("二十", 20),
        ("二十三", 23),
        ("两", 2),
        ("一二", 12),
        ("十十", None),
    ],
)
def test_chinese_grid_numbers(text: str, number: int | None) -> None:
    assert cn_number(text) == number
