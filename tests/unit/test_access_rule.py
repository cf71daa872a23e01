"""The one authorisation rule (petition_kernel.access), role by role, inside and outside the area."""

from __future__ import annotations

import pytest

from petition_common.auth import Staff, staff_from_claims
from petition_kernel.access import Area, may_act, may_read

LEADER = Staff("S7", "grid_leader", town_id="T01", village_id="T01V01", grid_ids=frozenset({"T01V01G001"}))
CADRE = Staff("S4", "village_cadre", town_id="T01", village_id="T01V01")
TOWN = Staff("S2", "town_supervisor", town_id="T01")
COUNTY = Staff("S1", "county_dispatcher")
AUDITOR = Staff("A1", "auditor")
HOTLINE = Staff("hotline", "machine_client", client_id="hotline")
NO_TOWN = Staff("S3", "town_supervisor")

OWN_GRID = Area(grid_id="T01V01G001", village_id="T01V01", town_id="T01")
SAME_VILLAGE = Area(grid_id="T01V01G002")
SAME_TOWN = Area(grid_id="T01V02G001")
OTHER_TOWN = Area(grid_id="T02V01G001", village_id="T02V01", town_id="T02")
VILLAGE_ONLY = Area(village_id="T01V01", town_id="T01")  # routed by village name, no grid
TRIAGE = Area()  # the county's triage queue: placed nowhere


@pytest.mark.parametrize(
    ("staff", "area", "reads", "acts"),
    [
        (LEADER, OWN_GRID, True, True),
        (LEADER, SAME_VILLAGE, False, False),
        (LEADER, VILLAGE_ONLY, False, False),
        (LEADER, TRIAGE, False, False),
        (CADRE, OWN_GRID, True, False),
        (CADRE, SAME_VILLAGE, True, False),
        (CADRE, VILLAGE_ONLY, True, False),
        (CADRE, SAME_TOWN, False, False),
        (TOWN, SAME_TOWN, True, True),
        (TOWN, VILLAGE_ONLY, True, True),
        (TOWN, OTHER_TOWN, False, False),
        (TOWN, TRIAGE, False, False),
        (NO_TOWN, SAME_TOWN, False, False),
        (COUNTY, OTHER_TOWN, True, True),
        (COUNTY, TRIAGE, True, True),
        (AUDITOR, OTHER_TOWN, True, False),
        (AUDITOR, TRIAGE, True, False),
        (HOTLINE, OWN_GRID, False, False),
        (HOTLINE, TRIAGE, False, False),
        (Staff("X", "citizen", grid_ids=frozenset({"T01V01G001"})), OWN_GRID, False, False),
    ],
)
def test_reading_and_acting_by_role_and_area(staff: Staff, area: Area, reads: bool, acts: bool) -> None:
    assert may_read(staff, area) is reads
    assert may_act(staff, area) is acts


def test_whoever_may_act_may_read() -> None:
    for staff in (LEADER, CADRE, TOWN, COUNTY, AUDITOR, HOTLINE, NO_TOWN):
        for area in (OWN_GRID, SAME_VILLAGE, SAME_TOWN, OTHER_TOWN, VILLAGE_ONLY, TRIAGE):
            assert not may_act(staff, area) or may_read(staff, area)


def test_claims_become_one_principal() -> None:
    staff = staff_from_claims(
        {
            "staff_id": "S7",
            "role": "grid_leader",
            "town_id": "T01",
            "village_id": "T01V01",
            "grid_ids": ["T01V01G001", "T01V01G002"],
            "azp": "petitions-workbench",
        }
    )
    assert staff == Staff(
        "S7", "grid_leader", "T01", "T01V01", frozenset({"T01V01G001", "T01V01G002"}), "petitions-workbench"
    )
    assert staff_from_claims({"staff_id": "S7", "role": "grid_leader", "grid_ids": "T01V01G001"}).grid_ids == {
        "T01V01G001"
    }


@pytest.mark.parametrize(
    "claims",
    [{"role": "grid_leader"}, {"staff_id": "S1", "role": "admin"}, {"staff_id": "", "role": "auditor"}, {}],
)
def test_claims_without_a_staff_id_or_a_known_role_are_no_principal(claims: dict) -> None:
    assert staff_from_claims(claims) is None
