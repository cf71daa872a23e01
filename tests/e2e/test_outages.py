"""What intake does when a dependency goes away: the tests stop the real broker and database."""

from __future__ import annotations

import subprocess

import requests

from tests.e2e.test_submission_event import BODY
from tests.support import STACK, eventually, read_topic


def _stack(*args: str) -> None:
    subprocess.run([*STACK, *args], check=True)


def test_broker_down_submissions_still_accepted_and_published_on_return(fleet):
    intake = fleet.start("intake")
    fleet.wait_ready()
    _stack("stop", "kafka")
    try:

        def not_ready() -> None:
            resp = requests.get(f"{intake.url}/readyz", timeout=10)
            assert resp.status_code == 503
            assert "kafka" in resp.json()["error"]["fields"]

        eventually(not_ready, timeout_s=20)
        receipts = []
        for _ in range(3):
            resp = requests.post(f"{intake.url}/v1/petitions", json=BODY, timeout=30)
            assert resp.status_code == 201, resp.text
            receipts.append(resp.json()["petition_id"])
    finally:
        _stack("start", "kafka")
    topic = f"{fleet.env['KAFKA_TOPIC_PREFIX']}petitions.intake.v1"
    messages = read_topic(topic, lambda ms: set(receipts) <= {m["key"] for m in ms}, timeout_s=60)
    published = [m["key"] for m in messages if m["key"] in receipts]
    assert sorted(published) == sorted(receipts)  # each exactly once
    eventually(lambda: _assert_status(intake.url, 200), timeout_s=30)


def test_database_down_answers_503_with_retry_after_and_stores_nothing(fleet):
    intake = fleet.start("intake")
    fleet.wait_ready()
    _stack("stop", "ferretdb")
    try:
        resp = requests.post(f"{intake.url}/v1/petitions", json=BODY, timeout=30)
        assert resp.status_code == 503, resp.text
        assert resp.headers["Retry-After"]
        assert resp.json()["error"]["code"] == "database_unavailable"
        _assert_status(intake.url, 503)
    finally:
        _stack("start", "ferretdb")
    eventually(lambda: _assert_status(intake.url, 200), timeout_s=30)
    resp = requests.post(f"{intake.url}/v1/petitions", json=BODY, timeout=30)
    assert resp.status_code == 201


def _assert_status(url: str, status: int) -> None:
    assert requests.get(f"{url}/readyz", timeout=10).status_code == status
