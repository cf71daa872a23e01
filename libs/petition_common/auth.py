"""Staff bearer tokens from configuration: token -> staff id, role and the area it covers.

The file (STAFF_TOKENS_FILE, default config/staff-tokens.yaml) stores SHA-256 digests of the
tokens, never the tokens themselves, so a leaked config file does not leak access.
Roles: grid_leader (its own grids), village_cadre (its village), town_supervisor (its town),
county_dispatcher and auditor (the whole county).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from petition_common.config import Settings

ROLES = ("grid_leader", "village_cadre", "town_supervisor", "county_dispatcher", "auditor")
# tokens whose values are public (the README prints them; config/staff-tokens.yaml holds their digests)
DEVELOPMENT_TOKENS = ("dev-dispatcher", "dev-auditor")
# the form of the tokens petition_devtools.tokens gives a generated county's staff (tests, benchmark)
PUBLIC_TOKEN_PREFIX = "tok-"


class InsecureConfiguration(RuntimeError):
    """A service outside development was given credentials anyone can read in the project's code."""


@dataclass(frozen=True)
class Staff:
    staff_id: str
    role: str
    town_id: str | None = None
    village_id: str | None = None
    grid_ids: frozenset[str] = field(default_factory=frozenset)
    # the OAuth client the request came through (the token's azp); None for a static token
    client_id: str | None = None

    def covers(self, grid_id: str | None, town_id: str | None) -> bool:
        """Whether this staff member may see or act on an object in that grid and town."""
        if self.role in ("county_dispatcher", "auditor"):
            return True
        if self.role == "town_supervisor":
            return town_id is not None and town_id == self.town_id
        if self.role == "village_cadre":
            return grid_id is not None and self.village_id is not None and grid_id.startswith(self.village_id)
        return grid_id is not None and grid_id in self.grid_ids


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenDirectory:
    def __init__(self, by_digest: dict[str, Staff]):
        self._by_digest = by_digest

    @classmethod
    def load(cls, path: Path) -> TokenDirectory:
        if not path.exists():
            return cls({})
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        by_digest = {}
        for entry in doc.get("tokens", []):
            if entry["role"] not in ROLES:
                raise ValueError(f"{path}: unknown role {entry['role']!r} for {entry['staff_id']}")
            by_digest[entry["sha256"]] = Staff(
                staff_id=entry["staff_id"],
                role=entry["role"],
                town_id=entry.get("town_id"),
                village_id=entry.get("village_id"),
                grid_ids=frozenset(entry.get("grid_ids", [])),
            )
        return cls(by_digest)

    def __len__(self) -> int:
        return len(self._by_digest)

    def entries(self) -> Iterator[tuple[str, Staff]]:
        return iter(self._by_digest.items())

    def add(self, token: str, staff: Staff) -> None:
        self._by_digest[token_digest(token)] = staff

    def authenticate(self, authorization: str | None) -> Staff | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        # looking up a SHA-256 digest leaks nothing useful about the token through timing
        return self._by_digest.get(token_digest(authorization.removeprefix("Bearer ").strip()))


def staff_directory(settings: Settings) -> TokenDirectory:
    """The staff tokens of STAFF_TOKENS_FILE; outside development, refuses (InsecureConfiguration) a
    missing or empty file, a token whose value is public (the development tokens, a test county's
    `tok-<staff id>`), and the development SECRET_KEYS — each named in the message."""
    path = settings.staff_tokens_file
    directory = TokenDirectory.load(path)
    if settings.development:
        return directory
    problems = []
    if not path.exists():
        problems.append(f"no staff tokens file at {path} (set STAFF_TOKENS_FILE, e.g. a mounted secret)")
    elif not len(directory):
        problems.append(f"{path} holds no staff tokens")
    public = {token_digest(t) for t in DEVELOPMENT_TOKENS}
    for digest, staff in directory.entries():
        if digest in public or digest == token_digest(PUBLIC_TOKEN_PREFIX + staff.staff_id):
            problems.append(
                f"{path}: the token of {staff.staff_id} is a development token, public in the project's code"
            )
    if settings.uses_development_key:
        problems.append("SECRET_KEYS is not set: citizens' credentials would be signed with the public development key")
    if problems:
        raise InsecureConfiguration(
            f"{settings.service} refuses to start outside development (PETITIONS_ENV={settings.environment}): "
            + "; ".join(problems)
            + ". See docs/operations.md, 'Credentials'."
        )
    return directory
