"""AggregateStore.commit under concurrency (petition_common.store, group_commit.py): commits of other
threads that queue behind a write are committed together, each with its own outcome, on the fakes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from petition_common.envelope import Event
from petition_common.fakes import MemoryDatabase, RecordingPublisher
from petition_common.store import AggregateStore, Commit, Conflict, Loaded
from tests.unit.held_group import queued_behind_a_held_write


def event(aggregate_id: str, n: int) -> Event:
    return Event(type="thing.changed", source="tests", subject=aggregate_id, data={"n": n})


class Things:
    """A store on the fakes, with what each commit of a test met."""

    def __init__(self) -> None:
        self.db = MemoryDatabase()
        self.published = RecordingPublisher()
        self.store = AggregateStore(self.db, "things", publisher=self.published)
        self.sizes: list[int] = []
        self.store.group.on_group = self.sizes.append
        self.outcomes: dict[str, Commit | BaseException] = {}

    def commit(self, name: str, aggregate_id: str, seq: int, n: int) -> Callable[[], None]:
        def run() -> None:
            try:
                loaded = Loaded(aggregate_id, seq, None)
                self.outcomes[name] = self.store.commit(loaded, {"n": n}, [event(aggregate_id, n)])
            except BaseException as exc:  # what each caller met is the test's subject
                self.outcomes[name] = exc

        return run

    def queued_behind_a_write(self, commits: list[tuple[str, str, int, int]]) -> None:
        """The commits of `commits` queue behind the held commit of a new aggregate "a"."""
        queued_behind_a_held_write(
            self.store.group,
            self.commit("first", "a", 0, 0),
            [self.commit(*c) for c in commits],
            while_held=self.db.commands.clear,
        )


def test_commits_queued_behind_a_write_are_committed_together_each_with_its_outcome() -> None:
    things = Things()
    # b and c are new; a second writer of b builds on the same version as the first: it loses
    things.queued_behind_a_write([("b", "b", 0, 1), ("c", "c", 0, 2), ("b-again", "b", 0, 3)])
    assert things.sizes == [1, 3]
    assert isinstance(things.outcomes["first"], Commit) and isinstance(things.outcomes["c"], Commit)
    assert isinstance(things.outcomes["b"], Commit) and things.outcomes["b"].seq == 1
    assert isinstance(things.outcomes["b-again"], Conflict)
    # the first's commit, then the group's two rounds (b and c together; b again, which loses)
    assert things.db.commands[("insert", "things_commits")] == 3
    states = {d["_id"]: d["state"]["n"] for d in things.db["things_commits"].find({})}
    assert states == {"a:000001": 0, "b:000001": 1, "c:000001": 2}
    assert [e.data["n"] for e in things.published.of("b")] == [1]


def test_a_database_error_fails_its_round_and_the_later_ones_but_not_what_was_committed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    things = Things()
    commit_many: Callable[..., Any] = things.store._commit_many
    calls: list[int] = []

    def failing_second_round(items: Any) -> Any:
        calls.append(len(items))
        if len(calls) == 3:  # the held first write, the group's first round, then its second
            raise AutoReconnect("database away")
        return commit_many(items)

    monkeypatch.setattr(things.store, "_commit_many", failing_second_round)
    things.queued_behind_a_write([("b", "b", 0, 1), ("b-next", "b", 0, 2)])
    assert isinstance(things.outcomes["b"], Commit)
    assert isinstance(things.outcomes["b-next"], AutoReconnect)
    assert things.db["things_commits"].count_documents({}) == 2  # a's and b's


def test_an_event_the_contract_refuses_fails_its_commit_before_it_joins_a_group() -> None:
    def refuse(e: Event) -> None:
        if e.data["n"] < 0:
            raise ValueError("not the contract's")

    store = AggregateStore(MemoryDatabase(), "things", publisher=RecordingPublisher(), validate=refuse)
    store.group.write_many = lambda items: pytest.fail("a refused commit was queued")  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="contract"):
        store.commit(Loaded("a", 0, None), {}, [event("a", -1)])
