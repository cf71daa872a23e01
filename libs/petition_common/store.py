"""Aggregates stored as a chain of commits, with a transactional outbox, on unique inserts only.

Why this shape (docs/reliability.md has the full argument): FerretDB v1 has no transactions and
its in-place updates are not atomic across connections, but an insert whose `_id` exists fails
atomically everywhere. So every change of an aggregate (a petition, a work order, an SLA record)
is the INSERT of one commit document `{_id: "<aggregate id>:<seq>"}` holding the new state and
the events to publish. Two writers that read the same version both try to insert seq n+1;
exactly one succeeds, the other gets `Conflict` and retries on fresh state. The insert of the
commit is the commit point: the state change and its events are durable together or not at all.

Collections (per store name `x`):
- `x_commits`: the commits, never updated; `_id` = f"{aggregate_id}:{seq:06d}". A commit with
  `void: True` is a placeholder the relay wrote for a writer that died between its outbox
  marker and its commit; it changes nothing.
  Reading an aggregate finds its newest commit by point reads (`_id` lookups are the only
  indexed reads in FerretDB v1, and its in-place updates are not atomic, so commits are
  insert-only).
- `outbox`: one marker per commit that has events not yet acknowledged by Kafka, inserted
  BEFORE the commit and deleted after the broker acknowledged the events. It holds only
  pending work, so the relay can scan it.

Ordering: before publishing commit n, `flush` publishes every older commit of the aggregate that
still has a marker. A marker is deleted only after its events were acknowledged, so "no marker
for n-1" means n-1 and everything before it reached Kafka: events of one aggregate reach the
topic in commit order. The producer is idempotent, and a crash between the acknowledgement and
the marker delete republishes the same event ids, which consumers de-duplicate.

Round trips (each one costs FerretDB more CPU than the work behind it): a store remembers, per
aggregate, the newest commit it saw with its state, and the newest commit whose events it published.
`load` then needs one point read (does commit n+1 exist?) instead of two, and publishing commit n
skips the look-up of marker n-1 when this store published n-1 itself or wrote it without events.
`load` trusts these memories only after that existence probe, so a reader never misses another
writer's commit. A writer needs no probe at all (`load_to_write`): the unique insert of its commit
is the check. If another writer was first, the insert fails, the store forgets the state it
remembered, and the retry reads afresh. Commits of other threads that arrive while one is being
written wait and are written together next, by `commit_many` (group_commit.py).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import bson
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError, PyMongoError

from petition_common.envelope import Event
from petition_common.group_commit import GroupCommit, rounds
from petition_common.mongo import insert_new
from petition_kernel.times import utc_now

log = logging.getLogger(__name__)


class Publisher(Protocol):
    def publish(self, events: Sequence[Event], force: bool = False) -> None: ...


class Conflict(Exception):
    """Another writer committed this version first; reload and try again."""


# a change to commit: the version it builds on, the new state, its events
Item = tuple["Loaded", dict[str, Any], Sequence[Event]]


def commit_id(aggregate_id: str, seq: int) -> str:
    return f"{aggregate_id}:{seq:06d}"


@dataclass
class Loaded:
    aggregate_id: str
    seq: int  # 0 = does not exist yet
    state: dict[str, Any] | None

    @property
    def exists(self) -> bool:
        return self.state is not None


@dataclass
class Commit:
    aggregate_id: str
    seq: int
    state: dict[str, Any]
    events: list[Event] = field(default_factory=list)


def _event_doc(event: Event) -> dict[str, Any]:
    return {"key": event.message_key, "body": event.to_dict()}


def _event_from_doc(doc: dict[str, Any]) -> Event:
    return Event.from_dict(doc["body"], key=doc["key"])


# how long the flusher keeps the markers of what it published before deleting them, with others
MARKER_LINGER_S = 0.1


class _Recent:
    """A bounded map that forgets the least recently written key first; safe across threads
    (request threads, the consumer and the flusher share a store)."""

    def __init__(self, capacity: int):
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        return self._items.get(key, default)

    def put(self, key: str, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            if len(self._items) > self._capacity:
                self._items.popitem(last=False)

    def forget(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class AggregateStore:
    def __init__(
        self,
        db: Database,
        name: str,
        publisher: Publisher | None = None,
        validate: Callable[[Event], None] | None = None,
        flusher: Flusher | None = None,
        hint_capacity: int = 200_000,
        state_capacity: int = 20_000,
    ):
        self.name = name
        self._validate = validate
        self._flusher = flusher
        self.commits = db[f"{name}_commits"]
        self.outbox = db["outbox"]
        self._publisher = publisher
        # newest commit number seen per aggregate, a lower bound that saves the search in load()
        self._hints = _Recent(hint_capacity)
        # the newest commit's (seq, state as BSON), decoded afresh on every load (callers may mutate
        # it), so a remembered state is exactly what a read from the database would have returned
        self._states = _Recent(state_capacity)
        # newest commit of each aggregate whose events this store published and whose marker it deleted
        self._published = _Recent(hint_capacity)
        # commits of other threads that arrive while one is being written are written with the next group
        self.group: GroupCommit[Item, Commit] = GroupCommit(self._commit_group)

    # ---- reading

    def _exists(self, aggregate_id: str, seq: int) -> bool:
        return self.commits.find_one({"_id": commit_id(aggregate_id, seq)}, {"_id": 1}) is not None

    def _latest_seq(self, aggregate_id: str) -> int:
        """The newest commit's number: forward from the hint, or by galloping when there is none.

        Commits of an aggregate are numbered 1..n without gaps, so existence is monotone and a
        doubling probe followed by a binary search finds n in about 2·log2(n) point reads.
        """
        hint = self._hints.get(aggregate_id)
        if hint is not None:
            seq = hint
            while self._exists(aggregate_id, seq + 1):
                seq += 1
            return seq
        if not self._exists(aggregate_id, 1):
            return 0
        low, high = 1, 2
        while self._exists(aggregate_id, high):
            low, high = high, high * 2
        while high - low > 1:  # commit `low` exists, commit `high` does not
            mid = (low + high) // 2
            low, high = (mid, high) if self._exists(aggregate_id, mid) else (low, mid)
        return low

    def latest_seq(self, aggregate_id: str) -> int:
        """The newest commit's number without reading its state (cheap change detection)."""
        seq = self._latest_seq(aggregate_id)
        self._remember(aggregate_id, seq)
        return seq

    def load(self, aggregate_id: str) -> Loaded:
        seq = self._latest_seq(aggregate_id)
        cached = self._states.get(aggregate_id)
        if cached is not None and cached[0] == seq and seq > 0:
            self._remember(aggregate_id, seq)
            return Loaded(aggregate_id, seq, self._decode_state(cached[1]))
        n = seq
        state = None
        while n > 0:
            doc = self.commits.find_one({"_id": commit_id(aggregate_id, n)})
            if doc is not None and not doc.get("void"):
                state = doc["state"]
                break
            n -= 1  # a void commit changes nothing: the state is the one before it
        self._remember(aggregate_id, seq)
        if state is not None:
            self._cache_state(aggregate_id, seq, state)
        return Loaded(aggregate_id, seq, state)

    def load_to_write(self, aggregate_id: str, new: bool = False) -> Loaded:
        """The state to build the next commit on: the remembered one when there is one, without
        asking the database whether it is still the newest (module docstring). `new`: the caller
        creates the aggregate (say on its "submitted" event), so when this store remembers nothing of
        it, it is taken not to exist yet, again without asking.

        For writers only: a stale state costs one Conflict and a retry, because the commit checks.
        A decision NOT to commit taken on it (say "this event was already applied") must hold for
        any newer state too; anything else needs `load`. A retry after a Conflict must not pass
        `new` again (the aggregate exists).
        """
        cached = self._states.get(aggregate_id)
        if cached is not None:
            return Loaded(aggregate_id, cached[0], self._decode_state(cached[1]))
        if new and self._hints.get(aggregate_id) is None:
            return Loaded(aggregate_id, 0, None)
        return self.load(aggregate_id)

    def remembered_seq(self, aggregate_id: str) -> int | None:
        """The version of the state `load_to_write` would return without asking the database, if this
        store remembers one: a caller that keeps its own decoded copy of version n may use it while this
        is n (a commit id is unique, so version n of an aggregate has one state)."""
        cached = self._states.get(aggregate_id)
        return cached[0] if cached is not None else None

    def forget_states(self) -> None:
        """Forget every remembered state (not the commit numbers, which only ever grow): another
        instance may have written these aggregates since (a partition moved, petition_common.ownership)."""
        self._states.clear()

    def _cache_state(self, aggregate_id: str, seq: int, state: dict[str, Any]) -> None:
        self._states.put(aggregate_id, (seq, bson.encode({"s": state}, codec_options=self.commits.codec_options)))

    def _decode_state(self, blob: bytes) -> dict[str, Any]:
        return bson.decode(blob, codec_options=self.commits.codec_options)["s"]

    def _remember(self, aggregate_id: str, seq: int) -> None:
        self._hints.put(aggregate_id, seq)

    def history(self, aggregate_id: str) -> list[dict[str, Any]]:
        """Every commit of the aggregate, oldest first (the timeline a citizen sees)."""
        out = []
        seq = 1
        while (doc := self.commits.find_one({"_id": commit_id(aggregate_id, seq)})) is not None:
            if not doc.get("void"):
                out.append(doc)
            seq += 1
        return out

    # ---- writing

    def check(self, events: Sequence[Event]) -> None:
        """Validate events as `commit` will (raises SchemaViolation), for a caller that must know before
        it writes anything else that its commit cannot fail on them."""
        if self._validate is not None:
            for event in events:
                self._validate(event)

    def commit(self, loaded: Loaded, state: dict[str, Any], events: Sequence[Event] = ()) -> Commit:
        """Commit `state` as the version after `loaded`; raises Conflict if someone was first.

        The events are durable once this returns; they are published here when the broker is
        reachable, and by the relay otherwise. Commits that arrive while another is being written
        are written together next (`_commit_group`); an event the contract refuses fails this one
        before it joins a group.
        """
        self.check(events)
        return self.group.run((loaded, state, events))  # raises the Conflict of a lost race

    def _commit_group(self, items: Sequence[Item]) -> list[Commit | BaseException]:
        """A group's commits by `commit_many`, in rounds that change each aggregate once; a database
        error fails its round and the rounds after it, not what an earlier round committed."""
        outcomes: list[Commit | BaseException | None] = [None] * len(items)
        failed: BaseException | None = None
        for round_ in rounds([loaded.aggregate_id for loaded, _, _ in items]):
            results: Sequence[Commit | BaseException] = []
            if failed is None:
                try:
                    results = self._commit_many([items[i] for i in round_])
                except BaseException as exc:
                    failed = exc
            if failed is not None:
                results = [failed] * len(round_)
            for i, result in zip(round_, results, strict=True):
                outcomes[i] = result
        return outcomes  # type: ignore[return-value]  # every index is in a round

    def commit_many(self, items: Sequence[Item]) -> list[Commit | Conflict]:
        """Commit the next version of several different aggregates, each as `commit` would, with one
        unordered insert for their markers and one for their commits instead of one per aggregate.

        Each item stands or falls on its own: the result at its index is its Commit, or the Conflict
        `commit` would have raised (another writer was first; nothing of the item remains).
        """
        for _, _, events in items:
            self.check(events)
        return self._commit_many(items)

    def _commit_many(self, items: Sequence[Item]) -> list[Commit | Conflict]:
        ids = [loaded.aggregate_id for loaded, _, _ in items]
        if len(set(ids)) != len(ids):
            raise ValueError("commit_many takes one version per aggregate")
        now = utc_now()
        cids = [commit_id(loaded.aggregate_id, loaded.seq + 1) for loaded, _, _ in items]
        conflicts: dict[int, Conflict] = {}
        marked = [i for i, (_, _, events) in enumerate(items) if events]
        markers = [
            {"_id": cids[i], "store": self.name, "aggregate_id": ids[i], "seq": items[i][0].seq + 1, "at": now}
            for i in marked
        ]
        markers_lost = {marked[k] for k in insert_new(self.outbox, markers)}
        for i in markers_lost:
            conflicts[i] = Conflict(cids[i])  # another writer is committing this very version
        todo = [i for i in range(len(items)) if i not in conflicts]
        commits = [
            {
                "_id": cids[i],
                "aggregate_id": ids[i],
                "seq": items[i][0].seq + 1,
                "at": now,
                "state": items[i][1],
                "events": [_event_doc(e) for e in items[i][2]],
                "writer": _WRITER_ID,
            }
            for i in todo
        ]
        lost = [todo[k] for k in insert_new(self.commits, commits)]
        if lost_markers := [cids[i] for i in lost if items[i][2]]:
            self.outbox.delete_many({"_id": {"$in": lost_markers}})
        for i in lost:
            conflicts[i] = Conflict(cids[i])
        results: list[Commit | Conflict] = []
        published: list[tuple[str, int]] = []
        known: dict[str, list[Event]] = {}
        for i, (loaded, state, events) in enumerate(items):
            if i in conflicts:
                self._states.forget(loaded.aggregate_id)  # a retry must read the newer version
                if i not in markers_lost:  # its commit exists: a lower bound for the retry's search
                    self._remember(loaded.aggregate_id, max(loaded.seq + 1, self._hints.get(loaded.aggregate_id, 0)))
                results.append(conflicts[i])
                continue
            seq = loaded.seq + 1
            self._remember(loaded.aggregate_id, seq)
            self._cache_state(loaded.aggregate_id, seq, state)
            if not events and self._published.get(loaded.aggregate_id, 0) >= seq - 1:
                self._published.put(loaded.aggregate_id, seq)
            results.append(Commit(loaded.aggregate_id, seq, state, list(events)))
            if events and self._publisher is not None:
                if self._flusher is not None:
                    self._flusher.submit(self, loaded.aggregate_id, seq, list(events))
                else:
                    published.append((loaded.aggregate_id, seq))
                    known[cids[i]] = list(events)
        if published:
            try:
                self.flush_many(published, known=known)
            except Exception as exc:  # the commits stand; the relay will publish
                log.warning("publish deferred to the outbox relay", extra={"store": self.name, "error": str(exc)})
        return results

    # ---- publishing

    def flush(self, aggregate_id: str, seq: int, force: bool = False) -> int:
        """Publish commit `seq` after any older commit that still has a marker; returns how many."""
        return self.flush_many([(aggregate_id, seq)], force=force)

    def flush_many(
        self,
        commits: Sequence[tuple[str, int]],
        force: bool = False,
        known: dict[str, list[Event]] | None = None,
        spent: Callable[[Collection, list[str]], None] | None = None,
    ) -> int:
        """Publish several commits' events in one round trip to the broker; returns how many events.

        For each commit, older commits of its aggregate that still have a marker go first, found back
        past commits without events (`_unpublished_before`). The events
        are sent in that order and acknowledged together; only then are the markers deleted (in one
        statement: the outbox is scanned once, not once per marker), or handed to `spent(outbox,
        ids)` to delete later with others (the Flusher). `known` holds the events of commits this
        process just wrote (by commit id), which then need not be read back.
        """
        if self._publisher is None:
            raise RuntimeError(f"store {self.name} has no publisher")
        known = known or {}
        ordered: list[str] = []
        for aggregate_id, seq in commits:
            pending = self._unpublished_before(aggregate_id, seq)
            ordered.extend(commit_id(aggregate_id, n) for n in [*reversed(pending), seq])
        events: list[Event] = []
        done: list[str] = []
        blocked: set[str] = set()
        for cid in dict.fromkeys(ordered):  # each commit once, first occurrence wins
            aggregate_id = cid.rsplit(":", 1)[0]
            if aggregate_id in blocked:
                continue
            if cid in known:
                events.extend(known[cid])
                done.append(cid)
                continue
            doc = self.commits.find_one({"_id": cid})
            if doc is None:
                # its writer is between marker and commit: nothing newer of this aggregate may
                # overtake it; the relay comes back for all of them
                blocked.add(aggregate_id)
                continue
            events.extend(_event_from_doc(e) for e in doc.get("events", []))
            done.append(cid)
        if events:
            self._publisher.publish(events, force=force)
        if done:
            if spent is None:
                self.outbox.delete_many({"_id": {"$in": done}})
            else:
                spent(self.outbox, done)
            for cid in done:
                aggregate_id, _, seq = cid.rpartition(":")
                if int(seq) > self._published.get(aggregate_id, 0):
                    self._published.put(aggregate_id, int(seq))
        return len(events)

    def _unpublished_before(self, aggregate_id: str, seq: int) -> list[int]:
        """The older commits of the aggregate whose events may not be published yet, newest first:
        back from `seq` through commits that still have a marker and commits without events (whose
        writer had nothing to publish, perhaps another instance on top of an older pending commit),
        to the first published one, or one this store knows everything up to was published. A void
        commit has no events: it is walked past like any other."""
        pending: list[int] = []
        n = seq - 1
        while n >= 1 and self._published.get(aggregate_id, 0) < n:
            cid = commit_id(aggregate_id, n)
            if self.outbox.find_one({"_id": cid}, {"_id": 1}) is not None:
                pending.append(n)
            else:
                doc = self.commits.find_one({"_id": cid}, {"events": 1})
                if doc is None or doc.get("events"):
                    break  # published (its marker is gone), or not there to read
            n -= 1
        return pending


