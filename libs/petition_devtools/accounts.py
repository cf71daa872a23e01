"""The county's roster becomes staff accounts at the identity provider (Keycloak's admin API).

    petitions-accounts sync --geojson county.geojson    # the registry file routing imports
    petitions-accounts sync --demo                      # the demo county (bin/run does this)

Every grid leader, village cadre, town supervisor and the county dispatcher of the roster (the
registry's 1+1+N; the N helpers sign in nowhere) gets an account whose attributes staff_id, role,
town_id, village_id and grid_ids land as claims in its access tokens (config/keycloak/
county-realm.json). New accounts are created in batches through the realm's partialImport, changed
ones updated one by one, and an account of the roster that left it is disabled and signed out:
its refresh tokens stop working at once, its access tokens within their 5 minutes.

Accounts not made by the roster (attribute `roster` absent: administrators, auditors made by hand,
machine clients' service accounts) are never touched.

The admin credentials: KEYCLOAK_ADMIN_CLIENT_ID and KEYCLOAK_ADMIN_CLIENT_SECRET (a service
account with realm-management's manage-users), else KEYCLOAK_ADMIN_PASSWORD for the master
realm's `admin`, else, in development, the local stack's generated one (.local/run/).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from countysim import County

REPO = Path(__file__).resolve().parents[2]
ROSTER_MARK = "county"
BATCH = 500
ATTRIBUTES = ("staff_id", "role", "town_id", "village_id", "grid_ids")


@dataclass
class Admin:
    """An authenticated session with the provider's admin API for one realm. Its token (a minute's
    life in the master realm) is fetched again whenever the API answers 401."""

    base: str
    realm: str
    form: dict[str, str]
    session: requests.Session

    @classmethod
    def connect(cls, base: str, realm: str = "county") -> Admin:
        base = base.rstrip("/")
        cid, secret = os.environ.get("KEYCLOAK_ADMIN_CLIENT_ID"), os.environ.get("KEYCLOAK_ADMIN_CLIENT_SECRET")
        if cid and secret:
            form = {"grant_type": "client_credentials", "client_id": cid, "client_secret": secret}
        else:
            form = {
                "grant_type": "password",
                "client_id": "admin-cli",
                "username": os.environ.get("KEYCLOAK_ADMIN_USER", "admin"),
                "password": os.environ.get("KEYCLOAK_ADMIN_PASSWORD") or local_admin_password(),
            }
        admin = cls(base, realm, form, requests.Session())
        admin.sign_in()
        return admin

    def sign_in(self) -> None:
        resp = requests.post(f"{self.base}/realms/master/protocol/openid-connect/token", data=self.form, timeout=30)
        resp.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"

    def url(self, path: str) -> str:
        return f"{self.base}/admin/realms/{self.realm}{path}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.session.request(method, self.url(path), timeout=300, **kwargs)
        if resp.status_code == 401:
            self.sign_in()
            resp = self.session.request(method, self.url(path), timeout=300, **kwargs)
        if resp.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {resp.status_code} {resp.text[:500]}")
        return resp.json() if resp.content else None

    def user_id(self, username: str) -> str:
        found = self.call("GET", "/users", params={"username": username, "exact": "true"})
        if not found:
            raise KeyError(username)
        return found[0]["id"]


def local_admin_password() -> str:
    root = Path(os.environ.get("PETITIONS_LOCAL_DIR", REPO / ".local"))
    return json.loads((root / "run" / "keycloak-credentials.json").read_text())["admin"]


def keycloak_url() -> str:
    return os.environ.get("KEYCLOAK_URL") or f"http://127.0.0.1:{os.environ.get('KEYCLOAK_PORT', '8180')}"


def roster_accounts(county: County, extra: Iterable[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """The user representations of everyone on the roster who signs in, and any `extra` accounts."""
    people = []
    for s in county.staff:
        if s.role == "helper":
            continue
        people.append(
            {
                "staff_id": s.staff_id,
                "name": s.name,
                "role": s.role,
                "town_id": s.town_id,
                "village_id": s.village_id,
                "grid_ids": sorted(s.grid_ids) if s.role == "grid_leader" else [],
            }
        )
    return [account(p) for p in [*people, *extra]]


def account(person: dict[str, Any], roster: str = ROSTER_MARK) -> dict[str, Any]:
    """A person of a roster as a user representation; `username` defaults to the staff id."""
    attributes = {"roster": [roster], "staff_id": [person["staff_id"]], "role": [person["role"]]}
    for key in ("town_id", "village_id"):
        if person.get(key):
            attributes[key] = [person[key]]
    if person.get("grid_ids"):
        attributes["grid_ids"] = list(person["grid_ids"])
    return {
        "username": (person.get("username") or person["staff_id"]).lower(),
        "firstName": person["name"],
        "enabled": True,
        "attributes": attributes,
    }


def _same(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    have = current.get("attributes") or {}
    return (
        current.get("enabled") is True
        and current.get("firstName") == wanted["firstName"]
        and all(sorted(have.get(k, [])) == sorted(wanted["attributes"].get(k, [])) for k in (*ATTRIBUTES, "roster"))
    )


def existing_roster_accounts(admin: Admin, roster: str = ROSTER_MARK) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    first = 0
    while True:
        page = admin.call(
            "GET",
            "/users",
            # every user, filtered here: the admin API's attribute search (q=) is ten times slower
            params={"briefRepresentation": "false", "first": first, "max": BATCH},
        )
        for user in page:
            if roster in (user.get("attributes") or {}).get("roster", []):
                out[user["username"]] = user
        if len(page) < BATCH:
            return out
        first += BATCH


@dataclass(frozen=True)
class SyncResult:
    created: int
    updated: int
    disabled: int
    unchanged: int
    seconds: float


def ensure_user_profile(admin: Admin) -> None:
    """The realm's user profile as the roster needs it: staff attributes (role, area) that only
    administrators may see or edit (a staff member in the account console may not), and nothing
    required to sign in but a username and a password (a roster has no e-mail addresses)."""
    profile = admin.call("GET", "/users/profile")
    changed = profile.get("unmanagedAttributePolicy") != "ADMIN_EDIT"
    profile["unmanagedAttributePolicy"] = "ADMIN_EDIT"
    for attribute in profile["attributes"]:
        if attribute["name"] in ("email", "firstName", "lastName") and "required" in attribute:
            attribute.pop("required")
            changed = True
    if changed:
        admin.call("PUT", "/users/profile", json=profile)


def sync(admin: Admin, wanted: Sequence[dict[str, Any]], roster: str = ROSTER_MARK) -> SyncResult:
    """Make the accounts of `roster` (their attribute `roster`) those of `wanted`."""
    started = time.monotonic()
    ensure_user_profile(admin)
    current = existing_roster_accounts(admin, roster)
    by_name = {a["username"]: a for a in wanted}
    new = [a for name, a in by_name.items() if name not in current]
    for i in range(0, len(new), BATCH):
        admin.call("POST", "/partialImport", json={"ifResourceExists": "SKIP", "users": new[i : i + BATCH]})
    updated = unchanged = 0
    for name, want in by_name.items():
        if name not in current:
            continue
        if _same(current[name], want):
            unchanged += 1
            continue
        admin.call("PUT", f"/users/{current[name]['id']}", json={**current[name], **want})
        updated += 1
    disabled = 0
    for name, user in current.items():
        if name in by_name or not user.get("enabled"):
            continue
        admin.call("PUT", f"/users/{user['id']}", json={**user, "enabled": False})
        admin.call("POST", f"/users/{user['id']}/logout")  # its sessions and refresh tokens end now
        disabled += 1
    return SyncResult(len(new), updated, disabled, unchanged, time.monotonic() - started)


def set_password(admin: Admin, username: str, password: str) -> None:
    """Development and tests: give an account a password (a real county's staff sign in through
    its own identity service, docs/security.md)."""
    user_id = admin.user_id(username)
    credential = {"type": "password", "value": password, "temporary": False}
    admin.call("PUT", f"/users/{user_id}/reset-password", json=credential)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="petitions-accounts", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sync", help="create, update and disable accounts to match the roster")
    source = s.add_mutually_exclusive_group(required=True)
    source.add_argument("--geojson", type=Path, help="the grid registry (FeatureCollection) with its roster")
    source.add_argument("--demo", action="store_true", help="the demo county (countysim seed 7)")
    s.add_argument("--url", default=keycloak_url(), help="the provider's base URL (KEYCLOAK_URL)")
    s.add_argument("--realm", default="county")
    args = parser.parse_args(argv)
    if args.demo:
        from petition_devtools.demo import demo_county

        county = demo_county()
    else:
        county = County.from_geojson(json.loads(args.geojson.read_text(encoding="utf-8")))
    result = sync(Admin.connect(args.url, args.realm), roster_accounts(county))
    print(
        f"accounts: {result.created} created, {result.updated} updated, {result.disabled} disabled, "
        f"{result.unchanged} unchanged in {result.seconds:.1f}s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
