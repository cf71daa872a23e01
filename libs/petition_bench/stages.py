"""The benchmark's stages; each returns a JSON-able dict for the report."""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from tqdm import tqdm

from countysim import County, GeneratedPetition, generate_petitions
from petition_bench import ceilings
from petition_bench.load import Submitter, batch_loop, closed_loop, open_loop, percentiles_ms
from petition_bench.platform import Platform
from petition_common import topics
from petition_common.envelope import Event
from petition_devtools.kafka_access import admin_client_config

ALL = {"intake": 1, "routing": 1, "sla": 1, "stats": 1}


@dataclass
class Context:
    county: County
    work: Path
    kafka: str
    mongo: str
    threads: int  # gunicorn threads per instance (GUNICORN_THREADS)
    quick: bool
    ferretdb_debug: str | None = None

    def platform(self, name: str, root: Path | None = None, **kwargs: Any) -> Platform:
        return Platform(
            self.county,
            root or self.work / name,
            kafka=self.kafka,
            mongo=self.mongo,
            ferretdb_debug=self.ferretdb_debug,
            extra_env={"GUNICORN_THREADS": str(self.threads), **kwargs.pop("extra_env", {})},
            **kwargs,
        )

    def petitions(self, n: int, seed: int, days: float = 30) -> list[GeneratedPetition]:
        return generate_petitions(self.county, n, seed=seed, start=datetime(2025, 3, 1, tzinfo=UTC), days=days)


def bar(total: int | None, desc: str) -> tqdm:
    return tqdm(total=total, desc=desc, unit="", leave=False, dynamic_ncols=True, mininterval=0.5)


def sample_event(ctx: Context) -> Event:
    g = ctx.petitions(1, seed=1)[0]
    data = {
        "petition_id": "JZ20250301000123",
        "channel": g.body["channel"],
        "category": g.body["category"],
        "content": g.body["content"],
        "location": g.body["location"],
        "citizen": {"name_masked": "张*", "phone_masked": "138****0000"},
        "submitted_at": "2025-03-01T01:00:00.000Z",
        "duplicate_of": None,
    }
    return Event(type="petition.submitted", source="petitions/intake", subject=data["petition_id"], data=data)


# ---- 1. raw ceilings


