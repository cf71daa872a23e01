"""Who a staff request comes from: a bearer JWT from the identity provider, mapped to one `Staff`.

Staff sign in at the county's OpenID Connect provider (Keycloak locally, docs/security.md); every
service validates the access token itself: RS256 only, the configured issuer and audience, expiry
with a few seconds' leeway, the signing key from the provider's JWKS (cached; fetched again when a
token names a key id not seen yet, which is how key rotation arrives). The claims staff_id, role,
town_id, village_id and grid_ids become the `Staff` principal; azp, the OAuth client, its client_id.

Static tokens (STAFF_TOKENS_FILE, SHA-256 digests of them) remain as a development convenience:
outside development a service refuses to start with any. What a principal may read or do is
decided by petition_kernel.access alone.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import yaml

from petition_common.config import Settings

log = logging.getLogger(__name__)

STAFF_ROLES = ("grid_leader", "village_cadre", "town_supervisor", "county_dispatcher", "auditor")
# a system, not a person: the hotline and other government systems (client credentials)
MACHINE_ROLE = "machine_client"
ROLES = (*STAFF_ROLES, MACHINE_ROLE)
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


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenDirectory:
    def __init__(self, by_digest: dict[str, Staff]):
        self._by_digest = by_digest

    @classmethod
    def load(cls, path: Path | None) -> TokenDirectory:
        if path is None or not path.exists():
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


def staff_from_claims(claims: Mapping[str, Any]) -> Staff | None:
    """The principal an access token's claims describe; None if they name no staff id or no known role."""
    staff_id, role = claims.get("staff_id"), claims.get("role")
    if not isinstance(staff_id, str) or not staff_id or role not in ROLES:
        return None
    grids = claims.get("grid_ids") or []
    if isinstance(grids, str):  # a single-valued attribute may arrive as a plain string
        grids = [grids]
    return Staff(
        staff_id=staff_id,
        role=role,
        town_id=claims.get("town_id") or None,
        village_id=claims.get("village_id") or None,
        grid_ids=frozenset(g for g in grids if isinstance(g, str)),
        client_id=claims.get("azp") or None,
    )


class OidcVerifier:
    """Validates the identity provider's access tokens (PyJWT with the provider's JWKS)."""

    ALGORITHMS = ("RS256",)

    def __init__(self, issuer: str, audience: str, jwks_url: str, leeway_s: float = 5.0):
        self.issuer = issuer
        self.audience = audience
        self.leeway_s = leeway_s
        # the key set is cached for 5 minutes and each key by kid; an unknown kid fetches the set again
        self._jwks = jwt.PyJWKClient(jwks_url, cache_jwk_set=True, lifespan=300, cache_keys=True, timeout=5)

    def verify(self, token: str) -> Staff | None:
        try:
            key = self._jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=list(self.ALGORITHMS),
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.PyJWKClientConnectionError as exc:
            log.warning("the identity provider's keys are unreachable", extra={"why": str(exc)[:200]})
            return None
        except jwt.PyJWTError:
            return None
        if claims.get("typ", "Bearer") != "Bearer":  # an ID or refresh token is no access token
            return None
        return staff_from_claims(claims)


class StaffAuthenticator:
    """A request's principal: a JWT goes to the provider's verifier, anything else to the static
    development tokens (empty outside development)."""

    def __init__(self, static: TokenDirectory, oidc: OidcVerifier | None):
        self.static = static
        self.oidc = oidc

    def __len__(self) -> int:
        return len(self.static)

    def entries(self) -> Iterator[tuple[str, Staff]]:
        return self.static.entries()

    def add(self, token: str, staff: Staff) -> None:
        self.static.add(token, staff)

    def authenticate(self, authorization: str | None) -> Staff | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        token = authorization.removeprefix("Bearer ").strip()
        if self.oidc is not None and token.count(".") == 2:
            return self.oidc.verify(token)
        return self.static.authenticate(authorization)


def staff_directory(settings: Settings) -> StaffAuthenticator:
    """The service's authenticator: the identity provider's tokens (OIDC_ISSUER) and, in development
    only, the static tokens of STAFF_TOKENS_FILE. Outside development it refuses
    (InsecureConfiguration) a missing OIDC_ISSUER, any static token, and the development SECRET_KEYS —
    each named in the message."""
    path = settings.staff_tokens_file
    directory = TokenDirectory.load(path)
    oidc = (
        OidcVerifier(settings.oidc_issuer, settings.oidc_audience, settings.jwks_url, settings.oidc_leeway_s)  # type: ignore[arg-type]
        if settings.oidc_issuer
        else None
    )
    if settings.development:
        return StaffAuthenticator(directory, oidc)
    problems = []
    if oidc is None:
        problems.append("no identity provider: set OIDC_ISSUER (and OIDC_JWKS_URL if the keys are fetched elsewhere)")
    public = {token_digest(t) for t in DEVELOPMENT_TOKENS}
    for digest, staff in directory.entries():
        if digest in public or digest == token_digest(PUBLIC_TOKEN_PREFIX + staff.staff_id):
            problems.append(
                f"{path}: the token of {staff.staff_id} is a development token, public in the project's code"
            )
        else:
            problems.append(f"{path}: static staff tokens ({staff.staff_id}) are for development only")
    if settings.uses_development_key:
        problems.append("SECRET_KEYS is not set: citizens' credentials would be signed with the public development key")
    if problems:
        raise InsecureConfiguration(
            f"{settings.service} refuses to start outside development (PETITIONS_ENV={settings.environment}): "
            + "; ".join(problems)
            + ". See docs/operations.md, 'Credentials'."
        )
    return StaffAuthenticator(directory, oidc)
