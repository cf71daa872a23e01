"""Consumer groups formed right after their topics are created get their partitions (kafka_fixes.py).

Each member subscribes as soon as its topics exist, so its first metadata often lacks them: it joins
with an empty assignment and must rejoin once the partitions become known. kafka-python 3.0 could
orphan that second join when a poll timed out mid-way, leaving the member with no partitions and no
error; short polls make that window wide (without the fix, 3 to 9 of these 16 members had nothing
after 20 s in each of five runs; with it all had their partitions within a second).
"""

from __future__ import annotations

import threading
import time

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic
from kafka.coordinator.assignors.range import RangePartitionAssignor

from petition_common import kafka_fixes
from tests.support import kafka_client

MEMBERS = 16
TOPICS, PARTITIONS = 3, 4


def _join(prefix: str, n: int, took: dict[int, float], deadline_s: float) -> None:
    topics = [f"{prefix}-join{n}-{k}" for k in range(TOPICS)]
    admin = KafkaAdminClient(**kafka_client())
    try:
        admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics])
    finally:
        admin.close()
    consumer = KafkaConsumer(
        **kafka_client(),
        group_id=f"{prefix}-join{n}",
        enable_auto_commit=False,
        session_timeout_ms=10_000,
        heartbeat_interval_ms=3_000,
        max_poll_interval_ms=60_000,
        partition_assignment_strategy=(RangePartitionAssignor,),  # as stats uses
    )
    try:
        consumer.subscribe(topics)
        started = time.monotonic()
        while time.monotonic() - started < deadline_s:
            consumer.poll(timeout_ms=20)
            if len(consumer.assignment()) == TOPICS * PARTITIONS:
                took[n] = time.monotonic() - started
                return
    finally:
        consumer.close(autocommit=False)


def test_members_joining_as_their_topics_appear_all_get_their_partitions(unique_prefix):
    kafka_fixes.apply()
    took: dict[int, float] = {}
    threads = [threading.Thread(target=_join, args=(unique_prefix, n, took, 20.0)) for n in range(MEMBERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    without = sorted(set(range(MEMBERS)) - set(took))
    assert not without, f"{len(without)} of {MEMBERS} members had no partitions after 20 s; the others took {took}"
