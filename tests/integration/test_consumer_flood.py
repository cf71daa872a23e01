"""A dead-letter flood on the real broker: the consumer loop holds the flooding partition back for a
while instead of stopping, and every message — junk and good — is handled or dead-lettered once.

With max_poll_records small, records beyond the flooding one are buffered when it floods: the case in
which kafka-python 3.0.12's pause()/resume() would never fetch the partition again (FloodHold)."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from petition_common.consumer import ConsumerLoop, MessageMeta
from petition_common.contract import ContractValidator
from petition_common.envelope import Event
from petition_common.kafka_io import EventPublisher, ensure_topics
from petition_common.metrics import PlatformMetrics
from petition_common.topics import DEADLETTER, INTAKE
from tests.conftest import make_settings
from tests.support import eventually, kafka_client, read_topic

CONTRACT = Path(__file__).resolve().parents[2] / "contract"


def _withdrawn(pid: str) -> bytes:
    data = {"petition_id": pid, "withdrawn_at": "2024-07-17T00:00:00.000Z"}
    return Event(type="petition.withdrawn", source="petitions/intake", subject=pid, data=data).to_bytes()


def test_a_flooded_partition_is_held_then_read_on_and_nothing_is_lost(unique_prefix) -> None:
    settings = make_settings("floodtest", unique_prefix, retry_backoff_s=0.05)
    ensure_topics(settings, [INTAKE, DEADLETTER])
    producer = KafkaProducer(**kafka_client(), linger_ms=10)
    junk, good = 150, 40
    for i in range(junk):  # junk first on every partition, then good petitions behind it
        producer.send(settings.topic(INTAKE), key=f"JZ20240101{i:06d}".encode(), value=b"\x00 not json")
    good_ids = [f"JZ20240102{i:06d}" for i in range(good)]
    for pid in good_ids:
        producer.send(settings.topic(INTAKE), key=pid.encode(), value=_withdrawn(pid))
    producer.flush()
    producer.close()

    handled: list[str] = []
    lock = threading.Lock()

    def one(event: Event, meta: MessageMeta) -> None:
        with lock:
            handled.append(event.data["petition_id"])

    metrics = PlatformMetrics(CollectorRegistry(), "floodtest")
    stop = threading.Event()
    loop = ConsumerLoop(
        settings,
        [INTAKE],
        {"petition.withdrawn": one},
        EventPublisher(settings),
        ContractValidator(CONTRACT),
        metrics,
        stop,
        deadletter_limit=10,  # every partition floods, several times
        max_poll_records=20,  # and records beyond the flooding one are buffered when it does
    )
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        eventually(lambda: _all_handled(handled, lock, good_ids), timeout_s=120, interval_s=0.5)
        letters = read_topic(settings.topic(DEADLETTER), lambda ms: len(ms) >= junk, timeout_s=30)
    finally:
        stop.set()
        thread.join(timeout=30)
    origins = Counter((m["headers"]["dlq_original_partition"], m["headers"]["dlq_original_offset"]) for m in letters)
    assert len(origins) == junk and set(origins.values()) == {1}  # each junk message once
    assert sorted(handled) == sorted(good_ids)  # each good one once
    floods = metrics.registry.get_sample_value(
        "petitions_deadletter_floods_total", {"service": "floodtest", "topic": INTAKE}
    )
    assert floods is not None and floods >= 4
    assert metrics.registry.get_sample_value("petitions_consumer_paused_partitions", {"service": "floodtest"}) == 0


def _all_handled(handled: list[str], lock: threading.Lock, wanted: list[str]) -> None:
    with lock:
        assert sorted(set(handled)) == sorted(wanted), f"{len(set(handled))} of {len(wanted)}"
