"""A `limits` storage for the fixed-window strategy that is exact on FerretDB v1 and on MongoDB.

Several instances of a service must share their counts, so the counts live in the service's own
database. `limits`' MongoDB storage does not run on FerretDB v1 (its fixed window needs a TTL index,
its moving window `$filter`), and a counter document bumped with `$inc` would not be exact either:
FerretDB v1 loses concurrent increments even through `find_one_and_update` (probed here: 4 threads ×
200 `$inc`s with `return_document=AFTER` left 479 of 800, and two requests saw the same count, so
both would pass a limit; docs/ferretdb.md measured the same for `update_one`).

What is atomic on both is inserting a document whose `_id` is unique. So a window of a limit is a
row of *slots*, one document each: `_id` = f"{key}|{window_start}|{slot}", slots 1 .. amount + 1.
A hit claims the lowest free slot with one insert; the slot it got is its count. At most `amount`
hits of a window can get a slot <= amount, whoever inserts, on any instance, in any order. Slot
amount + 1 is the "full" marker: a hit that gets it, or finds it taken, is over the limit, and this
process then answers every later hit of that window from memory, without touching the database. So
an allowed hit costs one insert (the process remembers the last slot it saw), a refused one at most
one, and a window holds at most amount + 1 small documents, whatever a client sends.

Windows are aligned to the epoch (a day window starts at 00:00 UTC), so every instance agrees on
them without talking. Each document carries `until` (its window's end): the process deletes the
slots it inserted by `_id` once their window is over (`forget_expired`, every minute, no scan), and
a rare `sweep` (a full scan: a filter on `until`) removes what a process that died left behind.

`get`/`get_expiry` are given only the key, so the limit's size and window are read back from it:
`limits` builds every key as ".../{amount}/{multiples}/{granularity}".
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime

from limits.limits import TIME_TYPES
from limits.storage import Storage
from pymongo import DeleteOne
from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError, PyMongoError

from petition_common import mongo

SCHEME = "petitions-window"
# windows this process knows the last slot of; more only costs a few reads
MAX_REMEMBERED_WINDOWS = 100_000
# slots this process inserted and will delete; beyond that the sweep deletes them
MAX_OWN_SLOTS = 500_000


def limit_of(key: str) -> tuple[int, int]:
    """(amount, window seconds) of the limit a `limits` key was built for."""
    try:
        _, amount, multiples, granularity = key.rsplit("/", 3)
        return int(amount), int(multiples) * TIME_TYPES[granularity].seconds
    except (ValueError, KeyError):
        raise ValueError(f"not a key of the `limits` package: {key!r}") from None


def window_start(now: float, seconds: int) -> int:
    """The start (epoch seconds) of the window of `seconds` that holds `now`, aligned to the epoch."""
    return int(now // seconds) * seconds


class FixedWindowSlots(Storage):
    """`limits` storage for the fixed-window strategy (module docstring). Build it with
    `storage_from_string("petitions-window://", collection=db["rate_limits"])` or directly."""

    STORAGE_SCHEME = [SCHEME]  # noqa: RUF012 - limits' registry reads this class attribute

    def __init__(
        self,
        uri: str | None = None,
        wrap_exceptions: bool = False,
        *,
        collection: Collection,
        clock: Callable[[], float] = time.time,
        **options: object,
    ):
        super().__init__(uri, wrap_exceptions=wrap_exceptions)
        self.collection = collection
        self.clock = clock
        self._lock = threading.Lock()
        # f"{key}|{start}" -> (the highest slot this process knows is taken (amount + 1: full), window end)
        self._last: OrderedDict[str, tuple[int, int]] = OrderedDict()
        # (window end, _id) of the slots this process inserted, oldest window first
        self._own: list[tuple[int, str]] = []

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return PyMongoError

    # ---- the fixed-window strategy's three calls

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Claim `amount` slots of the current window; the count after this hit (> limit: refused)."""
        limit, _ = limit_of(key)
        start = window_start(self.clock(), expiry)
        count = 0
        for _ in range(amount):
            count = self._claim(f"{key}|{start}", limit, start + expiry)
        return count

    def get(self, key: str) -> int:
        """Hits counted in the current window (at most limit + 1)."""
        limit, seconds = limit_of(key)
        window = f"{key}|{window_start(self.clock(), seconds)}"
        return self._first_free(window, self._remembered(window), limit + 1) - 1

    def get_expiry(self, key: str) -> float:
        """When the current window ends (epoch seconds)."""
        _, seconds = limit_of(key)
        return float(window_start(self.clock(), seconds) + seconds)

    # ---- claiming slots

    def _claim(self, window: str, limit: int, until: int) -> int:
        full = limit + 1
        taken = self._remembered(window)
        while taken < full:
            slot = taken + 1
            try:
                self.collection.insert_one({"_id": f"{window}|{slot}", "until": _utc(until)})
            except DuplicateKeyError:
                # another hit (maybe on another instance) got it first: skip ahead to the first free slot
                taken = self._first_free(window, slot, full) - 1
                continue
            self._remember(window, slot, until)
            self._owned(until, f"{window}|{slot}")
            return slot
        self._remember(window, full, until)
        return full

    def _first_free(self, window: str, taken: int, full: int) -> int:
        """The lowest slot above `taken` (known taken, or 0) that is free, by point reads: galloping,
        then halving. full + 1 if every slot is taken. Slots fill from the bottom, so one probe is the
        usual cost; a process that starts late in a busy window needs about 2·log2(limit)."""
        step = 1
        while taken + step <= full and self._exists(window, taken + step):
            taken += step
            step *= 2
        free = min(taken + step, full + 1)
        while free - taken > 1:  # taken is taken, free is free (or past the end)
            middle = (taken + free) // 2
            if self._exists(window, middle):
                taken = middle
            else:
                free = middle
        return free

    def _exists(self, window: str, slot: int) -> bool:
        return mongo.get_by_id(self.collection, f"{window}|{slot}") is not None

    # ---- what this process remembers

    def _remembered(self, window: str) -> int:
        with self._lock:
            return self._last.get(window, (0, 0))[0]

    def _remember(self, window: str, slot: int, until: int) -> None:
        with self._lock:
            if slot > self._last.get(window, (0, 0))[0]:
                self._last[window] = (slot, until)
                self._last.move_to_end(window)
            while len(self._last) > MAX_REMEMBERED_WINDOWS:
                self._last.popitem(last=False)

    def _owned(self, until: int, doc_id: str) -> None:
        with self._lock:
            if len(self._own) < MAX_OWN_SLOTS:
                self._own.append((until, doc_id))

    # ---- cleaning up

    def forget_expired(self) -> int:
        """Delete the slots this process inserted whose window is over (by `_id`: no scan), and forget
        what it remembered of those windows. Returns how many were deleted."""
        now = self.clock()
        with self._lock:
            expired = sorted(doc_id for until, doc_id in self._own if until <= now)
            self._own = [(until, doc_id) for until, doc_id in self._own if until > now]
            for window in [w for w, (_, until) in self._last.items() if until <= now]:
                del self._last[window]
        try:
            mongo.bulk_update(self.collection, [DeleteOne({"_id": doc_id}) for doc_id in expired])
        except PyMongoError:
            with self._lock:  # try again next time
                self._own.extend((0, doc_id) for doc_id in expired)
            raise
        return len(expired)

    def sweep(self) -> int:
        """Delete every slot whose window is over, whoever inserted it: a full scan on FerretDB, so
        rare (hourly by default); it catches what a process that died could not delete itself."""
        return self.collection.delete_many({"until": {"$lte": _utc(int(self.clock()))}}).deleted_count

    # ---- the rest of the Storage interface

    def check(self) -> bool:
        try:
            mongo.ping(self.collection.database.client)
        except PyMongoError:
            return False
        return True

    def reset(self) -> int | None:
        with self._lock:
            self._last.clear()
            self._own.clear()
        return self.collection.delete_many({}).deleted_count

    def clear(self, key: str) -> None:
        """Forget the current window of `key` (its slots are deleted; the window starts over)."""
        limit, seconds = limit_of(key)
        window = f"{key}|{window_start(self.clock(), seconds)}"
        with self._lock:
            self._last.pop(window, None)
        ids = [f"{window}|{slot}" for slot in range(1, limit + 2)]
        mongo.bulk_update(self.collection, [DeleteOne({"_id": doc_id}) for doc_id in ids])


def _utc(epoch_s: int) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)
