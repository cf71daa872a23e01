"""The machine-readable contract under contract/ is well-formed, self-consistent and agrees with CONTRACT.md.

CONTRACT.md (in the shared folder beside the repository) is the human-readable source. Checks that read it
are skipped when it is not there; everything else runs against the expectations written down here.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

import pytest
import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

REPO = Path(__file__).resolve().parents[3]
CONTRACT = REPO / "contract"
SCHEMAS = CONTRACT / "schemas"
EVENTS = SCHEMAS / "events"
ASYNCAPI = CONTRACT / "asyncapi.yaml"
OPENAPI = CONTRACT / "openapi"
SERVICES = ("intake", "routing", "sla", "stats")
CONTRACT_MD = REPO.parent / "shared" / "CONTRACT.md"

# topic -> (writer, channel key in asyncapi.yaml, event types), as in CONTRACT.md's topic table.
TOPICS = {
    "petitions.intake.v1": (
        "intake",
        "intake",
        ["petition.submitted", "petition.feedback_received", "petition.withdrawn"],
    ),
    "petitions.routing.v1": (
        "routing",
        "routing",
        [
            "petition.assigned",
            "petition.transferred",
            "petition.contacted",
            "petition.replied",
            "petition.closed",
            "petition.reopened",
            "petition.sla_paused",
            "petition.sla_resumed",
        ],
    ),
    "petitions.sla.v1": ("sla", "sla", ["sla.warning", "sla.breached"]),
    "petitions.alerts.v1": ("stats", "alerts", ["alert.hotspot"]),
}
DEADLETTER_TOPIC = "petitions.deadletter.v1"
# event types added since v1 (contract/README.md), by topic
ADDED_TYPES = {"petitions.sla.v1": ["sla.deadline_changed"]}
TOPICS_NOW = {topic: (w, c, [*types, *ADDED_TYPES.get(topic, [])]) for topic, (w, c, types) in TOPICS.items()}
EVENT_TYPES = [t for _, _, types in TOPICS_NOW.values() for t in types]
TOPIC_OF = {t: topic for topic, (_, _, types) in TOPICS_NOW.items() for t in types}

# Required fields of each event's data, as in CONTRACT.md.
REQUIRED = {
    "petition.submitted": ["petition_id", "channel", "category", "content", "location", "citizen", "submitted_at"],
    "petition.assigned": [
        "petition_id",
        "grid_id",
        "village",
        "town",
        "department",
        "assignee",
        "reason",
        "assigned_at",
    ],
    "petition.transferred": [
        "petition_id",
        "grid_id",
        "village",
        "town",
        "department",
        "assignee",
        "reason",
        "assigned_at",
    ],
    "petition.contacted": ["petition_id", "staff_id", "contacted_at"],
    "petition.replied": ["petition_id", "staff_id", "replied_at", "resolution", "summary"],
    "petition.closed": ["petition_id", "closed_at", "closed_by"],
    "petition.reopened": ["petition_id", "reopened_at", "reason"],
    "petition.sla_paused": ["petition_id", "staff_id", "at", "reason"],
    "petition.sla_resumed": ["petition_id", "staff_id", "at"],
    "petition.feedback_received": ["petition_id", "satisfaction", "received_at"],
    "petition.withdrawn": ["petition_id", "withdrawn_at"],
    "sla.warning": ["petition_id", "clock", "deadline", "grid_id", "town", "level", "remaining_seconds"],
    "sla.breached": ["petition_id", "clock", "deadline", "grid_id", "town", "level", "overdue_seconds"],
    "sla.deadline_changed": [
        "petition_id",
        "clock",
        "generation",
        "deadline",
        "previous_deadline",
        "provisional",
        "grid_id",
        "town",
        "reason",
    ],
    "alert.hotspot": [
        "alert_id",
        "kind",
        "area",
        "category",
        "window_start",
        "window_end",
        "count",
        "baseline",
        "petition_ids",
    ],
}
NESTED_REQUIRED = [
    ("petition.submitted", ("location", "town")),
    ("petition.submitted", ("location", "village")),
    ("petition.submitted", ("citizen", "name_masked")),
    ("petition.submitted", ("citizen", "phone_masked")),
    ("petition.assigned", ("assignee", "staff_id")),
    ("petition.assigned", ("assignee", "role")),
    ("alert.hotspot", ("area", "level")),
    ("alert.hotspot", ("area", "id")),
    ("alert.hotspot", ("area", "name")),
]

PID = "JZ20240717000123"
AREA_ID = "CG"
T0 = "2024-07-17T00:30:00.123Z"
ASSIGNMENT = {
    "petition_id": PID,
    "grid_id": "CG-DJ-03",
    "village": "东街村",
    "town": "城关镇",
    "department": "county_housing_bureau",
    "assignee": {"staff_id": "S0042", "role": "grid_leader"},
    "reason": "point in grid CG-DJ-03",
    "assigned_at": "2024-07-17T00:30:02Z",
}
# One valid data object per event type, with every optional field we plan to produce.
VALID: dict[str, dict[str, Any]] = {
    "petition.submitted": {
        "petition_id": PID,
        "channel": "hotline",
        "category": "drainage",
        "content": "下水道堵塞，污水漫到路面。",
        "location": {
            "town": "城关镇",
            "village": "东街村",
            "grid_id": "CG-DJ-03",
            "address": "3组路口",
            "lat": 30.2741,
            "lon": 120.1551,
        },
        "citizen": {"name_masked": "刘*", "phone_masked": "138****1234"},
        "submitted_at": T0,
        "duplicate_of": None,
        "affected_citizens": 1,
        "occurred_seq": 1,
    },
    "petition.assigned": {**ASSIGNMENT, "route": "point", "occurred_seq": 1},
    "petition.transferred": {
        **ASSIGNMENT,
        "grid_id": None,
        "village": None,
        "assignee": {"staff_id": "D0107", "role": "department"},
        "reason": "sewer main belongs to the water company",
        "route": "transfer",
        "previous": {"grid_id": "CG-DJ-03", "assignee": {"staff_id": "S0042", "role": "grid_leader"}},
        "occurred_seq": 3,
    },
    "petition.contacted": {
        "petition_id": PID,
        "staff_id": "S0042",
        "contacted_at": "2024-07-17T01:05:00Z",
        "occurred_seq": 2,
    },
    "petition.replied": {
        "petition_id": PID,
        "staff_id": "S0042",
        "replied_at": "2024-07-18T06:00:00Z",
        "resolution": "explained",
        "summary": "已解释。",
        "occurred_seq": 4,
    },
    "petition.closed": {
        "petition_id": PID,
        "closed_at": "2024-07-19T02:00:00Z",
        "closed_by": "timeout",
        "occurred_seq": 5,
    },
    "petition.reopened": {
        "petition_id": PID,
        "reopened_at": "2024-07-19T02:00:00Z",
        "reason": "dissatisfied feedback",
        "occurred_seq": 5,
    },
    "petition.sla_paused": {
        "petition_id": PID,
        "staff_id": "S0042",
        "at": "2024-07-17T01:00:00Z",
        "reason": "third_party",
        "occurred_seq": 2,
    },
    "petition.sla_resumed": {"petition_id": PID, "staff_id": "S0042", "at": "2024-07-17T05:00:00Z", "occurred_seq": 3},
    "petition.feedback_received": {
        "petition_id": PID,
        "satisfaction": "dissatisfied",
        "received_at": "2024-07-19T01:59:00Z",
        "occurred_seq": 2,
    },
    "petition.withdrawn": {"petition_id": PID, "withdrawn_at": "2024-07-17T02:00:00Z", "occurred_seq": 2},
    "sla.warning": {
        "petition_id": PID,
        "clock": "contact",
        "deadline": "2024-07-17T06:30:00Z",
        "grid_id": "CG-DJ-03",
        "town": "城关镇",
        "level": 1,
        "remaining_seconds": 3600,
        "occurred_seq": 1,
    },
    "sla.breached": {
        "petition_id": PID,
        "clock": "reply",
        "deadline": "2024-07-24T00:30:00Z",
        "grid_id": None,
        "town": None,
        "level": 3,
        "overdue_seconds": 7200,
        "occurred_seq": 2,
        "provisional": False,
    },
    "sla.deadline_changed": {
        "petition_id": PID,
        "clock": "reply",
        "generation": 0,
        "deadline": "2027-01-04T16:00:00Z",
        "previous_deadline": "2027-01-05T16:00:00Z",
        "provisional": False,
        "previous_provisional": True,
        "grid_id": None,
        "town": None,
        "reason": "calendar",
        "calendar_years": [2027],
        "corrected": [{"type": "sla.breached", "level": 1, "key": "reply.0:breached:1"}],
        "occurred_seq": 1,
    },
    "alert.hotspot": {
        "alert_id": "HS-1",
        "kind": "emerging",
        "area": {"level": "town", "id": AREA_ID, "name": "城关镇"},
        "category": "drainage",
        "window_start": "2024-07-10T00:00:00Z",
        "window_end": "2024-07-17T00:00:00Z",
        "count": 12,
        "baseline": 3.5,
        "petition_ids": [PID, "JZ20240716000087"],
        "occurred_seq": 1,
    },
}

# (method, path) of every HTTP endpoint of CONTRACT.md, plus the optional additions, per service.
CONTRACT_PATHS = {
    "intake": [
        ("post", "/v1/petitions"),
        ("get", "/v1/petitions/{id}"),
        ("post", "/v1/petitions/{id}/feedback"),
        ("post", "/v1/petitions/{id}/withdraw"),
    ],
    "routing": [("get", "/v1/workorders")]
    + [("post", f"/v1/workorders/{{id}}/{a}") for a in ("contact", "reply", "transfer", "pause", "resume", "close")]
    + [("post", "/v1/grids/import"), ("get", "/v1/grids/{grid_id}")],
    "sla": [("get", "/v1/sla/petitions/{id}"), ("get", "/v1/sla/overdue")],
    "stats": [
        ("get", "/v1/stats/summary"),
        ("get", "/v1/stats/breakdown"),
        ("get", "/v1/stats/timeseries"),
        ("get", "/v1/alerts"),
    ],
}
ADDITIONAL_PATHS = {
    "intake": [("get", "/v1/petitions/nearby"), ("post", "/v1/petitions/{id}/join"), ("get", "/v1/audit")],
    "routing": [
        ("get", "/v1/workorders/{id}"),
        ("get", "/v1/areas"),
        ("get", "/v1/areas/villages/{village_id}/grids"),
        ("get", "/v1/audit"),
    ],
    "sla": [("get", "/v1/audit")],
    "stats": [("get", "/v1/audit")],
}
OPERATIONAL_PATHS = [("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics")]
# Endpoints a citizen calls without a token (the tracking code, where needed, is in the request).
PUBLIC = {
    ("post", "/v1/petitions"),
    ("get", "/v1/petitions/nearby"),
    ("post", "/v1/petitions/{id}/feedback"),
    ("post", "/v1/petitions/{id}/withdraw"),
    ("post", "/v1/petitions/{id}/join"),
    # public place names for the citizen's location picker (routing)
    ("get", "/v1/areas"),
    ("get", "/v1/areas/villages/{village_id}/grids"),
}
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


# --------------------------------------------------------------------------------------------- loading


@functools.cache
def _load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return json.loads(text)
    return yaml.safe_load(text)


def load(path: Path) -> Any:
    """A fresh copy, so that a test may change it."""
    return copy.deepcopy(_load(path.resolve()))


def _retrieve(uri: str) -> Resource:
    parts = urlsplit(uri)
    if parts.scheme != "file":
        raise LookupError(f"refusing to fetch {uri}: the contract refers to local files only")
    return Resource.from_contents(_load(Path(url2pathname(parts.path)).resolve()), default_specification=DRAFT202012)


REGISTRY = Registry(retrieve=_retrieve)


def validator(path: Path, pointer: str = "") -> Draft202012Validator:
    """A validator for the schema at `path#pointer`, with relative $refs resolved by file location."""
    return Draft202012Validator(
        {"$ref": path.resolve().as_uri() + ("#" + pointer if pointer else "")}, registry=REGISTRY
    )


@functools.cache
def event_validator(event_type: str) -> Draft202012Validator:
    return validator(EVENTS / f"{event_type}.json")


@functools.cache
def envelope_validator() -> Draft202012Validator:
    return validator(SCHEMAS / "envelope.json")


def errors(v: Draft202012Validator, instance: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in v.iter_errors(instance)]


def valid(event_type: str) -> dict[str, Any]:
    return copy.deepcopy(VALID[event_type])


def envelope(event_type: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    writer = TOPICS[TOPIC_OF[event_type]][0]
    data = valid(event_type) if data is None else data
    return {
        "specversion": "1.0",
        "id": "0b9c2c1e-5a7f-4d7e-9b55-2f0c4bb5a0e1",
        "source": f"petitions/{writer}",
        "type": event_type,
        "subject": AREA_ID if event_type == "alert.hotspot" else PID,
        "time": "2024-07-17T00:30:00.123Z",
        "datacontenttype": "application/json",
        "data": data,
    }


def schema_files() -> list[Path]:
    return sorted(SCHEMAS.rglob("*.json"))


def yaml_files() -> list[Path]:
    return [ASYNCAPI, *sorted(OPENAPI.glob("*.yaml"))]


def contract_md() -> str:
    # CI lays ../shared beside the checkout, as every developer has it: a missing contract is a failure
    assert CONTRACT_MD.is_file(), f"{CONTRACT_MD} not present"
    return CONTRACT_MD.read_text(encoding="utf-8")


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(CONTRACT)) for p in paths]


# ---------------------------------------------------------------------------------------- schema files


@pytest.mark.parametrize("path", schema_files(), ids=_ids(schema_files()))
def test_schema_file_is_a_valid_draft_2020_12_schema(path: Path) -> None:
    schema = load(path)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", schema_files(), ids=_ids(schema_files()))
def test_schema_file_examples_are_valid(path: Path) -> None:
    v = validator(path)
    for example in load(path).get("examples", []):
        assert errors(v, example) == []


def test_every_event_type_has_its_own_schema_file_and_no_other_exists() -> None:
    assert sorted(p.name.removesuffix(".json") for p in EVENTS.glob("*.json")) == sorted(EVENT_TYPES)


def test_envelope_type_enum_is_the_event_types() -> None:
    assert sorted(load(SCHEMAS / "envelope.json")["properties"]["type"]["enum"]) == sorted(EVENT_TYPES)


def test_topic_table_of_contract_md_matches() -> None:
    text = contract_md()
    table: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"`petitions\.[a-z]+\.v1`", cells[0]):
            table[cells[0].strip("`")] = (cells[1], re.findall(r"`([a-z_]+\.[a-z_]+)`", cells[2]))
    assert DEADLETTER_TOPIC in table
    del table[DEADLETTER_TOPIC]
    assert {topic: (writer, types) for topic, (writer, _, types) in TOPICS.items()} == table
    for _, types in table.values():
        for event_type in types:
            assert (EVENTS / f"{event_type}.json").is_file(), event_type


# ---------------------------------------------------------------------------------------- event data


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_valid_data_passes(event_type: str) -> None:
    assert errors(event_validator(event_type), valid(event_type)) == []


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_valid_data_without_optional_fields_passes(event_type: str) -> None:
    data = {k: v for k, v in valid(event_type).items() if k in REQUIRED[event_type]}
    assert errors(event_validator(event_type), data) == []


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_unknown_additional_fields_are_allowed(event_type: str) -> None:
    assert errors(event_validator(event_type), {**valid(event_type), "x_new_optional_field": [1, 2]}) == []


@pytest.mark.parametrize(("event_type", "field"), [(t, f) for t in EVENT_TYPES for f in REQUIRED[t]])
def test_missing_required_field_fails(event_type: str, field: str) -> None:
    data = valid(event_type)
    del data[field]
    assert errors(event_validator(event_type), data)


@pytest.mark.parametrize(("event_type", "path"), NESTED_REQUIRED)
def test_missing_required_nested_field_fails(event_type: str, path: tuple[str, str]) -> None:
    data = valid(event_type)
    del data[path[0]][path[1]]
    assert errors(event_validator(event_type), data)


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_data_must_be_an_object(event_type: str) -> None:
    assert errors(event_validator(event_type), [valid(event_type)])


PHONE_MASKED_OK = ["138****1234", "199****0000", "0571-****1234", "0571****1234", "010-****5678", "****1234"]
PHONE_RAW = [
    "13812341234",
    "057188001234",
    "0571-88001234",
    "138 1234 1234",
    "+8613812341234",
    "138****123",
    "1381234****",
    "",
]


@pytest.mark.parametrize("phone", PHONE_MASKED_OK)
def test_masked_phone_passes(phone: str) -> None:
    data = valid("petition.submitted")
    data["citizen"]["phone_masked"] = phone
    assert errors(event_validator("petition.submitted"), data) == []


@pytest.mark.parametrize("phone", PHONE_RAW)
def test_raw_or_badly_masked_phone_fails(phone: str) -> None:
    data = valid("petition.submitted")
    data["citizen"]["phone_masked"] = phone
    assert errors(event_validator("petition.submitted"), data)


@pytest.mark.parametrize("name", ["刘*", "刘**", "欧***", "欧阳*", "张*三", "*", "J***", "M" + "*" * 25])
def test_masked_name_passes(name: str) -> None:
    data = valid("petition.submitted")
    data["citizen"]["name_masked"] = name
    assert errors(event_validator("petition.submitted"), data) == []


@pytest.mark.parametrize("name", ["刘德华", "刘德华*", "Liu Dehua", "", "刘 *", "13812341234*"])
def test_raw_or_badly_masked_name_fails(name: str) -> None:
    data = valid("petition.submitted")
    data["citizen"]["name_masked"] = name
    assert errors(event_validator("petition.submitted"), data)


@pytest.mark.parametrize("raw", [{"name": "刘德华"}, {"phone": "13812341234"}])
def test_raw_citizen_keys_are_forbidden(raw: dict[str, str]) -> None:
    data = valid("petition.submitted")
    data["citizen"].update(raw)
    assert errors(event_validator("petition.submitted"), data)


@pytest.mark.parametrize(("length", "ok"), [(0, False), (1, True), (5000, True), (5001, False)])
def test_content_length(length: int, ok: bool) -> None:
    data = valid("petition.submitted")
    data["content"] = "堵" * length  # code points, not bytes
    assert (errors(event_validator("petition.submitted"), data) == []) is ok


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("lat", 90, True),
        ("lat", -90, True),
        ("lat", 90.0001, False),
        ("lat", -91, False),
        ("lon", 180, True),
        ("lon", -180, True),
        ("lon", 180.5, False),
        ("lon", -181, False),
        ("lat", None, True),
        ("lat", "30.2", False),
        ("grid_id", None, True),
        ("grid_id", "", False),
    ],
)
def test_location_bounds(field: str, value: Any, ok: bool) -> None:
    data = valid("petition.submitted")
    data["location"][field] = value
    assert (errors(event_validator("petition.submitted"), data) == []) is ok


@pytest.mark.parametrize(
    "petition_id",
    [
        "JZ2024071700012",
        "JZ202407170001234",
        "jz20240717000123",
        "JZ-20240717-000123",
        "J120240717000123",
        " JZ20240717000123",
        20240717,
    ],
)
def test_malformed_petition_id_fails(petition_id: Any) -> None:
    for event_type in ("petition.submitted", "petition.withdrawn", "sla.warning"):
        data = valid(event_type)
        data["petition_id"] = petition_id
        assert errors(event_validator(event_type), data), event_type


@pytest.mark.parametrize(
    ("category", "ok"),
    [
        ("drainage", True),
        ("street_lights", True),
        ("Drainage", False),
        ("x", False),
        ("road-works", False),
        ("a" * 41, False),
    ],
)
def test_category_is_a_code_not_an_enum(category: str, ok: bool) -> None:
    for event_type in ("petition.submitted", "alert.hotspot"):
        data = valid(event_type)
        data["category"] = category
        assert (errors(event_validator(event_type), data) == []) is ok, event_type


BAD_ENUMS = [
    ("petition.submitted", ("channel",), "wechat"),
    ("petition.replied", ("resolution",), "done"),
    ("petition.closed", ("closed_by",), "system"),
    ("petition.sla_paused", ("reason",), "holiday"),
    ("petition.feedback_received", ("satisfaction",), "very_satisfied"),
    ("sla.warning", ("clock",), "close"),
    ("sla.breached", ("clock",), "Contact"),
    ("alert.hotspot", ("kind",), "spike"),
    ("alert.hotspot", ("area", "level"), "province"),
    ("petition.assigned", ("route",), "gps"),
    ("petition.transferred", ("route",), "manual"),
]


@pytest.mark.parametrize(
    ("event_type", "path", "value"), BAD_ENUMS, ids=[f"{t}-{'.'.join(p)}" for t, p, _ in BAD_ENUMS]
)
def test_bad_enum_value_fails(event_type: str, path: tuple[str, ...], value: str) -> None:
    data = valid(event_type)
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert errors(event_validator(event_type), data)


@pytest.mark.parametrize(
    ("enum_def", "values"),
    [
        ("channel", ["miniprogram", "hotline", "web", "visit", "other"]),
        ("resolution", ["resolved", "explained", "unresolvable"]),
        ("satisfaction", ["satisfied", "basically_satisfied", "dissatisfied"]),
        ("closed_by", ["feedback", "timeout", "staff"]),
        ("pause_reason", ["citizen_unreachable", "third_party", "citizen_deferred"]),
        ("sla_clock", ["contact", "reply"]),
        ("hotspot_kind", ["concentrated", "emerging"]),
        ("route", ["grid_id", "point", "village", "triage", "transfer"]),
    ],
)
def test_enums_are_exactly_the_contracts(enum_def: str, values: list[str]) -> None:
    assert load(SCHEMAS / "common.json")["$defs"][enum_def]["enum"] == values


@pytest.mark.parametrize(
    ("level", "ok"), [(0, False), (1, True), (2, True), (3, True), (4, False), ("1", False), (1.5, False)]
)
def test_escalation_level(level: Any, ok: bool) -> None:
    for event_type in ("sla.warning", "sla.breached"):
        data = valid(event_type)
        data["level"] = level
        assert (errors(event_validator(event_type), data) == []) is ok


@pytest.mark.parametrize(
    ("event_type", "field"), [("sla.warning", "remaining_seconds"), ("sla.breached", "overdue_seconds")]
)
def test_sla_seconds_are_non_negative_integers(event_type: str, field: str) -> None:
    for value, ok in ((0, True), (86400, True), (-1, False), ("60", False), (1.5, False)):
        data = valid(event_type)
        data[field] = value
        assert (errors(event_validator(event_type), data) == []) is ok, value


@pytest.mark.parametrize(("count", "ok"), [(0, False), (1, True), (50, True), (51, False)])
def test_hotspot_petition_ids_up_to_50(count: int, ok: bool) -> None:
    data = valid("alert.hotspot")
    data["petition_ids"] = [f"JZ20240717{i:06d}" for i in range(count)]
    data["count"] = max(count, 1)
    assert (errors(event_validator("alert.hotspot"), data) == []) is ok


@pytest.mark.parametrize(
    ("kind", "baseline", "ok"),
    [
        ("concentrated", None, True),
        ("concentrated", 2.0, True),
        ("emerging", 3.5, True),
        ("emerging", 0, True),
        ("emerging", None, False),
        ("emerging", -1, False),
        ("concentrated", "2", False),
    ],
)
def test_hotspot_baseline(kind: str, baseline: Any, ok: bool) -> None:
    data = valid("alert.hotspot")
    data["kind"], data["baseline"] = kind, baseline
    assert (errors(event_validator("alert.hotspot"), data) == []) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2024-07-17T00:30:00Z", True),
        ("2024-07-17T00:30:00.123456Z", True),
        ("2024-07-17T08:30:00+08:00", True),
        ("2024-07-17 00:30:00", False),
        ("2024-07-17T00:30:00", False),
        ("2024-07-17", False),
        ("yesterday", False),
        (1721176200, False),
    ],
)
def test_data_times_are_rfc3339(value: Any, ok: bool) -> None:
    for event_type, field in (
        ("petition.submitted", "submitted_at"),
        ("petition.sla_paused", "at"),
        ("sla.warning", "deadline"),
        ("alert.hotspot", "window_end"),
    ):
        data = valid(event_type)
        data[field] = value
        assert (errors(event_validator(event_type), data) == []) is ok, event_type


@pytest.mark.parametrize(
    ("field", "value", "ok"),
    [
        ("duplicate_of", None, True),
        ("duplicate_of", "JZ20240716000087", True),
        ("duplicate_of", "nope", False),
        ("affected_citizens", 1, True),
        ("affected_citizens", 30, True),
        ("affected_citizens", 0, False),
        ("affected_citizens", "2", False),
        ("occurred_seq", 1, True),
        ("occurred_seq", 0, False),
        ("occurred_seq", "1", False),
    ],
)
def test_optional_fields_of_submitted(field: str, value: Any, ok: bool) -> None:
    data = valid("petition.submitted")
    data[field] = value
    assert (errors(event_validator("petition.submitted"), data) == []) is ok


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_occurred_seq_is_typed_in_every_event(event_type: str) -> None:
    data = valid(event_type)
    data["occurred_seq"] = "seven"
    assert errors(event_validator(event_type), data)


@pytest.mark.parametrize("event_type", ["petition.assigned", "petition.transferred"])
def test_assignment_optional_fields(event_type: str) -> None:
    v = event_validator(event_type)
    for route in ("grid_id", "point", "village", "triage", "transfer"):
        assert errors(v, {**valid(event_type), "route": route}) == []
    assert errors(v, {**valid(event_type), "previous": {"grid_id": "CG-DJ-01", "department": "x"}}) == []
    assert errors(v, {**valid(event_type), "previous": "CG-DJ-01"})
    assert errors(v, {**valid(event_type), "department": ""})


# -------------------------------------------------------------------------------------------- envelope


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_valid_envelope_and_its_data_pass(event_type: str) -> None:
    message = envelope(event_type)
    assert errors(envelope_validator(), message) == []
    assert errors(event_validator(message["type"]), message["data"]) == []


@pytest.mark.parametrize(
    "attribute", ["specversion", "id", "source", "type", "subject", "time", "datacontenttype", "data"]
)
def test_envelope_missing_attribute_fails(attribute: str) -> None:
    message = envelope("petition.submitted")
    del message[attribute]
    assert errors(envelope_validator(), message)


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ("specversion", "1.1"),
        ("specversion", 1.0),
        ("id", ""),
        ("source", ""),
        ("source", "intake"),
        ("type", "petition.deleted"),
        ("type", "com.example.petition.submitted"),
        ("subject", "CG-DJ"),
        ("time", "2024-07-17T08:30:00+08:00"),
        ("time", "2024-07-17T00:30:00"),
        ("datacontenttype", "text/plain"),
        ("data", "{}"),
        ("data", None),
    ],
)
def test_envelope_bad_attribute_fails(attribute: str, value: Any) -> None:
    message = envelope("petition.submitted")
    message[attribute] = value
    assert errors(envelope_validator(), message)


def test_envelope_time_in_utc_with_numeric_offset_passes() -> None:
    assert errors(envelope_validator(), {**envelope("petition.withdrawn"), "time": "2024-07-17T00:30:00+00:00"}) == []


def test_envelope_allows_cloudevents_extension_attributes_only_in_lower_case() -> None:
    message = envelope("petition.contacted")
    assert errors(envelope_validator(), {**message, "traceparent": "00-4bf9-00f0-01"}) == []
    assert errors(envelope_validator(), {**message, "trace_parent": "x"})
    assert errors(envelope_validator(), {**message, "TraceParent": "x"})


def test_alert_subject_is_the_area_id() -> None:
    message = envelope("alert.hotspot")
    assert message["subject"] == message["data"]["area"]["id"]
    assert errors(envelope_validator(), message) == []


# -------------------------------------------------------------------------------------------- asyncapi


def test_asyncapi_channels_are_the_topics_with_optional_prefix() -> None:
    doc = load(ASYNCAPI)
    assert doc["asyncapi"] == "3.0.0"
    addresses = {key: ch["address"] for key, ch in doc["channels"].items()}
    expected = {channel: "{prefix}" + topic for topic, (_, channel, _) in TOPICS.items()}
    expected["deadletter"] = "{prefix}" + DEADLETTER_TOPIC
    assert addresses == expected
    for channel in doc["channels"].values():
        _, prefix = resolve(channel["parameters"]["prefix"]["$ref"], ASYNCAPI)
        assert prefix["default"] == ""
        assert "KAFKA_TOPIC_PREFIX" in prefix["description"]


def test_asyncapi_each_event_type_is_a_message_of_its_topics_channel() -> None:
    doc = load(ASYNCAPI)
    for topic, (_, channel, types) in TOPICS_NOW.items():
        assert sorted(doc["channels"][channel]["messages"]) == sorted(types), topic
    assert list(doc["channels"]["deadletter"]["messages"]) == ["deadletter"]


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_asyncapi_message_payload_key_and_headers(event_type: str) -> None:
    doc = load(ASYNCAPI)
    message = doc["components"]["messages"][event_type]
    refs = [r for _, r in walk_refs(message["payload"])]
    assert "./schemas/envelope.json" in refs
    assert f"./schemas/events/{event_type}.json" in refs
    key = "#/components/schemas/areaKey" if event_type == "alert.hotspot" else "#/components/schemas/petitionKey"
    assert message["bindings"]["kafka"]["key"] == {"$ref": key}

    # The composed payload accepts a valid message and rejects one with the wrong type or bad data.
    payload = validator(ASYNCAPI, f"/components/messages/{event_type}/payload")
    assert errors(payload, envelope(event_type)) == []
    other = next(t for t in EVENT_TYPES if t != event_type)
    assert errors(payload, {**envelope(event_type), "type": other})
    first_required = REQUIRED[event_type][0]
    broken = {k: v for k, v in valid(event_type).items() if k != first_required}
    assert errors(payload, envelope(event_type, broken))

    headers = validator(ASYNCAPI, f"/components/messages/{event_type}/headers")
    writer = TOPICS[TOPIC_OF[event_type]][0]
    good = {"ce_specversion": "1.0", "ce_id": "0b9c2c1e", "ce_type": event_type, "ce_source": f"petitions/{writer}"}
    assert errors(headers, good) == []
    for name in good:
        assert errors(headers, {k: v for k, v in good.items() if k != name}), name
    assert errors(headers, {**good, "ce_type": other})


def test_asyncapi_message_keys() -> None:
    schemas = load(ASYNCAPI)["components"]["schemas"]
    petition_key = validator(ASYNCAPI, "/components/schemas/petitionKey")
    assert errors(petition_key, PID) == []
    assert errors(petition_key, "CG-DJ")
    assert schemas["areaKey"]["type"] == "string"


def test_asyncapi_operations() -> None:
    doc = load(ASYNCAPI)
    sends, receives = set(), set()
    for name, op in doc["operations"].items():
        channel_ref = op["channel"]["$ref"]
        assert channel_ref.startswith("#/channels/"), name
        channel = channel_ref.removeprefix("#/channels/")
        assert channel in doc["channels"], name
        for message in op.get("messages", []):
            assert message["$ref"].startswith(f"#/channels/{channel}/messages/"), name
            resolve(message["$ref"], ASYNCAPI)
        (sends if op["action"] == "send" else receives).add((op["x-service"], channel))
        assert op["action"] in ("send", "receive"), name
    assert sends == {(writer, channel) for writer, channel, _ in TOPICS.values()} | {("any consumer", "deadletter")}
    assert receives == {
        ("intake", "routing"),
        ("routing", "intake"),
        ("sla", "intake"),
        ("sla", "routing"),
        ("stats", "intake"),
        ("stats", "routing"),
        ("stats", "sla"),
        ("stats", "alerts"),
        ("ops", "deadletter"),
    }
    for writer, channel, types in TOPICS_NOW.values():
        op = doc["operations"][f"{writer}.send.{channel}"]
        assert sorted(m["$ref"].rsplit("/", 1)[1] for m in op["messages"]) == sorted(types)


def test_asyncapi_deadletter_headers() -> None:
    message = load(ASYNCAPI)["components"]["messages"]["deadletter"]
    names = [
        "dlq_reason",
        "dlq_consumer",
        "dlq_at",
        "dlq_original_topic",
        "dlq_original_partition",
        "dlq_original_offset",
        "dlq_error",
    ]
    assert sorted(message["headers"]["required"]) == sorted(names)
    assert sorted(message["headers"]["properties"]) == sorted(names)
    headers = validator(ASYNCAPI, "/components/messages/deadletter/headers")
    good = {
        "dlq_reason": "schema_invalid",
        "dlq_consumer": "routing",
        "dlq_at": "2024-07-17T00:30:00Z",
        "dlq_original_topic": "ci-1.petitions.intake.v1",
        "dlq_original_partition": "3",
        "dlq_original_offset": "1042",
        "dlq_error": "ValidationError: 'content' is a required property",
        "ce_type": "petition.submitted",
    }
    assert errors(headers, good) == []
    assert errors(headers, {**good, "dlq_original_offset": "-1"})
    assert errors(headers, {**good, "dlq_at": "yesterday"})


# ------------------------------------------------------------------------------------------------ refs


def walk_refs(node: Any, pointer: str = "") -> list[tuple[str, str]]:
    """(JSON pointer of the object holding it, $ref value) of every $ref under node."""
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            found.append((pointer, node["$ref"]))
        for key, value in node.items():
            found += walk_refs(value, f"{pointer}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += walk_refs(value, f"{pointer}/{i}")
    return found


def resolve(ref: str, base: Path) -> tuple[Path, Any]:
    """The file and the node a $ref in file `base` points at (relative file part and/or JSON pointer)."""
    file_part, _, pointer = ref.partition("#")
    assert "://" not in file_part, f"{ref}: the contract refers to local files only"
    target = (base.parent / file_part).resolve() if file_part else base.resolve()
    assert target.is_file(), f"{ref} in {base.name}: no file {target}"
    node = _load(target)
    if pointer:
        assert pointer.startswith("/"), f"{ref} in {base.name}: not a JSON pointer"
        for token in pointer[1:].split("/"):
            token = unquote(token).replace("~1", "/").replace("~0", "~")
            if isinstance(node, list):
                node = node[int(token)]
            else:
                assert isinstance(node, dict) and token in node, f"{ref} in {base.name}: no {token!r}"
                node = node[token]
    return target, node


def _all_documents() -> list[Path]:
    return [*yaml_files(), *schema_files()]


@pytest.mark.parametrize("path", _all_documents(), ids=_ids(_all_documents()))
def test_every_ref_resolves(path: Path) -> None:
    seen: set[tuple[Path, str]] = set()
    todo = [(path.resolve(), ref) for _, ref in walk_refs(_load(path.resolve()))]
    while todo:
        base, ref = todo.pop()
        if (base, ref) in seen:
            continue
        seen.add((base, ref))
        target, node = resolve(ref, base)
        todo += [(target, r) for _, r in walk_refs(node)]
    assert seen or path.name in {"common.json", "common.yaml"} or path.parent == SCHEMAS


def _walk_values(node: Any) -> list[Any]:
    out = [node]
    if isinstance(node, dict):
        for value in node.values():
            out += _walk_values(value)
    elif isinstance(node, list):
        for value in node:
            out += _walk_values(value)
    return out


@pytest.mark.parametrize("path", yaml_files(), ids=_ids(yaml_files()))
def test_yaml_has_no_implicit_dates(path: Path) -> None:
    """Unquoted dates become datetime objects in YAML loaders; every date in the contract is quoted."""
    doc = _load(path.resolve())
    assert not [v for v in _walk_values(doc) if isinstance(v, dt.date)]


# --------------------------------------------------------------------------------------------- openapi


def operations(service: str) -> dict[tuple[str, str], dict[str, Any]]:
    path = OPENAPI / f"{service}.yaml"
    ops = {}
    for route, item in _load(path)["paths"].items():
        base = path
        if "$ref" in item:
            base, item = resolve(item["$ref"], path)
        for method in HTTP_METHODS:
            if method in item:
                ops[(method, route)] = {**item[method], "_base": base, "_item": item}
    return ops


def parameters(service: str, method: str, route: str) -> dict[tuple[str, str], dict[str, Any]]:
    op = operations(service)[(method, route)]
    out = {}
    for param in [*op["_item"].get("parameters", []), *op.get("parameters", [])]:
        base = op["_base"]
        if "$ref" in param:
            base, param = resolve(param["$ref"], base)
        out[(param["in"], param["name"])] = {**param, "_base": base}
    return out


def schema_of(node: dict[str, Any], base: Path) -> tuple[Path, dict[str, Any]]:
    while "$ref" in node and len(node) == 1:
        base, node = resolve(node["$ref"], base)
    return base, node


def _staff_secured(doc: dict[str, Any], op: dict[str, Any]) -> bool:
    security = op.get("security", doc.get("security", []))
    return any("bearerAuth" in requirement for requirement in security)


@pytest.mark.parametrize("service", SERVICES)
def test_openapi_version_and_unique_operation_ids(service: str) -> None:
    doc = load(OPENAPI / f"{service}.yaml")
    assert doc["openapi"].startswith("3.1.")
    ids = [op["operationId"] for op in operations(service).values()]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("service", SERVICES)
def test_every_contract_path_is_documented(service: str) -> None:
    ops = operations(service)
    for method_route in CONTRACT_PATHS[service] + ADDITIONAL_PATHS.get(service, []) + OPERATIONAL_PATHS:
        assert method_route in ops, method_route


def test_contract_md_paths_are_all_known() -> None:
    text = contract_md()
    known = {(m.upper(), p) for paths in CONTRACT_PATHS.values() for m, p in paths}
    known |= {(m.upper(), p) for m, p in OPERATIONAL_PATHS}
    mentioned = set(re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/[^`?\s]+)", text))
    assert mentioned, "no paths found in CONTRACT.md"
    assert mentioned <= known, mentioned - known
    for action in ("contact", "reply", "transfer", "pause", "resume", "close"):
        assert f"`/{action}`" in text or f"/{{id}}/{action}`" in text, action


@pytest.mark.parametrize("service", SERVICES)
def test_path_parameters_are_declared(service: str) -> None:
    for method, route in operations(service):
        declared = {name for (where, name) in parameters(service, method, route) if where == "path"}
        assert declared == set(re.findall(r"{([^}]+)}", route)), (method, route)


@pytest.mark.parametrize("service", SERVICES)
def test_staff_endpoints_take_bearer_auth_and_answer_401(service: str) -> None:
    doc = load(OPENAPI / f"{service}.yaml")
    assert "bearerAuth" in doc["components"]["securitySchemes"]
    for (method, route), op in operations(service).items():
        if not route.startswith("/v1/") or (method, route) in PUBLIC:
            assert op.get("security") == [], (method, route)
        else:
            assert _staff_secured(doc, op), (method, route)
            assert "401" in op["responses"], (method, route)
            if "{" in route:
                assert "404" in op["responses"], (method, route)


def test_get_petition_takes_a_token_or_the_tracking_code() -> None:
    op = operations("intake")[("get", "/v1/petitions/{id}")]
    assert {"bearerAuth": []} in op["security"]
    assert {} in op["security"]
    params = parameters("intake", "get", "/v1/petitions/{id}")
    assert ("query", "tracking_code") in params
    assert ("header", "X-Tracking-Code") in params


def test_submit_honours_idempotency_key_and_answers_201() -> None:
    params = parameters("intake", "post", "/v1/petitions")
    assert ("header", "Idempotency-Key") in params
    op = operations("intake")[("post", "/v1/petitions")]
    base, created = schema_of(op["responses"]["201"]["content"]["application/json"]["schema"], op["_base"])
    assert sorted(created["required"]) == ["petition_id", "status", "tracking_code"]
    _, status = schema_of(created["properties"]["status"], base)
    assert status["enum"] == ["submitted", "assigned", "in_progress", "replied", "reopened", "closed", "withdrawn"]
    _, body = schema_of(op["requestBody"]["content"]["application/json"]["schema"], op["_base"])
    assert sorted(body["required"]) == ["category", "channel", "citizen", "content", "location"]


def test_submission_body_validates() -> None:
    v = validator(OPENAPI / "intake.yaml", "/components/schemas/PetitionSubmission")
    body = {
        "channel": "web",
        "category": "roads",
        "content": "路灯坏了",
        "location": {"town": "城关镇", "village": "东街村"},
        "citizen": {"name": "刘明", "phone": "13812341234"},
    }
    assert errors(v, body) == []
    assert errors(v, {**body, "content": "x" * 5001})
    assert errors(v, {**body, "citizen": {"name": "刘明"}})
    assert errors(v, {**body, "location": {"town": "城关镇", "village": "东街村", "lat": 91}})
    assert errors(v, {**body, "channel": "fax"})
    for phone in ("0532-88881234", "+86 138 1234 1234", "(0532) 8888 1234"):
        assert errors(v, {**body, "citizen": {"name": "刘明", "phone": phone}}) == [], phone
    assert errors(v, {**body, "citizen": {"name": "刘明", "phone": "call me"}})


@pytest.mark.parametrize(
    ("service", "method", "route", "names"),
    [
        ("routing", "get", "/v1/workorders", ["grid_id", "town", "status", "assignee"]),
        ("stats", "get", "/v1/stats/summary", ["from", "to", "town", "village", "grid_id", "category"]),
        ("stats", "get", "/v1/stats/breakdown", ["by", "from", "to", "town", "village", "grid_id", "category"]),
        ("stats", "get", "/v1/stats/timeseries", ["interval", "from", "to", "town", "village", "grid_id", "category"]),
        ("intake", "get", "/v1/petitions/nearby", ["lat", "lon", "category"]),
    ],
)
def test_filters(service: str, method: str, route: str, names: list[str]) -> None:
    query = {name for (where, name) in parameters(service, method, route) if where == "query"}
    assert set(names) <= query


@pytest.mark.parametrize(
    ("route", "name", "values"),
    [
        ("/v1/stats/breakdown", "by", ["town", "village", "grid", "category", "department", "channel"]),
        ("/v1/stats/timeseries", "interval", ["day", "week", "month"]),
    ],
)
def test_stats_enums(route: str, name: str, values: list[str]) -> None:
    param = parameters("stats", "get", route)[("query", name)]
    assert param["required"] is True
    _, schema = schema_of(param["schema"], param["_base"])
    assert schema["enum"] == values


@pytest.mark.parametrize(
    ("action", "required"),
    [
        ("contact", []),
        ("reply", ["resolution", "summary"]),
        ("transfer", ["reason"]),
        ("pause", ["reason"]),
        ("resume", []),
        ("close", []),
    ],
)
def test_workorder_action_bodies(action: str, required: list[str]) -> None:
    op = operations("routing")[("post", f"/v1/workorders/{{id}}/{action}")]
    _, body = schema_of(op["requestBody"]["content"]["application/json"]["schema"], op["_base"])
    assert sorted(body.get("required", [])) == required
    assert op["requestBody"].get("required", False) is bool(required)


def test_workorder_action_bodies_validate() -> None:
    def v(name: str) -> Draft202012Validator:
        return validator(OPENAPI / "routing.yaml", f"/components/schemas/{name}")

    assert errors(v("ReplyRequest"), {"resolution": "resolved", "summary": "ok"}) == []
    assert errors(v("ReplyRequest"), {"resolution": "fixed", "summary": "ok"})
    assert errors(v("TransferRequest"), {"department": "county_utilities_office", "reason": "x"}) == []
    assert errors(v("TransferRequest"), {"grid_id": "CG-DJ-01", "reason": "x"}) == []
    assert errors(v("TransferRequest"), {"reason": "x"})
    assert errors(v("TransferRequest"), {"grid_id": "CG-DJ-01"})
    assert errors(v("PauseRequest"), {"reason": "citizen_deferred"}) == []
    assert errors(v("PauseRequest"), {"reason": "lunch"})
    assert errors(v("ContactRequest"), {}) == []
    assert errors(v("EmptyRequest"), {}) == []


def test_grid_import_takes_a_feature_collection() -> None:
    v = validator(OPENAPI / "routing.yaml", "/components/schemas/GridFeatureCollection")
    feature = load(OPENAPI / "routing.yaml")["components"]["schemas"]["GridFeature"]["example"]
    assert errors(v, {"type": "FeatureCollection", "features": [feature]}) == []
    assert errors(v, {"type": "FeatureCollection", "features": [{**feature, "type": "Point"}]})
    no_grid_id = copy.deepcopy(feature)
    del no_grid_id["properties"]["grid_id"]
    assert errors(v, {"type": "FeatureCollection", "features": [no_grid_id]})
    point = {**feature, "geometry": {"type": "Point", "coordinates": [120.15, 30.27]}}
    assert errors(v, {"type": "FeatureCollection", "features": [point]})
    props = load(OPENAPI / "routing.yaml")["components"]["schemas"]["GridProperties"]["properties"]
    assert {
        "grid_id",
        "grid_name",
        "village_id",
        "village",
        "town_id",
        "town",
        "households",
        "population",
        "leader",
        "cadre",
        "helpers",
        "village_aliases",
    } <= set(props)


@pytest.mark.parametrize("service", SERVICES)
def test_error_responses_use_the_shared_error_shape(service: str) -> None:
    for (method, route), op in operations(service).items():
        for code, response in op["responses"].items():
            if not code.startswith(("4", "5")):
                continue
            base = op["_base"]
            if "$ref" in response:
                base, response = resolve(response["$ref"], base)
            schema = response["content"]["application/json"]["schema"]
            assert schema["$ref"].endswith("#/components/schemas/Error"), (method, route, code)
            assert resolve(schema["$ref"], base)[0] == (OPENAPI / "common.yaml").resolve()


def test_error_shape() -> None:
    v = validator(OPENAPI / "common.yaml", "/components/schemas/Error")
    detailed = {"error": {"code": "validation_failed", "message": "bad", "fields": {"content": "too long"}}}
    assert errors(v, detailed) == []
    assert errors(v, {"error": {"code": "not_found", "message": "no such petition"}}) == []
    assert errors(v, {"code": "not_found", "message": "flat"})
    assert errors(v, {"error": {"code": "x", "message": "m", "fields": {"content": 1}}})


def _component_schemas() -> list[tuple[Path, str]]:
    return [(p, name) for p in sorted(OPENAPI.glob("*.yaml")) for name in _load(p)["components"].get("schemas", {})]


@pytest.mark.parametrize(("path", "name"), _component_schemas(), ids=[f"{p.stem}-{n}" for p, n in _component_schemas()])
def test_openapi_component_schema_is_valid_and_its_example_validates(path: Path, name: str) -> None:
    schema = load(path)["components"]["schemas"][name]
    Draft202012Validator.check_schema(schema)
    if "example" in schema:
        assert errors(validator(path, f"/components/schemas/{name}"), schema["example"]) == []


def _pointers_with_key(node: Any, key: str, pointer: str = "") -> list[tuple[str, Any]]:
    out = []
    if isinstance(node, dict):
        if key in node:
            out.append((pointer, node[key]))
        for k, v in node.items():
            out += _pointers_with_key(v, key, f"{pointer}/{k.replace('~', '~0').replace('/', '~1')}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _pointers_with_key(v, key, f"{pointer}/{i}")
    return out


def test_media_type_examples_validate() -> None:
    checked = 0
    for path in sorted(OPENAPI.glob("*.yaml")):
        for pointer, example in _pointers_with_key(_load(path), "example"):
            if "/content/" not in pointer or "/schema" in pointer:
                continue  # schema-level examples are checked above
            assert errors(validator(path, f"{pointer}/schema"), example) == [], (path.name, pointer)
            checked += 1
    assert checked >= 10
