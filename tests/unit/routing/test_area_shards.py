"""The area index's shard arithmetic: which changes change a shard, and both stored formats."""

from __future__ import annotations

from services.routing.area_index import ShardChange, orders_of, shard_state

ORDERS = {"P1": "2026-03-09T01:00:00Z", "P2": "2026-03-09T01:01:00Z"}


def test_a_change_that_changes_nothing_returns_the_same_orders() -> None:
    for change in (
        ShardChange(add={"P1": ORDERS["P1"]}),
        ShardChange(remove={"P9"}),
        ShardChange(add={"P2": ORDERS["P2"]}, remove={"P2"}),  # added and removed by one batch: it stays
    ):
        assert change.applied_to(ORDERS) is ORDERS


def test_a_change_makes_new_orders_and_leaves_the_old_ones_alone() -> None:
    change = ShardChange(add={"P3": "2026-03-09T01:02:00Z", "P1": "2026-03-10T00:00:00Z"}, remove={"P2"})
    assert change.applied_to(ORDERS) == {"P1": "2026-03-10T00:00:00Z", "P3": "2026-03-09T01:02:00Z"}
    assert ORDERS == {"P1": "2026-03-09T01:00:00Z", "P2": "2026-03-09T01:01:00Z"}


def test_both_formats_read_the_same_orders() -> None:
    legacy = {"orders": [{"p": pid, "at": at} for pid, at in ORDERS.items()]}
    assert orders_of(legacy) == ORDERS == orders_of(shard_state(ORDERS))
    assert orders_of(None) == {} == orders_of(shard_state({}))
