"""Giving up on a message: the dead-letter sink, and the flood guard that pauses a partition.

`DeadLetterSink.send` copies a message the consumer cannot process to `petitions.deadletter.v1`,
unchanged, with `dlq_*` headers saying who gave up, when and why (the contract's dead-letter topic;
`petitions-deadletters` lists and replays them).

A flood of dead letters on one partition — a bad deploy failing every message, or junk written to a
topic — must neither dead-letter a whole topic at full speed nor stop the service: the flood guard
counts dead letters per topic-partition, and past `limit` in `window_s` it says "pause": the consumer
seeks that partition back to the message, pauses it for a backoff (doubling while the floods go on,
`base_s` up to `max_s`), then resumes it with a fresh allowance. Other partitions go on meanwhile, and
the good messages behind the junk are handled once the partition runs again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from petition_common.kafka_io import EventPublisher, PublishFailed
from petition_common.topics import DEADLETTER
from petition_kernel.times import format_time, utc_now

log = logging.getLogger(__name__)


class DeadLetterFlood(RuntimeError):
    """Too many dead letters on one partition in a short time: pause it instead of going on."""

    def __init__(self, partition: Hashable, pause_s: float):
        self.partition = partition
        self.pause_s = pause_s
        super().__init__(f"dead-letter flood on {partition}: paused for {pause_s:.0f} s")


class StopRequested(Exception):
    """Shutdown was asked for while waiting (for the broker, or to retry); the message stays unhandled."""


@dataclass
class _Partition:
    recent: deque[float] = field(default_factory=deque)
    paused_until: float | None = None
    backoff_s: float = 0.0
    last_flood: float | None = None


class FloodGuard:
    """Dead letters per partition in a sliding window, and the partitions paused for flooding."""

    def __init__(
        self,
        limit: int = 100,
        window_s: float = 60.0,
        base_s: float = 1.0,
        max_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.limit = limit
        self.window_s = window_s
        self.base_s = base_s
        self.max_s = max_s
        self.clock = clock
        self._partitions: dict[Hashable, _Partition] = {}

    def admit(self, partition: Hashable) -> None:
        """Count one dead letter of `partition`; raises DeadLetterFlood (and starts its pause) if it is
        one too many. The message was not dead-lettered then: it is read again after the pause."""
        state = self._partitions.setdefault(partition, _Partition())
        now = self.clock()
        while state.recent and now - state.recent[0] > self.window_s:
            state.recent.popleft()
        if len(state.recent) < self.limit:
            state.recent.append(now)
            return
        quiet = state.last_flood is None or now - state.last_flood > 2 * self.window_s
        state.backoff_s = self.base_s if quiet else min(state.backoff_s * 2, self.max_s)
        state.paused_until = now + state.backoff_s
        state.last_flood = now
        raise DeadLetterFlood(partition, state.backoff_s)

    def paused(self) -> list[Hashable]:
        return [p for p, s in self._partitions.items() if s.paused_until is not None]

    def due(self) -> list[Hashable]:
        """The paused partitions whose pause is over; they get a fresh allowance of `limit`."""
        now = self.clock()
        out = []
        for partition, state in self._partitions.items():
            if state.paused_until is not None and state.paused_until <= now:
                state.paused_until = None
                state.recent.clear()
                out.append(partition)
        return out

    def forget(self, partition: Hashable) -> None:
        """The partition was revoked: its new owner starts with its own count."""
        self._partitions.pop(partition, None)


class FloodHold:
    """The partitions a consumer holds back after a flood: each is sought back to the flooding message
    at every poll until its pause is over, then read again from there.

    Not KafkaConsumer.pause(): kafka-python 3.0.12 parks the records fetched before a pause and, while
    another partition's drained batch is still in line, never restores them, so a resumed partition is
    never fetched again (seen with a consumer of max_poll_records=50: paused at offset 100 of 200, resumed
    a second later, it never returned a record of that partition again).
    """

    def __init__(self, guard: FloodGuard | None = None):
        self.guard = guard or FloodGuard()
        self.held: dict[Any, int] = {}

    def admit(self, tp: Any) -> None:
        """FloodGuard.admit for this topic-partition."""
        self.guard.admit(tp)

    def hold(self, consumer: Any, tp: Any, offset: int) -> None:
        consumer.seek(tp, offset)
        self.held[tp] = offset

    def without_held(self, consumer: Any, batch: dict[Any, list[Any]]) -> dict[Any, list[Any]]:
        """The poll batch less the held partitions' records (their position goes back again)."""
        out = {}
        for tp, records in batch.items():
            if tp in self.held:
                consumer.seek(tp, self.held[tp])
            else:
                out[tp] = records
        return out

    def release_due(self) -> list[Any]:
        """The held partitions whose pause is over; they are read again from the flooding message."""
        return [tp for tp in self.guard.due() if self.held.pop(tp, None) is not None]


class DeadLetterSink:
    """Publishes messages a consumer gives up on to the dead-letter topic, waiting out a broker outage."""

    def __init__(
        self,
        publisher: EventPublisher,
        topic: str,
        consumer: str,
        stop: threading.Event,
        backoff_s: float = 0.2,
    ):
        self.publisher = publisher
        self.topic = topic
        self.consumer = consumer  # "<service>/<group>", in the dlq_consumer header
        self.stop = stop
        self.backoff_s = backoff_s

    @classmethod
    def for_settings(
        cls, publisher: EventPublisher, settings: Any, group: str, stop: threading.Event
    ) -> DeadLetterSink:
        return cls(publisher, settings.topic(DEADLETTER), f"{settings.service}/{group}", stop, settings.retry_backoff_s)

    def send(self, record: Any, reason: str, error: str) -> None:
        headers = [
            *list(record.headers or []),
            ("dlq_reason", reason.encode()),
            ("dlq_consumer", self.consumer.encode()),
            ("dlq_at", format_time(utc_now()).encode()),
            ("dlq_original_topic", record.topic.encode()),
            ("dlq_original_partition", str(record.partition).encode()),
            ("dlq_original_offset", str(record.offset).encode()),
            ("dlq_error", error[:2000].encode("utf-8", "replace")),
        ]
        backoff = self.backoff_s
        while True:
            try:
                self.publisher.send_raw(self.topic, record.key, record.value, headers)
                break
            except PublishFailed:
                if self.stop.wait(backoff):
                    raise StopRequested from None
                backoff = min(backoff * 2, 5.0)
        log.warning(
            "dead-lettered",
            extra={"reason": reason, "topic": record.topic, "offset": record.offset, "error": error[:500]},
        )
