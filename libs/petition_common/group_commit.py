"""Group commit: concurrent requests that each write a little are written together.

Every database command costs FerretDB about the same CPU whatever it carries (issue 23: an
`insert_one` ~574 µs, a document of an `insert_many` of 64 ~131 µs), so requests that arrive while
another is writing wait for it and are then written in one go by one of them. There is no timer:
a lone request is written at once, as before, and the groups grow only with the load, while each
request waits at most for the group in front of it (the way a database batches its log flushes).

`GroupCommit(write_many).run(item)` returns what `write_many` gave for the item. `write_many`
receives the items of a group in arrival order and returns one outcome per item; an outcome that is
an exception is raised in the request that gave its item (a refusal of one item, such as a lost
race, fails only its own request). An exception raised by `write_many` itself (the database away)
fails every request of the group, which is what each would have met writing alone.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def rounds(keys: Sequence[str]) -> list[list[int]]:
    """The indexes of a group's items in rounds that each hold a key once, in arrival order: two
    changes of one aggregate cannot be written by one insert, and the later must build on (and so
    lose to) the earlier, as it would have alone."""
    todo = list(range(len(keys)))
    result = []
    while todo:
        first_of: dict[str, int] = {}
        for i in todo:
            first_of.setdefault(keys[i], i)
        result.append(list(first_of.values()))
        todo = [i for i in todo if first_of[keys[i]] != i]
    return result


class _Slot(Generic[Item, Result]):
    __slots__ = ("done", "item", "lead", "outcome", "woken")

    def __init__(self, item: Item):
        self.item = item
        self.done = False
        self.lead = False  # this request writes the next group
        self.outcome: Result | BaseException | None = None
        self.woken = threading.Event()


class GroupCommit(Generic[Item, Result]):
    def __init__(
        self,
        write_many: Callable[[Sequence[Item]], Sequence[Result | BaseException]],
        max_group: int = 64,
        on_group: Callable[[int], None] | None = None,
    ):
        self.write_many = write_many
        self.max_group = max_group
        self.on_group = on_group  # told each group's size (a metric)
        self._lock = threading.Lock()
        self._waiting: list[_Slot[Item, Result]] = []
        self._writing = False  # a request is writing a group; new ones queue behind it

    def run(self, item: Item) -> Result:
        slot: _Slot[Item, Result] = _Slot(item)
        with self._lock:
            self._waiting.append(slot)
            if not self._writing:
                self._writing = slot.lead = True
        if not slot.lead:
            slot.woken.wait()  # until a leader wrote this item, or handed over the writing
        if slot.lead:
            self._write_group()
        assert slot.done
        if isinstance(slot.outcome, BaseException):
            raise slot.outcome
        return slot.outcome  # type: ignore[return-value]

    def _write_group(self) -> None:
        """Write the waiting items (the leader's own first), hand over to the next waiting request."""
        with self._lock:
            group, self._waiting = self._waiting[: self.max_group], self._waiting[self.max_group :]
        try:
            outcomes: Sequence[Result | BaseException] = self.write_many([s.item for s in group])
            if len(outcomes) != len(group):
                raise RuntimeError(f"write_many gave {len(outcomes)} outcomes for {len(group)} items")
        except BaseException as exc:  # every request of the group meets it
            outcomes = [exc] * len(group)
        if self.on_group is not None:
            with contextlib.suppress(Exception):  # a metric never fails the requests it counts
                self.on_group(len(group))
        for slot, outcome in zip(group, outcomes, strict=True):
            slot.outcome, slot.done = outcome, True
        with self._lock:
            if self._waiting:
                following = self._waiting[0]
                following.lead = True
            else:
                following = None
                self._writing = False
        for slot in group:
            slot.woken.set()
        if following is not None:
            following.woken.set()
