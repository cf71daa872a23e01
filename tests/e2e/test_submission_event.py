"""Foundation end to end: a petition POSTed to the running intake service comes out on Kafka as a
`petition.submitted` CloudEvent that matches the contract."""

from __future__ import annotations

import hashlib
import re

import requests

from petition_common.config import REPO_ROOT
from petition_common.contract import ContractValidator
from petition_common.envelope import Event
from tests.support import read_topic

BODY = {
    "channel": "miniprogram",
    "category": "drainage",
    "content": "大王庄新村12号楼后面的下水道堵了，污水漫到路上，已经三天了。",
    "location": {"town": "王台镇", "village": "大王庄新村", "address": "12号楼后"},
    "citizen": {"name": "刘洋", "phone": "13812341234"},
}


def test_submitted_petition_reaches_kafka_as_contract_event(fleet):
    intake = fleet.start("intake")
    fleet.wait_ready()

    resp = requests.post(f"{intake.url}/v1/petitions", json=BODY, timeout=10)
    assert resp.status_code == 201, resp.text
    receipt = resp.json()
    assert re.fullmatch(r"JZ\d{8}\d{6}", receipt["petition_id"])
    assert len(receipt["tracking_code"]) >= 16
    assert receipt["status"] == "submitted"

    topic = f"{fleet.env['KAFKA_TOPIC_PREFIX']}petitions.intake.v1"
    messages = read_topic(topic, lambda ms: any(m["key"] == receipt["petition_id"] for m in ms))
    mine = [m for m in messages if m["key"] == receipt["petition_id"]]
    assert len(mine) == 1
    msg = mine[0]
    body = msg["value"]
    assert body["specversion"] == "1.0"
    assert body["type"] == "petition.submitted"
    assert body["source"] == "petitions/intake"
    assert body["subject"] == receipt["petition_id"]
    assert body["datacontenttype"] == "application/json"
    assert body["time"].endswith("Z")
    assert msg["headers"] == {
        "ce_specversion": "1.0",
        "ce_id": body["id"],
        "ce_type": "petition.submitted",
        "ce_source": "petitions/intake",
    }
    data = body["data"]
    assert data["petition_id"] == receipt["petition_id"]
    ref = data["citizen"].pop("ref")
    assert data["citizen"] == {"name_masked": "刘*", "phone_masked": "138****1234"}
    # the citizen's pseudonym: a keyed digest, neither the phone nor a plain hash anyone can recompute
    assert len(ref) == 22 and "13812341234" not in ref
    assert ref not in {hashlib.sha256(b"13812341234").hexdigest()[:22], hashlib.md5(b"13812341234").hexdigest()[:22]}
    data["citizen"]["ref"] = ref
    assert data["location"]["village"] == "大王庄新村"
    # no raw personal data anywhere in the message
    assert "13812341234" not in msg["raw"].decode()
    assert "刘洋" not in msg["raw"].decode()
    # and the whole event validates against the project's JSON Schemas
    ContractValidator(REPO_ROOT / "contract").validate(Event.from_dict(body, key=msg["key"]))


def test_metrics_and_health_endpoints(fleet):
    intake = fleet.start("intake")
    fleet.wait_ready()
    assert requests.get(f"{intake.url}/healthz", timeout=5).json()["status"] == "ok"
    assert requests.get(f"{intake.url}/readyz", timeout=5).status_code == 200
    metrics = requests.get(f"{intake.url}/metrics", timeout=5)
    assert metrics.status_code == 200
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert "petitions_http_requests_total" in metrics.text
