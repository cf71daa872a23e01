"""Who may use the broker: SCRAM users for the services and the reader, and the ACLs of one deployment.

    python -m petition_devtools.kafka_access provision [--prefix P]   # users + ACLs (idempotent)

The broker authenticates every client (SASL): `admin`, the super user, with PLAIN from the broker's
own configuration; every service and `reader` (other government systems) with SCRAM-SHA-256 as the
users this module creates. The ACLs follow petition_common.topics.WRITES/READS, for the topics of one
deployment's prefix (KAFKA_TOPIC_PREFIX): a service may write only its own topic and the dead letters,
read only what it consumes, create the platform's topics (services create them at start-up) and read
its own consumer group; `reader` reads the petition topics and alerts with groups named `<prefix>reader…`.

Passwords come from the local stack's file (deploy/local/stack.py writes `.local/run/kafka-credentials.json`)
or, for compose, from the environment (KAFKA_ADMIN_PASSWORD and KAFKA_<USER>_PASSWORD).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from functools import cache
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import (  # type: ignore[attr-defined]
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

from petition_common.config import REPO_ROOT
from petition_common.topics import PLATFORM_TOPICS, READS, WRITES

USERS = (*WRITES, "reader")
MECHANISM = "SCRAM-SHA-256"
SCRAM_ITERATIONS = 8192


def credentials_file() -> Path:
    local = Path(os.environ.get("PETITIONS_LOCAL_DIR", REPO_ROOT / ".local")).resolve()
    return local / "run" / "kafka-credentials.json"


def passwords() -> dict[str, str] | None:
    """user -> password: the environment's (compose), else the local stack's file; None without SASL."""
    if os.environ.get("KAFKA_ADMIN_PASSWORD"):
        return {"admin": os.environ["KAFKA_ADMIN_PASSWORD"]} | {
            user: os.environ[f"KAFKA_{user.upper()}_PASSWORD"] for user in USERS
        }
    path = credentials_file()
    return json.loads(path.read_text()) if path.exists() else None


def client_env(user: str) -> dict[str, str]:
    """The environment that makes Settings.from_env authenticate as `user` ({} on a broker without SASL)."""
    known = passwords()
    if known is None:
        return {}
    if user not in known:  # a process that does not use the broker (the web pages) gets no credentials
        return {"KAFKA_USERNAME": "", "KAFKA_PASSWORD": ""}
    mechanism = "PLAIN" if user == "admin" else MECHANISM
    return {
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": mechanism,
        "KAFKA_USERNAME": user,
        "KAFKA_PASSWORD": known[user],
    }


def admin_client_config(bootstrap: str) -> dict[str, Any]:
    """kafka-python keyword arguments for the super user (tests, tooling)."""
    known = passwords()
    out: dict[str, Any] = {"bootstrap_servers": bootstrap}
    if known is not None:
        out |= {
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "PLAIN",
            "sasl_plain_username": "admin",
            "sasl_plain_password": known["admin"],
        }
    return out


def admin_settings() -> dict[str, Any]:
    """Settings overrides (Settings.with_overrides) that make a test's or a tool's clients the super user."""
    known = passwords()
    if known is None:
        return {}
    return {
        "kafka_security_protocol": "SASL_PLAINTEXT",
        "kafka_sasl_mechanism": "PLAIN",
        "kafka_username": "admin",
        "kafka_password": known["admin"],
    }


def acls(prefix: str) -> list[ACL]:
    """Every ACL of the deployment whose topics carry `prefix`."""

    def allow(
        user: str, operation: ACLOperation, kind: ResourceType, name: str, pattern=ACLResourcePatternType.LITERAL
    ) -> ACL:
        return ACL(
            principal=f"User:{user}",
            host="*",
            operation=operation,
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(kind, name, pattern),
        )

    out = []
    for user in USERS:
        for topic in WRITES.get(user, ()):
            out.append(allow(user, ACLOperation.WRITE, ResourceType.TOPIC, prefix + topic))
        for topic in READS[user]:
            out.append(allow(user, ACLOperation.READ, ResourceType.TOPIC, prefix + topic))
        if user in WRITES:
            # a service creates the platform's topics at start-up if they are missing, and aligns their
            # settings with the stated ones (petition_common.topic_config)
            for topic in PLATFORM_TOPICS:
                for operation in (ACLOperation.CREATE, ACLOperation.DESCRIBE, ACLOperation.ALTER_CONFIGS):
                    out.append(allow(user, operation, ResourceType.TOPIC, prefix + topic))
            out.append(allow(user, ACLOperation.READ, ResourceType.GROUP, prefix + user))
        else:
            out.append(
                allow(user, ACLOperation.READ, ResourceType.GROUP, prefix + user, ACLResourcePatternType.PREFIXED)
            )
    return out


@cache
def _users_created(bootstrap: str) -> bool:
    known = passwords()
    assert known is not None
    admin = KafkaAdminClient(**admin_client_config(bootstrap), client_id="petitions-provision")
    try:
        admin.alter_user_scram_credentials(
            [
                UserScramCredentialUpsertion(
                    user, ScramMechanism[MECHANISM.replace("-", "_")], known[user], iterations=SCRAM_ITERATIONS
                )
                for user in USERS
            ]
        )
    finally:
        admin.close()
    return True


def provision(bootstrap: str, prefix: str) -> int:
    """Create the users (once per process) and the ACLs of `prefix` (idempotent); returns how many ACLs.
    Does nothing on a broker without SASL."""
    if passwords() is None:
        return 0
    _users_created(bootstrap)
    wanted = acls(prefix)
    admin = KafkaAdminClient(**admin_client_config(bootstrap), client_id="petitions-provision")
    try:
        admin.create_acls(wanted)
    finally:
        admin.close()
    return len(wanted)


def revoke(admin: KafkaAdminClient, prefix: str) -> int:
    """Delete the ACLs of the deployment whose topics carry `prefix` (a test run's clean-up)."""
    if passwords() is None or not prefix:
        return 0
    any_pattern = ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY)
    everything = ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY, any_pattern)
    found, _ = admin.describe_acls(everything)
    mine = [acl for acl in found if acl.resource_pattern.resource_name.startswith(prefix)]
    if mine:
        admin.delete_acls(
            [
                ACLFilter(acl.principal, acl.host, acl.operation, acl.permission_type, _exactly(acl.resource_pattern))
                for acl in mine
            ]
        )
    return len(mine)


def _exactly(pattern: ResourcePattern) -> ResourcePatternFilter:
    return ResourcePatternFilter(pattern.resource_type, pattern.resource_name, pattern.pattern_type)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m petition_devtools.kafka_access", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("provision", help="create the SCRAM users and this deployment's ACLs")
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
    p.add_argument("--prefix", default=os.environ.get("KAFKA_TOPIC_PREFIX", ""))
    args = parser.parse_args(argv)
    if passwords() is None:
        print("no Kafka credentials (KAFKA_ADMIN_PASSWORD or the local stack's file): nothing to do", file=sys.stderr)
        return 1
    count = provision(args.bootstrap, args.prefix)
    print(f"users {', '.join(USERS)} and {count} ACLs for prefix {args.prefix!r}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
