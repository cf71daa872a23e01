"""Removing one run's topics and databases (a test session's, a benchmark stage's).

Tests and the benchmark isolate each run under a prefix: topics `<prefix>-…` and databases
`database_prefix(prefix)…` (the prefix with `_` for `-`, then `_`). This drops both, so the shared
local stack does not fill up with old runs.
"""

from __future__ import annotations

from kafka import KafkaAdminClient
from pymongo import MongoClient

from petition_devtools.kafka_access import admin_client_config, revoke


def database_prefix(prefix: str) -> str:
    """MONGO_DB_PREFIX of a run under `prefix` (database names here take no `-`)."""
    return f"{prefix.replace('-', '_')}_"


def drop_namespace(mongo_uri: str, kafka_bootstrap: str, prefix: str) -> None:
    client: MongoClient = MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
    try:
        for name in client.list_database_names():
            # a demo run's prefix has a `-` its databases do not: the web pages' benchmark left 9 GB
            if name.startswith(database_prefix(prefix)):
                client.drop_database(name)
    finally:
        client.close()
    admin = KafkaAdminClient(**admin_client_config(kafka_bootstrap), client_id=f"cleanup-{prefix}")
    try:
        mine = [t for t in admin.list_topics() if t.startswith(f"{prefix}-")]
        if mine:
            admin.delete_topics(mine)
        revoke(admin, f"{prefix}-")
    finally:
        admin.close()
