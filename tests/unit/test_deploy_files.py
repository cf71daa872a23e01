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
    assert services["mongo"]["ports"] == ["27017:27017"]
    assert services["kafka"]["ports"] == ["9092:9092"]
