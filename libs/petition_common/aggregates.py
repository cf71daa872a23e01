"""The control flow every writer of an aggregate store repeats, written once.

- `retry_on_conflict`: a use case that loads, decides and commits runs again on fresh state when
  another writer committed the same version first (store.py: the unique insert is the check).
- `act_on_remembered`: the same for an HTTP action that starts from the version the instance
  remembers and asks the database again only when the action was refused.
- `commit_batch`: a consumer's poll batch commits each aggregate's next version in one insert; an
  aggregate whose commit lost a race is handed back, and the caller replays its events one by one.
- `Projection`: a read model of one aggregate store (open work orders, open clocks), written without
  reading it first and checked afterwards: a writer that finds a newer version committed meanwhile
  projects that one, so the last write is always of the newest version. A version may instead be
  projected before it is committed, which needs no check (`Projection.put_before_commit`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pymongo import DeleteOne, ReplaceOne
from pymongo.collection import Collection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from petition_common.envelope import Event
from petition_common.mongo import bulk_update
from petition_common.store import AggregateStore, Commit, Conflict, Loaded

T = TypeVar("T")

# a lost race means another writer was first; losing this many in a row means something keeps
# writing the aggregate, and the caller (HTTP: 503 + Retry-After; consumer: its retries) backs off
MAX_CONFLICT_RETRIES = 8

Item = tuple[Loaded, dict[str, Any], Sequence[Event]]


def retry_on_conflict(attempt: Callable[[], T], aggregate_id: str, attempts: int = MAX_CONFLICT_RETRIES) -> T:
    """`attempt()` (load, decide, commit), again while it raises Conflict; Conflict(aggregate_id) after
    `attempts` lost races. `attempt` must load afresh each time: the store forgot the state it lost on."""
    for _ in range(attempts):
        try:
            return attempt()
        except Conflict:
            continue
    raise Conflict(aggregate_id)


def act_on_remembered(attempt: Callable[[bool], T], refusals: tuple[type[Exception], ...], aggregate_id: str) -> T:
    """`attempt(to_write)` under `retry_on_conflict`: first on the version this instance remembers
    (`to_write=True`: no read of the database, the commit checks it is the newest), then, if that
    raised one of `refusals`, once more on the newest version (`to_write=False`), because a refusal
    must hold for the newest and not for a version another instance has since moved on from."""

    def act() -> T:
        try:
            return attempt(True)
        except refusals:
            return attempt(False)

    return retry_on_conflict(act, aggregate_id)


@dataclass
class Batch:
    """What `commit_batch` did: the items committed (with their commits) and those that lost a race."""

    committed: list[tuple[Item, Commit]] = field(default_factory=list)
    lost: list[Item] = field(default_factory=list)

    @property
    def lost_ids(self) -> list[str]:
        return [loaded.aggregate_id for loaded, _, _ in self.lost]


def commit_batch(store: AggregateStore, items: Sequence[Item]) -> Batch:
    """Commit several aggregates' next versions at once (`AggregateStore.commit_many`), in order."""
    batch = Batch()
    if not items:
        return batch
    for item, result in zip(items, store.commit_many(items), strict=True):
        if isinstance(result, Conflict):
            batch.lost.append(item)
        else:
            batch.committed.append((item, result))
    return batch


class Projection:
    """One document per aggregate in `collection`, the projection of version `seq` (or none).

    Written without reading first: nearly every change changes it, and a point read costs FerretDB
    as much as the write it would save. Two writers of different versions may race; each checks for
    a newer version after writing, and the caller projects the newer one (its write comes last).
    """

    def __init__(self, collection: Collection, store: AggregateStore):
        self.collection = collection
        self.store = store

    def put(
        self, aggregate_id: str, seq: int, doc: dict[str, Any] | None, sole: Callable[[], bool] | None = None
    ) -> bool:
        """Write (or, for None, remove) the document of version `seq`; True if a newer version was
        committed meanwhile, which the caller must then project. `sole`, asked after the write: True
        when the caller was the aggregate's only writer all along (petition_common.ownership), so
        nothing newer can exist and the check is skipped."""
        if doc is None:
            self.collection.delete_one({"_id": aggregate_id})
        else:
            try:
                self.collection.replace_one({"_id": aggregate_id}, doc, upsert=True)
            except DuplicateKeyError:  # two upserts raced to insert; ours is at least as new as theirs
                self.collection.replace_one({"_id": aggregate_id}, doc, upsert=True)
        if sole is not None and sole():
            return False
        return self.newer_exists(aggregate_id, seq)

    def put_many(
        self, items: Sequence[tuple[str, int, dict[str, Any] | None]], sole: Callable[[str], bool] | None = None
    ) -> list[str]:
        """`put` for several aggregates in one bulk write (one by one when two upserts raced, as
        FerretDB may then leave statements of the bulk unapplied); the ids with newer versions.
        `sole(aggregate_id)` as in `put`."""
        if not items:
            return []
        ops = [
            DeleteOne({"_id": aid}) if doc is None else ReplaceOne({"_id": aid}, doc, upsert=True)
            for aid, _, doc in items
        ]
        try:
            bulk_update(self.collection, ops)
        except BulkWriteError:
            return [aid for aid, seq, doc in items if self.put(aid, seq, doc, _bound(sole, aid))]
        return [aid for aid, seq, _ in items if not (sole is not None and sole(aid)) and self.newer_exists(aid, seq)]

    def put_before_commit(self, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Write the documents of versions BEFORE committing them, and check nothing.

        No writer can build on a version that is not committed yet, so the next version's document is
        written after this one is acknowledged and cannot be overtaken by it. A writer whose commit
        then fails (another writer was first, or the database failed) may have left the document of a
        version that does not exist, over a newer one: it must `put` the newest version, with the
        check, or remove the document if the aggregate does not exist."""
        if not items:
            return
        try:
            bulk_update(self.collection, [ReplaceOne({"_id": aid}, doc, upsert=True) for aid, doc in items])
        except BulkWriteError:  # two upserts raced to insert (see put_many)
            for aid, doc in items:
                self.put(aid, 0, doc, sole=lambda: True)

    def newer_exists(self, aggregate_id: str, seq: int) -> bool:
        return self.store.latest_seq(aggregate_id) > seq


def _bound(sole: Callable[[str], bool] | None, aggregate_id: str) -> Callable[[], bool] | None:
    return None if sole is None else lambda: sole(aggregate_id)
