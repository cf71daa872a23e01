"""Every staff endpoint of the OpenAPI documents × every role × inside and outside its area, on the
real stack with Keycloak's tokens, checked against the one rule (petition_kernel.access).

The operations come from contract/openapi/*.yaml (those whose security names bearerAuth); each must
have a probe in PROBES saying how to call it and what kind of permission it needs. An operation
without one fails the test: a new staff endpoint is not done until its row is here."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml

from countysim import generate_county
from petition_common.auth import MACHINE_ROLE, STAFF_ROLES, Staff, staff_from_claims
from petition_kernel.access import (
    Area,
    may_act,
    may_audit,
    may_manage_registry,
    may_read,
    may_read_registry,
    may_submit_batches,
)
from tests.e2e.abuse_world import start_world
from tests.e2e.identity_world import Roster, machine_token
from tests.e2e.test_submission_event import BODY
from tests.support import eventually

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "routing", "sla", "stats")
ROLES = (*STAFF_ROLES, MACHINE_ROLE)
VILLAGES = ("T01V01", "T02V01")  # two towns: one grid leader's, village cadre's and town supervisor's outside
COUNTY = generate_county(seed=7)
_GEOJSON = COUNTY.to_geojson()
REGISTRY = {**_GEOJSON, "features": [f for f in _GEOJSON["features"] if f["properties"]["village_id"] in VILLAGES]}
GRIDS = {v: next(f["properties"] for f in REGISTRY["features"] if f["properties"]["village_id"] == v) for v in VILLAGES}
ACTIONS = {
    "contact": {},
    "reply": {"resolution": "explained", "summary": "已答复"},
    "transfer": {"department": "county_ecology_bureau", "reason": "换部门"},  # keeps the grid
    "pause": {"reason": "third_party"},
    "resume": {},
    "close": {},
}


def staff_operations() -> set[tuple[str, str, str]]:
    """(service, METHOD, path) of every operation that takes a staff bearer token."""
    out = set()
    for service in SERVICES:
        doc = yaml.safe_load((REPO / "contract" / "openapi" / f"{service}.yaml").read_text(encoding="utf-8"))
        default = doc.get("security", [])
        for path, item in doc["paths"].items():
            for method, op in _resolved(item).items():
                if method not in ("get", "post", "put", "patch", "delete"):
                    continue
                if any("bearerAuth" in req for req in op.get("security", default)):
                    out.add((service, method.upper(), path))
    return out


def _resolved(item: dict) -> dict:
    """A path item, or the one its `$ref` names in another document (`./common.yaml#/a/b`)."""
    if "$ref" not in item:
        return item
    file, _, pointer = item["$ref"].partition("#")
    found = yaml.safe_load((REPO / "contract" / "openapi" / file).read_text(encoding="utf-8"))
    for part in pointer.strip("/").split("/"):
        found = found[part.replace("~1", "/").replace("~0", "~")]
    return found


@dataclass(frozen=True)
class Case:
    """An object of the test: a petition (with its work order, clocks and counts) and its area."""

    name: str
    petition_id: str
    grid_id: str | None

    @property
    def area(self) -> Area:
        return Area(grid_id=self.grid_id)


Call = Callable[[dict[str, str], dict[str, str], Case], bool | None]


def _status(resp: requests.Response, allowed: set[int]) -> bool:
    """True if the call was allowed, False if refused as the contract says (404); anything else fails."""
    assert resp.status_code in allowed | {404}, (resp.request.method, resp.url, resp.status_code, resp.text[:300])
    return resp.status_code != 404


def get(url: str, headers: dict[str, str], **params: str) -> requests.Response:
    return requests.get(url, headers=headers, params=params, timeout=30)


def read_object(service: str, path: str) -> Call:
    def call(urls, headers, case):
        return _status(get(urls[service] + path.format(id=case.petition_id), headers), {200})

    return call


def act(action: str) -> Call:
    def call(urls, headers, case):
        url = f"{urls['routing']}/v1/workorders/{case.petition_id}/{action}"
        resp = requests.post(url, json=ACTIONS[action], headers=headers, timeout=30)
        return _status(resp, {200, 409})  # 409: allowed, but not in the order's present state

    return call


def listed_orders(urls, headers, case):
    """Whether the list shows the case's order; asked for by id (a queue's page), it must answer alike."""
    listed = []
    for params in ({}, {"ids": case.petition_id}):
        resp = get(f"{urls['routing']}/v1/workorders", headers, **params)
        assert resp.status_code == 200, resp.text
        listed.append(case.petition_id in {o["petition_id"] for o in resp.json()["workorders"]})
    assert listed[0] == listed[1], (case, listed)
    return listed[0]


def listed_ids(urls, headers, case):
    """Whether the ids a list would consider name the case's order."""
    resp = get(f"{urls['routing']}/v1/workorders/ids", headers)
    assert resp.status_code == 200, resp.text
    return case.petition_id in resp.json()["petition_ids"]


