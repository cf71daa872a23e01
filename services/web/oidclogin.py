"""Staff login through the identity provider: OpenID Connect authorization code with PKCE (S256).

The web service is a public client (`petitions-workbench`; in development `petitions-workbench-dev`,
which may return to any local port). The browser only ever carries the code; the code verifier,
state and nonce wait in this process's memory, and the access token stays in the server-side
session (sessions.py) until it expires. A session ends with its access token (5 minutes): the next
page sends the browser back through the provider, whose own session signs it in again without a
password until that ends too. Configured by WEB_OIDC_ISSUER (the issuer the browser is sent to),
WEB_OIDC_CLIENT_ID and WEB_OIDC_TOKEN_URL (where this service redeems codes; default the issuer's).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
import threading
import time
from typing import Any
from urllib.parse import urlencode

import requests
from flask import Blueprint, abort, current_app, redirect, request, session, url_for

from petition_common.auth import OidcVerifier
from services.web.sessions import SessionTable, StaffSession

bp = Blueprint("oidc", __name__)
log = logging.getLogger(__name__)
PENDING_TTL_S = 600  # a login left at the provider's page longer than this starts again


class OidcClient:
    def __init__(self, issuer: str, client_id: str, verifier: OidcVerifier, token_url: str | None = None):
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.verifier = verifier
        self.token_url = token_url or f"{self.issuer}/protocol/openid-connect/token"
        self._pending: dict[str, tuple[str, float]] = {}  # state -> (code verifier, expiry)
        self._lock = threading.Lock()

    def authorization_url(self, redirect_uri: str) -> str:
        state, verifier = secrets.token_urlsafe(24), secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        now = time.monotonic()
        with self._lock:
            self._pending = {k: v for k, v in self._pending.items() if v[1] > now}
            self._pending[state] = (verifier, now + PENDING_TTL_S)
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid",
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        return f"{self.issuer}/protocol/openid-connect/auth?{urlencode(query)}"

    def redeem(self, state: str, code: str, redirect_uri: str) -> dict[str, Any] | None:
        """The token response for a code, if `state` is one this process handed out (once)."""
        with self._lock:
            pending = self._pending.pop(state, None)
        if pending is None or pending[1] <= time.monotonic():
            return None
        form = {
            "grant_type": "authorization_code",
            "client_id": self.client_id,
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": pending[0],
        }
        resp = requests.post(self.token_url, data=form, timeout=15)
        return resp.json() if resp.status_code == 200 else None


def _client() -> OidcClient:
    client = current_app.extensions.get("oidc")
    if client is None:
        abort(404)
    return client


@bp.get("/staff/oidc/start")
def start() -> Any:
    return redirect(_client().authorization_url(url_for("oidc.callback", _external=True)), 303)


@bp.get("/staff/oidc/callback")
def callback() -> Any:
    client = _client()
    state, code = request.args.get("state", ""), request.args.get("code", "")
    tokens = client.redeem(state, code, url_for("oidc.callback", _external=True)) if state and code else None
    staff = client.verifier.verify(tokens["access_token"]) if tokens else None
    if staff is None or staff.role == "machine_client":
        log.info("staff login through the provider refused")
        return redirect(url_for("login.login_form", failed=1), 303)
    area = staff.town_id or ""
    if staff.village_id:
        area = staff.village_id
    if staff.grid_ids:
        area = "、".join(sorted(staff.grid_ids))
    table: SessionTable = current_app.extensions["sessions"]
    table.close(session.get("sid"))
    session.clear()
    lifetime = float(tokens.get("expires_in", 300))  # type: ignore[union-attr]
    session["sid"] = table.open(
        StaffSession(
            tokens["access_token"],  # type: ignore[index]
            staff.staff_id,
            staff.staff_id,
            staff.role,
            area,
            staff.town_id,
            expires=time.monotonic() + lifetime,
        )
    )
    log.info("staff login: %s (%s) through the identity provider", staff.staff_id, staff.role)
    return redirect(url_for("staff.home"), 303)
