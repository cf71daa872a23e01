"""The audit trail's chain: pure functions, no I/O (the store is audit_log.py, HTTP audit_http.py).

Every record carries its sequence number (`seq`, 1, 2, ...) and the hash of the record before it
(`prev`; GENESIS for the first), and its own `hash`: SHA-256 over the canonical JSON of everything
but `_id` and `hash`. Changing any field of a record breaks its own hash; replacing a record with
one whose hash is recomputed breaks the next record's `prev`; deleting one leaves a gap in `seq`;
moving one puts it under an `_id` that is not its `seq`. `verify` finds the first of these.

What a chain alone cannot show is records cut off at its end: `Verdict.head` is what an operator
keeps elsewhere (docs/security.md, "Audit trail") and hands to the next verification.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

GENESIS = "0" * 64
# `_id` is the zero-padded sequence number: a string (FerretDB v1 indexes only string `_id`s), and
# its text order is the chain's order
SEQ_WIDTH = 12
# not part of the hashed content: `_id` is derived from `seq`, `hash` is the result
UNHASHED = ("_id", "hash")


def seq_id(seq: int) -> str:
    return f"{seq:0{SEQ_WIDTH}d}"


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes the hash is taken over: sorted keys, no whitespace, UTF-8."""
    return orjson.dumps({k: v for k, v in record.items() if k not in UNHASHED}, option=orjson.OPT_SORT_KEYS)


def record_hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


def chained(entry: Mapping[str, Any], seq: int, prev: str) -> dict[str, Any]:
    """The record that follows the one whose hash is `prev`, as it is stored."""
    record = {**entry, "seq": seq, "prev": prev}
    return {"_id": seq_id(seq), **record, "hash": record_hash(record)}


@dataclass(frozen=True)
class Break:
    seq: int
    problem: str  # altered | missing | moved | relinked | foreign

    def describe(self) -> str:
        return {
            "altered": f"record {self.seq} was changed after it was written (its hash does not match its content)",
            "missing": f"record {self.seq} is missing (deleted)",
            "moved": f"the document stored as record {self.seq} is not record {self.seq} (moved or reordered)",
            "relinked": f"record {self.seq} does not follow record {self.seq - 1}: "
            f"record {self.seq - 1} was replaced, or records were reordered",
            "foreign": f"a document that is no audit record is stored among the records ({self.seq})",
        }[self.problem]


@dataclass(frozen=True)
class Verdict:
    records: int
    head: tuple[int, str] | None  # (seq, hash) of the last record
    first_break: Break | None
    breaks: int

    @property
    def ok(self) -> bool:
        return self.first_break is None


def verify(
    records: Iterable[Mapping[str, Any]],
    expect_head: tuple[int, str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Verdict:
    """Check a chain given its records in any order (a full scan need not sort). Keeps 64 bytes a
    record in memory. `expect_head`, a (seq, hash) an earlier verification reported, must still be
    in the chain (else records at its end were removed or rewritten)."""
    links: dict[int, tuple[bytes, bytes]] = {}  # seq -> (its hash, the prev it names)
    broken: dict[int, str] = {}
    foreign = 0
    for n, record in enumerate(records, 1):
        if progress is not None:
            progress(n)
        seq = record.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            foreign += 1
            continue
        if record.get("_id") != seq_id(seq) or seq in links:
            broken.setdefault(seq, "moved")
        stored, prev = str(record.get("hash", "")), str(record.get("prev", ""))
        if record_hash(record) != stored:
            broken.setdefault(seq, "altered")
        links[seq] = (_digest(stored), _digest(prev))
    last = max(links, default=0)
    for seq in range(1, last + 1):
        link = links.get(seq)
        if link is None:
            broken.setdefault(seq, "missing")
            continue
        # after a missing record, that gap is the break; the link over it is not checked
        before = _digest(GENESIS) if seq == 1 else links[seq - 1][0] if seq - 1 in links else None
        if before is not None and link[1] != before:
            broken.setdefault(seq, "relinked")
    if expect_head is not None:
        seq, digest = expect_head
        if seq not in links or links[seq][0] != _digest(digest):
            broken.setdefault(seq, "missing" if seq not in links else "altered")
    if foreign:
        broken.setdefault(last + 1, "foreign")
    first = min(broken, default=None)
    head = (last, links[last][0].hex()) if last else None
    return Verdict(
        records=len(links),
        head=head,
        first_break=Break(first, broken[first]) if first is not None else None,
        breaks=len(broken),
    )


def _digest(text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        return text.encode()  # not hex: cannot equal any real hash, still comparable
