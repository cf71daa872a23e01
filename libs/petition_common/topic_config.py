"""Topic settings as code: what every topic is created with, and the check of existing topics.

The petition topics are the platform's record: stats rebuilds from them and other government
systems read them, so they keep their history (`retention.ms=-1`; docs/operations.md has the disk
this costs per county-year). The dead-letter topic holds copies of messages whose originals stay in
their own topic, so it may expire. Replication and `min.insync.replicas` come from the
configuration (1/1 on one broker, 3/2 on a cluster). Every setting is written on the topic itself,
so nothing depends on a broker's defaults (Kafka's default retention is 7 days).

Existing topics are checked at start-up (`ensure_topics`): a topic setting that differs is set to
the stated value and logged (an idempotent, online change; the configuration is the truth), while a
replication factor that differs is an error, `TopicMismatch`, because changing it is a partition
reassignment an operator must run (docs/operations.md says how).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, NewTopic
from kafka.errors import TopicAlreadyExistsError

from petition_common import topics
from petition_common.config import Settings

log = logging.getLogger(__name__)

CODECS = ("zstd", "lz4", "gzip", "none")
# topics kept for good: the petition events and the alerts other systems read
KEPT_FOR_GOOD = (topics.INTAKE, topics.ROUTING, topics.SLA, topics.ALERTS)
ALL_TOPICS = (*KEPT_FOR_GOOD, topics.DEADLETTER)
DAY_MS = 86_400_000


class TopicMismatch(RuntimeError):
    """An existing topic differs from its stated settings in a way the service must not change itself."""


class NotEnoughBrokers(RuntimeError):
    """Fewer live brokers than the replication factor asks for (maybe still starting)."""


@dataclass(frozen=True)
class TopicSpec:
    name: str  # the topic's full name (with the deployment's prefix)
    partitions: int
    replication_factor: int
    configs: dict[str, str]


def producer_codec(settings: Settings) -> str | None:
    """kafka-python's compression_type for the configured codec (None: uncompressed)."""
    codec = settings.compression
    if codec not in CODECS:
        raise ValueError(f"KAFKA_COMPRESSION must be one of {', '.join(CODECS)}, not {codec!r}")
    return None if codec == "none" else codec


def spec_for(settings: Settings, logical: str) -> TopicSpec:
    """The stated settings of one topic (logical name, as in topics.py)."""
    rf, min_isr = settings.replication_factor, settings.min_insync_replicas
    if not 1 <= min_isr <= rf:
        raise ValueError(f"KAFKA_MIN_INSYNC_REPLICAS ({min_isr}) must be between 1 and KAFKA_REPLICATION_FACTOR ({rf})")
    producer_codec(settings)  # validates the name
    if logical == topics.DEADLETTER:
        retention_ms = str(int(settings.deadletter_retention_days * DAY_MS))
    elif logical in KEPT_FOR_GOOD:
        retention_ms = "-1"
    else:
        raise ValueError(f"no stated settings for topic {logical!r}")
    configs = {
        "cleanup.policy": "delete",
        "retention.ms": retention_ms,
        "retention.bytes": "-1",
        "min.insync.replicas": str(min_isr),
        # the broker stores batches as the producer compressed them: ours send KAFKA_COMPRESSION, and
        # recompressing other producers' batches would cost the broker CPU on every append
        "compression.type": "producer",
        # an out-of-sync replica elected leader would drop acknowledged events: never
        "unclean.leader.election.enable": "false",
    }
    return TopicSpec(settings.topic(logical), settings.topic_partitions, rf, configs)


@dataclass(frozen=True)
class TopicState:
    """What the cluster says about one existing topic."""

    name: str
    partitions: int
    replication_factors: frozenset[int]  # over its partitions (one value unless a reassignment is under way)
    configs: dict[str, str]


def describe(admin: KafkaAdminClient, specs: list[TopicSpec]) -> dict[str, TopicState]:
    """The state of those of `specs` that exist (the keys the specs state, read back from the broker)."""
    existing = set(admin.list_topics())
    present = [s for s in specs if s.name in existing]
    if not present:
        return {}
    described = {t["name"]: t for t in admin.describe_topics([s.name for s in present])}
    resources = [ConfigResource("TOPIC", s.name, list(s.configs)) for s in present]
    configs = admin.describe_configs(resources, config_filter="all")["topic"]
    out = {}
    for s in present:
        parts = described[s.name]["partitions"]
        out[s.name] = TopicState(
            s.name,
            len(parts),
            frozenset(len(p["replica_nodes"]) for p in parts),
            {k: str(v["value"]) for k, v in configs[s.name].items()},
        )
    return out


