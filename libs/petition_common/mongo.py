"""MongoDB access, limited to what FerretDB v1 (SQLite backend) does correctly and fast.

Measured on FerretDB v1.24 (docs/ferretdb.md has the numbers and the probe):
- only a filter that is exactly `{"_id": <string>}` uses an index (with our build's fix); any other
  filter, including `{"_id": x, "state": y}`, reads the whole collection;
- a read-modify-write update (`$inc`, `$push`, a conditional `update_one`) is NOT atomic across
  connections: concurrent `$inc`s lose increments and several conditional updates all "win";
- inserting a document whose `_id` exists fails atomically, and `delete_one({"_id": x})` deletes once.
- an `update` command holds one database connection per statement until the whole command is done,
  and each database has 100: a bulk update of 100 statements (or a few large ones at once) waits
  for a connection forever, and so does everything else on that database. `bulk_update` chunks.
- an unordered `update` command stops at its first failing statement (say a duplicate `_id` from
  two racing upserts) and answers without `n`/`nModified`, which pymongo's bulk_write cannot merge
  (KeyError). `bulk_update` raises BulkWriteError instead, as it would on MongoDB.
So everything here is keyed by string `_id`, concurrency control uses unique inserts only, and a
record that is updated in place has exactly one writer (see store.py and docs/reliability.md).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pymongo import DeleteOne, MongoClient, ReplaceOne, monitoring
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, ConnectionFailure, DuplicateKeyError, PyMongoError

from petition_common.config import Settings

# errors that say "the database is unreachable or slow", not "this request is wrong"
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (ConnectionFailure,)

__all__ = ["TRANSIENT_ERRORS", "DuplicateKeyError", "PyMongoError", "bulk_update", "connect", "get_by_id", "ping"]

# statements per bulk write: FerretDB v1.24 keeps each update statement's read cursor, and with it
# one of the database's 100 SQLite connections, open until the command returns (the `defer` inside
# the statement loop of internal/handler/msg_update.go)
BULK_CHUNK = 16


class CommandCounter(monitoring.CommandListener):
    """Calls `count(command, collection)` for every command the client sends: which collections a
    service reads and writes how often, the profile the database-command budget is worked from
    (FerretDB counts only by command, for everyone together). The collection is "" for commands on
    none (ping, hello)."""

    def __init__(self, count: Callable[[str, str], None]):
        self.count = count

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        target = event.command.get("collection") if name == "getMore" else event.command.get(name)
        self.count(name, target if isinstance(target, str) else "")

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def connect(settings: Settings, listeners: Sequence[monitoring.CommandListener] = ()) -> MongoClient:
    """One client per process, created after gunicorn forks (pymongo is not fork-safe)."""
    timeout_ms = int(settings.dependency_timeout_s * 1000)
    return MongoClient(
        settings.mongo_uri,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(10_000, timeout_ms),
        appname=f"petitions-{settings.service}",
        tz_aware=True,
        event_listeners=list(listeners),
    )


def database(client: MongoClient, settings: Settings) -> Database:
    return client[settings.database]


def ping(client: MongoClient) -> None:
    client.admin.command("ping")


def get_by_id(collection: Collection, doc_id: str) -> dict[str, Any] | None:
    return collection.find_one({"_id": doc_id})


def insert_new(collection: Collection, docs: list[dict[str, Any]]) -> list[int]:
    """Insert `docs` in one unordered insert; the indexes of those whose `_id` already existed (the
    others are stored). Any other error is raised."""
    if not docs:
        return []
    try:
        collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in errors):
            raise
        return sorted(e["index"] for e in errors)
    return []


def bulk_update(collection: Collection, ops: Sequence[ReplaceOne | DeleteOne]) -> None:
    """Unordered bulk write in chunks of BULK_CHUNK statements (module docstring: more at once can
    deadlock FerretDB). Raises BulkWriteError like `bulk_write` (e.g. two upserts raced); statements
    may then be left unapplied on FerretDB even in other chunks, so callers redo them all."""
    for start in range(0, len(ops), BULK_CHUNK):
        try:
            collection.bulk_write(list(ops[start : start + BULK_CHUNK]), ordered=False)
        except KeyError as exc:  # FerretDB's answer to a failed statement lacks counts (module docstring)
            raise BulkWriteError({"writeErrors": [], "writeConcernErrors": [], "nInserted": 0, "nUpserted": 0,
                                  "nMatched": 0, "nModified": 0, "nRemoved": 0, "upserted": []}) from exc  # fmt: skip
