"""The four services as this service sees them: their public HTTP APIs, nothing else.

One `requests.Session` per thread (gunicorn runs one process with threads; a Session's connection pool
is not meant to be shared across threads), so pages reuse keep-alive connections to the services.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import requests
from flask import current_app, has_request_context

SERVICES = ("intake", "routing", "sla", "stats")
# how the services' audit trails name this client (with the browser's address, ratelimit.client_headers)
USER_AGENT = "petitions-web"
# a page waits at most this long for a service; a slower answer shows the "try again" page
TIMEOUT_S = 5.0


class BackendUnavailable(Exception):
    """A service could not be reached or answered 5xx; the page says "try again later"."""

    def __init__(self, service: str, detail: str):
        super().__init__(f"{service}: {detail}")
        self.service = service


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def fields(self) -> dict[str, str]:
        """The contract's field errors: {"error": {"fields": {path: message}}}."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return dict((error or {}).get("fields") or {})

    @property
    def code(self) -> str | None:
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return (error or {}).get("code")


@dataclass
class Backends:
    urls: dict[str, str]
    # headers that tell the services which client a call is for (their rate limits count per client,
    # petition_common.ratelimit.client_headers); called within the page's request
    client_headers: Callable[[], dict[str, str]] = field(default=dict, repr=False)
    _local: threading.local = field(default_factory=threading.local, repr=False)
    # reads a page makes at once; each pool thread keeps its own keep-alive Session (`_session`)
    _pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(16), repr=False)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers["User-Agent"] = USER_AGENT
        return session

    def call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        sent = {**(self.client_headers() if has_request_context() else {}), **(headers or {})}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        send = lambda: self._session().request(  # noqa: E731
            method, self.urls[service] + path, json=json, params=params, headers=sent, timeout=TIMEOUT_S
        )
        try:
            try:
                resp = send()
            except requests.ConnectionError as exc:
                # a kept-alive connection the service closed as it was reused (gunicorn's keepalive is
                # 5 s) resets a read: send it once more. Never a write, never after a timeout.
                if method != "GET" or isinstance(exc, requests.Timeout):
                    raise
                resp = send()
        except requests.RequestException as exc:
            raise BackendUnavailable(service, type(exc).__name__) from exc
        if resp.status_code >= 500:
            raise BackendUnavailable(service, f"HTTP {resp.status_code}")
        try:
            body = resp.json()
        except ValueError:
            body = {}
        return Answer(resp.status_code, body if isinstance(body, dict) else {"items": body})

    def get(self, service: str, path: str, **kw: Any) -> Answer:
        return self.call(service, "GET", path, **kw)

    def post(self, service: str, path: str, **kw: Any) -> Answer:
        return self.call(service, "POST", path, **kw)

    def get_all(self, reads: Sequence[tuple[str, str]], **kw: Any) -> list[Answer]:
        """Several (service, path) reads at once, each within TIMEOUT_S: a page that needs three
        services waits for the slowest answer, not for the sum. Raises what `get` would."""
        # the pool's threads have no request context: the client headers are taken here, in the page's
        headers = {**(self.client_headers() if has_request_context() else {}), **kw.pop("headers", {})}
        futures = [self._pool.submit(self.get, service, path, headers=headers, **kw) for service, path in reads]
        return [f.result() for f in futures]

    def healthy(self, service: str) -> None:
        """Raises when the service's /healthz does not answer 200 (readiness of this service)."""
        resp = self._session().get(self.urls[service] + "/healthz", timeout=2)
        if resp.status_code != 200:
            raise RuntimeError(f"{service} /healthz answered {resp.status_code}")


def current_backends() -> Backends:
    """The app's clients of the four services (built by create_app)."""
    return current_app.extensions["backends"]
