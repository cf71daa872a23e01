"""The Kafka consumer loop every service uses: manual commits, retries, dead letters, clean stop.

- No auto-commit: offsets (offset + 1) are committed after the batch's effects are durable, and on
  shutdown for what was finished. A crash therefore redelivers, never skips; handlers are
  idempotent (each service says how in its handlers module).
- A message that can never succeed (unparseable, schema-invalid, or a handler that keeps failing
  with a non-transient error) goes to the dead-letter topic with headers saying who gave up, when
  and why, and the loop moves on. More than `deadletter_limit` of them in a minute on one partition
  pause that partition with a backoff (petition_common.dlq): a bad deploy or junk on a topic is
  neither dead-lettered at full speed nor able to stop the service's other partitions.
- A transient error (database or broker unreachable) is retried with capped backoff for as long as
  it lasts; meanwhile readiness reports 503. Stop requests are honoured between attempts.
- A service may also give a batch handler: it gets a poll batch's valid events at once, so it can
  write them in a few round trips instead of a few per event. If it raises, or a record in the batch
  is unparseable or schema-invalid, the batch is handled again one event at a time by the handlers
  above, with their retries and dead letters; since handlers are idempotent, what the batch handler
  had already done is recognised and skipped.
- A service that keeps per-partition state with its own offsets (stats: checkpoints of counts) gives a
  `PartitionOwner`, the partition-assignment hook: on assignment it loads its state and seeks to the
  offsets stored with it; on revocation it flushes or drops the state. The loop then tells it each
  record it finished (handled, ignored or dead-lettered) and commits to Kafka only what the owner
  says is durable. A handler of such a service may raise `Rewound` after the owner moved a
  partition back (its state was reloaded): the rest of that partition's poll batch is dropped. Any
  other error of its handler is not retried in place: the loop closes the consumer (the owner drops
  its state) and `run` raises, for the owner to start again from its checkpoints.
- A message whose type header (`ce_type`) names a type the service does not handle is ignored without
  parsing its body: it was never this consumer's to judge.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from petition_common import kafka_fixes
from petition_common.config import Settings
from petition_common.contract import ContractValidator, SchemaViolation
from petition_common.dlq import DeadLetterFlood, DeadLetterSink, FloodGuard, FloodHold, StopRequested
from petition_common.envelope import EnvelopeError, Event
from petition_common.kafka_io import EventPublisher, PublishFailed
from petition_common.metrics import PlatformMetrics
from petition_common.mongo import TRANSIENT_ERRORS
from petition_common.ownership import Ownership
from petition_common.store import Conflict

log = logging.getLogger(__name__)

MAX_POLL_INTERVAL_MS = 60_000  # see `ConsumerLoop._consumer`

# retried for as long as they last: the message is fine, the world is not
INFRA_ERRORS: tuple[type[Exception], ...] = (*TRANSIENT_ERRORS, PublishFailed, KafkaError)


@dataclass(frozen=True)
class MessageMeta:
    topic: str
    partition: int
    offset: int
    key: str | None


# a handler may return the outcome it counts under in `petitions_consumed_total` (default "handled")
Handler = Callable[[Event, MessageMeta], str | None]
BatchHandler = Callable[[list[tuple[Event, MessageMeta]]], None]


class Unprocessable(Exception):
    """Raised by a handler for a message that can never succeed (its data is unusable though valid by
    the schema): dead-lettered at once with `reason`, never retried."""

    def __init__(self, reason: str, error: str):
        self.reason = reason
        super().__init__(error)


class Rewound(Exception):
    """Raised by a handler after the partition owner moved this message's partition back (it reloaded
    the partition's state and sought): the rest of the partition's poll batch is not handled now."""


class PartitionOwner(Protocol):
    """The partition-assignment hook of a consumer that keeps per-partition state and its own offsets.

    Called on the loop's thread (assignment and revocation from inside poll)."""

    def assigned(self, consumer: KafkaConsumer, partitions: Collection[TopicPartition]) -> None:
        """Load the partitions' state (e.g. the latest checkpoint) and seek to the offsets it reflects."""

    def revoked(self, partitions: Collection[TopicPartition]) -> None:
        """The partitions go to another member: flush (checkpoint) or drop their state."""

    def next_offset(self, tp: TopicPartition) -> int | None:
        """The first offset not yet in the state (records before it are skipped); None if not owned."""

    def done(self, tp: TopicPartition, offset: int) -> None:
        """The record at `offset` is finished: handled, ignored or dead-lettered."""

    def polled(self, consumer: KafkaConsumer, idle: bool) -> Mapping[TopicPartition, OffsetAndMetadata]:
        """After each poll (idle: it returned nothing): periodic work such as checkpoints; returns the
        offsets now durable, which the loop commits (to show consumer lag; the state is what counts)."""

    def closed(self, clean: bool) -> None:
        """The consumer closes: after a clean stop, flush; after a failure, drop the state."""


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: PartitionOwner | None, ownership: Ownership | None, consumer: KafkaConsumer):
        self.owner, self.ownership, self.consumer = owner, ownership, consumer

    def on_partitions_revoked(self, revoked: Collection[TopicPartition]) -> None:
        if self.ownership is not None:  # first: no lease may outlive the partitions
            self.ownership.revoked(revoked)
        if self.owner is not None:
            self.owner.revoked(revoked)

    def on_partitions_assigned(self, assigned: Collection[TopicPartition]) -> None:
        if self.owner is not None:
            self.owner.assigned(self.consumer, assigned)
        if self.ownership is not None:
            self.ownership.assigned(self.consumer, assigned)


