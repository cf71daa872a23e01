"""The consumer loop's partition-assignment hook on the real broker: a partition owner that keeps its
own offsets (stats' checkpoints) is read from where its state says, learns of every record it
finished (handled, ignored or dead-lettered), has only what it calls durable committed, and may move a
partition back mid-batch (`Rewound`)."""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry

from petition_common.consumer import ConsumerLoop, MessageMeta, Rewound
from petition_common.contract import ContractValidator
from petition_common.envelope import Event
from petition_common.kafka_io import EventPublisher, ensure_topics
from petition_common.metrics import PlatformMetrics
from petition_common.topics import DEADLETTER, INTAKE
from tests.conftest import make_settings
from tests.support import eventually, kafka_client, read_topic

pytestmark = pytest.mark.integration

CONTRACT = Path(__file__).resolve().parents[2] / "contract"


class MemoryOwner:
    """Per-partition "state" = the next offset; `saved` plays the checkpoint."""

    def __init__(self, saved: dict[TopicPartition, int], durable: bool):
        self.saved = saved
        self.durable = durable
        self.state: dict[TopicPartition, int] = {}
        self.finished: list[tuple[int, int]] = []
        self.consumer: KafkaConsumer | None = None
        self.lock = threading.Lock()

    def assigned(self, consumer: KafkaConsumer, partitions: Collection[TopicPartition]) -> None:
        self.consumer = consumer
        for tp in partitions:
            self.state[tp] = self.saved.get(tp, 0)
            consumer.seek(tp, self.state[tp])

    def revoked(self, partitions: Collection[TopicPartition]) -> None:
        for tp in partitions:
            self.saved[tp] = self.state.pop(tp)

    def next_offset(self, tp: TopicPartition) -> int | None:
        return self.state.get(tp)

    def done(self, tp: TopicPartition, offset: int) -> None:
        self.state[tp] = offset + 1
        with self.lock:
            self.finished.append((tp.partition, offset))

    def polled(self, consumer: KafkaConsumer, idle: bool) -> Mapping[TopicPartition, OffsetAndMetadata]:
        if not self.durable:
            return {}
        self.saved.update(self.state)
        return {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in self.state.items()}

    def closed(self, clean: bool) -> None:
        if clean:
            self.saved.update(self.state)
        self.state.clear()

    def seek_back(self, tp: TopicPartition, offset: int) -> None:
        """What a reload from an older checkpoint does."""
        assert self.consumer is not None
        self.state[tp] = offset
        self.consumer.seek(tp, offset)


def _withdrawn(pid: str) -> bytes:
    data = {"petition_id": pid, "withdrawn_at": "2024-07-17T00:00:00.000Z"}
    return Event(type="petition.withdrawn", source="petitions/intake", subject=pid, data=data).to_bytes()


def _run(loop: ConsumerLoop, stop: threading.Event, until: object, timeout_s: float = 60) -> None:
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        eventually(until, timeout_s=timeout_s, interval_s=0.2)  # type: ignore[arg-type]
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()


def _loop(settings, handlers, owner: MemoryOwner, stop: threading.Event, **kw) -> ConsumerLoop:  # type: ignore[no-untyped-def]
    return ConsumerLoop(
        settings,
        [INTAKE],
        handlers,
        EventPublisher(settings),
        ContractValidator(CONTRACT),
        PlatformMetrics(CollectorRegistry(), "ownertest"),
        stop,
        owner=owner,
        **kw,
    )


