"""countysim: a deterministic, seeded synthetic county (towns, villages, grids, staff) and its petitions.

The demo data, test fixture and benchmark input of the petition platform::

    from datetime import datetime, timezone
    from countysim import generate_county, generate_petitions

    county = generate_county(seed=20240101)          # 12 towns, 119 villages, 2,635 grids
    registry = county.to_geojson()                   # body for routing's POST /v1/grids/import
    petitions = generate_petitions(county, n=1000, seed=1,
                                   start=datetime(2024, 7, 1, tzinfo=timezone.utc), days=7)
    petitions[0].body                                # body for intake's POST /v1/petitions
    petitions[0].truth                               # grid_id, route kind, submitted_at
"""

from countysim.county import generate_county
from countysim.houses import Houses, generate_houses
from countysim.model import AreaLevel, County, Grid, Role, RosterMember, Town, Village
from countysim.petitions import (
    CHANNEL_MIX,
    LOCATION_MIX,
    GeneratedPetition,
    PetitionTruth,
    RouteKind,
    generate_petitions,
    load_category_shares,
    plant_hotspot,
)

__all__ = [
    "CHANNEL_MIX",
    "LOCATION_MIX",
    "AreaLevel",
    "County",
    "GeneratedPetition",
    "Grid",
    "Houses",
    "PetitionTruth",
    "Role",
    "RosterMember",
    "RouteKind",
    "Town",
    "Village",
    "generate_county",
    "generate_houses",
    "generate_petitions",
    "load_category_shares",
    "plant_hotspot",
]
