"""Which open work orders each area holds, so a staff member's list reads only their own orders.

FerretDB v1 scans the whole collection for any filter but an exact `_id`, and `open_orders` holds every
unfinished order of the county: a grid leader's list that filtered it read ~4,000 orders to show five.
So each area a list is asked for by (the assignee's, the village's, the town's) has its own aggregate
in the `area_index` store, split into a few shards by petition id so a busy town's document stays
small, holding the ids of its orders with their sort key (assigned_at). Like every aggregate it
changes by commits (unique inserts: concurrent writers retry, none is lost), never in place.

Every commit of a work order passes its areas here, and a busy town's shard holds ~150 orders in the
year's backlog, so the shard's cost is routing's largest item (bench/RESULTS.md): a shard is stored as
two lists of strings, ids `p` and sort keys `at` (BSON decodes them ~3× faster than one small document
per order, the format written before 2026-12-07, which is still read), and the writer keeps each
shard's orders decoded, for the version its store remembers, so a move that changes nothing costs a
look-up instead of a decode and a comparison of the whole shard.

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


def orders_of(state: dict[str, Any] | None) -> dict[str, str]:
    """{petition_id: sort key} of a shard's state, in either format."""
    if not state:
        return {}
    if "orders" in state:  # one document per order, written before 2026-12-07
        return {entry["p"]: entry["at"] for entry in state["orders"]}
    return dict(zip(state["p"], state["at"], strict=True))


def shard_state(orders: dict[str, str]) -> dict[str, list[str]]:
    return {"p": list(orders), "at": list(orders.values())}


@dataclass
class ShardChange:
    add: dict[str, str] = field(default_factory=dict)
    remove: set[str] = field(default_factory=set)

    def applied_to(self, orders: dict[str, str]) -> dict[str, str]:
        """The shard's orders after the change, or `orders` itself when it changes nothing (an order
        both added and removed by one batch of moves stays: its newest version lists it here)."""
        if all(orders.get(pid) == at for pid, at in self.add.items()) and not any(
            pid in orders and pid not in self.add for pid in self.remove
        ):
            return orders
        changed = dict(orders)  # a copy in C, then a few changes: a town's shard holds ~150 orders
        for pid in self.remove:
            changed.pop(pid, None)
        changed.update(self.add)
        return changed


class AreaIndex:
    def __init__(self, store: AggregateStore, meta: Collection, loader: Executor | None = None):
        self.store = store
        self.meta = meta
        # reads an area's shards at once: each is a read or two, and a town has eight
        self._map = loader.map if loader is not None else map
        # shard id -> (its version, its orders decoded), valid while the store remembers that version;
        # at most one entry per shard (a few thousand areas), replaced whole, never changed in place
        self._decoded: dict[str, tuple[Loaded, dict[str, str]]] = {}

    def members(self, key: str) -> dict[str, str]:
        """{petition_id: sort key} of the orders listed for an area (may include some it no longer holds)."""
        out: dict[str, str] = {}
        for shard in self._map(self.store.load, shard_ids(key)):
            out.update(orders_of(shard.state))
        return out

    def _to_write(self, shard: str) -> tuple[Loaded, dict[str, str]]:
        """The version of a shard to build on (as `AggregateStore.load_to_write`) and its orders."""
        decoded = self._decoded.get(shard)
        if decoded is not None and decoded[0].seq == self.store.remembered_seq(shard):
            return decoded
        loaded = self.store.load_to_write(shard)
        decoded = (loaded, orders_of(loaded.state))
        self._decoded[shard] = decoded
        return decoded

    def apply(self, moves: Iterable[Move]) -> None:
        """Record the moves: one commit per changed shard, all shards in one insert; a shard another
        writer changed first is re-read and retried. Moves that change nothing write nothing."""
        pending: dict[str, ShardChange] = {}
        for move in moves:
            for key in move.add:
                pending.setdefault(shard_of(key, move.petition_id), ShardChange()).add[move.petition_id] = move.sort_key
            for key in move.remove:
                pending.setdefault(shard_of(key, move.petition_id), ShardChange()).remove.add(move.petition_id)
        for _ in range(MAX_CONFLICT_RETRIES):
            items: list[tuple[Loaded, dict[str, Any], tuple[()]]] = []
            new_orders: dict[str, dict[str, str]] = {}
            for shard, change in pending.items():
                loaded, orders = self._to_write(shard)
                changed = change.applied_to(orders)
                if changed is not orders:
                    items.append((loaded, shard_state(changed), ()))
                    new_orders[shard] = changed
            batch = commit_batch(self.store, items)
            for (_, state, _), commit in batch.committed:
                self._decoded[commit.aggregate_id] = (
                    Loaded(commit.aggregate_id, commit.seq, state),
                    new_orders[commit.aggregate_id],
                )
            pending = {shard: pending[shard] for shard in batch.lost_ids}
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
            for pid in orders_of(self.store.load(shard).state):
                order = load(pid)
                # an order created since the scan is not in `listed`, but it is not finished either
                gone = order is None or (pid not in listed and (order.closed_at or order.withdrawn_at))
                if gone or key not in area_keys(order):  # type: ignore[arg-type]
                    stale.append(Move(pid, "", frozenset(), frozenset({key})))
        self.apply(stale)
        with contextlib.suppress(DuplicateKeyError):  # another instance built it too
            self.meta.insert_one({"_id": BUILT_ID})
        return indexed
