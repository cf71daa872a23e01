"""No credential ships: a service started outside development with the development tokens (printed in
the README) or the development SECRET_KEYS refuses to start, saying why; with its own it runs."""

from __future__ import annotations

import pytest
import requests

from petition_common.config import REPO_ROOT
from services.intake.contacts import generate_key_spec
from tests.e2e.identity_world import Roster
from tests.support import eventually

DEV_TOKENS = REPO_ROOT / "config" / "staff-tokens.yaml"


@pytest.mark.parametrize("service", ["intake", "routing", "sla", "stats"])
def test_production_refuses_the_development_tokens(fleet, service):
    env = {"PETITIONS_ENV": "production", "SECRET_KEYS": "k-1a9f3e77c2", "STAFF_TOKENS_FILE": str(DEV_TOKENS)}
    process = fleet.start(service, extra_env=env)

    def exited() -> None:
        assert not process.alive()

    eventually(exited, timeout_s=60)
    log = process.log_path.read_text(encoding="utf-8", errors="replace")
    assert "refuses to start outside development" in log
    assert "S000001" in log and "development token" in log  # dev-dispatcher's entry, named


def test_production_with_its_own_credentials_serves_the_providers_tokens_only(fleet, tmp_path):
    roster = Roster.connect()
    roster.add("A900002", "auditor")
    roster.sync()
    try:
        env = {"PETITIONS_ENV": "production", "SECRET_KEYS": "k-1a9f3e77c2", "STAFF_TOKENS_FILE": ""}
        sla = fleet.start("sla", extra_env=env)
        fleet.wait_ready()
        assert requests.get(f"{sla.url}/v1/sla/overdue", timeout=10).status_code == 401
        ok = requests.get(f"{sla.url}/v1/sla/overdue", headers=roster.bearer("A900002"), timeout=10)
        assert ok.status_code == 200, ok.text
        dev = requests.get(f"{sla.url}/v1/sla/overdue", headers={"Authorization": "Bearer dev-dispatcher"}, timeout=10)
        assert dev.status_code == 401
    finally:
        roster.remove()


def test_intake_outside_development_refuses_the_development_contact_key_and_runs_with_its_own(fleet, tmp_path):
    env = {"PETITIONS_ENV": "production", "SECRET_KEYS": "k-1a9f3e77c2", "STAFF_TOKENS_FILE": ""}
    refused = fleet.start("intake", instance="intake-dev-key", extra_env=env)
    eventually(lambda: _exited(refused), timeout_s=60)
    assert "CONTACT_KEYS is the public development key" in refused.log_path.read_text(encoding="utf-8")
    keys = tmp_path / "contact-keys"
    keys.write_text(generate_key_spec("k1") + "\n")
    own = fleet.start("intake", extra_env={**env, "CONTACT_KEYS_FILE": str(keys)})
    fleet.wait_ready(["intake"])
    assert requests.get(f"{own.url}/readyz", timeout=10).status_code == 200


def _exited(process) -> None:
    assert not process.alive()
