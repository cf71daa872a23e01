"""Issue #16, "Done when": a Schemathesis fuzz pass over every operation of the four OpenAPI documents,
against the four services running as real processes over the local Kafka and FerretDB.

Each operation is fuzzed in both of Schemathesis' modes: positive (data the document allows) and
negative (data it forbids). Staff operations get a valid bearer token, an auditor's token (valid,
but it may act on nothing) or none at all, drawn per example; a negative example whose headers are
the invalid part is sent with its own headers only (a token added would make it valid again).
Positive examples are steered towards the service's real data some of the time (real petition ids
and their tracking codes, categories, phone numbers, grid ids), so that they get past "not found"
and into the code that writes.

Every answer must be:
- never a 5xx (nothing is down, so not even a 503);
- a status the document declares for the operation, with the declared content type, headers and
  schema (Schemathesis' own checks);
- for negative data, a 4xx (the request is refused, never half-applied);
- for a staff operation without a token, 401 with `WWW-Authenticate`.

After the pass, `test_nothing_half_stored` checks that intake stored exactly the petitions it
answered 201 for (a refusal left no petition, no idempotency claim and no follower behind), each one
readable back whole, published once on Kafka, and that every one reached routing, sla and stats.

Generation is seeded per operation and mode, without shrinking: CI fuzzes the same inputs every time,
and a failure prints the request that reproduces it.
"""

from __future__ import annotations

import copy
import uuid
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from pymongo import MongoClient
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from countysim import generate_county
from petition_common.config import REPO_ROOT
from petition_devtools.processes import SERVICES, ServiceFleet
from petition_devtools.tokens import county_tokens, token_for, write_tokens_file
from tests.conftest import RUN_ID
from tests.e2e.abuse_world import small_registry
from tests.support import MONGO, eventually, read_topic

SEED = 16
MAX_EXAMPLES = 30  # per operation and mode: 36 operations x 2 modes, about two minutes on 2 busy cores
N_SEED_PETITIONS = 12
# the first ones are the citizens' to withdraw and rate, the rest the staff's to act on: were they shared,
# the citizens' fuzzing (intake comes first) would withdraw them all and leave staff nothing but 409s
N_CITIZENS_PETITIONS = 4
DOCUMENTS = REPO_ROOT / "contract" / "openapi"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
CATEGORIES = ["drainage", "environment", "roads", "neighbour_dispute", "other"]
PHONES = ["13812341234", "0532-88881234", "+86 139 1234 5678", "(0571)88776655"]
DEPARTMENTS = ["county_housing_bureau", "town_mediation_office", "county_dispatch_centre"]
SCHEMAS = {service: schemathesis.openapi.from_path(DOCUMENTS / f"{service}.yaml") for service in SERVICES}


def _operations() -> list[tuple[str, str, str, GenerationMode]]:
    """Every operation of the four documents, in both modes; negative only where there is an input to
    make invalid (/healthz has none)."""
    found = []
    for service, schema in SCHEMAS.items():
        for result in schema.get_all_operations():
            op = result.ok()
            modes = [GenerationMode.POSITIVE]
            if list(op.iter_parameters()) or list(op.body):
                modes.append(GenerationMode.NEGATIVE)
            found.extend((service, op.method.upper(), op.path, mode) for mode in modes)
    return found


OPERATIONS = _operations()


@dataclass
class Ledger:
    """What the fuzz pass was answered, for the invariants checked after it."""

    accepted: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # id -> (code, body)
    joined: set[str] = field(default_factory=set)  # petitions a join was answered 201 for
    statuses: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))


@dataclass
class World:
    urls: dict[str, str]
    dispatcher: str
    auditor: str
    petitions: list[tuple[str, str]]  # (id, tracking code) of the seed petitions
    grid_ids: list[str]
    village_ids: list[str]
    towns: list[str]
    env: dict[str, str]
    ledger: Ledger = field(default_factory=Ledger)

    def tracking_code(self, petition_id: str) -> str | None:
        return dict(self.petitions).get(petition_id)

    def petition_ids(self, service: str, method: str) -> list[str]:
        """The seed petitions an operation aims at: changes split between citizens and staff, reads all."""
        if method == "GET":
            pool = self.petitions
        elif service == "intake":
            pool = self.petitions[:N_CITIZENS_PETITIONS]
        else:
            pool = self.petitions[N_CITIZENS_PETITIONS:]
        return [pid for pid, _ in pool]


