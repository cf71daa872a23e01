"""Garbage, oversized and schema-invalid messages go to the dead-letter topic with headers saying who,
when and why; the consumer moves on; the dead-letter command lists, shows and replays them."""

from __future__ import annotations

import subprocess
import sys
import uuid

import orjson
import requests
from kafka import KafkaProducer

from petition_common.envelope import Event
from tests.e2e.test_submission_event import BODY
from tests.support import KAFKA, eventually, read_topic


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
    producer = KafkaProducer(bootstrap_servers=KAFKA, max_request_size=2_000_000)
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
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from petition_common.kafka_io import ensure_topics;"
            "from petition_common.config import Settings;"
            f"ensure_topics(Settings.from_env('cli'), ['{target.removeprefix(prefix)}'])",
        ],
        env={**_base_env(), **env},
        check=True,
    )
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
