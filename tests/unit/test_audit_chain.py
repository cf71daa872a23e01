"""The audit chain's logic (petition_common/audit.py) and the appender's race handling
(audit_log.py) over a stand-in collection that keeps the one guarantee the real one is relied on
for: inserting an `_id` that exists fails atomically. The same race on the real FerretDB:
tests/integration/test_audit_log.py."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from pymongo.errors import BulkWriteError, DuplicateKeyError

from petition_common.audit import GENESIS, chained, record_hash, seq_id, verify
from petition_common.audit_log import AuditLog
from tests.unit.held_group import queued_behind_a_held_write


def chain(n: int) -> list[dict[str, Any]]:
    records, prev = [], GENESIS
    for seq in range(1, n + 1):
        record = chained({"action": "contact.read", "staff_id": f"S{seq:05d}", "fields": ["citizen.phone"]}, seq, prev)
        records.append(record)
        prev = record["hash"]
    return records


def test_an_intact_chain_verifies_in_any_order_and_names_its_head():
    records = chain(50)
    verdict = verify(reversed(records))
    assert verdict.ok and verdict.records == 50
    assert verdict.head == (50, records[-1]["hash"])
    assert verify([]).ok and verify([]).head is None


def test_the_hash_covers_every_field_but_id_and_hash():
    record = chain(1)[0]
    assert record["_id"] == seq_id(1) == "000000000001" and record["prev"] == GENESIS
    assert record_hash({**record, "staff_id": "S99999"}) != record["hash"]
    assert record_hash({**record, "_id": "x", "hash": "y"}) == record["hash"]


@pytest.mark.parametrize(
    ("tamper", "seq", "problem"),
    [
        # a field changed in place
        (lambda r: r[9].update(staff_id="S00000"), 10, "altered"),
        # a field changed and the record's hash recomputed: the next record no longer follows it
        (lambda r: r[9].update(staff_id="S00000", hash=record_hash({**r[9], "staff_id": "S00000"})), 11, "relinked"),
        # a record deleted
        (lambda r: r.pop(19), 20, "missing"),
        # two records swapped under each other's _id
        (lambda r: r[29].update(_id=seq_id(31)) or r[30].update(_id=seq_id(30)), 30, "moved"),
        # the first record's link rewritten
        (lambda r: r[0].update(prev="1" * 64), 1, "altered"),
    ],
)
def test_verify_reports_the_first_broken_link(tamper, seq, problem):
    records = chain(40)
    tamper(records)
    verdict = verify(records)
    assert not verdict.ok
    assert (verdict.first_break.seq, verdict.first_break.problem) == (seq, problem)
    assert str(seq) in verdict.first_break.describe()


def test_records_cut_off_at_the_end_show_only_against_a_kept_head():
    records = chain(30)
    head = verify(records).head
    assert verify(records[:25]).ok  # the chain alone cannot tell
    verdict = verify(records[:25], expect_head=head)
    assert (verdict.first_break.seq, verdict.first_break.problem) == (30, "missing")
    assert verify(records, expect_head=head).ok


def test_a_foreign_document_among_the_records_is_reported():
    verdict = verify([*chain(3), {"_id": "head", "seq": "3"}])
    assert verdict.first_break.problem == "foreign"


def test_progress_is_reported_per_record():
    seen: list[int] = []
    verify(chain(5), progress=seen.append)
    assert seen == [1, 2, 3, 4, 5]


class UniqueIds:
    """The part of a pymongo collection AuditLog uses, with an atomic unique `_id`."""

    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.duplicates = 0
        self.groups: list[int] = []  # sizes of the insert_many calls

    def insert_one(self, doc: dict[str, Any]) -> None:
        with self.lock:
            if doc["_id"] in self.docs:
                self.duplicates += 1
                raise DuplicateKeyError("E11000 duplicate key")
            self.docs[doc["_id"]] = dict(doc)

    def insert_many(self, docs: list[dict[str, Any]], ordered: bool = True) -> None:
        """Ordered, as AuditLog asks: stops at the first `_id` taken, reporting it as pymongo does."""
        assert ordered
        self.groups.append(len(docs))
        for index, doc in enumerate(docs):
            try:
                self.insert_one(doc)
            except DuplicateKeyError:
                raise BulkWriteError({"writeErrors": [{"index": index, "code": 11000}], "nInserted": index}) from None

    def find_one(self, query: dict[str, Any], projection: dict[str, int] | None = None) -> dict[str, Any] | None:
        doc = self.docs.get(query["_id"])
        return dict(doc) if doc is not None else None


class Db(dict):
    def __missing__(self, name: str) -> UniqueIds:
        self[name] = UniqueIds()
        return self[name]


def test_concurrent_appenders_of_several_processes_keep_one_unbroken_chain():
    db = Db()
    # four "processes" (each its own AuditLog, so its own lock and tail), four threads each
    logs = [AuditLog(db, "intake") for _ in range(4)]
    per_thread = 50
    start = threading.Barrier(16)

    def append(log: AuditLog, worker: int) -> None:
        start.wait()
        for i in range(per_thread):
            log.append({"action": "contact.read", "staff_id": f"W{worker}", "n": i, "outcome": "ok"})

    threads = [threading.Thread(target=append, args=(logs[w % 4], w)) for w in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stored = db["audit"].docs
    assert len(stored) == 16 * per_thread
    assert verify(stored.values()).ok
    # every append landed exactly once
    assert sorted((d["staff_id"], d["n"]) for d in stored.values()) == sorted(
        (f"W{w}", i) for w in range(16) for i in range(per_thread)
    )
    assert db["audit"].duplicates > 0, "the processes never raced; the test proves nothing about the race"


def test_appends_arriving_during_a_write_are_chained_and_written_together_after_a_lost_race():
    """A group whose first number another process took is chained anew onto the new tail."""
    db = Db()
    other, mine = AuditLog(db, "routing"), AuditLog(db, "routing")
    other.append({"action": "workorder.contact", "n": 0, "outcome": "ok"})
    mine.append({"action": "workorder.contact", "n": 1, "outcome": "ok"})  # mine's tail: 2
    other.append({"action": "workorder.contact", "n": 2, "outcome": "ok"})  # takes 3 behind mine's back

    def append(n: int) -> Callable[[], object]:
        return lambda: mine.append({"action": "a", "n": n, "outcome": "ok"})

    queued_behind_a_held_write(mine.appends, append(3), [append(n) for n in (4, 5, 6)])
    stored = db["audit"].docs
    assert verify(stored.values()).ok and len(stored) == 7
    assert sorted(d["n"] for d in stored.values()) == list(range(7))
    assert 3 in db["audit"].groups, "the three later appends were not written together"


def test_a_new_process_finds_the_tail_by_point_reads():
    db = Db()
    first = AuditLog(db, "routing")
    for i in range(37):
        first.append({"action": "workorder.contact", "n": i, "outcome": "ok"})
    later = AuditLog(db, "routing")
    assert later.find_tail() == (37, db["audit"].docs[seq_id(37)]["hash"])
    later.append({"action": "workorder.reply", "outcome": "ok"})
    assert verify(db["audit"].docs.values()).ok
    assert AuditLog(Db(), "sla").find_tail() == (0, GENESIS)
