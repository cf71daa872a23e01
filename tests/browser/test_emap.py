"""Issue 21 in a real browser: the grid e-map and the leaders' view over a generated month.

The platform runs as for the other browser tests (intake, routing, sla, web on this module's topics,
the demo county imported), but the web pages read statistics from a stats instance on topics of
its own, into which a generated month of the demo county (countysim, with a planted hotspot in one
grid; lifecycles drawn by tests/e2e/stats_world.py) is PUBLISHED DIRECTLY: routing and sla never see
those events, so the figures are the month's alone and settle once stats has read them all.
Checked: the whole county's map draws every grid and the planted hotspot at its grid; the leaders'
page shows the stats API's figures for two periods; a town supervisor sees only their town; axe
finds nothing serious or critical; the exports are a PNG and a workbook with the same figures.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import openpyxl
import pytest
import requests
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from shapely.geometry import Point

from countysim import County, generate_petitions, plant_hotspot
from petition_common.config import Settings
from petition_common.kafka_io import ensure_topics
from petition_devtools import demo, kafka_access
from petition_devtools.namespace import database_prefix
from petition_devtools.processes import SERVICES, ServiceFleet
from petition_devtools.tokens import token_for
from petition_kernel.times import BEIJING
from tests.browser.conftest import DESKTOP, Browser
from tests.e2e.stats_world import INTAKE, ROUTING, SLA, World
from tests.support import KAFKA, eventually, kafka_client

pytestmark = pytest.mark.timeout(900)

MONTH = datetime(2024, 7, 1, tzinfo=BEIJING)
PETITIONS = 3000  # a tenth of the county's month: enough for every town and most villages
HOT_GRID = "T03V02G004"
PERIODS = (("2024-07-01", "2024-08-01"), ("2024-07-08", "2024-07-15"))


@dataclass
class MonthPlatform:
    county: County
    web: str
    stats: str
    routing: str
    hot_grid: str


def _publish(world: World, prefix: str) -> dict[str, int]:
    producer = KafkaProducer(**kafka_client(), linger_ms=20, batch_size=512 * 1024)
    for m in world.publishing_order(redeliver=0.0):
        producer.send(f"{prefix}{m.topic}", key=m.key.encode(), value=m.value, headers=m.headers)
    producer.flush(120)
    producer.close()
    consumer = KafkaConsumer(**kafka_client())
    try:
        parts = consumer.partitions_for_topic(f"{prefix}{INTAKE}") or {0}
        tps = [TopicPartition(f"{prefix}{t}", p) for t in (INTAKE, ROUTING, SLA) for p in parts]
        return {f"{tp.topic.removeprefix(prefix)}:{tp.partition}": o for tp, o in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def _month(county: County) -> World:
    start = MONTH.astimezone(UTC)
    noise = generate_petitions(county, PETITIONS, seed=21, start=start, days=31)
    hot = plant_hotspot(county, "grid", HOT_GRID, "drainage", 10, start + timedelta(days=12), 20, seed=3)
    return World(county, [(p, None) for p in noise] + [(p, "hot") for p in hot], seed=21).build()


@pytest.fixture(scope="module")
def month_platform(run_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonthPlatform]:
    prefix = f"{run_env['KAFKA_TOPIC_PREFIX']}{uuid.uuid4().hex[:6]}"
    month_prefix = f"{prefix}m-"
    work = tmp_path_factory.mktemp("emap")
    county = demo.demo_county()
    env = {
        **run_env,
        "KAFKA_TOPIC_PREFIX": f"{prefix}-",
        "MONGO_DB_PREFIX": database_prefix(prefix),
        **demo.prepare(county, work),
    }
    # the month's topics: stats reads them, nothing else does
    kafka_access.provision(KAFKA, month_prefix)
    settings = Settings(service="stats", kafka_bootstrap=KAFKA, topic_prefix=month_prefix,
                        **kafka_access.admin_settings())  # fmt: skip
    ensure_topics(settings, [INTAKE, ROUTING, SLA, "petitions.alerts.v1", "petitions.deadletter.v1"])
    ends = _publish(_month(county), month_prefix)
    fleet = ServiceFleet(env=env, log_dir=work / "logs")
    try:
        for name in SERVICES:
            if name != "stats":
                fleet.start(name)
        stats = fleet.start("stats", extra_env={
            "KAFKA_TOPIC_PREFIX": month_prefix,
            "MONGO_DB_PREFIX": f"{month_prefix.replace('-', '_')}",
            "STATS_CHECKPOINT_INTERVAL_S": "1",
            "STATS_REFRESH_INTERVAL_S": "0.5",
        })  # fmt: skip
        fleet.wait_ready([n for n in SERVICES], timeout_s=120)
        urls = {n: fleet.processes[n].url for n in SERVICES}
        demo.import_registry(urls["routing"], county)
        web = fleet.start("web", extra_env={f"WEB_{n.upper()}_URL": u for n, u in urls.items()})
        fleet.wait_ready(["web"], timeout_s=60)
        _wait_counted(stats.url, county, ends)
        yield MonthPlatform(county, web.url, stats.url, urls["routing"], HOT_GRID)
    finally:
        fleet.stop_all()


def _dispatcher(county: County) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(demo.dispatcher_of(county))}"}


def _wait_counted(stats: str, county: County, ends: dict[str, int]) -> None:
    """Until every partition's checkpoint has read to the end, and the planted hotspot is alerted."""
    headers = _dispatcher(county)

    def caught_up() -> None:
        status = requests.get(f"{stats}/v1/stats/status", headers=headers, timeout=10).json()
        got: dict[str, int] = {}
        for head in status["partitions"].values():
            got.update((head or {}).get("offsets", {}))
        behind = {k: (got.get(k), v) for k, v in ends.items() if v and got.get(k) != v}
        assert not behind, behind
        alerts = requests.get(f"{stats}/v1/alerts", headers=headers, params={"limit": 200}, timeout=10).json()
        assert any(a["area"]["id"] == HOT_GRID for a in alerts["items"]), alerts

    eventually(caught_up, timeout_s=240, interval_s=1)


