"""The `ids` query parameter of the batch reads (routing's list by ids, sla's clocks)."""

from __future__ import annotations

from petition_kernel.petition_ids import ids_param

A, B = "JZ20250310000001", "JZ20250310000002"


def test_ids_given_once_are_parsed_distinct_in_order() -> None:
    assert ids_param([f"{B},{A},{B}"], 10) == ([B, A], None)


def test_ids_given_twice_or_not_at_all_are_refused() -> None:
    assert ids_param([A, B], 10) == ([], "give ids once, separated by commas")
    ids, problem = ids_param([], 10)
    assert ids == [] and problem is not None and "required" in problem


def test_more_ids_than_allowed_are_refused() -> None:
    ids, problem = ids_param([f"{A},{B}"], 1)
    assert ids == [] and problem == "at most 1 petition ids"
