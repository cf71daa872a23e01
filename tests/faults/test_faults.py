"""No petition lost: faults injected into the running platform while citizens keep submitting.

Each scenario runs the four services as real processes on the local Kafka and FerretDB, streams
generated petitions at intake (a client that retries with its Idempotency-Key on 503 or a broken
connection, as the mini-program does), injects one fault, and then runs the independent
reconciliation (petition_devtools.reconcile) until it passes: every petition that got a 201 is in
intake, assigned in routing, tracked in sla and counted exactly once in stats, and nothing else was
created. The table of figures is printed and written to .local/faults.md.

Bounded: each stream is a fixed number of petitions; loopback only. `bin/test tests/faults` runs it.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
import requests
from kafka import KafkaProducer

from countysim import generate_county, generate_petitions
from petition_common.config import Settings
from petition_devtools.kafka_access import admin_settings
from petition_devtools.processes import REPO, SERVICES, ServiceFleet
from petition_devtools.reconcile import Endpoints, reconcile
from petition_devtools.tokens import county_tokens, token_for, write_tokens_file
from tests.support import KAFKA, MONGO, kafka_client

STACK = [sys.executable, str(REPO / "deploy" / "local" / "stack.py")]
RATE_PER_S = 20
RESULTS: list[dict] = []


@dataclass
class Stream:
    """A citizen population submitting at a steady rate, retrying each petition until it is accepted."""

    url: str
    bodies: list
    accepted: list[str] = field(default_factory=list)
    attempts: int = 0
    retries: int = 0
    thread: threading.Thread | None = None

    def start(self) -> Stream:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        session = requests.Session()
        for generated in self.bodies:
            started = time.monotonic()
            deadline = started + 180
            while time.monotonic() < deadline:
                self.attempts += 1
                try:
                    resp = session.post(
                        f"{self.url}/v1/petitions",
                        json=generated.body,
                        timeout=10,
                        headers={"Idempotency-Key": generated.idempotency_key},
                    )
                    if resp.status_code == 201:
                        self.accepted.append(resp.json()["petition_id"])
                        break
                    assert resp.status_code == 503, resp.text  # the only refusal a good petition may get
                except (requests.ConnectionError, requests.Timeout):
                    session = requests.Session()
                self.retries += 1
                time.sleep(0.5)
            time.sleep(max(0.0, 1 / RATE_PER_S - (time.monotonic() - started)))

    def join(self) -> None:
        assert self.thread is not None
        self.thread.join(300)


@pytest.fixture(scope="module")
def county():
    return generate_county(seed=3)


@pytest.fixture
def platform(fleet, county, tmp_path):
    tokens = write_tokens_file(tmp_path / "tokens.yaml", county_tokens(county))
    dispatcher = next(s for s in county.staff if s.role == "county_dispatcher")
    env = {
        "STAFF_TOKENS_FILE": str(tokens),
        "ROUTING_DISPATCHER_ID": dispatcher.staff_id,
        "CONSUMER_RETRY_BACKOFF_S": "0.1",
        "OUTBOX_RELAY_INTERVAL_S": "0.5",
    }
    for name in SERVICES:
        fleet.start(name, extra_env=env)
    fleet.wait_ready()
    headers = {"Authorization": f"Bearer {token_for(dispatcher.staff_id)}"}
    resp = requests.post(
        f"{fleet.processes['routing'].url}/v1/grids/import", json=county.to_geojson(), headers=headers, timeout=60
    )
    assert resp.status_code == 200, resp.text
    fleet.extra_env = env  # type: ignore[attr-defined]
    return fleet


def _stack(*args: str) -> None:
    subprocess.run([*STACK, *args], check=True, capture_output=True)


def _endpoints(fleet: ServiceFleet) -> Endpoints:
    url = {name: fleet.processes[name].url for name in SERVICES}
    return Endpoints(url["intake"], url["routing"], url["sla"], url["stats"], token="tok-auditor")


def _bodies(county, n: int, seed: int) -> list:
    return generate_petitions(county, n, seed=seed, start=datetime(2024, 7, 1, tzinfo=UTC), days=3)


def _recover(fleet: ServiceFleet, accepted: list[str], fault_over: float, timeout_s: float = 240) -> tuple[float, list]:
    """Reconcile until everything is in place; returns (seconds from the fault's end, last checks)."""
    settings = Settings(
        service="faults",
        kafka_bootstrap=KAFKA,
        mongo_uri=MONGO,
        topic_prefix=fleet.env["KAFKA_TOPIC_PREFIX"],
        **admin_settings(),
    )
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            checks = reconcile(settings, _endpoints(fleet), set(accepted))
        except requests.RequestException as exc:  # a service still restarting
            checks = [exc]
        if all(getattr(c, "ok", False) for c in checks):
            return time.monotonic() - fault_over, checks
        if time.monotonic() > deadline:
            return -1.0, checks
        time.sleep(2)


def _record(name: str, stream: Stream, fleet: ServiceFleet, fault_over: float) -> None:
    recovered, checks = _recover(fleet, stream.accepted, fault_over)
    by_name = {c.name: c for c in checks if hasattr(c, "name")}
    counted = by_name.get("counted once in stats (accepted)")
    # lost: accepted (201) but missing from the topic or from a service
    presence = ("published once on petitions.intake.v1", "in intake", "assigned in routing", "tracked in sla")
    lost = max((by_name[n].expected - by_name[n].found for n in presence if n in by_name), default=-1)
    row = {
        "scenario": name,
        "submitted": len(stream.bodies),
        "accepted": len(stream.accepted),
        "client retries": stream.retries,
        "lost": lost,
        "duplicated in stats": max(0, counted.found - counted.expected) if counted else None,
        "time to recover (s)": round(recovered, 1),
    }
    RESULTS.append(row)
    _write_table()
    assert recovered >= 0, "\n".join(getattr(c, "line", lambda c=c: repr(c))() for c in checks)
    assert len(stream.accepted) == len(stream.bodies)
    assert row["lost"] == 0 and row["duplicated in stats"] == 0


def _write_table() -> None:
    cols = list(RESULTS[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in RESULTS]
    text = "\n".join(lines) + "\n"
    (REPO / ".local").mkdir(exist_ok=True)
    (REPO / ".local" / "faults.md").write_text(text)
    print("\n" + text)


# ---- the scenarios


@pytest.mark.timeout(600)
def test_broker_killed_and_restarted_mid_stream(platform, county):
    stream = Stream(platform.processes["intake"].url, _bodies(county, 200, seed=1)).start()
    time.sleep(3)
    _stack("kill", "kafka")
    time.sleep(5)
    _stack("start", "kafka")
    fault_over = time.monotonic()
    stream.join()
    _record("kill -9 Kafka, restart after 5 s", stream, platform, fault_over)


@pytest.mark.timeout(900)
def test_each_service_killed_mid_stream(platform, county):
    stream = Stream(platform.processes["intake"].url, _bodies(county, 400, seed=2)).start()
    for name in ("intake", "routing", "sla", "stats"):
        time.sleep(2)
        platform.stop(name, kill=True)
        time.sleep(1)
        platform.start(name, extra_env=platform.extra_env)
        platform.wait_ready([name])
        if name == "intake":
            stream.url = platform.processes["intake"].url
    fault_over = time.monotonic()
    stream.join()
    _record("kill -9 intake, routing, sla, stats in turn", stream, platform, fault_over)


@pytest.mark.timeout(900)
def test_database_stopped_for_30_seconds(platform, county):
    stream = Stream(platform.processes["intake"].url, _bodies(county, 200, seed=3)).start()
    time.sleep(2)
    _stack("stop", "ferretdb")
    time.sleep(30)
    _stack("start", "ferretdb")
    fault_over = time.monotonic()
    stream.join()
    _record("FerretDB stopped for 30 s", stream, platform, fault_over)


@pytest.mark.timeout(600)
def test_garbage_into_every_topic(platform, county):
    prefix = platform.env["KAFKA_TOPIC_PREFIX"]
    stream = Stream(platform.processes["intake"].url, _bodies(county, 150, seed=4)).start()
    producer = KafkaProducer(**kafka_client(), max_request_size=2_000_000)
    for topic in ("petitions.intake.v1", "petitions.routing.v1", "petitions.sla.v1"):
        for value in (
            b"\xff garbage",
            b"{}",
            b'{"specversion": "1.0", "id": "x", "source": "petitions/x", '
            b'"type": "petition.closed", "time": "2024-01-01T00:00:00Z", "data": {}}',
            b"x" * 900_000,
        ):
            producer.send(f"{prefix}{topic}", key=b"JZ20240101000001", value=value).get(timeout=10)
    producer.close()
    fault_over = time.monotonic()
    stream.join()
    _record("garbage, oversized, schema-invalid into every topic", stream, platform, fault_over)


@pytest.mark.timeout(900)
def test_two_instances_of_each_consumer_one_killed(platform, county):
    for name in ("routing", "sla", "stats"):
        platform.start(name, instance=f"{name}-2", extra_env=platform.extra_env)
    platform.wait_ready()
    stream = Stream(platform.processes["intake"].url, _bodies(county, 200, seed=5)).start()
    time.sleep(4)
    for name in ("routing", "sla", "stats"):
        platform.stop(f"{name}-2", kill=True)
    fault_over = time.monotonic()
    stream.join()
    _record("2 instances of each consumer, one killed", stream, platform, fault_over)
