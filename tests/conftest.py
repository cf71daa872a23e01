"""Shared fixtures: the real local stack, per-run isolation, and service processes.

- `stack`: Kafka and FerretDB from deploy/local/stack.py, started once per session, or reused
  when already running (e.g. under `bin/run`); stopped at the end only if this session started
  them (KEEP_STACK=1 keeps them).
- Every session gets a run id; its topics are prefixed `t<run>-` and its databases `t<run>_`, so
  a test never reads another run's data. Databases and topics of the run are removed at the end.
- Unit tests (tests/unit) need none of this and do not start the stack.
- `county`: the generated county (seed 7) every test that needs towns, grids and staff shares.
- Every test is marked with its tier by folder (unit, integration, e2e, faults, browser), so
  `bin/test -m "not faults and not browser"` is the quick run.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from countysim import County, generate_county
from petition_common.config import Settings
from petition_devtools import kafka_access
from petition_devtools.kafka_access import admin_settings
from petition_devtools.namespace import drop_namespace
from petition_devtools.processes import ServiceFleet
from tests.support import KAFKA, KEYCLOAK_ISSUER, MONGO, STACK

RUN_ID = uuid.uuid4().hex[:8]
TIERS = ("unit", "integration", "e2e", "faults", "browser")  # tests/<tier>/, registered in pyproject.toml
COUNTY_SEED = 7


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with the tier of its folder, so a run can pick tiers with -m."""
    tests = Path(__file__).resolve().parent
    for item in items:
        tier = item.path.resolve().relative_to(tests).parts[0]
        if tier in TIERS:
            item.add_marker(tier)


@pytest.fixture(scope="session")
def county() -> County:
    """The synthetic county the tests share; generated once per session (the same seed, the same county)."""
    return generate_county(seed=COUNTY_SEED)


def _stack_ready() -> bool:
    out = subprocess.run([*STACK, "status"], capture_output=True, text=True, check=True).stdout
    return all("\tready\t" in line for line in out.strip().splitlines())


@pytest.fixture(scope="session")
def stack() -> Iterator[None]:
    started = False
    if not _stack_ready():
        subprocess.run([*STACK, "up"], check=True)
        started = True
    # the test process and the tools it runs are the broker's super user (services get their own users)
    os.environ.update(kafka_access.client_env("admin"))
    yield
    if not os.environ.get("KEEP_DATA"):  # KEEP_DATA=1 leaves this run's topics and databases for a post-mortem
        _cleanup_run()
    if started and not os.environ.get("KEEP_STACK"):
        subprocess.run([*STACK, "down"], check=False)


def _cleanup_run() -> None:
    drop_namespace(MONGO, KAFKA, f"t{RUN_ID}")


@pytest.fixture(scope="session")
def run_env(stack: None) -> dict[str, str]:
    """Environment that points a service process at this run's topics and databases."""
    return {
        "KAFKA_TOPIC_PREFIX": f"t{RUN_ID}-",
        "MONGO_DB_PREFIX": f"t{RUN_ID}_",
        "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
        "MONGO_URI": MONGO,
        "LOG_LEVEL": "INFO",
        # the Kafka client's group joins and coordinator changes, for a failure's diagnosis (tests.support)
        "KAFKA_LOG_LEVEL": "INFO",
        # staff tokens from the stack's Keycloak (the static development tokens keep working too)
        "OIDC_ISSUER": KEYCLOAK_ISSUER,
        # the web pages' login client that may return to any local port (development only)
        "WEB_OIDC_CLIENT_ID": "petitions-workbench-dev",
        # rate limits stay on in every test (their code runs), but 100 times the defaults: tests submit
        # from one address and often one phone far faster than a citizen; test_rate_limits.py sets 1
        "RATE_LIMIT_SCALE": "100",
    }


@pytest.fixture
def unique_prefix(stack: None) -> str:
    """A prefix for one test that wants topics and databases nobody else touches."""
    return f"t{RUN_ID}-{uuid.uuid4().hex[:6]}"


def make_settings(service: str, prefix: str, **overrides: object) -> Settings:
    return Settings(
        service=service,
        kafka_bootstrap=KAFKA,
        mongo_uri=MONGO,
        topic_prefix=f"{prefix}-",
        db_prefix=f"{prefix.replace('-', '_')}_",
        **{**admin_settings(), **overrides},  # type: ignore[arg-type]
    )


@pytest.fixture
def fleet(run_env: dict[str, str], unique_prefix: str, tmp_path: Path) -> Iterator[ServiceFleet]:
    """Service processes for one test, on topics and databases of that test alone; all are stopped
    afterwards (their logs stay in tmp_path/logs). `fleet.env` holds the prefixes."""
    env = {
        **run_env,
        "KAFKA_TOPIC_PREFIX": f"{unique_prefix}-",
        "MONGO_DB_PREFIX": f"{unique_prefix.replace('-', '_')}_",
    }
    f = ServiceFleet(env=env, log_dir=tmp_path / "logs")
    yield f
    f.stop_all(kill=False)
