"""Structured logging: one JSON object per line on stdout, with any `extra=` fields kept."""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime

import orjson

from petition_kernel.times import format_time

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": format_time(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        doc.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def configure(service: str, level: str = "INFO", kafka_level: str = "CRITICAL") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # kafka-python logs every reconnect attempt at WARNING/ERROR; ours say what matters, unless asked
    logging.getLogger("kafka").setLevel("DEBUG" if level == "DEBUG" else kafka_level)
