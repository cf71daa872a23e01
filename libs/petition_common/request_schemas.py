"""Request bodies and query parameters checked against the contract's OpenAPI documents.

Every service validates what it is sent against the schema the contract publishes for it
(`contract/openapi/<service>.yaml`, `components/schemas/<Name>`), before it writes anything: types,
lengths, enums and patterns are the contract's, not a second hand-written copy that drifts from it.
The domain then checks what a schema cannot say (a category that exists, a phone number that
normalises, a grid in the registry).

A failure is reported field by field, as the contract's error shape wants: a dotted path into the
request (`citizen.name`, `location.grid_id`) and what is wrong with it, in words that never echo the
value sent (it may be 20,000 characters, or markup).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import jsonschema_rs
import yaml
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

MAX_FIELD_ERRORS = 20
_TYPE_WORDS = {
    "string": "a string",
    "integer": "a whole number",
    "number": "a number",
    "object": "an object",
    "array": "a list",
    "boolean": "true or false",
    "null": "null",
}


class RequestInvalid(ValueError):
    """The request does not match its schema; `fields` maps a dotted path to what is wrong."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))
        self.fields = fields


def _load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)


@functools.cache
def _documents(contract_dir: Path) -> dict[str, Any]:
    """Every contract document by its file URI, so relative `$ref`s between them resolve offline."""
    files = [*sorted((contract_dir / "openapi").glob("*.yaml")), *sorted((contract_dir / "schemas").rglob("*.json"))]
    return {p.resolve().as_uri(): _load(p) for p in files}


@functools.cache
def _registry(contract_dir: Path) -> Registry:
    return Registry().with_resources(
        (uri, Resource.from_contents(contents, default_specification=DRAFT202012))
        for uri, contents in _documents(contract_dir).items()
    )


class RequestSchemas:
    """The component schemas of one service's OpenAPI document, compiled once per process."""

    def __init__(self, contract_dir: Path, service: str):
        self.contract_dir = contract_dir.resolve()
        self.document = (self.contract_dir / "openapi" / f"{service}.yaml").as_uri()
        # compiled now, before the first request: the caches take no lock, so the threads of a service
        # that starts under load all missed at once, each parsed every document (~170 ms) under the
        # GIL, and the first submissions took 1.5-2 s (bench: the latency stage's first seconds)
        document = _documents(self.contract_dir)[self.document]
        for name in document.get("components", {}).get("schemas", {}):
            self._validator(name)

    @functools.cache  # noqa: B019 - a handful of schemas for the process lifetime
    def _validator(self, name: str) -> tuple[Any, Draft202012Validator]:
        """The fast verdict (jsonschema_rs, compiled: ~300 times faster, as the events' check) and the
        reference validator that explains a refusal field by field."""
        schema = {"$ref": f"{self.document}#/components/schemas/{name}"}
        documents = _documents(self.contract_dir)
        fast = jsonschema_rs.validator_for(schema, validate_formats=True, retriever=documents.__getitem__)
        reference = Draft202012Validator(schema, registry=_registry(self.contract_dir), format_checker=FormatChecker())
        return fast, reference

    def properties(self, name: str) -> set[str]:
        """The fields the component schema names (a body with any other is refused as unknown)."""
        resolved = _registry(self.contract_dir).resolver().lookup(f"{self.document}#/components/schemas/{name}")
        return set(resolved.contents.get("properties", {}))

    def errors(self, name: str, instance: Any) -> dict[str, str]:
        """What is wrong with `instance` as the component schema `name`, by field (empty if valid)."""
        fast, reference = self._validator(name)
        if fast.is_valid(instance):
            return {}
        fields: dict[str, str] = {}
        for error in sorted(reference.iter_errors(instance), key=lambda e: list(e.absolute_path)):
            path, message = describe(error)
            fields.setdefault(path, message)
            if len(fields) >= MAX_FIELD_ERRORS:
                break
        return fields

    def check(self, name: str, instance: Any) -> None:
        fields = self.errors(name, instance)
        if fields:
            raise RequestInvalid(fields)

    @functools.cache  # noqa: B019 - a handful of operations for the process lifetime
    def _query_validators(self, path: str, method: str) -> tuple[tuple[str, Draft202012Validator], ...]:
        """(name, validator) of each query parameter the document gives the operation `method path`."""
        registry = _registry(self.contract_dir)
        item = f"{self.document}#/paths/{path.replace('~', '~0').replace('/', '~1')}"
        shared = registry.resolver().lookup(item).contents.get("$ref")
        if shared is not None:  # a path item of common.yaml (GET /v1/audit): its refs are relative to it
            item = urljoin(self.document, shared)
        pointer = f"{item}/{method.lower()}"
        operation = registry.resolver().lookup(pointer).contents
        found = []
        for i, parameter in enumerate(operation.get("parameters", [])):
            # a parameter's schema is checked where it is written, so its relative $refs resolve there
            uri = urljoin(pointer, parameter["$ref"]) if "$ref" in parameter else f"{pointer}/parameters/{i}"
            resolved = registry.resolver().lookup(uri).contents
            if resolved.get("in") == "query":
                schema = {"$ref": f"{uri}/schema"}
                validator = Draft202012Validator(schema, registry=registry, format_checker=FormatChecker())
                found.append((resolved["name"], validator))
        return tuple(found)

    def query_errors(self, path: str, method: str, args: Mapping[str, str]) -> dict[str, str]:
        """What is wrong with the query parameters the operation's document names (unknown ones are
        the caller's to refuse): each value is read as the string it is, or as the number or boolean
        it spells, and it is wrong only if no reading fits its schema."""
        fields: dict[str, str] = {}
        for name, validator in self._query_validators(path, method):
            if name not in args:
                continue
            errors: list[ValidationError] = []
            for reading in _readings(args[name]):
                errors = list(validator.iter_errors(reading))
                if not errors:
                    break
            if errors:  # the most specific reading's errors: "at most 1000" rather than "a string"
                fields[name] = describe(best_match(errors))[1]
        return fields


