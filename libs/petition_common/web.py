"""The HTTP surface every service shares: JSON errors, health, readiness, metrics, body parsing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from flask import Flask, Response, current_app, g, request
from kafka.errors import KafkaError
from prometheus_client import make_wsgi_app
from pymongo.errors import ConnectionFailure, ExecutionTimeout, PyMongoError, WriteConcernError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from petition_common.auth import Staff
from petition_common.metrics import PlatformMetrics
from petition_common.request_schemas import RequestInvalid, RequestSchemas
from petition_common.store import Conflict

# errors that say "not reachable right now" rather than "this command is wrong"
_TRANSIENT = (ConnectionFailure, ExecutionTimeout, WriteConcernError)

# what any endpoint accepts unless it says otherwise with @body_limit
MAX_BODY_BYTES = 64 * 1024
RETRY_AFTER_S = "2"

View = Callable[..., Response]

# On every response of every service, /metrics included. Every API answer may carry personal data
# (a petition, a citizen's contact details, a work order), so nothing is cached anywhere; the
# answers are JSON for programs, so nothing may sniff, frame, embed or refer from them either.
SECURITY_HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("Referrer-Policy", "no-referrer"),
)


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


def body_limit(max_bytes: int) -> Callable[[View], View]:
    """Let one endpoint take bodies up to `max_bytes` instead of MAX_BODY_BYTES (the grid import)."""

    def mark(view: View) -> View:
        view.max_body_bytes = max_bytes  # type: ignore[attr-defined]
        return view

    return mark


# An over-limit body up to this size is read and thrown away (in 64 KB pieces, never kept) before
# the 413, so that the client, which is still sending it, gets the answer and keeps its connection;
# gunicorn would otherwise close it (it drains at most 64 KB) and the client's next request on it
# would fail. A larger body is refused without reading another byte.
DISCARD_MAX_BYTES = 1024 * 1024


def _too_large(limit: int) -> ApiError:
    _discard_rest()
    return ApiError(413, "body_too_large", f"the body may be at most {limit} bytes")


def _discard_rest() -> None:
    declared = request.content_length
    if declared is not None and declared > DISCARD_MAX_BYTES:
        return
    stream = request.environ["wsgi.input"]  # what werkzeug left unread, bounded by the server
    budget = DISCARD_MAX_BYTES
    while budget > 0:
        piece = stream.read(min(64 * 1024, budget))
        if not piece:
            return
        budget -= len(piece)


def _enforce_body_limit() -> None:
    """Before anything reads the body: refuse a declared length over the endpoint's limit at once, and
    make werkzeug stop a chunked body (no Content-Length) as soon as it grows past it."""
    view = current_app.view_functions.get(request.endpoint or "")
    limit = getattr(view, "max_body_bytes", MAX_BODY_BYTES)
    request.max_content_length = limit
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)


def read_json_object(media_types: tuple[str, ...] = ("application/json",)) -> dict[str, Any]:
    """The request body as a JSON object, or an ApiError that says precisely what is wrong. `media_types`:
    the JSON media types the endpoint's document declares (the grid import adds application/geo+json)."""
    if request.mimetype not in media_types:
        raise ApiError(415, "unsupported_media_type", f"send the body as {' or '.join(media_types)}")
    raw = request.get_data(cache=True)  # bounded by _enforce_body_limit
    limit = request.max_content_length or MAX_BODY_BYTES
    if request.content_length is None and len(raw) >= limit:
        # a chunked body: werkzeug stops reading at the limit and hands over what it read, silently
        raise _too_large(limit)
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


def validated(schemas: RequestSchemas, schema: str, instance: Any, what: str = "request") -> None:
    """Check a body or a set of parameters against its contract schema; a 400 naming every bad field."""
    try:
        schemas.check(schema, instance)
    except RequestInvalid as exc:
        raise ApiError(400, "invalid_request", f"the {what} has invalid fields", exc.fields) from exc


def read_validated_json(schemas: RequestSchemas, schema: str) -> dict[str, Any]:
    """The JSON object body, checked against the contract's component schema `schema`."""
    body = read_json_object()
    validated(schemas, schema, body)
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
    # the cap for any body, applied before it is read; @body_limit raises it for one endpoint
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.wsgi_app = SecurityHeaders(app.wsgi_app)  # type: ignore[method-assign]

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
        # the contract's Ready shape (contract/openapi/common.yaml): status "ok" and each dependency checked
        return json_response({"status": "ok", "service": service, "checks": dict.fromkeys(checks, "ok")})

    @app.errorhandler(ApiError)
    def on_api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.fields, exc.headers)

    @app.errorhandler(PyMongoError)
    def on_database_error(exc: PyMongoError) -> Response:
        # the database is down, restarting or overloaded (FerretDB answers some of that with plain
        # command errors, not only with broken connections). Every write path commits with one
        # atomic insert, so nothing was half accepted and the client's retry is safe: 503, never 500.
        # Logged with its traceback, so a real bug still shows.
        app.logger.warning("database error: %r", exc, exc_info=not isinstance(exc, _TRANSIENT))
        return _unavailable("database_unavailable", "the database is unavailable; retry later")

    @app.errorhandler(KafkaError)
    def on_broker_error(exc: KafkaError) -> Response:
        app.logger.warning("broker error: %r", exc)
        return _unavailable("broker_unavailable", "the message broker is unavailable; retry later")

    @app.errorhandler(Conflict)
    def on_contention(exc: Conflict) -> Response:
        # another writer kept winning the same aggregate (or holds its next version): try again shortly
        return _unavailable("busy", "the petition is being changed by another request; retry shortly")

    @app.errorhandler(HTTPException)
    def on_http_error(exc: HTTPException) -> Response:
        if exc.code == 413:  # werkzeug's limit on a chunked body
            return on_api_error(_too_large(request.max_content_length or MAX_BODY_BYTES))
        code = (exc.name or "error").lower().replace(" ", "_")
        # keep what werkzeug says besides the body: a 405's Allow (RFC 9110 requires it), for one
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return error_response(exc.code or 500, code, exc.description or exc.name, headers=headers)

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()
        _enforce_body_limit()

    @app.after_request
    def record(response: Response) -> Response:
        route = request.url_rule.rule if request.url_rule else "unmatched"
        metrics.http_requests.labels(service, request.method, route, str(response.status_code)).inc()
        if hasattr(g, "started"):
            metrics.http_latency.labels(service, route).observe(time.perf_counter() - g.started)
        return response

    return app


def _unavailable(code: str, message: str) -> Response:
    return error_response(503, code, message, headers={"Retry-After": RETRY_AFTER_S})


class SecurityHeaders:
    """WSGI middleware adding SECURITY_HEADERS to every response (that does not set its own), around
    everything the process serves: Flask's views and errors, and the Prometheus app on /metrics."""

    def __init__(self, app: Any):
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            present = {name.lower() for name, _ in headers}
            headers = [*headers, *((n, v) for n, v in SECURITY_HEADERS if n.lower() not in present)]
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def mount_metrics(app: Flask, metrics: PlatformMetrics) -> None:
    inner = app.wsgi_app.app if isinstance(app.wsgi_app, SecurityHeaders) else app.wsgi_app
    dispatcher = DispatcherMiddleware(inner, {"/metrics": make_wsgi_app(metrics.registry)})
    app.wsgi_app = SecurityHeaders(dispatcher)  # type: ignore[method-assign]
