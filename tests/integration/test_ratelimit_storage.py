"""The fixed-window storage of the rate limits on the real FerretDB (ratelimit_storage.py): exact
counts per window, shared by instances, also under concurrent hits (where `$inc` loses some), a
full window answered from memory, windows that start over, and the cleanup of expired ones."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from pymongo import MongoClient
from pymongo.collection import Collection

from petition_common.ratelimit_storage import SCHEME, FixedWindowSlots
from tests.conftest import make_settings


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):  # on a minute boundary (divisible by 60)
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def collection(unique_prefix: str) -> Iterator[Collection]:
    settings = make_settings("ratelimit", unique_prefix)
    client = MongoClient(settings.mongo_uri, socketTimeoutMS=15_000)
    yield client[settings.database]["rate_limits"]
    client.close()


def instance(collection: Collection, clock: Clock) -> FixedWindowSlots:
    """What a service process builds (Flask-Limiter goes through storage_from_string too)."""
    storage = storage_from_string(f"{SCHEME}://", collection=collection, clock=clock)
    assert isinstance(storage, FixedWindowSlots)
    return storage


def test_a_window_allows_exactly_its_amount_and_then_costs_no_write(collection):
    clock = Clock()
    limiter = FixedWindowRateLimiter(instance(collection, clock))
    item = parse("5/minute")
    assert [limiter.hit(item, "addr:1") for _ in range(8)] == [True] * 5 + [False] * 3
    assert collection.count_documents({}) == 6  # five slots and the "full" marker, whatever followed
    assert limiter.hit(item, "addr:2")  # another client has its own count
    stats = limiter.get_window_stats(item, "addr:1")
    assert stats.remaining == 0 and stats.reset_time == clock.now + 60
    clock.now += 59.9  # still the same window
    assert not limiter.hit(item, "addr:1")
    clock.now += 0.1  # the next minute: a fresh window
    assert limiter.hit(item, "addr:1")
    assert limiter.get_window_stats(item, "addr:1").remaining == 4


def test_two_instances_share_one_count_even_when_hit_at_once(collection):
    clock = Clock()
    instances = [FixedWindowRateLimiter(instance(collection, clock)) for _ in range(2)]
    item = parse("40/hour")

    def hit(i: int) -> bool:
        return instances[i % 2].hit(item, "addr:burst")

    with ThreadPoolExecutor(8) as pool:  # 8 connections at once: a $inc counter loses hits here
        allowed = list(pool.map(hit, range(100)))
    assert sum(allowed) == 40
    assert sorted(d["_id"].rsplit("|", 1)[1] for d in collection.find({})) == sorted(str(s) for s in range(1, 42))


def test_an_instance_that_starts_late_finds_the_next_free_slot(collection):
    clock = Clock()
    early, late = instance(collection, clock), instance(collection, clock)
    key = parse("100/day").key_for("addr:x")
    assert [early.incr(key, 86_400) for _ in range(37)][-1] == 37
    assert late.get(key) == 37
    assert late.incr(key, 86_400) == 38  # found by reads, not by 37 failed inserts
    assert early.incr(key, 86_400) == 39  # the early one skips the slot the late one took


def test_expired_windows_are_deleted_by_their_owner_and_by_the_sweep(collection):
    clock = Clock()
    owner, other = instance(collection, clock), instance(collection, clock)
    minute, day = parse("3/minute"), parse("3/day")
    for _ in range(2):
        FixedWindowRateLimiter(owner).hit(minute, "addr:o")
        FixedWindowRateLimiter(owner).hit(day, "addr:o")
    FixedWindowRateLimiter(other).hit(minute, "addr:p")  # this one's owner "dies": only the sweep deletes it
    assert owner.forget_expired() == 0  # nothing expired yet
    clock.now += 60
    assert owner.forget_expired() == 2  # its minute slots, by _id; the day's stay
    assert collection.count_documents({}) == 3
    assert owner.sweep() == 1  # the other process's minute slot
    assert {d["_id"].split("/")[1] for d in collection.find({})} == {"addr:o"}
    assert FixedWindowRateLimiter(owner).hit(day, "addr:o")  # the day's count went on: 3 of 3
    assert not FixedWindowRateLimiter(owner).hit(day, "addr:o")