def _readings(raw: str) -> list[Any]:
    """A query value as the string it is, then as the integer, number or boolean it spells, if any."""
    readings: list[Any] = [raw]
    if raw in ("true", "false"):
        readings.append(raw == "true")
    for kind in (int, float):
        try:
            value = kind(raw)
        except ValueError:
            continue
        if math.isfinite(value):
            readings.append(value)
            break
    return readings


def describe(error: ValidationError) -> tuple[str, str]:
    """(dotted path, message) for one validation error, without repeating the offending value."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        if all(e.validator == "type" and not e.relative_path for e in error.context):  # "a string or null"
            types = [t for e in error.context for t in _as_list(e.validator_value)]
            return ".".join(str(p) for p in error.absolute_path) or "(body)", _message("type", types)
        return describe(best_match(error.context))
    path = [str(p) for p in error.absolute_path]
    kind, rule = error.validator, error.validator_value
    if kind == "required":
        present = error.instance if isinstance(error.instance, dict) else {}
        missing = next((name for name in rule if name not in present), "?")
        return ".".join([*path, missing]), "is required"
    if kind in ("additionalProperties", "unevaluatedProperties") and isinstance(error.instance, dict):
        allowed = error.schema.get("properties", {})
        unknown = next((k for k in error.instance if k not in allowed), "?")
        return ".".join([*path, str(unknown)]), "unknown field"
    return ".".join(path) or "(body)", _message(kind, rule)


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _message(kind: str, rule: Any) -> str:
    if kind == "type":
        types = _as_list(rule)
        return "must be " + " or ".join(_TYPE_WORDS.get(t, t) for t in types)
    words = {
        "maxLength": f"must be at most {rule} characters",
        "minLength": "is required" if rule == 1 else f"must be at least {rule} characters",
        "enum": "must be one of " + ", ".join(map(str, rule)) if isinstance(rule, list) else "",
        "const": f"must be {rule}",
        "pattern": "does not have the expected form",
        "format": f"must be a valid {rule}",
        "minimum": f"must be at least {rule}",
        "maximum": f"must be at most {rule}",
        "exclusiveMinimum": f"must be more than {rule}",
        "exclusiveMaximum": f"must be less than {rule}",
        "minItems": f"must have at least {rule} items",
        "maxItems": f"must have at most {rule} items",
        "minProperties": "must not be empty",
        "maxProperties": f"must have at most {rule} fields",
    }
    return words.get(kind) or "is not valid"
