"""The state of one partition number: its petitions' facts and the counter cells they sum to.

All events of one petition carry its id as the Kafka key, and the petition topics have the same
number of partitions, so they all land on the same partition number of every topic. The state of
partition number p therefore holds everything needed to count p's petitions, and nothing else.

The state is split into blocks so that a checkpoint rewrites only what changed (FerretDB writes
and reads cost about 10 ms per 100 KB, so the blocks are kept small, about a day each):
- "f:YYYYMMDD": the facts of the petitions whose id carries that day (intake's ids are
  XXYYYYMMDDnnnnnn; other ids go to "f:misc"), each with the counter values it last contributed
  (its cell is a function of its facts; the values are kept because they were computed with the
  sla rules of their time, and the counters hold exactly those);
- "c:YYYYMMDD": the cells of the petitions submitted that day (Asia/Shanghai).
Events mostly concern petitions of the last few weeks, so a checkpoint writes a few day blocks.
Blocks are read when first needed, so an owner holds the recent days, not the whole history.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import date
from typing import Any

from services.stats.domain.facts import (
    N_COUNTERS,
    CalendarGaps,
    CellKey,
    Change,
    Contribution,
    Facts,
    SlaRules,
    add_into,
    cell_key,
    contribution,
    merge,
)
from services.stats.write.checkpoints import Checkpoint, pack, unpack

_PID = re.compile(r"^[A-Z]{2}(\d{8})\d{6}$")
FACTS, CELLS = "f:", "c:"
BLOCK_VERSION = 1


class Stale(Exception):
    """A block the state needs is gone: a newer checkpoint replaced it, so this state is outdated."""


def facts_block(petition_id: str) -> str:
    m = _PID.match(petition_id)
    return FACTS + (m.group(1) if m else "misc")


def cells_block(day: int) -> str:
    return f"{CELLS}{date.fromordinal(day):%Y%m%d}"


Entry = tuple[Facts, tuple[int, ...] | None]  # facts, and the counter values they contributed


def encode_facts(entries: dict[str, Entry]) -> bytes:
    return pack({"v": BLOCK_VERSION, "p": {pid: [f.to_list(), v] for pid, (f, v) in entries.items()}})


def decode_facts(blob: bytes) -> dict[str, Entry]:
    doc = unpack(blob)
    if doc.get("v") != BLOCK_VERSION:
        raise ValueError(f"unsupported facts block version {doc.get('v')!r}")
    return {pid: (Facts.from_list(f), tuple(v) if v is not None else None) for pid, (f, v) in doc["p"].items()}


def contribution_of(entry: Entry | None) -> Contribution | None:
    if entry is None or entry[1] is None:
        return None
    key = cell_key(entry[0])
    assert key is not None
    return Contribution(key, entry[1])


def encode_cells(cells: dict[CellKey, list[int]]) -> bytes:
    keys = list(cells)
    return pack({"v": BLOCK_VERSION, "k": [list(k) for k in keys], "n": [cells[k] for k in keys]})


def decode_cells_raw(blob: bytes) -> tuple[list[list[Any]], list[list[int]]]:
    doc = unpack(blob)
    if doc.get("v") != BLOCK_VERSION:
        raise ValueError(f"unsupported cells block version {doc.get('v')!r}")
    # a block written before a counter was added has shorter rows: the new counters are 0 there
    values = [row if len(row) == N_COUNTERS else [*row, *[0] * (N_COUNTERS - len(row))] for row in doc["n"]]
    return doc["k"], values


def decode_cells(blob: bytes) -> dict[CellKey, list[int]]:
    keys, values = decode_cells_raw(blob)
    return {tuple(k): list(v) for k, v in zip(keys, values, strict=True)}  # type: ignore[misc]


class PartitionState:
    """Facts and cells of one partition number, applied incrementally; no I/O beyond `load_block`."""

    def __init__(
        self,
        partition: int,
        rules: SlaRules,
        manifest: dict[str, str] | None = None,
        load_block: Callable[[str], bytes | None] | None = None,
        offsets: dict[str, int] | None = None,
        gaps: CalendarGaps | None = None,
    ):
        self.partition = partition
        self.rules = rules
        self.manifest = dict(manifest or {})
        self._load_block = load_block
        self.offsets: dict[str, int] = dict(offsets or {})
        self.gaps = gaps
        self.facts: dict[str, dict[str, Entry]] = {}
        self.cells: dict[str, dict[CellKey, list[int]]] = {}
        self.dirty: set[str] = set()
        self.used: dict[str, float] = {}  # block name -> when it was last needed (time.monotonic)

    @classmethod
    def at(
        cls,
        partition: int,
        rules: SlaRules,
        head: Checkpoint | None,
        load_block: Callable[[str], bytes | None],
        gaps: CalendarGaps | None = None,
    ) -> PartitionState:
        """The state a checkpoint head describes (empty without one); blocks are read when first needed."""
        return cls(
            partition,
            rules,
            manifest=head.manifest if head else {},
            load_block=load_block,
            offsets=head.offsets if head else {},
            gaps=gaps,
        )

    # ---- blocks

    def _block(self, name: str) -> bytes | None:
        block_id = self.manifest.get(name)
        if block_id is None:
            return None
        blob = self._load_block(block_id) if self._load_block else None
        if blob is None:
            raise Stale(f"block {block_id} is gone")
        return blob

    def _facts(self, name: str) -> dict[str, Entry]:
        self.used[name] = time.monotonic()
        if name not in self.facts:
            blob = self._block(name)
            self.facts[name] = decode_facts(blob) if blob is not None else {}
        return self.facts[name]

    def _cells(self, name: str) -> dict[CellKey, list[int]]:
        self.used[name] = time.monotonic()
        if name not in self.cells:
            blob = self._block(name)
            self.cells[name] = decode_cells(blob) if blob is not None else {}
        return self.cells[name]

    def load_all(self) -> None:
        """Read every block named in the manifest (the rebuild's comparison and tests use this)."""
        for name in self.manifest:
            (self._facts if name.startswith(FACTS) else self._cells)(name)

    # ---- applying

    def apply(self, change: Change) -> bool:
        """Add one event's change; True if it changed anything (False: a duplicate or a no-op)."""
        name = facts_block(change.petition_id)
        entries = self._facts(name)
        entry = entries.get(change.petition_id)
        old_facts = entry[0] if entry is not None else None
        new_facts = merge(old_facts, change)
        if new_facts is old_facts or new_facts == old_facts:
            return False
        old_c = contribution_of(entry)
        new_c = contribution(change.petition_id, new_facts, self.rules, self.gaps, old_facts, old_c)
        if new_c != old_c:
            # read every block first: a failure (a database outage, a stale state) must leave
            # the state as it was, never half changed
            moves = [(c, sign, self._cells(cells_block(c.key[0]))) for c, sign in ((old_c, -1), (new_c, +1)) if c]
            for c, sign, cells in moves:
                add_into(cells, c, sign)
                self.dirty.add(cells_block(c.key[0]))
        entries[change.petition_id] = (new_facts, new_c.values if new_c is not None else None)
        self.dirty.add(name)
        return True

    def advance(self, topic: str, offset: int) -> None:
        """Record that the message at `offset` of `topic` (this partition) is applied."""
        self.offsets[topic] = offset + 1

    # ---- saving

    def encode_dirty(self) -> dict[str, bytes]:
        out = {}
        for name in sorted(self.dirty):
            out[name] = encode_facts(self.facts[name]) if name.startswith(FACTS) else encode_cells(self.cells[name])
        return out

    def saved(self, manifest: dict[str, str]) -> None:
        self.manifest = dict(manifest)
        self.dirty.clear()

    def evict(self, idle_s: float) -> int:
        """Forget saved blocks not needed for `idle_s` (they are read again if an event needs them),
        so that memory holds the days events still arrive for, not the whole history."""
        cutoff = time.monotonic() - idle_s
        idle = [n for n, at in self.used.items() if at < cutoff and n not in self.dirty and n in self.manifest]
        for name in idle:
            self.facts.pop(name, None)
            self.cells.pop(name, None)
            del self.used[name]
        return len(idle)

    # ---- inspection

    def all_cells(self) -> dict[CellKey, list[int]]:
        self.load_all()
        out: dict[CellKey, list[int]] = {}
        for cells in self.cells.values():
            out.update(cells)
        return out

    def all_facts(self) -> dict[str, Entry]:
        self.load_all()
        out: dict[str, Entry] = {}
        for entries in self.facts.values():
            out.update(entries)
        return out
