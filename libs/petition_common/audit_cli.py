"""petitions-audit: check the services' audit trails (docs/security.md, "Audit trail").

    petitions-audit verify --service intake            # one service's chain
    petitions-audit verify                             # intake, routing, sla and stats
    petitions-audit verify --service intake --expect-head 1234:9f86d0...   # and nothing cut off its end

Reads MONGO_URI and MONGO_DB_PREFIX like the services. Prints the first broken link (an altered,
deleted, moved or re-linked record) and exits 1 when a chain is broken; prints each chain's head
(seq:hash) when it is intact, to keep somewhere the database's administrators cannot write, for
the next run's --expect-head. Progress goes to stderr about once a second.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from pymongo.errors import PyMongoError

from petition_common import mongo
from petition_common.audit import verify
from petition_common.audit_log import AuditLog
from petition_common.config import Settings

SERVICES = ("intake", "routing", "sla", "stats")
PROGRESS_EVERY_S = 1.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="petitions-audit", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("verify", help="walk each audit chain and report the first broken link")
    check.add_argument("--service", choices=SERVICES, action="append", help="repeatable; default: all four")
    check.add_argument("--expect-head", metavar="SEQ:HASH", help="a head an earlier verify printed (one service)")
    args = parser.parse_args(argv)
    services = args.service or list(SERVICES)
    expect = None
    if args.expect_head:
        if len(services) != 1:
            parser.error("--expect-head needs exactly one --service")
        seq, _, digest = args.expect_head.partition(":")
        if not seq.isdigit() or len(digest) != 64:
            parser.error("--expect-head takes SEQ:HASH as verify printed it")
        expect = (int(seq), digest)
    broken = False
    for service in services:
        try:
            broken |= not _verify(service, expect)
        except PyMongoError as exc:
            print(f"{service}: cannot read the audit trail: {exc}", file=sys.stderr)
            return 2
    return 1 if broken else 0


def _verify(service: str, expect: tuple[int, str] | None) -> bool:
    settings = Settings.from_env(service)
    client = mongo.connect(settings)
    try:
        trail = AuditLog(client[settings.database], service)
        total = trail.count()
        shown = [time.monotonic()]

        def progress(n: int) -> None:
            if time.monotonic() - shown[0] >= PROGRESS_EVERY_S:
                shown[0] = time.monotonic()
                print(f"{service}: read {n} of ~{total} records", file=sys.stderr, flush=True)

        verdict = verify(trail.scan(), expect, progress)
    finally:
        client.close()
    if verdict.first_break is not None:
        print(
            f"{service}: BROKEN at record {verdict.first_break.seq}: {verdict.first_break.describe()} "
            f"({verdict.breaks} broken link(s) in {verdict.records} records)"
        )
        return False
    head = f"{verdict.head[0]}:{verdict.head[1]}" if verdict.head else "empty"
    print(f"{service}: {verdict.records} records, chain intact; head {head}")
    return True


if __name__ == "__main__":
    sys.exit(main())
