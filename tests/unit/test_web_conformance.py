"""What the OpenAPI fuzz pass (tests/e2e/test_openapi_fuzz.py) found in the HTTP surface every service
shares (petition_common/web.py), checked on the base app alone: its answers match the contract's
documents."""

from __future__ import annotations

from flask import Flask
from prometheus_client import CollectorRegistry

from petition_common.config import REPO_ROOT
from petition_common.metrics import PlatformMetrics
from petition_common.request_schemas import RequestSchemas
from petition_common.web import create_base_app

COMMON = RequestSchemas(REPO_ROOT / "contract", "common")


def _app(checks: dict) -> Flask:
    return create_base_app("intake", PlatformMetrics(CollectorRegistry(), "intake"), checks)


def _fine() -> None:
    """A dependency that answers."""


def test_readyz_answers_the_documented_ready_shape() -> None:
    resp = _app({"database": _fine, "kafka": _fine}).test_client().get("/readyz")
    assert resp.status_code == 200
    body = resp.get_json()
    assert COMMON.errors("Ready", body) == {}, body  # it said "ready", the document says "ok"
    assert body["checks"] == {"database": "ok", "kafka": "ok"}


def test_readyz_names_the_dependency_that_is_down() -> None:
    def down() -> None:
        raise ConnectionError("no broker answered")

    resp = _app({"database": _fine, "kafka": down}).test_client().get("/readyz")
    assert resp.status_code == 503 and resp.headers["Retry-After"]
    assert COMMON.errors("Error", resp.get_json()) == {}
    assert set(resp.get_json()["error"]["fields"]) == {"kafka"}


def test_a_method_the_path_does_not_take_answers_405_with_allow() -> None:
    # RFC 9110: a 405 lists the methods the resource does take. The JSON error handler used to
    # build a fresh response and drop werkzeug's Allow header.
    client = _app({}).test_client()
    for method in ("POST", "PUT", "DELETE", "TRACE"):
        resp = client.open("/healthz", method=method)
        assert resp.status_code == 405, method
        assert set(resp.headers["Allow"].replace(" ", "").split(",")) >= {"GET"}, (method, dict(resp.headers))
        assert resp.get_json()["error"]["code"] == "method_not_allowed"
