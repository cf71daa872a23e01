"""Staff identity on the real stack (issue 18): tokens from the stack's Keycloak, validated by the
services against its JWKS, and the one rule (petition_kernel.access) applied to them."""

from __future__ import annotations

import time

import jwt
import pytest
import requests

from tests.e2e.abuse_world import start_world
from tests.e2e.identity_world import Roster, machine_token
from tests.e2e.test_submission_event import BODY
from tests.support import eventually


@pytest.fixture
def roster():
    r = Roster.connect()
    yield r
    r.remove()


def submit(intake: str, grid_id: str | None) -> str:
    location = {**BODY["location"]}
    if grid_id:
        location["grid_id"] = grid_id
    resp = requests.post(f"{intake}/v1/petitions", json={**BODY, "location": location}, timeout=10)
    assert resp.status_code == 201, resp.text
    return resp.json()["petition_id"]


def test_a_grid_leader_signs_in_and_sees_and_acts_only_on_its_grids(fleet, county, tmp_path, roster):
    world = start_world(fleet, county, tmp_path)
    intake, routing = world.urls["intake"], world.urls["routing"]
    own, other = world.grid("T01V01"), world.grid("T01V01", 1)
    leader = roster.add_from_county(county, own["leader"]["staff_id"])
    roster.sync()
    token = roster.token(leader)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["staff_id"] == leader and own["grid_id"] in claims["grid_ids"]
    assert claims["aud"] == "petitions-api" and claims["azp"] == "petitions-dev"
    headers = {"Authorization": f"Bearer {token}"}
    mine, theirs = submit(intake, own["grid_id"]), submit(intake, other["grid_id"])

    def listed() -> set[str]:
        resp = requests.get(f"{routing}/v1/workorders", headers=headers, timeout=10)
        assert resp.status_code == 200, resp.text
        ids = {o["petition_id"] for o in resp.json()["workorders"]}
        assert mine in ids
        return ids

    assert theirs not in eventually(listed)
    eventually(lambda: requests.get(f"{routing}/v1/workorders/{theirs}", headers=world.dispatcher, timeout=10).ok)
    assert requests.get(f"{routing}/v1/workorders/{theirs}", headers=headers, timeout=10).status_code == 404
    refused = requests.post(f"{routing}/v1/workorders/{theirs}/contact", json={}, headers=headers, timeout=10)
    assert refused.status_code == 404, refused.text
    done = requests.post(f"{routing}/v1/workorders/{mine}/contact", json={}, headers=headers, timeout=10)
    assert done.status_code == 200 and done.json()["status"] == "in_progress", done.text

    # the staff view of intake (contact details) follows the same rule, once intake has heard of
    # each petition's grid from routing's events (eventually: intake consumes them on its own)
    def assigned_in_intake(pid: str) -> None:
        resp = requests.get(f"{intake}/v1/petitions/{pid}", headers=world.dispatcher, timeout=10)
        assert resp.ok and resp.json().get("assignment"), resp.text

    for pid in (mine, theirs):
        eventually(lambda p=pid: assigned_in_intake(p))
    assert requests.get(f"{intake}/v1/petitions/{mine}", headers=headers, timeout=10).status_code == 200
    assert requests.get(f"{intake}/v1/petitions/{theirs}", headers=headers, timeout=10).status_code == 404
    # a token altered by its holder (more grids) no longer matches its signature
    header, _, signature = token.split(".")
    forged = jwt.utils.base64url_encode(
        jwt.utils.base64url_decode(token.split(".")[1]).replace(own["grid_id"].encode(), other["grid_id"].encode())
    ).decode()
    forged_headers = {"Authorization": f"Bearer {header}.{forged}.{signature}"}
    assert requests.get(f"{routing}/v1/workorders", headers=forged_headers, timeout=10).status_code == 401


