"""Rebuild every read model of stats from Kafka, the source of truth:  python -m services.stats.rebuild

1. Snapshot the end offsets of the petition topics and of the alerts topic.
2. Import the alerts topic into the alerts store (what was published stays listed; nothing is
   published again).
3. For each partition number, read that partition of the three petition topics from the beginning
   to the snapshot, apply every event with the same code as the live consumer (one partition in
   memory at a time), and save it as the first checkpoint of a new generation.
4. Replay the hotspot detector over all partitions of intake and routing, merged in time order as
   live, and save it in the new generation. Alerts it finds are committed through the alerts store,
   which publishes only those not published before (same id or same burst); --no-alerts skips that.
5. Switch the current generation. Running instances notice within seconds, drop their state and
   continue from the new checkpoints (whose offsets are the snapshot), so nothing is counted twice
   or missed. If another rebuild switched first, this one stops without switching.

History. A rebuild that starts from the beginning needs every event since offset 0. If a petition
topic's log starts later (retention or DeleteRecords deleted its oldest events), it refuses before
writing anything (exit status 2), naming the partitions and how many events are gone, instead of
silently counting only what is left. `--from-checkpoint` starts each partition, and the detector,
from the current generation's checkpoints instead (the state they hold, then the events after their
offsets); it refuses in the same way if a checkpoint does not reach the log's start. That path
re-derives only the events after the checkpoints: what came before is counted as it was then.
The alerts topic is read from wherever it starts (the alerts store keeps the alerts it had).

Progress goes to stderr; the new totals to stdout (JSON). Exit status 0 on success.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from petition_common import logs
from petition_common.config import Settings
from petition_common.contract import ContractValidator, SchemaViolation
from petition_common.envelope import EnvelopeError, Event
from petition_common.runtime import ServiceRuntime
from petition_common.store import Conflict
from petition_common.topics import ALERTS
from services.stats.bootstrap import StatsConfig, build_context, load_config, partition_count
from services.stats.domain.changes import BadEvent
from services.stats.domain.facts import COUNTERS, N_COUNTERS
from services.stats.metrics import StatsMetrics
from services.stats.write.checkpoints import HOTSPOTS_TASK, CheckpointStore, namespace, partition_task
from services.stats.write.context import Context
from services.stats.write.detector import DetectorFeed
from services.stats.write.detector_state import HotspotState
from services.stats.write.partition_state import PartitionState, Stale
from services.stats.write.records import DETECTOR_TOPICS, PETITION_TOPICS, decode, offset_key


class Progress:
    def __init__(self, out: Callable[[str], None], every_s: float = 2.0):
        self.out = out
        self.every_s = every_s
        self.started = time.monotonic()
        self._last = 0.0

    def __call__(self, stage: str, done: int, total: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.every_s:
            return
        self._last = now
        elapsed = now - self.started
        share = f"{100 * done / total:5.1f}%" if total else "  -  "
        self.out(f"[{elapsed:7.1f}s] {stage}: {done:,}/{total:,} messages {share}")


class HistoryMissing(RuntimeError):
    """A partition's log starts past the first event a replay needs: it would work from part of the history."""

    def __init__(self, short: dict[TopicPartition, tuple[int, int]], advice: str = ""):
        self.short = short  # partition -> (first offset needed, first offset the log still has)
        lines = [
            f"  {tp.topic} partition {tp.partition}: needed from offset {need:,}, the log starts at {start:,} "
            f"({start - need:,} events deleted)"
            for tp, (need, start) in sorted(short.items())
        ]
        super().__init__("\n".join(["the topics no longer hold the history this needs:", *lines, advice]).strip())


def check_history(consumer: KafkaConsumer, starts: dict[TopicPartition, int], advice: str = "") -> None:
    """Raise HistoryMissing unless every partition's log still starts at or before its first needed offset."""
    begin = consumer.beginning_offsets(list(starts))
    short = {tp: (need, begin[tp]) for tp, need in starts.items() if begin[tp] > need}
    if short:
        raise HistoryMissing(short, advice)


