"""The HTTP surface every service shares: JSON errors, health, readiness, metrics, body parsing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from flask import Flask, Response, current_app, g, request
from prometheus_client import make_wsgi_app
from pymongo.errors import ConnectionFailure
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from petition_common.auth import Staff
from petition_common.metrics import PlatformMetrics

MAX_BODY_BYTES = 64 * 1024


class ApiError(Exception):
    """An error the client can act on; rendered as the contract's JSON error shape."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or {}
        self.headers = headers or {}


def error_response(
    status: int, code: str, message: str, fields: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> Response:
    body = {"error": {"code": code, "message": message, "fields": fields or {}}}
    return Response(orjson.dumps(body), status=status, mimetype="application/json", headers=headers)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body, default=str), status=status, mimetype="application/json", headers=headers)


def read_json_object(max_bytes: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The request body as a JSON object, or an ApiError that says precisely what is wrong."""
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    # read before refusing: answering while the client is still sending resets its connection
    raw = request.get_data(cache=True)
    if len(raw) > max_bytes:
        raise ApiError(413, "body_too_large", f"the body may be at most {max_bytes} bytes")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "invalid_utf8", f"the body is not valid UTF-8 (byte {exc.start})") from exc
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return body


def require_staff() -> Staff:
    """The staff member behind the request's bearer token (app.extensions["tokens"]); 401 otherwise."""
    staff = current_app.extensions["tokens"].authenticate(request.headers.get("Authorization"))
    if staff is None:
        raise ApiError(
            401, "unauthorized", "a valid staff bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    return staff


Check = Callable[[], None]


def create_base_app(service: str, metrics: PlatformMetrics, checks: dict[str, Check]) -> Flask:
    """A Flask app with /healthz, /readyz and JSON errors; mount_metrics() adds /metrics."""
    app = Flask(service)
    # the hard cap for any body; endpoints pass their own, smaller limit to read_json_object()
    app.config["MAX_CONTENT_LENGTH"] = 32 * 1024 * 1024
    app.json.ensure_ascii = False  # type: ignore[attr-defined]

    @app.get("/healthz")
    def healthz() -> Response:
        return json_response({"status": "ok", "service": service})

    @app.get("/readyz")
    def readyz() -> Response:
        failures = {}
        for name, check in checks.items():
            try:
                check()
                metrics.dependency_up.labels(service, name).set(1)
            except Exception as exc:
                metrics.dependency_up.labels(service, name).set(0)
                failures[name] = str(exc)[:300] or type(exc).__name__
        if failures:
            return error_response(503, "not_ready", "a dependency is unreachable", failures, {"Retry-After": "5"})
        return json_response({"status": "ready", "service": service})

    @app.errorhandler(ApiError)
    def on_api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.fields, exc.headers)

    @app.errorhandler(ConnectionFailure)
    def on_database_error(exc: ConnectionFailure) -> Response:
        # the database is down or slow: nothing was accepted, the client may retry. (Any other
        # database error is a bug and stays a logged 500.)
        app.logger.warning("database unavailable: %r", exc)
        return error_response(
            503, "database_unavailable", "the database is unavailable; retry later", headers={"Retry-After": "5"}
        )

    @app.errorhandler(HTTPException)
    def on_http_error(exc: HTTPException) -> Response:
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(exc.code or 500, code, exc.description or exc.name)

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def record(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.http_requests.labels(service, request.method, route, str(response.status_code)).inc()
        if hasattr(g, "started"):
            metrics.http_latency.labels(service, route).observe(time.perf_counter() - g.started)
        return response

    return app


def mount_metrics(app: Flask, metrics: PlatformMetrics) -> None:
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/metrics": make_wsgi_app(metrics.registry)})  # type: ignore[method-assign]
