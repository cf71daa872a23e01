"""petition_common.group_commit: requests that arrive while a group is being written are written
together next, each gets its own outcome, and nobody waits for a timer or is left waiting."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import pytest

from petition_common.group_commit import GroupCommit

DEADLINE_S = 10


def wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


class Writer:
    """write_many that records its groups; the first group is held until `release` is set."""

    def __init__(self, hold_first: bool = True):
        self.groups: list[list[str]] = []
        self.writing = threading.Event()
        self.release = threading.Event()
        if not hold_first:
            self.release.set()

    def __call__(self, items: Sequence[str]) -> list[str | BaseException]:
        self.groups.append(list(items))
        self.writing.set()
        assert self.release.wait(DEADLINE_S)
        return [ValueError(i) if i.startswith("bad") else i.upper() for i in items]


def run_in_threads(group: GroupCommit, items: list[str]) -> tuple[dict[str, object], list[threading.Thread]]:
    results: dict[str, object] = {}

    def one(item: str) -> None:
        try:
            results[item] = group.run(item)
        except BaseException as exc:  # the test looks at what each request met
            results[item] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in items]
    for t in threads:
        t.start()
    return results, threads


def join(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join(DEADLINE_S)
        assert not t.is_alive()


def test_a_lone_request_is_written_at_once_by_itself() -> None:
    writer = Writer(hold_first=False)
    assert GroupCommit(writer).run("a") == "A"
    assert writer.groups == [["a"]]


def test_requests_arriving_during_a_write_are_written_together_next() -> None:
    writer = Writer()
    sizes: list[int] = []
    group = GroupCommit(writer, on_group=sizes.append)
    first, first_threads = run_in_threads(group, ["a"])
    assert writer.writing.wait(DEADLINE_S)
    rest, rest_threads = run_in_threads(group, ["b", "c", "d"])
    wait_until(lambda: len(group._waiting) == 3, "three requests queued behind the write")
    writer.release.set()
    join(first_threads + rest_threads)
    assert writer.groups[0] == ["a"]
    assert sorted(writer.groups[1]) == ["b", "c", "d"] and len(writer.groups) == 2
    assert first == {"a": "A"} and rest == {"b": "B", "c": "C", "d": "D"}
    assert sizes == [1, 3]


def test_a_refused_item_fails_only_its_own_request() -> None:
    writer = Writer()
    group = GroupCommit(writer)
    _, first = run_in_threads(group, ["a"])
    assert writer.writing.wait(DEADLINE_S)
    results, rest = run_in_threads(group, ["b", "bad-c"])
    wait_until(lambda: len(group._waiting) == 2, "two requests queued")
    writer.release.set()
    join(first + rest)
    assert results["b"] == "B"
    assert isinstance(results["bad-c"], ValueError)


def test_a_failed_write_fails_every_request_of_its_group_and_the_next_group_is_written() -> None:
    calls: list[list[str]] = []
    gate = threading.Event()

    def write_many(items: Sequence[str]) -> list[str]:
        calls.append(list(items))
        if len(calls) == 1:
            assert gate.wait(DEADLINE_S)
            return ["A"]
        if len(calls) == 2:
            raise ConnectionError("database away")
        return [i.upper() for i in items]

    group = GroupCommit(write_many)
    results, threads = run_in_threads(group, ["a"])
    wait_until(lambda: len(calls) == 1, "the first write")
    more, more_threads = run_in_threads(group, ["b", "c"])
    wait_until(lambda: len(group._waiting) == 2, "two requests queued")
    gate.set()
    join(threads + more_threads)
    assert results == {"a": "A"}
    assert all(isinstance(more[i], ConnectionError) for i in ("b", "c"))
    assert group.run("d") == "D"  # the writing was handed back: a later request is not stuck


def test_groups_are_at_most_max_group_and_the_rest_follow() -> None:
    writer = Writer()
    group = GroupCommit(writer, max_group=2)
    _, first = run_in_threads(group, ["a"])
    assert writer.writing.wait(DEADLINE_S)
    results, rest = run_in_threads(group, ["b", "c", "d", "e", "f"])
    wait_until(lambda: len(group._waiting) == 5, "five requests queued")
    writer.release.set()
    join(first + rest)
    assert [len(g) for g in writer.groups] == [1, 2, 2, 1]
    assert results == {i: i.upper() for i in "bcdef"}


def test_a_write_many_giving_the_wrong_number_of_outcomes_fails_the_group() -> None:
    group = GroupCommit(lambda items: [])
    with pytest.raises(RuntimeError, match="0 outcomes for 1 items"):
        group.run("a")


def test_a_failing_metric_fails_no_request() -> None:
    def broken_metric(size: int) -> None:
        raise ValueError("metric")

    assert GroupCommit(lambda items: [i.upper() for i in items], on_group=broken_metric).run("a") == "A"
