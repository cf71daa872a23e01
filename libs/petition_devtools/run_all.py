"""`bin/run`: the local stack, the four services and the web pages in the foreground; Ctrl-C stops everything.

`--cluster` runs Kafka as a cluster of three KRaft nodes (deploy/local/stack.py --cluster) and the
services as they run on one: every broker in KAFKA_BOOTSTRAP_SERVERS, topics with three replicas and
min.insync.replicas=2.

Unless `--empty` is given, the generated demo county is imported first (grids, roster, staff accounts
for the development login; petition_devtools.demo), so the citizen page has towns and villages and
every petition reaches a grid leader who can log in.

Logs of every process are in .local/logs/ (kafka.log, ferretdb.log, intake.log, ...) and the
services' lines are echoed here with their name in front.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from petition_devtools import accounts, demo
from petition_devtools.processes import DEFAULT_PORTS, REPO, SERVICES, ServiceFleet

WEB = "web"
ALL = (*SERVICES, WEB)

STACK = [sys.executable, str(REPO / "deploy" / "local" / "stack.py")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bin/run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--empty", action="store_true", help="start without the demo county (no grids, no accounts)")
    parser.add_argument("--cluster", action="store_true", help="three Kafka brokers instead of one (RF 3, min ISR 2)")
    args = parser.parse_args(argv)
    if args.cluster:
        use_cluster()
    log_dir = REPO / ".local" / "logs"
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    subprocess.run([*STACK, "up"], check=True)
    county = None if args.empty else demo.demo_county()
    env = demo.prepare(county, REPO / ".local" / "demo") if county else {}
    env.update({f"WEB_{name.upper()}_URL": f"http://127.0.0.1:{DEFAULT_PORTS[name]}" for name in SERVICES})
    # staff tokens from the stack's Keycloak (the static development tokens keep working too)
    env["OIDC_ISSUER"] = f"{accounts.keycloak_url()}/realms/county"
    fleet = ServiceFleet(env=env, log_dir=log_dir)
    try:
        for name in ALL:
            fleet.start(name, port=DEFAULT_PORTS[name])
        fleet.wait_ready(timeout_s=90)
        if county is not None:
            summary = demo.import_registry(fleet.processes["routing"].url, county)
            print(
                f"\ndemo county imported: {summary['towns']} towns, {summary['villages']} villages, "
                f"{summary['grids']} grids",
                file=sys.stderr,
            )
            # the roster's accounts at Keycloak: minutes the first time, seconds after; the pages work meanwhile
            threading.Thread(target=demo.sync_accounts, args=(county,), daemon=True).start()
        print("\nall services ready:", file=sys.stderr)
        for name in ALL:
            print(f"  {name:8s} http://127.0.0.1:{DEFAULT_PORTS[name]}  (log {log_dir / name}.log)", file=sys.stderr)
        web = f"http://127.0.0.1:{DEFAULT_PORTS[WEB]}"
        print(f"\n  citizen page   {web}/submit\n  staff login    {web}/staff/login", file=sys.stderr)
        if county is not None:
            village = county.villages[0]
            print(
                f"  try it: submit for {county.towns_by_id[village.town_id].name} {village.name}, then log in as "
                f"{demo.first_village_leader(county)} (that grid's leader) or {demo.dispatcher_of(county)} "
                "(county dispatcher)",
                file=sys.stderr,
            )
        print(
            f"  kafka and ferretdb: see `python3 deploy/local/stack.py status{' --cluster' if args.cluster else ''}`\n"
            "Ctrl-C stops everything.\n",
            file=sys.stderr,
        )
        _follow(
            {name: log_dir / f"{name}.log" for name in ALL},
            lambda: stopping or not all(p.alive() for p in fleet.processes.values()),
        )
    finally:
        print("\nstopping services ...", file=sys.stderr)
        fleet.stop_all()
        subprocess.run([*STACK, "down"], check=False)
    return 0


def use_cluster() -> None:
    """Point this process and everything it starts (stack.py, the services) at a three-node cluster."""
    os.environ["KAFKA_CLUSTER"] = "3"
    bootstrap = subprocess.run([*STACK, "bootstrap"], check=True, capture_output=True, text=True).stdout.strip()
    os.environ.update(
        {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "KAFKA_REPLICATION_FACTOR": "3", "KAFKA_MIN_INSYNC_REPLICAS": "2"}
    )


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
