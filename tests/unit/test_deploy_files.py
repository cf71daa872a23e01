"""The ops files agree with what the tests run against."""

from __future__ import annotations

import yaml

from petition_common.config import DEFAULT_PORTS, REPO_ROOT


def _compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_compose_runs_the_kafka_version_the_local_stack_runs():
    pom = (REPO_ROOT / "deploy" / "local" / "pom.xml").read_text()
    local = pom.split("<kafka.version>")[1].split("</kafka.version>")[0]
    assert _compose()["services"]["kafka"]["image"] == f"apache/kafka:{local}"


def test_compose_has_every_service_on_its_contract_port():
    services = _compose()["services"]
    for name, port in DEFAULT_PORTS.items():
        env = services[name]["environment"]
        assert env["SERVICE"] == name
        assert env["PORT"] == str(port) == env[f"{name.upper()}_PORT"]
        assert services[name]["ports"] == [f"{port}:{port}"]
    assert services["prometheus"]["ports"] == ["9090:9090"]
    assert services["grafana"]["ports"] == ["3000:3000"]
    # the broker and the database are reached only on the compose network (abuse probe: both were open)
    assert "ports" not in services["mongo"] and "ports" not in services["kafka"]


def test_no_credential_ships_and_compose_takes_them_from_secrets():
    dockerfile = (REPO_ROOT / "deploy" / "Dockerfile").read_text()
    assert "rm -f ./config/staff-tokens.yaml" in dockerfile.split("COPY config ./config")[1].split("COPY")[0]
    compose = _compose()
    assert compose["secrets"]["staff_tokens"]["file"].endswith("secrets/staff-tokens.yaml}")
    for name in DEFAULT_PORTS:
        service = compose["services"][name]
        env = service["environment"]
        assert env["PETITIONS_ENV"] == "production"
        assert env["STAFF_TOKENS_FILE"] == "/run/secrets/staff_tokens"
        assert env["SECRET_KEYS"].startswith("${SECRET_KEYS:?")  # compose refuses to start without it
        assert service["secrets"] == ["staff_tokens"]
