"""Issue #16, part 5: a village cadre sees the work orders of their village but acts on none of them
(docs/routing.md, workorder.can_act); before, the service checked only what staff may see."""

from __future__ import annotations

import requests

from tests.e2e.abuse_world import start_world
from tests.e2e.test_submission_event import BODY
from tests.support import eventually

BODIES = {
    "contact": {},
    "reply": {"resolution": "explained", "summary": "已答复"},
    "transfer": {"department": "county_ecology_bureau", "reason": "换部门"},
    "pause": {"reason": "third_party"},
    "resume": {},
    "close": {},
}


def test_a_village_cadre_reads_but_cannot_act_on_an_order_of_their_village(fleet, county, tmp_path):
    world = start_world(fleet, county, tmp_path)
    intake, routing = world.urls["intake"], world.urls["routing"]
    grid = world.grid("T01V01")
    body = {**BODY, "location": {**BODY["location"], "grid_id": grid["grid_id"]}}
    pid = requests.post(f"{intake}/v1/petitions", json=body, timeout=10).json()["petition_id"]
    cadre = world.bearer(world.staff("village_cadre", "T01V01"))
    leader = world.bearer(grid["leader"]["staff_id"])
    order_url = f"{routing}/v1/workorders/{pid}"

    def visible() -> None:
        resp = requests.get(order_url, headers=cadre, timeout=10)
        assert resp.status_code == 200, resp.text

    eventually(visible)
    for action, payload in BODIES.items():
        resp = requests.post(f"{order_url}/{action}", json=payload, headers=cadre, timeout=10)
        assert resp.status_code == 404, (action, resp.status_code, resp.text)
    order = requests.get(order_url, headers=cadre, timeout=10).json()
    assert (order["status"], order["contacted_at"], order["pause"]) == ("assigned", None, None)

    # the grid's leader can
    resp = requests.post(f"{order_url}/contact", json={}, headers=leader, timeout=10)
    assert resp.status_code == 200 and resp.json()["status"] == "in_progress", resp.text
