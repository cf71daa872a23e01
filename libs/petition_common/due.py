"""Things to do once their time has passed, found by `_id` point reads: a timer wheel in the database.

FerretDB v1 reads a whole collection for any filter but an exact `_id`, so a job that finds its work
by scanning the items waiting for it pays for every item on every run: intake's retention job read
every petition ended in the last three years once an hour, routing's timeout scanner every open
order once a minute (bench/RESULTS.md). Here the items are queued under the hour they fall due, in
documents numbered without gaps within the hour, `_id` = "<hour>#<n>" (n = 0, 1, 2, ...); the items
of one `add` for one hour (a poll batch, a group commit) share a document. A cursor document holds
the first hour not taken yet. A run reads, by `_id`, the documents of the hours that have passed
since, plus one read per hour for the end of its sequence: it costs what it takes, not what waits.

- Writing: an ordered insert claims the next numbers of an hour; a number another writer took
  fails it (unique `_id`: atomic everywhere) and the writer moves past it, so an hour's documents
  are numbered 0..k-1 at every moment and "read until the first missing number" misses nothing.
- Time: an item is queued under the hour of its time, but never under an hour a reader may have
  taken: not before the hour after `horizon`, the instant the caller's readers pass as `until` at
  the same moment. A reader takes an hour once it ended `grace` before `until`. So an item is taken
  at most two hours plus the grace after it is due (plus the reader's own interval), and a write is
  missed only if it lands more than an hour plus the grace after its writer read the clock.
- Taking: `take(until)` returns the items of the passed hours and where the cursor goes after them;
  the caller does the work, then `done` moves the cursor and deletes the documents. A run that dies
  in between takes them again (the work must be idempotent, as it must be anyway when two instances
  run the job); an item whose work failed is `add`ed again, so it is tried an hour or two later.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import DeleteOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from petition_common.mongo import bulk_update

HOUR = timedelta(hours=1)
CURSOR_ID = "cursor"
# an hour is taken this long after it ended (writes in flight, clocks a little apart)
DEFAULT_GRACE = timedelta(minutes=5)
# a writer that keeps losing numbers to others moves past them; this many lost in a row is a fault
MAX_LOST_CLAIMS = 64
# hours whose next number a writer remembers
KEEP_HOURS = 256
# items of one `add` share a document (up to this many): a run reads a document per batch written
BATCH_ITEMS = 500


def hour_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hour_key(hour: datetime) -> str:
    return hour.strftime("%Y-%m-%dT%H")


def item_id(hour: datetime, n: int) -> str:
    return f"{hour_key(hour)}#{n:06d}"


def _parse_hour(key: str) -> datetime:
    return datetime.strptime(key, "%Y-%m-%dT%H").replace(tzinfo=UTC)


@dataclass
class Taken:
    """What `take` read: the items (their `_id`s with their payloads) and the cursor after them."""

    items: list[dict[str, Any]] = field(default_factory=list)
    next_hour: datetime | None = None  # None: the cursor stays

    @property
    def payloads(self) -> list[dict[str, Any]]:
        return [entry["payload"] for item in self.items for entry in item["items"]]


class DueQueue:
    def __init__(self, collection: Collection, grace: timedelta = DEFAULT_GRACE, slot: timedelta = HOUR):
        """`slot`: how much time one sequence covers (a whole number of hours): an item is taken up to two
        slots after it is due, and a run reads one sequence end per slot passed."""
        if slot < HOUR or slot % HOUR:
            raise ValueError(f"a due queue's slot is a whole number of hours, not {slot}")
        self.collection = collection
        self.grace = grace
        self.slot = slot
        # per hour, the first number this process has not seen taken (a lower bound of the free one)
        self._next: dict[str, int] = {}
        self._cursor_ensured = False
        # the cursor as this process last read or moved it: never ahead of the stored one (cursors only
        # move on), so while no hour after it has passed, a run has nothing to take and reads nothing
        self._cursor_seen: datetime | None = None

    # ---- writing

    def bucket(self, at: datetime, horizon: datetime) -> datetime:
        """The hour an item of time `at` is queued under (module docstring)."""
        return max(self._slot_of(at), self._slot_of(horizon) + self.slot)

    def add(self, items: Sequence[tuple[datetime, dict[str, Any]]], horizon: datetime) -> None:
        """Queue each payload under the hour of its time (not before the hour after `horizon`)."""
        by_hour: dict[datetime, list[dict[str, Any]]] = {}
        for at, payload in items:
            by_hour.setdefault(self.bucket(at, horizon), []).append({"at": at, "payload": payload})
        if not by_hour:
            return
        self._ensure_cursor(self._slot_of(horizon) + self.slot)  # the earliest slot this writer may ever use
        for hour, entries in sorted(by_hour.items()):
            chunks = [entries[k : k + BATCH_ITEMS] for k in range(0, len(entries), BATCH_ITEMS)]
            self._append(hour, [{"items": chunk} for chunk in chunks])

    def _ensure_cursor(self, hour: datetime) -> None:
        """The cursor exists before the first item does, so a reader that finds none may start where it
        likes (`_cursor`): nothing was queued before it."""
        if self._cursor_ensured:
            return
        with contextlib.suppress(DuplicateKeyError):
            self.collection.insert_one({"_id": CURSOR_ID, "hour": hour_key(hour)})
        self._cursor_ensured = True

    def _append(self, hour: datetime, docs: list[dict[str, Any]]) -> None:
        key = hour_key(hour)
        n = self._next.get(key, 0)  # an hour this process has not written to is tried from 0: mostly new
        pending = docs
        for _ in range(MAX_LOST_CLAIMS):
            batch = [{"_id": item_id(hour, n + i), **doc} for i, doc in enumerate(pending)]
            try:
                self.collection.insert_many(batch, ordered=True)  # stops at a taken number: a prefix is stored
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if not errors or errors[0].get("code") != 11000:
                    raise
                stored = errors[0]["index"]  # another writer took n + stored: it is writing there now
                n, pending = self._first_free(hour, n + stored + 1), pending[stored:]
                continue
            self._next[key] = n + len(pending)
            if len(self._next) > KEEP_HOURS:  # hours are written in time order: forget the oldest
                del self._next[min(self._next)]
            return
        raise RuntimeError(f"due queue: lost {MAX_LOST_CLAIMS} claims in a row for hour {key}")

    def _first_free(self, hour: datetime, start: int) -> int:
        """The first free number of an hour from `start` (every number before it is taken), after a
        lost claim: doubling probes, then a binary search (numbers are taken without gaps), about
        2·log2(k) reads for k numbers taken since; one when there are none."""
        if not self._exists(hour, start):
            return start
        low, step = start, 1
        while self._exists(hour, low + step):
            low, step = low + step, step * 2
        high = low + step
        while high - low > 1:  # `low` is taken, `high` is free
            mid = (low + high) // 2
            low, high = (mid, high) if self._exists(hour, mid) else (low, mid)
        return high

    def _exists(self, hour: datetime, n: int) -> bool:
        return self.collection.find_one({"_id": item_id(hour, n)}, {"_id": 1}) is not None

    # ---- taking

    def take(self, until: datetime) -> Taken:
        """The items of every hour from the cursor that ended `grace` before `until`, oldest first."""
        last = self._slot_of(until - self.grace) - self.slot  # the newest slot that has ended `grace` ago
        if self._cursor_seen is not None and last < self._cursor_seen:
            return Taken()
        first = self._cursor_seen = self._cursor(until)
        taken = Taken()
        hour = first
        while hour <= last:
            n = 0
            while (doc := self.collection.find_one({"_id": item_id(hour, n)})) is not None:
                taken.items.append(doc)
                n += 1
            hour += self.slot
        if hour > first:
            taken.next_hour = hour
        return taken

    def _slot_of(self, at: datetime) -> datetime:
        if self.slot == HOUR:
            return hour_of(at)
        seconds = int(self.slot.total_seconds())
        return datetime.fromtimestamp(int(at.timestamp()) // seconds * seconds, UTC)

    def _cursor(self, until: datetime) -> datetime:
        doc = self.collection.find_one({"_id": CURSOR_ID})
        if doc is not None:
            return _parse_hour(doc["hour"])
        start = self._slot_of(until)  # nothing was queued yet (`_ensure_cursor`); writers queue after it
        with contextlib.suppress(DuplicateKeyError):
            self.collection.insert_one({"_id": CURSOR_ID, "hour": hour_key(start)})
        return start

    def done(self, taken: Taken) -> None:
        """Move the cursor past what `take` read, then delete its items."""
        if taken.next_hour is not None:
            self.collection.replace_one({"_id": CURSOR_ID}, {"_id": CURSOR_ID, "hour": hour_key(taken.next_hour)})
            self._cursor_seen = taken.next_hour
        if taken.items:
            bulk_update(self.collection, [DeleteOne({"_id": item["_id"]}) for item in taken.items])

    def waiting(self) -> list[dict[str, Any]]:
        """The payloads of every item not taken yet (a full scan: for tests and operators, not for a
        timer). Documents without a number are the cursor and the caller's own markers."""
        return [entry["payload"] for doc in self.collection.find({}) if "#" in doc["_id"] for entry in doc["items"]]

    def pending(self) -> int:
        return len(self.waiting())
