"""Every running service's /metrics is Prometheus text that promtool accepts."""

from __future__ import annotations

import subprocess
from functools import partial

import requests
from prometheus_client.parser import text_string_to_metric_families

from petition_devtools.processes import SERVICES
from tests.support import eventually

# the consumer groups each service runs (stats also reads for its hotspot detector without a group)
GROUPS = {"intake": ["intake"], "routing": ["routing"], "sla": ["sla"], "stats": ["stats", "stats-hotspots"]}


def test_every_service_exposes_metrics_that_promtool_accepts(fleet):
    for name in SERVICES:
        fleet.start(name)
    fleet.wait_ready()
    for name in SERVICES:
        url = fleet.processes[name].url
        requests.get(f"{url}/healthz", timeout=5)  # so that request counters have samples
        resp = requests.get(f"{url}/metrics", timeout=5)
        assert resp.status_code == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        assert "petitions_http_requests_total" in resp.text
        check = subprocess.run(["promtool", "check", "metrics"], input=resp.text, capture_output=True, text=True)
        assert check.returncode == 0, f"{name}: {check.stdout}{check.stderr}"


def test_every_consumer_reports_its_lag(fleet):
    for name in SERVICES:
        fleet.start(name)
    fleet.wait_ready()
    prefix = fleet.env["KAFKA_TOPIC_PREFIX"]
    for name in SERVICES:
        eventually(partial(_assert_lag_groups, fleet.processes[name].url, prefix, GROUPS[name]))


def _assert_lag_groups(url: str, prefix: str, expected: list[str]) -> None:
    families = text_string_to_metric_families(requests.get(f"{url}/metrics", timeout=5).text)
    lag = next(f for f in families if f.name == "petitions_consumer_lag")
    groups = {s.labels["group"].removeprefix(prefix) for s in lag.samples}
    assert groups == set(expected), f"{url}: {groups}"
    assert all(s.value == 0 for s in lag.samples)  # nothing was submitted: nothing to read
