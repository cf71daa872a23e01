"""`petitions_consumer_lag` on the real broker: what a consumer has not read yet, per partition, from
the high watermarks its own fetches brought back."""

from __future__ import annotations

import threading
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client import CollectorRegistry

from petition_common.consumer import ConsumerLoop, LagReporter
from petition_common.contract import ContractValidator
from petition_common.envelope import Event
from petition_common.kafka_io import EventPublisher, ensure_topics
from petition_common.metrics import PlatformMetrics
from petition_common.topics import INTAKE
from tests.conftest import make_settings
from tests.support import eventually, kafka_client

CONTRACT = Path(__file__).resolve().parents[2] / "contract"
PID = "JZ20240717000123"


def _fill(topic: str, n: int) -> int:
    """n withdrawals of one petition (one key, so one partition); returns that partition."""
    producer = KafkaProducer(**kafka_client())
    sent = []
    for i in range(n):
        data = {"petition_id": PID, "withdrawn_at": f"2024-07-17T00:{i:02d}:00.000Z"}
        event = Event(type="petition.withdrawn", source="petitions/intake", subject=PID, data=data)
        sent.append(producer.send(topic, key=PID.encode(), value=event.to_bytes()))
    producer.flush()
    producer.close()
    return sent[0].get(timeout=10).partition


def _lag(registry: CollectorRegistry, group: str, partition: int) -> float | None:
    labels = {"service": "lagtest", "group": group, "topic": INTAKE, "partition": str(partition)}
    return registry.get_sample_value("petitions_consumer_lag", labels)


def test_lag_counts_the_messages_behind_the_position_and_forgets_unassigned_partitions(unique_prefix):
    settings = make_settings("lagtest", unique_prefix)
    ensure_topics(settings, [INTAKE])
    topic = settings.topic(INTAKE)
    partition = _fill(topic, 10)
    registry = CollectorRegistry()
    reporter = LagReporter(PlatformMetrics(registry, "lagtest"), "lagtest", "g", {topic: INTAKE}, every=0)
    consumer = KafkaConsumer(**kafka_client(), group_id=None, auto_offset_reset="earliest", max_poll_records=4)
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        reporter.report(consumer)
        assert _lag(registry, "g", partition) is None  # nothing fetched yet: unknown, not 0
        read = 0
        while read == 0:
            read = sum(len(records) for records in consumer.poll(timeout_ms=500).values())
        reporter.report(consumer)
        assert _lag(registry, "g", partition) == 10 - read
        while read < 10:
            read += sum(len(records) for records in consumer.poll(timeout_ms=500).values())
        reporter.report(consumer)
        assert _lag(registry, "g", partition) == 0
        other = TopicPartition(topic, (partition + 1) % settings.topic_partitions)
        consumer.assign([other])
        reporter.report(consumer)
        assert _lag(registry, "g", partition) is None  # moved away: its last value is dropped
    finally:
        consumer.close()


def test_the_consumer_loop_reports_its_lag_down_to_zero(unique_prefix):
    settings = make_settings("lagtest", unique_prefix)
    ensure_topics(settings, [INTAKE])
    partition = _fill(settings.topic(INTAKE), 5)
    registry = CollectorRegistry()
    stop = threading.Event()
    publisher = EventPublisher(settings)
    handled: list[str] = []
    loop = ConsumerLoop(
        settings,
        [INTAKE],
        {"petition.withdrawn": lambda event, meta: handled.append(event.id)},
        publisher,
        ContractValidator(CONTRACT),
        PlatformMetrics(registry, "lagtest"),
        stop,
    )
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        eventually(lambda: _assert(len(handled) == 5 and _lag(registry, settings.consumer_group, partition) == 0))
    finally:
        stop.set()
        thread.join(15)
        publisher.close()


def _assert(condition: bool) -> None:
    assert condition