def differences(spec: TopicSpec, state: TopicState) -> dict[str, tuple[str, str]]:
    """config key -> (current, stated) for every stated setting the topic does not have."""
    return {k: (state.configs.get(k, "?"), v) for k, v in spec.configs.items() if state.configs.get(k) != v}


def check_structure(spec: TopicSpec, state: TopicState) -> str | None:
    """What about an existing topic cannot be fixed by setting a config; None if nothing."""
    if state.replication_factors != {spec.replication_factor}:
        have = "/".join(str(n) for n in sorted(state.replication_factors))
        return (
            f"topic {spec.name} has replication factor {have}, the configuration says {spec.replication_factor} "
            "(KAFKA_REPLICATION_FACTOR): reassign its partitions (docs/operations.md, 'Topics') or fix the setting"
        )
    return None


def ensure_topics(settings: Settings, names: Iterable[str]) -> None:
    """Create the topics with their stated settings, or check and align existing ones.

    Raises TopicMismatch when a replication factor differs (nothing is changed then), and
    NotEnoughBrokers when topics must be created with more replicas than there are live brokers.
    """
    specs = [spec_for(settings, n) for n in names]
    admin = KafkaAdminClient(**settings.kafka_client(), client_id=f"petitions-{settings.service}-admin")
    try:
        states = describe(admin, specs)
        problems = [p for s in specs if s.name in states and (p := check_structure(s, states[s.name]))]
        if problems:
            raise TopicMismatch("; ".join(problems))
        missing = [s for s in specs if s.name not in states]
        if missing:
            brokers = len(admin.describe_cluster()["brokers"])
            if brokers < settings.replication_factor:
                raise NotEnoughBrokers(
                    f"KAFKA_REPLICATION_FACTOR is {settings.replication_factor} but {brokers} broker(s) are live"
                )
            new = [NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=s.configs) for s in missing]
            # another service may create one between our look and our create
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
        for spec in specs:
            state = states.get(spec.name)
            if state is None:
                continue
            if state.partitions != spec.partitions:
                log.warning(
                    "topic has another partition count than KAFKA_TOPIC_PARTITIONS; its own count is used",
                    extra={"topic": spec.name, "partitions": state.partitions, "configured": spec.partitions},
                )
            changed = differences(spec, state)
            if changed:
                wanted = {k: v for k, (_, v) in changed.items()}
                result = admin.alter_configs([ConfigResource("TOPIC", spec.name, wanted)])["topic"][spec.name]
                if result != "OK":
                    raise RuntimeError(f"could not set {wanted} on topic {spec.name}: {result}")
                log.warning(
                    "topic settings differed from the stated ones; set them",
                    extra={"topic": spec.name, "changed": {k: f"{a} -> {b}" for k, (a, b) in changed.items()}},
                )
    finally:
        admin.close()


def report(settings: Settings) -> tuple[list[str], bool]:
    """Lines describing every topic against its stated settings, and whether all match."""
    specs = [spec_for(settings, n) for n in ALL_TOPICS]
    admin = KafkaAdminClient(**settings.kafka_client(), client_id="petitions-topics")
    try:
        states = describe(admin, specs)
    finally:
        admin.close()
    lines, ok = [], True
    for spec in specs:
        state = states.get(spec.name)
        if state is None:
            lines.append(f"{spec.name}: missing (a service creates it at start-up)")
            ok = False
            continue
        rf = "/".join(str(n) for n in sorted(state.replication_factors))
        lines.append(f"{spec.name}: {state.partitions} partitions, replication factor {rf}")
        problem = check_structure(spec, state)
        if problem:
            lines.append(f"  MISMATCH {problem}")
            ok = False
        for key, value in sorted(state.configs.items()):
            stated = spec.configs[key]
            mark = "" if value == stated else f"   MISMATCH, stated {stated}"
            ok = ok and value == stated
            lines.append(f"  {key}={value}{mark}")
    return lines, ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="petitions-topics", description="the topics against their stated settings")
    parser.add_argument(
        "command",
        choices=["check", "apply"],
        help="check: report, exit 1 on a difference; apply: create missing topics and set differing "
        "settings, as a service does at start-up",
    )
    args = parser.parse_args(argv)
    settings = Settings.from_env("topics")
    if args.command == "apply":
        logging.basicConfig(level=logging.INFO)
        try:
            ensure_topics(settings, ALL_TOPICS)
        except TopicMismatch as exc:
            print(f"petitions-topics: {exc}", file=sys.stderr)
            return 1
    lines, ok = report(settings)
    print("\n".join(lines))
    return 0 if ok else 1
