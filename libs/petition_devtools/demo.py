"""A county to try: the generated county's registry, staff tokens and the development login's accounts.

`bin/run` (unless `--empty`) and the browser tests call `prepare` before starting the services (the
tokens file and the accounts file must exist when they start) and `import_registry` once routing is
ready. The demo county is countysim's seed 7, the one the end-to-end tests use.
"""

from __future__ import annotations

import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from tempfile import mkdtemp
from typing import Any

import requests

from countysim import County, generate_county, generate_houses
from petition_devtools.namespace import database_prefix
from petition_devtools.tokens import county_tokens, token_for, write_tokens_file

DEMO_SEED = 7
# the README's tokens keep working next to the county's own
DEVELOPMENT_TOKENS = {
    "dev-dispatcher": {"staff_id": "S000001", "role": "county_dispatcher"},
    "dev-auditor": {"staff_id": "A000001", "role": "auditor"},
}


def demo_county() -> County:
    return generate_county(seed=DEMO_SEED)


def dispatcher_of(county: County) -> str:
    return next(s.staff_id for s in county.staff if s.role == "county_dispatcher")


def first_village_leader(county: County) -> str:
    """The leader of the default grid of the first village in the citizen page's lists: the account
    a newcomer logs in with after submitting a petition for that village."""
    village = county.villages[0]
    grid = min((g for g in county.grids if g.village_id == village.village_id), key=lambda g: g.grid_id)
    return grid.leader_id


def prepare(county: County, directory: Path) -> dict[str, str]:
    """Write the tokens and accounts files; the environment that points the services at them."""
    tokens = write_tokens_file(directory / "staff-tokens.yaml", {**county_tokens(county), **DEVELOPMENT_TOKENS})
    accounts = directory / "demo-accounts.json"
    accounts.write_text(json.dumps(demo_accounts(county), ensure_ascii=False), encoding="utf-8")
    # the grid map's house layer: the generator's ~210,000 houses (a site exports its own house registry)
    houses = generate_houses(county, seed=DEMO_SEED).write_csv(directory / "houses.csv.gz")
    return {
        "WEB_HOUSES_FILE": str(houses),
        "STAFF_TOKENS_FILE": str(tokens),
        "ROUTING_DISPATCHER_ID": dispatcher_of(county),
        "WEB_DEMO_ACCOUNTS_FILE": str(accounts),
    }


def demo_accounts(county: County) -> list[dict[str, Any]]:
    """Every staff member who may log in, with a Chinese label of their area."""
    towns = {t.town_id: t.name for t in county.towns}
    villages = {v.village_id: v.name for v in county.villages}
    grid_names = {g.grid_id: g.name for g in county.grids}
    first_town = county.towns[0].town_id
    featured = {dispatcher_of(county), first_village_leader(county)}
    featured |= {next(s.staff_id for s in county.staff if s.role == "town_supervisor" and s.town_id == first_town)}
    featured |= {
        next(
            s.staff_id
            for s in county.staff
            if s.role == "village_cadre" and s.village_id == county.villages[0].village_id
        )
    }
    out = []
    for s in county.staff:
        if s.role == "helper":
            continue
        if s.role == "county_dispatcher":
            area = "县指挥中心"
        elif s.role == "town_supervisor":
            area = towns.get(s.town_id or "", "")
        else:
            area = towns.get(s.town_id or "", "") + villages.get(s.village_id or "", "")
            if s.role == "grid_leader":
                area += " " + "、".join(grid_names[g] for g in s.grid_ids)
        out.append(
            {
                "staff_id": s.staff_id,
                "name": s.name,
                "role": s.role,
                "area": area,
                "token": token_for(s.staff_id),
                "town_id": s.town_id,
                "featured": s.staff_id in featured,
            }
        )
    out.sort(key=lambda a: (not a["featured"], a["staff_id"]))
    out.append(
        {
            "staff_id": "A000001",
            "name": "审计演示",
            "role": "auditor",
            "area": "全县",
            "token": "tok-auditor",
            "town_id": None,
            "featured": True,
        }
    )
    return out


def import_registry(routing_url: str, county: County) -> dict[str, Any]:
    """The county's grid registry into routing, as its county dispatcher."""
    resp = requests.post(
        f"{routing_url}/v1/grids/import",
        json=county.to_geojson(),
        headers={"Authorization": f"Bearer {token_for(dispatcher_of(county))}"},
        timeout=120,
    )
    resp.raise_for_status()
    return resp.json()


def demo_password(staff_id: str) -> str:
    """The featured accounts' password at the local Keycloak: public, development only."""
    return f"{staff_id.lower()}-demo-pass"


def sync_accounts(county: County) -> None:
    """The demo county's roster (and the demo auditor) as Keycloak accounts; the featured accounts
    get `demo_password`. Prints what it did and how long it took."""
    from petition_devtools import accounts

    auditor = {"staff_id": "A000001", "name": "审计演示", "role": "auditor"}
    admin = accounts.Admin.connect(accounts.keycloak_url())
    result = accounts.sync(admin, accounts.roster_accounts(county, [auditor]))
    featured = [a["staff_id"] for a in demo_accounts(county) if a["featured"]]
    for staff_id in featured:
        accounts.set_password(admin, staff_id.lower(), demo_password(staff_id))
    print(
        f"\nKeycloak accounts: {result.created} created, {result.updated} updated, {result.disabled} disabled, "
        f"{result.unchanged} unchanged in {result.seconds:.1f}s; sign in as "
        + ", ".join(f"{s.lower()} / {demo_password(s)}" for s in featured),
        file=sys.stderr,
    )


LOCAL_KAFKA, LOCAL_MONGO = "127.0.0.1:9092", "mongodb://127.0.0.1:27017"


@dataclass(frozen=True)
class DemoRun:
    """A platform of the demo county on the local stack under its own topic and database prefix (a
    benchmark's; `petition_devtools.namespace.drop_namespace(LOCAL_MONGO, LOCAL_KAFKA, prefix)` removes
    it), with its files in `work`."""

    prefix: str
    work: Path
    env: dict[str, str]


def demo_run(name: str, county: County, **extra_env: str) -> DemoRun:
    prefix = f"{name}-{uuid.uuid4().hex[:6]}"
    work = Path(mkdtemp(prefix=f"{name}-"))
    env = {
        "KAFKA_TOPIC_PREFIX": f"{prefix}-",
        "MONGO_DB_PREFIX": database_prefix(prefix),
        "KAFKA_BOOTSTRAP_SERVERS": LOCAL_KAFKA,
        "MONGO_URI": LOCAL_MONGO,
        "LOG_LEVEL": "WARNING",
        **extra_env,
        **prepare(county, work),
    }
    return DemoRun(prefix, work, env)