@pytest.fixture(scope="module")
def world(run_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The four services over the local stack, on topics and databases of this module alone, with two
    villages of the generated county imported and a few routed petitions to aim at."""
    tmp = tmp_path_factory.mktemp("fuzz")
    prefix = f"t{RUN_ID}-fuzz{uuid.uuid4().hex[:4]}"
    county = generate_county(seed=7)
    dispatcher = next(s for s in county.staff if s.role == "county_dispatcher").staff_id
    env = {
        **run_env,
        "KAFKA_TOPIC_PREFIX": f"{prefix}-",
        "MONGO_DB_PREFIX": f"{prefix.replace('-', '_')}_",
        "STAFF_TOKENS_FILE": str(write_tokens_file(tmp / "tokens.yaml", county_tokens(county))),
        "ROUTING_DISPATCHER_ID": dispatcher,
        "RATE_LIMITS": "off",  # thousands of requests from one client are the point here
    }
    fleet = ServiceFleet(env=env, log_dir=tmp / "logs")
    try:
        urls = {service: fleet.start(service).url for service in SERVICES}
        fleet.wait_ready()
        registry = small_registry(county)
        staff = {"Authorization": f"Bearer {token_for(dispatcher)}"}
        resp = requests.post(f"{urls['routing']}/v1/grids/import", json=registry, headers=staff, timeout=60)
        assert resp.status_code == 200, resp.text
        grids = [f["properties"] for f in registry["features"]]
        world = World(
            urls=urls,
            dispatcher=token_for(dispatcher),
            auditor="tok-auditor",
            petitions=[],
            grid_ids=[g["grid_id"] for g in grids],
            village_ids=sorted({g["village_id"] for g in grids}),
            towns=sorted({g["town"] for g in grids}),
            env=env,
        )
        world.petitions = [_seed_petition(world, i, grids[i % len(grids)]) for i in range(N_SEED_PETITIONS)]
        for pid, _ in world.petitions:  # routed: the staff actions have work orders to act on
            eventually(lambda pid=pid: _assert_status(world, "routing", f"/v1/workorders/{pid}", 200), 60)
        yield world
    finally:
        fleet.stop_all(kill=False)


def _seed_petition(world: World, i: int, grid: dict[str, Any]) -> tuple[str, str]:
    body = {
        "channel": "web",
        "category": CATEGORIES[i % len(CATEGORIES)],
        "content": f"第{i}号：路口下水道堵塞，污水漫到路面。",
        "location": {"town": grid["town"], "village": grid["village"], "grid_id": grid["grid_id"]},
        "citizen": {"name": "刘洋", "phone": f"138{i:08d}"},
    }
    resp = requests.post(f"{world.urls['intake']}/v1/petitions", json=body, timeout=30)
    assert resp.status_code == 201, resp.text
    receipt = resp.json()
    world.ledger.accepted[receipt["petition_id"]] = (receipt["tracking_code"], body)
    return receipt["petition_id"], receipt["tracking_code"]


def _assert_status(world: World, service: str, path: str, status: int) -> requests.Response:
    resp = requests.get(
        f"{world.urls[service]}{path}", headers={"Authorization": f"Bearer {world.dispatcher}"}, timeout=10
    )
    assert resp.status_code == status, (service, path, resp.status_code, resp.text[:300])
    return resp


# ---- the fuzz pass


def _needs_token(operation: schemathesis.APIOperation) -> bool:
    """Whether every way the document allows to call the operation includes the bearer token."""
    security = operation.definition.raw.get("security", operation.schema.raw_schema.get("security", []))
    return bool(security) and all(requirement for requirement in security)


def _allows_token(operation: schemathesis.APIOperation) -> bool:
    security = operation.definition.raw.get("security", operation.schema.raw_schema.get("security", []))
    return any(requirement for requirement in security)


def _negative_headers(case: schemathesis.Case) -> bool:
    """Whether the example's headers are the part made invalid (negative mode)."""
    info = case.meta.components.get(ParameterLocation.HEADER) if case.meta is not None else None
    return info is not None and info.mode.is_negative


def _seed_for(label: str) -> int:
    return zlib.crc32(f"{SEED}:{label}".encode())


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("service", "method", "path", "mode"), OPERATIONS, ids=[f"{s}:{m} {p}:{g.value}" for s, m, p, g in OPERATIONS]
)
def test_fuzz_operation(world: World, service: str, method: str, path: str, mode: GenerationMode) -> None:
    operation = SCHEMAS[service][path][method]
    label = f"{service} {method} {path} {mode.value}"
    tokens: list[str | None] = [None]
    if _allows_token(operation):
        # mostly the dispatcher, who may do everything, so that most examples reach the code behind
        # the token; then an auditor, who may read but not act, and no token at all
        tokens = [world.dispatcher, world.dispatcher, world.auditor, None]
    http = requests.Session()

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking: every example costs a real request
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @hypothesis.seed(_seed_for(label))
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def fuzz(case: schemathesis.Case, data: st.DataObject) -> None:
        token = data.draw(st.sampled_from(tokens), label="token")
        if _negative_headers(case):
            # the case's own headers go out: a token added here would undo what was made invalid (a
            # removed Authorization header), and the valid request that results would be no finding
            token = None
        if mode is GenerationMode.POSITIVE:
            _aim_at_real_data(case, data, world, service)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = case.call(base_url=world.urls[service], session=http, headers=headers, timeout=30)
        world.ledger.statuses[label][response.status_code] += 1
        case.validate_response(response, checks=CHECKS, headers=headers)
        if token is None and _needs_token(operation):
            assert response.status_code == 401, (label, response.status_code, response.text[:300])
            assert response.headers.get("www-authenticate") == ["Bearer"], label  # lower-cased, all values
        _record(world, service, method, path, case, response)

    fuzz()


