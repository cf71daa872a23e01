"""Issue #18, part 4: the audit trail on the real stack. Staff read a petition's contact details and
act on its work order; the auditor's query for that petition returns exactly those reads (who,
which fields, from which client) and actions, refused attempts marked as such, and nothing else;
nobody else may query; and `petitions-audit verify` finds a record altered or deleted in the
database."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import requests
from flask.testing import FlaskClient
from pymongo import MongoClient

from petition_common.config import Settings
from petition_devtools.tokens import token_for
from services.web.app import create_app as create_web_app
from services.web.sessions import StaffSession
from tests.e2e.abuse_world import World, start_world
from tests.e2e.test_submission_event import BODY
from tests.support import MONGO, eventually

SERVICES = ("intake", "routing", "sla", "stats")
AUDITOR = {"Authorization": "Bearer tok-auditor"}
VERIFY = [str(Path(sys.executable).with_name("petitions-audit")), "verify"]


def _petition(world: World, grid_id: str) -> str:
    body = {**BODY, "location": {**BODY["location"], "grid_id": grid_id}}
    resp = requests.post(f"{world.urls['intake']}/v1/petitions", json=body, timeout=10)
    assert resp.status_code == 201, resp.text
    return resp.json()["petition_id"]


def _audit(world: World, service: str, **params: str) -> list[dict]:
    resp = requests.get(f"{world.urls[service]}/v1/audit", params=params, headers=AUDITOR, timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


def _web_pages(world: World, staff_id: str, role: str, token: str | None = None) -> tuple[FlaskClient, str]:
    """The web service in this process, calling the real services, with `staff_id` logged in: its
    test client and the session's form token."""
    urls = {f"WEB_{s.upper()}_URL": url for s, url in world.urls.items()}
    web = create_web_app(Settings(service="web", environment="development", extra=urls))
    me = StaffSession(
        token=token or token_for(staff_id), staff_id=staff_id, name="测试", role=role, area="", town_id=None
    )
    sid = web.extensions["sessions"].open(me)
    client = web.test_client()
    with client.session_transaction() as session:
        session["sid"] = sid
    return client, me.csrf


def _show_contact_through_the_web_pages(world: World, staff_id: str, role: str, pid: str) -> str:
    """The work order page as the grid leader sees it, then its "show contact details"."""
    client, csrf = _web_pages(world, staff_id, role)
    page = client.get(f"/staff/orders/{pid}")
    assert page.status_code == 200 and BODY["citizen"]["phone"] not in page.get_data(as_text=True)
    shown = client.post(f"/staff/orders/{pid}/contact-details", data={"csrf": csrf})
    assert shown.status_code == 200
    return shown.get_data(as_text=True)


def _status(resp: requests.Response, expected: int) -> None:
    assert resp.status_code == expected, resp.text