def by_petition(events: list[tuple[Event, MessageMeta]]) -> dict[str, list[tuple[Event, MessageMeta]]]:
    """A batch's events grouped by `data.petition_id`, each group in batch order: a petition's events
    share a partition key, so that is the order they happened in."""
    groups: dict[str, list[tuple[Event, MessageMeta]]] = {}
    for event, meta in events:
        groups.setdefault(event.data["petition_id"], []).append((event, meta))
    return groups


def type_header(record: Any) -> str | None:
    """The event type a record's `ce_type` header names (producers set it), None without one."""
    for name, value in record.headers or ():
        if name == "ce_type":
            return str(value.decode("utf-8", "replace"))
    return None


class LagReporter:
    """Sets `petitions_consumer_lag` for a consumer's assigned partitions, at most every `every` seconds.

    It uses what the consumer's fetches already told it (the high watermark each fetch response
    carries), so it costs no broker round trip; a partition not fetched yet is not reported, and one
    no longer assigned (a rebalance moved it) is removed so its last value does not linger.
    """

    def __init__(self, metrics: PlatformMetrics, service: str, group: str, logical: dict[str, str], every: float = 1.0):
        self.gauge = metrics.consumer_lag
        self.service, self.group, self.logical, self.every = service, group, logical, every
        self._reported: set[tuple[str, str, str, str]] = set()
        self._last = float("-inf")

    def report(self, consumer: KafkaConsumer) -> None:
        now = time.monotonic()
        if now - self._last < self.every:
            return
        self._last = now
        seen: set[tuple[str, str, str, str]] = set()
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            position = consumer.position(tp) if highwater is not None else None
            if highwater is None or position is None:
                continue
            labels = (self.service, self.group, self.logical.get(tp.topic, tp.topic), str(tp.partition))
            self.gauge.labels(*labels).set(max(0, highwater - position))
            seen.add(labels)
        for labels in self._reported - seen:
            self.gauge.remove(*labels)
        self._reported = seen


