"""Which open work orders each area holds, so a staff member's list reads only their own orders.

FerretDB v1 scans the whole collection for any filter but an exact `_id`, and `open_orders` holds every
unfinished order of the county: a grid leader's list that filtered it read ~4,000 orders to show five.
So each area a list is asked for by (the assignee's, the village's, the town's) has its own aggregate
in the `area_index` store, split into a few shards by petition id so a busy town's document stays
small, holding the ids of its orders with their sort key (assigned_at). Like every aggregate it
changes by commits (unique inserts: concurrent writers retry, none is lost), never in place.

It is a hint that may hold too much, never too little: a writer adds an order to its new areas and
takes it out of its old ones after committing the order, then re-checks whether the order moved on
meanwhile (as the open_orders projection does); a reader loads every listed order and keeps only what
the caller may see. A redelivered event re-adds its order. A missing index (a database from before it
existed) is built from open_orders at startup; `python -m services.routing.reindex` repairs one.
"""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from pymongo.collection import Collection
from pymongo.errors import DuplicateKeyError

from petition_common.aggregates import commit_batch
from petition_common.store import AggregateStore, Conflict, Loaded
from petition_kernel.times import format_time
from services.routing import domain

MAX_CONFLICT_RETRIES = 16
# shards per kind of area: a town has hundreds of open orders, a grid leader a handful
SHARDS = {"assignee": 2, "village": 2, "town": 8, "triage": 4}
# the orders in the dispatch centre's triage queue: no grid yet (routing found none)
TRIAGE = "triage:county"
BUILT_ID = "built"


def area_keys(order: domain.WorkOrder) -> set[str]:
    """The areas whose lists show this order: its assignee's, its village's and town's if it has them,
    and the triage queue's while it has no grid."""
    a = order.assignment
    keys = {f"assignee:{a.assignee.staff_id}"} | ({TRIAGE} if a.grid_id is None else set())
    if a.village_id:
        keys.add(f"village:{a.village_id}")
    if a.town_id:
        keys.add(f"town:{a.town_id}")
    return keys


def shard_ids(key: str) -> list[str]:
    return [f"{key}#{n}" for n in range(SHARDS[key.split(":", 1)[0]])]


def shard_of(key: str, petition_id: str) -> str:
    return f"{key}#{zlib.crc32(petition_id.encode()) % SHARDS[key.split(':', 1)[0]]}"


@dataclass(frozen=True)
class Move:
    """An order's new areas (with its sort key) and the areas it has left."""

    petition_id: str
    sort_key: str
    add: frozenset[str]
    remove: frozenset[str]

    @classmethod
    def of(cls, order: domain.WorkOrder, before: domain.WorkOrder | None = None) -> Move:
        now = area_keys(order)
        left = area_keys(before) - now if before is not None else set()
        return cls(order.petition_id, format_time(order.assigned_at), frozenset(now), frozenset(left))

    @classmethod
    def leaving(cls, order: domain.WorkOrder) -> Move:
        """The order leaves every list (it left open_orders)."""
        return cls(order.petition_id, "", frozenset(), frozenset(area_keys(order)))


@dataclass
class _ShardChange:
    add: dict[str, str] = field(default_factory=dict)
    remove: set[str] = field(default_factory=set)

    def applied_to(self, entries: list[dict[str, str]]) -> list[dict[str, str]]:
        kept = [e for e in entries if e["p"] not in self.remove and e["p"] not in self.add]
        return kept + [{"p": pid, "at": at} for pid, at in sorted(self.add.items())]


class AreaIndex:
    def __init__(self, store: AggregateStore, meta: Collection, loader: Executor | None = None):
        self.store = store
        self.meta = meta
        # reads an area's shards at once: each is a read or two, and a town has eight
        self._map = loader.map if loader is not None else map

    def members(self, key: str) -> dict[str, str]:
        """{petition_id: sort key} of the orders listed for an area (may include some it no longer holds)."""
        out: dict[str, str] = {}
        for shard in self._map(self.store.load, shard_ids(key)):
            for entry in (shard.state or {}).get("orders", []):
                out[entry["p"]] = entry["at"]
        return out

    def apply(self, moves: Iterable[Move]) -> None:
        """Record the moves: one commit per changed shard, all shards in one insert; a shard another
        writer changed first is re-read and retried. Moves that change nothing write nothing."""
        pending: dict[str, _ShardChange] = {}
        for move in moves:
            for key in move.add:
                pending.setdefault(shard_of(key, move.petition_id), _ShardChange()).add[move.petition_id] = (
                    move.sort_key
                )
            for key in move.remove:
                pending.setdefault(shard_of(key, move.petition_id), _ShardChange()).remove.add(move.petition_id)
        for _ in range(MAX_CONFLICT_RETRIES):
            items: list[tuple[Loaded, dict[str, Any], tuple[()]]] = []
            for shard, change in pending.items():
                loaded = self.store.load_to_write(shard)
                entries = (loaded.state or {}).get("orders", [])
                changed = change.applied_to(entries)
                if sorted(changed, key=_entry_key) != sorted(entries, key=_entry_key):
                    items.append((loaded, {"orders": changed}, ()))
            pending = {shard: pending[shard] for shard in commit_batch(self.store, items).lost_ids}
            if not pending:
                return
        raise Conflict(next(iter(pending)))

    # ---- building and repairing

    def is_built(self) -> bool:
        return self.meta.find_one({"_id": BUILT_ID}) is not None

    def rebuild(self, open_ids: Iterable[str], load: Callable[[str], domain.WorkOrder | None], batch: int = 200) -> int:
        """Add every order of open_orders to its areas, then drop entries whose order has moved or has
        finished and left open_orders; safe while routing runs (live writers only add what this adds,
        or take out what has left). Returns how many orders were indexed."""
        indexed = 0
        moves: list[Move] = []
        listed = set(open_ids)
        for pid in listed:
            order = load(pid)
            if order is not None:
                moves.append(Move.of(order))
                indexed += 1
            if len(moves) >= batch:
                self.apply(moves)
                moves = []
        self.apply(moves)
        stale: list[Move] = []
        for shard in sorted({d["aggregate_id"] for d in self.store.commits.find({}, {"aggregate_id": 1})}):
            key = shard.rsplit("#", 1)[0]
            for entry in (self.store.load(shard).state or {}).get("orders", []):
                order = load(entry["p"])
                # an order created since the scan is not in `listed`, but it is not finished either
                gone = order is None or (entry["p"] not in listed and (order.closed_at or order.withdrawn_at))
                if gone or key not in area_keys(order):  # type: ignore[arg-type]
                    stale.append(Move(entry["p"], "", frozenset(), frozenset({key})))
        self.apply(stale)
        with contextlib.suppress(DuplicateKeyError):  # another instance built it too
            self.meta.insert_one({"_id": BUILT_ID})
        return indexed


def _entry_key(entry: dict[str, str]) -> tuple[str, str]:
    return entry["p"], entry["at"]