class Flusher:
    """Publishes committed events off the request path, in the order commits were made.

    A request (or a consumed message) returns as soon as its commit is durable; this thread then
    publishes. If it falls behind (the queue is full) or the broker is down, the markers stay and
    the relay publishes them, so the queue is a fast path, never the only path.

    The markers of what it published are deleted together, `linger_s` after the first of them (or
    at once when `batch` are waiting): one delete for a burst instead of one per commit. A marker
    left a moment longer costs nothing but, at worst, one more publication of its events by another
    instance's writer (consumers de-duplicate by event id); the relay leaves markers younger than
    its grace period alone.
    """

    def __init__(
        self, maxsize: int = 10_000, linger_s: float = MARKER_LINGER_S, clock: Callable[[], float] = time.monotonic
    ):
        self._queue: queue.Queue[tuple[AggregateStore, str, int, list[Event]]] = queue.Queue(maxsize=maxsize)
        self.linger_s = linger_s
        self._clock = clock
        self._spent: dict[str, tuple[Collection, list[str]]] = {}
        self._spent_since: float | None = None

    def submit(self, store: AggregateStore, aggregate_id: str, seq: int, events: list[Event]) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait((store, aggregate_id, seq, events))

    def run(self, stop: Callable[[], bool], batch: int = 500) -> None:
        try:
            while not stop() or not self._queue.empty():
                wait = 0.2 if self._spent_since is None else self._spent_since + self.linger_s - self._clock()
                if not self.run_once(batch, wait_s=max(0.0, wait)) and stop():
                    return  # shutting down with the broker away: the relay of the next start publishes
        finally:
            self.delete_spent()

    def run_once(self, batch: int = 500, wait_s: float = 0.0) -> bool:
        """Publish what is queued (waiting up to `wait_s` for the first item), then delete the spent
        markers if they are due; False if a publication failed (its markers stay for the relay)."""
        items: list[tuple[AggregateStore, str, int, list[Event]]] = []
        with contextlib.suppress(queue.Empty):
            items.append(self._queue.get(timeout=wait_s) if wait_s > 0 else self._queue.get_nowait())
            while len(items) < batch:
                items.append(self._queue.get_nowait())
        by_store: dict[str, tuple[AggregateStore, list[tuple[str, int]], dict[str, list[Event]]]] = {}
        for store, aggregate_id, seq, events in items:
            _, commits, known = by_store.setdefault(store.name, (store, [], {}))
            commits.append((aggregate_id, seq))
            known[commit_id(aggregate_id, seq)] = events
        ok = True
        for store, commits, known in by_store.values():
            try:
                store.flush_many(commits, known=known, spent=self._remember_spent)
            except Exception as exc:
                ok = False
                log.warning("publish deferred to the outbox relay", extra={"store": store.name, "error": str(exc)})
        waiting = sum(len(ids) for _, ids in self._spent.values())
        if self._spent_since is not None and (waiting >= batch or self._clock() >= self._spent_since + self.linger_s):
            self.delete_spent()
        return ok

    def _remember_spent(self, outbox: Collection, ids: list[str]) -> None:
        self._spent.setdefault(outbox.full_name, (outbox, []))[1].extend(ids)
        if self._spent_since is None:
            self._spent_since = self._clock()

    def delete_spent(self) -> None:
        """Delete the markers of what was published, one statement per outbox."""
        spent, self._spent, self._spent_since = self._spent, {}, None
        for outbox, ids in spent.values():
            try:
                outbox.delete_many({"_id": {"$in": ids}})
            except PyMongoError as exc:  # they stay: the relay publishes them once more, harmlessly
                log.warning("published markers not deleted", extra={"error": str(exc), "markers": len(ids)})


