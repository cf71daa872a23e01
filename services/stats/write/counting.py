"""Counting: the partition numbers an instance owns, on the shared consumer loop, checkpointed.

One consumer-group member per instance subscribes to the three petition topics with the range
assignor, which gives partition number p of every topic to the same member (the topics have the
same number of partitions, so a petition's events are all in number p). The member keeps the state
of each number it owns (partition_state.py) and checkpoints it with the offsets it reflects
(checkpoints.py).

Exactly once: the counter is the consumer loop's partition owner (petition_common.consumer). It does
not rely on Kafka's committed offsets: on assignment it loads the latest checkpoint and seeks to the
offsets stored in it, so every event is applied exactly once to the checkpointed state; offsets are
committed to Kafka only once checkpointed, to show consumer lag. A checkpoint that loses the insert
race (another instance wrote the same version during a rebalance) is discarded and the state
reloaded from the winner's checkpoint. Dead letters, the flood hold, contract validation and lag
are the loop's, as in every service.

The owner of partition 0 also runs the hotspot detector (detector.py): `on_partition_zero`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from kafka import KafkaConsumer, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.structs import OffsetAndMetadata

from petition_common.consumer import INFRA_ERRORS, ConsumerLoop, MessageMeta, Rewound, Unprocessable
from petition_common.envelope import Event
from petition_common.store import Conflict
from petition_kernel.calendar import CalendarFileError
from services.stats.domain.changes import BadEvent
from services.stats.write.checkpoints import Checkpoint, CheckpointStore, namespace, partition_task
from services.stats.write.context import Context
from services.stats.write.partition_state import PartitionState, Stale
from services.stats.write.records import PETITION_TOPICS, change_of_event, offset_key

log = logging.getLogger(__name__)


class IncompleteAssignment(RuntimeError):
    """This member was given partition number p of some petition topics but not of all three.

    Seen while the cluster's metadata is in flux (a topic just created, a controller failing over):
    the assignor skips a topic it has no partition metadata for. The topics' partition counts are
    checked when the service starts, so here it is waited out like the broker being away."""


@dataclass
class Owned:
    state: PartitionState
    store: CheckpointStore
    head: Checkpoint | None
    generation: int
    last_saved: float = field(default_factory=time.monotonic)
    last_cost: float = 0.0  # seconds the last checkpoint took
    unsaved: int = 0  # messages finished since the last checkpoint


class PartitionCounter:
    """Owns partition numbers through the consumer group and applies their events (module docstring)."""

    def __init__(
        self,
        ctx: Context,
        stop: threading.Event,
        on_partition_zero: Callable[[bool], None] = lambda owned: None,
        max_poll_records: int = 2000,
    ):
        self.ctx = ctx
        self.stop = stop
        self.on_partition_zero = on_partition_zero
        self.max_poll_records = max_poll_records
        self.owned: dict[int, Owned] = {}
        self.parked: dict[int, Owned] = {}
        self.logical = {ctx.topic(t): t for t in PETITION_TOPICS}
        self._consumer: KafkaConsumer | None = None
        self._failed: Exception | None = None  # a failure inside a rebalance callback, raised after poll
        self._rewound: set[int] = set()  # partition numbers reloaded during this poll batch
        self._generation_checked = 0.0
        self._evicted = 0.0
        self._saved_count = 0
        self._stores: dict[str, CheckpointStore] = {}

    # ---- the loop

    def loop(self, handlers: dict[str, Callable[[Event, MessageMeta], str | None]]) -> ConsumerLoop:
        ctx = self.ctx
        return ConsumerLoop(
            ctx.settings,
            list(PETITION_TOPICS),
            handlers,
            ctx.publisher,
            ctx.validator,
            ctx.platform,
            self.stop,
            max_poll_records=self.max_poll_records,
            owner=self,
            # the range assignor gives one member partition number p of every petition topic
            consumer_options={"partition_assignment_strategy": (RangePartitionAssignor,), "check_crcs": ctx.check_crcs},
            poll_timeout_ms=300,
        )

    def run(self, handlers: dict[str, Callable[[Event, MessageMeta], str | None]], max_failures: int = 5) -> None:
        """Consume until stopped. Any failure (the database away, a rebalance gone wrong) drops the
        in-memory state and starts again from the checkpoints, after a pause; only `max_failures`
        failures in a row without a checkpoint in between, other than the database or the broker
        being unreachable, stop the counter."""
        failures, backoff = 0, 1.0
        while not self.stop.is_set():
            saved = self._saved_count
            try:
                self.loop(handlers).run()
                return
            except (*INFRA_ERRORS, IncompleteAssignment) as exc:
                # the database (or broker, or its metadata) unavailable: waited out for as long as it
                # lasts, as in every consumer; no reason to stop counting (readiness answers 503 meanwhile)
                log.warning("stats consumer failed; restarting from the checkpoints", extra={"error": repr(exc)})
                self.stop.wait(min(backoff, 5.0))
                backoff = min(backoff * 2, 5.0)
            except Exception as exc:
                failures = 1 if self._saved_count > saved else failures + 1
                if failures >= max_failures:
                    raise
                log.warning("stats consumer failed; restarting from the checkpoints", extra={"error": repr(exc)})
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    # ---- the handler: one event into the state of its partition

    def apply(self, event: Event, meta: MessageMeta) -> str:
        """Apply a valid event to its partition's state: "applied", or "duplicate" if it changed nothing."""
        owned = self.owned.get(meta.partition)
        if owned is None:
            raise Rewound  # revoked meanwhile: the next owner applies it
        try:
            change = change_of_event(event, meta.key)
        except BadEvent as exc:
            raise Unprocessable("schema_invalid", str(exc)) from exc
        if change is None:
            return "ignored"
        if change.kind == "deadline_changed":
            self._refresh_calendar()  # sla took up a new calendar: derive the verdicts with it too
        try:
            applied = owned.state.apply(change)
        except Stale as exc:
            self._reload(meta.partition, str(exc))
            self._rewound.add(meta.partition)  # its other topics' records in this batch wait too
            raise Rewound from exc
        return "applied" if applied else "duplicate"

    def _refresh_calendar(self) -> None:
        try:
            if self.ctx.rules.refresh_calendar():
                log.warning("working-day calendar reloaded")
        except CalendarFileError as exc:
            log.error("calendar file refused; the calendar in use stays", extra={"error": str(exc)})

    # ---- the partition owner (petition_common.consumer.PartitionOwner)

    def assigned(self, consumer: KafkaConsumer, partitions: Collection[TopicPartition]) -> None:
        self._consumer = consumer
        try:
            self._claim(consumer, partitions)
        except Exception as exc:  # kafka-python only logs a callback's error: fail the loop after poll
            self._failed = exc

    def revoked(self, partitions: Collection[TopicPartition]) -> None:
        for p in sorted({tp.partition for tp in partitions}):
            owned = self.owned.pop(p, None)
            if owned is None:
                continue
            try:
                self._save(p, owned, force=True)
                self.parked[p] = owned
            except Exception as exc:  # the next owner reloads from the last good checkpoint
                log.warning("could not checkpoint a revoked partition", extra={"partition": p, "error": repr(exc)})
        self.ctx.metrics.owned_partitions.set(len(self.owned))

    def next_offset(self, tp: TopicPartition) -> int | None:
        owned = self.owned.get(tp.partition)
        if owned is None or tp.partition in self._rewound:
            return None
        return owned.state.offsets.get(offset_key(self.logical.get(tp.topic, tp.topic), tp.partition), 0)

    def done(self, tp: TopicPartition, offset: int) -> None:
        owned = self.owned.get(tp.partition)
        if owned is not None:
            owned.state.advance(offset_key(self.logical.get(tp.topic, tp.topic), tp.partition), offset)
            owned.unsaved += 1

    def polled(self, consumer: KafkaConsumer, idle: bool) -> Mapping[TopicPartition, OffsetAndMetadata]:
        if self._failed is not None:
            failed, self._failed = self._failed, None
            raise failed
        self._rewound.clear()
        saved = self._maybe_save(idle)
        self._maybe_switch_generation()
        return saved

    def closed(self, clean: bool) -> None:
        for p, owned in list(self.owned.items()) if clean else ():
            try:
                self._save(p, owned, force=True)
            except Exception as exc:
                log.warning("final checkpoint failed", extra={"partition": p, "error": repr(exc)})
        # after a failure the checkpoints are what counts: the next consumer starts from them
        self.owned.clear()
        self.parked.clear()
        self.on_partition_zero(False)
        self._consumer = None
        self.ctx.metrics.owned_partitions.set(0)
        log.info("stats consumer stopped")

    # ---- ownership

    def _store(self, generation: int, task: str) -> CheckpointStore:
        ns = namespace(generation, task)
        if ns not in self._stores:
            self._stores[ns] = CheckpointStore(self.ctx.db, ns)
        return self._stores[ns]

    def stores(self) -> list[CheckpointStore]:
        """The checkpoint stores this counter wrote to (for the garbage collector's thread)."""
        return list(self._stores.values())

    def _load(self, p: int, generation: int) -> Owned:
        store = self._store(generation, partition_task(p))
        head = store.latest()
        state = PartitionState.at(p, self.ctx.rules, head, store.read_block, self.ctx.gaps)
        return Owned(state, store, head, generation)

    def _seek(self, consumer: KafkaConsumer, p: int, owned: Owned) -> None:
        for logical in PETITION_TOPICS:
            tp = TopicPartition(self.ctx.topic(logical), p)
            offset = owned.state.offsets.get(offset_key(logical, p))
            if offset is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)

    def _claim(self, consumer: KafkaConsumer, assigned: Collection[TopicPartition]) -> None:
        by_number: dict[int, set[str]] = {}
        for tp in assigned:
            by_number.setdefault(tp.partition, set()).add(self.logical.get(tp.topic, tp.topic))
        incomplete = {p: sorted(t) for p, t in by_number.items() if t != set(PETITION_TOPICS)}
        if incomplete:
            raise IncompleteAssignment(
                f"partition numbers not assigned on all of {PETITION_TOPICS}: {incomplete}; the petition topics "
                "must have the same number of partitions and this group must use the range assignor"
            )
        generation = self.ctx.generations.current()
        for p in sorted(by_number):
            parked = self.parked.pop(p, None)
            if (
                parked is not None
                and parked.generation == generation
                and parked.store.latest_seq() == (parked.head.seq if parked.head else 0)
            ):
                owned = parked  # nobody wrote it since we saved it: keep the loaded state
            else:
                owned = self._load(p, generation)
            self.owned[p] = owned
            self._seek(consumer, p, owned)
        self.parked.clear()
        self.ctx.metrics.owned_partitions.set(len(self.owned))
        log.info("partitions claimed", extra={"partitions": sorted(self.owned), "generation": generation})
        self.on_partition_zero(0 in self.owned)

    def _reload(self, p: int, why: str) -> None:
        log.info("reloading partition state", extra={"partition": p, "why": why})
        owned = self._load(p, self.ctx.generations.current())
        self.owned[p] = owned
        if self._consumer is not None:
            self._seek(self._consumer, p, owned)

    # ---- checkpoints

    def _save(self, p: int, owned: Owned, force: bool = False) -> bool:
        if not owned.unsaved and not owned.state.dirty:
            return False
        started = time.perf_counter()
        blocks = owned.state.encode_dirty()
        try:
            head = owned.store.commit(owned.head, dict(owned.state.offsets), blocks, {"partition": p})
        except Conflict:
            self.ctx.metrics.checkpoints.labels("partition", "conflict").inc()
            if p in self.owned and not force:
                self._reload(p, "another writer checkpointed this partition first")
            return False
        owned.head = head
        owned.state.saved(head.manifest)
        self._saved_count += 1
        owned.unsaved = 0
        owned.last_saved = time.monotonic()
        owned.last_cost = time.perf_counter() - started
        self.ctx.metrics.checkpoints.labels("partition", "saved").inc()
        self.ctx.metrics.checkpoint_seconds.labels("partition").observe(owned.last_cost)
        return True

    def _maybe_save(self, idle: bool) -> dict[TopicPartition, OffsetAndMetadata]:
        """Checkpoint the partitions that are due; the offsets checkpointed, for the loop to commit."""
        now = time.monotonic()
        saved: dict[TopicPartition, OffsetAndMetadata] = {}
        for p, owned in list(self.owned.items()):
            # while catching up, spend at most about a fifth of the time on checkpoints
            age = now - owned.last_saved
            due = age >= max(self.ctx.checkpoint_interval_s, 4 * owned.last_cost) or (idle and age >= 0.5)
            if not (owned.unsaved or owned.state.dirty) or not due or not self._save(p, owned):
                continue
            for logical in PETITION_TOPICS:
                offset = owned.state.offsets.get(offset_key(logical, p))
                if offset is not None:
                    saved[TopicPartition(self.ctx.topic(logical), p)] = OffsetAndMetadata(offset, "", -1)
        if now - self._evicted > 60:
            self._evicted = now
            for owned in self.owned.values():
                owned.state.evict(idle_s=600)
        return saved

    def _maybe_switch_generation(self) -> None:
        now = time.monotonic()
        if now - self._generation_checked < 2.0:
            return
        self._generation_checked = now
        generation = self.ctx.generations.current()
        for p, owned in list(self.owned.items()):
            if owned.generation != generation:
                self._reload(p, f"generation {generation} is current (a rebuild finished)")
