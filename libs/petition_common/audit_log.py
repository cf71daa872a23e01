"""One service's audit trail in its own database: append-only, hash-chained (audit.py), and the
auditor's queries.

Appending on FerretDB v1 (no transactions, read-modify-write not atomic across connections): the
record's `_id` is its sequence number, and inserting an `_id` that exists fails atomically. So
concurrent appenders (threads here, other processes or instances elsewhere) race on inserting
`_id = seq(tail + 1)`; the loser finds the new tail by point reads galloping forward from the
winner's record and tries the number after it (stepping one record a retry, measured with
bench/audit_chain.py, never caught up with two busy appenders). Threads of one process do not race
each other: appends that arrive while one is being written wait, and are then chained and written
together by one ordered insert (group_commit.py), which stops at a number another process took.
The tail is found once per process by point reads only (a gallop, then a binary search over which
numbers exist: ~2·log2(n) reads), then kept in memory; there is no head document to trust or to
keep in step. Nothing here reads anything but single `_id`s, except `query` (the auditor's filters,
a full scan on FerretDB v1, off every hot path) and `scan` (the verify command).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import DESCENDING
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from petition_common.audit import GENESIS, chained, seq_id
from petition_common.group_commit import GroupCommit
from petition_kernel.times import format_time, utc_now

log = logging.getLogger(__name__)

COLLECTION = "audit"
# appenders losing more races than this in a row: something else is wrong (a runaway writer)
MAX_RACES = 1000


class AuditUnavailable(RuntimeError):
    """The record could not be appended; whatever it was to record must not happen unrecorded."""


class AuditLog:
    def __init__(
        self,
        db: Database,
        service: str,
        clock: Callable[[], datetime] = utc_now,
        on_append: Callable[[Mapping[str, Any]], None] | None = None,
    ):
        self.records: Collection = db[COLLECTION]
        self.service = service
        self.clock = clock
        self.on_append = on_append
        self._lock = threading.Lock()
        self._tail: tuple[int, str] | None = None  # (seq, hash) of the last record this process knows
        self.appends: GroupCommit[Mapping[str, Any], dict[str, Any]] = GroupCommit(self._append_many)

    def append(self, entry: Mapping[str, Any]) -> dict[str, Any]:
        """Store `entry` (who, what, which petition, ...) as the chain's next record, stamped with
        this service and the time; returns the record. Raises AuditUnavailable (or the database's
        error) when it could not be stored. Entries appended while another append is being written
        are written next, together, in one insert (group_commit.py)."""
        return self.appends.run(entry)

    def _append_many(self, entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The records of `entries`, chained in this order and stored by one ordered insert; after a
        lost race, those not stored are chained anew onto the new tail."""
        stored: list[dict[str, Any]] = []
        todo = list(entries)
        with self._lock:
            for _ in range(MAX_RACES):
                seq, prev = self._tail if self._tail is not None else self.find_tail()
                records = []
                for entry in todo:
                    seq += 1
                    stamped = {**entry, "service": self.service, "at": format_time(self.clock())}
                    records.append(chained(stamped, seq, prev))
                    prev = records[-1]["hash"]
                done = self._insert_in_order(records)
                stored += records[:done]
                if done:
                    self._tail = (records[done - 1]["seq"], records[done - 1]["hash"])
                if done == len(records):
                    break
                # another appender took the next number, and others may have gone on since: stepping
                # one record a retry never catches up with two busy appenders, so find the tail anew
                # (galloping from the number lost)
                todo = todo[done:]
                self._tail = self.find_tail(after=records[done]["seq"])
            else:
                raise AuditUnavailable(f"lost {MAX_RACES} races in a row appending to {self.service}'s audit trail")
        if self.on_append is not None:
            for record in stored:
                self.on_append(record)
        return stored

    def _insert_in_order(self, records: list[dict[str, Any]]) -> int:
        """Insert `records` in order, stopping at the first whose number is taken; how many were stored."""
        try:
            if len(records) == 1:
                self.records.insert_one(records[0])
            else:
                self.records.insert_many(records, ordered=True)
        except DuplicateKeyError:
            return 0
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if len(errors) != 1 or errors[0].get("code") != 11000:
                raise
            return int(errors[0]["index"])  # ordered: everything before it was stored, nothing after
        return len(records)

    def find_tail(self, after: int = 1) -> tuple[int, str]:
        """(seq, hash) of the last record, GENESIS's (0, ...) for an empty chain: the largest n with
        record n present, by point reads (records are numbered without gaps unless deleted; a
        deletion is what `verify` reports, and an append may then land in the gap). `after`: a
        number known to exist, where the search starts (~2·log2 of the distance to the end)."""
        if not self._exists(after):
            if after == 1:
                return 0, GENESIS
            return self.find_tail()  # deleted since: search from the start
        low, step = after, 1
        while self._exists(low + step):
            low, step = low + step, step * 2
        high = low + step
        while high - low > 1:  # record `low` exists, record `high` does not
            mid = (low + high) // 2
            if self._exists(mid):
                low = mid
            else:
                high = mid
        last = self.records.find_one({"_id": seq_id(low)}, {"hash": 1})
        if last is None:  # deleted between the reads: start over
            return self.find_tail()
        return low, last["hash"]

    def _exists(self, seq: int) -> bool:
        return self.records.find_one({"_id": seq_id(seq)}, {"_id": 1}) is not None

    def query(
        self, filters: Mapping[str, Any], since: str | None, until: str | None, before: int | None, limit: int
    ) -> list[dict[str, Any]]:
        """The newest records matching `filters` (field: value), with `since <= at < until` (the
        envelope's time format, which orders as text) and `seq < before`, newest first."""
        query: dict[str, Any] = {k: v for k, v in filters.items() if v is not None}
        at = {op: v for op, v in (("$gte", since), ("$lt", until)) if v is not None}
        if at:
            query["at"] = at
        if before is not None:
            query["_id"] = {"$lt": seq_id(before)}
        found = self.records.find(query, {"_id": 0}).sort("_id", DESCENDING).limit(limit)
        return list(found)

    def scan(self, batch_size: int = 2000) -> Iterator[dict[str, Any]]:
        """Every stored document, in no particular order (audit.verify does not need one)."""
        return self.records.find({}, batch_size=batch_size)

    def count(self) -> int:
        return self.records.estimated_document_count()