def test_an_owner_is_read_from_its_own_offsets_and_only_what_it_calls_durable_is_committed(unique_prefix) -> None:
    settings = make_settings("ownertest", unique_prefix, retry_backoff_s=0.05)
    ensure_topics(settings, [INTAKE, DEADLETTER])
    topic = settings.topic(INTAKE)
    producer = KafkaProducer(**kafka_client(), linger_ms=10)
    first = [f"JZ20240101{i:06d}" for i in range(20)]
    for pid in first:
        producer.send(topic, key=pid.encode(), value=_withdrawn(pid))
    for i in range(4):  # junk: dead-lettered once
        producer.send(topic, key=f"JZ20240103{i:06d}".encode(), value=b"\x00 not json")
    for i in range(4):  # a type the loop has no handler for, named in the header: ignored unread
        producer.send(topic, key=f"JZ20240104{i:06d}".encode(), value=b"\x00 junk", headers=[("ce_type", b"x.other")])
    producer.flush()

    handled: list[str] = []

    def withdrawn(event: Event, meta: MessageMeta) -> None:
        handled.append(event.data["petition_id"])

    saved: dict[TopicPartition, int] = {}
    owner = MemoryOwner(saved, durable=False)
    stop = threading.Event()
    _run(_loop(settings, {"petition.withdrawn": withdrawn}, owner, stop), stop, lambda: _count(owner, 28))
    assert sorted(handled) == sorted(first)
    letters = read_topic(settings.topic(DEADLETTER), lambda ms: len(ms) >= 4, timeout_s=20)
    assert len(letters) == 4 and {m["headers"]["dlq_reason"] for m in letters} == {"unparseable"}
    assert sum(saved.values()) == 28  # the clean stop "checkpointed" every finished record
    assert _committed(settings, saved) == {}  # nothing was durable by the owner's word: nothing committed

    # a second run, on the owner's offsets (Kafka has none for the group): only the new records
    second = [f"JZ20240102{i:06d}" for i in range(10)]
    for pid in second:
        producer.send(topic, key=pid.encode(), value=_withdrawn(pid))
    producer.flush()
    producer.close()
    handled.clear()
    owner = MemoryOwner(saved, durable=True)
    stop = threading.Event()
    _run(_loop(settings, {"petition.withdrawn": withdrawn}, owner, stop), stop, lambda: _count(owner, 10))
    assert sorted(handled) == sorted(second)
    assert len(read_topic(settings.topic(DEADLETTER), lambda ms: len(ms) > 4, timeout_s=3)) == 4  # no repeat
    assert _committed(settings, saved) == {tp: offset for tp, offset in saved.items() if offset}


def test_a_rewound_partition_drops_the_rest_of_its_batch_and_reads_again_from_where_the_owner_sought(
    unique_prefix,
) -> None:
    settings = make_settings("ownertest", unique_prefix, retry_backoff_s=0.05)
    ensure_topics(settings, [INTAKE, DEADLETTER])
    pid = "JZ20240101000001"  # one key: one partition, in order
    producer = KafkaProducer(**kafka_client(), linger_ms=50)
    for _ in range(10):
        producer.send(settings.topic(INTAKE), key=pid.encode(), value=_withdrawn(pid))
    producer.flush()
    producer.close()

    seen: list[int] = []
    owner = MemoryOwner({}, durable=True)

    def withdrawn(event: Event, meta: MessageMeta) -> str:
        seen.append(meta.offset)
        if meta.offset == 5 and seen.count(5) == 1:  # the state was stale: reload from offset 2
            owner.seek_back(TopicPartition(meta.topic, meta.partition), 2)
            raise Rewound
        return "applied"

    stop = threading.Event()
    loop = _loop(settings, {"petition.withdrawn": withdrawn}, owner, stop, max_poll_records=500)
    _run(loop, stop, lambda: _assert(seen[-1:] == [9], seen))
    assert seen == [0, 1, 2, 3, 4, 5, 2, 3, 4, 5, 6, 7, 8, 9]
    assert len({p for p, _ in owner.finished}) == 1
    assert [o for _, o in owner.finished] == [0, 1, 2, 3, 4, 2, 3, 4, 5, 6, 7, 8, 9]  # 5 finished once
    consumed = loop.metrics.registry.get_sample_value(
        "petitions_consumed_total",
        {"service": "ownertest", "topic": INTAKE, "type": "petition.withdrawn", "outcome": "applied"},
    )
    assert consumed == 13  # the handler's outcome is what is counted


def _assert(ok: bool, what: object) -> None:
    assert ok, what


def _count(owner: MemoryOwner, n: int) -> None:
    with owner.lock:
        assert len(owner.finished) >= n, len(owner.finished)


def _committed(settings, saved: dict[TopicPartition, int]) -> dict[TopicPartition, int]:  # type: ignore[no-untyped-def]
    consumer = KafkaConsumer(**kafka_client(), group_id=settings.consumer_group, enable_auto_commit=False)
    try:
        out = {}
        for tp in saved:
            offset = consumer.committed(tp)
            if offset is not None:
                out[tp] = offset
        return out
    finally:
        consumer.close()
