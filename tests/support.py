"""Helpers for tests over the real stack: reading a topic, polling for an eventual result."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson
import requests
from kafka import KafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from petition_devtools.kafka_access import admin_client_config

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]
# the local stack's command line (up, down, status, kill/stop/start <component>)
STACK = [sys.executable, str(REPO / "deploy" / "local" / "stack.py")]
# the local stack's ports (deploy/local/stack.py reads the same variables)
KAFKA = f"127.0.0.1:{os.environ.get('KAFKA_PORT', '9092')}"
MONGO = f"mongodb://127.0.0.1:{os.environ.get('MONGO_PORT', '27017')}"
KEYCLOAK = f"http://127.0.0.1:{os.environ.get('KEYCLOAK_PORT', '8180')}"
KEYCLOAK_ISSUER = f"{KEYCLOAK}/realms/county"


def kafka_client() -> dict[str, Any]:
    """kafka-python arguments for a test's own clients: the broker's super user (tests look at every topic)."""
    return admin_client_config(KAFKA)


def read_topic(topic: str, until: Callable[[list[dict]], bool], timeout_s: float = 30) -> list[dict]:
    """Every message of `topic` from the beginning, as dicts with key/value/headers, until
    `until(messages)` holds or the timeout passes (then the messages so far are returned)."""
    consumer = KafkaConsumer(
        topic,
        **kafka_client(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=500,
    )
    out: list[dict] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=300).values():
                for rec in batch:
                    out.append(
                        {
                            "key": rec.key.decode() if rec.key is not None else None,
                            "raw": rec.value,
                            "value": _try_json(rec.value),
                            "headers": {k: v.decode("utf-8", "replace") for k, v in rec.headers or []},
                            "partition": rec.partition,
                            "offset": rec.offset,
                        }
                    )
            if until(out):
                break
    finally:
        consumer.close()
    return out


def _try_json(raw: bytes | None) -> object:
    try:
        return orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:
        return None


def eventually(fn: Callable[[], T], timeout_s: float = 30, interval_s: float = 0.2) -> T:
    """Call `fn` until it returns without AssertionError (and returns its value) or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return fn()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(interval_s)


FLOW_METRICS = (
    "petitions_published_total",
    "petitions_outbox_pending",
    "petitions_consumed_total",
    "petitions_consumer_lag",
    "petitions_stats_owned_partitions",
)


def event_flow(urls: dict[str, str]) -> dict[str, dict[str, float] | str]:
    """Per service, its published, pending, consumed and lagging counts summed from /metrics: for the
    message of a wait on events that timed out, so the failure says where they stopped."""
    out: dict[str, dict[str, float] | str] = {}
    for name, url in urls.items():
        try:
            text = requests.get(f"{url}/metrics", timeout=10).text
        except requests.RequestException as exc:
            out[name] = f"no metrics: {exc}"
            continue
        sums: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in FLOW_METRICS:
                    key = sample.name.removeprefix("petitions_")
                    sums[key] = sums.get(key, 0) + sample.value
        out[name] = sums
    return out


# log lines worth showing when events stopped: the Kafka client's group membership (services in tests
# run with KAFKA_LOG_LEVEL=INFO), the consumer loops' and stats' own, and every warning or error
_TELLING_LOGGERS = ("kafka.coordinator", "petition_common.consumer", "services.stats.write")


def telling_lines(log_path: Path, last: int = 40) -> list[str]:
    """The last `last` telling lines of a service's JSON log (see _TELLING_LOGGERS), shortened."""
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        return [f"no log: {exc}"]
    telling = []
    for line in lines:
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            telling.append(line)  # a traceback or the interpreter's own output
            continue
        if doc.get("level") not in ("info", "debug") or str(doc.get("logger", "")).startswith(_TELLING_LOGGERS):
            telling.append(line)
    return [t[:400] for t in telling[-last:]]


def diagnosis(fleet: Any, services: tuple[str, ...] | None = None) -> str:
    """What a failure message should say about a fleet (petition_devtools.processes.ServiceFleet) whose
    events stopped: each service's event flow from /metrics, and the telling lines of the logs of
    `services` (default: all of them)."""
    flow = event_flow({name: sp.url for name, sp in fleet.processes.items()})
    parts = [f"event flow per service: {flow}"]
    for name, sp in fleet.processes.items():
        if services is None or name in services:
            parts.append(f"--- {name} ({sp.log_path}), alive={sp.alive()}:")
            parts.extend(telling_lines(sp.log_path))
    return "\n".join(parts)
