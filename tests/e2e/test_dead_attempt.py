"""The fault suite's finding: a good petition must get 201 or 503 (with Retry-After), never 500. An
attempt that died between its outbox marker and its commit holds the petition's number; a retry
with the same Idempotency-Key answers 503 until the relay voids that version, then 201 on top."""

from __future__ import annotations

import hashlib

import requests
from pymongo import MongoClient

from petition_common.store import AggregateStore, OutboxRelay
from petition_kernel.times import utc_now
from services.intake.domain import body_fingerprint
from tests.e2e.test_submission_event import BODY
from tests.support import MONGO, read_topic

KEY = "the-attempt-that-died"
PID = "JZ20200101000001"


def test_a_retry_after_a_dead_attempt_is_503_then_accepted(fleet):
    intake = fleet.start("intake").url
    fleet.wait_ready()
    with MongoClient(MONGO, tz_aware=True) as client:
        db = client[f"{fleet.env['MONGO_DB_PREFIX']}intake"]
        # what a process killed between its outbox marker and its commit leaves behind
        db["idempotency"].insert_one(
            {
                "_id": "idem:" + hashlib.sha256(KEY.encode()).hexdigest(),
                "fingerprint": body_fingerprint(BODY),
                "at": utc_now(),
                "petition_id": PID,
                "nonce": "n0nce-of-the-dead-attempt",
                "tracking_code": "code-of-the-dead-attempt",  # the form before nonces
            }
        )
        db["outbox"].insert_one(
            {"_id": f"{PID}:000001", "store": "petitions", "aggregate_id": PID, "seq": 1, "at": utc_now()}
        )

        retry = requests.post(f"{intake}/v1/petitions", json=BODY, headers={"Idempotency-Key": KEY}, timeout=10)
        assert retry.status_code == 503, retry.text
        assert int(retry.headers["Retry-After"]) > 0

        # the relay gives up on the dead attempt (a void commit), as it does after void_after_s
        OutboxRelay({"petitions": AggregateStore(db, "petitions")}, grace_s=0, void_after_s=0).run_once()

    accepted = requests.post(f"{intake}/v1/petitions", json=BODY, headers={"Idempotency-Key": KEY}, timeout=10)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["petition_id"] == PID
    code = accepted.json()["tracking_code"]
    assert requests.get(f"{intake}/v1/petitions/{PID}", params={"tracking_code": code}, timeout=10).status_code == 200
    topic = f"{fleet.env['KAFKA_TOPIC_PREFIX']}petitions.intake.v1"
    assert [m["key"] for m in read_topic(topic, lambda ms: len(ms) >= 1)] == [PID]
