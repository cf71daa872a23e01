"""What the OpenAPI fuzz pass (test_openapi_fuzz.py) found in routing and sla, each checked on its own:
the services answer what their OpenAPI documents say."""

from __future__ import annotations

import json

import requests
import yaml

from petition_common.config import REPO_ROOT
from tests.e2e.abuse_world import small_registry, start_world


def _declared(service: str, path: str, method: str) -> set[str]:
    document = yaml.safe_load((REPO_ROOT / "contract" / "openapi" / f"{service}.yaml").read_text(encoding="utf-8"))
    return set(document["paths"][path][method]["responses"])


def test_staff_list_filters_are_checked_against_the_document(fleet, county, tmp_path):
    world = start_world(fleet, county, tmp_path, services=("routing", "sla"))
    http = requests.Session()
    cases = [
        ("routing", "/v1/workorders", {"town": "镇" * 101}, "town"),  # maxLength 100: was 200
        ("routing", "/v1/workorders", {"limit": "5000"}, "limit"),  # maximum 1000: was clamped, 200
        ("routing", "/v1/workorders", {"assignee": "S" * 65}, "assignee"),
        ("routing", "/v1/workorders", {"order": "random"}, "order"),  # enum newest|oldest
        ("routing", "/v1/workorders", {"ids": "JZ2025031000000"}, "ids"),  # a digit short
        ("routing", "/v1/workorders/ids", {"limit": "0"}, "limit"),
        ("routing", "/v1/workorders/ids", {"town": "T01"}, "town"),  # the ids list takes no town
        ("sla", "/v1/sla/overdue", {"grid_id": "G" * 65}, "grid_id"),  # maxLength 64: was 200
        ("sla", "/v1/sla/overdue", {"town": ""}, "town"),  # minLength 1: was "no filter", 200
    ]
    for service, path, params, field in cases:
        resp = http.get(f"{world.urls[service]}{path}", params=params, headers=world.dispatcher, timeout=10)
        assert resp.status_code == 400, (service, params, resp.status_code, resp.text[:200])
        assert resp.json()["error"]["code"] == "invalid_filter"
        assert field in resp.json()["error"]["fields"], resp.text
    for path, params in (
        ("/v1/workorders", {"limit": "1000"}),
        ("/v1/workorders", {"order": "oldest", "triage": "true"}),
        ("/v1/workorders", {"ids": "JZ20250310000000,JZ20250310000001"}),
        ("/v1/workorders/ids", {"order": "oldest", "triage": "true", "limit": "1000"}),
    ):
        good = http.get(f"{world.urls['routing']}{path}", params=params, headers=world.dispatcher)
        assert good.status_code == 200, (params, good.text)


def test_the_grid_import_takes_geojson_and_declares_its_404(fleet, county, tmp_path):
    world = start_world(fleet, county, tmp_path, services=("routing",))
    url = f"{world.urls['routing']}/v1/grids/import"
    # routing.yaml declares application/geo+json first; it was refused with 415
    body = json.dumps(small_registry(county)).encode()
    geojson = {**world.dispatcher, "Content-Type": "application/geo+json"}
    resp = requests.post(url, data=body, headers=geojson, timeout=60)
    assert resp.status_code == 200, resp.text
    # a token other than the dispatch centre's answers 404, as the description says: now also declared
    auditor = {"Authorization": "Bearer tok-auditor", "Content-Type": "application/geo+json"}
    resp = requests.post(url, data=body, headers=auditor, timeout=60)
    assert resp.status_code == 404
    assert "404" in _declared("routing", "/v1/grids/import", "post")
