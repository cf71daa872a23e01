"""The year replay: the generated county's petitions with their whole lifecycles, in simulated time.

The services run with a fake clock (one file, read by intake, routing and sla). For each slot of
the schedule (lifecycle.py) the driver sets the clock, performs the slot's submissions, staff
actions (routing's work-order endpoints) and citizen actions (intake's feedback and withdrawal)
over HTTP, and waits until intake, routing and sla have consumed everything (consumer-group lag 0),
so that no clock moves past a deadline before the events that meet it were handled. At the end
the clock moves 9 days past the last slot (routing closes the unrated petitions) and the replay
ends when the stats summary shows every petition of the year accepted and closed.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
import yaml
from tqdm import tqdm

from countysim import GeneratedPetition, generate_petitions
from petition_bench.lifecycle import (
    BEIJING,
    Action,
    Plan,
    Shares,
    build_schedule,
    draw_plan,
    expected_outcome,
    slot_instant,
)
from petition_bench.load import percentiles_ms
from petition_bench.platform import Platform
from petition_bench.stages import ALL, Context, bar
from petition_common.config import REPO_ROOT
from services.sla.domain.calendar import WorkCalendar

SERVICES = ("intake", "routing", "sla", "stats")
RETRYABLE = (404, 409)  # the precondition is still travelling through Kafka
MAX_ATTEMPTS = 60


def _departments() -> dict[str, str]:
    doc = yaml.safe_load((REPO_ROOT / "config" / "categories.yaml").read_text(encoding="utf-8"))
    return {code: entry["department"] for code, entry in doc["categories"].items()}


@dataclass
class Driver:
    """Performs one petition's actions of a slot over HTTP and remembers what intake answered."""

    platform: Platform
    petitions: list[GeneratedPetition]
    ids: list[str | None] = field(init=False)
    codes: list[str | None] = field(init=False)
    duplicate: list[bool] = field(init=False)
    retries: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        n = len(self.petitions)
        self.ids, self.codes, self.duplicate = [None] * n, [None] * n, [False] * n
        self.departments = _departments()
        self.intake = self.platform.url("intake")
        self.routing = self.platform.url("routing")

    def run(self, task: list[Action]) -> None:
        for action in task:
            if action.kind != "submit" and (self.ids[action.index] is None or self.duplicate[action.index]):
                return  # not accepted, or a duplicate: its original carries the handling
            if not self._perform(action):
                with self._lock:
                    self.failures[action.kind] += 1
                return

    def _perform(self, action: Action) -> bool:
        i = action.index
        g = self.petitions[i]
        pid, code = self.ids[i], self.codes[i]
        headers = self.platform.staff_headers
        if action.kind == "submit":
            url, body, headers = f"{self.intake}/v1/petitions", g.body, {"Idempotency-Key": g.idempotency_key}
        elif action.kind == "withdraw":
            url, body, headers = f"{self.intake}/v1/petitions/{pid}/withdraw", {"tracking_code": code}, {}
        elif action.kind == "feedback":
            url, headers = f"{self.intake}/v1/petitions/{pid}/feedback", {}
            body = {"tracking_code": code, "satisfaction": action.rating}
        elif action.kind == "transfer":
            mine = self.departments.get(g.body["category"])
            other = "town_mediation_office" if mine != "town_mediation_office" else "county_housing_bureau"
            url, body = (
                f"{self.routing}/v1/workorders/{pid}/transfer",
                {"department": other, "reason": "需其他部门处理"},
            )
        elif action.kind == "reply":
            url = f"{self.routing}/v1/workorders/{pid}/reply"
            body = {
                "resolution": "resolved",
                "summary": "已派人现场处理完毕" if action.round == 1 else "二次办理：已协调解决",
            }
        else:
            url, body = f"{self.routing}/v1/workorders/{pid}/{action.kind}", {}
        http = self.platform.http()
        resent = False
        for attempt in range(MAX_ATTEMPTS):
            try:
                resp = http.post(url, json=body, headers=headers, timeout=60)
            except requests.ConnectionError:
                # a keep-alive connection the server closed as we reused it: the request was not
                # read, so send it again (a 409 after that means the first one did arrive after all)
                with self._lock:
                    self.retries["connection"] += 1
                resent = True
                continue
            with self._lock:
                self.requests += 1
            if resp.status_code == 409 and resent and action.kind != "submit":
                return True
            if resp.status_code in (200, 201):
                if action.kind == "submit":
                    receipt = resp.json()
                    self.ids[i], self.codes[i] = receipt["petition_id"], receipt["tracking_code"]
                    self.duplicate[i] = receipt.get("duplicate_of") is not None
                return True
            if resp.status_code not in RETRYABLE or attempt == MAX_ATTEMPTS - 1:
                tqdm.write(f"  {action.kind} of petition {i} ({pid}): HTTP {resp.status_code} {resp.text[:200]}")
                return False
            with self._lock:
                self.retries[action.kind] += 1
            time.sleep(0.1)
        return False


