"""What the audit trail costs on the local FerretDB: appends per second (one appender, and several
"processes" racing on one chain), finding the tail from scratch, and `verify` over the chain.

    .venv/bin/python bench/audit_chain.py [--records 2000] [--processes 3]

Needs the local stack running (bin/run or deploy/local/stack.py up); writes to a database of its own
(`bench_audit_<random>`), which it drops at the end. Prints the numbers; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import uuid

from pymongo import MongoClient

from petition_common.audit import verify
from petition_common.audit_log import AuditLog

MONGO = f"mongodb://127.0.0.1:{os.environ.get('MONGO_PORT', '27017')}"
ENTRY = {
    "action": "contact.read",
    "petition_id": "JZ20261204000123",
    "staff_id": "S00007",
    "role": "grid_leader",
    "fields": ["citizen.name", "citizen.phone"],
    "outcome": "ok",
    "detail": None,
    "client": {"id": "static-token", "address": "127.0.0.1", "for": "10.0.0.5", "user_agent": "petitions-web"},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=2000, help="appends in each of the two runs")
    parser.add_argument("--processes", type=int, default=3, help="racing appenders (own client each)")
    args = parser.parse_args()
    name = f"bench_audit_{uuid.uuid4().hex[:8]}"
    clients = [MongoClient(MONGO, tz_aware=True) for _ in range(args.processes)]
    try:
        db = clients[0][name]
        single = AuditLog(db, "intake")
        started = time.perf_counter()
        for _ in range(args.records):
            single.append(ENTRY)
        took = time.perf_counter() - started
        print(f"one appender: {args.records} appends in {took:.2f} s = {args.records / took:.0f}/s, "
              f"{1000 * took / args.records:.2f} ms each")  # fmt: skip

        logs = [AuditLog(c[name], "intake") for c in clients]
        each = args.records // args.processes

        def run(log: AuditLog) -> None:
            for _ in range(each):
                log.append(ENTRY)

        started = time.perf_counter()
        threads = [threading.Thread(target=run, args=(log,)) for log in logs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.perf_counter() - started
        total = each * args.processes
        print(f"{args.processes} racing appenders: {total} appends in {took:.2f} s = {total / took:.0f}/s")

        started = time.perf_counter()
        tail = AuditLog(db, "intake").find_tail()
        print(f"finding the tail of {tail[0]} records from scratch: {1000 * (time.perf_counter() - started):.1f} ms")

        started = time.perf_counter()
        verdict = verify(single.scan())
        took = time.perf_counter() - started
        print(
            f"verify: {verdict.records} records in {took:.2f} s = {verdict.records / took:.0f}/s, intact={verdict.ok}"
        )
    finally:
        clients[0].drop_database(name)
        for c in clients:
            c.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
