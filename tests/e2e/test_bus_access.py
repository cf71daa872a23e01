"""The bus trusts no one it does not know (abuse probe: a forged `petition.closed` claiming source
`petitions/routing` was accepted, and intake showed the petition closed). Every client authenticates
(SASL/SCRAM), and ACLs let each service write only its own topic; other government systems read as
`reader` and write nothing."""

from __future__ import annotations

import pytest
import requests
from kafka import KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError

from petition_common.envelope import Event
from petition_devtools import kafka_access
from tests.e2e.test_submission_event import BODY
from tests.support import KAFKA, diagnosis, eventually


def _as(user: str | None, **kwargs) -> dict:
    """kafka-python arguments for `user` (None: no credentials at all)."""
    config = {"bootstrap_servers": KAFKA, "request_timeout_ms": 5000, **kwargs}
    if user is not None:
        config |= {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-256",
            "sasl_plain_username": user,
            "sasl_plain_password": kafka_access.passwords()[user],
        }
    return config


def _forge(user: str | None, topic: str, pid: str) -> None:
    """Try to publish a petition.closed for `pid` that claims to come from routing."""
    forged = Event(
        type="petition.closed",
        source="petitions/routing",
        subject=pid,
        data={"petition_id": pid, "closed_at": "2026-01-01T00:00:00.000Z", "closed_by": "staff"},
    )
    # a known api_version: the constructor does not contact the broker, so a refused client can be closed
    producer = KafkaProducer(**_as(user, max_block_ms=5000, api_version=(2, 8)))
    try:
        producer.send(topic, key=pid.encode(), value=forged.to_bytes(), headers=[("ce_type", b"petition.closed")]).get(
            timeout=10
        )
    finally:
        producer.close(timeout=5)


def test_strangers_and_other_services_cannot_write_a_services_topic(fleet):
    assert kafka_access.passwords() is not None, "the local stack runs Kafka with SASL"
    intake = fleet.start("intake").url
    fleet.start("routing")
    fleet.wait_ready()
    prefix = fleet.env["KAFKA_TOPIC_PREFIX"]
    routing_topic = f"{prefix}petitions.routing.v1"
    receipt = requests.post(f"{intake}/v1/petitions", json=BODY, timeout=10).json()
    pid, code = receipt["petition_id"], receipt["tracking_code"]

    def status() -> str:
        return requests.get(f"{intake}/v1/petitions/{pid}", params={"tracking_code": code}, timeout=10).json()["status"]

    def assigned() -> None:
        assert status() == "assigned"

    try:
        eventually(assigned, timeout_s=60)
    except AssertionError as exc:  # say where the event stopped (a full CI run once saw it stay submitted)
        raise AssertionError(f"{exc}\n{diagnosis(fleet)}") from exc

    for stranger in (None, "intake", "reader", "sla"):  # no credentials; another service; the reader
        with pytest.raises(KafkaError):
            _forge(stranger, routing_topic, pid)
    # the reader reads what it is meant to, in a group of its own
    consumer = KafkaConsumer(
        routing_topic, **_as("reader", group_id=f"{prefix}reader-ops"), auto_offset_reset="earliest"
    )
    try:
        got = []
        for _ in range(20):
            got += [r for records in consumer.poll(500).values() for r in records]
            if got:
                break
        assert any(r.key == pid.encode() for r in got)
    finally:
        consumer.close()
    assert status() == "assigned"  # nothing forged reached intake
