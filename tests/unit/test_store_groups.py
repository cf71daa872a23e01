"""AggregateStore.commit under concurrency (petition_common.store, group_commit.py): commits of other
threads that queue behind a write are committed together, each with its own outcome, on the fakes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from petition_common.envelope import Event
from petition_common.fakes import MemoryDatabase, RecordingPublisher
from petition_common.store import AggregateStore, Commit, Conflict, Loaded

DEADLINE_S = 10


def event(aggregate_id: str, n: int) -> Event:
    return Event(type="thing.changed", source="tests", subject=aggregate_id, data={"n": n})


class HeldStore:
    """A store whose first group write waits until `release()`; `queue` runs commits in threads."""

    def __init__(self) -> None:
        self.db = MemoryDatabase()
        self.published = RecordingPublisher()
        self.store = AggregateStore(self.db, "things", publisher=self.published)
        self.gate, self.writing = threading.Event(), threading.Event()
        self.sizes: list[int] = []
        self.store.group.on_group = self.sizes.append
        write_many = self.store.group.write_many

        def held(items: Any) -> Any:
            if not self.writing.is_set():
                self.writing.set()
                assert self.gate.wait(DEADLINE_S)
            return write_many(items)

        self.store.group.write_many = held
        self.threads: list[threading.Thread] = []
        self.outcomes: dict[str, Commit | BaseException] = {}

    def commit(self, name: str, aggregate_id: str, seq: int, n: int) -> None:
        def run() -> None:
            try:
                loaded = Loaded(aggregate_id, seq, None)
                self.outcomes[name] = self.store.commit(loaded, {"n": n}, [event(aggregate_id, n)])
            except BaseException as exc:  # what each caller met is the test's subject
                self.outcomes[name] = exc

        thread = threading.Thread(target=run)
        self.threads.append(thread)
        thread.start()

    def wait_queued(self, n: int) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while len(self.store.group._waiting) < n:
            assert time.monotonic() < deadline, f"{n} commits never queued"
            time.sleep(0.001)

    def release(self) -> None:
        self.gate.set()
        for t in self.threads:
            t.join(DEADLINE_S)
            assert not t.is_alive()


def queued_behind_a_write(held: HeldStore, commits: list[tuple[str, str, int, int]]) -> None:
    held.commit("first", "a", 0, 0)
    assert held.writing.wait(DEADLINE_S)
    held.db.commands.clear()
    for c in commits:
        held.commit(*c)
    held.wait_queued(len(commits))


def test_commits_queued_behind_a_write_are_committed_together_each_with_its_outcome() -> None:
    held = HeldStore()
    # b and c are new; a second writer of b builds on the same version as the first: it loses
    queued_behind_a_write(held, [("b", "b", 0, 1), ("c", "c", 0, 2), ("b-again", "b", 0, 3)])
    held.release()
    assert held.sizes == [1, 3]
    assert isinstance(held.outcomes["first"], Commit) and isinstance(held.outcomes["c"], Commit)
    assert isinstance(held.outcomes["b"], Commit) and held.outcomes["b"].seq == 1
    assert isinstance(held.outcomes["b-again"], Conflict)
    # the first's commit, then the group's two rounds (b and c together; b again, which loses)
    assert held.db.commands[("insert", "things_commits")] == 3
    states = {d["_id"]: d["state"]["n"] for d in held.db["things_commits"].find({})}
    assert states == {"a:000001": 0, "b:000001": 1, "c:000001": 2}
    assert [e.data["n"] for e in held.published.of("b")] == [1]


def test_a_database_error_fails_its_round_and_the_later_ones_but_not_what_was_committed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    held = HeldStore()
    queued_behind_a_write(held, [("b", "b", 0, 1), ("b-next", "b", 0, 2)])
    commit_many: Callable[..., Any] = held.store._commit_many
    calls: list[int] = []

    def failing_second_round(items: Any) -> Any:
        calls.append(len(items))
        if len(calls) == 3:  # the held first write, the group's first round, then its second
            raise AutoReconnect("database away")
        return commit_many(items)

    monkeypatch.setattr(held.store, "_commit_many", failing_second_round)
    held.release()
    assert isinstance(held.outcomes["b"], Commit)
    assert isinstance(held.outcomes["b-next"], AutoReconnect)
    assert held.db["things_commits"].count_documents({}) == 2  # a's and b's


def test_an_event_the_contract_refuses_fails_its_commit_before_it_joins_a_group() -> None:
    def refuse(e: Event) -> None:
        if e.data["n"] < 0:
            raise ValueError("not the contract's")

    store = AggregateStore(MemoryDatabase(), "things", publisher=RecordingPublisher(), validate=refuse)
    store.group.write_many = lambda items: pytest.fail("a refused commit was queued")  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="contract"):
        store.commit(Loaded("a", 0, None), {}, [event("a", -1)])
