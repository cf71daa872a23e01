"""Requests queued behind a held write of a GroupCommit (petition_common.group_commit), for the tests
of each writer that groups: the first request's write waits until the later ones have queued."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from petition_common.group_commit import GroupCommit

DEADLINE_S = 10


def queued_behind_a_held_write(
    group: GroupCommit,
    first: Callable[[], object],
    later: list[Callable[[], object]],
    while_held: Callable[[], object] = lambda: None,
) -> None:
    """Run `first` in a thread and hold its write; run `while_held`, then each of `later` in a thread
    of its own; release the write once all of them queued behind it, and wait for every thread."""
    gate, writing = threading.Event(), threading.Event()
    write_many = group.write_many

    def held(items):  # type: ignore[no-untyped-def]
        if not writing.is_set():
            writing.set()
            assert gate.wait(DEADLINE_S)
        return write_many(items)

    group.write_many = held  # type: ignore[method-assign]
    threads = [threading.Thread(target=first)]
    threads[0].start()
    assert writing.wait(DEADLINE_S), "the first request never wrote"
    while_held()
    threads += [threading.Thread(target=run) for run in later]
    for thread in threads[1:]:
        thread.start()
    deadline = time.monotonic() + DEADLINE_S
    while len(group._waiting) < len(later):
        assert time.monotonic() < deadline, f"{len(later)} requests never queued behind the write"
        time.sleep(0.001)
    gate.set()
    for thread in threads:
        thread.join(DEADLINE_S)
        assert not thread.is_alive()
