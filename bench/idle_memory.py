"""Resident memory of the whole local stack when idle: Kafka, FerretDB and the four services.

    .venv/bin/python bench/idle_memory.py [--settle 15]

Starts the stack if it is not running (and stops it again), starts one instance of each service on
free ports with its own topics and databases, waits for readiness plus `--settle` seconds, then
reads VmRSS from /proc for every process (with its children) and prints a table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from petition_devtools.processes import REPO, SERVICES, ServiceFleet
from petition_devtools.procstats import rss_kib, stack_pids

STACK = [sys.executable, str(REPO / "deploy" / "local" / "stack.py")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settle", type=float, default=15.0, help="seconds to wait after readiness")
    args = parser.parse_args()
    started = False
    if len(stack_pids()) < 2:
        subprocess.run([*STACK, "up"], check=True)
        started = True
    run = f"mem{uuid.uuid4().hex[:6]}"
    fleet = ServiceFleet(
        env={"KAFKA_TOPIC_PREFIX": f"{run}-", "MONGO_DB_PREFIX": f"{run}_"}, log_dir=Path(tempfile.mkdtemp()) / "logs"
    )
    try:
        for name in SERVICES:
            fleet.start(name)
        fleet.wait_ready(timeout_s=90)
        print(f"services ready; idling {args.settle:.0f} s ...", file=sys.stderr)
        time.sleep(args.settle)
        rows = [(name, rss_kib(pid)) for name, pid in stack_pids().items()]
        rows += [(name, rss_kib(p.proc.pid)) for name, p in fleet.processes.items()]
    finally:
        fleet.stop_all()
        if started:
            subprocess.run([*STACK, "down"], check=False)
    print(f"{'process':10s} {'RSS MiB':>8s}")
    for name, kib in rows:
        print(f"{name:10s} {kib / 1024:8.0f}")
    print(f"{'total':10s} {sum(k for _, k in rows) / 1024:8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
