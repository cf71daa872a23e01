"""Every running service's /metrics is Prometheus text that promtool accepts."""

from __future__ import annotations

import subprocess

import requests

from petition_devtools.processes import SERVICES


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