def _aim_at_real_data(case: schemathesis.Case, data: st.DataObject, world: World, service: str) -> None:
    """In two positive examples of three, replace generated values with the world's real ones (a petition
    id and its tracking code, a category, a phone number, a grid, a department, a town) and drop body
    fields the schema does not name, so that those examples get past "not found", "unknown category"
    and "unknown field" into the code that stores things. The rest stay as generated."""
    if not data.draw(st.sampled_from([True, True, False]), label="aim"):
        return

    def real(choices: list[str]) -> str:
        return data.draw(st.sampled_from(choices))

    params = case.path_parameters or {}
    if "id" in params:
        params["id"] = real(world.petition_ids(service, case.operation.method.upper()))
    if "grid_id" in params:
        params["grid_id"] = real(world.grid_ids)
    if "village_id" in params:
        params["village_id"] = real(world.village_ids)
    code = world.tracking_code(params.get("id", ""))
    query = case.query if isinstance(case.query, dict) else {}
    for where, key in ((query, "tracking_code"), (case.headers or {}, "X-Tracking-Code")):
        if code and key in where:
            where[key] = code
    if "category" in query:
        query["category"] = real(CATEGORIES)
    if "town" in query:
        query["town"] = real(world.towns)
    body = case.body if isinstance(case.body, dict) else None
    if body is None:
        return
    for unknown in set(body) - _body_fields(case.operation):
        del body[unknown]
    if code and "tracking_code" in body:
        body["tracking_code"] = code
    for key, choices in (("category", CATEGORIES), ("grid_id", world.grid_ids), ("department", DEPARTMENTS)):
        if isinstance(body.get(key), str):
            body[key] = real(choices)
    citizen, location = body.get("citizen"), body.get("location")
    if isinstance(citizen, dict) and isinstance(citizen.get("phone"), str):
        citizen["phone"] = real(PHONES)
    if isinstance(location, dict) and isinstance(location.get("grid_id"), str):
        location["grid_id"] = real(world.grid_ids)


def _body_fields(operation: schemathesis.APIOperation) -> set[str]:
    """The top-level fields the operation's JSON body schema names."""
    for body in operation.body:
        properties = body.resolved_schema.get("properties")
        return set(properties) if isinstance(properties, dict) else set()
    return set()


