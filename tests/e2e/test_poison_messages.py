"""Garbage, oversized and schema-invalid messages go to the dead-letter topic with headers saying who,
when and why; the consumer moves on; the dead-letter command lists, shows and replays them."""

from __future__ import annotations

import subprocess
import sys
import uuid

import orjson
import requests
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from petition_common.envelope import Event
from tests.e2e.test_submission_event import BODY
from tests.support import eventually, kafka_client, read_topic


def _event(type_: str, data: dict) -> bytes:
    return Event(type=type_, source="petitions/test", subject="JZ20240101000001", data=data).to_bytes()


POISON = [
    ("unparseable", b"\x00\x01 not json at all"),
    ("unparseable", b'{"specversion": "1.0"}'),
    ("unparseable", b"[1, 2, 3]"),
    ("schema_invalid", _event("petition.submitted", {"petition_id": "JZ20240101000001"})),
    (
        "schema_invalid",
        _event(
            "petition.submitted",
            {  # oversized content: 900,000 characters
                "petition_id": "JZ20240101000001",
                "channel": "web",
                "category": "drainage",
                "content": "堵" * 300_000,
                "location": {"town": "", "village": ""},
                "citizen": {"name_masked": "刘*", "phone_masked": "138****1234"},
                "submitted_at": "2024-01-01T00:00:00.000Z",
            },
        ),
    ),
    (
        "schema_invalid",
        _event(
            "petition.submitted",
            {  # raw personal data where only masked data may go
                "petition_id": "JZ20240101000001",
                "channel": "web",
                "category": "drainage",
                "content": "堵了",
                "location": {"town": "", "village": ""},
                "citizen": {"name": "刘洋", "phone": "13812341234"},
                "submitted_at": "2024-01-01T00:00:00.000Z",
            },
        ),
    ),
    (
        "schema_invalid",
        _event(
            "petition.feedback_received",
            {  # a rating outside the contract's enum
                "petition_id": "JZ20240101000001",
                "satisfaction": "meh",
                "received_at": "2024-01-01T00:00:00Z",
            },
        ),
    ),
    (
        "handler_failed",
        _event(
            "petition.withdrawn",
            {  # valid, but for a petition routing never saw
                "petition_id": "JZ20240101000001",
                "withdrawn_at": "2024-01-01T00:00:00.000Z",
            },
        ),
    ),
]


def test_poison_messages_are_dead_lettered_and_the_consumer_moves_on(fleet):
    fleet.start("routing", extra_env={"CONSUMER_RETRY_BACKOFF_S": "0.05"})
    intake = fleet.start("intake")
    fleet.wait_ready()
    prefix = fleet.env["KAFKA_TOPIC_PREFIX"]
    producer = KafkaProducer(**kafka_client(), max_request_size=2_000_000)
    for _, value in POISON:
        producer.send(
            f"{prefix}petitions.intake.v1", key=b"JZ20240101000001", value=value, headers=[("note", b"poison")]
        ).get(timeout=10)
    producer.send(f"{prefix}petitions.intake.v1", key=b"JZ20240101000001", value=None).get(timeout=10)  # tombstone
    producer.close()

    # a real petition after the poison is still routed: the consumer moved on
    pid = requests.post(f"{intake.url}/v1/petitions", json=BODY, timeout=10).json()["petition_id"]

    def routed() -> None:
        routing_events = read_topic(
            f"{prefix}petitions.routing.v1", lambda ms: any(m["key"] == pid for m in ms), timeout_s=5
        )
        assert any(m["key"] == pid for m in routing_events)

    eventually(routed, timeout_s=60)

    letters = read_topic(f"{prefix}petitions.deadletter.v1", lambda ms: len(ms) >= len(POISON) + 1, timeout_s=30)
    assert len(letters) == len(POISON) + 1
    reasons = sorted(m["headers"]["dlq_reason"] for m in letters)
    assert reasons == sorted([r for r, _ in POISON] + ["unparseable"])
    for m in letters:
        h = m["headers"]
        assert h["dlq_consumer"].startswith("routing/")
        assert h["dlq_original_topic"] == f"{prefix}petitions.intake.v1"
        assert int(h["dlq_original_offset"]) >= 0 and h["dlq_at"].endswith("Z") and h["dlq_error"]
        if m["raw"] is not None:
            assert h["note"] == "poison"  # the original headers are kept
        assert m["key"] == "JZ20240101000001"
    assert {m["raw"] for m in letters} == {v for _, v in POISON} | {None}  # unchanged

    # the command an operator uses
    env = {**fleet.env}
    listing = _cli(env, "list")
    assert f"{len(letters)} dead letter(s)" in listing.stderr
    assert "schema_invalid" in listing.stdout and "handler_failed" in listing.stdout
    failed = next(m for m in letters if m["headers"]["dlq_reason"] == "handler_failed")
    ref = f"{failed['partition']}:{failed['offset']}"
    shown = _cli(env, "show", ref)
    assert "petition.withdrawn" in shown.stdout and "dlq_reason: handler_failed" in shown.stdout
    target = f"{prefix}replayed-{uuid.uuid4().hex[:6]}"
    # an operator's scratch topic: not one of the platform's, whose settings topic_config states
    admin = KafkaAdminClient(**kafka_client())
    admin.create_topics([NewTopic(target, 1, 1)])
    admin.close()
    assert "replayed 1" in _cli(env, "replay", ref, "--to", target).stderr
    replayed = read_topic(target, lambda ms: len(ms) >= 1, timeout_s=20)
    assert len(replayed) == 1 and replayed[0]["raw"] == failed["raw"] and replayed[0]["key"] == failed["key"]
    assert not any(k.startswith("dlq_reason") for k in replayed[0]["headers"])
    assert replayed[0]["headers"]["dlq_replayed_from"] == f"dlq:{ref}"
    assert orjson.loads(replayed[0]["raw"])["type"] == "petition.withdrawn"


