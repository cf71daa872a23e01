"""Which generation of checkpoints is current. A rebuild writes a new generation, then switches to it.

The switch is one commit of the `stats_generation` aggregate store (insert-only, so two rebuilds
cannot both switch from the same generation). Generation 0 is the one the service starts with.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from petition_common.store import AggregateStore, Loaded
from petition_kernel.times import format_time, utc_now

AGGREGATE = "current"


class Generations:
    def __init__(self, store: AggregateStore, cache_s: float = 1.0):
        self.store = store
        self.cache_s = cache_s
        self._seq = -1
        self._generation = 0
        self._checked = 0.0
        self._lock = threading.Lock()

    def current(self) -> int:
        with self._lock:
            if time.monotonic() - self._checked < self.cache_s:
                return self._generation
            seq = self.store.latest_seq(AGGREGATE)
            if seq != self._seq:
                loaded = self.store.load(AGGREGATE)
                self._generation = int(loaded.state["generation"]) if loaded.state else 0
                self._seq = loaded.seq
            self._checked = time.monotonic()
            return self._generation

    def loaded(self) -> Loaded:
        return self.store.load(AGGREGATE)

    def switch(self, base: Loaded, generation: int, info: dict[str, Any]) -> None:
        """Make `generation` current; raises Conflict if another switch happened since `base`."""
        self.store.commit(base, {"generation": generation, "at": format_time(utc_now()), **info})
        with self._lock:
            self._checked = 0.0
