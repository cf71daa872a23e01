"""Which petitions this instance's consumer-group member owns right now, so that their writer can skip
the checks that exist only because another instance might be writing the same petition.

A petition's events share a partition key (its id), so all of them arrive on partition number p of
each topic, and with the range assignor and topics of equal partition counts one member holds number
p of every topic. While it does, nobody else consumes that petition's events, and a service whose
other writers of the petition (sla's scanner) act only on what their member holds has exactly one
writer per petition: its projection cannot be overtaken by an older version from elsewhere, and the
state it remembers is the newest (petition_common.store, `load_to_write`).

A `Lease` is that claim for one petition, taken before a writer reads and checked again after it
wrote (`holds`). It holds only if, in between, the assignment did not change and the member was
demonstrably still in the group: a heartbeat answered within `heartbeat_fresh_s` (the broker drops a
member after its 10 s session timeout without one) and a poll returned within `poll_fresh_s` (the
broker completes a rebalance without a member that has not polled for the 60 s rebalance timeout).
Anything less, a member between assignments or cut off from the coordinator, gets no lease and the
writer does the checks as before. Every change of the assignment calls the `on_change` callbacks
first: a remembered state may be older than what the previous owner wrote, so it is forgotten.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2

log = logging.getLogger(__name__)

HEARTBEAT_FRESH_S = 5.0  # half the consumers' session timeout (consumer.py)
POLL_FRESH_S = 30.0  # half their max_poll_interval, which is also the rebalance timeout


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a record with this key (murmur2, as the
    producers use it)."""
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class Lease:
    key: str
    epoch: int


class Ownership:
    """Kept by the consumer loop (`assigned`, `revoked`, `polled`, `detached`, on its thread); asked by
    writers on any thread (`lease`, `holds`, `primary`)."""

    def __init__(
        self,
        topics: Sequence[str],
        heartbeat_fresh_s: float = HEARTBEAT_FRESH_S,
        poll_fresh_s: float = POLL_FRESH_S,
    ):
        if not topics:
            raise ValueError("ownership needs the topics the member consumes")
        self.topics = tuple(topics)
        self.heartbeat_fresh_s = heartbeat_fresh_s
        self.poll_fresh_s = poll_fresh_s
        self._lock = threading.Lock()
        self._consumer: KafkaConsumer | None = None
        self._held: frozenset[TopicPartition] = frozenset()
        self._counts: dict[str, int] = {}
        self._epoch = 0
        self._last_poll = float("-inf")
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever the assignment changes, before any lease of the new one is given."""
        self._listeners.append(callback)

    # ---- kept by the consumer loop

    def assigned(self, consumer: KafkaConsumer, partitions: Collection[TopicPartition]) -> None:
        # the topics' partition counts are read at the next `polled`: a rebalance listener runs on
        # kafka-python's IO thread, where a consumer call that may fetch metadata must not block
        self._change(consumer, frozenset(partitions), {})
        log.info("partitions owned", extra={"partitions": sorted(f"{tp.topic}:{tp.partition}" for tp in partitions)})

    def revoked(self, partitions: Collection[TopicPartition]) -> None:
        self._change(self._consumer, self._held - frozenset(partitions), self._counts)

    def detached(self) -> None:
        """The consumer is closed (a clean stop, or the broker went away and it is rebuilt)."""
        self._change(None, frozenset(), {})

    def polled(self, consumer: KafkaConsumer) -> None:
        """After each poll, on the loop's thread. Adding partitions to a topic makes the group
        rebalance, so counts read once per assignment stay true until the next `assigned`."""
        if len(self._counts) != len(self.topics) and self._consumer is consumer:
            counts = {t: len(consumer.partitions_for_topic(t) or ()) for t in self.topics}
            with self._lock:
                if self._consumer is consumer:  # no change of assignment since
                    self._counts = {t: n for t, n in counts.items() if n}
        self._last_poll = time.monotonic()

    def _change(self, consumer: KafkaConsumer | None, held: frozenset[TopicPartition], counts: dict[str, int]) -> None:
        with self._lock:
            self._epoch += 1  # every lease taken before is void from here on
            self._consumer, self._held, self._counts = consumer, held, counts
        for callback in self._listeners:
            callback()

    # ---- asked by writers

    def partitions(self, key: str) -> list[TopicPartition] | None:
        """The key's partition of every topic; None while some topic's partition count is unknown."""
        if len(self._counts) != len(self.topics):
            return None
        return [TopicPartition(t, partition_of(key, self._counts[t])) for t in self.topics]

    def primary(self, key: str) -> bool:
        """Whether this member holds the key's partition of the first topic: the one instance that
        looks after the petition (sla's scanner), with or without a lease."""
        with self._lock:
            count = self._counts.get(self.topics[0])
            return bool(count) and TopicPartition(self.topics[0], partition_of(key, count)) in self._held

    def lease(self, key: str) -> Lease | None:
        """A lease on the petition if this member holds its partition of every topic and is in the
        group now; None otherwise (the writer checks as if another instance could write it)."""
        with self._lock:
            wanted = self.partitions(key)
            if wanted is None or not all(tp in self._held for tp in wanted) or not self._fresh():
                return None
            return Lease(key, self._epoch)

    def holds(self, lease: Lease | None) -> bool:
        """Whether `lease` still holds: no assignment change since it was taken, and still in the group."""
        if lease is None:
            return False
        with self._lock:
            return lease.epoch == self._epoch and self._fresh()

    def _fresh(self) -> bool:
        if self._consumer is None:
            return False
        now = time.monotonic()  # kafka-python's heartbeat times are on this clock too
        return (
            now - self._last_poll < self.poll_fresh_s and now - _last_heartbeat(self._consumer) < self.heartbeat_fresh_s
        )


def _last_heartbeat(consumer: Any) -> float:
    """When the group coordinator last answered this member's heartbeat (time.monotonic), -inf if
    never or if this kafka-python keeps it elsewhere (then no lease is ever given: always safe)."""
    try:
        return float(consumer._coordinator.heartbeat.last_receive)
    except AttributeError:
        return float("-inf")
