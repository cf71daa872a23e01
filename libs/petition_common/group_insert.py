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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError

DUPLICATE_KEY = 11000


@dataclass
class _Request:
    docs: list[dict[str, Any]]
    ready: threading.Event = field(default_factory=threading.Event)
    leads: bool = False  # this request's thread sends the next batch
    served: bool = False
    duplicates: list[int] = field(default_factory=list)
    error: BaseException | None = None


class GroupInsert:
    """The group commit of one collection; safe to share between threads."""

    def __init__(self, collection: Collection, max_docs: int = 500):
        self.collection = collection
        self.max_docs = max_docs
        self._lock = threading.Lock()
        self._queue: list[_Request] = []
        self._busy = False
        self.commands = 0  # insert commands sent, for tests and metrics
        self.documents = 0

    def insert_many(self, docs: Sequence[dict[str, Any]]) -> list[int]:
        """Insert `docs` (unordered); the indexes of those whose `_id` existed. Raises what the insert
        raised for this request's documents otherwise (a BulkWriteError naming only them)."""
        if not docs:
            return []
        request = _Request(list(docs))
        with self._lock:
            self._queue.append(request)
            if not self._busy:
                self._busy = request.leads = True
        if not request.leads:
            request.ready.wait()  # served by another thread's batch, or promoted to send the next one
        if request.leads:
            try:
                while not request.served:
                    self._send(self._take())
            finally:
                self._hand_over()
        if request.error is not None:
            raise request.error
        return request.duplicates

    def insert_one(self, doc: dict[str, Any]) -> None:
        """Insert one document; DuplicateKeyError if its `_id` exists, as pymongo's insert_one."""
        if self.insert_many([doc]):
            raise DuplicateKeyError(f"E11000 duplicate key: {doc.get('_id')!r}", DUPLICATE_KEY)

    def _take(self) -> list[_Request]:
        with self._lock:
            batch, size = [], 0
            while self._queue and (not batch or size + len(self._queue[0].docs) <= self.max_docs):
                request = self._queue.pop(0)
                batch.append(request)
                size += len(request.docs)
            return batch

    def _hand_over(self) -> None:
        with self._lock:
            if self._queue:
                following = self._queue[0]
                following.leads = True
                following.ready.set()
            else:
                self._busy = False

    def _send(self, batch: list[_Request]) -> None:
        docs = [doc for request in batch for doc in request.docs]
        owners = [(request, i) for request in batch for i in range(len(request.docs))]
        try:
            self.commands += 1
            self.documents += len(docs)
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
        except Exception as exc:  # the whole command failed: every request of the batch sees it
            for request in batch:
                request.error = exc
        finally:
            for request in batch:
                request.served = True
                if not request.leads:
                    request.ready.set()


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
