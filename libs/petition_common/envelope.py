"""The CloudEvents 1.0 envelope in structured JSON mode, as CONTRACT.md defines it.

An `Event` is immutable and carries everything needed to publish it: the message key (the
petition id, or the area id of an alert) and the Kafka headers that repeat the ce_* attributes.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from petition_kernel.times import format_time, utc_now

SPECVERSION = "1.0"


class EnvelopeError(ValueError):
    """The bytes are not a CloudEvent we can read: never retried, always dead-lettered."""


@dataclass(frozen=True)
class Event:
    type: str
    source: str
    subject: str
    data: dict[str, Any]
    time: str = field(default_factory=lambda: format_time(utc_now()))
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    key: str | None = None

    @property
    def message_key(self) -> str:
        return self.key if self.key is not None else self.subject

    def to_dict(self) -> dict[str, Any]:
        return {
            "specversion": SPECVERSION,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "subject": self.subject,
            "time": self.time,
            "datacontenttype": "application/json",
            "data": self.data,
        }

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_dict())

    def headers(self) -> list[tuple[str, bytes]]:
        return [
            ("ce_specversion", SPECVERSION.encode()),
            ("ce_id", self.id.encode()),
            ("ce_type", self.type.encode()),
            ("ce_source", self.source.encode()),
        ]

    @classmethod
    def from_dict(cls, body: dict[str, Any], key: str | None = None) -> Event:
        missing = [k for k in ("specversion", "id", "source", "type", "time", "data") if k not in body]
        if missing:
            raise EnvelopeError(f"not a CloudEvent: missing {', '.join(missing)}")
        if body["specversion"] != SPECVERSION:
            raise EnvelopeError(f"unsupported specversion {body['specversion']!r}")
        if not isinstance(body["data"], dict):
            raise EnvelopeError("data is not a JSON object")
        return cls(
            type=str(body["type"]),
            source=str(body["source"]),
            subject=str(body.get("subject", "")),
            data=body["data"],
            time=str(body["time"]),
            id=str(body["id"]),
            key=key,
        )

    @classmethod
    def from_bytes(cls, raw: bytes | None, key: str | None = None) -> Event:
        if raw is None:
            raise EnvelopeError("empty message (tombstone)")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise EnvelopeError(f"not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise EnvelopeError("not a JSON object")
        return cls.from_dict(body, key=key)
