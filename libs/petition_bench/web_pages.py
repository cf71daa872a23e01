"""How fast the web pages answer while intake takes a submission load (issue 20's p95 figure).

`python -m petition_bench.web_pages [--seconds 60] [--concurrency 8] [--rate R]` starts the five
services on the local stack with the demo county (own topic and database prefix, removed at the end),
then for the given time runs `concurrency` clients submitting generated petitions to intake: back to
back (the benchmark's closed-loop intake load), or with `--rate` paced to R submissions/s in all (the
latency stage's open loop; the clients fall behind if intake answers slower than that). Meanwhile one
page client walks the pages people use: the submit form, a receipt (a web submission), a tracking
page, a grid leader's queue, a work order, the dispatcher's triage queue and a town supervisor's
escalations. Prints each page's p50/p95/p99 and the rate the intake load reached, as Markdown
(status 0: the connection broke).
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import requests

from countysim import generate_petitions
from petition_bench.load import percentiles_ms
from petition_devtools import demo
from petition_devtools.namespace import drop_namespace
from petition_devtools.processes import ServiceFleet


def main() -> None:
    args = argparse.ArgumentParser()
    args.add_argument("--seconds", type=float, default=60)
    args.add_argument("--concurrency", type=int, default=8)
    args.add_argument("--rate", type=float, default=None, help="pace the load to this many submissions/s")
    opts = args.parse_args()
    county = demo.demo_county()
    # as the benchmark's platform: the load comes from one address, and it measures speed, not limits
    namespace = demo.demo_run("webbench", county, RATE_LIMITS="off")
    prefix, work, env = namespace.prefix, namespace.work, namespace.env
    fleet = ServiceFleet(env=env, log_dir=work / "logs")
    try:
        urls = fleet.start_platform()
        web = urls["web"]
        demo.import_registry(urls["routing"], county)
        report(run(county, urls["intake"], web, opts.seconds, opts.concurrency, opts.rate), opts)
    finally:
        fleet.stop_all()
        drop_namespace(demo.LOCAL_MONGO, demo.LOCAL_KAFKA, prefix)


def run(county, intake: str, web: str, seconds: float, concurrency: int, rate: float | None) -> dict:  # type: ignore[no-untyped-def]
    generated = iter(generate_petitions(county, 20000, seed=3, start=datetime(2024, 7, 1, tzinfo=UTC), days=30))
    lock = threading.Lock()
    submitted = [0]
    load_statuses: Counter[int] = Counter()
    # the load's own submissions, straight to intake: what the receipt page (one more submission) is
    # compared with
    load_latencies: list[float] = []
    sent = itertools.count()
    stop_at = time.perf_counter() + seconds

    def load() -> None:
        http = requests.Session()
        while time.perf_counter() < stop_at:
            with lock:
                g, i = next(generated), next(sent)
            if rate:  # petition i is due at t0 + i / rate
                due = t0 + i / rate
                if due >= stop_at:
                    break
                time.sleep(max(0.0, due - time.perf_counter()))
            started = time.perf_counter()
            resp = http.post(
                f"{intake}/v1/petitions", json=g.body, headers={"Idempotency-Key": g.idempotency_key}, timeout=60
            )
            with lock:
                load_latencies.append(time.perf_counter() - started)
                load_statuses[resp.status_code] += 1
                submitted[0] += resp.status_code == 201

    # a petition for the pages to show, and the leader who handles it
    village = county.villages[0]
    page = requests.Session()
    form = {
        "category": "drainage",
        "town_id": village.town_id,
        "village_id": village.village_id,
        "content": "下水道堵了",
        "name": "王秀英",
        "phone": "13912345678",
    }
    receipt = page.post(f"{web}/submit", data={**form, "idempotency_key": uuid.uuid4().hex}, timeout=30).text
    petition_id = receipt.split("data-petition-id>")[1].split("<")[0]
    code = receipt.split("data-tracking-code>")[1].split("<")[0]
    staff, dispatcher, supervisor = requests.Session(), requests.Session(), requests.Session()
    staff.post(f"{web}/staff/login", data={"staff_id": demo.first_village_leader(county)}, timeout=30)
    dispatcher.post(f"{web}/staff/login", data={"staff_id": demo.dispatcher_of(county)}, timeout=30)
    town = county.towns[0].town_id
    supervisor_id = next(s.staff_id for s in county.staff if s.role == "town_supervisor" and s.town_id == town)
    supervisor.post(f"{web}/staff/login", data={"staff_id": supervisor_id}, timeout=30)
    pages = {
        "submit form": lambda: page.get(f"{web}/submit", timeout=30),
        "submit (receipt)": lambda: page.post(
            f"{web}/submit", data={**form, "idempotency_key": uuid.uuid4().hex}, timeout=30
        ),
        "tracking": lambda: page.get(f"{web}/track/{petition_id}", params={"code": code}, timeout=30),
        "staff queue": lambda: staff.get(f"{web}/staff/queue", timeout=30),
        "work order": lambda: staff.get(f"{web}/staff/orders/{petition_id}", timeout=30),
        "triage (dispatcher)": lambda: dispatcher.get(f"{web}/staff/triage", timeout=30),
        "escalations (town)": lambda: supervisor.get(f"{web}/staff/escalations", timeout=30),
    }
    latencies: dict[str, list[float]] = {name: [] for name in pages}
    statuses: dict[str, set[int]] = {name: set() for name in pages}
    rows: dict[str, str] = {}
    threads = [threading.Thread(target=load) for _ in range(concurrency)]
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for name in itertools.cycle(pages):
        if time.perf_counter() >= stop_at:
            break
        started = time.perf_counter()
        try:
            resp = pages[name]()
        except requests.ConnectionError:  # counted as what it is, not left out
            latencies[name].append(time.perf_counter() - started)
            statuses[name].add(0)
            continue
        latencies[name].append(time.perf_counter() - started)
        statuses[name].add(resp.status_code)
        # how many work orders the queues showed (and of how many, for a queue with pages): the cost grows with them
        shown = resp.text.count('data-order="') + resp.text.count('data-triage="')
        listed = re.search(r"共 (\d+) 件", resp.text)
        rows[name] = f"{shown} of {listed[1]}" if listed else str(shown or "")
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    every = [x for xs in latencies.values() for x in xs]
    return {
        "pages": {
            n: {**percentiles_ms(xs), "n": len(xs), "statuses": sorted(statuses[n]), "rows": rows.get(n, "")}
            for n, xs in latencies.items()
        },
        "all": {**percentiles_ms(every), "n": len(every)},
        "intake_per_s": submitted[0] / wall,
        "submitted": submitted[0],
        "load_statuses": dict(sorted(load_statuses.items())),
        "load_latency": percentiles_ms(load_latencies),
        # the machine is shared: what else ran shows in its load average (2 cores)
        "loadavg_1m": (load_before, os.getloadavg()[0]),
    }


def report(result: dict, opts: argparse.Namespace) -> None:  # type: ignore[type-arg]
    how = f"paced to {opts.rate:g}/s" if opts.rate else "back to back"
    own = result["load_latency"]
    print(
        f"intake load: {opts.concurrency} clients {how}, reached {result['intake_per_s']:.1f} submissions/s "
        f"over {opts.seconds:.0f} s; answers {result['load_statuses']}; 1-minute load average "
        f"{result['loadavg_1m'][0]:.1f} at the start, {result['loadavg_1m'][1]:.1f} at the end; the load's own "
        f"submissions p50 / p95 / p99 {own['p50_ms']:.0f} / {own['p95_ms']:.0f} / {own['p99_ms']:.0f} ms\n"
    )
    print("| page | requests | p50 ms | p95 ms | p99 ms | statuses | orders shown at the end |")
    print("|---|---|---|---|---|---|---|")
    for name, r in [*result["pages"].items(), ("all pages", {**result["all"], "statuses": [], "rows": ""})]:
        print(
            f"| {name} | {r['n']} | {r['p50_ms']:.0f} | {r['p95_ms']:.0f} | {r['p99_ms']:.0f} | "
            f"{', '.join(map(str, r['statuses']))} | {r['rows']} |"
        )


if __name__ == "__main__":
    main()
