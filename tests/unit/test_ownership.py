"""petition_common.ownership: a lease on a petition holds only while this member holds the petition's
partition of every topic and is demonstrably in its group; any change of the assignment voids it."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from kafka import TopicPartition
from kafka.partitioner.default import DefaultPartitioner

from petition_common.fakes import GroupMember
from petition_common.ownership import Ownership, partition_of

TOPICS = ("intake", "routing")


def every(number: int) -> list[TopicPartition]:
    return [TopicPartition(t, number) for t in TOPICS]


def key_on(number: int, partitions: int = 4) -> str:
    return next(k for k in (f"P{i}" for i in range(1000)) if partition_of(k, partitions) == number)


@pytest.fixture
def owned() -> tuple[Ownership, GroupMember]:
    ownership, consumer = Ownership(TOPICS), GroupMember(TOPICS)
    ownership.assigned(consumer, every(0) + every(1))
    ownership.polled(consumer)
    return ownership, consumer


def test_partition_of_is_where_the_producers_default_partitioner_puts_a_key() -> None:
    cluster = SimpleNamespace(
        topics=lambda: {"t"},
        partitions_for_topic=lambda t: set(range(7)),
        available_partitions_for_topic=lambda t: set(),
    )
    for key in ["P2026-000001", "P2026-123456", "x", "诉求-1"]:
        raw = key.encode("utf-8")
        assert partition_of(key, 7) == DefaultPartitioner().partition("t", key, raw, None, None, cluster)


def test_a_lease_is_given_for_a_petition_whose_partition_of_every_topic_is_held(owned) -> None:
    ownership, _ = owned
    mine, theirs = key_on(1), key_on(2)
    lease = ownership.lease(mine)
    assert lease is not None and ownership.holds(lease)
    assert ownership.lease(theirs) is None
    assert ownership.primary(mine) and not ownership.primary(theirs)


def test_holding_the_first_topic_only_is_primary_without_a_lease() -> None:
    ownership, consumer = Ownership(TOPICS), GroupMember(TOPICS)
    ownership.assigned(consumer, [TopicPartition("intake", 3), TopicPartition("routing", 2)])
    ownership.polled(consumer)
    assert ownership.primary(key_on(3))
    assert ownership.lease(key_on(3)) is None
    assert ownership.lease(key_on(2)) is None


def test_any_change_of_the_assignment_voids_every_lease_and_tells_the_listeners(owned) -> None:
    ownership, consumer = owned
    changes = []
    ownership.on_change(lambda: changes.append(1))
    lease = ownership.lease(key_on(0))
    ownership.revoked(every(1))  # not even the lease's partition
    assert not ownership.holds(lease)
    assert ownership.lease(key_on(1)) is None
    fresh = ownership.lease(key_on(0))
    assert fresh is not None and ownership.holds(fresh)
    ownership.assigned(consumer, every(0))
    assert not ownership.holds(fresh)
    ownership.detached()
    assert ownership.lease(key_on(0)) is None
    assert len(changes) == 3


def test_no_lease_without_a_recent_heartbeat_answer_or_poll(owned) -> None:
    ownership, consumer = owned
    lease = ownership.lease(key_on(0))
    consumer.answered_ago(6)  # the session timeout is 10 s: the broker may drop this member soon
    assert not ownership.holds(lease)
    assert ownership.lease(key_on(0)) is None
    consumer.answered_ago(0)
    assert ownership.holds(lease)
    stale = Ownership(TOPICS, poll_fresh_s=0.01)
    stale.assigned(consumer, every(0))
    stale.polled(consumer)
    time.sleep(0.02)
    assert stale.lease(key_on(0)) is None


def test_no_lease_while_a_topic_has_no_known_partitions() -> None:
    ownership, consumer = Ownership(TOPICS), GroupMember(TOPICS)
    del consumer.counts["routing"]
    ownership.assigned(consumer, every(0))
    ownership.polled(consumer)
    assert ownership.lease(key_on(0)) is None


def test_a_kafka_python_without_the_heartbeat_record_never_gives_a_lease() -> None:
    ownership, consumer = Ownership(TOPICS), GroupMember(TOPICS)
    del consumer._coordinator.heartbeat
    ownership.assigned(consumer, every(0))
    ownership.polled(consumer)
    assert ownership.lease(key_on(0)) is None
