"""The consumer's fetch waits at the broker for a batch (`fetch_min_bytes`, `fetch_max_wait_ms`):
events that trickle in within the wait reach the handler together (a poll batch the services write in
one round of commands), instead of one batch (and one round) each."""

from __future__ import annotations

import threading
import time
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
from tests.support import eventually, kafka_client

CONTRACT = Path(__file__).resolve().parents[2] / "contract"
PID = "JZ20240717000124"


def _withdrawn(n: int) -> Event:
    data = {"petition_id": PID, "withdrawn_at": f"2024-07-17T00:{n:02d}:00.000Z"}
    return Event(type="petition.withdrawn", source="petitions/intake", subject=PID, data=data)


def test_events_trickling_in_within_the_fetch_wait_arrive_together(unique_prefix):
    settings = make_settings("fetchtest", unique_prefix, fetch_min_bytes=16_384, fetch_max_wait_ms=2_000)
    ensure_topics(settings, [INTAKE, DEADLETTER])
    publisher = EventPublisher(settings)
    batches: list[list[str]] = []
    lock = threading.Lock()

    def batch(events: list[tuple[Event, MessageMeta]]) -> None:
        with lock:
            batches.append([e.id for e, _ in events])

    stop = threading.Event()
    loop = ConsumerLoop(
        settings,
        [INTAKE],
        {"petition.withdrawn": lambda event, meta: batch([(event, meta)])},  # a poll of one event comes here
        publisher,
        ContractValidator(CONTRACT),
        PlatformMetrics(CollectorRegistry(), "fetchtest"),
        stop,
        batch_handler=batch,
    )
    thread = threading.Thread(target=loop.run, daemon=True)
    producer = KafkaProducer(**kafka_client())
    try:
        first = _withdrawn(0)
        producer.send(settings.topic(INTAKE), key=PID.encode(), value=first.to_bytes()).get(timeout=10)
        thread.start()
        eventually(lambda: _assert_equal(batches, [[first.id]]), timeout_s=60)  # the loop is polling now
        trickle = [_withdrawn(n) for n in range(1, 9)]
        for event in trickle:  # one produce request each, 25 ms apart: ~0.2 s, well inside the wait
            producer.send(settings.topic(INTAKE), key=PID.encode(), value=event.to_bytes()).get(timeout=10)
            time.sleep(0.025)
        eventually(lambda: _assert_equal([i for b in batches[1:] for i in b], [e.id for e in trickle]), timeout_s=30)
        # one batch, or two if a fetch's wait ran out mid-trickle; without the wait each event is
        # fetched on its own (the fetch returns at the first byte: 8 batches here)
        assert len(batches) - 1 <= 2, batches
    finally:
        stop.set()
        thread.join(15)
        producer.close()
        publisher.close()


def _assert_equal(actual: object, expected: object) -> None:
    assert actual == expected
