"""The stats rebuild never works from half the history (services/stats/rebuild.py, "History").

Events of a generated county are published to the petition topics in two parts; a rebuild after
the first part leaves checkpoints (the snapshot). The oldest events are then deleted with
DeleteRecords, which moves each partition's log start exactly as retention deleting old segments
does. A rebuild from the topics must refuse, naming the partitions; a rebuild from the checkpoints
must give exactly the figures a rebuild over the whole history gave before the deletion (that one
ran into a database of its own, over the same topics).
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from pymongo import MongoClient

from countysim import generate_county, generate_petitions
from petition_common.kafka_io import ensure_topics
from petition_common.topic_config import ALL_TOPICS
from petition_kernel.times import BEIJING
from services.stats.bootstrap import load_config
from services.stats.checkpoints import CheckpointStore, namespace
from services.stats.partition import PartitionState
from tests.conftest import make_settings
from tests.e2e.stats_world import INTAKE, ROUTING, SLA, World
from tests.support import KAFKA, MONGO, REPO, kafka_client

PETITION_TOPICS = (INTAKE, ROUTING, SLA)


@pytest.fixture(scope="module")
def world() -> World:
    county = generate_county(seed=20240101)
    start = datetime(2024, 7, 1, tzinfo=BEIJING).astimezone(UTC)
    petitions = generate_petitions(county, 1500, seed=11, start=start, days=5)
    return World(county, [(p, None) for p in petitions], seed=12).build()


def publish(prefix: str, messages: list) -> None:
    producer = KafkaProducer(**kafka_client(), linger_ms=20, compression_type="zstd")
    for m in messages:
        producer.send(f"{prefix}{m.topic}", key=m.key.encode(), value=m.value, headers=m.headers)
    producer.flush(60)
    producer.close()


def rebuild(prefix: str, db_prefix: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KAFKA_TOPIC_PREFIX": prefix, "MONGO_DB_PREFIX": db_prefix,
           "KAFKA_BOOTSTRAP_SERVERS": KAFKA, "MONGO_URI": MONGO}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "services.stats.rebuild", "--no-alerts", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip


def cells(db_prefix: str, generation: int) -> dict[int, dict]:
    """Every partition's counter cells as the given generation's checkpoints hold them."""
    settings = make_settings("stats", "x").with_overrides(db_prefix=db_prefix)
    rules = load_config(settings).rules
    client = MongoClient(MONGO, tz_aware=True)
    try:
        db = client[f"{db_prefix}stats"]
        out = {}
        for p in range(4):
            store = CheckpointStore(db, namespace(generation, f"p{p}"))
            head = store.latest()
            assert head is not None
            state = PartitionState(p, rules, manifest=head.manifest, load_block=store.read_block)
            out[p] = state.all_cells()
        return out
    finally:
        client.close()


def delete_before(prefix: str, fraction: float, of: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    """DeleteRecords up to `fraction` of the offsets in `of`: the log then starts there."""
    admin = KafkaAdminClient(**kafka_client(), client_id="test-delete-records")
    try:
        cut = {tp: int(end * fraction) for tp, end in of.items() if int(end * fraction) > 0}
        admin.delete_records(cut)
        return cut
    finally:
        admin.close()


def end_offsets(prefix: str) -> dict[TopicPartition, int]:
    consumer = KafkaConsumer(**kafka_client())
    try:
        return consumer.end_offsets([TopicPartition(f"{prefix}{t}", p) for t in PETITION_TOPICS for p in range(4)])
    finally:
        consumer.close()


def test_a_rebuild_refuses_deleted_history_and_rebuilds_exactly_from_a_checkpoint(unique_prefix, world):
    prefix, db_prefix = f"{unique_prefix}-", f"{unique_prefix.replace('-', '_')}_"
    ensure_topics(make_settings("stats", unique_prefix), ALL_TOPICS)
    half = len(world.messages) // 2
    publish(prefix, world.messages[:half])

    first = rebuild(prefix, db_prefix)  # generation 1: the checkpoints that will be the snapshot
    assert first.returncode == 0, first.stderr[-3000:]
    snapshot = end_offsets(prefix)
    publish(prefix, world.messages[half:])

    # the truth: a rebuild over the whole history, into a database of its own
    whole = rebuild(prefix, f"{db_prefix}whole_")
    assert whole.returncode == 0, whole.stderr[-3000:]
    truth = orjson.loads(whole.stdout)
    assert truth["totals"]["accepted"] > 1000

    # the oldest events go: three quarters of what the snapshot covers, on every partition
    cut = delete_before(prefix, 0.75, snapshot)
    assert len(cut) == 12

    refused = rebuild(prefix, db_prefix)
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "rebuild refused: the topics no longer hold the history this needs" in refused.stderr
    tp = next(iter(sorted(cut)))
    assert f"{tp.topic} partition {tp.partition}: needed from offset 0, the log starts at {cut[tp]:,}" in refused.stderr
    assert "--from-checkpoint" in refused.stderr
    assert refused.stdout == ""  # nothing written, no generation switched

    rebuilt = rebuild(prefix, db_prefix, "--from-checkpoint")
    assert rebuilt.returncode == 0, rebuilt.stderr[-3000:]
    result = orjson.loads(rebuilt.stdout)
    assert result["generation"] == 2 and result["from_checkpoint_of"] == 1
    assert result["totals"] == truth["totals"]
    assert cells(db_prefix, 2) == cells(f"{db_prefix}whole_", 1)  # every cell, not only the sums


def test_a_checkpoint_that_does_not_reach_the_log_start_is_refused_too(unique_prefix, world):
    prefix, db_prefix = f"{unique_prefix}-", f"{unique_prefix.replace('-', '_')}_"
    ensure_topics(make_settings("stats", unique_prefix), ALL_TOPICS)
    part = len(world.messages) // 3
    publish(prefix, world.messages[:part])
    assert rebuild(prefix, db_prefix).returncode == 0  # checkpoints at a third of the events
    publish(prefix, world.messages[part:])
    delete_before(prefix, 0.9, end_offsets(prefix))  # past what the checkpoints cover

    refused = rebuild(prefix, db_prefix, "--from-checkpoint")
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert "The checkpoints of generation 1 do not reach back" in refused.stderr
