"""Checkpoints of stats' state: insert-only, fenced by unique ids, on what FerretDB v1 does fast.

A task (the state of one partition number, or the hotspot detector) is saved as a chain of
checkpoint commits in `stats_checkpoints_g{generation}`, `_id` = f"{ns}:c:{seq:010d}", where `ns`
is f"g{generation}:{task}". A commit holds the consumed offsets and a manifest (block name ->
block id) of the state's blocks: immutable compressed documents in `stats_blocks_g{generation}`.
Each generation (see generations.py) has its own collections, so an old one is dropped whole. A
checkpoint writes only
the blocks that changed since the one before (for a partition: the months with new events), each
under a fresh id, and then inserts the commit, the commit point: the state and the offsets it
reflects become durable together, or not at all.

Fencing: a writer commits seq n+1 only on top of the n it loaded. If another writer (a second
instance during a rebalance, a process that was paused) committed n+1 first, the insert fails
with `Conflict` and the loser reloads. So two writers can never both extend the chain.

Garbage: blocks replaced by a newer version and commits far behind the head are deleted, off the
consumer's path and in batches (`collect`, one delete per collection and run), and a block only
when the newest visible manifest no longer names it (so a paused writer cannot delete a block that
the chain still uses); commits below a "floor" are deleted after the floor document
f"{ns}:f:{k:06d}" = {from_seq} is inserted, and readers find the head by galloping from the newest
floor, retrying when a newer floor appears while they read.
"""

from __future__ import annotations

import logging
import threading
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from bson import Binary
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from petition_common.store import Conflict
from petition_kernel.times import utc_now

log = logging.getLogger(__name__)

COMMITS = "stats_checkpoints"
BLOCKS = "stats_blocks"
_WRITER = uuid.uuid4().hex[:12]


def collection_names(generation: int) -> tuple[str, str]:
    return f"{COMMITS}_g{generation}", f"{BLOCKS}_g{generation}"


def pack(value: Any) -> bytes:
    return pack_json(orjson.dumps(value))


def pack_json(raw: bytes) -> bytes:
    """`pack` of a value already serialised as JSON (say, put together from parts encoded before)."""
    return zlib.compress(raw, 1)


def unpack(blob: bytes) -> Any:
    return orjson.loads(zlib.decompress(blob))


HOTSPOTS_TASK = "hotspots"  # the hotspot detector's task; partition number p's is partition_task(p)


def partition_task(p: int) -> str:
    return f"p{p}"


def namespace(generation: int, task: str) -> str:
    return f"g{generation}:{task}"


def generation_of(ns: str) -> int | None:
    head = ns.split(":", 1)[0]
    return int(head[1:]) if head.startswith("g") and head[1:].isdigit() else None


@dataclass(frozen=True)
class Checkpoint:
    namespace: str
    seq: int
    offsets: dict[str, int]  # f"{topic}:{partition}" -> next offset to read
    manifest: dict[str, str]  # block name -> block id
    extra: dict[str, Any] = field(default_factory=dict)
    at: datetime | None = None


def gallop(exists: Callable[[int], bool], low: int) -> int:
    """The largest n >= low with exists(n), given exists(low) and that existence is contiguous above low."""
    step, high = 1, low + 1
    while exists(high):
        low, step = high, step * 2
        high = low + step
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if exists(mid) else (low, mid)
    return low