def _base_env() -> dict[str, str]:
    import os

    return dict(os.environ)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "petition_common.deadletters", *args],
        env={**_base_env(), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result


def test_a_junk_flood_pauses_partitions_and_good_petitions_still_reach_every_service(fleet):
    """1,200 junk messages on the petition topics, then 100 good petitions: every consumer dead-letters
    the junk (pausing a flooding partition for a while instead of stopping), stays ready, and every
    good petition reaches routing, sla and stats."""
    env = {"CONSUMER_RETRY_BACKOFF_S": "0.05"}
    urls = {name: fleet.start(name, extra_env=env).url for name in ("intake", "routing", "sla", "stats")}
    fleet.wait_ready()
    prefix = fleet.env["KAFKA_TOPIC_PREFIX"]
    producer = KafkaProducer(**kafka_client(), linger_ms=20)
    junk_per_topic = 600
    for topic in ("petitions.intake.v1", "petitions.routing.v1"):
        for i in range(junk_per_topic):
            key = f"JZ20240101{i:06d}".encode()  # spread over every partition
            value = POISON[i % 4][1] if i % 4 < 3 else _event("petition.assigned", {"petition_id": key.decode()})
            producer.send(f"{prefix}{topic}", key=key, value=value)
    producer.flush(timeout=30)
    producer.close()

    http = requests.Session()
    pids = []
    for i in range(100):
        body = {
            **BODY,
            "content": f"{BODY['content']}（第{i}处）",
            "citizen": {"name": "刘洋", "phone": f"1381234{i:04d}"},
        }
        r = http.post(f"{urls['intake']}/v1/petitions", json=body, timeout=30)
        assert r.status_code == 201, r.text
        pids.append(r.json()["petition_id"])

    auth = {"Authorization": "Bearer dev-dispatcher"}

    def everywhere() -> None:
        summary = http.get(f"{urls['stats']}/v1/stats/summary", headers=auth, timeout=10).json()
        assert (summary["accepted"], summary["assigned"]) == (100, 100), summary
        for pid in pids:
            assert http.get(f"{urls['sla']}/v1/sla/petitions/{pid}", headers=auth, timeout=10).status_code == 200

    eventually(everywhere, timeout_s=180, interval_s=1)
    for name, url in urls.items():
        assert http.get(f"{url}/readyz", timeout=10).status_code == 200, name
    # each junk message dead-lettered once by each of the three services that read its topic, except the
    # petition.assigned ones on the intake topic, a type routing does not take from there (ignored)
    expected = 3 * 2 * junk_per_topic - junk_per_topic // 4
    letters = read_topic(f"{prefix}petitions.deadletter.v1", lambda ms: len(ms) >= expected, timeout_s=60)
    assert len(letters) == expected
    origin = ("dlq_consumer", "dlq_original_topic", "dlq_original_partition", "dlq_original_offset")
    assert len({tuple(m["headers"][h] for h in origin) for m in letters}) == expected
    floods = 0.0
    for url in urls.values():
        text = http.get(f"{url}/metrics", timeout=10).text
        floods += sum(
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith("petitions_deadletter_floods_total{")
        )
    assert floods > 0  # the flood path was taken, and nothing stopped
