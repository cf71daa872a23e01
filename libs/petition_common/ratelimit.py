"""Rate limits on the HTTP endpoints, with Flask-Limiter, counted in the service's own database.

Each service declares which named limits guard which endpoint (`Rule`s, in its app.py) and calls
`install`. The limits are counted per client address, per citizen (a keyed digest of the phone in
the body) or per staff token, in fixed windows shared by every instance of the service
(`ratelimit_storage.FixedWindowSlots`). A request over a limit is answered 429 in the contract's
error shape with `Retry-After` (seconds until its window ends) before the view runs, so nothing
of it is stored. docs/security.md gives the default sizes and the reasons for them.

/healthz, /readyz and /metrics are never limited: a 429 from a probe would take a healthy instance
out of rotation, and those paths reveal nothing and write nothing.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter, RateLimitExceeded
from limits import parse_many

from petition_common.config import RateLimitSettings
from petition_common.credentials import Signer
from petition_common.ratelimit_storage import SCHEME, FixedWindowSlots
from petition_common.runtime import ServiceRuntime
from petition_common.web import error_response

log = logging.getLogger(__name__)

# name -> the default limits (`limits` notation); RATE_LIMIT_<NAME> replaces one (docs/configuration.md)
DEFAULT_LIMITS: dict[str, str] = {
    "SUBMIT_ADDRESS": "10/minute;100/day",  # POST /v1/petitions, per client address
    "SUBMIT_PHONE": "5/day",  # POST /v1/petitions, per citizen (phone in the body)
    "JOIN_ADDRESS": "10/minute;100/day",  # POST /v1/petitions/{id}/join, per client address
    "JOIN_PHONE": "20/day",  # POST /v1/petitions/{id}/join, per citizen
    "READ_ADDRESS": "60/minute",  # GET /v1/petitions/{id} with a tracking code, per client address
    "ACTION_ADDRESS": "10/minute;100/day",  # feedback and withdraw, per client address
    "NEARBY_ADDRESS": "30/minute;300/day",  # GET /v1/petitions/nearby, per client address
    "STAFF": "600/minute",  # every request with a valid staff token, per token (else per address)
}

# what a refused client is told, by limit name: (message, fields)
_REFUSALS: dict[str, tuple[str, dict[str, str]]] = {
    "SUBMIT_PHONE": ("too many petitions from this phone number", {"citizen.phone": "too many petitions today"}),
    "JOIN_PHONE": ("too many joins from this phone number", {"citizen.phone": "too many joins today"}),
    "STAFF": ("too many requests with this staff token", {}),
}
_DEFAULT_REFUSAL = ("too many requests from this address", {})

Key = Callable[[], str | None]


@dataclass(frozen=True)
class Rule:
    """One named limit on an endpoint: counted per `key()`; a request for which `key()` is None is
    not counted by this rule (e.g. a body without a valid phone, which the view refuses anyway).
    `shared`: one count across every endpoint the rule guards (staff tokens), else one per endpoint."""

    name: str
    key: Key
    shared: bool = False
    # what one request weighs: a batch weighs one per item, as the single requests it stands for
    cost: int | Callable[[], int] = 1


def scaled(limits: str, scale: float) -> str:
    """`limits` with every amount multiplied by `scale` (rounded up, at least 1)."""
    return ";".join(
        f"{max(1, math.ceil(item.amount * scale))}/{item.multiples} {item.GRANULARITY.name}"
        for item in parse_many(limits)
    )


def effective_limits(settings: RateLimitSettings) -> dict[str, str]:
    """Each limit by name as configured: the default or its override, scaled. Unknown names or
    malformed limits stop the service at start-up rather than leave an endpoint unguarded."""
    unknown = sorted(set(settings.overrides) - set(DEFAULT_LIMITS))
    if unknown:
        raise ValueError(f"unknown rate limits RATE_LIMIT_{unknown[0]}; known: {', '.join(DEFAULT_LIMITS)}")
    out = {}
    for name, default in DEFAULT_LIMITS.items():
        value = settings.overrides.get(name, default)
        try:
            out[name] = scaled(value, settings.scale)
        except ValueError as exc:
            raise ValueError(f"RATE_LIMIT_{name}={value!r}: {exc}") from None
    return out


# ---- who is asking

# A service of ours that calls another on a citizen's behalf (the web pages call intake) says whose
# request it is: "<address>;<minute>;<HMAC with the server key>". Without it, every citizen of the
# pages would share the web service's address and count. Signed, so that no client can choose its
# own count with it, and bound to the minute, so that a copy seen on the network soon stops working.
CLIENT_HEADER = "X-Petitions-Client"
_CLIENT_PURPOSE = "client-address"


def client_headers(signer: Signer, address: str, now: float | None = None) -> dict[str, str]:
    """The header that tells another service of ours which client a request is for."""
    minute = str(int((time.time() if now is None else now) // 60))
    return {CLIENT_HEADER: f"{address};{minute};{signer.sign(_CLIENT_PURPOSE, address, minute)}"}


def vouched_client(signer: Signer, header: str | None, now: float | None = None) -> str | None:
    """The client address a service of ours vouched for in CLIENT_HEADER, or None (absent, forged,
    or older than a minute or two)."""
    address, _, rest = (header or "").partition(";")
    minute, _, tag = rest.partition(";")
    if not (address and minute.isdigit() and tag):
        return None
    if abs(int(minute) - int((time.time() if now is None else now) // 60)) > 1:
        return None
    return address if signer.verify(tag, _CLIENT_PURPOSE, address, minute) else None


def client_address(trusted_proxies: int, signer: Signer | None = None) -> str:
    """The client's address: the one a service of ours vouched for (`vouched_client`), else the
    socket's peer, or with N trusted proxies in front, the address the outermost of them appended to
    X-Forwarded-For (the N-th from the right, as werkzeug's ProxyFix reads it). Anything further left
    was written by the client and may be anything."""
    if signer is not None and (vouched := vouched_client(signer, request.headers.get(CLIENT_HEADER))):
        return vouched
    if trusted_proxies > 0:
        hops = [h.strip() for line in request.headers.getlist("X-Forwarded-For") for h in line.split(",")]
        hops = [h for h in hops if h]
        if len(hops) >= trusted_proxies:
            return hops[-trusted_proxies]
    return request.remote_addr or "unknown"


def by_address() -> str:
    signer = current_app.extensions["rate_limit_signer"]
    return "addr:" + client_address(current_app.extensions["rate_limits"].trusted_proxies, signer)


def by_staff_token() -> str | None:
    """A digest of the bearer token if it is a valid staff token, else None. Only valid tokens get a
    bucket of their own: made-up tokens would otherwise each get a fresh one."""
    if "rate_limit_staff" not in g:
        header = request.headers.get("Authorization")
        staff = current_app.extensions["tokens"].authenticate(header) if header else None
        token = (header or "").removeprefix("Bearer ").strip()
        g.rate_limit_staff = "staff:" + hashlib.sha256(token.encode()).hexdigest()[:32] if staff else None
    return g.rate_limit_staff


def by_staff_token_or_address() -> str:
    return by_staff_token() or by_address()


def unless_staff(key: Key) -> Key:
    """`key`, except for requests with a valid staff token (counted by STAFF instead): a hotline or a
    service hall files many citizens' petitions from one address."""
    return lambda: None if by_staff_token() else key()


# staff services: every request, per valid token, else per address (401s included)
STAFF_RULE = Rule("STAFF", by_staff_token_or_address, shared=True)
# citizens' endpoints that staff may also call: only the requests with a valid token, on the same count
STAFF_TOKEN_RULE = Rule("STAFF", by_staff_token, shared=True)


# ---- wiring


def install(app: Flask, runtime: ServiceRuntime, routes: Mapping[str, Sequence[Rule]], background: bool) -> None:
    """Guard the endpoints of `routes` (endpoint name -> rules) with their limits, counted in the
    service's `rate_limits` collection; with `background`, start the cleanup of expired windows."""
    settings = runtime.settings.rate_limits
    app.extensions["rate_limits"] = settings
    app.extensions["rate_limit_signer"] = Signer(runtime.settings.secret_keys)
    if not settings.enabled:
        log.warning("RATE_LIMITS=off: no endpoint is rate-limited")
        return
    limits = effective_limits(settings)
    limiter = Limiter(
        by_address,
        strategy="fixed-window",
        storage_uri=f"{SCHEME}://",
        storage_options={"collection": runtime.db["rate_limits"]},  # type: ignore[dict-item]
        headers_enabled=False,  # the counts are not the client's business; a 429 says when to retry
        swallow_errors=False,  # the database is down: 503 (web.py), as for any other request
    )
    limiter.init_app(app)
    app.extensions["limiter"] = limiter
    app.extensions["rate_limit_values"] = limits
    for endpoint, rules in routes.items():
        view = app.view_functions[endpoint]
        for rule in rules:
            view = _guard(limiter, rule, limits[rule.name])(view)
        app.view_functions[endpoint] = view
    storage = limiter.storage
    assert isinstance(storage, FixedWindowSlots)

    @app.errorhandler(RateLimitExceeded)
    def on_rate_limited(exc: RateLimitExceeded) -> Response:
        name = str(exc.limit.error_message or "")
        message, fields = _REFUSALS.get(name, _DEFAULT_REFUSAL)
        breached = limiter.current_limit
        ends = storage.get_expiry(breached.key) if breached is not None else time.time() + 60
        wait = max(1, math.ceil(ends - time.time()))
        runtime.metrics.rate_limited.labels(runtime.settings.service, name).inc()
        return error_response(429, "rate_limited", f"{message}; retry in {wait} s", fields, {"Retry-After": str(wait)})

    if background:
        runtime.start_periodic("rate-limit-cleanup", settings.cleanup_interval_s, storage.forget_expired)
        runtime.start_periodic("rate-limit-sweep", settings.sweep_interval_s, storage.sweep)


def over_limit(name: str, endpoint: str, key: str) -> int | None:
    """Count one hit of the limit `name` for `key`, on the same count as the endpoint `endpoint`'s
    rule of that name (one item of a batch counts as the single request it stands for); None while
    within the limit, else the seconds until its window ends."""
    if not current_app.extensions["rate_limits"].enabled:
        return None
    limiter: Limiter = current_app.extensions["limiter"]
    for item in parse_many(current_app.extensions["rate_limit_values"][name]):
        if not limiter.limiter.hit(item, key, endpoint):
            ends = limiter.storage.get_expiry(item.key_for(key, endpoint))
            runtime: ServiceRuntime = current_app.extensions["runtime"]
            runtime.metrics.rate_limited.labels(runtime.settings.service, name).inc()
            return max(1, math.ceil(ends - time.time()))
    return None


def _guard(limiter: Limiter, rule: Rule, limits: str) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    def key() -> str:
        value = rule.key()
        assert value is not None  # exempt_when below keeps None away
        return value

    options = {
        "key_func": key,
        "exempt_when": lambda: rule.key() is None,
        "error_message": rule.name,
        "cost": rule.cost,
    }
    if rule.shared:
        return limiter.shared_limit(limits, scope=rule.name.lower(), **options)  # type: ignore[arg-type]
    return limiter.limit(limits, **options)  # type: ignore[arg-type]


def staff_routes(app: Flask, blueprint: str) -> dict[str, list[Rule]]:
    """Every endpoint of a staff service's blueprint, under the per-token limit."""
    return {endpoint: [STAFF_RULE] for endpoint in app.view_functions if endpoint.startswith(f"{blueprint}.")}
