"""Issue #16, part 4: every response of every service, errors and /metrics included, carries
`Cache-Control: no-store` (answers may hold personal data) and the minimal security headers."""

from __future__ import annotations

import requests

from petition_devtools.processes import SERVICES
from tests.e2e.test_submission_event import BODY

EXPECTED = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
STAFF_PATHS = {
    "intake": "/v1/petitions/JZ20240101000001",
    "routing": "/v1/workorders",
    "sla": "/v1/sla/overdue",
    "stats": "/v1/stats/summary",
}


def _check(resp: requests.Response, what: str) -> None:
    for name, value in EXPECTED.items():
        assert resp.headers.get(name) == value, (what, resp.status_code, name, dict(resp.headers))
    assert "default-src 'none'" in resp.headers.get("Content-Security-Policy", ""), what


def test_every_response_of_every_service_has_the_security_headers(fleet):
    urls = {name: fleet.start(name).url for name in SERVICES}
    fleet.wait_ready()
    http = requests.Session()
    for name, url in urls.items():
        for path in ("/healthz", "/readyz", "/metrics", "/no-such-path", STAFF_PATHS[name]):
            _check(http.get(f"{url}{path}", timeout=10), f"{name} GET {path}")
        _check(http.post(f"{url}/healthz", timeout=10), f"{name} POST /healthz (405)")

    intake = urls["intake"]
    created = http.post(f"{intake}/v1/petitions", json=BODY, timeout=10)
    _check(created, "intake POST /v1/petitions (201)")
    receipt = created.json()
    mine = http.get(
        f"{intake}/v1/petitions/{receipt['petition_id']}", params={"tracking_code": receipt["tracking_code"]}
    )
    _check(mine, "intake GET /v1/petitions/{id} (200, the citizen's view)")
    _check(http.post(f"{intake}/v1/petitions", data=b"{", headers={"Content-Type": "application/json"}), "400")
