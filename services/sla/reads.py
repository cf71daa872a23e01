"""Reads a staff page makes many of: several petitions' clocks in one call, and the overdue list
without a full read of `open_clocks` per request.

- `GET /v1/sla/petitions?ids=A,B,...` (`ClockReader`): a grid leader's queue needs the running clock
  of every open order; one HTTP call per order made the page 20-90 calls. The batch takes each record
  as `SlaService.read_record` does: the one remembered when this instance is the petition's only writer
  (it owns the petition's partitions), else read by `_id` (FerretDB v1 scans the whole collection for
  `{_id: {$in: ...}}`), a few at a time. It keeps only what the one access rule lets the caller
  read; an unknown or unreadable id is simply absent, as the single read answers 404 for both. The
  items are the single read's view without `notices` (up to eight more point reads per petition;
  read one petition for them).
- `GET /v1/sla/overdue` (`OverdueSnapshot`): the list needs every open clock of the county, and
  `open_clocks` can only be read whole. So each instance keeps the documents that are overdue, or will
  be within the snapshot's life, from its last whole read, and answers from them, computing levels
  and overdue seconds for the request's `now`. A read older than `refresh_s` is renewed in the
  background while the current one is served; one older than `max_age_s` (by the wall clock or the
  service's clock, which tests move) is renewed before answering. The page says when its clocks were
  read (`clocks_read_at`). Every instance reads the shared collection, so several instances each lag
  by at most `max_age_s`; docs/sla.md has the freshness rule.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.collection import Collection

from petition_common.auth import Staff
from petition_common.timesource import Clock
from petition_kernel import petition_ids
from petition_kernel.access import Area, may_read
from petition_kernel.sla.record import SlaRecord
from petition_kernel.times import format_time, parse_time
from services.sla.domain.overdue_list import OverdueFilter, overdue_items, page
from services.sla.domain.petition_clocks import petition_view
from services.sla.service import SlaService

log = logging.getLogger(__name__)

MAX_IDS = 100
LOAD_THREADS = 8


# -- several petitions' clocks ---------------------------------------------------------------------


def parse_ids(raw: str | None) -> tuple[list[str], str | None]:
    """The distinct ids of an `ids` parameter in their order, or the field error that refuses it."""
    return petition_ids.parse_ids(raw, MAX_IDS)


def ids_param(values: list[str]) -> tuple[list[str], str | None]:
    """The same for every occurrence of `ids` in a query (it must be given once)."""
    return petition_ids.ids_param(values, MAX_IDS)


def readable_views(
    records: Iterable[SlaRecord], staff: Staff, view: Callable[[SlaRecord], dict[str, Any]]
) -> list[dict[str, Any]]:
    """The views of the records the one access rule lets `staff` read, in the records' order."""
    return [_without_notices(view(r)) for r in records if may_read(staff, Area(grid_id=r.grid_id))]


def _without_notices(view: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in view.items() if k != "notices"}


class ClockReader:
    """`GET /v1/sla/petitions?ids=...` over the service's `clocks` store."""

    def __init__(self, service: SlaService, threads: int = LOAD_THREADS):
        self.service = service
        self._loader = ThreadPoolExecutor(threads, thread_name_prefix="sla-batch-read")

    def petitions(self, ids: list[str], staff: Staff) -> dict[str, Any]:
        service = self.service
        loaded = list(self._loader.map(service.read_record, ids))
        records = [SlaRecord.from_dict(x.state) for x in loaded if x.state is not None]
        now = service.clock()
        config = service.config  # taken once: a calendar reload replaces it
        items = readable_views(records, staff, lambda r: petition_view(r, now, config.policy, config.calendar, []))
        return {"items": items, "as_of": format_time(now)}


# -- the overdue list from a snapshot ---------------------------------------------------------------


def earliest_deadline(doc: Mapping[str, Any]) -> datetime | None:
    """The earliest deadline of an open_clocks document's clocks: before it, none of them is overdue."""
    deadlines = [parse_time(c["deadline"]) for c in doc.get("clocks", [])]
    return min(deadlines, default=None)


