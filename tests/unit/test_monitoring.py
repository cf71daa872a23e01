"""The ops monitoring files: Prometheus alert rules (with their promtool unit tests) and the Grafana
dashboard. They must parse, and name only metrics the services define, so a renamed metric fails here
rather than leaving a panel blank or an alert silent."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from petition_common.config import REPO_ROOT
from petition_common.metrics import PlatformMetrics
from petition_devtools import dashboard
from services.sla.metrics import SlaMetrics
from services.stats.metrics import StatsMetrics

PROMETHEUS = REPO_ROOT / "deploy" / "prometheus"
GRAFANA = REPO_ROOT / "deploy" / "grafana"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, cwd=PROMETHEUS)


def _defined_metrics() -> set[str]:
    registry = CollectorRegistry()
    PlatformMetrics(registry, "any")
    SlaMetrics(registry)
    StatsMetrics(registry)
    return {family.name + suffix for family in registry.collect() for suffix in SUFFIXES[family.type]}


def _dashboard_queries() -> list[str]:
    panels = json.loads(dashboard.PATH.read_text())["panels"]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


def _rule_queries() -> list[str]:
    groups = yaml.safe_load((PROMETHEUS / "rules.yml").read_text())["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def test_the_alert_rules_pass_their_unit_tests():
    result = _promtool("test", "rules", "rules_test.yml", "rules_calendar_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_rule_has_a_test_that_makes_it_fire():
    tested = set()
    for name in ("rules_test.yml", "rules_calendar_test.yml"):
        for case in yaml.safe_load((PROMETHEUS / name).read_text())["tests"]:
            tested |= {a["alertname"] for a in case.get("alert_rule_test", []) if a.get("exp_alerts")}
    rules = {r["alert"] for g in yaml.safe_load((PROMETHEUS / "rules.yml").read_text())["groups"] for r in g["rules"]}
    assert rules - tested == set()


def test_the_prometheus_config_loads_the_rules():
    result = _promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_the_dashboard_file_is_what_its_panel_list_writes():
    written = dashboard.PATH.read_text(encoding="utf-8")
    assert written == dashboard.render(), "run: python -m petition_devtools.dashboard"


def test_every_dashboard_query_parses(tmp_path: Path):
    queries = [q.replace(dashboard.RATE, "5m") for q in _dashboard_queries()]
    rules = [{"record": f"panel:q{i}", "expr": q} for i, q in enumerate(queries)]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(queries)} rules found" in result.stdout


def test_dashboard_and_alerts_name_only_metrics_the_services_define():
    defined = _defined_metrics()
    assert "petitions_consumer_lag" in defined and "petitions_http_request_seconds_bucket" in defined
    used = {m for q in _dashboard_queries() + _rule_queries() for m in re.findall(r"\bpetitions_[a-z_]+", q)}
    assert len(used) > 15
    assert used - defined == set()


def test_compose_mounts_the_rules_and_the_dashboards_where_their_configs_look():
    services = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
    assert "./deploy/prometheus:/etc/prometheus:ro" in services["prometheus"]["volumes"][0]
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "petitions.yml").read_text())["providers"][0]
    mounts = dict(v.removesuffix(":ro").split(":") for v in services["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == provider["options"]["path"]
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uids = {p["datasource"]["uid"] for p in json.loads(dashboard.PATH.read_text())["panels"] if "datasource" in p}
    assert uids == {datasource["datasources"][0]["uid"]}
