"""Issue #16, part 3: "near me" tells what, how it stands, roughly how far and in which village and town;
never the text a citizen wrote, nor positions or distances precise enough to find their door."""

from __future__ import annotations

import requests
from shapely.geometry import shape

from tests.e2e.abuse_world import start_world
from tests.e2e.test_submission_event import BODY
from tests.support import eventually

SECRET = "我家在12号楼3单元502，门口下水道堵了，电话13812341234"
ALLOWED = {"petition_id", "category", "status", "distance_m", "village", "town"}


def test_nearby_answers_category_status_band_and_area_only(fleet, county, tmp_path):
    world = start_world(fleet, county, tmp_path)
    intake = world.urls["intake"]
    grid = next(f for f in world.registry["features"] if f["properties"]["village_id"] == "T01V01")
    point = shape(grid["geometry"]).representative_point()
    here = {"lat": round(point.y, 7), "lon": round(point.x, 7)}
    body = {**BODY, "content": SECRET, "location": {**BODY["location"], **here}}
    pid = requests.post(f"{intake}/v1/petitions", json=body, timeout=10).json()["petition_id"]

    def routed() -> dict:
        found = requests.get(f"{intake}/v1/petitions/nearby", params={**here, "category": "drainage"}, timeout=10)
        assert found.status_code == 200, found.text
        item = next(i for i in found.json()["items"] if i["petition_id"] == pid)
        assert item["village"] is not None, item
        return found.json()

    answer = eventually(routed)
    item = next(i for i in answer["items"] if i["petition_id"] == pid)
    assert set(item) == ALLOWED
    props = grid["properties"]
    assert (item["category"], item["status"], item["village"], item["town"]) == (
        "drainage",
        "assigned",
        props["village"],
        props["town"],
    )
    assert "12号楼" not in str(answer) and "138" not in str(answer) and str(here["lat"])[:7] not in str(answer)

    # distances come in 100 m bands from a ~100 m cell: a step of 0.3 m, or of 30 m, tells nothing
    def band(dlat: float, dlon: float) -> int:
        params = {"lat": here["lat"] + dlat, "lon": here["lon"] + dlon, "category": "drainage", "radius_m": 2000}
        items = requests.get(f"{intake}/v1/petitions/nearby", params=params, timeout=10).json()["items"]
        return next(i["distance_m"] for i in items if i["petition_id"] == pid)

    bands = {band(0, 0), band(0.0000027, 0), band(0, 0.0000027), band(0.00027, 0)}
    assert all(b % 100 == 0 and b >= 100 for b in bands) and len(bands) <= 2
    assert band(0.005, 0) >= 500  # ~550 m north: still found, in its band
