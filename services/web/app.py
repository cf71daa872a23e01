"""web (页面): create_app wires the pages, the four services' URLs, sessions, health and metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, Response, render_template, request
from prometheus_client import CollectorRegistry
from werkzeug.exceptions import HTTPException

from petition_common import logs, ratelimit
from petition_common.auth import InsecureConfiguration, OidcVerifier
from petition_common.config import DEFAULT_PORTS, Settings
from petition_common.credentials import Signer
from petition_common.metrics import PlatformMetrics
from petition_common.web import create_base_app, mount_metrics
from petition_kernel.taxonomy import load_categories
from petition_kernel.times import BEIJING, parse_time
from services.web import emap, labels, leaders
from services.web.areas import AreaCache
from services.web.audit import bp as audit_bp
from services.web.backends import SERVICES, Backends, BackendUnavailable
from services.web.citizen import bp as citizen_bp
from services.web.devlogin import DemoAccounts
from services.web.devlogin import bp as login_bp
from services.web.oidclogin import OidcClient
from services.web.oidclogin import bp as oidc_bp
from services.web.sessions import SessionTable
from services.web.staff import bp as staff_bp
from services.web.vendor import bp as vendor_bp

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent

# Pages, unlike the APIs, load the service's own styles and scripts (and nothing from anywhere else:
# county networks are intranets, and a page must not pull third-party code next to a citizen's data).
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def create_app(settings: Settings | None = None, backends: Backends | None = None) -> Flask:
    settings = settings or Settings.from_env("web")
    logs.configure("web", settings.log_level, settings.kafka_log_level)
    if not settings.development and settings.uses_development_key:
        raise InsecureConfiguration(
            "web refuses to start outside development with the development SECRET_KEYS: "
            "staff sessions would be signed with a public key. See docs/operations.md, 'Credentials'."
        )
    extra = settings.extra
    backends = backends or Backends(
        {s: extra.get(f"WEB_{s.upper()}_URL", f"http://127.0.0.1:{DEFAULT_PORTS[s]}").rstrip("/") for s in SERVICES},
        client_headers=_vouch_for_client(settings),
    )
    metrics = PlatformMetrics(CollectorRegistry(), "web")
    checks = {s: (lambda s=s: backends.healthy(s)) for s in SERVICES}
    app = create_base_app("web", metrics, checks)
    app.template_folder = str(HERE / "templates")
    app.static_folder = str(HERE / "static")
    app.secret_key = settings.secret_keys[0]
    app.config.update(
        SECRET_KEY_FALLBACKS=list(settings.secret_keys[1:]),
        SESSION_COOKIE_NAME="petitions_web",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=not settings.development,
        SEND_FILE_MAX_AGE_DEFAULT=3600,
    )
    demo_file = extra.get("WEB_DEMO_ACCOUNTS_FILE")
    app.extensions.update(
        backends=backends,
        areas=AreaCache(backends),
        settings=settings,
        sessions=SessionTable(),
        categories=load_categories(settings.config_dir / "categories.yaml"),
        # the development login's accounts: only in development, never in production
        demo_accounts=DemoAccounts.load(Path(demo_file)) if settings.development and demo_file else None,
        oidc=_oidc_client(settings, extra),
    )
    app.jinja_env.filters["bj"] = beijing_time
    categories = app.extensions["categories"]
    app.jinja_env.globals.update(
        labels=labels,
        development=settings.development,
        categories_name=lambda code: categories[code].name if code in categories else code,
    )
    app.register_blueprint(citizen_bp)
    app.register_blueprint(login_bp)
    app.register_blueprint(oidc_bp)
    app.register_blueprint(staff_bp)
    app.register_blueprint(audit_bp)
    app.register_blueprint(vendor_bp)
    emap.install(app)
    leaders.install(app)
    _page_errors(app)

    @app.after_request
    def page_headers(response: Response) -> Response:
        if response.mimetype == "text/html" and "Content-Security-Policy" not in response.headers:
            # a page may widen it for its own needs (the map's configured tile server)
            response.headers["Content-Security-Policy"] = PAGE_CSP
        if request.path.startswith("/static/"):
            # the service's own assets; pages themselves stay no-store (they may hold personal data)
            response.headers["Cache-Control"] = "public, max-age=3600"
        return response

    mount_metrics(app, metrics)
    return app


def _vouch_for_client(settings: Settings) -> Callable[[], dict[str, str]]:
    """The services count citizens' requests per client address (docs/security.md, Rate limits); the
    pages call them from one address, so each call says, signed with the server key, whose it is."""
    signer = Signer(settings.secret_keys)
    trusted = settings.rate_limits.trusted_proxies
    return lambda: ratelimit.client_headers(signer, ratelimit.client_address(trusted))


def _page_errors(app: Flask) -> None:
    """Pages answer errors as pages (the APIs' JSON errors stay for /healthz, /readyz and /metrics)."""

    @app.errorhandler(BackendUnavailable)
    def unavailable(exc: BackendUnavailable) -> tuple[str, int, dict[str, str]]:
        log.warning("backend unavailable: %s", exc)
        page = render_template("error.html", title="服务暂时不可用", message="系统繁忙，请稍后再试。")
        return page, 503, {"Retry-After": "5"}

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        if request.path in ("/healthz", "/readyz") or request.path.startswith("/metrics"):
            return exc
        messages = {404: "页面不存在或诉求编号、查询码不正确。", 405: "不支持的操作。", 413: "提交的内容过大。"}
        message = messages.get(exc.code or 500, "请求有误，请返回重试。")
        return render_template("error.html", title="出错了", message=message), exc.code or 500


def beijing_time(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """An RFC 3339 UTC time as Beijing time for people to read."""
    if not value:
        return "—"
    try:
        moment = parse_time(str(value))
    except ValueError:
        return str(value)
    return moment.astimezone(BEIJING).strftime(fmt)


def _oidc_client(settings: Settings, extra: dict[str, str]) -> OidcClient | None:
    """Staff login through the identity provider, if WEB_OIDC_ISSUER (or OIDC_ISSUER) is set."""
    issuer = extra.get("WEB_OIDC_ISSUER") or settings.oidc_issuer
    if not issuer:
        return None
    client_id = extra.get("WEB_OIDC_CLIENT_ID", "petitions-workbench")
    jwks = settings.oidc_jwks_url or f"{issuer.rstrip('/')}/protocol/openid-connect/certs"
    verifier = OidcVerifier(issuer, settings.oidc_audience, jwks, settings.oidc_leeway_s)
    return OidcClient(issuer, client_id, verifier, extra.get("WEB_OIDC_TOKEN_URL"))
