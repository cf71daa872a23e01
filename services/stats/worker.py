"""The background work of a stats instance: counting the partitions it owns and, on the owner of
partition 0, detecting hotspots.

Partitions. One consumer-group member per instance subscribes to the three petition topics with
the range assignor, which gives partition number p of every topic to the same member (the topics
have the same number of partitions, so a petition's events are all in number p). The member keeps
the state of each number it owns (partition.py) and checkpoints it with the offsets it reflects
(checkpoints.py). It does not rely on Kafka's committed offsets: on assignment it loads the latest
checkpoint and seeks to the offsets stored in it, so every event is applied exactly once to the
checkpointed state; offsets are committed to Kafka only to show consumer lag. A checkpoint that
loses the insert race (another instance wrote the same version during a rebalance) is discarded and
the state reloaded from the winner's checkpoint.

Hotspots. Areas span all partitions, so detection needs one reader of all of them. The instance
that owns partition 0 of the group runs it, in a thread with its own consumer manually assigned to
every partition of the intake and routing topics, and its own checkpoint chain (offsets, detector
state, raised alerts). An alert is saved in a checkpoint before it is committed to the alerts store,
so a replay from a checkpoint never raises an alert that was already raised; the alerts store
publishes each alert id once in any case. When ownership moves during a rebalance, the old owner
stops its thread; while both run, their checkpoints are fenced like the partitions'.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata
from pymongo.database import Database

from petition_common.config import Settings
from petition_common.consumer import LagReporter
from petition_common.dlq import DeadLetterFlood, DeadLetterSink, FloodHold, StopRequested
from petition_common.envelope import EnvelopeError, Event
from petition_common.kafka_io import EventPublisher
from petition_common.metrics import PlatformMetrics
from petition_common.store import Conflict
from petition_common.topics import INTAKE, ROUTING, SLA
from petition_kernel.calendar import CalendarFileError
from services.stats.alerts import AlertPublisher
from services.stats.checkpoints import Checkpoint, CheckpointStore, namespace, sweep
from services.stats.domain.changes import HANDLED_TYPES, BadEvent, change_of
from services.stats.domain.facts import CalendarGaps, Change, SlaRules
from services.stats.domain.hotspot_config import HotspotConfig
from services.stats.domain.time_merge import TimeMerge
from services.stats.generations import Generations
from services.stats.hotspot_state import HotspotState
from services.stats.metrics import StatsMetrics
from services.stats.partition import PartitionState, Stale

log = logging.getLogger(__name__)

PETITION_TOPICS = (INTAKE, ROUTING, SLA)
DETECTOR_TOPICS = (INTAKE, ROUTING)
DETECTOR_TYPES = frozenset({"petition.submitted", "petition.assigned"})
HOTSPOTS_TASK = "hotspots"


def partition_task(p: int) -> str:
    return f"p{p}"


def offset_key(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


@dataclass
class Context:
    """What the workers share: configuration, clients and metrics."""

    settings: Settings
    db: Database
    rules: SlaRules
    hotspots: HotspotConfig
    generations: Generations
    publisher: EventPublisher
    platform: PlatformMetrics
    metrics: StatsMetrics
    alerts: AlertPublisher
    checkpoint_interval_s: float = 2.0
    check_crcs: bool = True
    gaps: CalendarGaps = field(default_factory=CalendarGaps)

    def topic(self, logical: str) -> str:
        return self.settings.topic(logical)


def decode(record: Any, wanted: frozenset[str] = HANDLED_TYPES) -> tuple[str | None, Change | None]:
    """(event type, change) of a Kafka record; (type, None) for types not wanted.

    Raises EnvelopeError or BadEvent for a message that can never be applied.
    """
    for name, value in record.headers or ():
        if name == "ce_type":
            if value.decode("utf-8", "replace") not in wanted:
                return value.decode("utf-8", "replace"), None  # skipped without parsing the body
            break
    key = record.key.decode("utf-8", "replace") if record.key is not None else None
    event = Event.from_bytes(record.value, key=key)
    if event.type not in wanted:
        return event.type, None
    change = change_of(event.type, event.data, event.id)
    if change is not None and key is not None and key != change.petition_id:
        raise BadEvent(event.type, "petition_id", f"differs from the message key {key!r}")
    return event.type, change


@dataclass
class Owned:
    state: PartitionState
    store: CheckpointStore
    head: Checkpoint | None
    generation: int
    last_saved: float = field(default_factory=time.monotonic)
    last_cost: float = 0.0  # seconds the last checkpoint took
    unsaved: int = 0  # messages consumed since the last checkpoint


class PartitionWorker:
    """Owns partition numbers through the consumer group; see the module docstring."""

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
        self.dead_letters = DeadLetterSink.for_settings(ctx.publisher, ctx.settings, ctx.settings.consumer_group, stop)
        self.floods = FloodHold()
        self.logical = {ctx.topic(t): t for t in PETITION_TOPICS}
        self._consumer: KafkaConsumer | None = None
        self._generation_checked = 0.0
        self._evicted = 0.0
        self._saved_count = 0
        self._stores: dict[str, CheckpointStore] = {}

    # ---- ownership

    def _store(self, generation: int, task: str) -> CheckpointStore:
        ns = namespace(generation, task)
        if ns not in self._stores:
            self._stores[ns] = CheckpointStore(self.ctx.db, ns)
        return self._stores[ns]

    def stores(self) -> list[CheckpointStore]:
        """The checkpoint stores this worker wrote to (for the garbage collector's thread)."""
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

    def _claim(self, consumer: KafkaConsumer, assigned: Iterable[TopicPartition]) -> None:
        by_number: dict[int, set[str]] = {}
        for tp in assigned:
            by_number.setdefault(tp.partition, set()).add(self.logical.get(tp.topic, tp.topic))
        incomplete = {p: sorted(t) for p, t in by_number.items() if t != set(PETITION_TOPICS)}
        if incomplete:
            raise RuntimeError(
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

    def _release(self, revoked: Iterable[TopicPartition]) -> None:
        for p in sorted({tp.partition for tp in revoked}):
            owned = self.owned.pop(p, None)
            if owned is None:
                continue
            try:
                self._save(p, owned, force=True)
                self.parked[p] = owned
            except Exception as exc:  # the next owner reloads from the last good checkpoint
                log.warning("could not checkpoint a revoked partition", extra={"partition": p, "error": repr(exc)})
        self.ctx.metrics.owned_partitions.set(len(self.owned))

    def _reload(self, p: int, why: str) -> None:
        old = self.owned[p]
        log.info("reloading partition state", extra={"partition": p, "why": why})
        owned = self._load(p, self.ctx.generations.current())
        self.owned[p] = owned
        if self._consumer is not None:
            self._seek(self._consumer, p, owned)
        del old

    # ---- the loop

    def run(self, max_failures: int = 5) -> None:
        """Consume until stopped. Any failure (the database or broker away, a rebalance gone wrong)
        drops the in-memory state and starts again from the checkpoints, after a pause; only
        `max_failures` failures in a row without a checkpoint in between stop the worker."""
        failures, backoff = 0, 1.0
        while not self.stop.is_set():
            saved = self._saved_count
            try:
                self._run_consumer()
                return
            except Exception as exc:
                failures = 1 if self._saved_count > saved else failures + 1
                if failures >= max_failures:
                    raise
                log.warning("stats consumer failed; restarting from the checkpoints", extra={"error": repr(exc)})
                self.owned.clear()
                self.parked.clear()
                self.on_partition_zero(False)
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def _run_consumer(self) -> None:
        worker = self

        class Listener(ConsumerRebalanceListener):
            def on_partitions_revoked(self, revoked: Any) -> None:
                worker._release(revoked)

            def on_partitions_assigned(self, assigned: Any) -> None:
                assert worker._consumer is not None
                worker._claim(worker._consumer, assigned)

        consumer = KafkaConsumer(
            **self.ctx.settings.kafka_client(),
            group_id=self.ctx.settings.consumer_group,
            client_id=f"petitions-{self.ctx.settings.service}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            partition_assignment_strategy=(RangePartitionAssignor,),
            max_poll_records=self.max_poll_records,
            check_crcs=self.ctx.check_crcs,
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
        )
        self._consumer = consumer
        consumer.subscribe(topics=[self.ctx.topic(t) for t in PETITION_TOPICS], listener=Listener())
        settings = self.ctx.settings
        lag = LagReporter(self.ctx.platform, settings.service, settings.consumer_group, self.logical)
        log.info("stats consumer started", extra={"group": settings.consumer_group})
        clean = False
        try:
            while not self.stop.is_set():
                self._release_due()
                batch = self.floods.without_held(consumer, consumer.poll(timeout_ms=300))
                lag.report(consumer)
                self._apply_batch(batch)
                self._maybe_save(consumer, idle=not batch)
                self._maybe_switch_generation(consumer)
            clean = True
        except StopRequested:
            clean = True
            log.info("stop requested while dead-lettering; the message will be read again")
        finally:
            for p, owned in list(self.owned.items()) if clean else ():
                try:
                    self._save(p, owned, force=True)
                except Exception as exc:
                    log.warning("final checkpoint failed", extra={"partition": p, "error": repr(exc)})
            self.on_partition_zero(False)
            try:
                consumer.close(autocommit=False)
            except Exception as exc:
                log.warning("closing the consumer failed", extra={"error": repr(exc)})
            self._consumer = None
            self.ctx.metrics.owned_partitions.set(0)
            log.info("stats consumer stopped")

    def _apply_batch(self, batch: dict[TopicPartition, list[Any]]) -> None:
        reloaded: set[int] = set()
        for tp, records in batch.items():
            p = tp.partition
            if p in reloaded or p not in self.owned:
                continue
            logical = self.logical.get(tp.topic, tp.topic)
            key = offset_key(logical, p)
            for record in records:
                owned = self.owned[p]
                if record.offset < owned.state.offsets.get(key, 0):
                    continue  # already in the state (fetched before a seek)
                try:
                    self._apply_record(owned, logical, record)
                except Stale as exc:
                    self._reload(p, str(exc))
                    reloaded.add(p)
                    break
                except DeadLetterFlood as flood:
                    self._hold(tp, record.offset, flood)
                    break  # the rest of this partition's records wait for it to run again
                owned.state.advance(key, record.offset)
                owned.unsaved += 1

    def _apply_record(self, owned: Owned, logical: str, record: Any) -> None:
        consumed = self.ctx.platform.consumed
        service = self.ctx.settings.service
        try:
            event_type, change = decode(record)
        except (EnvelopeError, BadEvent) as exc:
            reason = "unparseable" if isinstance(exc, EnvelopeError) else "schema_invalid"
            self.floods.admit(TopicPartition(record.topic, record.partition))  # DeadLetterFlood: pause instead
            self.dead_letters.send(record, reason, str(exc))
            self.ctx.platform.deadlettered.labels(service, reason).inc()
            consumed.labels(service, logical, "-", "deadlettered").inc()
            return
        if change is None:
            consumed.labels(service, logical, event_type or "-", "ignored").inc()
            return
        if change.kind == "deadline_changed":
            self._refresh_calendar()  # sla took up a new calendar: derive the verdicts with it too
        applied = owned.state.apply(change)
        consumed.labels(service, logical, event_type, "applied" if applied else "duplicate").inc()

    def _hold(self, tp: TopicPartition, offset: int, flood: DeadLetterFlood) -> None:
        """Stop reading a flooding partition for the guard's backoff, from the message that flooded it."""
        assert self._consumer is not None
        self.floods.hold(self._consumer, tp, offset)
        service = self.ctx.settings.service
        self.ctx.platform.deadletter_floods.labels(service, self.logical.get(tp.topic, tp.topic)).inc()
        self.ctx.platform.paused_partitions.labels(service).set(len(self.floods.held))
        extra = {"topic": tp.topic, "offset": offset, "pause_s": flood.pause_s}
        log.error("dead-letter flood: partition paused", extra=extra)

    def _release_due(self) -> None:
        if self.floods.release_due():
            self.ctx.platform.paused_partitions.labels(self.ctx.settings.service).set(len(self.floods.held))

    def _refresh_calendar(self) -> None:
        try:
            if self.ctx.rules.refresh_calendar():
                log.warning("working-day calendar reloaded")
        except CalendarFileError as exc:
            log.error("calendar file refused; the calendar in use stays", extra={"error": str(exc)})

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

    def _maybe_save(self, consumer: KafkaConsumer, idle: bool) -> None:
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
        if saved:
            try:  # only to show consumer lag; the checkpoint is what counts
                consumer.commit(saved)
            except KafkaError as exc:
                log.info("offset commit for lag reporting failed", extra={"error": str(exc)})

    def _maybe_switch_generation(self, consumer: KafkaConsumer) -> None:
        now = time.monotonic()
        if now - self._generation_checked < 2.0:
            return
        self._generation_checked = now
        generation = self.ctx.generations.current()
        for p, owned in list(self.owned.items()):
            if owned.generation != generation:
                self._reload(p, f"generation {generation} is current (a rebuild finished)")


class DetectorFeed:
    """Records in, alerts out: decodes the detector's records, merges the partitions in time order
    (domain/time_merge.py) and applies what the merge releases. Used live and by the rebuild."""

    def __init__(self, state: HotspotState, partitions: int, metrics: StatsMetrics | None = None):
        self.state = state
        self.metrics = metrics
        sources = [(t, p) for t in DETECTOR_TOPICS for p in range(partitions)]
        self.merge = TimeMerge(sources)  # type: ignore[arg-type]
        self.sources = sources

    def add(self, logical: str, partition: int, record: Any) -> int:
        """Take one record; 1 if it is new to the state, 0 if it was applied before."""
        if record.offset < self.state.offsets.get(offset_key(logical, partition), 0):
            return 0
        try:
            _, change = decode(record, DETECTOR_TYPES)
        except (EnvelopeError, BadEvent):
            change = None  # the partition worker dead-letters it
        self.merge.add((logical, partition), record.offset, change.at if change else None, change)
        return 1

    def set_caught_up(self, source: tuple[str, int], caught_up: bool) -> None:
        self.merge.set_caught_up(source, caught_up)

    def release(self) -> bool:
        """Apply what can go now; True if an alert was raised. Updates the offsets a checkpoint stores."""
        raised = False
        for _, _, change in self.merge.release():
            before = len(self.state.observed)
            raised |= bool(self.state.apply(change))
            if self.metrics is not None and len(self.state.observed) != before:
                self.metrics.observed.inc()
        for logical, p in self.sources:
            offset = self.merge.next_offset((logical, p))
            if offset is not None:
                self.state.offsets[offset_key(logical, p)] = offset
        return raised


class HotspotWorker:
    """The detector task: one per deployment, on the owner of partition 0 (see the module docstring)."""

    def __init__(self, ctx: Context, partitions: int, crashed: Callable[[str], None] = lambda name: None):
        self.ctx = ctx
        self.partitions = partitions
        self.crashed = crashed
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state: HotspotState | None = None
        self.feed: DetectorFeed | None = None
        self.head: Checkpoint | None = None
        self.store: CheckpointStore | None = None
        self.generation = -1
        self.last_cost = 0.0  # seconds the last checkpoint took
        self._saved_count = 0

    # ---- lifecycle

    def set_owner(self, owner: bool) -> None:
        running = self._thread is not None and self._thread.is_alive()
        if owner and not running:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._guarded, name="hotspots", daemon=True)
            self._thread.start()
        elif not owner and running:
            self._stop.set()
            assert self._thread is not None
            self._thread.join(20)

    def _guarded(self, max_failures: int = 5) -> None:
        self.ctx.metrics.detector_running.set(1)
        failures, backoff = 0, 1.0
        try:
            while not self._stop.is_set():
                saved = self._saved_count
                try:
                    self.run()
                    return
                except Exception as exc:
                    failures = 1 if self._saved_count > saved else failures + 1
                    if failures >= max_failures:
                        log.exception("hotspot detector keeps failing; stopping it")
                        self.crashed("hotspots")
                        return
                    log.warning("hotspot detector failed; restarting from its checkpoint", extra={"error": repr(exc)})
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, 30.0)
        finally:
            self.ctx.metrics.detector_running.set(0)

    # ---- loading and saving

    def stores(self) -> list[CheckpointStore]:
        return [self.store] if self.store is not None else []

    def _load(self, consumer: KafkaConsumer) -> None:
        generation = self.ctx.generations.current()
        if self.store is None or generation != self.generation:
            self.store = CheckpointStore(self.ctx.db, namespace(generation, HOTSPOTS_TASK))
        self.generation = generation
        for _ in range(10):
            self.head = self.store.latest()
            try:
                manifest = self.head.manifest if self.head else {}
                self.state = HotspotState.load(self.ctx.hotspots, manifest, self.store.read_block)
                break
            except KeyError:
                continue  # a block was replaced while we read; read the newer checkpoint
        else:
            raise RuntimeError("could not load the hotspot detector's checkpoint")
        self.state.offsets = dict(self.head.offsets) if self.head else {}
        self.feed = DetectorFeed(self.state, self.partitions, self.ctx.metrics)
        for logical in DETECTOR_TOPICS:
            for p in range(self.partitions):
                tp = TopicPartition(self.ctx.topic(logical), p)
                offset = self.state.offsets.get(offset_key(logical, p))
                if offset is None:
                    consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, offset)
        self._publish_pending()
        log.info(
            "hotspot detector loaded", extra={"generation": self.generation, "seq": self.head.seq if self.head else 0}
        )

    def _save(self) -> bool:
        assert self.state is not None and self.store is not None
        started = time.perf_counter()
        blocks = self.state.encode_dirty()
        try:
            self.head = self.store.commit(self.head, dict(self.state.offsets), blocks, {"task": HOTSPOTS_TASK})
        except Conflict:
            self.ctx.metrics.checkpoints.labels("hotspots", "conflict").inc()
            return False
        self.state.saved()
        self._saved_count += 1
        self.last_cost = time.perf_counter() - started
        self.ctx.metrics.checkpoints.labels("hotspots", "saved").inc()
        self.ctx.metrics.checkpoint_seconds.labels("hotspots").observe(self.last_cost)
        return True

    def _publish_pending(self) -> None:
        assert self.state is not None
        done = set()
        for pending in list(self.state.pending_alerts):
            self.ctx.alerts.publish(pending["data"], pending.get("grid"))  # False if published before: done
            done.add(pending["data"]["alert_id"])
        self.state.confirm_published(done)

    # ---- the loop

    def run(self) -> None:
        consumer = KafkaConsumer(
            **self.ctx.settings.kafka_client(),
            group_id=None,
            client_id=f"petitions-{self.ctx.settings.service}-hotspots",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=5000,
            check_crcs=self.ctx.check_crcs,
        )
        topics = {self.ctx.topic(t): t for t in DETECTOR_TOPICS}
        tps = {(t, p): TopicPartition(self.ctx.topic(t), p) for t in DETECTOR_TOPICS for p in range(self.partitions)}
        consumer.assign(list(tps.values()))
        settings = self.ctx.settings  # reads without a group; its lag is labelled as one, beside the main group
        lag = LagReporter(self.ctx.platform, settings.service, f"{settings.consumer_group}-hotspots", topics)
        paused: set[tuple[str, int]] = set()
        unsaved = 0
        clean = False
        try:
            self._load(consumer)
            last_save = last_prune = last_gen = time.monotonic()
            while not self._stop.is_set():
                batch = consumer.poll(timeout_ms=300)
                lag.report(consumer)
                assert self.feed is not None
                for tp, records in batch.items():
                    for record in records:
                        unsaved += self.feed.add(topics[tp.topic], tp.partition, record)
                for source, tp in tps.items():
                    highwater = consumer.highwater(tp)
                    self.feed.set_caught_up(source, highwater is not None and consumer.position(tp) >= highwater)
                    held = self.feed.merge.buffered(source)
                    if held > 20_000 and source not in paused:  # let the slower partitions catch up
                        consumer.pause(tp)
                        paused.add(source)
                    elif held < 5_000 and source in paused:
                        consumer.resume(tp)
                        paused.discard(source)
                raised = self.feed.release()
                now = time.monotonic()
                if now - last_prune > 60:
                    self.feed.state.prune()
                    last_prune = now
                # while catching up, spend at most about a fifth of the time on checkpoints; an alert
                # is published only once saved, so one raised makes the checkpoint due sooner
                age, floor = now - last_save, 4 * self.last_cost
                due = age >= max(self.ctx.checkpoint_interval_s, floor) or (not batch and age >= 0.5)
                if unsaved and (due or (raised and age >= floor)):
                    if self._save():
                        self._publish_pending()  # alerts go out only once their state is saved
                        last_save, unsaved = now, 0
                    else:
                        self._load(consumer)  # another detector saved first: continue from its state
                        unsaved = 0
                if now - last_gen > 2:
                    last_gen = now
                    if self.ctx.generations.current() != self.generation:
                        self._load(consumer)
                        unsaved = 0
            clean = True
        finally:
            if clean and self.state is not None and unsaved:  # after a failure, the checkpoint is what counts
                try:
                    if self._save():
                        self._publish_pending()
                except Exception as exc:
                    log.warning("final detector checkpoint failed", extra={"error": repr(exc)})
            consumer.close(autocommit=False)

    # ---- housekeeping (run by the owner of partition 0, rarely)

    def sweep(self, min_age: timedelta = timedelta(hours=1)) -> int:
        generation = self.ctx.generations.current()
        tasks = [partition_task(p) for p in range(self.partitions)] + [HOTSPOTS_TASK]
        heads = {
            namespace(generation, t): CheckpointStore(self.ctx.db, namespace(generation, t)).latest() for t in tasks
        }
        return sweep(self.ctx.db, generation, heads, min_age)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