class ConsumerLoop:
    def __init__(
        self,
        settings: Settings,
        topics: list[str],
        handlers: dict[str, Handler],
        publisher: EventPublisher,
        validator: ContractValidator,
        metrics: PlatformMetrics,
        stop: threading.Event,
        group_id: str | None = None,
        deadletter_limit: int = 100,
        max_poll_records: int = 200,
        batch_handler: BatchHandler | None = None,
        owner: PartitionOwner | None = None,
        consumer_options: Mapping[str, Any] | None = None,
        poll_timeout_ms: int = 500,
        ownership: Ownership | None = None,
    ):
        """`owner`: the partition-assignment hook (module docstring); `consumer_options`: more
        KafkaConsumer settings (e.g. the partition assignor an owner relies on); `ownership`: kept up
        to date with this member's partitions, for writers that rely on owning a petition
        (petition_common.ownership; the loop then uses the range assignor)."""
        if owner is not None and batch_handler is not None:
            raise ValueError("a partition owner's records are handled one by one")
        self.settings = settings
        self.topics = [settings.topic(t) for t in topics]
        self.handlers = handlers
        self.publisher = publisher
        self.validator = validator
        self.metrics = metrics
        self.stop = stop
        self.group_id = group_id or settings.consumer_group
        self.deadletter_limit = deadletter_limit
        self.max_poll_records = max_poll_records
        self.batch_handler = batch_handler
        self.owner = owner
        self.consumer_options = dict(consumer_options or {})
        self.poll_timeout_ms = poll_timeout_ms
        self.ownership = ownership
        if ownership is not None:  # partition number p of every topic to one member
            self.consumer_options.setdefault("partition_assignment_strategy", (RangePartitionAssignor,))
        self.sink = DeadLetterSink.for_settings(publisher, settings, self.group_id, stop)
        self.floods = FloodHold(FloodGuard(limit=deadletter_limit))
        self._logical_topic = {settings.topic(t): t for t in topics}

    def _consumer(self) -> KafkaConsumer:
        options: dict[str, Any] = {
            **self.settings.kafka_client(),
            "group_id": self.group_id,
            "client_id": f"petitions-{self.settings.service}",
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "max_poll_records": self.max_poll_records,
            "session_timeout_ms": 10_000,
            "heartbeat_interval_ms": 3_000,
            # also the rebalance timeout the broker waits for members to join: right after a broker
            # restart, a join now and then hung in "rebalancing" for the whole default of 5 min (CI saw
            # stats count nothing for 5 min). Measured here, a broker restart then 4 new groups: with the
            # default 12 of 56 consumers (5 of 14 restarts) had nothing after 40 s, with 20 or 60 s none of
            # 48 (12 restarts). The loop polls within seconds, except while a handler waits out an
            # outage: past this the member leaves the group, and rejoins when it polls again
            "max_poll_interval_ms": MAX_POLL_INTERVAL_MS,
            "fetch_min_bytes": self.settings.fetch_min_bytes,
            "fetch_max_wait_ms": self.settings.fetch_max_wait_ms,
            **self.consumer_options,
        }
        kafka_fixes.apply()  # a group join that polls can orphan (kafka_fixes.py)
        consumer = KafkaConsumer(**options)
        if self.owner is None and self.ownership is None:
            consumer.subscribe(topics=self.topics)
        else:
            consumer.subscribe(topics=self.topics, listener=_Rebalance(self.owner, self.ownership, consumer))
        return consumer

    def run(self) -> None:
        """Poll, handle, commit, until `stop` is set; then commit what is done and close.

        A broker that goes away makes kafka-python raise from poll(); the loop then drops its
        consumer and builds a new one with capped backoff, for as long as the outage lasts. What
        was handled but not committed is delivered again and de-duplicated by the handlers.
        """
        backoff = 0.5
        while not self.stop.is_set():
            try:
                self._consume()
                return
            except KafkaError as exc:
                log.warning("broker unreachable; reconnecting", extra={"group": self.group_id, "error": repr(exc)})
                if self.stop.wait(backoff):
                    return
                backoff = min(backoff * 2, 10.0)

    def _consume(self) -> None:
        consumer = self._consumer()
        lag = LagReporter(self.metrics, self.settings.service, self.group_id, self._logical_topic)
        log.info("consumer started", extra={"topics": self.topics, "group": self.group_id})
        clean = False
        try:
            while not self.stop.is_set():
                self._release_due()
                batch = self.floods.without_held(consumer, consumer.poll(timeout_ms=self.poll_timeout_ms))
                if self.ownership is not None:
                    self.ownership.polled(consumer)
                done: dict[TopicPartition, OffsetAndMetadata] = {}
                try:
                    if self._process_batch([r for records in batch.values() for r in records]):
                        done = {tp: OffsetAndMetadata(rs[-1].offset + 1, "", -1) for tp, rs in batch.items() if rs}
                    else:
                        for tp, records in batch.items():
                            self._process_partition(consumer, tp, records, done)
                except StopRequested:
                    log.info("stop requested mid-batch; committing what is done")
                finally:
                    if done:
                        self._commit(consumer, done)
                if self.owner is not None:  # its state is whole here: let it checkpoint
                    durable = self.owner.polled(consumer, idle=not batch)
                    if durable:
                        self._commit(consumer, dict(durable))
                lag.report(consumer)
            clean = True
        finally:
            if self.ownership is not None:
                self.ownership.detached()
            if self.owner is not None:
                self.owner.closed(clean)
            try:
                consumer.close(autocommit=False)
            except KafkaError as exc:  # closing against a dead broker; the consumer is gone either way
                log.info("consumer closed uncleanly", extra={"error": repr(exc)})
            log.info("consumer stopped", extra={"group": self.group_id})

    def _process_partition(
        self, consumer: KafkaConsumer, tp: TopicPartition, records: list[Any], done: dict[TopicPartition, Any]
    ) -> None:
        """Handle one partition's records of a poll batch in order; `done` gets the offset to commit."""
        owner = self.owner
        for record in records:
            if owner is not None:
                expected = owner.next_offset(tp)
                if expected is None:
                    return  # not (or no longer) this member's partition
                if record.offset < expected:
                    continue  # already in the owner's state (fetched before it sought)
            try:
                self._process(record)
            except DeadLetterFlood as flood:
                self._hold(consumer, tp, record.offset, flood)
                return  # the rest of this partition's records wait too
            except Rewound:
                return  # the owner sought back: these records come again
            if owner is not None:
                owner.done(tp, record.offset)
            else:
                done[tp] = OffsetAndMetadata(record.offset + 1, "", -1)

    def _hold(self, consumer: KafkaConsumer, tp: TopicPartition, offset: int, flood: DeadLetterFlood) -> None:
        """Stop reading a flooding partition for the guard's backoff, from the message that flooded it."""
        self.floods.hold(consumer, tp, offset)
        topic_label = self._logical_topic.get(tp.topic, tp.topic)
        self.metrics.deadletter_floods.labels(self.settings.service, topic_label).inc()
        self.metrics.paused_partitions.labels(self.settings.service).set(len(self.floods.held))
        log.error(
            "dead-letter flood: partition paused",
            extra={"topic": tp.topic, "partition": tp.partition, "offset": offset, "pause_s": flood.pause_s},
        )

    def _release_due(self) -> None:
        for tp in self.floods.release_due():
            log.info(
                "partition resumed after a dead-letter flood", extra={"topic": tp.topic, "partition": tp.partition}
            )
            self.metrics.paused_partitions.labels(self.settings.service).set(len(self.floods.held))

    def _commit(self, consumer: KafkaConsumer, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        try:
            consumer.commit(offsets)
        except KafkaError as exc:
            # e.g. a rebalance took the partition away: the new owner redelivers, handlers de-duplicate
            log.warning("offset commit failed", extra={"error": str(exc)})

    def _process_batch(self, records: list[Any]) -> bool:
        """Give the batch handler every valid event of the batch; False if the records must be
        handled one by one instead (no batch handler, fewer than two records, a record that must be
        dead-lettered, or the batch handler failed)."""
        if self.batch_handler is None or len(records) < 2:
            return False
        events: list[tuple[Event, MessageMeta]] = []
        outcomes: list[tuple[str, str, str]] = []
        for record in records:
            key = record.key.decode("utf-8", "replace") if record.key is not None else None
            try:
                event = Event.from_bytes(record.value, key=key)
            except EnvelopeError:
                return False
            topic_label = self._logical_topic.get(record.topic, record.topic)
            if event.type not in self.handlers:
                outcomes.append((topic_label, event.type, "ignored"))
                continue
            try:
                self.validator.validate(event)
            except SchemaViolation:
                return False
            events.append((event, MessageMeta(record.topic, record.partition, record.offset, key)))
            outcomes.append((topic_label, event.type, "handled"))
        if events:
            try:
                self.batch_handler(events)
            except Exception as exc:
                log.info("batch handler failed; handling the batch event by event", extra={"error": repr(exc)})
                return False
        for topic_label, event_type, outcome in outcomes:
            self.metrics.consumed.labels(self.settings.service, topic_label, event_type, outcome).inc()
        return True

    def _process(self, record) -> None:  # type: ignore[no-untyped-def]
        key = record.key.decode("utf-8", "replace") if record.key is not None else None
        meta = MessageMeta(record.topic, record.partition, record.offset, key)
        topic_label = self._logical_topic.get(record.topic, record.topic)
        named = type_header(record)
        if named is not None and named not in self.handlers:
            self.metrics.consumed.labels(self.settings.service, topic_label, named, "ignored").inc()
            return
        try:
            event = Event.from_bytes(record.value, key=key)
        except EnvelopeError as exc:
            self._dead_letter(record, "unparseable", str(exc))
            return
        handler = self.handlers.get(event.type)
        if handler is None:
            self.metrics.consumed.labels(self.settings.service, topic_label, event.type, "ignored").inc()
            return
        try:
            self.validator.validate(event)
        except SchemaViolation as exc:
            self._dead_letter(record, "schema_invalid", str(exc))
            return
        failures = 0
        backoff = self.settings.retry_backoff_s
        while True:
            try:
                outcome = handler(event, meta)
                outcome = outcome if isinstance(outcome, str) else "handled"  # other returns are no outcome
                self.metrics.consumed.labels(self.settings.service, topic_label, event.type, outcome).inc()
                return
            except Unprocessable as exc:
                self._dead_letter(record, exc.reason, str(exc))
                return
            except Rewound:
                raise
            except Exception as exc:
                if self.owner is not None:
                    raise  # the owner's in-memory state is suspect: it starts again from its checkpoints
                if isinstance(exc, (*INFRA_ERRORS, Conflict)):
                    # not the message's fault: wait and retry for as long as it takes
                    self.metrics.retries.labels(self.settings.service).inc()
                    log.warning("transient failure; retrying", extra={"event_id": event.id, "error": repr(exc)})
                    self._wait(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                failures += 1
                self.metrics.retries.labels(self.settings.service).inc()
                if failures >= self.settings.retry_attempts:
                    log.exception("handler keeps failing; dead-lettering", extra={"event_id": event.id})
                    self._dead_letter(record, "handler_failed", repr(exc))
                    return
                self._wait(backoff)
                backoff = min(backoff * 2, 5.0)

    def _wait(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise StopRequested

    def _dead_letter(self, record, reason: str, error: str) -> None:  # type: ignore[no-untyped-def]
        """Give up on the message, unless its partition floods: then DeadLetterFlood (it is paused)."""
        self.floods.admit(TopicPartition(record.topic, record.partition))
        self.sink.send(record, reason, error)
        self.metrics.deadlettered.labels(self.settings.service, reason).inc()
        topic_label = self._logical_topic.get(record.topic, record.topic)
        self.metrics.consumed.labels(self.settings.service, topic_label, "-", "deadlettered").inc()