def _write_clock(path: Path, moment: datetime) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(moment.isoformat(), encoding="utf-8")
    os.replace(tmp, path)


def run_replay(ctx: Context, n: int, days: float, seed: int, workers: int) -> dict[str, Any]:
    shares = Shares()
    tqdm.write(f"  generating {n:,} petitions over {days:g} days of 2025 ...")
    petitions = generate_petitions(ctx.county, n, seed=seed, start=datetime(2025, 1, 1, tzinfo=BEIJING), days=days)
    submission_days = [g.truth.submitted_at.astimezone(BEIJING).date() for g in petitions]
    rng = random.Random(seed)
    plans = [draw_plan(rng, shares) for _ in petitions]
    calendar = WorkCalendar.load(REPO_ROOT / "config" / "calendar")
    schedule = build_schedule(submission_days, plans, calendar.add_working_days, shares)
    clock = ctx.work / "replay-clock"
    first = next(iter(schedule))
    _write_clock(clock, slot_instant(first))
    # the scanners keep their production intervals (sla 30 s, routing's feedback timeout 60 s): a
    # simulated day lasts longer than that, so every deadline is still scanned in its own day
    platform = ctx.platform("replay", clock_file=clock)
    try:
        platform.start(ALL)
        before = {s: platform.consumed(s) for s in SERVICES}
        cpu_before = platform.cpu()
        commands_before = platform.database_commands()
        driver = Driver(platform, petitions)
        timing = Counter()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool, bar(len(schedule), "year replay (slots)") as b:
            for slot, tasks in schedule.items():
                _write_clock(clock, slot_instant(slot))
                t = time.perf_counter()
                list(pool.map(driver.run, tasks))
                timing["http_s"] += time.perf_counter() - t
                t = time.perf_counter()
                _barrier(platform)
                timing["barrier_s"] += time.perf_counter() - t
                b.set_postfix(day=str(slot[0]), refresh=False)
                b.update(1)
        driver_done = time.perf_counter() - t0
        last_day: date = list(schedule)[-1][0]
        _write_clock(clock, slot_instant((last_day + timedelta(days=9), "contact")))
        expected = expected_outcome(
            plans, [pid is not None and not d for pid, d in zip(driver.ids, driver.duplicate, strict=True)]
        )
        final, complete = _wait_for_stats(platform, expected)
        wall = time.perf_counter() - t0
        consumed = {s: platform.consumed(s) - before[s] for s in SERVICES}
        cpu = {name: used - cpu_before.get(name, 0.0) for name, used in platform.cpu().items()}
        commands = {c: n - commands_before.get(c, 0) for c, n in platform.database_commands().items()}
        result: dict[str, Any] = {
            "petitions": n,
            "days": days,
            "slots": len(schedule),
            "driver_workers": workers,
            "wall_s": wall,
            "driver_s": driver_done,
            "driver_http_s": timing["http_s"],
            "driver_barrier_s": timing["barrier_s"],
            "http_requests": driver.requests,
            "retries": dict(driver.retries),
            "failures": dict(driver.failures),
            "duplicates": sum(driver.duplicate),
            "expected": expected.__dict__,
            "stats_complete": complete,
            "stats_summary": final,
            "plans": _plan_shares(plans),
            "events_consumed": consumed,
            "events_per_s": {s: v / wall for s, v in consumed.items()},
            "cpu_s": cpu,
            "database_commands": {c: n for c, n in sorted(commands.items(), key=lambda kv: -kv[1]) if n > 0},
            "cores": len(os.sched_getaffinity(0)),
        }
        result["queries"] = run_queries(platform, 50 if ctx.quick else 200)
        result["rss_mib"] = platform.rss_mib()
        return result
    finally:
        platform.stop()


