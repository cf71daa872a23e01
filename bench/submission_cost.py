"""CPU a single-submission HTTP request costs the whole machine (issue 23), and what 1,000/s would take.

.venv/bin/python bench/submission_cost.py [--clients 8,16] [--seconds 30]   (the local stack running)

Closed loop as `bench/run --stages intake` does (the same platform: every service, consumers behind),
then the CPU seconds each process spent per accepted submission: intake, the consumers that follow
it, FerretDB, Kafka and this load generator. Their sum times 1,000 is the cores 1,000/s would need.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from countysim import generate_county
from petition_bench.load import Submitter, closed_loop
from petition_bench.stages import ALL, Context


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="8,16", help="comma-separated concurrencies")
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    levels = [int(c) for c in args.clients.split(",")]
    work = Path(tempfile.mkdtemp(prefix="submission-cost-"))
    ctx = Context(generate_county(), work, "127.0.0.1:9092", "mongodb://127.0.0.1:27017", threads=8, quick=False)
    platform = ctx.platform("cost")
    try:
        print("starting the services ...", flush=True)
        platform.start(ALL)
        pool = iter(ctx.petitions(int(sum(levels) * args.seconds * 40) + 2000, seed=21))
        submitter = Submitter(platform)
        closed_loop(submitter, pool, 4, 5, lambda n: None)  # warm: connections, caches, the first groups
        for c in levels:
            print(f"{c} clients for {args.seconds:.0f} s ...", flush=True)
            before = platform.cpu()
            row, _ = closed_loop(submitter, pool, c, args.seconds, lambda n: None)
            after = platform.cpu()
            n = row["requests"]
            per = {name: (after[name] - before.get(name, 0.0)) * 1000 / n for name in after}
            total = sum(per.values())
            print(f"\n{c} clients: {n} accepted, {row['per_s']:.0f}/s, p99 {row['p99_ms']:.0f} ms")
            for name, ms in sorted(per.items(), key=lambda kv: -kv[1]):
                print(f"  {name:<14} {ms:5.2f} ms a submission")
            busy = row["per_s"] * total / 1000
            print(f"  {'all':<14} {total:5.2f} ms: {busy:.2f} cores busy; 1,000/s would need {total:.1f} cores")
    finally:
        platform.stop()


if __name__ == "__main__":
    main()