def read_to(
    consumer: KafkaConsumer,
    tps: list[TopicPartition],
    stage: str,
    progress: Progress,
    starts: dict[TopicPartition, int] | None = None,
) -> Iterable[tuple[TopicPartition, Any]]:
    """Every record of `tps` from `starts` (default: offset 0, the very first event) up to their end
    offsets as of now. Raises HistoryMissing, before and after reading, if a log starts past where
    this must begin (the consumer would otherwise silently skip to what is left)."""
    consumer.assign(tps)
    starts = {tp: (starts or {}).get(tp, 0) for tp in tps}
    check_history(consumer, starts)
    ends = consumer.end_offsets(tps)
    total = sum(max(ends[tp] - starts[tp], 0) for tp in tps)
    for tp in tps:
        consumer.seek(tp, starts[tp])
    remaining = {tp for tp in tps if ends[tp] > starts[tp]}
    done = 0
    while remaining:
        batch = consumer.poll(timeout_ms=1000)
        for tp, records in batch.items():
            for record in records:
                if record.offset >= ends[tp]:
                    break
                done += 1
                yield tp, record
            if tp in remaining and consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
                consumer.pause(tp)
        progress(stage, done, total)
    progress(stage, done, total, force=True)
    check_history(consumer, starts)  # nothing this read from was deleted while it read
    consumer.unsubscribe()


def history_consumer(settings: Settings, check_crcs: bool, purpose: str) -> KafkaConsumer:
    """A consumer outside any group, for reading topics from the beginning (assigned, never committed)."""
    return KafkaConsumer(
        **settings.kafka_client(),
        group_id=None,
        client_id=f"petitions-{settings.service}-{purpose}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=5000,
        check_crcs=check_crcs,
    )


def replay_detector(
    consumer: KafkaConsumer,
    settings: Settings,
    partitions: int,
    state: HotspotState,
    progress: Progress,
    validator: ContractValidator,
    metrics: StatsMetrics | None = None,
) -> dict[TopicPartition, int]:
    """Feed intake's and routing's topics, from the beginning (or from the offsets `state` already
    reflects) to their end as of now, into `state` along the live detector's path (partitions merged
    in time order, the submitted/assigned join); returns the end offsets it read to."""
    feed = DetectorFeed(state, partitions, validator, metrics)
    tps = [TopicPartition(settings.topic(t), p) for t in DETECTOR_TOPICS for p in range(partitions)]
    logical = {settings.topic(t): t for t in DETECTOR_TOPICS}
    starts = {tp: state.offsets.get(offset_key(logical[tp.topic], tp.partition), 0) for tp in tps}
    ends = consumer.end_offsets(tps)
    for i, (tp, record) in enumerate(read_to(consumer, tps, "hotspots", progress, starts)):
        feed.add(logical[tp.topic], tp.partition, record)
        feed.set_caught_up((logical[tp.topic], tp.partition), record.offset + 1 >= ends[tp])
        if i % 1000 == 999:
            feed.release()
    for tp in tps:
        feed.set_caught_up((logical[tp.topic], tp.partition), True)
    feed.release()
    return ends


