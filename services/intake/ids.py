"""Petition numbers: human-readable, unique, without a read-modify-write counter.

FerretDB v1 loses concurrent `$inc`s, so a shared counter cannot hand out numbers. Instead an
instance claims a block of 100 numbers of the day by inserting `block:<day>:<n>` (a unique
insert: exactly one instance gets each block) and then numbers petitions from it locally.
Numbers are unique and grow roughly with time; a block left half-used by a restart leaves a gap,
which is harmless. A new instance finds the first free block by point reads (doubling, then
bisection), since blocks are claimed in order; only inserts and `_id` reads touch the database.
"""

from __future__ import annotations

import threading
from datetime import date

from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from services.intake.domain import format_petition_id

BLOCK = 100
MAX_BLOCKS = 999_999 // BLOCK


class PetitionNumbers:
    def __init__(self, collection: Collection, prefix: str):
        self.collection = collection
        self.prefix = prefix
        self._lock = threading.Lock()
        self._day: date | None = None
        self._next = 0
        self._end = 0

    def next_id(self, day: date) -> str:
        with self._lock:
            if day != self._day or self._next >= self._end:
                self._claim(day)
            seq = self._next
            self._next += 1
        return format_petition_id(self.prefix, day, seq)

    def _claimed(self, day: date, block: int) -> bool:
        return self.collection.find_one({"_id": f"block:{day:%Y%m%d}:{block}"}, {"_id": 1}) is not None

    def _first_free_guess(self, day: date) -> int:
        if day == self._day:
            return self._end // BLOCK
        if not self._claimed(day, 0):
            return 0
        low, high = 0, 1
        while self._claimed(day, high):
            low, high = high, high * 2
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (mid, high) if self._claimed(day, mid) else (low, mid)
        return high

    def _claim(self, day: date) -> None:
        block = self._first_free_guess(day)
        while True:
            if block >= MAX_BLOCKS:
                raise RuntimeError(f"all petition numbers of {day} are used")
            try:
                self.collection.insert_one({"_id": f"block:{day:%Y%m%d}:{block}"})
                break
            except DuplicateKeyError:
                block += 1  # another instance claimed it first
        self._day = day
        self._next = block * BLOCK + 1
        self._end = block * BLOCK + BLOCK + 1
