"""The year replay: the generated county's petitions with their whole lifecycles, in simulated time.

The services run with a fake clock (one file, read by intake, routing and sla). For each slot of
the schedule (lifecycle.py) the driver sets the clock, performs the slot's submissions, staff
actions (routing's work-order endpoints) and citizen actions (intake's feedback and withdrawal)
over HTTP, and waits until intake, routing and sla have consumed everything (consumer-group lag 0),
so that no clock moves past a deadline before the events that meet it were handled. At the end
the clock moves 9 days past the last slot (routing closes the unrated petitions) and the replay
ends when the stats summary shows every petition of the year accepted and closed.

A whole year takes hours on a small machine, so a replay given a checkpoint directory can stop and
go on: after a slot's barrier the platform holds exactly the slots done so far, and the driver
saves what it needs to continue (the namespace, the next slot, what intake answered, its counters
and the measurements of each segment). `--stop-after` ends a segment at the first slot boundary
after that many minutes, as does SIGINT or SIGTERM; the services stop, their topics and databases
stay, and the same command continues where it stopped. The replay's time is the sum of its
segments' times, each from its first slot to its last barrier (starting the services is not in it).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import requests
from tqdm import tqdm

from countysim import GeneratedPetition, generate_petitions
from petition_bench.lifecycle import (
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
from petition_kernel.calendar import WorkCalendar
from petition_kernel.taxonomy import load_categories
from petition_kernel.times import BEIJING, format_time, utc_now

SERVICES = ("intake", "routing", "sla", "stats")
RETRYABLE = (404, 409)  # the precondition is still travelling through Kafka
MAX_ATTEMPTS = 60


def _departments() -> dict[str, str]:
    return {code: c.department for code, c in load_categories(REPO_ROOT / "config" / "categories.yaml").items()}


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
    # after a resume from a state saved before the process died, the first slots may already have
    # been done: a 409 ("already contacted") then means done, not failed
    already_done_ok: bool = False
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
            if resp.status_code == 409 and (resent or self.already_done_ok) and action.kind != "submit":
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
    tmp.write_text(format_time(moment), encoding="utf-8")
    os.replace(tmp, path)


@dataclass
class ReplayState:
    """What a stopped replay needs to go on (saved as JSON after slots and when a segment ends)."""

    petitions: int
    days: float
    seed: int
    prefix: str
    ids: list[str | None]
    codes: list[str | None]
    duplicate: list[bool]
    next_slot: int = 0
    requests: int = 0
    retries: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    replay_s: float = 0.0  # the sum of the segments' times so far
    http_s: float = 0.0
    barrier_s: float = 0.0
    clean: bool = True  # False while a segment runs: a resume then knows the process died
    segments: list[dict[str, Any]] = field(default_factory=list)
    open_segment: dict[str, Any] | None = None  # the running segment's figures as of the last save

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps(self.__dict__))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> ReplayState:
        state = cls(**orjson.loads(path.read_bytes()))
        if state.open_segment is not None:  # its process died: keep its figures up to its last save
            state.segments.append({**state.open_segment, "died": True})
            state.open_segment = None
        return state


class _Segment:
    """One run of the driver from a start to a stop, and the counters that restart with the
    processes (messages consumed, CPU seconds, FerretDB's commands), measured as differences."""

    def __init__(self, platform: Platform, state: ReplayState, resumed_unclean: bool):
        self.platform = platform
        self.started_at = utc_now().strftime("%Y-%m-%d %H:%M UTC")
        self.code = _code_version()
        self.first_slot = state.next_slot
        self.resumed_unclean = resumed_unclean
        self.base = (state.replay_s, state.http_s, state.barrier_s, state.requests)
        self.base_retries, self.base_failures = Counter(state.retries), Counter(state.failures)
        self.consumed0 = {s: platform.consumed(s) for s in SERVICES}
        self.cpu0 = platform.cpu()
        self.commands0 = platform.database_commands()
        self.by_service0 = platform.service_commands()
        self.http_s = self.barrier_s = self.stats_wait_s = 0.0
        self.t0 = self.driver_done = time.perf_counter()

    def record(self, state: ReplayState) -> dict[str, Any]:
        p = self.platform
        return {
            "started_at": self.started_at,
            "code": self.code,
            "slots": [self.first_slot, state.next_slot],
            "wall_s": time.perf_counter() - self.t0,
            "http_s": self.http_s,
            "barrier_s": self.barrier_s,
            "stats_wait_s": self.stats_wait_s,
            "resumed_after_a_crash": self.resumed_unclean,
            "consumed": {s: p.consumed(s) - self.consumed0.get(s, 0) for s in SERVICES},
            "cpu_s": {k: v - self.cpu0.get(k, 0.0) for k, v in p.cpu().items()},
            "commands": {k: v - self.commands0.get(k, 0) for k, v in p.database_commands().items()},
            "service_commands": {k: v - self.by_service0.get(k, 0) for k, v in p.service_commands().items()},
        }

    def checkpoint(self, state: ReplayState, driver: Driver) -> None:
        """Bring the totals in `state` up to now; the segment goes on."""
        replay_s, http_s, barrier_s, requests_ = self.base
        state.replay_s = replay_s + time.perf_counter() - self.t0
        state.http_s, state.barrier_s = http_s + self.http_s, barrier_s + self.barrier_s
        state.requests = requests_ + driver.requests
        state.retries = dict(self.base_retries + driver.retries)
        state.failures = dict(self.base_failures + driver.failures)
        state.open_segment = self.record(state)

    def close(self, state: ReplayState, driver: Driver) -> None:
        self.checkpoint(state, driver)
        assert state.open_segment is not None
        state.segments.append(state.open_segment)
        state.open_segment = None


class StopSignal:
    """SIGINT/SIGTERM end the segment at the next slot boundary instead of killing the driver
    mid-slot (a second signal stops at once)."""

    def __init__(self, after_s: float | None):
        self.deadline = None if after_s is None else time.monotonic() + after_s
        self.requested = False

    def __enter__(self) -> StopSignal:
        self._old = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        tqdm.write("  stopping at the next slot boundary (again to stop at once) ...")

    def __bool__(self) -> bool:
        return self.requested or (self.deadline is not None and time.monotonic() >= self.deadline)


def run_replay(
    ctx: Context,
    n: int,
    days: float,
    seed: int,
    workers: int,
    checkpoint: Path | None = None,
    stop_after_s: float | None = None,
) -> dict[str, Any]:
    """Replay `n` petitions over `days`; with a `checkpoint` directory, resumable (module docstring)."""
    shares = Shares()
    tqdm.write(f"  generating {n:,} petitions over {days:g} days of 2025 ...")
    petitions = generate_petitions(ctx.county, n, seed=seed, start=datetime(2025, 1, 1, tzinfo=BEIJING), days=days)
    submission_days = [g.truth.submitted_at.astimezone(BEIJING).date() for g in petitions]
    rng = random.Random(seed)
    plans = [draw_plan(rng, shares) for _ in petitions]
    calendar = WorkCalendar.load(REPO_ROOT / "config" / "calendar")
    schedule = list(build_schedule(submission_days, plans, calendar.add_working_days, shares).items())
    root = checkpoint if checkpoint is not None else ctx.work / "replay"
    root.mkdir(parents=True, exist_ok=True)
    state_file = root / "replay-state.json"
    state = ReplayState.load(state_file) if checkpoint is not None and state_file.exists() else None
    if state is not None:
        if (state.petitions, state.days, state.seed) != (n, days, seed):
            raise SystemExit(
                f"{state_file} belongs to a replay of {state.petitions:,} petitions over {state.days:g} days "
                f"(seed {state.seed}); pass the same --petitions/--days or another --checkpoint"
            )
        tqdm.write(
            f"  resuming at slot {state.next_slot:,} of {len(schedule):,} (namespace {state.prefix}, "
            f"{len(state.segments)} segment(s), {state.replay_s / 60:.1f} min so far)"
        )
    clock = root / "replay-clock"
    done_slot = schedule[state.next_slot - 1][0] if state is not None and state.next_slot > 0 else schedule[0][0]
    _write_clock(clock, slot_instant(done_slot))
    # the scanners keep their production intervals (sla 30 s, routing's feedback timeout 60 s); sla's
    # also counts on the service clock, so it scans right after each step, and the barrier waits for it
    kwargs: dict[str, Any] = {"prefix": state.prefix} if state is not None else {}
    platform = ctx.platform("replay", clock_file=clock, root=root / "platform", **kwargs)
    if state is None:
        state = ReplayState(n, days, seed, platform.prefix, [None] * n, [None] * n, [False] * n)
    finished = False
    pids = root / "service-pids.json"
    _stop_leftovers(pids)
    try:
        platform.start(ALL, import_grids=state.next_slot == 0)
        pids.write_bytes(orjson.dumps([p.proc.pid for p in platform.fleet.processes.values()]))
        driver = Driver(platform, petitions)
        driver.ids, driver.codes, driver.duplicate = state.ids, state.codes, state.duplicate
        driver.already_done_ok = not state.clean
        segment = _Segment(platform, state, resumed_unclean=not state.clean)
        state.clean = False
        if checkpoint is not None:
            state.save(state_file)
        with StopSignal(stop_after_s) as stop:
            save_to = state_file if checkpoint is not None else None
            finished = _drive(platform, driver, schedule, state, segment, stop, workers, save_to)
        segment.driver_done = time.perf_counter()
        if not finished:
            segment.close(state, driver)
            state.clean = True
            state.save(state_file)
            return _stopped(state, schedule)
        last_day: date = schedule[-1][0][0]
        _write_clock(clock, slot_instant((last_day + timedelta(days=9), "contact")))
        expected = expected_outcome(
            plans, [pid is not None and not d for pid, d in zip(driver.ids, driver.duplicate, strict=True)]
        )
        final, complete = _wait_for_stats(platform, expected)
        segment.stats_wait_s = time.perf_counter() - segment.driver_done
        segment.close(state, driver)
        state.clean = True
        if checkpoint is not None:
            state.save(state_file)
        result = _result(state, schedule, workers, expected, final, complete, plans)
        result["queries"] = run_queries(platform, 50 if ctx.quick else 200)
        result["rss_mib"] = platform.rss_mib()
        return result
    finally:
        # a stopped replay keeps its topics and databases for the next segment
        platform.stop(drop=finished or checkpoint is None)
        pids.unlink(missing_ok=True)


def _drive(
    platform: Platform,
    driver: Driver,
    schedule: list[tuple[tuple[date, str], list[list[Action]]]],
    state: ReplayState,
    segment: _Segment,
    stop: StopSignal,
    workers: int,
    state_file: Path | None,
    save_every_s: float = 60,
) -> bool:
    """Perform the slots from `state.next_slot` on; False if told to stop before the last one."""
    clock = platform.clock_file
    assert clock is not None
    saved = time.monotonic()
    with ThreadPoolExecutor(workers) as pool, bar(len(schedule), "year replay (slots)") as b:
        b.update(state.next_slot)
        for index in range(state.next_slot, len(schedule)):
            if stop:
                return False
            slot, tasks = schedule[index]
            _write_clock(clock, slot_instant(slot))
            # sla scans at the new time before the slot's actions: otherwise whether a warning due at
            # this very instant goes out depends on how far that scan got before the action's event
            # (a handler contacting "at" the warning's instant), and the count varied from run to run
            t = time.perf_counter()
            _barrier(platform, scanned_at=slot_instant(slot))
            segment.barrier_s += time.perf_counter() - t
            t = time.perf_counter()
            list(pool.map(driver.run, tasks))
            segment.http_s += time.perf_counter() - t
            t = time.perf_counter()
            _barrier(platform)
            segment.barrier_s += time.perf_counter() - t
            state.next_slot = index + 1
            if index >= segment.first_slot + 8:
                driver.already_done_ok = False  # past what a died segment can have done after its save
            b.set_postfix(day=str(slot[0]), refresh=False)
            b.update(1)
            if state_file is not None and time.monotonic() - saved >= save_every_s:
                segment.checkpoint(state, driver)
                state.save(state_file)
                saved = time.monotonic()
    return True


def _stop_leftovers(pids: Path) -> None:
    """Services a killed driver left running would still hold partitions of the consumer groups."""
    if not pids.exists():
        return
    for pid in orjson.loads(pids.read_bytes()):
        try:
            alive_service = b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()  # not a reused pid
        except OSError:
            continue
        if alive_service:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)  # each service is its own process group (ServiceFleet)
                tqdm.write(f"  stopped service process group {pid} left over from a died segment")
    pids.unlink()


