"""The due queue (petition_common.due) on the fakes: what a run takes, when, and what writers may do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from petition_common.due import CURSOR_ID, HOUR, DueQueue, item_id
from petition_common.fakes import MemoryDatabase

T0 = datetime(2026, 3, 2, 8, 20, tzinfo=UTC)


def _items(db: MemoryDatabase) -> list[str]:
    return sorted(d["_id"] for d in db["q"].find({"_id": {"$ne": CURSOR_ID}}))


def test_an_item_is_taken_once_its_hour_has_ended_grace_ago_and_then_not_again() -> None:
    db = MemoryDatabase()
    queue = DueQueue(db["q"], grace=timedelta(minutes=5))
    queue.add([(T0 + timedelta(hours=3), {"n": 1}), (T0 + timedelta(hours=1), {"n": 2})], horizon=T0)
    assert queue.take(T0 + timedelta(hours=1, minutes=44)).payloads == []  # 09:00-10:00 ended, not 5 min ago
    taken = queue.take(T0 + timedelta(hours=1, minutes=45))
    assert taken.payloads == [{"n": 2}]
    queue.done(taken)
    assert _items(db) == [item_id(datetime(2026, 3, 2, 11, tzinfo=UTC), 0)]
    assert queue.take(T0 + timedelta(hours=2, minutes=50)).payloads == []
    later = queue.take(T0 + timedelta(days=1))
    assert later.payloads == [{"n": 1}]
    queue.done(later)
    assert _items(db) == [] and queue.pending() == 0


def test_a_run_that_dies_before_done_takes_the_same_items_again() -> None:
    queue = DueQueue(MemoryDatabase()["q"])
    queue.add([(T0 + timedelta(hours=1), {"n": 1})], horizon=T0)
    first = queue.take(T0 + timedelta(hours=3))
    assert queue.take(T0 + timedelta(hours=3)).payloads == first.payloads == [{"n": 1}]


def test_an_item_is_never_queued_under_an_hour_a_reader_may_have_taken() -> None:
    queue = DueQueue(MemoryDatabase()["q"])
    assert queue.bucket(T0 - timedelta(days=3), horizon=T0) == datetime(2026, 3, 2, 9, tzinfo=UTC)
    assert queue.bucket(T0 + timedelta(days=3), horizon=T0) == datetime(2026, 3, 5, 8, tzinfo=UTC)
    queue.add([(T0 - timedelta(days=3), {"late": True})], horizon=T0)
    taken = queue.take(T0 + timedelta(hours=1))  # a reader as late as the writer: the hour after
    assert taken.payloads == []
    assert queue.take(T0 + timedelta(hours=2)).payloads == [{"late": True}]


def test_two_writers_share_an_hours_numbers_without_a_gap_or_a_loss() -> None:
    db = MemoryDatabase()
    a, b = DueQueue(db["q"]), DueQueue(db["q"])
    at = T0 + timedelta(hours=5)
    a.add([(at, {"w": "a", "n": n}) for n in range(3)], horizon=T0)
    b.add([(at, {"w": "b", "n": n}) for n in range(4)], horizon=T0)  # finds the end a left
    a.add([(at, {"w": "a", "n": 3})], horizon=T0)  # a believes 3 is free: b took it, a moves past
    b.add([(at, {"w": "b", "n": 4})], horizon=T0)
    hour = datetime(2026, 3, 2, 13, tzinfo=UTC)
    assert _items(db) == [item_id(hour, n) for n in range(4)]  # a document per add
    taken = DueQueue(db["q"]).take(T0 + timedelta(days=1))
    expected = [("a", n) for n in range(4)] + [("b", n) for n in range(5)]
    assert sorted((p["w"], p["n"]) for p in taken.payloads) == expected


def test_a_writer_new_to_an_hour_finds_its_end_in_a_few_reads() -> None:
    db = MemoryDatabase()
    at = T0 + timedelta(hours=5)
    for n in range(100):
        DueQueue(db["q"]).add([(at, {"n": n})], horizon=T0)  # a hundred processes, one add each
    db.commands.clear()
    DueQueue(db["q"]).add([(at, {"n": 100})], horizon=T0)
    assert db.commands[("find", "q")] <= 2 * 7 + 1  # about 2·log2(100), not 100
    assert db.commands[("insert", "q")] == 3  # the cursor (there already), number 0 (taken), the item
    assert len(_items(db)) == 101


def test_the_items_of_one_add_share_a_document_and_a_take_reads_it_once() -> None:
    db = MemoryDatabase()
    queue = DueQueue(db["q"])
    queue.add([(T0 + timedelta(hours=1, minutes=n), {"n": n}) for n in range(40)], horizon=T0)
    assert len(_items(db)) == 1 and queue.pending() == 40
    db.commands.clear()
    taken = queue.take(T0 + timedelta(hours=3))
    assert [p["n"] for p in taken.payloads] == list(range(40))
    assert db.commands[("find", "q")] == 1 + 2 + 1  # the cursor, 09:00's document and end, 10:00's end


def test_the_cursor_exists_before_the_first_item_and_a_reader_without_one_starts_at_its_until() -> None:
    db = MemoryDatabase()
    queue = DueQueue(db["q"])
    queue.add([(T0 + timedelta(days=2), {"n": 1})], horizon=T0 - timedelta(days=1))
    assert db["q"].find_one({"_id": CURSOR_ID})["hour"] == "2026-03-01T09"  # the first hour it may ever use
    empty = MemoryDatabase()
    reader = DueQueue(empty["q"])
    assert reader.take(T0 + 10 * HOUR).payloads == []
    assert empty["q"].find_one({"_id": CURSOR_ID})["hour"] == "2026-03-02T18"


def test_a_take_costs_a_read_per_hour_passed_and_per_item_taken_not_per_item_waiting() -> None:
    db = MemoryDatabase()
    queue = DueQueue(db["q"])
    queue.add([(T0 + timedelta(days=30, minutes=n), {"n": n}) for n in range(500)], horizon=T0)
    queue.add([(T0 + timedelta(hours=1), {"n": "due"})], horizon=T0)
    db.commands.clear()
    taken = queue.take(T0 + timedelta(hours=4))  # from the cursor's hour 09:00 to 11:00: three hours
    assert taken.payloads == [{"n": "due"}]
    assert db.commands[("find", "q")] == 1 + 3 + 1  # the cursor, an end per hour, the item
    queue.done(taken)
    db.commands.clear()
    assert queue.take(T0 + timedelta(hours=4, minutes=30)).payloads == []  # no hour has passed since
    assert sum(db.commands.values()) == 0


def test_a_queue_by_the_day_takes_a_day_once_it_has_passed() -> None:
    db = MemoryDatabase()
    queue = DueQueue(db["q"], slot=timedelta(days=1))
    queue.add([(T0 + timedelta(days=3, hours=5), {"n": 1})], horizon=T0)
    assert db["q"].find_one({"_id": CURSOR_ID})["hour"] == "2026-03-03T00"  # the day after the horizon's
    assert queue.take(T0 + timedelta(days=3, hours=15)).payloads == []  # 5 March has not ended
    db.commands.clear()
    taken = queue.take(datetime(2026, 3, 6, 0, 5, tzinfo=UTC))
    assert taken.payloads == [{"n": 1}]
    assert db.commands[("find", "q")] == 1 + 3 + 1  # the cursor, the ends of 3, 4 and 5 March, the item


def test_a_slot_is_a_whole_number_of_hours() -> None:
    with pytest.raises(ValueError, match="whole number of hours"):
        DueQueue(MemoryDatabase()["q"], slot=timedelta(minutes=90))
