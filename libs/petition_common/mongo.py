"""MongoDB access, limited to what FerretDB v1 (SQLite backend) does correctly and fast.

Measured on FerretDB v1.24 (docs/ferretdb.md has the numbers and the probe):
- only a filter that is exactly `{"_id": <string>}` uses an index (with our build's fix); any other
  filter, including `{"_id": x, "state": y}`, reads the whole collection;
- a read-modify-write update (`$inc`, `$push`, a conditional `update_one`) is NOT atomic across
  connections: concurrent `$inc`s lose increments and several conditional updates all "win";
- inserting a document whose `_id` exists fails atomically, and `delete_one({"_id": x})` deletes once.
So everything here is keyed by string `_id`, concurrency control uses unique inserts only, and a
record that is updated in place has exactly one writer (see store.py and docs/reliability.md).
"""

from __future__ import annotations

from typing import Any

from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import ConnectionFailure, DuplicateKeyError, PyMongoError

from petition_common.config import Settings

# errors that say "the database is unreachable or slow", not "this request is wrong"
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (ConnectionFailure,)

__all__ = ["TRANSIENT_ERRORS", "DuplicateKeyError", "PyMongoError", "connect", "get_by_id", "ping"]


def connect(settings: Settings) -> MongoClient:
    """One client per process, created after gunicorn forks (pymongo is not fork-safe)."""
    timeout_ms = int(settings.dependency_timeout_s * 1000)
    return MongoClient(
        settings.mongo_uri,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(10_000, timeout_ms),
        appname=f"petitions-{settings.service}",
        tz_aware=True,
    )


def database(client: MongoClient, settings: Settings) -> Database:
    return client[settings.database]


def ping(client: MongoClient) -> None:
    client.admin.command("ping")


def get_by_id(collection: Collection, doc_id: str) -> dict[str, Any] | None:
    return collection.find_one({"_id": doc_id})
