"""CPU routing's area index costs per move at the year's backlog (issue 23), on the local FerretDB.

.venv/bin/python bench/area_index_cost.py [--open 13840] [--moves 2000]   (the local stack running)

Every commit of a work order passes its areas (assignee, village, town) to the index. In the year's
replay routing held ~13,840 open orders (about 150 per town shard). This fills an index in a database
of its own with that backlog over the county's 12 towns, 119 villages and 2,635 grids, then measures,
one `apply` per move as a staff action makes it: moves that change nothing (a contact, a reply), then
assignments of new orders and closes of old ones. It reports the CPU of this process (routing's side)
and of FerretDB per move, and the database commands.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable

from pymongo import MongoClient, monitoring

from petition_common.store import AggregateStore
from petition_devtools.procstats import cpu_seconds, stack_pids
from services.routing.area_index import AreaIndex, Move

TOWNS, VILLAGES, GRIDS = 12, 119, 2635


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.count += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def areas(n: int) -> frozenset[str]:
    grid = n % GRIDS
    village = grid % VILLAGES
    return frozenset({f"assignee:L{grid:04d}", f"village:V{village:03d}", f"town:T{village % TOWNS:02d}"})


def order(n: int) -> Move:
    at = f"2026-03-{1 + n // 2000 % 28:02d}T{n // 100 % 24:02d}:{n % 60:02d}:00Z"
    return Move(f"JZ20260301{n:06d}", at, areas(n), frozenset())


def measure(label: str, moves: list[Move], index: AreaIndex, commands: Commands, ferret: Callable[[], float]) -> None:
    done = commands.count
    cpu, db_cpu, wall = time.process_time(), ferret(), time.perf_counter()
    for move in moves:
        index.apply([move])
    cpu, db_cpu, wall = time.process_time() - cpu, ferret() - db_cpu, time.perf_counter() - wall
    n = len(moves)
    print(
        f"{label:<34} {n:>6} moves  this process {cpu / n * 1e6:7.0f} µs/move  FerretDB {db_cpu / n * 1e6:7.0f} µs/move"
        f"  {(commands.count - done) / n:5.2f} commands/move  {n / wall:7.0f} moves/s",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--open", type=int, default=13_840, help="open orders before measuring")
    parser.add_argument("--moves", type=int, default=2_000, help="moves measured of each kind")
    parser.add_argument("--mongo", default="mongodb://127.0.0.1:27017")
    args = parser.parse_args()
    commands = Commands()
    client: MongoClient = MongoClient(args.mongo, tz_aware=True, event_listeners=[commands])
    name = f"bench_area_{uuid.uuid4().hex[:8]}"
    db = client[name]
    ferret_pid = stack_pids()["ferretdb"]
    index = AreaIndex(AggregateStore(db, "area_index"), db["area_index_meta"])
    try:
        print(f"filling the index with {args.open:,} open orders ...", flush=True)
        backlog = [order(n) for n in range(args.open)]
        for start in range(0, len(backlog), 500):
            index.apply(backlog[start : start + 500])
        ferret = lambda: cpu_seconds(ferret_pid)  # noqa: E731
        measure("unchanged (contact, reply)", backlog[: args.moves], index, commands, ferret)
        changing: list[Move] = []
        for k in range(args.moves // 2):
            changing.append(order(args.open + k))  # a new order is assigned
            old = backlog[k]
            changing.append(Move(old.petition_id, "", frozenset(), old.add))  # an old one is closed
        measure("assign one, close another", changing, index, commands, ferret)
    finally:
        client.drop_database(name)
        client.close()


if __name__ == "__main__":
    main()
