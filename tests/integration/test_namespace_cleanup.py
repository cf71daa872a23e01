"""A run's databases and topics go when its namespace is dropped, whatever its prefix looks like: a
demo run's prefix (`webbench-1a2b3c`) has a `-` that its databases (`webbench_1a2b3c_…`) do not, and
the web pages' benchmark left 9 GB of them on the local stack."""

from __future__ import annotations

import uuid

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from pymongo import MongoClient

from petition_devtools.kafka_access import admin_client_config
from petition_devtools.namespace import database_prefix, drop_namespace
from tests.support import KAFKA, MONGO, eventually


def test_a_demo_runs_databases_and_topics_are_dropped() -> None:
    run = uuid.uuid4().hex[:6]
    prefix, neighbour = f"nsdrop-{run}", f"nsdrop-{run}x"  # a run whose prefix starts like this one's
    client: MongoClient = MongoClient(MONGO, serverSelectionTimeoutMS=10_000)
    admin = KafkaAdminClient(**admin_client_config(KAFKA), client_id=f"test-{run}")
    try:
        for p in (prefix, neighbour):
            client[f"{database_prefix(p)}intake"]["petitions"].insert_one({"_id": "p1"})
        admin.create_topics([NewTopic(f"{prefix}-petitions.intake.v1", 1, 1)])
        eventually(lambda: _listed(admin, f"{prefix}-petitions.intake.v1"))
        drop_namespace(MONGO, KAFKA, prefix)
        names = client.list_database_names()
        assert f"{database_prefix(prefix)}intake" not in names
        assert f"{database_prefix(neighbour)}intake" in names
        eventually(lambda: _gone(admin, f"{prefix}-petitions.intake.v1"))
    finally:
        drop_namespace(MONGO, KAFKA, neighbour)
        admin.close()
        client.close()


def _gone(admin: KafkaAdminClient, topic: str) -> None:
    assert topic not in admin.list_topics()


def _listed(admin: KafkaAdminClient, topic: str) -> None:
    assert topic in admin.list_topics()
