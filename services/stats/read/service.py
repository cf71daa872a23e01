"""Stats' use cases: answering queries from the read model, listing alerts, reporting progress.

The read model every instance answers from is built from the checkpoints of all partitions (not
only those it owns): `TableLoader.refresh` reads each partition's newest checkpoint (one or two
point reads when nothing changed), loads the cells blocks it has not seen, and swaps in a new
table. Queries never touch the database.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pymongo.database import Database

from petition_common.auth import Staff
from petition_kernel.access import READ_EVERYTHING, Area, may_read
from petition_kernel.times import format_time, parse_time
from services.stats.domain.periods import day_start
from services.stats.generations import Generations
from services.stats.metrics import StatsMetrics
from services.stats.read.params import AlertQuery, StatsQuery, encode_cursor
from services.stats.read.queries import Queries
from services.stats.read.table import Chunk, Dictionary, Table
from services.stats.write.alerts import AlertLog
from services.stats.write.checkpoints import HOTSPOTS_TASK, Checkpoint, CheckpointStore, namespace, partition_task
from services.stats.write.partition_state import CELLS, decode_cells_raw

log = logging.getLogger(__name__)


class TableLoader:
    """Keeps `table` in step with the newest checkpoints of every partition."""

    def __init__(
        self,
        db: Database,
        generations: Generations,
        partitions: Callable[[], int],
        metrics: StatsMetrics | None = None,
    ):
        self.db = db
        self.generations = generations
        self.partitions = partitions
        self.metrics = metrics
        self.dictionary = Dictionary()
        self.table = Table.build([], self.dictionary)
        self.generation: int | None = None
        self.heads: dict[int, Checkpoint] = {}
        self.hotspots_head: Checkpoint | None = None
        self._chunks: dict[str, Chunk] = {}
        self._stores: dict[str, CheckpointStore] = {}
        self._lock = threading.Lock()

    def _store(self, ns: str) -> CheckpointStore:
        if ns not in self._stores:
            self._stores[ns] = CheckpointStore(self.db, ns)
        return self._stores[ns]

    def refresh(self) -> bool:
        """Load what changed since the last call; True if the table was rebuilt."""
        with self._lock:
            started = time.perf_counter()
            generation = self.generations.current()
            if generation != self.generation:
                self.generation, self.heads, self._stores = generation, {}, {}
                changed = True
            else:
                changed = False
            hotspots = self._store(namespace(generation, HOTSPOTS_TASK))
            if self.hotspots_head is None or changed:
                self.hotspots_head = hotspots.latest()
            else:
                seq = hotspots.latest_seq()
                if seq != self.hotspots_head.seq:
                    self.hotspots_head = _newest(hotspots, seq)
            for p in range(self.partitions()):
                store = self._store(namespace(generation, partition_task(p)))
                old = self.heads.get(p)
                seq = store.latest_seq()
                if old is not None and seq == old.seq:
                    continue  # nothing new: two reads of ids, no document body
                head = _newest(store, seq)
                if head is None or (old is not None and old.seq == head.seq):
                    continue
                for name, block_id in head.manifest.items():
                    if name.startswith(CELLS) and block_id not in self._chunks:
                        blob = store.read_block(block_id)
                        if blob is None:
                            break  # replaced since we read the head: try again on the next refresh
                        keys, values = decode_cells_raw(blob)
                        self._chunks[block_id] = Chunk.decode(keys, values, self.dictionary)
                else:
                    self.heads[p] = head
                    changed = True
            if changed:
                live = sorted(b for h in self.heads.values() for n, b in h.manifest.items() if n.startswith(CELLS))
                self._chunks = {b: self._chunks[b] for b in live if b in self._chunks}
                self.table = Table.build([self._chunks[b] for b in live if b in self._chunks], self.dictionary)
                if self.metrics is not None:
                    self.metrics.table_rows.set(self.table.rows)
                    self.metrics.table_refresh_seconds.observe(time.perf_counter() - started)
            return changed


def _newest(store: CheckpointStore, seq: int) -> Checkpoint | None:
    """The head `latest_seq` has just found, without looking for it again; if a collector deleted it
    meanwhile, the head found afresh."""
    return store.at(seq) or store.latest()


@dataclass
class StatsService:
    loader: TableLoader
    alert_log: AlertLog
    category_names: Mapping[str, str]

    def _queries(self) -> Queries:
        return Queries(self.loader.table, self.category_names)

    @staticmethod
    def _scope(staff: Staff) -> Callable[[str | None], bool] | None:
        if staff.role in READ_EVERYTHING:
            return None
        return lambda grid_id: may_read(staff, Area(grid_id=grid_id))

    def summary(self, q: StatsQuery, staff: Staff) -> dict[str, Any]:
        return self._queries().summary(q, self._scope(staff))

    def breakdown(self, q: StatsQuery, staff: Staff) -> dict[str, Any]:
        return self._queries().breakdown(q, self._scope(staff))

    def timeseries(self, q: StatsQuery, staff: Staff) -> dict[str, Any]:
        return self._queries().timeseries(q, self._scope(staff))

    def ranking(self, q: StatsQuery, staff: Staff) -> dict[str, Any]:
        return self._queries().ranking(q, self._scope(staff))

    def alerts(self, q: AlertQuery, staff: Staff) -> dict[str, Any]:
        f = q.filters
        start = format_time(day_start(f.first_day)) if f.first_day is not None else None
        end = format_time(day_start(f.end_day)) if f.end_day is not None else None
        items = []
        for record in self.alert_log.all():
            alert = record["alert"]
            ends = alert["window_end"]
            if start is not None and parse_time(ends) < parse_time(start):
                continue
            if end is not None and parse_time(ends) >= parse_time(end):
                continue
            if q.kind and alert["kind"] != q.kind:
                continue
            if q.area_level and alert["area"]["level"] != q.area_level:
                continue
            if f.town and alert.get("town") != f.town:
                continue
            if f.category and alert["category"] != f.category:
                continue
            if staff.role not in READ_EVERYTHING and not may_read(staff, Area(grid_id=record.get("scope_grid"))):
                continue
            if q.cursor is not None and (ends, alert["alert_id"]) >= q.cursor:
                continue
            items.append(alert)
            if len(items) > q.limit:
                break
        page, more = items[: q.limit], len(items) > q.limit
        next_cursor = encode_cursor(page[-1]["window_end"], page[-1]["alert_id"]) if more else None
        return {"items": page, "next_cursor": next_cursor}

    def status(self) -> dict[str, Any]:
        loader = self.loader

        def head(h: Checkpoint | None) -> dict[str, Any] | None:
            if h is None:
                return None
            return {"seq": h.seq, "at": format_time(h.at) if h.at else None, "offsets": h.offsets}

        return {
            "generation": loader.generation,
            "partitions": {str(p): head(h) for p, h in sorted(loader.heads.items())},
            "hotspots": head(loader.hotspots_head),
            "table_rows": loader.table.rows,
        }
