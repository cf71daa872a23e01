"""Rate limits on the public endpoints (issue #16), over the real stack: intake as processes on the
local Kafka and FerretDB, with the shipped default limits (RATE_LIMIT_SCALE=1; the rest of the suite
runs them 100 times larger, tests/conftest.py).

- A burst from one address over the submission limit (10 a minute) gets 429 with Retry-After in the
  contract's error shape, and nothing of the refused requests is stored or published. Without a
  trusted proxy, a made-up X-Forwarded-For does not get a client a fresh count.
- Two instances of intake share one count, also when the burst comes at both at once.
- One phone is limited (5 a day) across addresses, and with a trusted proxy every address counts
  on its own.
- A staff token is limited per token on a staff service.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from itertools import count

import requests
from pymongo import MongoClient

from tests.support import MONGO, eventually, read_topic

DEFAULTS = {"RATE_LIMIT_SCALE": "1"}
_phones = count(1000)


def body(phone: str | None = None) -> dict:
    n = next(_phones)
    return {
        "channel": "web",
        "category": "roads",
        "content": f"第{n}号路灯不亮，晚上看不清路，请尽快修理。编号{n * 7919}",
        "location": {"town": "城关镇", "village": "东街村"},
        "citizen": {"name": "王五", "phone": phone or f"139{n:08d}"},
    }


def early_in_a_minute(need_s: float = 20) -> None:
    """Wait (at most a minute) until at least `need_s` of the current minute window are left, so that
    a burst is counted in one fixed window (windows start on the minute, docs/security.md)."""
    eventually(lambda: _assert(60 - time.time() % 60 >= need_s), timeout_s=65, interval_s=0.5)


def _assert(condition: bool) -> None:
    assert condition


def _healthy(url: str) -> bool:
    """/healthz answers 200 (the web pages' /readyz would need every service running)."""
    try:
        return requests.get(f"{url}/healthz", timeout=5).status_code == 200
    except requests.ConnectionError:
        return False


def assert_rate_limited(resp: requests.Response) -> int:
    assert resp.status_code == 429, resp.text
    error = resp.json()["error"]
    assert error["code"] == "rate_limited" and error["message"] and isinstance(error["fields"], dict)
    wait = int(resp.headers["Retry-After"])
    assert 1 <= wait <= 86_400
    return wait


def stored_petitions(fleet) -> set[str]:
    """Every petition intake's database holds a commit of (the aggregate ids of its commits)."""
    client = MongoClient(MONGO)
    try:
        db = client[f"{fleet.env['MONGO_DB_PREFIX']}intake"]
        return {doc["aggregate_id"] for doc in db["petitions_commits"].find({}, {"aggregate_id": 1})}
    finally:
        client.close()


def published(fleet, expected: set[str]) -> set[str]:
    """The petition ids of `petition.submitted` on the intake topic, once all of `expected` are there."""
    topic = f"{fleet.env['KAFKA_TOPIC_PREFIX']}petitions.intake.v1"

    def ids(messages: list[dict]) -> set[str]:
        return {m["value"]["data"]["petition_id"] for m in messages if m["value"]["type"] == "petition.submitted"}

    return ids(read_topic(topic, lambda ms: expected <= ids(ms), timeout_s=30))


def test_a_burst_over_the_address_limit_is_refused_and_nothing_of_it_is_stored(fleet):
    intake = fleet.start("intake", extra_env=DEFAULTS).url
    fleet.wait_ready()
    http = requests.Session()
    early_in_a_minute()
    accepted = []
    for _ in range(10):
        r = http.post(f"{intake}/v1/petitions", json=body(), timeout=30)
        assert r.status_code == 201, r.text
        accepted.append(r.json()["petition_id"])
    waits = []
    for i in range(5):  # a different made-up address each time: no proxy is trusted, so it changes nothing
        r = http.post(f"{intake}/v1/petitions", json=body(), headers={"X-Forwarded-For": f"198.51.100.{i}"}, timeout=30)
        waits.append(assert_rate_limited(r))
    assert all(w <= 60 for w in waits)  # the minute window is the one exceeded
    # nothing of the refused requests was stored or published: exactly the accepted petitions are
    assert published(fleet, set(accepted)) == set(accepted)
    assert stored_petitions(fleet) == set(accepted)
    # the other public endpoints have their own counts: reading one's petition still works
    r = http.get(f"{intake}/v1/petitions/{accepted[0]}", params={"tracking_code": "x" * 16}, timeout=10)
    assert r.status_code == 404
    metrics = http.get(f"{intake}/metrics", timeout=10).text
    assert 'petitions_rate_limited_total{limit="SUBMIT_ADDRESS",service="intake"} 5.0' in metrics


def test_two_instances_share_the_count(fleet):
    first = fleet.start("intake", extra_env=DEFAULTS).url
    second = fleet.start("intake", instance="intake-2", extra_env=DEFAULTS).url
    fleet.wait_ready()
    early_in_a_minute()

    def submit(i: int) -> requests.Response:
        return requests.post(f"{(first, second)[i % 2]}/v1/petitions", json=body(), timeout=30)

    with ThreadPoolExecutor(8) as pool:  # both instances at once, several requests in flight on each
        answers = list(pool.map(submit, range(24)))
    accepted = {r.json()["petition_id"] for r in answers if r.status_code == 201}
    refused = [r for r in answers if r.status_code != 201]
    assert len(accepted) == 10, [r.status_code for r in answers]
    for r in refused:
        assert_rate_limited(r)
    assert {r.url.split("/v1/")[0] for r in refused} == {first, second}  # each instance refused some
    assert published(fleet, accepted) == accepted
    assert stored_petitions(fleet) == accepted


def test_one_phone_is_limited_across_addresses_behind_a_trusted_proxy(fleet):
    intake = fleet.start("intake", extra_env={**DEFAULTS, "TRUSTED_PROXIES": "1"}).url
    fleet.wait_ready()
    http = requests.Session()

    def submit(address: str, phone: str | None = None) -> requests.Response:
        # the client's own X-Forwarded-For, then the address our one trusted proxy appended
        xff = f"10.9.9.9, {address}"
        return http.post(f"{intake}/v1/petitions", json=body(phone), headers={"X-Forwarded-For": xff}, timeout=30)

    phone = "13700001111"
    for i in range(5):
        assert submit(f"203.0.113.{i}", phone).status_code == 201
    r = submit("203.0.113.99", phone)
    assert_rate_limited(r)
    assert r.json()["error"]["fields"] == {"citizen.phone": "too many petitions today"}
    assert r.headers["Retry-After"] and int(r.headers["Retry-After"]) > 0
    # the same phone written differently is the same citizen
    assert_rate_limited(submit("203.0.113.98", "+86 137 0000 1111"))
    # a body without a valid phone is not counted for a phone, and answered 400 as before
    bad = {**body(), "citizen": {"name": "王五", "phone": "12"}}
    assert http.post(f"{intake}/v1/petitions", json=bad, timeout=30).status_code == 400
    # every address behind the proxy has its own count: one exhausted, the next still submits
    early_in_a_minute()
    answers = [submit("192.0.2.1").status_code for _ in range(11)]
    assert answers == [201] * 10 + [429]
    assert submit("192.0.2.2").status_code == 201


def test_a_staff_token_is_limited_per_token(fleet):
    sla = fleet.start("sla", extra_env={**DEFAULTS, "RATE_LIMIT_STAFF": "3/minute"}).url
    fleet.wait_ready()
    early_in_a_minute()
    dispatcher = {"Authorization": "Bearer dev-dispatcher"}
    auditor = {"Authorization": "Bearer dev-auditor"}
    for _ in range(3):
        assert requests.get(f"{sla}/v1/sla/overdue", headers=dispatcher, timeout=10).status_code == 200
    assert_rate_limited(requests.get(f"{sla}/v1/sla/overdue", headers=dispatcher, timeout=10))
    assert requests.get(f"{sla}/v1/sla/overdue", headers=auditor, timeout=10).status_code == 200
    # probes are never limited
    assert all(requests.get(f"{sla}/readyz", timeout=10).status_code == 200 for _ in range(5))


def test_citizens_of_the_web_pages_are_counted_each_by_their_own_address(fleet):
    """The pages call intake from one address; each call carries the citizen's address, signed with
    the server key, so one citizen's reads do not use up everyone's."""
    intake = fleet.start("intake", extra_env={**DEFAULTS, "RATE_LIMIT_READ_ADDRESS": "3/minute"}).url
    fleet.wait_ready()
    # the test stands in for the proxy in front of the pages: it says who the browser is
    web = fleet.start("web", extra_env={"WEB_INTAKE_URL": intake, "TRUSTED_PROXIES": "1"}).url
    eventually(lambda: _assert(_healthy(web)), timeout_s=60)
    receipt = requests.post(f"{intake}/v1/petitions", json=body(), timeout=30).json()
    page = f"{web}/track/{receipt['petition_id']}"
    code = {"code": receipt["tracking_code"]}

    def track(address: str) -> int:
        return requests.get(page, params=code, headers={"X-Forwarded-For": address}, timeout=30).status_code

    early_in_a_minute()
    assert [track("203.0.113.10") for _ in range(4)] == [200, 200, 200, 404]  # the 4th: intake said 429
    assert track("203.0.113.11") == 200  # another citizen of the same pages has a count of their own
    # and nobody can claim an address by writing the header themselves
    forged = {"X-Petitions-Client": f"203.0.113.12;{int(time.time() // 60)};AAAAAAAAAAAAAAAAAAAAAAAA"}
    direct = f"{intake}/v1/petitions/{receipt['petition_id']}"
    answers = [
        requests.get(direct, params={"tracking_code": code["code"]}, headers=forged, timeout=10) for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]  # counted on the socket's address
    metrics = requests.get(f"{intake}/metrics", timeout=10).text
    assert 'petitions_rate_limited_total{limit="READ_ADDRESS",service="intake"} 2.0' in metrics