def test_an_expired_token_is_refused(fleet, county, tmp_path, roster):
    """petitions-dev-short issues access tokens that live 5 s; the services allow 5 s of clock skew."""
    world = start_world(fleet, county, tmp_path, services=("routing",))
    routing = world.urls["routing"]
    leader = roster.add_from_county(county, world.grid("T01V01")["leader"]["staff_id"])
    roster.sync()
    resp = roster.sign_in(leader, client_id="petitions-dev-short")
    assert resp.status_code == 200, resp.text
    token = resp.json()["access_token"]
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    headers = {"Authorization": f"Bearer {token}"}
    assert requests.get(f"{routing}/v1/workorders", headers=headers, timeout=10).status_code == 200

    def refused() -> None:
        assert requests.get(f"{routing}/v1/workorders", headers=headers, timeout=10).status_code == 401

    eventually(refused, timeout_s=60, interval_s=1)
    assert time.time() >= expires  # refused for its age, not for anything else


def test_a_disabled_account_gets_no_new_token(fleet, county, tmp_path, roster):
    world = start_world(fleet, county, tmp_path, services=("routing",))
    routing = world.urls["routing"]
    stays, leaves = (roster.add_from_county(county, world.grid("T01V01", n)["leader"]["staff_id"]) for n in (0, 1))
    roster.sync()
    refresh = roster.sign_in(leaves).json()["refresh_token"]
    assert requests.get(f"{routing}/v1/workorders", headers=roster.bearer(leaves), timeout=10).status_code == 200

    roster.sync(only={stays})  # the roster import without `leaves`: the account is disabled
    denied = roster.sign_in(leaves)
    assert denied.status_code in (400, 401) and denied.json()["error"] == "invalid_grant", denied.text
    renewed = requests.post(
        f"{roster.admin.base}/realms/county/protocol/openid-connect/token",
        data={"grant_type": "refresh_token", "client_id": "petitions-dev", "refresh_token": refresh},
        timeout=30,
    )
    assert renewed.status_code in (400, 401), renewed.text
    assert roster.sign_in(stays).status_code == 200


def test_a_machine_client_submits_petitions_and_reads_none(fleet, county, tmp_path, roster):
    world = start_world(fleet, county, tmp_path)
    intake, routing = world.urls["intake"], world.urls["routing"]
    token = machine_token(roster.admin, "hotline")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["role"], claims["azp"]) == ("machine_client", "hotline")
    headers = {"Authorization": f"Bearer {token}"}
    body = {**BODY, "channel": "hotline", "location": {**BODY["location"], "grid_id": world.grid("T01V01")["grid_id"]}}
    resp = requests.post(f"{intake}/v1/petitions", json=body, headers=headers, timeout=10)
    assert resp.status_code == 201, resp.text
    pid = resp.json()["petition_id"]
    eventually(lambda: requests.get(f"{routing}/v1/workorders/{pid}", headers=world.dispatcher, timeout=10).ok)
    # and hands them over in batches (issue 23)
    items = [
        {"idempotency_key": f"call-{i}", "petition": {**body, "content": f"{body['content']}（{i}）"}} for i in (1, 2)
    ]
    handed = requests.post(f"{intake}/v1/petitions/batch", json={"items": items}, headers=headers, timeout=30)
    assert handed.status_code == 200 and handed.json()["accepted"] == 2, handed.text
    # it files petitions; it reads none of them and acts on no work order
    assert requests.get(f"{intake}/v1/petitions/{pid}", headers=headers, timeout=10).status_code == 404
    assert requests.get(f"{routing}/v1/workorders/{pid}", headers=headers, timeout=10).status_code == 404
    listing = requests.get(f"{routing}/v1/workorders", headers=headers, timeout=10)
    assert listing.status_code == 200 and listing.json()["workorders"] == []
    assert (
        requests.post(f"{routing}/v1/workorders/{pid}/contact", json={}, headers=headers, timeout=10).status_code == 404
    )