def _barrier(platform: Platform, timeout_s: float = 600) -> None:
    """Every committed event published (no outbox marker left) and consumed by intake, routing and
    sla (consumer-group lag 0): what the next slot's actions and clock depend on has happened."""
    deadline = time.monotonic() + timeout_s
    services = ("intake", "routing", "sla")
    while time.monotonic() < deadline:
        if platform.outbox_empty(services) and not any(platform.lag(services).values()):
            return
        time.sleep(0.05)
    raise TimeoutError("the services did not catch up within the barrier timeout")


def _wait_for_stats(platform: Platform, expected: Any, stall_s: float = 180) -> tuple[dict[str, Any], bool]:
    last, last_change = None, time.monotonic()
    with bar(expected.closed, "stats: closed of the year") as b:
        while True:
            summary = platform.stats_summary()
            key = (summary["accepted"], summary["closed"], summary["withdrawn"])
            b.n = min(summary["closed"], expected.closed)
            b.refresh()
            if summary["accepted"] == expected.accepted and summary["closed"] >= expected.closed:
                return summary, True
            if key != last:
                last, last_change = key, time.monotonic()
            elif time.monotonic() - last_change > stall_s:
                tqdm.write(f"  stats stopped moving at {key}; expected {expected}")
                return summary, False
            time.sleep(0.5)


def _plan_shares(plans: list[Plan]) -> dict[str, float]:
    n = len(plans) or 1
    return {
        "withdrawn": sum(p.withdraw for p in plans) / n,
        "late_contact": sum(p.late_contact for p in plans) / n,
        "transferred": sum(p.transfer for p in plans) / n,
        "late_reply": sum(p.reply_working_day > 5 for p in plans if not p.withdraw) / n,
        "reopened": sum(p.reopened for p in plans) / n,
        "unrated": sum(p.first_rating == "none" for p in plans if not p.withdraw) / n,
    }


def run_queries(platform: Platform, per_kind: int) -> dict[str, Any]:
    """p50/p99 of the stats endpoints over the replayed year, with varied parameters."""
    rng = random.Random(5)
    stats = platform.url("stats")
    months = [(date(2025, m, 1), date(2025 + m // 12, m % 12 + 1, 1) - timedelta(days=1)) for m in range(1, 13)]

    def summary() -> tuple[str, dict[str, str]]:
        if rng.random() < 0.5:
            return "/v1/stats/summary", {}
        first, last = rng.choice(months)
        return "/v1/stats/summary", {"from": first.isoformat(), "to": last.isoformat()}

    def breakdown() -> tuple[str, dict[str, str]]:
        return "/v1/stats/breakdown", {
            "by": rng.choice(["town", "village", "grid", "category", "department", "channel"])
        }

    def ranking() -> tuple[str, dict[str, str]]:
        return "/v1/stats/ranking", {
            "level": rng.choice(["town", "village", "grid"]),
            "metric": rng.choice(["response_rate", "closure_rate", "satisfaction_rate"]),
            "order": rng.choice(["best", "worst"]),
        }

    out = {}
    http = platform.http()
    for name, make in (("summary", summary), ("breakdown", breakdown), ("ranking", ranking)):
        latencies = []
        for _ in range(per_kind):
            path, params = make()
            t = time.perf_counter()
            resp = http.get(f"{stats}{path}", params=params, headers=platform.staff_headers, timeout=60)
            latencies.append(time.perf_counter() - t)
            resp.raise_for_status()
        out[name] = {"requests": per_kind, **percentiles_ms(latencies)}
    return out
