"""`POST /v1/petitions/batch` (issue #23's bulk path), over the real stack: intake as a process on the
local Kafka and FerretDB, routing behind it.

What a hotline hands over is stored and routed like single submissions, one result per item; what a
stranger, a curious staff member or a spammer with a stolen hotline token can do with the endpoint is
no more than with single submissions: no token 401, any role but a machine client's or the county
dispatch centre's 404, every item counted once against the token's limit and once against its
citizen's per-phone limit, refusals stored nowhere.
"""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from pymongo import MongoClient

from petition_devtools.tokens import write_tokens_file
from tests.e2e.test_rate_limits import early_in_a_minute, published, stored_petitions
from tests.support import MONGO, eventually

TOKENS = {
    "tok-hotline": {"staff_id": "M000001", "role": "machine_client"},
    "tok-dispatcher": {"staff_id": "S000001", "role": "county_dispatcher"},
    "tok-leader": {"staff_id": "G000001", "role": "grid_leader", "grid_ids": ["T01V01G001"]},
    "tok-auditor": {"staff_id": "A000001", "role": "auditor"},
}
HOTLINE = {"Authorization": "Bearer tok-hotline"}


def petition(n: int, phone: str | None = None, **changes: Any) -> dict[str, Any]:
    return {
        "channel": "hotline",
        "category": "roads",
        "content": f"来电：第{n}号路灯不亮，晚上看不清路，请尽快修理。",
        "location": {"town": "城关镇", "village": "东街村"},
        "citizen": {"name": "王五", "phone": phone or f"139{n:08d}"},
        **changes,
    }


def batch(*petitions: dict[str, Any], prefix: str = "call") -> dict[str, Any]:
    return {"items": [{"idempotency_key": f"{prefix}-{i}", "petition": p} for i, p in enumerate(petitions)]}


@pytest.fixture
def intake_env(tmp_path: Path) -> dict[str, str]:
    return {"STAFF_TOKENS_FILE": str(write_tokens_file(tmp_path / "tokens.yaml", TOKENS))}


