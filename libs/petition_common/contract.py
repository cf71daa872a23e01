"""Validation of events against the project's JSON Schemas (contract/schemas/).

Producers validate what they publish (a bug must not reach other government systems) and
consumers validate what they read (a schema-invalid message is dead-lettered, never retried).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from petition_common.envelope import Event


class SchemaViolation(ValueError):
    """The event does not match the contract; `fields` maps a JSON path to what is wrong."""

    def __init__(self, event_type: str, fields: dict[str, str]):
        self.event_type = event_type
        self.fields = fields
        super().__init__(f"{event_type}: " + "; ".join(f"{k}: {v}" for k, v in fields.items()))


def _load_registry(schema_dir: Path) -> Registry:
    """Every schema file, registered under its `$id` and its file URI, so `$ref`s resolve offline."""
    resources = []
    for path in sorted(schema_dir.rglob("*.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resource = Resource.from_contents(contents, default_specification=DRAFT202012)
        resources.append((path.resolve().as_uri(), resource))
        if "$id" in contents:
            resources.append((contents["$id"], resource))
    return Registry().with_resources(resources)


class ContractValidator:
    def __init__(self, contract_dir: Path):
        self.schema_dir = contract_dir / "schemas"
        self._registry = _load_registry(self.schema_dir)
        self._envelope = self._validator(self.schema_dir / "envelope.json")

    def _validator(self, path: Path) -> Draft202012Validator:
        schema = json.loads(path.read_text(encoding="utf-8"))
        schema.setdefault("$id", path.resolve().as_uri())
        return Draft202012Validator(schema, registry=self._registry, format_checker=FormatChecker())

    @functools.cache  # noqa: B019 - one validator per event type for the process lifetime
    def _data_validator(self, event_type: str) -> Draft202012Validator | None:
        path = self.schema_dir / "events" / f"{event_type}.json"
        return self._validator(path) if path.exists() else None

    def validate(self, event: Event) -> None:
        self._check(event.type, self._envelope, event.to_dict(), prefix="")
        data_validator = self._data_validator(event.type)
        if data_validator is None:
            raise SchemaViolation(event.type, {"type": f"unknown event type {event.type!r}"})
        self._check(event.type, data_validator, event.data, prefix="data")

    @staticmethod
    def _check(event_type: str, validator: Draft202012Validator, doc: Any, prefix: str) -> None:
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        if errors:
            fields = {}
            for err in errors[:20]:
                path = ".".join(str(p) for p in (prefix, *err.absolute_path) if p != "") or "(root)"
                fields.setdefault(path, err.message[:300])
            raise SchemaViolation(event_type, fields)
