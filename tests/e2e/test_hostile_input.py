"""Issue #16, part 1: input that used to answer 500 answers a 4xx with field errors (or is stored whole),
and nothing written before a refused request's main commit is left behind to refuse later ones."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
import requests
from pymongo import MongoClient

from petition_common.config import DEVELOPMENT_SECRET_KEY
from petition_common.credentials import Signer
from petition_common.store import AggregateStore, Loaded
from petition_kernel.times import utc_now
from services.intake import domain
from services.intake.codes import duplicate_key
from services.intake.domain import masked_content
from tests.e2e.abuse_world import start_world
from tests.e2e.test_submission_event import BODY
from tests.support import MONGO, eventually, read_topic


@pytest.fixture
def intake(fleet):
    url = fleet.start("intake").url
    fleet.wait_ready()
    return url


def _intake_db(fleet):
    client = MongoClient(MONGO)
    return client, client[f"{fleet.env['MONGO_DB_PREFIX']}intake"]


def test_a_name_starting_with_a_digit_is_accepted_and_so_is_the_same_citizen_again(intake, fleet):
    body = {**BODY, "citizen": {"name": "1号楼住户", "phone": "13812340001"}}
    first = requests.post(f"{intake}/v1/petitions", json=body, timeout=10)
    assert first.status_code == 201, first.text
    # the same citizen, the same problem, a few minutes later: linked as a duplicate, not refused
    again = requests.post(f"{intake}/v1/petitions", json={**body, "content": BODY["content"] + "。"}, timeout=10)
    assert again.status_code == 201, again.text
    assert again.json()["duplicate_of"] == first.json()["petition_id"]

    topic = f"{fleet.env['KAFKA_TOPIC_PREFIX']}petitions.intake.v1"
    events = read_topic(topic, lambda ms: len(ms) >= 2)
    masked = {m["value"]["data"]["citizen"]["name_masked"] for m in events}
    assert masked == {"*****"}  # a digit is not a character a masked name may show


def test_a_duplicate_entry_whose_petition_never_committed_does_not_refuse_the_citizen(intake, fleet):
    """The index entry of a petition whose commit failed (or whose process died in between) is ignored."""
    client, db = _intake_db(fleet)
    with client:
        duplicates = AggregateStore(db, "duplicates")
        key = duplicate_key(Signer([DEVELOPMENT_SECRET_KEY]), "13812340002", BODY["category"])
        ghost = "JZ20990101000001"
        body = {**BODY, "citizen": {"name": "刘洋", "phone": "13812340002"}}
        # the index holds the masked text, as intake writes it
        text = masked_content(domain.validate_submission(body, {BODY["category"]}))
        entry = {"petition_id": ghost, "norm": domain._normalized(text), "duplicate_of": None}
        duplicates.commit(Loaded(key, 0, None), {"recent": [{**entry, "at": utc_now()}]})
    resp = requests.post(f"{intake}/v1/petitions", json=body, timeout=10)
    assert resp.status_code == 201, resp.text
    assert resp.json()["duplicate_of"] is None


def test_the_size_limit_applies_before_the_body_is_read(intake):
    """A 32 MB Content-Length is refused at once, without waiting for (or buffering) the body."""
    host, port = urlsplit(intake).hostname, urlsplit(intake).port
    head = (
        "POST /v1/petitions HTTP/1.1\r\nHost: intake\r\nContent-Type: application/json\r\n"
        f"Content-Length: {32 * 1024 * 1024}\r\n\r\n"
    )
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(head.encode() + b'{"content": "')
        answer = sock.recv(4096)  # raises a timeout if the service waits for the body
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]

    def chunks():
        for _ in range(40):
            yield b"x" * 4096

    chunked = requests.post(
        f"{intake}/v1/petitions", data=chunks(), headers={"Content-Type": "application/json"}, timeout=10
    )
    assert chunked.status_code == 413, chunked.text
    assert chunked.json()["error"]["code"] == "body_too_large"


def test_staff_fields_are_typed_and_bounded_before_anything_is_written(fleet, county, tmp_path):
    world = start_world(fleet, county, tmp_path)
    intake, routing = world.urls["intake"], world.urls["routing"]
    grid = world.grid("T01V01")
    body = {**BODY, "location": {**BODY["location"], "grid_id": grid["grid_id"]}}
    pid = requests.post(f"{intake}/v1/petitions", json=body, timeout=10).json()["petition_id"]
    order_url = f"{routing}/v1/workorders/{pid}"
    eventually(lambda: _assert_status(requests.get(order_url, headers=world.dispatcher, timeout=10), 200))

    other = world.grid("T01V02")["grid_id"]
    refused = [
        ("transfer", {"grid_id": {"$ne": None}, "reason": "换网格"}, "grid_id"),
        ("transfer", {"grid_id": [other], "reason": "换网格"}, "grid_id"),
        ("transfer", {"grid_id": other, "reason": "因" * 1001}, "reason"),
        ("transfer", {"grid_id": other, "reason": 7}, "reason"),
        ("transfer", {"department": ["x"], "reason": "换部门"}, "department"),
        ("pause", {"reason": {"a": 1}}, "reason"),
        ("contact", {"note": "记" * 1001}, "note"),
    ]
    for action, payload, field in refused:
        resp = requests.post(f"{order_url}/{action}", json=payload, headers=world.dispatcher, timeout=10)
        assert 400 <= resp.status_code < 500, (action, payload if len(str(payload)) < 80 else field, resp.text)
        assert field in resp.json()["error"]["fields"], (action, resp.text)

    assert requests.post(f"{order_url}/contact", json={}, headers=world.dispatcher, timeout=10).status_code == 200
    too_long = {"resolution": "explained", "summary": "答" * 5001}
    resp = requests.post(f"{order_url}/reply", json=too_long, headers=world.dispatcher, timeout=10)
    assert 400 <= resp.status_code < 500 and "summary" in resp.json()["error"]["fields"], resp.text
    order = requests.get(order_url, headers=world.dispatcher, timeout=10).json()
    assert (order["status"], order["transfer_count"], order["pause"]) == ("in_progress", 0, None)


def test_a_stats_period_far_in_the_future_is_a_field_error(fleet, county, tmp_path):
    world = start_world(fleet, county, tmp_path, services=("stats",))
    for params in (
        {"from": "9999-12-31T16:00:00Z"},
        {"from": "2024-01-01", "to": "9999-12-31T16:00:00Z"},
        {"from": "9999-12-31"},
    ):
        resp = requests.get(
            f"{world.urls['stats']}/v1/stats/summary", params=params, headers=world.dispatcher, timeout=30
        )
        assert resp.status_code == 400, (params, resp.text)
        assert set(resp.json()["error"]["fields"]) & {"from", "to"}, resp.text


def _assert_status(resp: requests.Response, status: int) -> None:
    assert resp.status_code == status, resp.text
