"""The read model queries are answered from: every partition's cells as one columnar table in memory.

Each row is a cell (submission day, grid, village, town, category, department, channel) with its
counters. Strings are coded as small integers (0 = none), the same code for the same string in
every block, so a filter is a vectorised comparison and a breakdown a `bincount` over the codes:
a year of the county (~400,000 cells) answers in milliseconds. The table is immutable: the loader
builds a new one when checkpoints change and swaps it in, so queries never wait for loading.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from services.stats.domain.facts import N_COUNTERS

DIMENSIONS = ("grid", "village", "town", "category", "department", "channel")
_KEY_COLUMNS = 1 + len(DIMENSIONS)  # day + dimensions


class Codes:
    """value <-> small integer, 0 standing for None; grows, never renumbers (thread-safe)."""

    def __init__(self) -> None:
        self.values: list[Any] = [None]
        self._index: dict[Any, int] = {None: 0}
        self._lock = threading.Lock()

    def code(self, value: Any) -> int:
        found = self._index.get(value)
        if found is not None:
            return found
        with self._lock:
            found = self._index.get(value)
            if found is None:
                found = self._index[value] = len(self.values)
                self.values.append(value)
            return found

    def find(self, value: Any) -> int | None:
        return self._index.get(value)

    def __len__(self) -> int:
        return len(self.values)


class Dictionary:
    """The codes of every dimension. A village is coded as its (town, village) pair."""

    def __init__(self) -> None:
        self.dims = {d: Codes() for d in DIMENSIONS}

    def village_codes(self, name: str) -> list[int]:
        vc = self.dims["village"]
        return [i for i, v in enumerate(vc.values) if v is not None and v[1] == name]


@dataclass(frozen=True)
class Chunk:
    """One decoded cells block: key columns and counters as arrays."""

    keys: np.ndarray  # (n, 7) int32: day, grid, village, town, category, department, channel codes
    values: np.ndarray  # (n, N_COUNTERS) int32

    @classmethod
    def decode(cls, keys: Sequence[Sequence[Any]], values: Sequence[Sequence[int]], dictionary: Dictionary) -> Chunk:
        d = dictionary.dims
        grid, village, town, category = d["grid"], d["village"], d["town"], d["category"]
        department, channel = d["department"], d["channel"]
        coded = [
            (
                k[0],
                grid.code(k[1]),
                village.code((k[3], k[2]) if k[2] is not None else None),
                town.code(k[3]),
                category.code(k[4]),
                department.code(k[5]),
                channel.code(k[6]),
            )
            for k in keys
        ]
        key_array = np.array(coded, dtype=np.int32).reshape(len(coded), _KEY_COLUMNS)
        value_array = np.array(values, dtype=np.int32).reshape(len(values), N_COUNTERS)
        return cls(key_array, value_array)


@dataclass(frozen=True)
class Table:
    day: np.ndarray
    columns: dict[str, np.ndarray]  # dimension -> codes per row
    values: np.ndarray  # (rows, N_COUNTERS)
    dictionary: Dictionary

    @classmethod
    def build(cls, chunks: Iterable[Chunk], dictionary: Dictionary) -> Table:
        chunks = [c for c in chunks if len(c.keys)]
        if chunks:
            keys = np.concatenate([c.keys for c in chunks])
            values = np.concatenate([c.values for c in chunks])
        else:
            keys = np.zeros((0, _KEY_COLUMNS), dtype=np.int32)
            values = np.zeros((0, N_COUNTERS), dtype=np.int32)
        columns = {dim: np.ascontiguousarray(keys[:, i + 1]) for i, dim in enumerate(DIMENSIONS)}
        return cls(np.ascontiguousarray(keys[:, 0]), columns, values, dictionary)

    @property
    def rows(self) -> int:
        return len(self.day)

    def day_range(self) -> tuple[int, int] | None:
        """[first, last + 1) of the submission days present, or None when empty."""
        if not self.rows:
            return None
        return int(self.day.min()), int(self.day.max()) + 1

    # ---- the three operations every query is made of

    def totals(self, mask: np.ndarray) -> np.ndarray:
        return self.values[mask].sum(axis=0, dtype=np.int64)

    def grouped(self, mask: np.ndarray, dim: str) -> dict[int, np.ndarray]:
        """code -> counter sums, for the codes present under the mask."""
        codes = self.columns[dim][mask]
        if not len(codes):
            return {}
        values = self.values[mask]
        size = len(self.dictionary.dims[dim])
        sums = np.stack(
            [np.bincount(codes, weights=values[:, i], minlength=size) for i in range(N_COUNTERS)], axis=1
        ).astype(np.int64)
        present = np.bincount(codes, minlength=size) > 0
        return {int(code): sums[code] for code in np.flatnonzero(present)}

    def by_day(self, mask: np.ndarray, first_day: int, days: int) -> np.ndarray:
        """(days, N_COUNTERS) sums per submission day from `first_day`."""
        offsets = self.day[mask] - first_day
        values = self.values[mask]
        if not len(offsets):
            return np.zeros((days, N_COUNTERS), dtype=np.int64)
        return np.stack(
            [np.bincount(offsets, weights=values[:, i], minlength=days)[:days] for i in range(N_COUNTERS)], axis=1
        ).astype(np.int64)