def _code_version() -> str:
    """The commit the services run (a replay's segments may span several), `+dirty` if changed."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _summed(segments: list[dict[str, Any]], key: str) -> dict[str, float]:
    total: Counter = Counter()
    for seg in segments:
        total.update(seg.get(key, {}))
    return dict(total)


def _stopped(state: ReplayState, schedule: list[tuple[tuple[date, str], Any]]) -> dict[str, Any]:
    next_day = schedule[state.next_slot][0][0] if state.next_slot < len(schedule) else schedule[-1][0][0]
    return {
        "stopped": True,
        "petitions": state.petitions,
        "days": state.days,
        "slots": len(schedule),
        "next_slot": state.next_slot,
        "next_day": next_day.isoformat(),
        "submitted": sum(pid is not None for pid in state.ids),
        "replay_s": state.replay_s,
        "segments": state.segments,
        "events_consumed": {k: int(v) for k, v in _summed(state.segments, "consumed").items()},
    }


def _result(
    state: ReplayState,
    schedule: list[Any],
    workers: int,
    expected: Any,
    final: dict[str, Any],
    complete: bool,
    plans: list[Plan],
) -> dict[str, Any]:
    consumed = {k: int(v) for k, v in _summed(state.segments, "consumed").items()}
    commands = _summed(state.segments, "commands")
    by_service = _summed(state.segments, "service_commands")
    wall = state.replay_s
    return {
        "petitions": state.petitions,
        "days": state.days,
        "slots": len(schedule),
        "driver_workers": workers,
        "wall_s": wall,
        "driver_s": wall - state.segments[-1]["stats_wait_s"],
        "driver_http_s": state.http_s,
        "driver_barrier_s": state.barrier_s,
        "segments": state.segments,
        "http_requests": state.requests,
        "retries": state.retries,
        "failures": state.failures,
        "duplicates": sum(state.duplicate),
        "expected": expected.__dict__,
        "stats_complete": complete,
        "stats_summary": final,
        "plans": _plan_shares(plans),
        "events_consumed": consumed,
        "events_per_s": {s: v / wall for s, v in consumed.items()},
        "cpu_s": _summed(state.segments, "cpu_s"),
        "database_commands": {c: int(n) for c, n in sorted(commands.items(), key=lambda kv: -kv[1]) if n > 0},
        "service_commands": {c: int(n) for c, n in sorted(by_service.items(), key=lambda kv: -kv[1]) if n > 0},
        "cores": len(os.sched_getaffinity(0)),
    }


def _barrier(platform: Platform, scanned_at: datetime | None = None, timeout_s: float = 600) -> None:
    """Every committed event published (no outbox marker left) and consumed by intake, routing and
    sla (consumer-group lag 0), and sla has scanned for due notices at the slot's time: what the next
    slot's actions and clock depend on has happened, and no warning window is stepped over."""
    deadline = time.monotonic() + timeout_s
    services = ("intake", "routing", "sla")
    while time.monotonic() < deadline:
        scanned = scanned_at is None or platform.sla_scanned_at() >= scanned_at.timestamp()
        if scanned and platform.outbox_empty(services) and not any(platform.lag(services).values()):
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