def _record(world: World, service: str, method: str, path: str, case: schemathesis.Case, response: Any) -> None:
    if service == "intake" and path == "/v1/petitions/batch" and response.status_code == 200:
        for result in response.json()["results"]:  # each item answered 201 is a petition accepted
            if result["status"] == 201:
                receipt, body = result["petition"], copy.deepcopy(case.body["items"][result["index"]]["petition"])
                world.ledger.accepted.setdefault(receipt["petition_id"], (receipt["tracking_code"], body))
        return
    if service != "intake" or method != "POST" or response.status_code != 201:
        return
    receipt = response.json()
    if path == "/v1/petitions":
        # a copy: Schemathesis hands the document's example body to more than one case, the same dict,
        # which _aim_at_real_data then changes in place for the next one
        body = copy.deepcopy(case.body)
        world.ledger.accepted.setdefault(receipt["petition_id"], (receipt["tracking_code"], body))
    elif path.endswith("/join"):
        world.ledger.joined.add(receipt["petition_id"])


# ---- after the pass: nothing half-stored


@pytest.mark.timeout(300)
def test_nothing_half_stored(world: World) -> None:
    ledger = world.ledger
    _print_statuses(ledger)
    client: MongoClient = MongoClient(MONGO)
    try:
        _assert_intake_stored_exactly_the_201s(client[f"{world.env['MONGO_DB_PREFIX']}intake"], ledger)
    finally:
        client.close()
    stored = set(ledger.accepted)

    http = requests.Session()
    staff = {"Authorization": f"Bearer {world.dispatcher}"}
    for pid, (code, body) in ledger.accepted.items():
        mine = http.get(f"{world.urls['intake']}/v1/petitions/{pid}", params={"tracking_code": code}, timeout=10)
        assert mine.status_code == 200, (pid, mine.text)
        seen = http.get(f"{world.urls['intake']}/v1/petitions/{pid}", headers=staff, timeout=10).json()
        assert (seen["category"], seen["channel"]) == (body["category"], body["channel"]), pid
        assert seen["content"] == body["content"].strip(), pid
        assert seen["citizen"]["name"] == body["citizen"]["name"].strip(), pid

    topic = f"{world.env['KAFKA_TOPIC_PREFIX']}petitions.intake.v1"
    submitted = _submitted_events(topic, len(stored))
    assert sorted(submitted) == sorted(stored)  # each one published, once

    for pid in sorted(stored):  # and each one reached every service that follows intake
        eventually(lambda pid=pid: _assert_consistent(world, pid), 60)
    eventually(lambda: _assert_counted(world, len(stored)), 60)


def _assert_intake_stored_exactly_the_201s(intake_db: Any, ledger: Ledger) -> None:
    """A refusal left no petition, idempotency claim or follower behind, and every 201 is stored."""
    stored = {doc["aggregate_id"] for doc in intake_db["petitions_commits"].find({"seq": 1, "void": {"$ne": True}})}
    assert stored == set(ledger.accepted), stored ^ set(ledger.accepted)
    for claim in intake_db["idempotency"].find({}):
        assert claim["petition_id"] in stored, claim["_id"]
    followed = {doc["_id"].split(":", 1)[0] for doc in intake_db["followers"].find({})}
    assert followed <= ledger.joined, followed - ledger.joined
    eventually(lambda: _assert_empty(intake_db["outbox"]), 60)  # and every commit was published


def _print_statuses(ledger: Ledger) -> None:
    """The answers of the pass, per operation and mode (pytest -s shows them; docs/security.md cites them)."""
    for label, counts in sorted(ledger.statuses.items()):
        print(f"{label}: {dict(sorted(counts.items()))}")


def _assert_empty(collection: Any) -> None:
    assert collection.count_documents({}) == 0, collection.full_name


def _submitted_events(topic: str, expected: int) -> list[str]:
    def submitted(messages: list[dict]) -> dict[str, str]:
        by_id = {m["value"]["id"]: m["key"] for m in messages if m["value"]["type"] == "petition.submitted"}
        return by_id

    messages = read_topic(topic, lambda ms: len(submitted(ms)) >= expected, timeout_s=60)
    return list(submitted(messages).values())


def _assert_consistent(world: World, pid: str) -> None:
    order = _assert_status(world, "routing", f"/v1/workorders/{pid}", 200).json()
    _assert_status(world, "sla", f"/v1/sla/petitions/{pid}", 200)
    petition = _assert_status(world, "intake", f"/v1/petitions/{pid}", 200).json()
    assert petition["status"] == order["status"], (pid, petition["status"], order["status"])


def _assert_counted(world: World, n: int) -> None:
    path = "/v1/stats/summary?from=1970-01-01&to=2999-12-31"
    summary = _assert_status(world, "stats", path, 200).json()
    assert summary["accepted"] + summary["duplicates"] == n, summary
