"""The hotspot detector: one per deployment, run by the instance that owns partition 0.

Areas span all partitions, so detection needs one reader of all of them. The instance that owns
partition 0 of the group (counting.py) runs it, in a thread with its own consumer manually assigned
to every partition of the intake and routing topics, and its own checkpoint chain (offsets, detector
state, raised alerts). An alert is saved in a checkpoint before it is committed to the alerts store,
so a replay from a checkpoint never raises an alert that was already raised; the alerts store
publishes each alert id once in any case. When ownership moves during a rebalance, the old owner
stops its thread; while both run, their checkpoints are fenced like the partitions'.

It reads without a consumer group, so it does not use the shared consumer loop; it dead-letters
nothing (the counter dead-letters what neither can apply).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from petition_common.consumer import LagReporter
from petition_common.contract import ContractValidator, SchemaViolation
from petition_common.envelope import EnvelopeError
from petition_common.store import Conflict
from services.stats.domain.changes import BadEvent
from services.stats.domain.time_merge import TimeMerge
from services.stats.metrics import StatsMetrics
from services.stats.write.checkpoints import (
    HOTSPOTS_TASK,
    Checkpoint,
    CheckpointStore,
    namespace,
    partition_task,
    sweep,
)
from services.stats.write.context import Context
from services.stats.write.detector_state import HotspotState
from services.stats.write.records import DETECTOR_TOPICS, DETECTOR_TYPES, decode, offset_key

log = logging.getLogger(__name__)


class DetectorFeed:
    """Records in, alerts out: decodes the detector's records, merges the partitions in time order
    (domain/time_merge.py) and applies what the merge releases. Used live and by the rebuild."""

    def __init__(
        self,
        state: HotspotState,
        partitions: int,
        validator: ContractValidator,
        metrics: StatsMetrics | None = None,
    ):
        self.state = state
        self.validator = validator
        self.metrics = metrics
        sources = [(t, p) for t in DETECTOR_TOPICS for p in range(partitions)]
        self.merge = TimeMerge(sources)  # type: ignore[arg-type]
        self.sources = sources

    def add(self, logical: str, partition: int, record: Any) -> int:
        """Take one record; 1 if it is new to the state, 0 if it was applied before."""
        if record.offset < self.state.offsets.get(offset_key(logical, partition), 0):
            return 0
        try:
            _, change = decode(record, self.validator, DETECTOR_TYPES)
        except (EnvelopeError, SchemaViolation, BadEvent):
            change = None  # the counter dead-letters it
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
    """The detector task: one per deployment, on the owner of partition 0 (module docstring)."""

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
        self.feed = DetectorFeed(self.state, self.partitions, self.ctx.validator, self.ctx.metrics)
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
