"""Settings from the environment: the only module that reads os.environ.

Every setting has a default that works with the local stack (deploy/local/stack.py) and is
documented in docs/configuration.md. Services call `Settings.from_env(service)` once at start-up
and pass the object on; tests build Settings directly or override the environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]

DEFAULT_PORTS = {"intake": 8081, "routing": 8082, "sla": 8083, "stats": 8084, "web": 8085}
# a consumer's fetch waits at the broker until `min bytes` are there (16 KB: about 16 events) or `max
# wait ms` have passed: a poll batch of several events is written in one round of commands and costs the
# broker one fetch, where events fetched one by one cost a round each. Routing is on the path from a
# 201 to `petition.assigned` (p99 < 300 ms at 100/s), so it takes each event at once (Kafka's defaults).
FETCH_WAIT = {"routing": (1, 500)}
DEFAULT_FETCH_WAIT = (16_384, 100)
# signs citizens' credentials (petition_common/credentials.py); production sets its own SECRET_KEYS
DEVELOPMENT_SECRET_KEY = "development-only-secret-key-do-not-deploy"
# encrypts citizens' contact details in intake (services/intake/contacts.py): `<key id>:<32 bytes,
# URL-safe base64>`; public, so a service outside development refuses it (docs/security.md)
DEVELOPMENT_CONTACT_KEYS = ("dev1:ZGV2ZWxvcG1lbnQtb25seS1jb250YWN0LWtleS0zMmI",)


def _staff_tokens_file(config_dir: Path) -> Path | None:
    """STAFF_TOKENS_FILE if set; else the development file in development, and none outside it."""
    if value := os.environ.get("STAFF_TOKENS_FILE"):
        return Path(value)
    if _env("PETITIONS_ENV", "production") == "development":
        return config_dir / "staff-tokens.yaml"
    return None


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def _key_list(text: str) -> tuple[str, ...]:
    return tuple(k.strip() for k in text.replace("\n", ",").split(",") if k.strip() and not k.strip().startswith("#"))


def _contact_keys() -> tuple[str, ...]:
    """CONTACT_KEYS, else the file CONTACT_KEYS_FILE names, else the development key."""
    if os.environ.get("CONTACT_KEYS"):
        return _key_list(os.environ["CONTACT_KEYS"])
    path = os.environ.get("CONTACT_KEYS_FILE")
    if path:
        return _key_list(Path(path).read_text(encoding="utf-8"))
    return DEVELOPMENT_CONTACT_KEYS


# RATE_LIMIT_* variables that are not a limit of their own
_RATE_LIMIT_KNOBS = ("RATE_LIMIT_SCALE", "RATE_LIMIT_CLEANUP_INTERVAL_S", "RATE_LIMIT_SWEEP_INTERVAL_S")


@dataclass(frozen=True)
class RateLimitSettings:
    """Rate limits of the public endpoints (petition_common/ratelimit.py; docs/security.md says why
    these sizes). On by default; a deployment scales them (a load test, a hall full of kiosks behind
    one address) or turns them off, and overrides any one limit by name."""

    enabled: bool = True
    # every limit's amount is multiplied by this (rounded up, at least 1)
    scale: float = 1.0
    # limit name (SUBMIT_ADDRESS, ...) -> limits string ("10/minute;100/day"), replacing the default
    overrides: dict[str, str] = field(default_factory=dict)
    # reverse proxies in front of the service that append to X-Forwarded-For; 0: the socket's address
    # is the client (a header the client sent itself must not choose its bucket)
    trusted_proxies: int = 0
    # deleting this process's expired window documents (by _id), and all expired ones (a full scan)
    cleanup_interval_s: float = 60.0
    sweep_interval_s: float = 3600.0

    @classmethod
    def from_env(cls) -> RateLimitSettings:
        switch = _env("RATE_LIMITS", "on").strip().lower()
        if switch not in ("on", "off"):
            raise ValueError(f"RATE_LIMITS must be on or off, not {switch!r}")
        trusted = int(_env("TRUSTED_PROXIES", "0"))
        scale = float(_env("RATE_LIMIT_SCALE", "1"))
        if trusted < 0 or not scale > 0:
            raise ValueError("TRUSTED_PROXIES must be >= 0 and RATE_LIMIT_SCALE > 0")
        overrides = {
            name.removeprefix("RATE_LIMIT_"): value
            for name, value in os.environ.items()
            if name.startswith("RATE_LIMIT_") and name not in _RATE_LIMIT_KNOBS and value
        }
        return cls(
            enabled=switch == "on",
            scale=scale,
            overrides=overrides,
            trusted_proxies=trusted,
            cleanup_interval_s=float(_env("RATE_LIMIT_CLEANUP_INTERVAL_S", "60")),
            sweep_interval_s=float(_env("RATE_LIMIT_SWEEP_INTERVAL_S", "3600")),
        )


@dataclass(frozen=True)
class Settings:
    service: str
    kafka_bootstrap: str = "127.0.0.1:9092"
    # SASL_PLAINTEXT (the local stack and compose) or PLAINTEXT; each service has its own SCRAM user,
    # allowed by ACLs to write only its own topic (petition_common.topics.WRITES, READS)
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str = "SCRAM-SHA-256"
    kafka_username: str | None = None
    kafka_password: str | None = field(default=None, repr=False)
    topic_prefix: str = ""
    topic_partitions: int = 4
    # replicas of every topic and how many must have a write before it is acknowledged (acks=all):
    # 1/1 on one broker, 3/2 on a cluster (docs/operations.md, "Topics")
    replication_factor: int = 1
    min_insync_replicas: int = 1
    # the producers' codec (the topics store batches as produced): zstd, lz4, gzip or none
    compression: str = "zstd"
    # dead letters are copies (the original stays in its topic for good), so they may expire
    deadletter_retention_days: float = 30.0
    mongo_uri: str = "mongodb://127.0.0.1:27017"
    # the service's own database is f"{db_prefix}{service}": tests set a prefix per run
    db_prefix: str = ""
    http_port: int = 8080
    log_level: str = "INFO"
    # kafka-python's own logger: it logs every reconnect attempt at WARNING/ERROR, so it is quiet by
    # default; INFO shows the consumer group's joins, syncs and coordinator changes
    kafka_log_level: str = "CRITICAL"
    config_dir: Path = field(default=REPO_ROOT / "config")
    contract_dir: Path = field(default=REPO_ROOT / "contract")
    # how long a dependency may take to answer before readiness says 503
    dependency_timeout_s: float = 2.0
    # outbox relay: how often it sweeps for events that the writer could not publish itself
    relay_interval_s: float = 1.0
    # consumer: retries of a transient failure before the loop stops and lets Kafka redeliver
    retry_attempts: int = 5
    retry_backoff_s: float = 0.2
    # a consumer's fetch returns once this many bytes are there or after fetch_max_wait_ms (FETCH_WAIT)
    fetch_min_bytes: int = DEFAULT_FETCH_WAIT[0]
    fetch_max_wait_ms: int = DEFAULT_FETCH_WAIT[1]
    # static staff bearer tokens: token -> staff id, role, area; a development convenience that a
    # service outside development refuses (docs/security.md). None: no such file.
    staff_tokens_file: Path | None = field(default=REPO_ROOT / "config" / "staff-tokens.yaml")
    # the staff identity provider (OpenID Connect): tokens must come from this issuer, for this
    # audience, signed with a key of the JWKS at oidc_jwks_url (default: the issuer's own certs URL)
    oidc_issuer: str | None = None
    oidc_jwks_url: str | None = None
    oidc_audience: str = "petitions-api"
    # clock skew tolerated between the provider and this service when checking exp/iat/nbf
    oidc_leeway_s: float = 5.0
    # the working-day calendar's year files (sla counts reply deadlines with it, stats decides "on time")
    calendar_dir: Path = field(default=REPO_ROOT / "config" / "calendar")
    # server keys for citizens' credentials: the first signs, all verify (rotation)
    secret_keys: tuple[str, ...] = (DEVELOPMENT_SECRET_KEY,)
    # intake's keys for contact details, `<id>:<base64 key>`: the first encrypts, all decrypt (rotation:
    # put the new key first, run `petitions-keys rotate`, then drop the old one); from CONTACT_KEYS or
    # the file CONTACT_KEYS_FILE (a mounted secret), one key a line or comma-separated
    contact_keys: tuple[str, ...] = field(default=DEVELOPMENT_CONTACT_KEYS, repr=False)
    # "development" (bin/run, tests, the benchmark) or "production" (from_env's default): outside
    # development a service refuses to start with the development credentials (petition_common.auth)
    environment: str = "development"
    rate_limits: RateLimitSettings = field(default_factory=RateLimitSettings)
    extra: dict[str, str] = field(default_factory=dict)

    def kafka_client(self) -> dict[str, Any]:
        """Keyword arguments every kafka-python client of this process is built with: the brokers and,
        with SASL, who this process is."""
        out: dict[str, Any] = {"bootstrap_servers": self.kafka_bootstrap}
        if self.kafka_security_protocol != "PLAINTEXT":
            out |= {
                "security_protocol": self.kafka_security_protocol,
                "sasl_mechanism": self.kafka_sasl_mechanism,
                "sasl_plain_username": self.kafka_username,
                "sasl_plain_password": self.kafka_password,
            }
        return out

    @property
    def jwks_url(self) -> str | None:
        if self.oidc_jwks_url:
            return self.oidc_jwks_url
        return f"{self.oidc_issuer.rstrip('/')}/protocol/openid-connect/certs" if self.oidc_issuer else None

    @property
    def development(self) -> bool:
        return self.environment == "development"

    @property
    def uses_development_key(self) -> bool:
        return DEVELOPMENT_SECRET_KEY in self.secret_keys

    @property
    def uses_development_contact_key(self) -> bool:
        return bool(set(DEVELOPMENT_CONTACT_KEYS) & set(self.contact_keys))

    @property
    def database(self) -> str:
        return f"{self.db_prefix}{self.service}"

    @property
    def consumer_group(self) -> str:
        return f"{self.topic_prefix}{self.service}"

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def with_overrides(self, **changes: object) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, service: str) -> Settings:
        config_dir = Path(_env("CONFIG_DIR", str(REPO_ROOT / "config")))
        prefix = service.upper()
        fetch = FETCH_WAIT.get(service, DEFAULT_FETCH_WAIT)
        return cls(
            service=service,
            kafka_bootstrap=_env("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            kafka_security_protocol=_env("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
            kafka_sasl_mechanism=_env("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256"),
            kafka_username=os.environ.get("KAFKA_USERNAME") or None,
            kafka_password=os.environ.get("KAFKA_PASSWORD") or None,
            topic_prefix=_env("KAFKA_TOPIC_PREFIX", ""),
            topic_partitions=int(_env("KAFKA_TOPIC_PARTITIONS", "4")),
            replication_factor=int(_env("KAFKA_REPLICATION_FACTOR", "1")),
            min_insync_replicas=int(_env("KAFKA_MIN_INSYNC_REPLICAS", "1")),
            compression=_env("KAFKA_COMPRESSION", "zstd"),
            deadletter_retention_days=float(_env("KAFKA_DEADLETTER_RETENTION_DAYS", "30")),
            mongo_uri=_env("MONGO_URI", "mongodb://127.0.0.1:27017"),
            db_prefix=_env("MONGO_DB_PREFIX", ""),
            http_port=int(_env(f"{prefix}_PORT", str(DEFAULT_PORTS.get(service, 8080)))),
            log_level=_env("LOG_LEVEL", "INFO"),
            kafka_log_level=_env("KAFKA_LOG_LEVEL", "CRITICAL"),
            config_dir=config_dir,
            contract_dir=Path(_env("CONTRACT_DIR", str(REPO_ROOT / "contract"))),
            dependency_timeout_s=float(_env("DEPENDENCY_TIMEOUT_S", "2.0")),
            relay_interval_s=float(_env("OUTBOX_RELAY_INTERVAL_S", "1.0")),
            retry_attempts=int(_env("CONSUMER_RETRY_ATTEMPTS", "5")),
            retry_backoff_s=float(_env("CONSUMER_RETRY_BACKOFF_S", "0.2")),
            fetch_min_bytes=int(_env(f"{prefix}_FETCH_MIN_BYTES", str(fetch[0]))),
            fetch_max_wait_ms=int(_env(f"{prefix}_FETCH_MAX_WAIT_MS", str(fetch[1]))),
            staff_tokens_file=_staff_tokens_file(config_dir),
            oidc_issuer=os.environ.get("OIDC_ISSUER") or None,
            oidc_jwks_url=os.environ.get("OIDC_JWKS_URL") or None,
            oidc_audience=_env("OIDC_AUDIENCE", "petitions-api"),
            oidc_leeway_s=float(_env("OIDC_LEEWAY_S", "5")),
            calendar_dir=Path(_env("CALENDAR_DIR", str(config_dir / "calendar"))),
            secret_keys=tuple(k.strip() for k in _env("SECRET_KEYS", DEVELOPMENT_SECRET_KEY).split(",") if k.strip()),
            contact_keys=_contact_keys(),
            environment=_env("PETITIONS_ENV", "production"),
            rate_limits=RateLimitSettings.from_env(),
            extra={k: v for k, v in os.environ.items() if k.startswith(f"{prefix}_")},
        )
