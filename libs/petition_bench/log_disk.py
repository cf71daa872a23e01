"""What an event costs on the broker's disk, per topic and codec:  python -m petition_bench.log_disk

The petition topics keep their history (docs/operations.md, "Topics"), so the disk they take grows
with the years; this measures the bytes per event that figure rests on. It publishes generated
lifecycle events (tests/e2e/stats_world.py: what intake, routing and sla publish, ~5-7 events per
petition) to throw-away topics on the local broker, once per codec and batching:

- "one per batch": every send waits for its acknowledgement, as the services' publishers do at a
  county's rate (a few events a minute, so a batch nearly always holds one event);
- "batched": linger 20 ms, as a burst or a relay catching up produces.

and reads each partition's size back with DescribeLogDirs (segment bytes; the sparse index files
add about 0.5 %). Prints a Markdown table; the topics are deleted afterwards.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic
from kafka.codec import has_lz4, has_zstd

from countysim import generate_county, generate_petitions
from petition_devtools.kafka_access import admin_client_config

TOPICS = ("petitions.intake.v1", "petitions.routing.v1", "petitions.sla.v1")
# lz4 is measured only where its library is installed (pip install lz4; the platform uses zstd)
AVAILABLE = {"none": True, "lz4": has_lz4(), "zstd": has_zstd()}


def _messages(petitions: int) -> list:
    # the generator of lifecycles lives with the tests that check stats against it; run from the repository
    from tests.e2e.stats_world import CHINA, World

    county = generate_county(seed=20240101)
    start = datetime(2024, 7, 1, tzinfo=CHINA).astimezone(UTC)
    generated = generate_petitions(county, petitions, seed=2024, start=start, days=max(petitions // 1085, 1))
    return World(county, [(p, None) for p in generated], seed=77).build().messages


def _sizes(admin: KafkaAdminClient, names: set[str]) -> Counter[str]:
    out: Counter[str] = Counter()
    for broker in admin.describe_log_dirs():
        for log_dir in broker["log_dirs"]:
            for topic in log_dir["topics"]:
                if topic["name"] in names:
                    out[topic["name"]] += sum(p["partition_size"] for p in topic["partitions"])
    return out


def measure(bootstrap: str, petitions: int) -> list[dict]:
    messages = _messages(petitions)
    run = uuid.uuid4().hex[:6]
    admin = KafkaAdminClient(**admin_client_config(bootstrap), client_id="log-disk")
    rows = []
    created: list[str] = []
    try:
        for batching in ("one per batch", "batched"):
            for codec in [c for c, present in AVAILABLE.items() if present]:
                names = {t: f"logdisk-{run}-{codec}-{batching[0]}-{t}" for t in TOPICS}
                # "producer": the broker stores each batch as it was sent
                configs = {"compression.type": "producer", "retention.ms": "-1"}
                admin.create_topics([NewTopic(n, 4, 1, topic_configs=configs) for n in names.values()])
                created += names.values()
                producer = KafkaProducer(
                    **admin_client_config(bootstrap),
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=20 if batching == "batched" else 1,
                    compression_type=None if codec == "none" else codec,
                )
                for m in messages:
                    future = producer.send(names[m.topic], key=m.key.encode(), value=m.value, headers=m.headers)
                    if batching == "one per batch":
                        future.get(timeout=30)
                producer.flush(60)
                producer.close()
                sizes = _sizes(admin, set(names.values()))
                counts = Counter(m.topic for m in messages)
                payload = Counter()
                for m in messages:
                    payload[m.topic] += len(m.value) + len(m.key) + sum(len(k) + len(v) for k, v in m.headers)
                for t in TOPICS:
                    rows.append(
                        {
                            "batching": batching,
                            "codec": codec,
                            "topic": t,
                            "events": counts[t],
                            "payload_per_event": payload[t] / counts[t],
                            "disk_per_event": sizes[names[t]] / counts[t],
                        }
                    )
                print(f"measured {codec}, {batching}", file=sys.stderr, flush=True)
    finally:
        if created:
            admin.delete_topics(created)
        admin.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m petition_bench.log_disk", description=__doc__.split("\n")[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--petitions", type=int, default=2000, help="generated petitions, with their lifecycles")
    args = parser.parse_args(argv)
    rows = measure(args.bootstrap, args.petitions)
    print("| batching | codec | topic | events | payload B/event | on disk B/event | disk ÷ payload |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['batching']} | {r['codec']} | {r['topic']} | {r['events']:,} | {r['payload_per_event']:.0f} "
            f"| {r['disk_per_event']:.0f} | {r['disk_per_event'] / r['payload_per_event']:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