class CheckpointStore:
    """The checkpoint chain and blocks of one namespace."""

    def __init__(
        self,
        db: Database,
        ns: str,
        clock: Callable[[], datetime] = utc_now,
        garbage_grace: timedelta = timedelta(seconds=30),
        keep_commits: int = 200,
    ):
        self.ns = ns
        generation = generation_of(ns)
        commits, blocks = collection_names(generation if generation is not None else 0)
        self.commits = db[commits]
        self.blocks = db[blocks]
        self._lock = threading.Lock()
        self.clock = clock
        self.garbage_grace = garbage_grace
        self.keep_commits = keep_commits
        self._seq_hint = 0
        self._floor_hint = 0
        self._hint_floor: int | None = None  # the floor under which `_seq_hint` was found
        self._floor: tuple[int, int] = (0, 1)  # the newest floor read: (k, from_seq); a floor never changes
        self._garbage: list[tuple[datetime, str]] = []

    # ---- reading

    def _cid(self, seq: int) -> str:
        return f"{self.ns}:c:{seq:010d}"

    def _fid(self, k: int) -> str:
        return f"{self.ns}:f:{k:06d}"

    def _exists(self, doc_id: str) -> bool:
        return self.commits.find_one({"_id": doc_id}, {"_id": 1}) is not None

    def _latest_floor(self) -> tuple[int, int]:
        """(k, from_seq) of the newest floor; (0, 1) when there is none."""
        exists = lambda k: self._exists(self._fid(k))  # noqa: E731
        start = self._floor_hint if self._floor_hint and exists(self._floor_hint) else 1
        if start == 1 and not exists(1):
            return 0, 1
        k = gallop(exists, start)
        if self._floor[0] != k:
            doc = self.commits.find_one({"_id": self._fid(k)})
            assert doc is not None  # floors are never deleted
            self._floor = (k, int(doc["from_seq"]))
        self._floor_hint = k
        return self._floor

    def _head(self) -> tuple[int, int]:
        """(seq, floor k) of the newest visible commit, (0, 0) for an empty chain; reads no body."""
        exists = lambda s: self._exists(self._cid(s))  # noqa: E731
        for _ in range(20):
            k, base = self._latest_floor()
            hinted = self._seq_hint >= base and exists(self._seq_hint)
            start = self._seq_hint if hinted else base
            if not hinted and not exists(start):
                if k == 0 and start == 1:
                    return 0, 0
                continue  # a collector is moving the floor right now
            seq = gallop(exists, start)
            if self._exists(self._fid(k + 1)):
                continue
            self._seq_hint, self._hint_floor = seq, k
            return seq, k
        raise RuntimeError(f"checkpoint chain {self.ns}: could not find a stable head")

    def latest_seq(self) -> int:
        """The head's seq without reading it (cheap change detection: point reads of ids only).

        Readers ask this every second for every partition, so the usual answers take two or three
        reads: "still the one I saw" (no commit after it, then no floor after the one it was found
        under) and "one or two more" (forward from it, then the same floor check). Commits
        disappear only below a newer floor and floors are never deleted, so while no newer floor
        exists the commits from the hinted one on are still there, without gaps."""
        k = self._hint_floor
        if self._seq_hint and k is not None:
            seq = self._seq_hint
            if self._exists(self._cid(seq + 1)):
                seq = gallop(lambda s: self._exists(self._cid(s)), seq + 1)
            if not self._exists(self._fid(k + 1)):
                self._seq_hint = seq
                return seq
        return self._head()[0]

    def latest(self) -> Checkpoint | None:
        """The newest visible checkpoint, or None if the chain is empty."""
        for _ in range(20):
            seq, _ = self._head()
            if seq == 0:
                return None
            doc = self.commits.find_one({"_id": self._cid(seq)})
            if doc is not None:
                return self._decode(doc)
        raise RuntimeError(f"checkpoint chain {self.ns}: the head keeps disappearing")

    def at(self, seq: int) -> Checkpoint | None:
        """Checkpoint `seq` (e.g. the head `latest_seq` has just found), None if it was deleted since."""
        doc = self.commits.find_one({"_id": self._cid(seq)}) if seq > 0 else None
        return self._decode(doc) if doc is not None else None

    def _decode(self, doc: dict[str, Any]) -> Checkpoint:
        body = unpack(doc["body"])
        return Checkpoint(self.ns, int(doc["seq"]), body["offsets"], body["manifest"], body.get("extra", {}), doc["at"])

    def read_block(self, block_id: str) -> bytes | None:
        doc = self.blocks.find_one({"_id": block_id})
        return bytes(doc["data"]) if doc is not None else None

    # ---- writing

    def commit(
        self,
        base: Checkpoint | None,
        offsets: dict[str, int],
        blocks: dict[str, bytes],
        extra: dict[str, Any] | None = None,
    ) -> Checkpoint:
        """Save the changed `blocks` and the offsets as the checkpoint after `base`; raises Conflict."""
        seq = (base.seq if base else 0) + 1
        now = self.clock()
        nonce = uuid.uuid4().hex[:8]
        manifest = dict(base.manifest) if base else {}
        written: dict[str, str] = {}
        try:
            for name, data in blocks.items():
                block_id = f"{self.ns}:b:{name}:{seq:010d}:{nonce}"
                self.blocks.insert_one({"_id": block_id, "ns": self.ns, "at": now, "data": Binary(data)})
                written[name] = block_id
            body = pack({"offsets": offsets, "manifest": {**manifest, **written}, "extra": extra or {}})
            self.commits.insert_one(
                {"_id": self._cid(seq), "ns": self.ns, "seq": seq, "at": now, "writer": _WRITER, "body": Binary(body)}
            )
        except DuplicateKeyError as exc:
            self._discard((now - self.garbage_grace, b) for b in written.values())  # never referenced
            raise Conflict(self._cid(seq)) from exc
        except BaseException:
            self._discard((now, b) for b in written.values())
            raise
        self._discard((now, manifest[name]) for name in written if name in manifest)
        self._seq_hint = seq
        return Checkpoint(self.ns, seq, offsets, {**manifest, **written}, extra or {}, now)

    def _discard(self, items: Iterable[tuple[datetime, str]]) -> None:
        with self._lock:
            self._garbage.extend(items)

    def due_garbage(self) -> list[str]:
        """Replaced blocks past their grace that the head does not name; forgotten once returned."""
        now = self.clock()
        with self._lock:
            due = [b for at, b in self._garbage if now - at >= self.garbage_grace]
        if not due:
            return []
        head = self.latest()
        keep = set(head.manifest.values()) if head else set()
        due_set = set(due)
        with self._lock:
            self._garbage = [(at, b) for at, b in self._garbage if b not in due_set]
        return [b for b in due if b not in keep]

    def trim_commits(self) -> None:
        """Move the floor up to the head and delete the commits below it, once they are many."""
        head = self.latest()
        if head is None:
            return
        k, base = self._latest_floor()
        if head.seq - base < self.keep_commits:
            return
        try:
            self.commits.insert_one({"_id": self._fid(k + 1), "ns": self.ns, "from_seq": head.seq, "at": self.clock()})
        except DuplicateKeyError:
            return  # another writer moved the floor; it deletes below its own floor
        for seq in range(base, head.seq):
            self.commits.delete_one({"_id": self._cid(seq)})


