"""What one run of intake's retention job costs while ended petitions wait for erasure (issue 23).

.venv/bin/python bench/retention_cost.py [--waiting 10000,50000] [--runs 20]   (the local stack running)

The job runs hourly (on the service's clock: after every step of the benchmark's simulated year) and
its notes wait three years, so in a county's steady state ~1.2 million ended petitions wait and a
run has ~45 to erase. Until 2026-12-08 a run read every waiting note (`retention`, one document per
petition: FerretDB v1 scans a collection for any filter but `_id`); now a run reads the due hours of
`retention_queue` by `_id` (petition_common.due). This fills a database of its own with `--waiting`
notes, not due, in each form, then measures `--runs` runs of each: the old read (the whole
collection, as the old job did before deciding anything) and `Retention.erase_due` on the queue, with
the clock moved an hour per run. It reports the CPU of this process and of FerretDB, and the
documents read, per run.
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pymongo import MongoClient

from petition_bench.per_run import Reads, add_run_arguments, measure, watched_client
from petition_common.config import Settings
from petition_common.fakes import ManualClock, RecordingPublisher
from petition_kernel.times import format_time, from_bson
from services.intake.bootstrap import bootstrap

START = datetime(2026, 3, 2, 8, 20, tzinfo=UTC)


def _ended(n: int, at: datetime) -> tuple[dict[str, str], dict[str, object]]:
    return {"status": "replied"}, {
        "status": "closed",
        "petition_id": f"JZ{n:014d}",
        "timeline": [{"at": format_time(at)}],
    }


def compare(client: MongoClient, waiting: int, runs: int, reads: Reads, ferret: Callable[[], float]) -> None:
    name = f"bench_retention_{uuid.uuid4().hex[:8]}"
    db = client[name]
    clock = ManualClock(START)
    parts = bootstrap(Settings(service="intake"), db=db, publisher=RecordingPublisher(), clock=clock)
    period = parts.config.retention
    old = db["retention_before"]
    try:
        print(f"{waiting:,} ended petitions waiting (not due) ...", flush=True)
        ended_at = [START - timedelta(minutes=n % 600) for n in range(waiting)]
        for start in range(0, waiting, 1000):
            chunk = range(start, min(start + 1000, waiting))
            old.insert_many([{"_id": f"JZ{n:014d}", "ended_at": ended_at[n]} for n in chunk])
            parts.service.notes.note_many([_ended(n, ended_at[n]) for n in chunk])

        def old_run(_: int) -> None:  # the old job's first step: every note, to pick the due ones
            now = clock()
            assert not [n["_id"] for n in old.find({}) if from_bson(n["ended_at"]) + period <= now]

        def new_run(_: int) -> None:
            clock.advance(timedelta(hours=1))
            assert parts.retention.erase_due() == 0

        parts.retention.erase_due()  # the first run of a process also empties the old `retention`
        measure("read every note (before)", runs, old_run, reads, ferret)
        measure("erase_due on the queue (now)", runs, new_run, reads, ferret)
    finally:
        client.drop_database(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waiting", default="10000,50000", help="comma-separated counts of waiting notes")
    add_run_arguments(parser)
    args = parser.parse_args()
    client, reads, ferret = watched_client(args.mongo)
    try:
        for waiting in [int(w) for w in args.waiting.split(",")]:
            compare(client, waiting, args.runs, reads, ferret)
    finally:
        client.close()


if __name__ == "__main__":
    main()
