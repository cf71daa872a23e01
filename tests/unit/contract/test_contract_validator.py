"""ContractValidator answers with jsonschema_rs and explains with jsonschema: both must give the
same verdict. Every example event of the contract is mutated field by field (removed, wrong type,
malformed date-time, pattern near-misses) and judged by the validator and by plain jsonschema."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from petition_common import contract
from petition_common.contract import ContractValidator, SchemaViolation
from petition_common.envelope import EnvelopeError, Event

CONTRACT = Path(__file__).resolve().parents[3] / "contract"
SCHEMAS = CONTRACT / "schemas"
EVENT_TYPES = sorted(p.stem for p in (SCHEMAS / "events").glob("*.json"))
VALIDATOR = ContractValidator(CONTRACT)

BAD_VALUES: list[Any] = [
    None,
    12345,
    -1,
    1.5,
    True,
    "",
    "x",
    [],
    {},
    "2025-13-01T00:00:00Z",
    "2025-02-30T08:00:00Z",
    "2025-01-01 08:00:00",
    "2025-01-01T08:00:00",
    "2025-01-01T25:00:00+08:00",
    "JZ20240717000123\n",
    "jz20240717000123",
    "138****12345",
    "刘",
]


def _reference(path: Path) -> Draft202012Validator:
    def retrieve(uri: str) -> Resource:
        file = Path(uri.removeprefix("file://"))
        return Resource.from_contents(json.loads(file.read_text(encoding="utf-8")), default_specification=DRAFT202012)

    return Draft202012Validator(
        {"$ref": path.resolve().as_uri()}, registry=Registry(retrieve=retrieve), format_checker=FormatChecker()
    )


ENVELOPE = _reference(SCHEMAS / "envelope.json")


def _envelope(event_type: str, data: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": "0b9c2c1e-5a7f-4d7e-9b55-2f0c4bb5a0e1",
        "source": "petitions/test",
        "type": event_type,
        "subject": "AREA-1" if event_type == "alert.hotspot" else "JZ20240717000123",
        "time": "2024-07-17T00:30:00.123Z",
        "datacontenttype": "application/json",
        "data": data,
    }


def _example(event_type: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / "events" / f"{event_type}.json").read_text(encoding="utf-8"))["examples"][0]


def _mutations(doc: Any) -> Iterator[Any]:
    """Copies of `doc` with one thing changed: a key removed or a value replaced, at every depth."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            removed = copy.deepcopy(doc)
            del removed[key]
            yield removed
            for bad in [*BAD_VALUES, *_mutations(value)]:
                changed = copy.deepcopy(doc)
                changed[key] = bad
                yield changed
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            for bad in [*BAD_VALUES, *_mutations(value)]:
                changed = copy.deepcopy(doc)
                changed[i] = bad
                yield changed


def _verdict(event: Event) -> bool:
    try:
        VALIDATOR.validate(event)
    except SchemaViolation:
        return False
    return True


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_same_verdict_as_jsonschema_on_every_mutation(event_type: str) -> None:
    bodies = [_envelope(event_type, _example(event_type))]
    bodies += [_envelope(event_type, data) for data in _mutations(_example(event_type))]
    bodies += [{**envelope, "data": _example(event_type)} for envelope in _mutations(_envelope(event_type, {}))]
    data_reference = _reference(SCHEMAS / "events" / f"{event_type}.json")
    disagreements = []
    invalid = 0
    for body in bodies:
        try:
            event = Event.from_dict(body, key="k")
        except EnvelopeError:
            continue  # not a CloudEvent at all: rejected before any schema is consulted
        if event.type != event_type:
            continue
        expected = ENVELOPE.is_valid(event.to_dict()) and data_reference.is_valid(event.data)
        invalid += not expected
        if _verdict(event) != expected:
            disagreements.append(body)
    assert invalid > 20, "the mutations must produce invalid events, or this test checks nothing"
    assert disagreements == []


def test_the_fast_check_is_what_answers_for_valid_events() -> None:
    schema = json.loads((SCHEMAS / "events" / "petition.submitted.json").read_text(encoding="utf-8"))
    schema["$id"] = (SCHEMAS / "events" / "petition.submitted.json").resolve().as_uri()
    documents = {p.resolve().as_uri(): json.loads(p.read_text(encoding="utf-8")) for p in SCHEMAS.rglob("*.json")}
    fast = jsonschema_rs.validator_for(schema, validate_formats=True, retriever=documents.__getitem__)
    assert fast.is_valid(_example("petition.submitted"))
    assert not fast.is_valid({**_example("petition.submitted"), "submitted_at": "2025-13-01T00:00:00Z"})


def test_a_violation_names_each_bad_field() -> None:
    data = _example("petition.submitted")
    del data["channel"]
    data["submitted_at"] = "2025-01-01 08:00:00"
    with pytest.raises(SchemaViolation) as raised:
        VALIDATOR.validate(Event.from_dict(_envelope("petition.submitted", data), key="k"))
    assert set(raised.value.fields) == {"data", "data.submitted_at"}
    assert "channel" in raised.value.fields["data"]


def test_every_event_schema_is_compiled_before_the_first_event(monkeypatch: pytest.MonkeyPatch) -> None:
    """As the request schemas (test_request_schemas.py): the consumers' and the publishers' threads
    must not compile a schema on the first event of its type, all at once."""
    compiled: list[str] = []

    class Counted(contract._Check):
        def __init__(self, schema: dict[str, Any], *args: Any) -> None:
            compiled.append(schema.get("$id", ""))
            super().__init__(schema, *args)

    monkeypatch.setattr(contract, "_Check", Counted)
    validator = ContractValidator(CONTRACT)
    at_start = len(compiled)
    assert at_start == len(EVENT_TYPES) + 1  # the envelope and every event type
    for event_type in EVENT_TYPES:
        validator.validate(Event.from_dict(_envelope(event_type, _example(event_type)), key="k"))
    assert len(compiled) == at_start, compiled[at_start:]