def collect(stores: Iterable[CheckpointStore]) -> int:
    """Delete the garbage of these stores (replaced blocks, old commits); returns the blocks deleted."""
    deleted = 0
    for store in list(stores):
        for block_id in store.due_garbage():
            deleted += store.blocks.delete_one({"_id": block_id}).deleted_count
        store.trim_commits()
    return deleted


def drop_earlier_generations(db: Database, current_generation: int) -> list[str]:
    """Drop the collections of generations before the current one (cheap: no scan)."""
    dropped = []
    for name in db.list_collection_names():
        for prefix in (COMMITS, BLOCKS):
            suffix = name.removeprefix(f"{prefix}_g")
            if name.startswith(f"{prefix}_g") and suffix.isdigit() and int(suffix) < current_generation:
                db.drop_collection(name)
                dropped.append(name)
                log.info("dropped an earlier generation's collection", extra={"collection": name})
    return dropped


def sweep(db: Database, current_generation: int, heads: dict[str, Checkpoint | None], min_age: timedelta) -> int:
    """Delete blocks of the current generation that its heads do not name (left by crashed or
    fenced writers). Only blocks older than `min_age` go, so a checkpoint being written is left
    alone. Scans the blocks collection: run it rarely. Returns the number of blocks deleted."""
    cutoff = utc_now() - min_age
    named = {b for head in heads.values() if head is not None for b in head.manifest.values()}
    blocks = db[collection_names(current_generation)[1]]
    doomed = [
        doc["_id"]
        for doc in blocks.find({}, {"_id": 1, "ns": 1, "at": 1})
        if doc.get("ns") in heads and doc["at"] <= cutoff and doc["_id"] not in named
    ]
    deleted = sum(blocks.delete_one({"_id": block_id}).deleted_count for block_id in doomed)
    if deleted:
        log.info("swept unreachable stats blocks", extra={"deleted": deleted})
    return deleted