def test_the_auditor_sees_exactly_who_read_a_petitions_contact_details(fleet, county, tmp_path):
    world = start_world(fleet, county, tmp_path, services=SERVICES)
    intake, routing = world.urls["intake"], world.urls["routing"]
    grid = world.grid("T01V01")
    pid = _petition(world, grid["grid_id"])
    leader = grid["leader"]["staff_id"]
    cadre = world.staff("village_cadre", "T01V01")
    supervisor = next(s.staff_id for s in county.staff if s.role == "town_supervisor" and s.town_id == "T01")
    dispatcher = world.staff("county_dispatcher")
    outsider = world.grid("T01V02")["leader"]["staff_id"]
    petition_url = f"{intake}/v1/petitions/{pid}"

    def assigned() -> None:  # intake knows the assignment once routing's event arrived
        resp = requests.get(petition_url, params={"contact": "omit"}, headers=world.bearer(leader), timeout=10)
        assert resp.status_code == 200 and "citizen" not in resp.json(), resp.text

    eventually(assigned)  # each try is a read without contact details: none of them is recorded

    reads = [leader, cadre, supervisor, dispatcher]
    for staff_id in reads:
        resp = requests.get(petition_url, headers=world.bearer(staff_id), timeout=10)
        assert resp.status_code == 200 and resp.json()["citizen"]["phone"] == BODY["citizen"]["phone"], resp.text
    # the same leader again, and a grid leader of another village who may not
    assert requests.get(petition_url, headers=world.bearer(leader), timeout=10).status_code == 200
    assert requests.get(petition_url, headers=world.bearer(outsider), timeout=10).status_code == 404
    # the grid leader's explicit "show" on the work order page
    page = _show_contact_through_the_web_pages(world, leader, "grid_leader", pid)
    assert BODY["citizen"]["phone"] in page

    order_url = f"{routing}/v1/workorders/{pid}"
    assert requests.post(f"{order_url}/contact", json={}, headers=world.bearer(cadre), timeout=10).status_code == 404
    resp = requests.post(f"{order_url}/contact", json={"note": "电话联系"}, headers=world.bearer(leader), timeout=10)
    assert resp.status_code == 200, resp.text
    resp = requests.post(
        f"{order_url}/reply",
        json={"resolution": "resolved", "summary": "已疏通"},
        headers=world.bearer(leader),
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    refused = requests.post(f"{order_url}/resume", json={}, headers=world.bearer(leader), timeout=10)
    assert refused.status_code == 409, refused.text

    # intake: exactly the reads, oldest last
    records = _audit(world, "intake", petition_id=pid)
    got = [
        (r["staff_id"], r["action"], r["outcome"], tuple(r["fields"]), r["client"]["id"], r["client"]["user_agent"])
        for r in reversed(records)
    ]
    api = requests.utils.default_user_agent()
    contact = ("citizen.name", "citizen.phone")
    assert got == [
        *[(s, "contact.read", "ok", contact, "static-token", api) for s in [*reads, leader]],
        (outsider, "contact.read", "not_found", (), "static-token", api),
        (leader, "contact.read", "ok", contact, "static-token", "petitions-web"),
    ]
    roles = {r["staff_id"]: r["role"] for r in records}
    assert roles[supervisor] == "town_supervisor" and roles[cadre] == "village_cadre"
    web_read = records[0]
    assert web_read["client"]["for"] == "127.0.0.1"  # the browser's address, vouched for by the web service
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", r["at"]) for r in records)

    # routing: exactly the actions, the refused ones with why
    actions = [
        (r["staff_id"], r["action"], r["outcome"], r["detail"])
        for r in reversed(_audit(world, "routing", petition_id=pid))
    ]
    assert actions == [
        (cadre, "workorder.contact", "not_found", None),
        (leader, "workorder.contact", "ok", None),
        (leader, "workorder.reply", "ok", {"resolution": "resolved"}),
        (leader, "workorder.resume", refused.json()["error"]["code"], None),
    ]

    # the filters: one staff member's reads, a time window, pages
    mine = _audit(world, "intake", petition_id=pid, staff_id=leader, action="contact.read", outcome="ok")
    assert len(mine) == 3
    assert _audit(world, "intake", petition_id=pid, to="2000-01-01") == []
    assert len(_audit(world, "intake", petition_id=pid, **{"from": records[-1]["at"]})) == len(records)
    first = requests.get(f"{intake}/v1/audit", params={"petition_id": pid, "limit": 4}, headers=AUDITOR, timeout=10)
    page1 = first.json()
    page2 = _audit(world, "intake", petition_id=pid, limit="4", before=str(page1["next_before"]))
    assert [r["seq"] for r in page1["items"] + page2] == [r["seq"] for r in records]
    # the auditor's own queries are in the trail too, under no petition
    assert _audit(world, "intake", action="audit.read", staff_id="A000001")

    # the auditor's page in the workbench lists the same records; nobody else has it
    pages, _ = _web_pages(world, "A000001", "auditor", token="tok-auditor")
    listed = pages.get("/staff/audit", query_string={"service": "intake", "petition_id": pid})
    assert listed.status_code == 200
    assert listed.get_data(as_text=True).count("data-audit-record=") == len(records)
    assert pages.get("/staff/audit", query_string={"from": "yesterday"}).status_code == 400
    leader_pages, _ = _web_pages(world, leader, "grid_leader")
    assert leader_pages.get("/staff/audit").status_code == 404


def test_only_the_auditor_may_read_the_trail(fleet, county, tmp_path):
    world = start_world(fleet, county, tmp_path, services=SERVICES)
    grid = world.grid("T01V01")
    others = [
        grid["leader"]["staff_id"],
        world.staff("village_cadre", "T01V01"),
        next(s.staff_id for s in county.staff if s.role == "town_supervisor"),
        world.staff("county_dispatcher"),
    ]
    for service, url in world.urls.items():
        for staff_id in others:
            resp = requests.get(f"{url}/v1/audit", headers=world.bearer(staff_id), timeout=10)
            assert resp.status_code == 404, (service, staff_id, resp.text)
        assert requests.get(f"{url}/v1/audit", timeout=10).status_code == 401
        assert (
            requests.get(f"{url}/v1/audit", headers={"Authorization": "Bearer made-up"}, timeout=10).status_code == 401
        )
        bad = requests.get(
            f"{url}/v1/audit", params={"limit": "0", "from": "yesterday", "x": "1"}, headers=AUDITOR, timeout=10
        )
        assert bad.status_code == 400 and set(bad.json()["error"]["fields"]) == {"limit", "from", "x"}, bad.text
        assert requests.get(f"{url}/v1/audit", headers=AUDITOR, timeout=10).status_code == 200
    # every record, refused queries' none, counted by service and action
    metrics = requests.get(f"{world.urls['routing']}/metrics", timeout=10).text
    assert re.search(
        r'petitions_audit_records_total\{action="registry.import",outcome="ok",service="routing"\} 1\.0', metrics
    ), [line for line in metrics.splitlines() if "audit" in line]


def test_verify_finds_an_altered_and_a_deleted_record(fleet, county, tmp_path):
    world = start_world(fleet, county, tmp_path)
    grid = world.grid("T01V01")
    pid = _petition(world, grid["grid_id"])
    leader = world.bearer(grid["leader"]["staff_id"])
    url = f"{world.urls['intake']}/v1/petitions/{pid}"
    eventually(lambda: _status(requests.get(url, params={"contact": "omit"}, headers=leader, timeout=10), 200))
    for _ in range(5):
        assert requests.get(url, headers=leader, timeout=10).status_code == 200
    env = {"MONGO_URI": MONGO, "MONGO_DB_PREFIX": fleet.env["MONGO_DB_PREFIX"], "PATH": "/usr/bin:/bin"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*VERIFY, *args], env=env, capture_output=True, text=True, timeout=120)

    intact = run("--service", "intake", "--service", "routing")
    assert intact.returncode == 0, intact.stdout + intact.stderr
    head = re.search(r"intake: (\d+) records, chain intact; head (\d+:[0-9a-f]{64})", intact.stdout)
    assert head and int(head.group(1)) == 5, intact.stdout  # the five reads

    client = MongoClient(MONGO)
    try:
        audit = client[f"{fleet.env['MONGO_DB_PREFIX']}intake"]["audit"]
        reads = sorted(audit.find({"petition_id": pid, "action": "contact.read"}), key=lambda r: r["seq"])
        victim = reads[2]
        # a curious administrator makes a read look like someone else's
        audit.update_one({"_id": victim["_id"]}, {"$set": {"staff_id": "S99999"}})
        altered = run("--service", "intake")
        assert altered.returncode == 1
        assert f"BROKEN at record {victim['seq']}: record {victim['seq']} was changed" in altered.stdout
        audit.replace_one({"_id": victim["_id"]}, victim)
        assert run("--service", "intake", "--expect-head", head.group(2)).returncode == 0
        # ... or removes it
        audit.delete_one({"_id": victim["_id"]})
        deleted = run("--service", "intake")
        assert deleted.returncode == 1
        assert f"BROKEN at record {victim['seq']}: record {victim['seq']} is missing" in deleted.stdout
        audit.insert_one(victim)
        # ... or removes the newest records, which only the head kept elsewhere shows
        newest = audit.find_one({"_id": f"{int(head.group(2).split(':')[0]):012d}"})
        audit.delete_one({"_id": newest["_id"]})
        assert run("--service", "intake").returncode == 0
        cut = run("--service", "intake", "--expect-head", head.group(2))
        assert cut.returncode == 1 and "is missing" in cut.stdout
    finally:
        client.close()
