"""The one authorisation rule: who may read, and who may act on, an object placed in an area.

Every staff endpoint of intake, routing, sla and stats asks these two functions and nothing else
(docs/security.md, "Who may see and do what"):

| role              | reads                  | acts (contact, reply, transfer, pause, resume, close) |
|-------------------|------------------------|--------------------------------------------------------|
| grid_leader       | its grids              | its grids                                              |
| village_cadre     | its village            | nothing                                                |
| town_supervisor   | its town               | its town                                               |
| county_dispatcher | everything             | everything (and the county's triage queue)             |
| auditor           | everything             | nothing                                                |
| machine_client    | nothing                | nothing (it may only submit petitions, singly or in batches) |

The grid registry is replaced by the county dispatch centre alone (`may_manage_registry`); a grid's
record (with its leader's name and phone) is read like any object placed in that grid, and the
whole registry at once (the grid map's source) by staff only, never a machine client
(`may_read_registry`). The audit trails are read by auditors alone (`may_audit`).

An object that no grid, village or town was found for (the county's triage queue) is inside no
one's area: only the county roles reach it. Ids nest (town T01 ⊃ village T01V01 ⊃ grid T01V01G001,
which routing's registry import checks), so an object's most specific id tells all its areas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from petition_common.auth import Staff

READ_EVERYTHING = frozenset({"county_dispatcher", "auditor"})
ACT_EVERYWHERE = frozenset({"county_dispatcher"})
# roles that read inside their own area, and those of them that also act there
READ_IN_AREA = frozenset({"grid_leader", "village_cadre", "town_supervisor"})
ACT_IN_AREA = frozenset({"grid_leader", "town_supervisor"})
BATCH_SUBMITTERS = frozenset({"machine_client", "county_dispatcher"})


@dataclass(frozen=True, slots=True)
class Area:
    """Where an object (a petition, a work order, a deadline, a count) is placed."""

    grid_id: str | None = None
    village_id: str | None = None
    town_id: str | None = None

    @property
    def most_specific(self) -> str | None:
        return self.grid_id or self.village_id or self.town_id


def _inside(staff: Staff, area: Area) -> bool:
    if staff.role == "grid_leader":
        return area.grid_id is not None and area.grid_id in staff.grid_ids
    own = {"village_cadre": staff.village_id, "town_supervisor": staff.town_id}.get(staff.role)
    place = area.most_specific
    return bool(own) and place is not None and place.startswith(own)  # type: ignore[arg-type]


def may_read(staff: Staff, area: Area) -> bool:
    """Whether this staff member may see an object placed in `area`."""
    return staff.role in READ_EVERYTHING or (staff.role in READ_IN_AREA and _inside(staff, area))


def may_act(staff: Staff, area: Area) -> bool:
    """Whether this staff member may act on (change) an object placed in `area`."""
    return staff.role in ACT_EVERYWHERE or (staff.role in ACT_IN_AREA and _inside(staff, area))


def may_manage_registry(staff: Staff) -> bool:
    """Whether this staff member may replace the county's grid registry (and with it the roster)."""
    return staff.role in ACT_EVERYWHERE


def may_read_registry(staff: Staff) -> bool:
    """Whether this principal may read the whole grid registry (every grid with its 1+1+N roster)."""
    return staff.role in READ_EVERYTHING or staff.role in READ_IN_AREA


def may_submit_batches(staff: Staff) -> bool:
    """Whether this principal may hand over petitions in batches (the hotline, other systems, the
    county dispatch centre): a batch is up to 500 citizens' petitions, which no one else files."""
    return staff.role in BATCH_SUBMITTERS


def may_audit(staff: Staff) -> bool:
    """Whether this staff member may read the services' audit trails."""
    return staff.role == "auditor"
