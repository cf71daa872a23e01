"""What one run of routing's timeout scanner costs at the year's backlog of open orders (issue 23).

.venv/bin/python bench/timeout_scan_cost.py [--open 13700] [--runs 20]   (the local stack running)

The scanner runs every minute (and after every step of the benchmark's simulated clock). Until
2026-12-08 it read `open_orders` whole on each run, to find the replies whose feedback window had
passed and the finished orders listed long enough (FerretDB v1 scans a collection for any filter but
`_id`); now it takes them from the `timeouts` queue by `_id` (petition_common.due). This fills a
database of its own with `--open` open orders' documents (as open_order_doc writes them) and as many
queued windows, none due, then measures `--runs` runs of each: the old read (the whole collection,
the old scanner's first step) and `close_timed_out` on the queue, the clock an hour on per run. It
reports the CPU of this process and of FerretDB, and the documents read, per run.
"""

from __future__ import annotations

import argparse
import uuid
from datetime import UTC, datetime, timedelta

from petition_bench.per_run import add_run_arguments, measure, watched_client
from petition_common.config import Settings
from petition_common.fakes import ManualClock, RecordingPublisher
from petition_kernel.times import format_time
from services.routing.bootstrap import bootstrap

START = datetime(2026, 3, 2, 8, 20, tzinfo=UTC)


def _doc(n: int) -> dict[str, object]:
    replied = n % 3 == 0
    return {
        "_id": f"JZ{n:014d}",
        "seq": 4 if replied else 2,
        "status": "replied" if replied else "in_progress",
        "grid_id": f"T{n % 12:02d}V{n % 10:02d}G{n % 20:03d}",
        "town": "隐珠街道",
        "town_id": f"T{n % 12:02d}",
        "assignee": f"S{n % 2635:05d}",
        "assigned_at": format_time(START - timedelta(minutes=n % 5000)),
        "replied_at": format_time(START - timedelta(minutes=n % 600)) if replied else None,
        "finished_at": None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open", type=int, default=13_700, help="open orders waiting")
    add_run_arguments(parser)
    args = parser.parse_args()
    client, reads, ferret = watched_client(args.mongo)
    name = f"bench_timeouts_{uuid.uuid4().hex[:8]}"
    db = client[name]
    clock = ManualClock(START)
    service = bootstrap(Settings(service="routing"), db=db, publisher=RecordingPublisher(), clock=clock).service
    try:
        print(f"{args.open:,} open orders, a window queued for each (none due) ...", flush=True)
        window = service.config.feedback_window
        for start in range(0, args.open, 1000):
            docs = [_doc(n) for n in range(start, min(start + 1000, args.open))]
            db["open_orders"].insert_many(docs)
            service.timeouts.add(
                [(START + window, {"petition_id": d["_id"], "why": "reply"}) for d in docs], horizon=START
            )
        service.close_timed_out()  # a process's first run: the database is marked as queued

        def old_run(_: int) -> None:  # the old scanner's first step: every open order
            assert len(list(db["open_orders"].find({}))) == args.open

        def new_run(_: int) -> None:
            clock.advance(timedelta(hours=1))
            assert service.close_timed_out() == 0

        measure("read every open order (before)", args.runs, old_run, reads, ferret)
        measure("close_timed_out on the queue (now)", args.runs, new_run, reads, ferret)
    finally:
        client.drop_database(name)
        client.close()


if __name__ == "__main__":
    main()
