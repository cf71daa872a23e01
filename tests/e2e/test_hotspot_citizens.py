"""Hotspot alerts count citizens, not petitions (issue #16): one sender cannot raise an alert.

Over the real stack, intake, routing and stats as processes with the shipped hotspot rules
(config/hotspots.yaml: 7 citizens of a category in a grid within 72 h, 15 in a village, 70 in a
town). 200 petitions from one phone, every one a separate petition (not a duplicate), into one grid
at about 30 a second (the flood that raised 5 false alerts before: grid, village and town) raise no
alert, because they carry one `citizen.ref`; 8 citizens with a petition each in another grid still
raise the grid's concentrated alert. Rate limits are off here: this is the detector's own defence,
for when a sender gets past them (a hall's kiosk, a hotline, a deployment that scales them up).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import requests

from countysim import plant_hotspot
from tests.e2e.abuse_world import start_world
from tests.support import eventually

SENDER_PHONE = "13912345678"
ENV = {"RATE_LIMITS": "off", "STATS_CHECKPOINT_INTERVAL_S": "1", "STATS_REFRESH_INTERVAL_S": "0.5"}


def _observed(stats: str) -> float:
    text = requests.get(f"{stats}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("petitions_stats_hotspot_observed_total")
    )


def test_one_sender_raises_no_hotspot_alert_while_many_citizens_do(fleet, county, tmp_path):
    world = start_world(fleet, county, tmp_path, services=("intake", "routing", "stats"), env=ENV)
    intake, stats = world.urls["intake"], world.urls["stats"]
    grid_a, grid_b = world.grid("T01V01")["grid_id"], world.grid("T01V02")["grid_id"]
    now = datetime.now(UTC)
    flood = plant_hotspot(county, "grid", grid_a, "drainage", 200, now, 1, seed=5, location_mix={"grid_id": 1.0})
    crowd = plant_hotspot(county, "grid", grid_b, "drainage", 8, now, 1, seed=6, location_mix={"grid_id": 1.0})
    assert len({g.body["citizen"]["phone"] for g in crowd}) == 8  # eight different citizens

    def submit(body: dict) -> dict:
        r = requests.post(f"{intake}/v1/petitions", json=body, timeout=30)
        assert r.status_code == 201, r.text
        return r.json()

    one_sender = [{**g.body, "citizen": {**g.body["citizen"], "phone": SENDER_PHONE}} for g in flood]
    with ThreadPoolExecutor(4) as pool:  # ~30 a second on the 2-core machine
        flooded = list(pool.map(submit, one_sender))
    flood_ids = {r["petition_id"] for r in flooded}
    assert sum(r["duplicate_of"] is None for r in flooded) > 100  # separate petitions, not repeats
    crowd_ids = {submit(g.body)["petition_id"] for g in crowd}

    dispatcher = requests.Session()
    dispatcher.headers.update(world.dispatcher)

    def crowd_alerted() -> list[dict]:
        # observed all 208: the detector merges partitions in time order, so it has judged the flood too
        assert _observed(stats) >= 208
        alerts = dispatcher.get(f"{stats}/v1/alerts", params={"limit": "100"}, timeout=10).json()["items"]
        assert any(a["area"]["id"] == grid_b for a in alerts), alerts
        return alerts

    alerts = eventually(crowd_alerted, timeout_s=90, interval_s=1)
    from_flood = [a for a in alerts if flood_ids & set(a["petition_ids"])]
    assert from_flood == [], [(a["kind"], a["area"], a["count"], a.get("citizens")) for a in from_flood]
    (crowd_alert,) = alerts
    assert (crowd_alert["kind"], crowd_alert["area"]["level"], crowd_alert["category"]) == (
        "concentrated",
        "grid",
        "drainage",
    )
    # raised by the 7th citizen, the shipped grid threshold
    assert set(crowd_alert["petition_ids"]) < crowd_ids
    assert crowd_alert["count"] == crowd_alert["citizens"] == 7
