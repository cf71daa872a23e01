"""The grid map and the leaders' view without the other services: a `Backends` that answers from the
generated county (routing's registry) and canned stats answers. Scoping, GeoJSON, houses, exports."""

from __future__ import annotations

import io
from typing import Any

import openpyxl
import pytest
from PIL import Image
from shapely.geometry import shape

from countysim import generate_houses
from petition_common.config import Settings
from services.web import mappng
from services.web.app import create_app
from services.web.backends import Answer, Backends
from services.web.geodata import CountyMap
from services.web.sessions import StaffSession


def _counts(accepted: int, closed: int, breached: int = 0, satisfied: int = 0, feedback: int = 0) -> dict[str, Any]:
    return {
        "accepted": accepted,
        "closed": closed,
        "withdrawn": 0,
        "contacted": accepted,
        "replied": closed,
        "feedback": {"count": feedback, "satisfied": satisfied, "basically_satisfied": 0, "dissatisfied": 0},
        "sla": {"breached": breached, "warned": 0},
        "rates": {
            "closure_rate": closed / accepted if accepted else None,
            "contacted_on_time_rate": 0.5,
            "replied_on_time_rate": 0.25,
            "satisfaction_rate": satisfied / feedback if feedback else None,
        },
    }


class CannedBackends(Backends):
    """routing's registry from the county; stats' answers canned; every call recorded."""

    def __init__(self, county: Any):
        super().__init__({s: "http://127.0.0.1:9" for s in ("intake", "routing", "sla", "stats")})
        self.fc = {**county.to_geojson(), "version": 1}
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.hot_grid = county.grids[5].grid_id

    def call(self, service: str, method: str, path: str, **kw: Any) -> Answer:  # type: ignore[override]
        params = kw.get("params") or {}
        self.calls.append((service, path, params))
        if path == "/v1/grids":
            if (kw.get("headers") or {}).get("If-None-Match") == '"registry-1"':
                return Answer(304, {})
            return Answer(200, self.fc)
        if params.get("from") == "bad":
            return Answer(400, {"error": {"fields": {"from": "must be a date (YYYY-MM-DD)"}}})
        if path == "/v1/stats/breakdown" and params.get("by") == "grid":
            return Answer(
                200, {"items": [{"key": self.hot_grid, **_counts(10, 4, breached=2, satisfied=3, feedback=4)}]}
            )
        if path == "/v1/stats/breakdown":
            return Answer(200, {"items": [{"key": "drainage", "name": "排水", **_counts(10, 4)}]})
        if path == "/v1/alerts":
            area = {"level": "grid", "id": self.hot_grid, "name": "第6网格"}
            alert = {"alert_id": "a1", "kind": "concentrated", "area": area, "category": "drainage", "count": 7,
                     "window_start": "2024-07-01T00:00:00Z", "window_end": "2024-07-02T00:00:00Z"}  # fmt: skip
            return Answer(200, {"items": [alert]})
        if path == "/v1/stats/summary":
            return Answer(200, {"period": {}, **_counts(120, 60, satisfied=30, feedback=40)})
        if path == "/v1/stats/ranking":
            item = {"rank": 1, "key": "城关街道", "name": "城关街道", "rate": 0.75, "ci_low": 0.6, "ci_high": 0.86,
                    "count": 40, "successes": 30}  # fmt: skip
            if params.get("level") == "village":
                item = {**item, "key": "下龙河新村", "name": "下龙河新村", "town": "城关街道"}
            return Answer(200, {"items": [item], "definition": "满意率"})
        if path == "/v1/stats/timeseries":
            return Answer(200, {"points": [{"start": "2024-07-01T00:00:00+08:00", **_counts(5, 2)}]})
        if path == "/v1/workorders":
            order = {"petition_id": "JZ20240701000001", "status": "assigned", "category": "drainage"}
            return Answer(200, {"workorders": [order]})
        return Answer(404, {})


@pytest.fixture(scope="module")
def houses_file(county, tmp_path_factory):  # type: ignore[no-untyped-def]
    return generate_houses(county, seed=7).write_csv(tmp_path_factory.mktemp("houses") / "houses.csv.gz")


@pytest.fixture(scope="module")
def backends(county):  # type: ignore[no-untyped-def]
    return CannedBackends(county)