def read_grid(urls, headers, case):
    if case.grid_id is None:
        return None  # placed in no grid: nothing to ask for
    return _status(get(f"{urls['routing']}/v1/grids/{case.grid_id}", headers), {200})


def import_registry(urls, headers, case):
    """The same registry again (the test's own): allowed or refused whatever the case, so asked once."""
    if case.name != "inside":
        return None
    resp = requests.post(f"{urls['routing']}/v1/grids/import", json=REGISTRY, headers=headers, timeout=120)
    return _status(resp, {200})


def whole_registry(urls, headers, case):
    """Not placed in an area: allowed or refused whatever the case, so asked once."""
    if case.name != "inside":
        return None
    return _status(get(f"{urls['routing']}/v1/grids", headers), {200})


def audit_trail(service: str) -> Call:
    def call(urls, headers, case):
        return _status(get(f"{urls[service]}/v1/audit", headers, petition_id=case.petition_id), {200})

    return call


def batch_clocks(urls, headers, case):
    """Whether the batch read of sla lists the case's petition (beside an id no petition has)."""
    resp = get(f"{urls['sla']}/v1/sla/petitions", headers, ids=f"{case.petition_id},ZZ20000101000000")
    assert resp.status_code == 200, resp.text
    return case.petition_id in {i["petition_id"] for i in resp.json()["items"]}


def submit_batch(urls, headers, case):
    """A batch of one new petition: not placed in an area, so asked once per principal."""
    if case.name != "inside":
        return None
    item = {
        "idempotency_key": f"access-{random.getrandbits(64):016x}",
        "petition": {**BODY, "content": f"{BODY['content']}（批量{random.getrandbits(32)}）", "citizen": _citizen()},
    }
    resp = requests.post(f"{urls['intake']}/v1/petitions/batch", json={"items": [item]}, headers=headers, timeout=30)
    if not _status(resp, {200}):
        return False
    assert [r["status"] for r in resp.json()["results"]] == [201], resp.text
    return True


def counted(path: str, items: str | None, field: str = "accepted", **params: str) -> Call:
    """Whether the case's petition is counted in an aggregate filtered to its grid."""

    def call(urls, headers, case):
        if case.grid_id is None:
            return None  # a grid filter cannot name it
        resp = get(f"{urls['stats']}{path}", headers, grid_id=case.grid_id, **params)
        if not _status(resp, {200}):  # an area filter outside the token's area
            return False
        body = resp.json()
        rows = body[items] if items else [body]
        return sum(r.get(field, 0) for r in rows) > 0

    return call


def scoped_list(service: str, path: str, key: str) -> Call:
    """A list every principal may ask for, whose items are only those it may read."""

    def call(urls, headers, case):
        resp = get(urls[service] + path, headers)
        assert resp.status_code == 200, resp.text
        return True

    return call


# (service, METHOD, path) -> (permission, probe): "read"/"act" on the case's area, "registry"
# (may_manage_registry), "whole registry" (may_read_registry), "audit" (may_audit), "batches"
# (may_submit_batches), "list" (any principal; items scoped)
PROBES: dict[tuple[str, str, str], tuple[str, Call]] = {
    ("intake", "GET", "/v1/petitions/{id}"): ("read", read_object("intake", "/v1/petitions/{id}")),
    ("intake", "POST", "/v1/petitions/batch"): ("batches", submit_batch),
    ("routing", "GET", "/v1/workorders"): ("read", listed_orders),
    ("routing", "GET", "/v1/workorders/ids"): ("read", listed_ids),
    ("routing", "GET", "/v1/workorders/{id}"): ("read", read_object("routing", "/v1/workorders/{id}")),
    **{("routing", "POST", f"/v1/workorders/{{id}}/{a}"): ("act", act(a)) for a in ACTIONS},
    ("routing", "GET", "/v1/grids/{grid_id}"): ("read", read_grid),
    ("routing", "POST", "/v1/grids/import"): ("registry", import_registry),
    ("routing", "GET", "/v1/grids"): ("whole registry", whole_registry),
    **{(service, "GET", "/v1/audit"): ("audit", audit_trail(service)) for service in SERVICES},
    ("sla", "GET", "/v1/sla/petitions/{id}"): ("read", read_object("sla", "/v1/sla/petitions/{id}")),
    ("sla", "GET", "/v1/sla/petitions"): ("read", batch_clocks),
    ("sla", "GET", "/v1/sla/overdue"): ("list", scoped_list("sla", "/v1/sla/overdue", "items")),
    ("stats", "GET", "/v1/stats/summary"): ("read", counted("/v1/stats/summary", None)),
    ("stats", "GET", "/v1/stats/breakdown"): ("read", counted("/v1/stats/breakdown", "items", by="grid")),
    ("stats", "GET", "/v1/stats/timeseries"): ("read", counted("/v1/stats/timeseries", "points", interval="day")),
    ("stats", "GET", "/v1/stats/ranking"): (
        "read",
        counted("/v1/stats/ranking", "items", "count", level="grid", metric="closure_rate"),
    ),
    ("stats", "GET", "/v1/stats/status"): ("list", scoped_list("stats", "/v1/stats/status", "")),
    ("stats", "GET", "/v1/alerts"): ("list", scoped_list("stats", "/v1/alerts", "items")),
}


