"""Topic settings as code, read back from the real broker through the admin API."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, NewTopic
from kafka.record import MemoryRecords

from petition_common import topics
from petition_common.envelope import Event
from petition_common.kafka_io import EventPublisher
from petition_common.topic_config import (
    ALL_TOPICS,
    NotEnoughBrokers,
    TopicMismatch,
    ensure_topics,
    report,
)
from tests.conftest import make_settings
from tests.support import kafka_client

STATED = {
    "cleanup.policy",
    "retention.ms",
    "retention.bytes",
    "min.insync.replicas",
    "compression.type",
    "unclean.leader.election.enable",
}


@pytest.fixture
def admin():
    client = KafkaAdminClient(**kafka_client(), client_id="test-topic-config")
    yield client
    client.close()


def read_back(admin: KafkaAdminClient, names: list[str]) -> dict[str, dict]:
    configs = admin.describe_configs([ConfigResource("TOPIC", n, sorted(STATED)) for n in names], config_filter="all")
    described = {t["name"]: t for t in admin.describe_topics(names)}
    return {
        n: {
            "partitions": len(described[n]["partitions"]),
            "replicas": {len(p["replica_nodes"]) for p in described[n]["partitions"]},
            **{k: v["value"] for k, v in configs["topic"][n].items()},
        }
        for n in names
    }


def test_a_fresh_deployment_creates_every_topic_with_its_stated_settings(unique_prefix, admin):
    settings = make_settings("topics", unique_prefix)
    ensure_topics(settings, ALL_TOPICS)
    got = read_back(admin, [settings.topic(t) for t in ALL_TOPICS])
    common = {
        "partitions": 4,
        "replicas": {1},
        "cleanup.policy": "delete",
        "retention.bytes": "-1",
        "min.insync.replicas": "1",
        "compression.type": "producer",
        "unclean.leader.election.enable": "false",
    }
    for name in (topics.INTAKE, topics.ROUTING, topics.SLA, topics.ALERTS):
        assert got[settings.topic(name)] == {**common, "retention.ms": "-1"}, name  # kept for good
    assert got[settings.topic(topics.DEADLETTER)] == {**common, "retention.ms": str(30 * 86_400_000)}
    lines, ok = report(settings)
    assert ok, "\n".join(lines)
    ensure_topics(settings, ALL_TOPICS)  # a second start changes nothing
    assert read_back(admin, [settings.topic(t) for t in ALL_TOPICS]) == got


def test_an_existing_topic_with_broker_defaults_is_brought_to_the_stated_settings(unique_prefix, admin, caplog):
    settings = make_settings("topics", unique_prefix)
    name = settings.topic(topics.INTAKE)
    admin.create_topics([NewTopic(name, 4, 1, topic_configs={"retention.ms": str(7 * 86_400_000)})])  # as before
    with caplog.at_level(logging.WARNING, logger="petition_common.topic_config"):
        ensure_topics(settings, [topics.INTAKE])
    assert read_back(admin, [name])[name]["retention.ms"] == "-1"
    assert any("retention.ms" in str(getattr(r, "changed", "")) for r in caplog.records)


def test_a_replication_factor_that_differs_is_an_error_and_changes_nothing(unique_prefix, admin):
    one_broker = make_settings("topics", unique_prefix)
    ensure_topics(one_broker, [topics.INTAKE])
    name = one_broker.topic(topics.INTAKE)
    before = read_back(admin, [name])
    cluster = make_settings("topics", unique_prefix, replication_factor=3, min_insync_replicas=2)
    with pytest.raises(TopicMismatch, match="replication factor 1, the configuration says 3"):
        ensure_topics(cluster, [topics.INTAKE])
    assert read_back(admin, [name]) == before  # min.insync.replicas was not raised past the replicas
    with pytest.raises(NotEnoughBrokers, match="3 but 1 broker"):
        ensure_topics(cluster, [topics.ROUTING])  # a new topic needs 3 live brokers
    with pytest.raises(ValueError, match="MIN_INSYNC"):
        ensure_topics(make_settings("topics", unique_prefix, min_insync_replicas=2), [topics.SLA])


def test_the_platform_producer_writes_zstd_batches(unique_prefix, admin):
    settings = make_settings("topics", unique_prefix)
    ensure_topics(settings, [topics.INTAKE])
    event = Event("petition.withdrawn", "petitions/intake", "JZ20240701000001", {"petition_id": "JZ20240701000001"})
    publisher = EventPublisher(settings)
    try:
        publisher.publish([event])
    finally:
        publisher.close()
    consumer = KafkaConsumer(**kafka_client(), auto_offset_reset="earliest", consumer_timeout_ms=10_000)
    try:  # consumers read it back as before (kafka-python decompresses with zstandard)
        tps = [TopicPartition(settings.topic(topics.INTAKE), p) for p in range(4)]
        consumer.assign(tps)
        values = [r.value for r in consumer]
    finally:
        consumer.close()
    assert values == [event.to_bytes()]
    # and the batch on the broker's disk is zstd (when the broker runs on this machine, as locally)
    dirs = admin.describe_log_dirs()
    log_dir = Path(dirs[0]["log_dirs"][0]["log_dir"])
    segments = list(log_dir.glob(f"{settings.topic(topics.INTAKE)}-*/*.log"))
    if not segments:
        pytest.skip("the broker's log directory is not on this machine")
    batches = []
    for segment in segments:
        records = MemoryRecords(segment.read_bytes())
        while (batch := records.next_batch()) is not None:
            batches.append(batch)
    assert [b.compression_type for b in batches] == [4]  # 4 = zstd in Kafka's batch attributes
