"""A small world for the abuse tests (issue #16): intake and routing (and, where asked, sla and
stats) as real processes, with two villages of the generated county as the grid registry and a
staff token for every grid leader, village cadre, town supervisor and the dispatcher."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import requests

from countysim import County
from petition_devtools.processes import ServiceFleet
from petition_devtools.tokens import county_tokens, token_for, write_tokens_file

VILLAGES = ("T01V01", "T01V02")


@dataclass
class World:
    urls: dict[str, str]
    county: County
    registry: dict

    def bearer(self, staff_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token_for(staff_id)}"}

    def staff(self, role: str, village_id: str | None = None) -> str:
        return next(
            s.staff_id
            for s in self.county.staff
            if s.role == role and (village_id is None or s.village_id == village_id)
        )

    @property
    def dispatcher(self) -> dict[str, str]:
        return self.bearer(self.staff("county_dispatcher"))

    def grid(self, village_id: str, n: int = 0) -> dict:
        """Properties of the n-th imported grid of the village."""
        grids = [f["properties"] for f in self.registry["features"] if f["properties"]["village_id"] == village_id]
        return grids[n]


def small_registry(county: County) -> dict:
    """The grids of two neighbouring villages: enough to route and transfer, quick to import."""
    geojson = county.to_geojson()
    features = [f for f in geojson["features"] if f["properties"]["village_id"] in VILLAGES]
    return {**geojson, "features": features}


def start_world(
    fleet: ServiceFleet,
    county: County,
    tmp_path: Path,
    services: tuple[str, ...] = ("intake", "routing"),
    env: dict[str, str] | None = None,
) -> World:
    tokens = write_tokens_file(tmp_path / "tokens.yaml", county_tokens(county))
    dispatcher = next(s for s in county.staff if s.role == "county_dispatcher")
    env = {"STAFF_TOKENS_FILE": str(tokens), "ROUTING_DISPATCHER_ID": dispatcher.staff_id, **(env or {})}
    urls = {name: fleet.start(name, extra_env=env).url for name in services}
    fleet.wait_ready()
    world = World(urls, county, small_registry(county))
    if "routing" in urls:
        resp = requests.post(
            f"{urls['routing']}/v1/grids/import", json=world.registry, headers=world.dispatcher, timeout=60
        )
        assert resp.status_code == 200, resp.text
    return world
