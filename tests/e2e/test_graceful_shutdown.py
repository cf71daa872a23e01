"""SIGTERM: a service finishes what it is doing, commits its consumer offsets, and exits cleanly."""

from __future__ import annotations

import requests
from kafka import KafkaConsumer, TopicPartition

from tests.e2e.test_submission_event import BODY
from tests.support import eventually, kafka_client, read_topic


def test_sigterm_commits_what_was_done_and_exits_zero(fleet):
    intake = fleet.start("intake")
    fleet.start("routing")
    fleet.wait_ready()
    prefix = fleet.env["KAFKA_TOPIC_PREFIX"]
    pids = [requests.post(f"{intake.url}/v1/petitions", json=BODY, timeout=10).json()["petition_id"] for _ in range(20)]

    def all_routed() -> None:
        routed = read_topic(f"{prefix}petitions.routing.v1", lambda ms: len(ms) >= len(pids), timeout_s=5)
        assert {m["key"] for m in routed} >= set(pids)

    eventually(all_routed, timeout_s=60)

    assert fleet.stop("routing") == 0  # SIGTERM, then a clean exit

    # every message routing consumed is committed for its group: a restart would not re-read them
    topic = f"{prefix}petitions.intake.v1"
    # reading the group's committed offsets does not join the group
    consumer = KafkaConsumer(**kafka_client(), group_id=f"{prefix}routing", enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
    end = consumer.end_offsets(partitions)
    committed = {tp: consumer.committed(tp) for tp in partitions}
    consumer.close(autocommit=False)
    assert {tp: committed[tp] for tp, offset in end.items() if offset > 0} == {
        tp: offset for tp, offset in end.items() if offset > 0
    }