@pytest.fixture(scope="module")
def app(backends, houses_file):  # type: ignore[no-untyped-def]
    settings = Settings(service="web", environment="development", extra={"WEB_HOUSES_FILE": str(houses_file)})
    return create_app(settings, backends=backends)


def _staff(county: Any, role: str) -> StaffSession:
    if role == "county_dispatcher":
        return StaffSession("tok-d", "S00001", "张", role, "县指挥中心", None)
    person = next(s for s in county.staff if s.role == role)
    return StaffSession(f"tok-{person.staff_id}", person.staff_id, person.name, role, "x", person.town_id)


def _client(app, session: StaffSession):  # type: ignore[no-untyped-def]
    client = app.test_client()
    sid = app.extensions["sessions"].open(session)
    with client.session_transaction() as s:
        s["sid"] = sid
    return client


def test_each_role_sees_its_own_area_of_the_map(app, county) -> None:  # type: ignore[no-untyped-def]
    expected = {
        "county_dispatcher": len(county.grids),
        "town_supervisor": sum(g.town_id == "T01" for g in county.grids),
    }
    for role, count in expected.items():
        fc = _client(app, _staff(county, role)).get("/staff/map/grids.geojson").get_json()
        assert len(fc["features"]) == count, role
    cadre = next(s for s in county.staff if s.role == "village_cadre")
    fc = _client(app, _staff(county, "village_cadre")).get("/staff/map/grids.geojson").get_json()
    assert {f["id"][:6] for f in fc["features"]} == {cadre.village_id}
    leader = next(s for s in county.staff if s.role == "grid_leader")
    fc = _client(app, _staff(county, "grid_leader")).get("/staff/map/grids.geojson").get_json()
    assert {f["id"] for f in fc["features"]} == set(leader.grid_ids)


def test_simplified_grids_stay_where_the_registry_put_them(county) -> None:  # type: ignore[no-untyped-def]
    cmap = CountyMap.from_registry({**county.to_geojson(), "version": 1})
    for grid in county.grids[::50]:
        simple = cmap.shapes[grid.grid_id]
        assert simple.is_valid
        assert simple.symmetric_difference(grid.polygon).area < 0.02 * grid.polygon.area
    # the outlines' features: every village, every town, for the county
    staff = cmap.principal("S1", "county_dispatcher", None)
    assert len(cmap.grids_geojson(staff)) < 0.5 * len(str(county.to_geojson()).encode())


def test_the_measures_come_from_the_stats_breakdown_by_grid(app, county, backends) -> None:  # type: ignore[no-untyped-def]
    answer = _client(app, _staff(county, "county_dispatcher")).get("/staff/map/measures?from=2024-07-01&to=2024-08-01")
    body = answer.get_json()
    hot = county.grids_by_id[backends.hot_grid]
    assert body["grids"][hot.grid_id] == {
        "accepted": 10,
        "open": 6,
        "overdue": 2,
        "satisfaction": 0.75,
        "per_1000": round(10 * 1000 / hot.population, 2),
    }
    (alert,) = body["alerts"]
    assert shape(hot.polygon).contains(shape({"type": "Point", "coordinates": alert["point"]}))
    assert ("stats", "/v1/stats/breakdown", {"by": "grid", "from": "2024-07-01", "to": "2024-08-01"}) in backends.calls
    bad = _client(app, _staff(county, "county_dispatcher")).get("/staff/map/measures?from=bad")
    assert bad.status_code == 400 and "from" in bad.get_json()["error"]["fields"]


def test_houses_come_by_bounding_box_and_only_in_the_staff_members_area(app, county) -> None:  # type: ignore[no-untyped-def]
    grid = county.grids_by_id["T01V01G001"]
    w, s, e, n = grid.polygon.bounds
    dispatcher = _client(app, _staff(county, "county_dispatcher"))
    body = dispatcher.get(f"/staff/map/houses?bbox={w},{s},{e},{n}").get_json()
    assert body["available"] and 0 < len(body["points"]) == body["total"] < 1000
    assert all(w <= x <= e and s <= y <= n for x, y in body["points"])
    far_town = next(g for g in county.grids if g.town_id != "T01")
    w, s, e, n = far_town.polygon.bounds
    assert (
        _client(app, _staff(county, "town_supervisor"))
        .get(f"/staff/map/houses?bbox={w},{s},{e},{n}")
        .get_json()["points"]
        == []
    )
    bad = dispatcher.get("/staff/map/houses?bbox=1,2,3")
    assert bad.status_code == 400 and "bbox" in bad.get_json()["error"]["fields"]


