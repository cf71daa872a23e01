"""`bin/run`: the local stack and the four services in the foreground; Ctrl-C stops everything.

Logs of every process are in .local/logs/ (kafka.log, ferretdb.log, intake.log, ...) and the
services' lines are echoed here with their name in front.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from petition_devtools.processes import DEFAULT_PORTS, REPO, SERVICES, ServiceFleet

STACK = [sys.executable, str(REPO / "deploy" / "local" / "stack.py")]


def main() -> int:
    log_dir = REPO / ".local" / "logs"
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    subprocess.run([*STACK, "up"], check=True)
    fleet = ServiceFleet(env={}, log_dir=log_dir)
    try:
        for name in SERVICES:
            fleet.start(name, port=DEFAULT_PORTS[name])
        fleet.wait_ready(timeout_s=90)
        print("\nall services ready:", file=sys.stderr)
        for name in SERVICES:
            print(f"  {name:8s} http://127.0.0.1:{DEFAULT_PORTS[name]}  (log {log_dir / name}.log)", file=sys.stderr)
        print(
            "  kafka and ferretdb: see `python3 deploy/local/stack.py status`\nCtrl-C stops everything.\n",
            file=sys.stderr,
        )
        _follow(
            {name: log_dir / f"{name}.log" for name in SERVICES},
            lambda: stopping or not all(p.alive() for p in fleet.processes.values()),
        )
    finally:
        print("\nstopping services ...", file=sys.stderr)
        fleet.stop_all()
        subprocess.run([*STACK, "down"], check=False)
    return 0


def _follow(files: dict[str, Path], done) -> None:  # type: ignore[no-untyped-def]
    handles = {}
    for name, path in files.items():
        fh = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115 - closed below
        fh.seek(0, 2)
        handles[name] = fh
    try:
        while not done():
            quiet = True
            for name, fh in handles.items():
                for line in fh.readlines():
                    quiet = False
                    print(f"{name:8s}| {line}", end="")
            if quiet:
                time.sleep(0.2)
    finally:
        for fh in handles.values():
            fh.close()


if __name__ == "__main__":
    sys.exit(main())
