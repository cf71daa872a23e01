"""The benchmark: `bench/run [options]` (which sets up and starts the local stack first).

    bench/run                                   # every stage, the full year (396,000 petitions)
    bench/run --stages replay --days 21         # the first three weeks, at the county's density
    bench/run --quick                           # a smoke run of every stage in a few minutes
    bench/run --stages replay --checkpoint bench/year --stop-after 120   # the year in segments:
                                                # stops after ~2 h, the same command goes on

Writes bench/results/<UTC time>.json and .md (and bench/results/latest.*); bench/RESULTS.md is
the committed copy of a full run.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from tqdm import tqdm

from countysim import generate_county
from petition_bench import report, stages
from petition_bench.replay import run_replay
from petition_common.config import REPO_ROOT
from petition_kernel.times import utc_now

STAGES = ("ceilings", "intake", "latency", "scaleout", "replay")
YEAR_PETITIONS = 396_000  # the reference county's year


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="bench/run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    p.add_argument(
        "--petitions",
        type=int,
        default=None,
        help="petitions in the replay (default: the county's 396,000 a year, pro rata for --days)",
    )
    p.add_argument("--days", type=float, default=365, help="days of 2025 the replay covers (default 365)")
    p.add_argument("--workers", type=int, default=16, help="replay client threads (default 16)")
    p.add_argument("--threads", type=int, default=8, help="gunicorn threads per service instance (default 8)")
    p.add_argument("--rate", type=float, default=100, help="steady submissions/s of the latency stage")
    p.add_argument("--scaleout-petitions", type=int, default=20_000, help="stream size of the scale-out stage")
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="directory where the replay keeps its state: it can stop and the same command resumes it",
    )
    p.add_argument(
        "--stop-after",
        type=float,
        default=None,
        metavar="MINUTES",
        help="with --checkpoint: end this segment of the replay at the first slot after MINUTES",
    )
    p.add_argument("--quick", action="store_true", help="small sizes everywhere: a smoke run")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results", help="where the reports go")
    p.add_argument("--kafka", default="127.0.0.1:9092")
    p.add_argument("--mongo", default="mongodb://127.0.0.1:27017")
    p.add_argument(
        "--ferretdb-debug",
        default=f"http://127.0.0.1:{os.environ.get('FERRETDB_DEBUG_PORT', '8088')}",
        help="FerretDB's debug address, for its command counts ('' to skip)",
    )
    args = p.parse_args(argv)
    args.stage_list = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(args.stage_list) - set(STAGES))
    if unknown:
        p.error(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    if args.petitions is None:
        args.petitions = round(YEAR_PETITIONS * args.days / 365)
    if args.stop_after is not None and args.checkpoint is None:
        p.error("--stop-after needs --checkpoint (where the stopped replay is kept)")
    if args.quick:
        args.petitions, args.days = min(args.petitions, 3000), min(args.days, 10)
        args.scaleout_petitions = min(args.scaleout_petitions, 2000)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = utc_now()
    t0 = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="petition-bench-"))
    ctx = stages.Context(
        county=generate_county(seed=20240101),
        work=work,
        kafka=args.kafka,
        mongo=args.mongo,
        threads=args.threads,
        quick=args.quick,
        ferretdb_debug=args.ferretdb_debug or None,
    )
    tqdm.write(f"[bench] stages {', '.join(args.stage_list)}; service logs under {work}")
    results: dict = {}
    markdown = ""
    seconds = 5 if args.quick else 20
    args.out.mkdir(parents=True, exist_ok=True)
    stem = started.strftime("%Y%m%dT%H%M%SZ")
    command = "bench/run " + shlex.join(sys.argv[1:] if argv is None else argv)
    for name in args.stage_list:
        tqdm.write(f"[bench] {name} ...")
        ts = time.perf_counter()
        if name == "ceilings":
            results[name] = stages.run_ceilings(ctx)
        elif name == "intake":
            results[name] = stages.run_intake(ctx, (4, 8, 16, 32), seconds)
        elif name == "latency":
            results[name] = stages.run_latency(ctx, args.rate, seconds * 1.5)
        elif name == "scaleout":
            results[name] = stages.run_scaleout(ctx, args.scaleout_petitions)
        elif name == "replay":
            results[name] = run_replay(
                ctx,
                args.petitions,
                args.days,
                seed=2025,
                workers=args.workers,
                checkpoint=args.checkpoint,
                stop_after_s=None if args.stop_after is None else args.stop_after * 60,
            )
            if results[name].get("stopped"):
                tqdm.write(f"[bench] the replay stopped; `{command}` continues it")
        tqdm.write(f"[bench] {name} done in {time.perf_counter() - ts:.0f} s")
        markdown = _write(args.out, stem, started, t0, command, results)  # after every stage: nothing is lost
    print(markdown)
    tqdm.write(f"[bench] reports: {args.out / stem}.json and .md")
    return 0


def _write(out: Path, stem: str, started: datetime, t0: float, command: str, results: dict) -> str:
    result = {
        "started_at": started.strftime("%Y-%m-%d %H:%M UTC"),
        "finished_at": utc_now().strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": time.perf_counter() - t0,
        "command": command,
        "machine": report.machine(),
        "stages": results,
    }
    text = json.dumps(result, indent=2, ensure_ascii=False, default=str)
    markdown = report.render(result)
    for name in (stem, "latest"):
        (out / f"{name}.json").write_text(text + "\n", encoding="utf-8")
        (out / f"{name}.md").write_text(markdown + "\n", encoding="utf-8")
    return markdown


if __name__ == "__main__":
    sys.exit(main())