# one id per process, stored on each commit: it tells an operator which instance wrote what
_WRITER_ID = f"{uuid.uuid4().hex[:12]}"


@dataclass
class RelayStats:
    published: int = 0
    voided: int = 0
    failed: int = 0


class OutboxRelay:
    """Publishes what writers could not (broker down, process killed after its commit).

    Scans the small `outbox` collection, leaves markers younger than `grace_s` to their writers'
    flushers (which may be behind during a burst), and flushes the rest in commit order. A marker
    whose commit never appeared within `void_after_s` belongs to a writer that died before
    committing: the relay claims that version with a void commit (a unique insert, so it cannot
    race a slow writer into a lost event: whichever insert comes second fails) and drops the marker.
    Several relays may run at once (one per instance); at worst an event is published twice,
    which consumers de-duplicate by its id.
    """

    def __init__(
        self,
        stores: dict[str, AggregateStore],
        grace_s: float = 10.0,
        void_after_s: float = 30.0,
        clock: Callable[[], datetime] = utc_now,
    ):
        self.stores = stores
        self.grace_s = grace_s
        self.void_after_s = void_after_s
        self.clock = clock
        self.outbox = next(iter(stores.values())).outbox

    def pending(self) -> int:
        return self.outbox.count_documents({})

    def run_once(self) -> RelayStats:
        stats = RelayStats()
        now = self.clock()
        markers = sorted(self.outbox.find({}), key=lambda m: (m["store"], m["aggregate_id"], m["seq"]))
        due: dict[str, list[tuple[str, int]]] = {}
        for marker in markers:
            age = (now - marker["at"]).total_seconds()
            store = self.stores.get(marker["store"])
            if age < self.grace_s or store is None:
                continue
            if store.commits.find_one({"_id": marker["_id"]}, {"_id": 1}) is None:
                if age >= self.void_after_s:
                    self._void(store, marker)
                    stats.voided += 1
                continue
            due.setdefault(store.name, []).append((marker["aggregate_id"], marker["seq"]))
        for name, commits in due.items():
            try:
                stats.published += self.stores[name].flush_many(commits, force=True)
            except Exception as exc:
                stats.failed += len(commits)
                log.warning("relay could not publish", extra={"store": name, "error": str(exc)})
        return stats

    @staticmethod
    def _void(store: AggregateStore, marker: dict[str, Any]) -> None:
        try:
            store.commits.insert_one(
                {
                    "_id": marker["_id"],
                    "aggregate_id": marker["aggregate_id"],
                    "seq": marker["seq"],
                    "void": True,
                    "at": utc_now(),
                    "events": [],
                }
            )
        except DuplicateKeyError:
            return  # the writer committed after all; the next sweep publishes it
        store.outbox.delete_one({"_id": marker["_id"]})

    def run_forever(
        self, stop: Callable[[], bool], interval_s: float, on_sweep: Callable[[int], None] | None = None
    ) -> None:
        while not stop():
            try:
                self.run_once()
                if on_sweep is not None:
                    on_sweep(self.pending())
            except Exception as exc:  # database down: keep sweeping, readiness reports it
                log.warning("outbox relay sweep failed", extra={"error": str(exc)})
            deadline = time.monotonic() + interval_s
            while not stop() and time.monotonic() < deadline:
                time.sleep(0.05)
