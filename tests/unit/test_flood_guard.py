"""The dead-letter flood guard: a partition that floods is paused with a backoff, never the service."""

from __future__ import annotations

import pytest

from petition_common.dlq import DeadLetterFlood, FloodGuard


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def flood(guard: FloodGuard, partition: str, n: int) -> int:
    """Admit up to n dead letters; how many were admitted before a flood."""
    for i in range(n):
        try:
            guard.admit(partition)
        except DeadLetterFlood:
            return i
    return n


def test_a_partition_past_its_limit_is_paused_and_others_go_on() -> None:
    clock = Clock()
    guard = FloodGuard(limit=5, window_s=60, base_s=1, max_s=8, clock=clock)
    assert flood(guard, "a", 10) == 5
    assert guard.paused() == ["a"]
    assert flood(guard, "b", 5) == 5  # another partition has its own allowance
    assert guard.due() == []
    clock.now += 1
    assert guard.due() == ["a"] and guard.paused() == []
    assert flood(guard, "a", 10) == 5  # resumed with a fresh allowance


def pause_of(guard: FloodGuard, partition: str) -> float:
    """Dead-letter until the partition floods; the pause it gets."""
    with pytest.raises(DeadLetterFlood) as info:
        for _ in range(guard.limit + 1):
            guard.admit(partition)
    return info.value.pause_s


def test_the_pause_doubles_while_floods_go_on_and_resets_after_a_quiet_spell() -> None:
    clock = Clock()
    guard = FloodGuard(limit=2, window_s=60, base_s=1, max_s=4, clock=clock)
    pauses = []
    for _ in range(4):
        pauses.append(pause_of(guard, "a"))
        clock.now += pauses[-1]
        assert guard.due() == ["a"]
    assert pauses == [1, 2, 4, 4]  # doubled while flooding, capped at max_s
    clock.now += 121  # a quiet spell: more than two windows without a flood
    assert pause_of(guard, "a") == 1


def test_a_window_of_old_dead_letters_does_not_count() -> None:
    clock = Clock()
    guard = FloodGuard(limit=3, window_s=60, clock=clock)
    for _ in range(3):
        guard.admit("a")
        clock.now += 30
    guard.admit("a")  # the first one left the window
    assert guard.paused() == []
