"""The cost of one run of a periodic job, for the bench scripts that compare a job's old and new ways
(bench/retention_cost.py, bench/timeout_scan_cost.py): CPU of this process and of FerretDB, and the
documents the server returned, per run."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from pymongo import MongoClient, monitoring

from petition_devtools.procstats import cpu_seconds, stack_pids


class Reads(monitoring.CommandListener):
    """Documents the server returned (find and getMore batches)."""

    def __init__(self) -> None:
        self.documents = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        cursor = event.reply.get("cursor", {}) if event.command_name in ("find", "getMore") else {}
        self.documents += len(cursor.get("firstBatch", cursor.get("nextBatch", [])))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def measure(label: str, runs: int, run: Callable[[int], object], reads: Reads, ferret: Callable[[], float]) -> None:
    documents = reads.documents
    cpu, db_cpu, wall = time.process_time(), ferret(), time.perf_counter()
    for k in range(runs):
        run(k)
    cpu, db_cpu, wall = time.process_time() - cpu, ferret() - db_cpu, time.perf_counter() - wall
    print(
        f"  {label:<36} this process {cpu / runs * 1e3:8.1f} ms/run  FerretDB {db_cpu / runs * 1e3:8.1f} ms/run"
        f"  {(reads.documents - documents) / runs:9.0f} documents read/run  {wall / runs * 1e3:8.1f} ms wall/run",
        flush=True,
    )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--mongo", default="mongodb://127.0.0.1:27017")


def watched_client(uri: str) -> tuple[MongoClient, Reads, Callable[[], float]]:
    """A client that counts the documents it reads, and the local FerretDB's CPU seconds so far."""
    reads = Reads()
    ferret_pid = stack_pids()["ferretdb"]
    return MongoClient(uri, tz_aware=True, event_listeners=[reads]), reads, lambda: cpu_seconds(ferret_pid)
