"""sla's batch read of clocks (`GET /v1/sla/petitions?ids=...`) on the five real services with the demo
county: each role gets exactly the items the one access rule lets it read, each as the single read
answers it (without notices); a wrong `ids` is a 400 naming the field; and the grid leader's queue page,
which now makes one batch call instead of one call per order, shows the clocks the single reads show."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
import requests

from petition_devtools import demo
from petition_devtools.tokens import token_for
from services.web.staff import _running_clock
from tests.browser.conftest import Platform
from tests.support import eventually
from tests.unit.contract.test_contract_documents import OPENAPI, errors, validator

pytestmark = pytest.mark.e2e

UNKNOWN = "ZZ20000101000000"
# what changes from one read to the next: the instant it is computed for and the seconds counted to it
VOLATILE = ("as_of", "notices")
VOLATILE_CLOCK = ("remaining_seconds", "overdue_seconds")


def _submit(platform: Platform, grid_id: str | None) -> str:
    location = {"town": "无此镇", "village": "无此村"}  # names of no place: triage, unless a grid is given
    if grid_id:
        location["grid_id"] = grid_id
    body = {
        "channel": "hotline",
        "category": "drainage",
        "content": f"下水道堵了，污水漫到路上（{uuid.uuid4().hex[:8]}）",
        "location": location,
        "citizen": {"name": "刘洋", "phone": f"1381234{uuid.uuid4().int % 10_000:04d}"},
    }
    resp = requests.post(f"{platform.urls['intake']}/v1/petitions", json=body, timeout=10)
    assert resp.status_code == 201, resp.text
    return resp.json()["petition_id"]


def _bearer(staff_id: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(staff_id)}"}


def _stable(view: dict[str, Any]) -> dict[str, Any]:
    clocks = [{k: v for k, v in c.items() if k not in VOLATILE_CLOCK} for c in view["clocks"]]
    return {**{k: v for k, v in view.items() if k not in VOLATILE}, "clocks": clocks}


def test_the_batch_read_follows_the_rule_and_feeds_the_queue(platform: Platform) -> None:
    county, sla = platform.county, platform.urls["sla"]
    leader_id = demo.first_village_leader(county)
    leader = next(s for s in county.staff if s.staff_id == leader_id)
    mine_grid = min(leader.grid_ids)
    other_grid = next(g for g in county.grids if g.town_id != leader.town_id)
    supervisor = next(s for s in county.staff if s.role == "town_supervisor" and s.town_id == other_grid.town_id)
    mine = [_submit(platform, mine_grid) for _ in range(2)]
    other, triage = _submit(platform, other_grid.grid_id), _submit(platform, None)
    dispatcher = _bearer(demo.dispatcher_of(county))

    def single(pid: str) -> dict[str, Any]:
        resp = requests.get(f"{sla}/v1/sla/petitions/{pid}", headers=dispatcher, timeout=10)
        assert resp.status_code == 200, resp.text
        assert resp.json()["clocks"], "sla has not seen the submission yet"
        return resp.json()

    for pid in (*mine, other, triage):
        eventually(lambda p=pid: single(p), timeout_s=60)

    def batch(headers: dict[str, str], ids: list[str]) -> list[dict[str, Any]]:
        resp = requests.get(f"{sla}/v1/sla/petitions", params={"ids": ",".join(ids)}, headers=headers, timeout=10)
        assert resp.status_code == 200, resp.text
        assert errors(validator(OPENAPI / "sla.yaml", "/components/schemas/PetitionSlaBatch"), resp.json()) == []
        return resp.json()["items"]

    asked = [mine[0], other, triage, UNKNOWN, mine[0], mine[1]]

    def as_single_reads() -> None:
        # in the order asked, once each, the unknown one absent; each as the single read shows it (retried
        # while routing's events are still on their way to sla, which changes the views between two reads)
        every = batch(dispatcher, asked)
        assert [i["petition_id"] for i in every] == [mine[0], other, triage, mine[1]]
        assert all("notices" not in i for i in every)
        assert [_stable(i) for i in every] == [_stable(single(i["petition_id"])) for i in every]

    eventually(as_single_reads, timeout_s=60)
    assert [i["petition_id"] for i in batch(_bearer(leader_id), asked)] == mine
    assert [i["petition_id"] for i in batch(_bearer(supervisor.staff_id), asked)] == [other]

    # refused, naming the field
    many = ",".join(f"JZ20240101{n:06d}" for n in range(101))
    refused = (({"ids": many}, "ids"), ({"ids": "JZ1,"}, "ids"), ({}, "ids"), ({"ids": mine[0], "x": "1"}, "x"))
    for params, field in refused:
        resp = requests.get(f"{sla}/v1/sla/petitions", params=params, headers=dispatcher, timeout=10)
        assert resp.status_code == 400, (params, resp.text)
        assert field in resp.json()["error"]["fields"], resp.text
    assert requests.get(f"{sla}/v1/sla/petitions", params={"ids": mine[0]}, timeout=10).status_code == 401

    # the grid leader's queue: its orders, each with the clock the single read says it works against
    page = requests.Session()
    page.post(f"{platform.web}/staff/login", data={"staff_id": leader_id}, timeout=30)

    def queue_shows_mine() -> dict[str, tuple[str, str] | None]:
        html = page.get(f"{platform.web}/staff/queue", timeout=30).text
        rows = {}
        for item in re.findall(r'<li class="card order[^"]*" data-order="([^"]+)">(.*?)</li>', html, re.S):
            pid, body = item
            shown = re.search(r'data-deadline="([^"]+)" data-state="([^"]+)"', body)
            rows[pid] = shown.groups() if shown else None
        assert set(mine) <= set(rows), rows
        return rows

    rows = eventually(queue_shows_mine, timeout_s=60)
    assert len(rows) >= 2
    for pid, shown in rows.items():
        clock = _running_clock(single(pid))
        assert shown == ((clock["deadline"], clock["state"]) if clock else None), pid
    deadlines = [shown[0] for shown in rows.values() if shown]
    assert deadlines == sorted(deadlines)