def _post(url: str, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(f"{url}/v1/petitions/batch", json=body, headers=headers or HOTLINE, timeout=60)


def test_a_hotline_batch_is_stored_routed_and_answered_item_by_item(fleet, intake_env):
    intake = fleet.start("intake", extra_env=intake_env).url
    routing = fleet.start("routing", extra_env=intake_env).url
    fleet.wait_ready()
    bad_category = petition(3, category="nosuchcategory")
    no_phone = petition(4, citizen={"name": "王五"})
    body = batch(petition(1), petition(2), bad_category, no_phone, petition(5, phone="139 0000 0001"))
    resp = _post(intake, body)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert (answer["accepted"], answer["refused"]) == (3, 2)
    results = answer["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["status"] for r in results] == [201, 201, 422, 400, 201]
    assert list(results[2]["error"]["fields"]) == ["category"]
    assert "citizen.phone" in results[3]["error"]["fields"]
    accepted = {r["petition"]["petition_id"]: r["petition"]["tracking_code"] for r in results if r["status"] == 201}
    # stored, published once each, routed; the refused items nowhere
    assert published(fleet, set(accepted)) == set(accepted)
    assert stored_petitions(fleet) == set(accepted)
    dispatcher = {"Authorization": "Bearer tok-dispatcher"}
    for pid, code in accepted.items():
        mine = requests.get(f"{intake}/v1/petitions/{pid}", params={"tracking_code": code}, timeout=10)
        assert mine.status_code == 200 and mine.json()["channel"] == "hotline"
        eventually(lambda pid=pid: requests.get(f"{routing}/v1/workorders/{pid}", headers=dispatcher, timeout=10).ok)

    # the hotline sends the same batch again (its answer was lost): the same petitions, none twice
    again = _post(intake, body).json()
    assert [r.get("replayed") for r in again["results"]] == [True, True, None, None, True]
    assert {r["petition"]["petition_id"] for r in again["results"] if r["status"] == 201} == set(accepted)
    # one key sent again with another petition refuses that item alone
    changed = _post(intake, batch(petition(9), prefix="call")).json()["results"][0]
    assert (changed["status"], changed["error"]["code"]) == (422, "idempotency_key_reused")
    assert stored_petitions(fleet) == set(accepted)


def test_strangers_and_other_roles_cannot_submit_batches(fleet, intake_env):
    intake = fleet.start("intake", extra_env=intake_env).url
    fleet.wait_ready()
    body = batch(petition(11))
    stranger = requests.post(f"{intake}/v1/petitions/batch", json=body, timeout=30)
    assert stranger.status_code == 401 and stranger.headers["WWW-Authenticate"] == "Bearer"
    assert _post(intake, body, {"Authorization": "Bearer made-up"}).status_code == 401
    for token in ("tok-leader", "tok-auditor"):  # a curious staff member: as for anything not theirs
        assert _post(intake, body, {"Authorization": f"Bearer {token}"}).status_code == 404
    dispatcher = _post(intake, body, {"Authorization": "Bearer tok-dispatcher"})
    assert dispatcher.status_code == 200 and dispatcher.json()["accepted"] == 1
    assert len(stored_petitions(fleet)) == 1


def test_a_malformed_batch_is_refused_whole_and_nothing_of_it_is_stored(fleet, intake_env):
    intake = fleet.start("intake", extra_env=intake_env).url
    fleet.wait_ready()
    twice = {"items": [{"idempotency_key": "same", "petition": petition(i)} for i in (21, 22)]}
    cases = {
        "no items": ({"items": []}, "items"),
        "too many": (batch(*(petition(100 + i) for i in range(501))), "items"),
        "no key": ({"items": [{"petition": petition(23)}]}, "items.0.idempotency_key"),
        "unknown field": ({"items": [], "extra": 1}, "extra"),
        "a key twice": (twice, "items.1.idempotency_key"),
    }
    for name, (body, field) in cases.items():
        resp = _post(intake, body)
        assert resp.status_code == 400, (name, resp.text)
        assert field in resp.json()["error"]["fields"], (name, resp.json())
    # nothing of the refused batches: no petition, no idempotency claim
    assert stored_petitions(fleet) == set()
    client = MongoClient(MONGO)
    try:
        assert client[f"{fleet.env['MONGO_DB_PREFIX']}intake"]["idempotency"].count_documents({}) == 0
    finally:
        client.close()
    # a batch may be larger than a single petition (2 MiB), not any size: refused before it is read
    host, port = urlsplit(intake).hostname, urlsplit(intake).port
    head = (
        "POST /v1/petitions/batch HTTP/1.1\r\nHost: intake\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer tok-hotline\r\nContent-Length: {3 * 1024 * 1024}\r\n\r\n"
    )
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(head.encode() + b'{"items": [')
        assert sock.recv(4096).startswith(b"HTTP/1.1 413")
    # and a single petition's limit does not apply to a batch: 300 items of ~1 KB (~330 KB) are taken
    big = batch(*(petition(2000 + i, content=f"第{i}号。" + "路灯不亮，" * 60) for i in range(300)), prefix="big")
    assert _post(intake, big).json()["accepted"] == 300
    assert len(stored_petitions(fleet)) == 300


def test_every_item_counts_against_the_token_and_the_phone(fleet, intake_env):
    limits = {"RATE_LIMIT_SCALE": "1", "RATE_LIMIT_STAFF": "20/minute"}
    intake = fleet.start("intake", extra_env={**intake_env, **limits}).url
    fleet.wait_ready()
    early_in_a_minute()
    # one phone, six calls in one batch: the five a day a citizen may file, and one refused
    phone = "13700002222"
    results = _post(intake, batch(*(petition(200 + i, phone=phone) for i in range(6)))).json()["results"]
    assert [r["status"] for r in results] == [201] * 5 + [429]
    assert results[5]["error"]["fields"] == {"citizen.phone": "too many petitions today"}
    # the same count as single submissions
    single = requests.post(f"{intake}/v1/petitions", json=petition(300, phone=phone), headers=HOTLINE, timeout=30)
    assert single.status_code == 429, single.text
    # the token: at least 6 of its 20 a minute used; a batch of 15 is more than what is left: refused whole
    over = _post(intake, batch(*(petition(400 + i) for i in range(15)), prefix="later"))
    assert over.status_code == 429 and int(over.headers["Retry-After"]) <= 60
    assert len(stored_petitions(fleet)) == 5
    metrics = requests.get(f"{intake}/metrics", timeout=10).text
    assert 'petitions_rate_limited_total{limit="SUBMIT_PHONE",service="intake"} 2.0' in metrics


def test_concurrent_single_submissions_are_written_in_groups_each_stored_and_published_once(fleet, intake_env):
    """Single submissions that arrive while others are being written are written together (group
    commit): every one still gets its own 201 and number, is stored once and published once, and a
    retry of one of them replays it."""
    intake = fleet.start("intake", extra_env=intake_env).url
    fleet.wait_ready()
    n = 24

    def submit(i: int) -> requests.Response:
        headers = {**HOTLINE, "Idempotency-Key": f"single-{i}"}
        return requests.post(f"{intake}/v1/petitions", json=petition(400 + i), headers=headers, timeout=60)

    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(submit, range(n)))
    assert [a.status_code for a in answers] == [201] * n, [a.text for a in answers if a.status_code != 201]
    ids = {a.json()["petition_id"] for a in answers}
    assert len(ids) == n
    assert stored_petitions(fleet) == ids
    assert published(fleet, ids) == ids
    again = submit(5)
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true"
    assert again.json()["petition_id"] == answers[5].json()["petition_id"]
    families = text_string_to_metric_families(requests.get(f"{intake}/metrics", timeout=5).text)
    sizes = next(f for f in families if f.name == "petitions_group_commit_size")
    samples = {
        s.name: s.value for s in sizes.samples if s.labels.get("writer") == "submissions" and "le" not in s.labels
    }
    assert samples["petitions_group_commit_size_sum"] == n + 1  # every submission went through a group
    assert samples["petitions_group_commit_size_count"] < n, "12 concurrent clients, yet no two written together"