def run_ceilings(ctx: Context) -> dict[str, Any]:
    event = sample_event(ctx)
    n_kafka = 20_000 if ctx.quick else 100_000
    n_mongo = 2_000 if ctx.quick else 10_000
    with bar(n_kafka * 3 // 2, "raw kafka-python") as b:
        kafka = ceilings.kafka_rates(ctx.kafka, event.to_bytes(), n_kafka, 4, b.update)
    commit_doc = {"state": event.to_dict()["data"], "events": [event.to_dict()], "seq": 1}
    with bar(n_mongo * 3, "raw pymongo") as b:
        mongo = ceilings.mongo_rates(ctx.mongo, commit_doc, n_mongo, b.update)
    return {"kafka": kafka, "mongo": mongo}


# ---- 2. intake throughput, 3. end-to-end latency


def run_intake(ctx: Context, levels: tuple[int, ...], seconds: float) -> dict[str, Any]:
    """Closed-loop submissions at several concurrencies, with the whole platform consuming behind."""
    platform = ctx.platform("intake")
    try:
        platform.start(ALL)
        pool = iter(ctx.petitions(int(sum(levels) * seconds * 150) + 1000, seed=21))
        submitter = Submitter(platform)
        rows = []
        for c in levels:
            with bar(None, f"intake closed loop c={c}") as b:
                row, _ = closed_loop(submitter, pool, c, seconds, b.update)
            rows.append(row)
            tqdm.write(f"  intake c={c}: {row['per_s']:.0f}/s p99 {row['p99_ms']:.0f} ms")
            _drain(platform, ("routing", "sla", "intake"))  # start each level from an idle platform
        ok = [r for r in rows if r["p99_ms"] is not None and r["p99_ms"] < 200 and not r["errors"]]
        best = max(ok, key=lambda r: r["per_s"]) if ok else None
        batches = []  # beside the single submissions: the hotline's hand-over
        for size, c in ((100, 1), (100, 2), (500, 2)):
            with bar(None, f"intake batches of {size}, c={c}") as b:
                row = batch_loop(platform, pool, size, c, seconds, b.update)
            batches.append(row)
            tqdm.write(
                f"  intake batches of {size} c={c}: {row['per_s']:.0f} petitions/s, p99 {row['p99_ms']} ms a batch"
            )
            _drain(platform, ("routing", "sla", "intake"))
        return {
            "gunicorn": {"workers": 1, "threads": ctx.threads, "instances": 1},
            "levels": rows,
            "sustained_per_s_at_p99_under_200ms": best["per_s"] if best else None,
            "batches": batches,
        }
    finally:
        platform.stop()


# the stats summary's poll: its ~2 s figure to a tenth of a second; at 50 polls a second (before) the
# poller alone cost a fifth of a core, on the machine whose latency it measured
STATS_POLL_S = 0.1


def run_latency(ctx: Context, rate: float, seconds: float) -> dict[str, Any]:
    """Open loop at `rate`/s; the time from each 201 to its petition.assigned on Kafka and to stats."""
    platform = ctx.platform("latency")
    try:
        platform.start(ALL)
        assigned: dict[str, float] = {}
        stop = threading.Event()
        watcher = _AssignedWatcher(platform, assigned, stop)
        watcher.start()
        watcher.ready.wait(30)
        counts: list[tuple[float, int]] = []

        def poll_stats() -> None:
            while not stop.is_set():
                # a failed answer is a missing sample, not a failure of the stage
                with contextlib.suppress(Exception):
                    counts.append((time.time(), int(platform.stats_summary()["accepted"])))
                time.sleep(STATS_POLL_S)

        poller = threading.Thread(target=poll_stats, daemon=True)
        poller.start()
        petitions = ctx.petitions(int(rate * seconds), seed=31, days=1)
        with bar(len(petitions), f"steady {rate:.0f}/s") as b:
            load, receipts = open_loop(Submitter(platform), petitions, rate, b.update)
        deadline = time.time() + 180
        ids = {r.petition_id for r in receipts}
        while time.time() < deadline and not (ids <= assigned.keys() and counts and counts[-1][1] >= len(receipts)):
            time.sleep(0.2)
        stop.set()
        poller.join()
        watcher.join()
        to_assigned = [assigned[r.petition_id] - r.done_at for r in receipts if r.petition_id in assigned]
        # stats answers counts, not ids: the k-th 201 is "in stats" when the summary first counts k
        done = sorted(r.done_at for r in receipts)
        to_stats = []
        j = 0
        for k, t201 in enumerate(done, start=1):
            while j < len(counts) and (counts[j][1] < k or counts[j][0] < t201):
                j += 1
            if j == len(counts):
                break
            to_stats.append(counts[j][0] - t201)
        return {
            "load": load,
            "to_assigned": {"n": len(to_assigned), **percentiles_ms(to_assigned)},
            "to_stats_summary": {"n": len(to_stats), **percentiles_ms(to_stats)},
            "stats_poll_interval_ms": round(STATS_POLL_S * 1000),
        }
    finally:
        platform.stop()


class _AssignedWatcher(threading.Thread):
    """Reads the routing topic from its current end and notes when each petition.assigned arrives."""

    def __init__(self, platform: Platform, seen: dict[str, float], stop: threading.Event):
        super().__init__(daemon=True)
        self.platform, self.seen, self.stop = platform, seen, stop
        self.ready = threading.Event()

    def run(self) -> None:
        topic = self.platform.topic(topics.ROUTING)
        consumer = KafkaConsumer(**admin_client_config(self.platform.kafka), group_id=None, enable_auto_commit=False)
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_end(*tps)
        for tp in tps:
            consumer.position(tp)
        self.ready.set()
        while not self.stop.is_set():
            for records in consumer.poll(timeout_ms=100).values():
                now = time.time()
                for r in records:
                    doc = orjson.loads(r.value)
                    if doc.get("type") == "petition.assigned":
                        self.seen.setdefault(doc["data"]["petition_id"], now)
        consumer.close()


def _drain(platform: Platform, services: tuple[str, ...], timeout_s: float = 600) -> float:
    """Wait until the services' consumer groups have no lag; returns the seconds waited."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        if not any(platform.lag(services).values()):
            return time.perf_counter() - t0
        time.sleep(0.2)
    raise TimeoutError(f"{services} still lagging after {timeout_s:.0f} s")


# ---- 5. scale-out


def run_scaleout(ctx: Context, n: int) -> dict[str, Any]:
    """The same stream of `n` submissions, caught up by one and then two instances of each consumer.

    The stream is made once by intake alone (real HTTP submissions) and copied partition for
    partition into each fresh namespace, so routing, sla and stats start with a backlog and their
    rate is how fast they work through it. Intake's own consumer follows routing's events about
    petitions it accepted itself, so intake scales by HTTP instances instead (stated separately).
    """
    source = ctx.platform("scaleout-source")
    out: dict[str, Any] = {"petitions": n}
    try:
        source.start({"intake": 1})
        with bar(n, "scale-out: intake alone") as b:
            row, _ = closed_loop(Submitter(source), iter(ctx.petitions(n, seed=41)), 16, 3600, b.update, limit=n)
        out["intake_alone"] = row
        records = _read_topic(source, topics.INTAKE)
    finally:
        source.stop()
    out["stream_events"] = len(records)
    runs = {}
    for k in (1, 2):
        runs[str(k)] = _catch_up(ctx, records, k, n)
        tqdm.write(f"  scale-out x{k}: " + ", ".join(f"{s} {v['per_s']:.0f}/s" for s, v in runs[str(k)].items()))
    out["instances"] = runs
    out["intake_http"] = _intake_http_scaleout(ctx)
    return out


def _read_topic(platform: Platform, logical: str) -> list[tuple[int, bytes | None, bytes, list]]:
    topic = platform.topic(logical)
    consumer = KafkaConsumer(**admin_client_config(platform.kafka), group_id=None, enable_auto_commit=False)
    tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    ends = consumer.end_offsets(tps)
    out = []
    while any(consumer.position(tp) < ends[tp] for tp in tps):
        for tp, batch in consumer.poll(timeout_ms=500, max_records=2000).items():
            out.extend((tp.partition, r.key, r.value, list(r.headers or [])) for r in batch)
    consumer.close()
    return out


def _catch_up(ctx: Context, records: list, k: int, n: int) -> dict[str, Any]:
    platform = ctx.platform(f"scaleout-x{k}")
    try:
        admin = KafkaAdminClient(**admin_client_config(ctx.kafka), client_id="bench-copy")
        admin.create_topics([NewTopic(platform.topic(t), num_partitions=4, replication_factor=1) for t in CONSUMES_ALL])
        admin.close()
        producer = KafkaProducer(**admin_client_config(ctx.kafka), acks="all", linger_ms=5)
        topic = platform.topic(topics.INTAKE)
        for partition, key, value, headers in records:
            producer.send(topic, key=key, value=value, headers=headers, partition=partition)
        producer.flush()
        producer.close()
        services = ("routing", "sla", "stats")
        platform.start({s: k for s in services})
        samples: dict[str, list[tuple[float, int]]] = {s: [] for s in services}
        deadline = time.time() + 3600
        with bar(None, f"scale-out x{k} catching up") as b:
            while time.time() < deadline:
                now = time.time()
                for s in services:
                    samples[s].append((now, platform.consumed(s)))
                lag = platform.lag(("routing", "sla"))
                accepted = int(platform.stats_summary().get("accepted", 0))
                b.set_postfix(lag=sum(lag.values()), stats=accepted, refresh=False)
                b.update(1)
                if not any(lag.values()) and accepted >= n and _flat(samples["stats"], 2.0):
                    break
                time.sleep(0.5)
        return {s: _rate(samples[s]) for s in services}
    finally:
        platform.stop()


CONSUMES_ALL = (topics.INTAKE, topics.ROUTING, topics.SLA, topics.ALERTS, topics.DEADLETTER)


def _flat(samples: list[tuple[float, int]], seconds: float) -> bool:
    """The counter has not moved for `seconds`."""
    if not samples or samples[-1][1] == 0:
        return False
    last_t, last_v = samples[-1]
    older = [v for t, v in samples if t <= last_t - seconds]
    return bool(older) and older[-1] == last_v


def _rate(samples: list[tuple[float, int]]) -> dict[str, Any]:
    """Events handled per second between the first sample that moved and the last that did."""
    moving = [i for i in range(1, len(samples)) if samples[i][1] != samples[i - 1][1]]
    if not moving:
        return {"events": 0, "seconds": 0.0, "per_s": 0.0}
    t0 = samples[moving[0] - 1][0]
    t1, total = samples[moving[-1]]
    return {"events": total, "seconds": t1 - t0, "per_s": total / (t1 - t0) if t1 > t0 else 0.0}


def _intake_http_scaleout(ctx: Context) -> dict[str, Any]:
    """Closed-loop submissions (32 clients) to one and then two intake instances, nothing behind."""
    out = {}
    for k in (1, 2):
        platform = ctx.platform(f"intake-http-x{k}")
        try:
            platform.start({"intake": k})
            with bar(None, f"intake http x{k}") as b:
                row, _ = closed_loop(Submitter(platform), iter(ctx.petitions(20_000, seed=51)), 32, 20, b.update)
            out[str(k)] = row
        finally:
            platform.stop()
    return out
