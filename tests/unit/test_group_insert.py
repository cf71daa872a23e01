"""petition_common.group_insert: concurrent inserts go to the database as one command, and each
request learns exactly its own documents' outcome."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from pymongo.errors import AutoReconnect, BulkWriteError, DuplicateKeyError

from petition_common.fakes import MemoryDatabase
from petition_common.group_insert import GroupInsert, GroupInserts, _Request


class Gate:
    """A collection whose first insert waits until `release`, so that others queue behind it."""

    def __init__(self, collection: Any):
        self.collection = collection
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls: list[int] = []

    def insert_many(self, docs: list[dict[str, Any]], ordered: bool = True) -> Any:
        self.calls.append(len(docs))
        if len(self.calls) == 1:
            self.entered.set()
            assert self.release.wait(5)
        return self.collection.insert_many(docs, ordered=ordered)


def test_a_request_alone_is_sent_at_once_and_duplicates_are_named_by_its_own_indexes() -> None:
    db = MemoryDatabase()
    group = GroupInsert(db["c"])
    assert group.insert_many([{"_id": "a"}, {"_id": "b"}]) == []
    assert group.insert_many([{"_id": "c"}, {"_id": "a"}, {"_id": "b"}]) == [1, 2]
    with pytest.raises(DuplicateKeyError):
        group.insert_one({"_id": "c"})
    assert sorted(d["_id"] for d in db["c"].find({})) == ["a", "b", "c"]
    assert group.commands == 3


def test_requests_arriving_during_an_insert_go_together_in_the_next_one() -> None:
    db = MemoryDatabase()
    db["c"].insert_one({"_id": "taken"})
    gate = Gate(db["c"])
    group = GroupInsert(gate)  # type: ignore[arg-type]
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(group.insert_many, [{"_id": "first"}])
        assert gate.entered.wait(5)
        waiting = [
            pool.submit(group.insert_many, docs)
            for docs in ([{"_id": "x1"}, {"_id": "taken"}], [{"_id": "y1"}], [{"_id": "z1"}, {"_id": "z2"}])
        ]
        while len(group._queue) < 3:  # all three queued behind the first insert
            threading.Event().wait(0.001)
        gate.release.set()
        assert first.result(5) == []
        assert [f.result(5) for f in waiting] == [[1], [], []]
    assert gate.calls == [1, 5]  # the three requests in one command
    assert {d["_id"] for d in db["c"].find({})} == {"taken", "first", "x1", "y1", "z1", "z2"}


def test_a_failed_command_fails_every_request_of_its_batch_and_the_next_batch_goes_on() -> None:
    db = MemoryDatabase()

    class Flaky:
        calls = 0

        def insert_many(self, docs: list[dict[str, Any]], ordered: bool = True) -> Any:
            Flaky.calls += 1
            if Flaky.calls == 1:
                raise AutoReconnect("database away")
            return db["c"].insert_many(docs, ordered=ordered)

    group = GroupInsert(Flaky())  # type: ignore[arg-type]
    with pytest.raises(AutoReconnect):
        group.insert_many([{"_id": "a"}])
    assert group.insert_many([{"_id": "a"}]) == []


def test_a_write_error_other_than_a_duplicate_fails_only_its_own_request() -> None:
    class Refusing:
        def insert_many(self, docs: list[dict[str, Any]], ordered: bool = True) -> Any:
            errors = [{"index": i, "code": 2, "errmsg": "bad"} for i, d in enumerate(docs) if d.get("bad")]
            raise BulkWriteError({"writeErrors": errors, "nInserted": len(docs) - len(errors)})

    group = GroupInsert(Refusing())  # type: ignore[arg-type]
    batch = [_Request([{"_id": "ok"}]), _Request([{"_id": "b", "bad": True}])]
    group._send(batch)
    assert batch[0].error is None
    assert isinstance(batch[1].error, BulkWriteError)
    assert batch[1].error.details["writeErrors"] == [{"index": 0, "code": 2, "errmsg": "bad"}]


def test_many_threads_inserting_lose_nothing_and_need_fewer_commands() -> None:
    db = MemoryDatabase()
    group = GroupInserts().of(db["c"])

    def work(n: int) -> list[int]:
        return group.insert_many([{"_id": f"{n}-a"}, {"_id": f"{n}-b"}, {"_id": "shared"}])

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(work, range(400)))
    assert db["c"].count_documents({}) == 801
    assert sum(r == [] for r in results) == 1  # exactly one request stored "shared"
    assert all(r in ([], [2]) for r in results)
    assert group.commands <= 400


def test_the_collections_of_one_database_each_have_their_group() -> None:
    db, other = MemoryDatabase(), MemoryDatabase()
    inserts = GroupInserts()
    assert inserts.of(db["a"]) is inserts.of(db["a"])
    assert inserts.of(db["a"]) is not inserts.of(db["b"])
    assert inserts.of(db["a"]) is not inserts.of(other["a"])
