"""Accounts at the stack's real Keycloak for one test, and their tokens.

Each test's accounts form a roster of their own (attribute `roster` = a fresh name), with usernames
prefixed by it, so tests never touch the demo county's accounts or each other's on the shared
provider. Passwords are random per account; tokens come from the development-only direct grant
client `petitions-dev` (config/keycloak/development-clients.json)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests

from countysim import County
from petition_devtools.accounts import Admin, account, set_password, sync
from tests.support import KEYCLOAK, KEYCLOAK_ISSUER

TOKEN_URL = f"{KEYCLOAK_ISSUER}/protocol/openid-connect/token"


def password_grant(username: str, password: str, client_id: str = "petitions-dev") -> requests.Response:
    form = {"grant_type": "password", "client_id": client_id, "username": username, "password": password}
    return requests.post(TOKEN_URL, data=form, timeout=30)


def machine_token(admin: Admin, client_id: str = "hotline") -> str:
    """A client-credentials token of a machine client, its secret read through the admin API."""
    client = admin.call("GET", "/clients", params={"clientId": client_id})[0]
    secret = admin.call("GET", f"/clients/{client['id']}/client-secret")["value"]
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    resp = requests.post(TOKEN_URL, data=form, timeout=30)
    resp.raise_for_status()
    return resp.json()["access_token"]


@dataclass
class Roster:
    admin: Admin
    name: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:10]}")
    people: dict[str, dict[str, Any]] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)

    @classmethod
    def connect(cls) -> Roster:
        return cls(Admin.connect(KEYCLOAK))

    def username(self, staff_id: str) -> str:
        return f"{self.name}-{staff_id}".lower()

    def add(self, staff_id: str, role: str, **area: Any) -> str:
        self.people[staff_id] = {
            "staff_id": staff_id,
            "username": self.username(staff_id),
            "name": f"测试{staff_id}",
            "role": role,
            **area,
        }
        return staff_id

    def add_from_county(self, county: County, staff_id: str) -> str:
        s = next(p for p in county.staff if p.staff_id == staff_id)
        grids = sorted(s.grid_ids) if s.role == "grid_leader" else []
        return self.add(s.staff_id, s.role, town_id=s.town_id, village_id=s.village_id, grid_ids=grids)

    def sync(self, only: set[str] | None = None) -> None:
        """Accounts for everyone added (or only those named); the others of this roster are disabled."""
        wanted = [account(p, self.name) for sid, p in self.people.items() if only is None or sid in only]
        sync(self.admin, wanted, self.name)
        for person in wanted:
            name = person["username"]
            if name not in self.passwords:
                self.passwords[name] = secrets.token_urlsafe(12)
                set_password(self.admin, name, self.passwords[name])

    def sign_in(self, staff_id: str, client_id: str = "petitions-dev") -> requests.Response:
        name = self.username(staff_id)
        return password_grant(name, self.passwords[name], client_id)

    def token(self, staff_id: str, client_id: str = "petitions-dev") -> str:
        resp = self.sign_in(staff_id, client_id)
        assert resp.status_code == 200, resp.text
        return resp.json()["access_token"]

    def bearer(self, staff_id: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(staff_id)}"}

    def remove(self) -> None:
        """Disable every account of this roster (the end of a test)."""
        sync(self.admin, [], self.name)