class Rebuilder:
    def __init__(self, ctx: Context, config: StatsConfig, partitions: int, progress: Progress):
        self.ctx = ctx
        self.config = config
        self.partitions = partitions
        self.progress = progress
        self.skipped = 0

    def next_generation(self, current: int) -> int:
        """The first generation after `current` that no earlier, unfinished rebuild has written to."""
        generation = current + 1
        while any(
            CheckpointStore(self.ctx.db, namespace(generation, task)).latest() is not None
            for task in (partition_task(0), HOTSPOTS_TASK)
        ):
            generation += 1
        return generation

    def import_alerts(self, consumer: KafkaConsumer) -> int:
        topic = self.ctx.topic(ALERTS)
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        # from wherever the topic starts: alerts before that stay listed, the alerts store keeps them
        starts = consumer.beginning_offsets(tps) if tps else {}
        imported = 0
        for _, record in read_to(consumer, tps, "alerts", self.progress, starts):
            try:
                event = Event.from_bytes(record.value)
            except EnvelopeError:
                continue
            if event.type == "alert.hotspot" and isinstance(event.data.get("alert_id"), str):
                imported += self.ctx.alerts.import_published(event.data, event.time)
        return imported

    # ---- where each replay starts: offset 0, or a checkpoint of the current generation

    def _partition_tps(self, p: int) -> list[TopicPartition]:
        return [TopicPartition(self.ctx.topic(t), p) for t in PETITION_TOPICS]

    def _detector_tps(self) -> list[TopicPartition]:
        return [TopicPartition(self.ctx.topic(t), p) for t in DETECTOR_TOPICS for p in range(self.partitions)]

    def _starts(self, tps: list[TopicPartition], offsets: dict[str, int]) -> dict[TopicPartition, int]:
        logical = {self.ctx.topic(t): t for t in PETITION_TOPICS}
        return {tp: offsets.get(offset_key(logical[tp.topic], tp.partition), 0) for tp in tps}

    def seeded_partition(self, p: int, base: int) -> PartitionState:
        """Partition p's state as the newest checkpoint of generation `base` holds it, every block read
        now (a live instance may replace and delete them later) and marked to be written anew."""
        store = CheckpointStore(self.ctx.db, namespace(base, partition_task(p)))
        for _ in range(10):
            head = store.latest()
            state = PartitionState.at(p, self.ctx.rules, head, store.read_block, self.ctx.gaps)
            try:
                state.load_all()
            except Stale:
                continue  # a live instance checkpointed meanwhile and a block went: take its newer one
            state.dirty = set(state.manifest)
            return state
        raise RuntimeError(f"could not read a stable checkpoint of partition {p} in generation {base}")

    def seeded_hotspots(self, base: int) -> HotspotState:
        """The detector's state as the newest checkpoint of generation `base` holds it, to be written anew."""
        store = CheckpointStore(self.ctx.db, namespace(base, HOTSPOTS_TASK))
        for _ in range(10):
            head = store.latest()
            if head is None:
                return HotspotState(self.ctx.hotspots)
            try:
                state = HotspotState.load(self.ctx.hotspots, head.manifest, store.read_block)
            except KeyError:
                continue  # replaced while we read
            state.offsets = dict(head.offsets)
            state.dirty = {*head.manifest, "m"}
            return state
        raise RuntimeError(f"could not read a stable detector checkpoint in generation {base}")

    def _checkpoint_offsets(self, base: int | None, task: str) -> dict[str, int]:
        head = CheckpointStore(self.ctx.db, namespace(base, task)).latest() if base is not None else None
        return head.offsets if head else {}

    def preflight(self, consumer: KafkaConsumer, base: int | None) -> None:
        """Refuse before writing anything if a replay would need events the topics no longer hold."""
        starts: dict[TopicPartition, int] = {}
        for p in range(self.partitions):
            starts.update(self._starts(self._partition_tps(p), self._checkpoint_offsets(base, partition_task(p))))
        for tp, offset in self._starts(self._detector_tps(), self._checkpoint_offsets(base, HOTSPOTS_TASK)).items():
            starts[tp] = min(starts.get(tp, offset), offset)
        if base is None:
            advice = (
                "A rebuild from the topics would count only what is left. Rebuild from stats' checkpoints instead "
                "(--from-checkpoint), or restore the topics' history first (docs/operations.md, 'Rebuilding')."
            )
        else:
            advice = (
                f"The checkpoints of generation {base} do not reach back to where the logs start now, so they "
                "cannot stand in for the deleted events; restore the history or an older database backup."
            )
        check_history(consumer, starts, advice)

    # ---- the replays

    def partition(self, consumer: KafkaConsumer, p: int, generation: int, base: int | None = None) -> list[int]:
        if base is None:
            state = PartitionState(p, self.ctx.rules, gaps=self.ctx.gaps)
        else:
            state = self.seeded_partition(p, base)
        tps = self._partition_tps(p)
        logical = {self.ctx.topic(t): t for t in PETITION_TOPICS}
        starts = self._starts(tps, state.offsets)
        for tp, record in read_to(consumer, tps, f"partition {p}", self.progress, starts):
            try:
                _, change = decode(record, self.ctx.validator)
            except (EnvelopeError, SchemaViolation, BadEvent):  # the live counter dead-letters these
                self.skipped += 1
                change = None
            if change is not None:
                state.apply(change)
            state.advance(offset_key(logical[tp.topic], p), record.offset)
        ends = consumer.end_offsets(tps)
        for tp in tps:  # resume exactly at the snapshot, also where a topic had nothing to read
            state.offsets[offset_key(logical[tp.topic], p)] = ends[tp]
        store = CheckpointStore(self.ctx.db, namespace(generation, partition_task(p)))
        store.commit(None, dict(state.offsets), state.encode_dirty(), {"partition": p, "rebuilt": True})
        totals = [0] * N_COUNTERS
        for cells in state.cells.values():
            for values in cells.values():
                totals = [a + b for a, b in zip(totals, values, strict=True)]
        return totals

    def hotspots(self, consumer: KafkaConsumer, generation: int, publish: bool, base: int | None = None) -> int:
        state = HotspotState(self.ctx.hotspots) if base is None else self.seeded_hotspots(base)
        ends = replay_detector(
            consumer, self.ctx.settings, self.partitions, state, self.progress, self.ctx.validator, self.ctx.metrics
        )
        logical = {self.ctx.topic(t): t for t in DETECTOR_TOPICS}
        for tp, end in ends.items():
            state.offsets[offset_key(logical[tp.topic], tp.partition)] = end
        pending = list(state.pending_alerts)
        if not publish:
            state.pending_alerts = []
        state.dirty.add("m")
        store = CheckpointStore(self.ctx.db, namespace(generation, HOTSPOTS_TASK))
        store.commit(None, dict(state.offsets), state.encode_dirty(), {"task": HOTSPOTS_TASK, "rebuilt": True})
        published = 0
        if publish:
            for item in pending:
                published += self.ctx.alerts.publish(item["data"], item.get("grid"))
        self.progress.out(f"hotspots: {len(pending)} alerts found, {published} of them new and published")
        return published

    def run(self, publish_alerts: bool = True, from_checkpoint: bool = False) -> dict[str, Any]:
        base = self.ctx.generations.loaded()
        current = int(base.state["generation"]) if base.state else 0
        seed = current if from_checkpoint else None
        generation = self.next_generation(current)
        origin = f"from the checkpoints of generation {current}" if from_checkpoint else "from the beginning"
        self.progress.out(
            f"rebuilding generation {generation} (current: {current}) {origin}, {self.partitions} partitions"
        )
        consumer = history_consumer(self.ctx.settings, self.ctx.check_crcs, "rebuild")
        try:
            self.preflight(consumer, seed)
            imported = self.import_alerts(consumer)
            totals = [0] * N_COUNTERS
            for p in range(self.partitions):
                part = self.partition(consumer, p, generation, seed)
                totals = [a + b for a, b in zip(totals, part, strict=True)]
            published = self.hotspots(consumer, generation, publish_alerts, seed)
        finally:
            consumer.close()
        try:
            self.ctx.generations.switch(base, generation, {"by": "rebuild"})
        except Conflict:
            raise SystemExit("another rebuild switched the generation first; this one is discarded") from None
        self.progress.out(f"generation {generation} is current")
        return {
            "generation": generation,
            "from_checkpoint_of": seed,
            "alerts_imported": imported,
            "alerts_published": published,
            "skipped_messages": self.skipped,
            "totals": dict(zip(COUNTERS, totals, strict=True)),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.stats.rebuild", description=__doc__.split("\n")[0])
    parser.add_argument("--no-alerts", action="store_true", help="do not publish alerts the replay finds")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument(
        "--from-checkpoint",
        action="store_true",
        help="start from the current generation's checkpoints instead of offset 0 (when old events were deleted)",
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env("stats")
    logs.configure("stats", "WARNING")
    runtime = ServiceRuntime(settings)
    try:
        config = load_config(settings)
        ctx = build_context(runtime, config, StatsMetrics(runtime.metrics.registry))
        runtime.ensure_topics()
        out = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr, flush=True))
        rebuilder = Rebuilder(ctx, config, partition_count(settings), Progress(out))
        try:
            result = rebuilder.run(not args.no_alerts, from_checkpoint=args.from_checkpoint)
        except HistoryMissing as exc:
            print(f"rebuild refused: {exc}", file=sys.stderr, flush=True)
            return 2
        sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    finally:
        runtime.shutdown()  # the flusher publishes the alerts it queued; the service's relay any left


if __name__ == "__main__":
    raise SystemExit(main())