@dataclass(frozen=True)
class Snapshot:
    """The documents of one whole read that may be overdue before `until`, by earliest deadline."""

    read_mono: float
    read_at: datetime  # the service's clock when the read started
    deadlines: list[datetime]
    docs: list[dict[str, Any]]

    @classmethod
    def of(cls, docs: Iterable[dict[str, Any]], read_mono: float, read_at: datetime, until: datetime) -> Snapshot:
        kept = sorted(
            ((d, doc) for doc in docs if (d := earliest_deadline(doc)) is not None and d <= until),
            key=lambda pair: pair[0],
        )
        return cls(read_mono, read_at, [d for d, _ in kept], [doc for _, doc in kept])

    def overdue_by(self, now: datetime) -> list[dict[str, Any]]:
        """The documents with a clock whose deadline has passed at `now`."""
        return self.docs[: bisect.bisect_right(self.deadlines, now)]

    def age_s(self, mono: float, now: datetime) -> float:
        """Seconds since the read, by the wall clock or the service's clock, whichever says more
        (a clock moved backwards makes the read unusable: infinitely old)."""
        moved = (now - self.read_at).total_seconds()
        return max(mono - self.read_mono, moved) if moved >= 0 else float("inf")


def _in_background(job: Callable[[], None]) -> None:
    threading.Thread(target=job, name="sla-overdue-read", daemon=True).start()


# what the list needs of a document (the rest is the scanner's)
FIELDS = {"_id": 1, "grid_id": 1, "town": 1, "category": 1, "clocks": 1}


class OverdueSnapshot:
    """The overdue list's view of `open_clocks`, read whole at most every `refresh_s` while asked for."""

    def __init__(
        self,
        open_clocks: Collection,
        clock: Clock,
        refresh_s: float = 5.0,
        max_age_s: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
        spawn: Callable[[Callable[[], None]], None] = _in_background,
    ):
        self.open_clocks = open_clocks
        self.clock = clock
        self.refresh_s = refresh_s
        self.max_age_s = max_age_s
        self.monotonic = monotonic
        self.spawn = spawn
        self._current: Snapshot | None = None
        self._reading = threading.Lock()  # one whole read at a time per instance

    def current(self) -> Snapshot:
        """A snapshot at most `max_age_s` old; starts a renewal once it is `refresh_s` old."""
        snap = self._current
        if snap is not None:
            age = snap.age_s(self.monotonic(), self.clock())
            if age <= self.max_age_s:
                if age > self.refresh_s and self._reading.acquire(blocking=False):
                    self.spawn(self._renew_locked)
                return snap
        with self._reading:  # too old or none: wait for a read (one, if several requests wait)
            snap = self._current
            if snap is None or snap.age_s(self.monotonic(), self.clock()) > self.max_age_s:
                snap = self._read()
            return snap

    def _renew_locked(self) -> None:
        try:
            self._read()
        except Exception:  # the next request retries; it waits only once the snapshot is too old
            log.warning("reading open_clocks for the overdue list failed", exc_info=True)
        finally:
            self._reading.release()

    def _read(self) -> Snapshot:
        mono, read_at = self.monotonic(), self.clock()
        # keeps what can be overdue while this read may be served, with a margin for the read itself
        until = read_at + timedelta(seconds=2 * self.max_age_s)
        snap = Snapshot.of(self.open_clocks.find({}, FIELDS), mono, read_at, until)
        self._current = snap
        return snap

    def overdue(
        self, staff: Staff, flt: OverdueFilter, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None, datetime, datetime]:
        """One page of the overdue clocks `staff` may see, `now`, and when the clocks were read."""
        snap = self.current()
        now = self.clock()
        items = overdue_items(snap.overdue_by(now), now, staff, flt)
        chunk, next_cursor = page(items, limit, cursor)
        return chunk, next_cursor, now, snap.read_at