def api(platform: MonthPlatform, staff_id: str, path: str, **params: str) -> dict:
    r = requests.get(
        f"{platform.stats}{path}", params=params, headers={"Authorization": f"Bearer {token_for(staff_id)}"}, timeout=30
    )
    assert r.status_code == 200, r.text
    return r.json()


def login(b: Browser, web: str, staff_id: str) -> None:
    d = b.driver
    d.get(f"{web}/staff/login?q={staff_id}")
    d.find_element(By.CSS_SELECTOR, f"[data-account='{staff_id}']").click()
    WebDriverWait(d, 20).until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-whoami]"))


def open_map(d: WebDriver, url: str) -> dict:
    d.get(url)
    WebDriverWait(d, 60, poll_frequency=0.2).until(
        lambda d: d.execute_script(
            "return !!(window.emap && (window.emap.ready || document.getElementById('map').dataset.error))"
        )
    )
    assert not d.execute_script("return document.getElementById('map').dataset.error")
    return d.execute_script(
        "return {drawn: emap.drawnGrids, ids: emap.gridIds, alerts: emap.alerts, readyMs: emap.readyMs};"
    )


def session_of(d: WebDriver) -> requests.Session:
    """A requests session with the browser's login (for the downloads)."""
    http = requests.Session()
    for cookie in d.get_cookies():
        http.cookies.set(cookie["name"], cookie["value"])
    return http


def test_the_whole_county_map_draws_every_grid_and_the_planted_hotspot(month_platform, browser) -> None:  # type: ignore[no-untyped-def]
    p, d = month_platform, browser.driver
    browser.viewport(DESKTOP)
    login(browser, p.web, demo.dispatcher_of(p.county))
    drawn = open_map(d, f"{p.web}/staff/map?from=2024-07-01&to=2024-08-01&measure=per_1000")
    assert drawn["drawn"] == len(p.county.grids) == 2635
    assert set(drawn["ids"]) == {g.grid_id for g in p.county.grids}
    hot = [a for a in drawn["alerts"] if a["level"] == "grid" and a["area"] == p.hot_grid]
    assert hot, drawn["alerts"]
    polygon = p.county.grids_by_id[p.hot_grid].polygon
    assert all(polygon.contains(Point(a["lon"], a["lat"])) for a in hot)  # drawn inside its grid
    assert d.find_elements(By.CSS_SELECTOR, f"[data-alert-area='{p.hot_grid}']")
    assert not browser.axe("map")
    browser.shoot("staff-map", DESKTOP)

    # the houses appear from zoom 14 on, around the hotspot; a click shows the grid's roster
    centre = polygon.representative_point()
    d.execute_script("emap.map.setView([arguments[0], arguments[1]], 16);", centre.y, centre.x)
    WebDriverWait(d, 30).until(lambda d: d.execute_script("return emap.houses > 0"))
    d.execute_script("emap.showGrid(arguments[0]);", p.hot_grid)
    detail = WebDriverWait(d, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, f"[data-grid='{p.hot_grid}']"))
    leader = p.county.staff_by_id[p.county.grids_by_id[p.hot_grid].leader_id]
    assert leader.name in detail[0].text
    assert not browser.axe("map-zoomed")
    browser.shoot("staff-map-houses", DESKTOP)

    png = session_of(d).get(f"{p.web}/staff/map/export.png?measure=open&from=2024-07-01&to=2024-08-01", timeout=60)
    assert png.status_code == 200 and png.headers["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size[0] > 1000


def _figures(d: WebDriver) -> dict[str, str]:
    return {
        e.get_attribute("data-figure"): e.get_attribute("data-value")
        for e in d.find_elements(By.CSS_SELECTOR, "[data-figure]")
    }


def _ranking(d: WebDriver, level: str) -> list[tuple[str, str, str, str, str]]:
    rows = d.find_elements(By.CSS_SELECTOR, f"[data-ranking='{level}'] tbody tr")
    return [
        tuple(r.get_attribute(a) for a in ("data-key", "data-rate", "data-ci-low", "data-ci-high", "data-count"))
        for r in rows
    ]  # type: ignore[misc]


def _api_ranking(items: list[dict]) -> list[tuple[str, str, str, str, str]]:
    def s(v: object) -> str:
        return "" if v is None else str(v)

    return [(i["key"], s(i["rate"]), s(i["ci_low"]), s(i["ci_high"]), str(i["count"])) for i in items]


def check_leaders_page(d: WebDriver, p: MonthPlatform, staff_id: str, start: str, end: str) -> dict:
    d.get(f"{p.web}/staff/leaders?from={start}&to={end}&metric=satisfaction_rate&interval=week")
    WebDriverWait(d, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, "[data-chart='towns'][data-drawn]"))
    summary = api(p, staff_id, "/v1/stats/summary", **{"from": start, "to": end})
    shown = _figures(d)
    assert shown["accepted"] == str(summary["accepted"]) and shown["closed"] == str(summary["closed"])
    for rate in ("closure_rate", "contacted_on_time_rate", "replied_on_time_rate", "satisfaction_rate"):
        assert shown[rate] == str(summary["rates"][rate]), rate
    text = d.find_element(By.CSS_SELECTOR, "[data-figure='satisfaction_rate']").text
    assert text == f"{summary['rates']['satisfaction_rate'] * 100:.1f}%"
    for level in ("town", "village"):
        ranked = api(p, staff_id, "/v1/stats/ranking", level=level, metric="satisfaction_rate",
                     **{"from": start, "to": end})  # fmt: skip
        assert _ranking(d, level) == _api_ranking(ranked["items"]), level
    return summary


