"""The routing decision: a table of locations → route kind, grid and reason; departments; triage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.routing.bootstrap import load_departments
from services.routing.domain import (
    DISPATCH_CENTRE,
    GridRegistry,
    RouteDecision,
    department_for,
    route,
)

from .routing_county import latlon


def here(x: float, y: float) -> dict[str, float]:
    lat, lon = latlon(x, y)
    return {"lat": lat, "lon": lon}


# (location, route kind, grid_id, fragments the reason must contain)
TABLE: list[Any] = [
    # (1) explicit grid id
    pytest.param({"grid_id": "T01V01G003"}, "grid_id", "T01V01G003", ["explicit grid_id T01V01G003"], id="grid-id"),
    pytest.param(
        {"grid_id": "T01V01G003", **here(0.5, 0.5), "village": "小王庄新村"},
        "grid_id",
        "T01V01G003",
        [],
        id="grid-id-beats-point-and-village",
    ),
    pytest.param(
        {"grid_id": "T09V09G999", **here(1.5, 0.5)},
        "point",
        "T01V01G002",
        ["grid_id 'T09V09G999' is not in the registry", "lies in grid T01V01G002"],
        id="unknown-grid-id-falls-to-point",
    ),
    pytest.param(
        {"grid_id": 17, "village": "大王庄新村"}, "village", "T01V01G001", ["grid_id 17 is not"], id="grid-id-not-text"
    ),
    pytest.param({"grid_id": ""}, "triage", None, ["no grid_id, point or village name given"], id="empty-grid-id"),
    pytest.param({"grid_id": " T01V01G002 "}, "grid_id", "T01V01G002", [], id="grid-id-with-spaces"),
    pytest.param(
        {"grid_id": "t01v01g001"}, "triage", None, ["'t01v01g001' is not in the registry"], id="grid-id-wrong-case"
    ),
    # (2) point in polygon, borders decided by the smallest grid_id
    pytest.param(here(0.5, 0.5), "point", "T01V01G001", ["lies in grid T01V01G001"], id="point-interior"),
    pytest.param(
        here(1, 0.5),
        "point",
        "T01V01G001",
        ["shared border of T01V01G001, T01V01G002", "smallest grid_id T01V01G001 wins"],
        id="point-on-shared-edge",
    ),
    pytest.param(here(1, 1), "point", "T01V01G001", ["T01V01G003, T01V01G004"], id="point-on-vertex-of-four"),
    pytest.param(here(1.5, 1), "point", "T01V01G002", [], id="point-on-edge-above-g002"),
    pytest.param(here(2.5, 1), "point", "T01V02G001", ["T01V02G001, T01V02G002"], id="point-on-diagonal-edge"),
    pytest.param(here(2, 0.5), "point", "T01V01G002", ["T01V01G002, T01V02G002"], id="point-on-village-border"),
    pytest.param(here(3, 2.5), "point", "T01V03G001", ["T01V03G001, T02V01G001"], id="point-on-town-border"),
    pytest.param(here(3, 0), "point", "T01V02G001", [], id="point-on-vertex-of-three"),
    pytest.param(here(0, 0.5), "point", "T01V01G001", [], id="point-on-county-border"),
    pytest.param(here(7.5, 1.5), "point", "T02V04G001", [], id="point-in-enclave"),
    pytest.param(here(7, 1.5), "point", "T02V03G001", ["T02V03G001, T02V04G001"], id="point-on-enclave-border"),
    pytest.param(
        {**here(0.5, 0.5), "village": "西山村"}, "point", "T01V01G001", [], id="point-beats-contradicting-village"
    ),
    pytest.param(
        here(-1, 0.5), "triage", None, ["lies outside every grid", "triage"], id="point-outside-county-to-triage"
    ),
    pytest.param(
        {**here(0.5, 10), "village": "大王庄新村"},
        "village",
        "T01V01G001",
        ["lies outside every grid", "matched 大王庄新村"],
        id="point-outside-falls-to-village",
    ),
    pytest.param(
        {**here(4.5, 1.5), "village": "东山村", "address": "水库边"},
        "village",
        "T02V01G001",
        ["lies outside every grid"],
        id="point-in-reservoir-hole-falls-to-village",
    ),
    pytest.param(here(4.5, 1.5), "triage", None, ["outside every grid"], id="point-in-reservoir-hole-to-triage"),
    pytest.param({"lat": 36.25}, "triage", None, ["lat/lon incomplete"], id="lat-without-lon"),
    pytest.param({"lat": "36.25", "lon": "120.0"}, "triage", None, ["not numbers"], id="lat-lon-as-text"),
    pytest.param({"lat": float("nan"), "lon": 120.0}, "triage", None, ["lat/lon"], id="lat-nan"),
    pytest.param({"lat": None, "lon": None}, "triage", None, ["no grid_id, point"], id="lat-lon-null"),
    # (3) village name (fuzzy) and address
    pytest.param(
        {"village": "大王庄新村", "address": "第3网格"},
        "village",
        "T01V01G003",
        ["matched 大王庄新村 (王台镇, score 100)", "address names grid T01V01G003"],
        id="village-and-grid-number",
    ),
    pytest.param(
        {"village": "大王庄新村", "address": "村东头"},
        "village",
        "T01V01G001",
        ["the address names no grid", "default grid T01V01G001"],
        id="village-default-grid",
    ),
    pytest.param(
        {"village": "大王庄新村", "address": "第9网格"},
        "village",
        "T01V01G001",
        ["the address names grid 9, which the village does not have", "default grid T01V01G001"],
        id="village-no-such-grid-number",
    ),
    pytest.param({"village": "大王庄村", "address": "四号网格"}, "village", "T01V01G004", [], id="cun-for-xincun"),
    pytest.param({"village": "大王庄"}, "village", "T01V01G001", [], id="missing-suffix"),
    pytest.param(
        {"village": "大旺庄新村"},
        "village",
        "T01V01G001",
        ["'大旺庄新村' matched 大王庄新村 (王台镇, score 67)"],
        id="homophone",
    ),
    pytest.param({"village": " 大王庄 新村 "}, "village", "T01V01G001", [], id="extra-spaces"),
    pytest.param({"village": "（大王庄新村）\u3000"}, "village", "T01V01G001", [], id="full-width"),
    pytest.param({"village": "小王庄新村", "address": "第２网格"}, "village", "T01V02G002", [], id="full-width-digit"),
    pytest.param({"town": "三里镇", "village": "幸福"}, "village", "T03V01G001", [], id="town-disambiguates"),
    pytest.param(
        {"village": "王庄"},
        "triage",
        None,
        ["'王庄' is ambiguous: 大王庄新村 (王台镇, 80) vs 小王庄新村 (王台镇, 80)"],
        id="ambiguous-village",
    ),
    pytest.param({"village": "幸福"}, "triage", None, ["ambiguous"], id="ambiguous-across-towns"),
    pytest.param({"village": "山村"}, "triage", None, ["ambiguous"], id="ambiguous-east-west"),
    pytest.param({"village": "锦福花园"}, "triage", None, ["matched no village"], id="unknown-village"),
    pytest.param({"village": "   "}, "triage", None, ["no grid_id, point or village name given"], id="blank-village"),
    # (4) nothing usable
    pytest.param({}, "triage", None, ["no grid_id, point or village name given"], id="empty-location"),
    pytest.param(
        {"grid_id": "T09V09G999", **here(-1, -1), "village": "王庄"},
        "triage",
        None,
        ["not in the registry", "outside every grid", "ambiguous", "sent to the county dispatch centre"],
        id="every-rule-fails",
    ),
]


@pytest.mark.parametrize(("location", "kind", "grid_id", "fragments"), TABLE)
def test_routing_table(
    registry: GridRegistry,
    departments: dict[str, str],
    location: dict[str, Any],
    kind: str,
    grid_id: str | None,
    fragments: list[str],
) -> None:
    decision = route({"category": "drainage", "location": location}, registry, departments)
    assert (decision.route, decision.grid_id) == (kind, grid_id), decision.reason
    for fragment in fragments:
        assert fragment in decision.reason
    if kind == "triage":
        assert decision.assignee.to_dict() == {"staff_id": "S000001", "role": "county_dispatcher"}
        assert decision.village is None
    else:
        grid = registry.grid(grid_id)
        assert decision.assignee.to_dict() == {"staff_id": grid.leader.staff_id, "role": "grid_leader"}
        assert (decision.village, decision.town) == (grid.village, grid.town)
        assert (decision.village_id, decision.town_id) == (grid.village_id, grid.town_id)
    assert decision.department == "county_housing_bureau"


def test_decision_fields_for_the_assigned_event(registry: GridRegistry, departments: dict[str, str]) -> None:
    decision = route({"category": "roads", "location": here(0.5, 1.5)}, registry, departments)
    assert decision == RouteDecision(
        grid_id="T01V01G003",
        village="大王庄新村",
        town="王台镇",
        department="county_transport_bureau",
        assignee=decision.assignee,
        village_id="T01V01",
        town_id="T01",
        route="point",
        reason=decision.reason,
    )
    assert decision.event_fields() == {
        "grid_id": "T01V01G003",
        "village": "大王庄新村",
        "town": "王台镇",
        "department": "county_transport_bureau",
        "assignee": {"staff_id": "LT01V01G003", "role": "grid_leader"},
    }
    # 36.26171875, 120.00390625 shown to six decimals (about 0.1 m)
    assert decision.reason == "point (36.261719, 120.003906) lies in grid T01V01G003"


def test_triage_keeps_a_recognised_town(registry: GridRegistry, departments: dict[str, str]) -> None:
    decision = route({"category": "roads", "location": {"town": "柳河", "village": "锦福村"}}, registry, departments)
    assert (decision.route, decision.town, decision.town_id) == ("triage", "柳河镇", "T02")


def test_triage_drops_an_unknown_town(registry: GridRegistry, departments: dict[str, str]) -> None:
    decision = route({"category": "roads", "location": {"town": "火星镇"}}, registry, departments)
    assert (decision.route, decision.town, decision.town_id) == ("triage", None, None)


def test_configured_dispatcher(registry: GridRegistry, departments: dict[str, str]) -> None:
    decision = route({"category": "roads", "location": {}}, registry, departments, dispatcher_id="S000042")
    assert decision.assignee.staff_id == "S000042"


@pytest.mark.parametrize("location", [None, "王台镇", 5, {"town": 5, "village": 7, "address": 9}])
def test_missing_or_malformed_location(registry: GridRegistry, departments: dict[str, str], location: object) -> None:
    petition = {"category": "roads"} if location is None else {"category": "roads", "location": location}
    assert route(petition, registry, departments).route == "triage"


def test_no_registry_yet(departments: dict[str, str]) -> None:
    decision = route({"category": "roads", "location": {"grid_id": "T01V01G001"}}, None, departments)
    assert decision.route == "triage" and "no grid registry has been imported" in decision.reason


# --- departments -------------------------------------------------------------------------------------


def test_load_departments_reads_the_category_file(departments: dict[str, str]) -> None:
    assert departments["drainage"] == "county_housing_bureau"
    assert departments["neighbour_dispute"] == "town_mediation_office"
    assert departments["other"] == DISPATCH_CENTRE
    assert len(departments) == 14


@pytest.mark.parametrize(
    ("category", "department"),
    [
        ("environment", "county_ecology_bureau"),
        ("ufo_sighting", DISPATCH_CENTRE),
        (None, DISPATCH_CENTRE),
        (3, DISPATCH_CENTRE),
    ],
)
def test_department_for(departments: dict[str, str], category: object, department: str) -> None:
    assert department_for(category, departments) == department


def test_unknown_category_routes_to_the_dispatch_centre(registry: GridRegistry, departments: dict[str, str]) -> None:
    decision = route({"category": "ufo", "location": {"grid_id": "T01V01G001"}}, registry, departments)
    assert (decision.route, decision.department) == ("grid_id", DISPATCH_CENTRE)


@pytest.mark.parametrize(
    "text",
    ["[]", "categories: {}", "categories: {roads: {name: 道路}}", "categories: {roads: {department: ''}}"],
)
def test_load_departments_rejects_malformed_files(tmp_path: Path, text: str) -> None:
    path = tmp_path / "categories.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match="categories"):
        load_departments(path)
