"""Merge records from several partitions into (nearly) time order, for the hotspot detector.

The detector judges a petition against the windows around its submission time and tolerates
petitions up to `lateness` late. Live, the partitions advance together and nothing is late. But
when the detector catches up (after a restart, or in a rebuild), one partition's fetch may run
days ahead of another's, and the slower partition's petitions would then arrive too late to be
judged. This merge holds records back until no partition can still deliver an earlier one:

- each source (a topic partition) has a FIFO buffer and a frontier, the newest time it delivered;
- the earliest buffered head is released when it is not later than the frontier of every source
  whose buffer is empty and that has not caught up with its end (such a source may still deliver
  something earlier; a caught-up source cannot, until new messages arrive);
- items without a time (records the detector does not use) leave as soon as they are at the head.

Per source, times are assumed to grow (producers publish in event order); where they do not, the
detector's lateness absorbs it. `next_offset` is what a checkpoint may store: the offset of the
first record not yet released, so that a restart reads the held-back records again.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterator
from typing import Any

_NONE = float("-inf")


class TimeMerge:
    def __init__(self, sources: list[Hashable]):
        self._buffers: dict[Hashable, deque[tuple[int | None, int, Any]]] = {s: deque() for s in sources}
        self._frontier: dict[Hashable, float] = {s: _NONE for s in sources}
        self._caught_up: dict[Hashable, bool] = {s: False for s in sources}
        self._next: dict[Hashable, int | None] = {s: None for s in sources}

    def add(self, source: Hashable, offset: int, at: int | None, item: Any) -> None:
        """A record read from `source` at `offset`; `at` None for a record that needs no ordering."""
        buffer = self._buffers[source]
        if at is None and not buffer:
            self._next[source] = offset + 1
            return
        buffer.append((at, offset, item))
        if at is not None:
            self._frontier[source] = max(self._frontier[source], at)

    def set_caught_up(self, source: Hashable, caught_up: bool) -> None:
        self._caught_up[source] = caught_up

    def buffered(self, source: Hashable | None = None) -> int:
        if source is not None:
            return len(self._buffers[source])
        return sum(len(b) for b in self._buffers.values())

    def release(self) -> Iterator[tuple[Hashable, int, Any]]:
        """(source, offset, item) of every record that can go now, earliest first."""
        while True:
            self._drop_untimed_heads()
            heads = [(b[0][0], s) for s, b in self._buffers.items() if b]
            if not heads:
                return
            at, source = min(heads, key=lambda h: h[0])  # type: ignore[arg-type,return-value]
            limit = min(
                (self._frontier[s] for s, b in self._buffers.items() if not b and not self._caught_up[s]),
                default=float("inf"),
            )
            if at > limit:  # type: ignore[operator]
                return
            _, offset, item = self._buffers[source].popleft()
            self._next[source] = offset + 1
            yield source, offset, item

    def _drop_untimed_heads(self) -> None:
        for source, buffer in self._buffers.items():
            while buffer and buffer[0][0] is None:
                self._next[source] = buffer.popleft()[1] + 1

    def next_offset(self, source: Hashable) -> int | None:
        """The offset to resume `source` from: its first record not yet released (None: nothing read)."""
        buffer = self._buffers[source]
        if buffer:
            return buffer[0][1]
        return self._next[source]
