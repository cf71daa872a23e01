"""Generate the reference county: 12 towns, 119 villages, 2,635 grids, ~430,000 people, 1+1+N staff."""

from __future__ import annotations

import math
import random

from countysim import names
from countysim.geometry import Rect, jittered_cells, layout_bands, layout_columns
from countysim.model import County, Grid, Role, RosterMember, Town, Village
from countysim.sampling import apportion, sub_rng

N_TOWNS = 12
N_VILLAGES = 119
N_GRIDS = 2635
COUNTY_BOUNDS = Rect(west=119.82, south=36.02, east=120.28, north=36.48)
HOUSEHOLDS = (30, 60)
PEOPLE_PER_HOUSEHOLD = (2.7, 3.5)
POPULATION_TARGET = (427_000, 433_000)
HELPERS_PER_GRID = (2, 6)
GRIDS_PER_CADRE = (3, 7)
SUPERVISORS_PER_TOWN = (1, 3)
# How the 12 towns sit in rows, north to south (the county is drawn as 3 bands of towns).
_BAND_SHAPES = ((4, 4, 4), (3, 5, 4), (4, 5, 3), (5, 4, 3), (3, 4, 5))


def generate_county(seed: int = 20240101) -> County:
    """The synthetic county for `seed`; the same seed always gives the same county.

    Counts are exact (12 towns, 119 villages, 2,635 grids); how villages and grids spread over
    towns and villages, the shapes, names, households and staff vary with the seed.
    """
    layout = sub_rng(seed, "layout")
    villages_per_town = apportion(N_VILLAGES, [layout.uniform(0.3, 1.7) for _ in range(N_TOWNS)], minimum=4)
    grids_per_village = apportion(N_GRIDS, [layout.uniform(0.3, 2.0) for _ in range(N_VILLAGES)], minimum=8)

    # Areas follow grid counts, so grids come out of similar size; the urban seat (T01) is denser.
    grid_counts_by_town: list[list[int]] = []
    i = 0
    for n_villages in villages_per_town:
        grid_counts_by_town.append(grids_per_village[i : i + n_villages])
        i += n_villages
    town_weights = [sum(counts) * (0.45 if t == 0 else layout.uniform(0.8, 1.25))
                    for t, counts in enumerate(grid_counts_by_town)]  # fmt: skip
    town_rects = layout_bands(COUNTY_BOUNDS, town_weights, layout.choice(_BAND_SHAPES))

    naming = sub_rng(seed, "names")
    town_names = names.town_names(naming, N_TOWNS)
    village_names = names.village_names(naming, N_VILLAGES)
    households = _households(sub_rng(seed, "census"))
    roster = _Roster(sub_rng(seed, "staff"))
    roster.add("county_dispatcher", None, None, ())

    towns: list[Town] = []
    villages: list[Village] = []
    grids: list[Grid] = []
    for t, (town_rect, counts) in enumerate(zip(town_rects, grid_counts_by_town, strict=True)):
        town_id = f"T{t + 1:02d}"
        towns.append(Town(town_id, town_names[t], town_rect.polygon()))
        for _ in range(roster.rng.randint(*SUPERVISORS_PER_TOWN)):
            roster.add("town_supervisor", town_id, None, ())
        village_rects = layout_columns(town_rect, [c * layout.uniform(0.8, 1.25) for c in counts])
        for v, (village_rect, n_grids) in enumerate(zip(village_rects, counts, strict=True)):
            village_id = f"{town_id}V{v + 1:02d}"
            name = village_names[len(villages)]
            villages.append(
                Village(village_id, name, town_id, village_rect.polygon(), names.village_aliases(naming, name))
            )
            grid_ids = [f"{village_id}G{g + 1:03d}" for g in range(n_grids)]
            cadre_of = roster.cadres(town_id, village_id, grid_ids)
            cells = jittered_cells(village_rect, n_grids, layout)
            for grid_id, cell in zip(grid_ids, cells, strict=True):
                hh, people = households[len(grids)]
                leader = roster.add("grid_leader", town_id, village_id, (grid_id,))
                n_helpers = roster.rng.randint(*HELPERS_PER_GRID)
                helpers = tuple(roster.add("helper", town_id, village_id, (grid_id,)) for _ in range(n_helpers))
                grids.append(
                    Grid(
                        grid_id=grid_id,
                        name=f"{name}第{int(grid_id[-3:])}网格",
                        village_id=village_id,
                        town_id=town_id,
                        polygon=cell,
                        households=hh,
                        population=people,
                        leader_id=leader,
                        cadre_id=cadre_of[grid_id],
                        helper_ids=helpers,
                    )
                )
    return County(tuple(towns), tuple(villages), tuple(grids), tuple(roster.staff))


def _households(rng: random.Random) -> list[tuple[int, int]]:
    """(households, population) per grid, the county total drawn within POPULATION_TARGET.

    Households lean to the upper end (most grids are drawn near 60) because 2,635 grids of ~45
    households could not reach 430,000 people at ≤3.5 people per household.
    """
    lo_h, hi_h = HOUSEHOLDS
    lo_p, hi_p = PEOPLE_PER_HOUSEHOLD
    hh = [round(rng.triangular(lo_h, hi_h, 58)) for _ in range(N_GRIDS)]
    ratio = [rng.uniform(2.9, 3.4) for _ in range(N_GRIDS)]
    scale = rng.uniform(*POPULATION_TARGET) / sum(h * r for h, r in zip(hh, ratio, strict=True))
    out = []
    for h, r in zip(hh, ratio, strict=True):
        people = round(h * r * scale)
        out.append((h, min(max(people, math.ceil(h * lo_p)), math.floor(h * hi_p))))
    return out


class _Roster:
    """Hands out staff ids (S00001...) in creation order, with unique phone numbers."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.staff: list[RosterMember] = []
        self._phones: set[str] = set()

    def add(self, role: Role, town_id: str | None, village_id: str | None, grid_ids: tuple[str, ...]) -> str:
        phone = names.mobile_phone(self.rng)
        while phone in self._phones:
            phone = names.mobile_phone(self.rng)
        self._phones.add(phone)
        staff_id = f"S{len(self.staff) + 1:05d}"
        self.staff.append(
            RosterMember(staff_id, names.person_name(self.rng), role, phone, town_id, village_id, grid_ids)
        )
        return staff_id

    def cadres(self, town_id: str, village_id: str, grid_ids: list[str]) -> dict[str, str]:
        """Village cadres, each covering a run of neighbouring grids; returns grid_id → cadre id."""
        n_cadres = max(1, round(len(grid_ids) / self.rng.uniform(*GRIDS_PER_CADRE)))
        cadre_of: dict[str, str] = {}
        start = 0
        for size in apportion(len(grid_ids), [1.0] * n_cadres):
            covered = tuple(grid_ids[start : start + size])
            cadre = self.add("village_cadre", town_id, village_id, covered)
            cadre_of.update(dict.fromkeys(covered, cadre))
            start += size
        return cadre_of
