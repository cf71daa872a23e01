"""In-memory stand-ins for the database, the broker's producer and the clock, for FAST tests of use cases.

They implement exactly the part of pymongo the project uses on FerretDB (string `_id`s, point reads,
unique inserts, whole-collection scans with simple filters, replace/delete by `_id`, bulk writes) and
no more; tests/contract_suite runs the same checks against them and against the real FerretDB, so a
use-case test on the fakes means what it would mean on the real thing. Integration and end-to-end
tests never use them.

`MemoryDatabase.commands` counts the commands pymongo would send, by (command, collection), as
`petition_common.mongo.CommandCounter` counts them on a real client (the contract suite compares the
two), so a fast test can hold a use case to its budget of database commands. A cursor counts as one
`find`, whatever getMores it would take.

Documents are stored as BSON, so what a reader gets back is what pymongo would return with the
project's client options (`tz_aware=True`): copies, lists for tuples, datetimes in UTC to the
millisecond.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import bson
from bson.codec_options import CodecOptions
from pymongo import ASCENDING, DeleteMany, DeleteOne, InsertOne, ReplaceOne, UpdateMany, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError
from pymongo.results import BulkWriteResult, DeleteResult, InsertManyResult, InsertOneResult, UpdateResult

from petition_common.envelope import Event

_CODEC = CodecOptions(tz_aware=True, tzinfo=UTC)
_DUPLICATE = 11000


def _encode(doc: Mapping[str, Any]) -> bytes:
    return bson.encode(doc, codec_options=_CODEC)


def _decode(blob: bytes) -> dict[str, Any]:
    return bson.decode(blob, codec_options=_CODEC)


_MISSING = object()


def _get(doc: Mapping[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _comparable(a: Any, b: Any) -> bool:
    numbers = (int, float)
    return (isinstance(a, numbers) and isinstance(b, numbers)) or type(a) is type(b)


def _condition(value: Any, op: str, arg: Any) -> bool:
    if op == "$eq":
        return value is not _MISSING and (value == arg or (isinstance(value, list) and arg in value))
    if op == "$ne":
        return not _condition(value, "$eq", arg)
    if op == "$in":
        return any(_condition(value, "$eq", a) for a in arg)
    if op == "$nin":
        return not _condition(value, "$in", arg)
    if op == "$exists":
        return (value is not _MISSING) == bool(arg)
    if op in ("$lt", "$lte", "$gt", "$gte"):
        if value is _MISSING or not _comparable(value, arg):
            return False
        return {"$lt": value < arg, "$lte": value <= arg, "$gt": value > arg, "$gte": value >= arg}[op]
    raise NotImplementedError(f"the fake database does not implement {op}: add it with a contract test")


def matches(doc: Mapping[str, Any], query: Mapping[str, Any] | None) -> bool:
    """Does `doc` satisfy a filter made of field equalities and comparison operators (implicit AND)?"""
    for path, expected in (query or {}).items():
        if path.startswith("$"):
            raise NotImplementedError(f"the fake database does not implement {path}")
        value = _get(doc, path)
        if isinstance(expected, Mapping) and expected and all(k.startswith("$") for k in expected):
            if not all(_condition(value, op, arg) for op, arg in expected.items()):
                return False
        elif not _condition(value, "$eq", expected):
            return False
    return True


def _project(doc: dict[str, Any], projection: Mapping[str, Any] | None) -> dict[str, Any]:
    if not projection:
        return doc
    keep_id = bool(projection.get("_id", True))
    fields = {k: v for k, v in projection.items() if k != "_id"}
    if fields and all(fields.values()):  # inclusion
        out = {k: doc[k] for k in fields if k in doc}
        if keep_id and "_id" in doc:
            out = {"_id": doc["_id"], **out}
        return out
    out = {k: v for k, v in doc.items() if k not in fields}  # exclusion
    if not keep_id:
        out.pop("_id", None)
    return out


def _sort_key(value: Any) -> tuple[int, Any]:
    # missing fields sort first, as in MongoDB; mixed types are not used by the project
    return (0, None) if value is _MISSING else (1, value)


class MemoryCursor:
    def __init__(self, docs: list[dict[str, Any]], projection: Mapping[str, Any] | None):
        self._docs = docs
        self._projection = projection
        self._skip = 0
        self._limit = 0

    def sort(self, key: str | list[tuple[str, int]], direction: int = ASCENDING) -> MemoryCursor:
        keys = [(key, direction)] if isinstance(key, str) else list(key)
        for path, how in reversed(keys):  # stable sorts, least significant key first
            self._docs.sort(key=lambda d, p=path: _sort_key(_get(d, p)), reverse=how < 0)
        return self

    def skip(self, n: int) -> MemoryCursor:
        self._skip = n
        return self

    def limit(self, n: int) -> MemoryCursor:
        self._limit = n
        return self

    def batch_size(self, _n: int) -> MemoryCursor:
        return self

    def __iter__(self) -> Iterator[dict[str, Any]]:
        docs = self._docs[self._skip :]
        if self._limit:
            docs = docs[: self._limit]
        return (_project(d, self._projection) for d in docs)

    def to_list(self) -> list[dict[str, Any]]:
        return list(self)


def _apply_update(doc: dict[str, Any], update: Mapping[str, Any], inserting: bool) -> dict[str, Any]:
    if not update or not all(op.startswith("$") for op in update):
        raise ValueError("update only works with $ operators")  # as pymongo says
    out = dict(doc)
    for op, fields in update.items():
        if op == "$set" or (op == "$setOnInsert" and inserting):
            out.update(fields)
        elif op == "$setOnInsert":
            continue
        elif op == "$unset":
            for name in fields:
                out.pop(name, None)
        elif op == "$inc":
            for name, by in fields.items():
                out[name] = out.get(name, 0) + by
        else:
            raise NotImplementedError(f"the fake database does not implement update operator {op}")
    return out


class MemoryCollection:
    """One collection: `_id` → BSON bytes, in insertion order (FerretDB's scans return that order too,
    but the project never relies on it)."""

    codec_options = _CODEC

    def __init__(self, database: MemoryDatabase, name: str):
        self.database = database
        self.name = name
        self._docs: dict[Any, bytes] = {}
        self._lock = threading.RLock()

    @property
    def full_name(self) -> str:
        return f"{self.database.name}.{self.name}"

    def _sent(self, command: str) -> None:
        with self.database._lock:
            self.database.commands[(command, self.name)] += 1

    # ---- reading

    def _matching(self, query: Mapping[str, Any] | None) -> list[dict[str, Any]]:
        with self._lock:
            if query and set(query) == {"_id"} and not isinstance(query["_id"], Mapping):
                blob = self._docs.get(query["_id"])  # a point read
                return [] if blob is None else [_decode(blob)]
            blobs = list(self._docs.values())
        return [doc for doc in map(_decode, blobs) if matches(doc, query)]

    def find(
        self, filter: Mapping[str, Any] | None = None, projection: Mapping[str, Any] | None = None, **_: Any
    ) -> MemoryCursor:
        self._sent("find")
        return MemoryCursor(self._matching(filter), projection)

    def find_one(
        self, filter: Mapping[str, Any] | None = None, projection: Mapping[str, Any] | None = None, **_: Any
    ) -> dict[str, Any] | None:
        self._sent("find")
        found = self._matching(filter)
        return _project(found[0], projection) if found else None

    def count_documents(self, filter: Mapping[str, Any], **_: Any) -> int:
        self._sent("aggregate")
        return len(self._matching(filter))

    def estimated_document_count(self, **_: Any) -> int:
        self._sent("count")
        return len(self._docs)

    # ---- writing

    def _insert(self, doc: dict[str, Any]) -> Any:
        if "_id" not in doc:
            doc["_id"] = bson.ObjectId()  # pymongo adds it to the caller's document too
        blob = _encode(doc)
        with self._lock:
            if doc["_id"] in self._docs:
                raise DuplicateKeyError(f"duplicate key: {doc['_id']!r}", _DUPLICATE)
            self._docs[doc["_id"]] = blob
        return doc["_id"]

    def insert_one(self, document: dict[str, Any], **_: Any) -> InsertOneResult:
        self._sent("insert")
        return InsertOneResult(self._insert(document), acknowledged=True)

    def insert_many(self, documents: Iterable[dict[str, Any]], ordered: bool = True, **_: Any) -> InsertManyResult:
        self._sent("insert")
        ids, errors = [], []
        for index, doc in enumerate(documents):
            try:
                ids.append(self._insert(doc))
            except DuplicateKeyError as exc:
                errors.append({"index": index, "code": _DUPLICATE, "errmsg": str(exc), "op": doc})
                if ordered:
                    break
        if errors:
            raise BulkWriteError(_bulk_details(inserted=len(ids), errors=errors))
        return InsertManyResult(ids, acknowledged=True)

    def replace_one(
        self, filter: Mapping[str, Any], replacement: Mapping[str, Any], upsert: bool = False, **_: Any
    ) -> UpdateResult:
        self._sent("update")
        return self._update(filter, lambda doc, inserting: dict(replacement), upsert, many=False, replace=True)

    def update_one(
        self, filter: Mapping[str, Any], update: Mapping[str, Any], upsert: bool = False, **_: Any
    ) -> UpdateResult:
        self._sent("update")
        return self._update(filter, lambda doc, inserting: _apply_update(doc, update, inserting), upsert, many=False)

    def update_many(
        self, filter: Mapping[str, Any], update: Mapping[str, Any], upsert: bool = False, **_: Any
    ) -> UpdateResult:
        self._sent("update")
        return self._update(filter, lambda doc, inserting: _apply_update(doc, update, inserting), upsert, many=True)

    def _update(
        self, filter: Mapping[str, Any], change: Any, upsert: bool, many: bool, replace: bool = False
    ) -> UpdateResult:
        with self._lock:
            found = self._matching(filter)[: None if many else 1]
            for doc in found:
                new = change(doc, False)
                new["_id"] = doc["_id"]
                self._docs[doc["_id"]] = _encode(new)
            if found or not upsert:
                return UpdateResult({"n": len(found), "nModified": len(found)}, acknowledged=True)
            # an upsert inserts the filter's equalities with the update applied; a replacement only
            # takes the filter's `_id`
            seed = {k: v for k, v in filter.items() if not k.startswith("$") and not isinstance(v, Mapping)}
            new = change(seed, True) if not replace else {"_id": seed.get("_id"), **change(seed, True)}
            if new.get("_id") is None:
                new["_id"] = bson.ObjectId()
            self._insert(new)
            return UpdateResult({"n": 1, "nModified": 0, "upserted": new["_id"]}, acknowledged=True)

    def delete_one(self, filter: Mapping[str, Any], **_: Any) -> DeleteResult:
        self._sent("delete")
        return self._delete(filter, many=False)

    def delete_many(self, filter: Mapping[str, Any], **_: Any) -> DeleteResult:
        self._sent("delete")
        return self._delete(filter, many=True)

    def _delete(self, filter: Mapping[str, Any], many: bool) -> DeleteResult:
        with self._lock:
            found = self._matching(filter)[: None if many else 1]
            for doc in found:
                del self._docs[doc["_id"]]
        return DeleteResult({"n": len(found)}, acknowledged=True)

    def bulk_write(self, requests: Sequence[Any], ordered: bool = True, **_: Any) -> BulkWriteResult:
        for command in _bulk_commands(requests, ordered):
            self._sent(command)
        counts = {"nInserted": 0, "nMatched": 0, "nModified": 0, "nRemoved": 0, "nUpserted": 0}
        errors: list[dict[str, Any]] = []
        for index, op in enumerate(requests):
            try:
                self._bulk_one(op, counts)
            except DuplicateKeyError as exc:
                errors.append({"index": index, "code": _DUPLICATE, "errmsg": str(exc)})
                if ordered:
                    break
        details = {**counts, "writeErrors": errors, "writeConcernErrors": [], "upserted": []}
        if errors:
            raise BulkWriteError(details)
        return BulkWriteResult(details, acknowledged=True)

    def _bulk_one(self, op: Any, counts: dict[str, int]) -> None:
        # pymongo's request classes keep their arguments in these attributes (stable since 3.0)
        if isinstance(op, InsertOne):
            self._insert(op._doc)
            counts["nInserted"] += 1
            return
        if isinstance(op, DeleteOne | DeleteMany):
            counts["nRemoved"] += self._delete(op._filter, many=isinstance(op, DeleteMany)).deleted_count
            return
        if isinstance(op, ReplaceOne):
            result = self._update(
                op._filter, lambda doc, inserting, r=op._doc: dict(r), bool(op._upsert), many=False, replace=True
            )
        elif isinstance(op, UpdateOne | UpdateMany):
            result = self._update(
                op._filter,
                lambda doc, inserting, u=op._doc: _apply_update(doc, u, inserting),
                bool(op._upsert),
                many=isinstance(op, UpdateMany),
            )
        else:
            raise NotImplementedError(f"the fake database does not implement {type(op).__name__}")
        counts["nMatched"] += result.matched_count
        counts["nModified"] += result.modified_count or 0
        counts["nUpserted"] += 1 if result.upserted_id is not None else 0

    # ---- the rest

    def create_index(self, *_: Any, **__: Any) -> str:
        return "ignored"  # FerretDB v1 ignores most indexes too; only `_id` is unique here

    def drop(self) -> None:
        self.database.drop_collection(self.name)


def _bulk_commands(requests: Sequence[Any], ordered: bool) -> list[str]:
    """The commands pymongo sends for a bulk write: one per run of operations of one kind when
    ordered, one per kind when not (at most 100,000 operations each, never reached here)."""
    kinds = [
        "insert" if isinstance(op, InsertOne) else "delete" if isinstance(op, DeleteOne | DeleteMany) else "update"
        for op in requests
    ]
    if not ordered:
        return list(dict.fromkeys(kinds))
    return [kind for i, kind in enumerate(kinds) if i == 0 or kinds[i - 1] != kind]


def _bulk_details(inserted: int, errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "writeErrors": errors,
        "writeConcernErrors": [],
        "nInserted": inserted,
        "nUpserted": 0,
        "nMatched": 0,
        "nModified": 0,
        "nRemoved": 0,
        "upserted": [],
    }


class MemoryDatabase:
    """`db["name"]` or `db.name` → the collection, created on first use, as in pymongo."""

    codec_options = _CODEC

    def __init__(self, name: str = "memory"):
        self.name = name
        self._collections: dict[str, MemoryCollection] = {}
        self._lock = threading.Lock()
        # (command, collection) -> how many pymongo would have sent (module docstring)
        self.commands: Counter[tuple[str, str]] = Counter()

    def __getitem__(self, name: str) -> MemoryCollection:
        with self._lock:
            if name not in self._collections:
                self._collections[name] = MemoryCollection(self, name)
            return self._collections[name]

    def __getattr__(self, name: str) -> MemoryCollection:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def get_collection(self, name: str, **_: Any) -> MemoryCollection:
        return self[name]

    def list_collection_names(self, **_: Any) -> list[str]:
        return [name for name, c in self._collections.items() if c.estimated_document_count()]

    def drop_collection(self, name: str, **_: Any) -> None:
        with self._lock:
            self._collections.pop(name, None)


class RecordingPublisher:
    """The producer's `publish`, keeping what was published in order; `fail` makes it raise as a
    broker that cannot be reached does (the outbox then keeps the events for the relay)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.fail: Exception | None = None
        self._lock = threading.Lock()

    def publish(self, events: Sequence[Event], force: bool = False) -> None:
        if self.fail is not None:
            raise self.fail
        with self._lock:
            self.events.extend(events)

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def of(self, subject: str) -> list[Event]:
        return [e for e in self.events if e.subject == subject]

    def close(self) -> None:
        pass


class ManualClock:
    """A clock that moves only when told: `clock()` is now, `clock.advance(timedelta)` moves it."""

    def __init__(self, start: datetime):
        if start.tzinfo is None:
            raise ValueError("naive datetime: every time in this platform is timezone-aware")
        self.now = start.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> datetime:
        self.now += by
        return self.now


class GroupMember:
    """What `petition_common.ownership.Ownership` reads of a KafkaConsumer: the topics' partition counts
    and when the group coordinator last answered a heartbeat (`answered_ago` moves it)."""

    def __init__(self, topics: Iterable[str], partitions: int = 4):
        self.counts = dict.fromkeys(topics, partitions)
        self._coordinator = SimpleNamespace(heartbeat=SimpleNamespace(last_receive=time.monotonic()))

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(range(self.counts[topic])) if topic in self.counts else None

    def answered_ago(self, seconds: float) -> None:
        self._coordinator.heartbeat.last_receive = time.monotonic() - seconds