def expected(permission: str, staff: Staff, case: Case) -> bool:
    if permission == "read":
        return may_read(staff, case.area)
    if permission == "act":
        return may_act(staff, case.area)
    if permission == "registry":
        return may_manage_registry(staff)
    if permission == "whole registry":
        return may_read_registry(staff)
    if permission == "audit":
        return may_audit(staff)
    if permission == "batches":
        return may_submit_batches(staff)
    return True


def test_every_staff_endpoint_has_a_row() -> None:
    missing = staff_operations() - set(PROBES)
    assert not missing, f"staff endpoints with no row in the access table: {sorted(missing)}"
    assert set(PROBES) <= staff_operations(), "rows for endpoints the documents do not have"


def test_every_endpoint_every_role_inside_and_outside_its_area(fleet, tmp_path) -> None:
    world = start_world(fleet, COUNTY, tmp_path, services=SERVICES)
    urls = world.urls
    resp = requests.post(f"{urls['routing']}/v1/grids/import", json=REGISTRY, headers=world.dispatcher, timeout=120)
    assert resp.status_code == 200, resp.text
    # routing caches its registry for a while: route nothing before it has the new one
    other = f"{urls['routing']}/v1/grids/{GRIDS['T02V01']['grid_id']}"
    eventually(lambda: requests.get(other, headers=world.dispatcher, timeout=10).raise_for_status())
    roster = Roster.connect()
    try:
        _check_table(world, roster)
    finally:
        roster.remove()


def _submit(intake: str, name: str, grid_id: str | None) -> Case:
    location = {"town": "无此镇", "village": "无此村"}  # names of no place: triage, unless a grid is given
    if grid_id:
        location["grid_id"] = grid_id
    # a citizen and a text of its own: a repeat would be counted as a duplicate, not as accepted
    body = {**BODY, "content": f"{BODY['content']}（{name}）", "citizen": _citizen(), "location": location}
    resp = requests.post(f"{intake}/v1/petitions", json=body, timeout=10)
    assert resp.status_code == 201, resp.text
    return Case(name, resp.json()["petition_id"], grid_id)


def _citizen() -> dict[str, str]:
    return {"name": "刘洋", "phone": f"1381234{random.randrange(10_000):04d}"}


def _check_table(world, roster: Roster) -> None:
    urls = world.urls
    inside = _submit(urls["intake"], "inside", GRIDS["T01V01"]["grid_id"])
    outside = _submit(urls["intake"], "other town", GRIDS["T02V01"]["grid_id"])
    triage = _submit(urls["intake"], "triage", None)
    cases = (inside, outside, triage)

    leader = GRIDS["T01V01"]["leader"]["staff_id"]
    cadre = world.staff("village_cadre", "T01V01")
    town = next(s.staff_id for s in COUNTY.staff if s.role == "town_supervisor" and s.town_id == "T01")
    dispatcher = world.staff("county_dispatcher")
    for sid in (leader, cadre, town, dispatcher):
        roster.add_from_county(COUNTY, sid)
    roster.add("A900001", "auditor")
    roster.sync()
    tokens = [roster.token(sid) for sid in (leader, cadre, town, dispatcher, "A900001")]
    tokens.append(machine_token(roster.admin))
    principals = [(_principal(t), {"Authorization": f"Bearer {t}"}) for t in tokens]
    assert {staff.role for staff, _ in principals} == set(ROLES)

    # the cases are what they claim: inside each area-bound role's area, or outside it
    for staff, _ in principals:
        if staff.role in ("grid_leader", "village_cadre", "town_supervisor"):
            assert may_read(staff, inside.area)
            assert not may_read(staff, outside.area) and not may_read(staff, triage.area)

    # every service has seen every case (as the county dispatcher sees them)
    county_headers = principals[3][1]
    for case in cases:
        for key, (permission, probe) in PROBES.items():
            if permission == "read":
                eventually(lambda k=key, p=probe, c=case: _true(k, c, p(urls, county_headers, c)), timeout_s=90)

    # reads first, then the actions (which move the orders' states but never their areas)
    failures = []
    for key, (permission, probe) in sorted(PROBES.items(), key=lambda kv: kv[1][0] == "act"):
        for staff, headers in principals:
            for case in cases:
                got = probe(urls, headers, case)
                if got is None:
                    continue
                want = expected(permission, staff, case)
                if got != want:
                    verdict = "allowed" if got else "refused"
                    failures.append(f"{key} {staff.role} {case.name}: {verdict}, the rule says {want}")
    assert not failures, "\n".join(failures)


def _true(key: tuple[str, str, str], case: Case, value: bool | None) -> None:
    assert value is not False, f"{key} does not show {case.name} to the county dispatcher"


def _principal(token: str) -> Staff:
    import jwt

    staff = staff_from_claims(jwt.decode(token, options={"verify_signature": False}))
    assert staff is not None
    return staff