def test_a_grid_shows_its_roster_and_open_petitions_only_in_the_area(app, county) -> None:  # type: ignore[no-untyped-def]
    grid = county.grids_by_id["T01V01G001"]
    body = _client(app, _staff(county, "county_dispatcher")).get(f"/staff/map/grids/{grid.grid_id}").get_json()
    assert body["leader"]["staff_id"] == grid.leader_id and body["households"] == grid.households
    assert body["open_petitions"][0]["url"] == "/staff/orders/JZ20240701000001"
    other = next(g for g in county.grids if g.town_id != "T01")
    assert _client(app, _staff(county, "town_supervisor")).get(f"/staff/map/grids/{other.grid_id}").status_code == 404


def test_the_map_page_and_its_libraries_are_served_by_the_service(app, county) -> None:  # type: ignore[no-untyped-def]
    client = _client(app, _staff(county, "county_dispatcher"))
    page = client.get("/staff/map")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "/vendor/leaflet/leaflet.js" in html and "https://" not in html
    with client.get("/vendor/leaflet/leaflet.js") as js:
        assert js.status_code == 200 and "max-age" in js.headers["Cache-Control"]
    assert client.get("/vendor/leaflet/../package.json").status_code == 404
    assert client.get("/vendor/axe-core/axe.min.js").status_code == 404


def test_the_map_exports_as_a_png_coloured_like_the_page(app, county, backends) -> None:  # type: ignore[no-untyped-def]
    answer = _client(app, _staff(county, "town_supervisor")).get("/staff/map/export.png?measure=open&from=2024-07-01")
    assert answer.status_code == 200 and answer.mimetype == "image/png"
    image = Image.open(io.BytesIO(answer.data))
    assert image.size[0] == mappng.WIDTH
    assert len(image.getcolors(1 << 16) or []) > 3  # grids, outlines, text: not a blank picture
    assert mappng.colour_of(None, [1, 2, 3, 4]) == mappng.NO_DATA
    assert mappng.colour_of(5, [1, 2, 3, 4]) == mappng.COLOURS[-1]


def test_the_leaders_view_shows_the_stats_answers_and_exports_the_report(app, county) -> None:  # type: ignore[no-untyped-def]
    client = _client(app, _staff(county, "county_dispatcher"))
    html = client.get("/staff/leaders?from=2024-07-01&to=2024-08-01").get_data(as_text=True)
    assert 'data-figure="accepted" data-value="120">120<' in html
    assert 'data-figure="closure_rate" data-value="0.5">50.0%<' in html
    assert 'data-figure="satisfaction_rate" data-value="0.75">75.0%<' in html
    assert "口径" in html and 'data-ranking="town"' in html
    report = client.get("/staff/leaders/report.xlsx?from=2024-07-01&to=2024-08-01")
    assert report.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(report.data)).active
    values = [c for row in sheet.iter_rows(values_only=True) for c in row if c is not None]
    assert "诉求办理情况月报" in values and 120 in values and "下龙河新村" in values
    assert any(isinstance(v, str) and "2024-07-31" in v for v in values)  # `to` is exclusive
    bad = client.get("/staff/leaders?from=bad")
    assert bad.status_code == 400 and "must be a date" in bad.get_data(as_text=True)


def test_grid_leaders_and_cadres_have_the_map_but_not_the_leaders_view(app, county) -> None:  # type: ignore[no-untyped-def]
    client = _client(app, _staff(county, "grid_leader"))
    assert client.get("/staff/map").status_code == 200
    assert client.get("/staff/leaders").status_code == 404


def test_a_configured_tile_server_is_the_only_other_image_source(county, backends, houses_file) -> None:  # type: ignore[no-untyped-def]
    extra = {"WEB_MAP_TILES_URL": "http://t{s}.tianditu.gov.cn/vec_w/wmts?x={x}&y={y}&l={z}"}
    app = create_app(Settings(service="web", environment="development", extra=extra), backends=backends)
    page = _client(app, _staff(county, "county_dispatcher")).get("/staff/map")
    assert "img-src 'self' data: http://*.tianditu.gov.cn;" in page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in page.headers["Content-Security-Policy"]
