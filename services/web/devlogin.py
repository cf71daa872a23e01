"""The development login (PETITIONS_ENV=development only): pick a demo account of the generated county.

The accounts file (WEB_DEMO_ACCOUNTS_FILE, written by petition_devtools.demo) holds the demo staff
and their development tokens, which are public anyway (`tok-<staff id>`); services outside
development refuse those tokens. Staff log in through the identity provider (oidclogin.py);
this login stays for development.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, current_app, redirect, render_template, request, session, url_for

from services.web.backends import current_backends
from services.web.sessions import SessionTable, StaffSession

bp = Blueprint("login", __name__)
log = logging.getLogger(__name__)
MAX_MATCHES = 20


@dataclass(frozen=True)
class DemoAccount:
    staff_id: str
    name: str
    role: str
    area: str
    token: str
    town_id: str | None = None
    featured: bool = False


class DemoAccounts:
    def __init__(self, accounts: list[DemoAccount]):
        self.accounts = accounts
        self._by_id = {a.staff_id: a for a in accounts}

    @classmethod
    def load(cls, path: Path) -> DemoAccounts:
        rows: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
        return cls([DemoAccount(**row) for row in rows])

    def get(self, staff_id: str) -> DemoAccount | None:
        return self._by_id.get(staff_id)

    def featured(self) -> list[DemoAccount]:
        return [a for a in self.accounts if a.featured]

    def search(self, text: str) -> list[DemoAccount]:
        """Accounts whose id, name or area contains `text` (a village name finds its grids' leaders)."""
        text = text.strip()
        if not text:
            return []
        return [a for a in self.accounts if text in a.staff_id or text in a.name or text in a.area][:MAX_MATCHES]


def _accounts() -> DemoAccounts | None:
    return current_app.extensions["demo_accounts"]


@bp.get("/staff/login")
def login_form() -> Any:
    accounts = _accounts()
    oidc = current_app.extensions.get("oidc") is not None
    failed = "统一身份认证登录未成功，请重试。" if request.args.get("failed") else None
    if accounts is None:
        if oidc:  # outside development the provider's login is the only one
            return render_template("login.html", featured=[], matches=[], query="", error=failed, oidc=oidc)
        return render_template("login_unavailable.html"), 503
    query = request.args.get("q", "")
    return render_template(
        "login.html", featured=accounts.featured(), matches=accounts.search(query), query=query, error=failed, oidc=oidc
    )


@bp.post("/staff/login")
def login() -> Any:
    accounts = _accounts()
    if accounts is None:
        abort(404)
    account = accounts.get(request.form.get("staff_id", ""))
    backends = current_backends()
    # the services are the judges of a token: one that routing refuses opens no session
    if (
        account is None
        or backends.get("routing", "/v1/workorders", token=account.token, params={"limit": 1}).status != 200
    ):
        page = render_template(
            "login.html", featured=accounts.featured(), matches=[], query="", error="该演示账号不可用，请换一个。"
        )
        return page, 401
    table: SessionTable = current_app.extensions["sessions"]
    table.close(session.get("sid"))
    session.clear()
    session["sid"] = table.open(
        StaffSession(account.token, account.staff_id, account.name, account.role, account.area, account.town_id)
    )
    log.info("staff login: %s (%s) through the development login", account.staff_id, account.role)
    return redirect(url_for("staff.home"), 303)


@bp.post("/staff/logout")
def logout() -> Any:
    current_app.extensions["sessions"].close(session.get("sid"))
    session.clear()
    return redirect(url_for("login.login_form"), 303)
