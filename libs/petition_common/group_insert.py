"""Concurrent inserts into one collection sent as one unordered `insert_many`: a database's group commit.

Each command costs FerretDB far more than the documents in it (issue 23: ~574 µs of its CPU for an
`insert_one`, ~131 µs a document in an `insert_many` of 64). So while one insert is on its way, the
requests that arrive meanwhile queue up, and when it returns one of them sends everything queued as one
command. Nobody waits for a timer: a request alone is sent at once; under load a batch forms in the
time one round trip takes, as in a database's group commit.

Each document's outcome goes back to its own request: a duplicate `_id` fails only that document (the
caller learns which, as from its own unordered insert); another write error fails only its request;
an error of the whole command (the database unreachable) fails every request of that batch, each
seeing it as it would its own insert's, after which some of the batch may or may not be stored, as
with any insert whose answer was lost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError
from pymongo.results import InsertOneResult

DUPLICATE_KEY = 11000


@dataclass
class Pending:
    """One request to a `GroupCommit`; subclasses add what it carries and what it gets back."""

    ready: threading.Event = field(default_factory=threading.Event, init=False)
    leads: bool = field(default=False, init=False)  # this request's thread sends the next batch
    served: bool = field(default=False, init=False)
    error: BaseException | None = field(default=None, init=False)


P = TypeVar("P", bound=Pending)


class GroupCommit(Generic[P]):
    """The group commit itself: requests that arrive while a batch is on its way queue up, and when
    it returns the first of them sends everything queued (up to `limit` by `weight`) with `send`.

    `send(batch)` records each request's outcome on it (or its `error`); if it raises, every request of
    the batch without an error gets that one. Safe to share between threads."""

    def __init__(self, send: Callable[[list[P]], None], limit: int, weight: Callable[[P], int] = lambda _: 1):
        self._send = send
        self.limit = limit
        self._weight = weight
        self._lock = threading.Lock()
        self._queue: list[P] = []
        self._busy = False

    def submit(self, request: P) -> None:
        """Return once `request` was sent, by this thread or another; raise its error if it has one."""
        with self._lock:
            self._queue.append(request)
            if not self._busy:
                self._busy = request.leads = True
        if not request.leads:
            request.ready.wait()  # sent with another thread's batch, or promoted to send the next one
        if request.leads:
            try:
                while not request.served:
                    self._send_batch(self._take())
            finally:
                self._hand_over()
        if request.error is not None:
            raise request.error

    def pending(self) -> int:
        return len(self._queue)

    def _take(self) -> list[P]:
        with self._lock:
            batch: list[P] = []
            size = 0
            while self._queue and (not batch or size + self._weight(self._queue[0]) <= self.limit):
                request = self._queue.pop(0)
                batch.append(request)
                size += self._weight(request)
            return batch

    def _send_batch(self, batch: list[P]) -> None:
        try:
            self._send(batch)
        except BaseException as exc:  # the whole batch failed: each request sees it as its own failure
            for request in batch:
                if request.error is None:
                    request.error = exc
        finally:
            for request in batch:
                request.served = True
                if not request.leads:
                    request.ready.set()

    def _hand_over(self) -> None:
        with self._lock:
            if self._queue:
                following = self._queue[0]
                following.leads = True
                following.ready.set()
            else:
                self._busy = False


@dataclass
class _Request(Pending):
    docs: list[dict[str, Any]] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list, init=False)


class GroupInsert:
    """The group commit of one collection's inserts; safe to share between threads."""

    def __init__(self, collection: Collection, max_docs: int = 500):
        self.collection = collection
        self._group: GroupCommit[_Request] = GroupCommit(self._send, max_docs, lambda r: len(r.docs))
        self.commands = 0  # insert commands sent, for tests
        self.documents = 0

    def insert_many(self, docs: Sequence[dict[str, Any]]) -> list[int]:
        """Insert `docs` (unordered); the indexes of those whose `_id` existed. Raises what the insert
        raised for this request's documents otherwise (a BulkWriteError naming only them)."""
        if not docs:
            return []
        request = _Request(docs=list(docs))
        self._group.submit(request)
        return request.duplicates

    def insert_one(self, doc: dict[str, Any]) -> None:
        """Insert one document; DuplicateKeyError if its `_id` exists, as pymongo's insert_one."""
        if self.insert_many([doc]):
            raise DuplicateKeyError(f"E11000 duplicate key: {doc.get('_id')!r}", DUPLICATE_KEY)

    def _send(self, batch: list[_Request]) -> None:
        docs = [doc for request in batch for doc in request.docs]
        owners = [(request, i) for request in batch for i in range(len(request.docs))]
        self.commands += 1
        self.documents += len(docs)
        try:
            self.collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            others: dict[int, list[dict[str, Any]]] = {}
            for error in exc.details.get("writeErrors", []):
                request, index = owners[error["index"]]
                if error.get("code") == DUPLICATE_KEY:
                    request.duplicates.append(index)
                else:
                    others.setdefault(id(request), []).append({**error, "index": index})
            for request in batch:
                if id(request) in others:
                    request.error = BulkWriteError({"writeErrors": others[id(request)], "nInserted": 0})


class GroupInserts:
    """One `GroupInsert` per collection, for every writer of a service's database to share."""

    def __init__(self, max_docs: int = 500):
        self.max_docs = max_docs
        self._groups: dict[tuple[int, str], GroupInsert] = {}
        self._lock = threading.Lock()

    def of(self, collection: Collection) -> GroupInsert:
        key = (id(collection.database), collection.name)
        with self._lock:
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = GroupInsert(collection, self.max_docs)
            return group


class GroupedCollection:
    """A collection whose `insert_one` goes through the group commit; everything else is the collection's."""

    def __init__(self, collection: Collection, group: GroupInsert):
        self._collection = collection
        self._group = group

    def insert_one(self, doc: dict[str, Any]) -> InsertOneResult:
        self._group.insert_one(doc)  # insert_many gives a document without one its `_id`, in place
        return InsertOneResult(doc["_id"], acknowledged=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._collection, name)


class GroupedDatabase:
    """A database whose collections' `insert_one` calls go through `inserts` (the request paths of a
    service whose concurrent requests each insert a document or two into the same collections)."""

    def __init__(self, db: Database, inserts: GroupInserts):
        self._db = db
        self._inserts = inserts

    def __getitem__(self, name: str) -> GroupedCollection:
        collection = self._db[name]
        return GroupedCollection(collection, self._inserts.of(collection))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)
