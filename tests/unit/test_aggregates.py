"""The control flow of an HTTP action on an aggregate (petition_common.aggregates)."""

from __future__ import annotations

import pytest

from petition_common.aggregates import MAX_CONFLICT_RETRIES, act_on_remembered
from petition_common.store import Conflict


class Refused(Exception):
    pass


def test_an_action_accepted_on_the_remembered_version_reads_nothing_more() -> None:
    calls: list[bool] = []

    def attempt(to_write: bool) -> str:
        calls.append(to_write)
        return "done"

    assert act_on_remembered(attempt, (Refused,), "p1") == "done"
    assert calls == [True]


def test_a_refusal_is_decided_again_on_the_newest_version() -> None:
    calls: list[bool] = []

    def attempt(to_write: bool) -> str:
        calls.append(to_write)
        if to_write:  # the remembered version is stale: another instance has replied meanwhile
            raise Refused
        return "done on the newest"

    assert act_on_remembered(attempt, (Refused,), "p1") == "done on the newest"
    assert calls == [True, False]


def test_a_refusal_that_holds_for_the_newest_version_reaches_the_caller() -> None:
    calls: list[bool] = []

    def attempt(to_write: bool) -> str:
        calls.append(to_write)
        raise Refused

    with pytest.raises(Refused):
        act_on_remembered(attempt, (Refused,), "p1")
    assert calls == [True, False]


def test_other_errors_are_not_asked_again() -> None:
    calls: list[bool] = []

    def attempt(to_write: bool) -> str:
        calls.append(to_write)
        raise KeyError("broken")

    with pytest.raises(KeyError):
        act_on_remembered(attempt, (Refused,), "p1")
    assert calls == [True]


def test_a_lost_race_starts_again_from_the_remembered_version() -> None:
    calls: list[bool] = []

    def attempt(to_write: bool) -> str:
        calls.append(to_write)
        if len(calls) < 3:
            raise Conflict("p1")
        return "done"

    assert act_on_remembered(attempt, (Refused,), "p1") == "done"
    assert calls == [True, True, True]


def test_it_gives_up_after_the_limit_of_lost_races() -> None:
    calls: list[bool] = []

    def attempt(to_write: bool) -> str:
        calls.append(to_write)
        raise Conflict("p1")

    with pytest.raises(Conflict):
        act_on_remembered(attempt, (Refused,), "p1")
    assert len(calls) == MAX_CONFLICT_RETRIES
