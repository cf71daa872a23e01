"""The registry's public area listings: place names for pickers, never staff."""

from __future__ import annotations

from services.routing.domain import GridRegistry


def test_areas_list_every_village_under_its_town_once(registry: GridRegistry) -> None:
    towns = registry.areas()
    listed = [v["village_id"] for t in towns for v in t["villages"]]
    assert sorted(listed) == sorted(v.village_id for v in registry.villages)
    assert [t["town_id"] for t in towns] == sorted(t["town_id"] for t in towns)
    for town in towns:
        for village in town["villages"]:
            assert registry.village(village["village_id"]).town_id == town["town_id"]


def test_areas_hold_no_staff(registry: GridRegistry) -> None:
    text = repr(registry.areas()) + repr([registry.village_grids(v.village_id) for v in registry.villages])
    for grid in registry.grids:
        assert grid.leader.staff_id not in text


def test_village_grids_start_with_the_default_grid(registry: GridRegistry) -> None:
    village = registry.villages[0]
    grids = registry.village_grids(village.village_id)
    assert grids is not None
    assert grids[0]["grid_id"] == village.grid_ids[0]
    assert {g["grid_id"] for g in grids} == set(village.grid_ids)
    assert registry.village_grids("nope") is None