def test_the_leaders_page_shows_the_stats_apis_figures_for_two_periods(month_platform, browser) -> None:  # type: ignore[no-untyped-def]
    p, d = month_platform, browser.driver
    browser.viewport(DESKTOP)
    dispatcher = demo.dispatcher_of(p.county)
    login(browser, p.web, dispatcher)
    month = check_leaders_page(d, p, dispatcher, *PERIODS[1])
    assert not browser.axe("leaders-week")
    whole = check_leaders_page(d, p, dispatcher, *PERIODS[0])
    assert whole["accepted"] > month["accepted"] > 0  # two different periods, two different answers
    assert not browser.axe("leaders")
    browser.shoot("staff-leaders", DESKTOP)

    report = session_of(d).get(f"{p.web}/staff/leaders/report.xlsx?from={PERIODS[0][0]}&to={PERIODS[0][1]}", timeout=60)
    assert report.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(report.content)).active
    values = [c for row in sheet.iter_rows(values_only=True) for c in row if c is not None]
    assert whole["accepted"] in values and whole["rates"]["satisfaction_rate"] in values


def test_a_town_supervisor_sees_only_their_town(month_platform, browser) -> None:  # type: ignore[no-untyped-def]
    p, d = month_platform, browser.driver
    browser.viewport(DESKTOP)
    town = p.county.towns[0]
    supervisor = next(s for s in p.county.staff if s.role == "town_supervisor" and s.town_id == town.town_id)
    login(browser, p.web, supervisor.staff_id)
    drawn = open_map(d, f"{p.web}/staff/map?from=2024-07-01&to=2024-08-01")
    theirs = {g.grid_id for g in p.county.grids if g.town_id == town.town_id}
    assert drawn["drawn"] == len(theirs) and set(drawn["ids"]) == theirs
    assert all(a["area"].startswith(town.town_id) or a["level"] != "grid" for a in drawn["alerts"])
    assert not browser.axe("map-town")

    summary = check_leaders_page(d, p, supervisor.staff_id, *PERIODS[0])
    county_wide = api(
        p, demo.dispatcher_of(p.county), "/v1/stats/summary", **{"from": PERIODS[0][0], "to": PERIODS[0][1]}
    )
    assert 0 < summary["accepted"] < county_wide["accepted"]
    assert [r[0] for r in _ranking(d, "town")] == [town.name]
    villages = {v.name for v in p.county.villages if v.town_id == town.town_id}
    assert {r[0] for r in _ranking(d, "village")} <= villages
    assert not browser.axe("leaders-town")
    # another town's grid is not there, not even by its address
    other = next(g for g in p.county.grids if g.town_id != town.town_id)
    assert session_of(d).get(f"{p.web}/staff/map/grids/{other.grid_id}", timeout=30).status_code == 404


def test_routing_serves_the_whole_registry_once_per_version(month_platform) -> None:  # type: ignore[no-untyped-def]
    p = month_platform
    url = f"{p.routing}/v1/grids"
    assert requests.get(url, timeout=30).status_code == 401  # the roster is not for the public
    whole = requests.get(url, headers=_dispatcher(p.county), timeout=60)
    assert whole.status_code == 200 and whole.headers["Content-Type"].startswith("application/geo+json")
    body = whole.json()
    assert len(body["features"]) == len(p.county.grids) and body["version"] >= 1
    etag = whole.headers["ETag"]
    assert etag == f'"registry-{body["version"]}"'
    again = requests.get(url, headers={**_dispatcher(p.county), "If-None-Match": etag}, timeout=30)
    assert again.status_code == 304 and not again.content
