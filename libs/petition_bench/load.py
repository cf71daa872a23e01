"""HTTP load against intake: a closed loop at a fixed concurrency, and an open loop at a fixed rate."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import requests

from countysim import GeneratedPetition
from petition_bench.platform import Platform


def percentiles_ms(seconds: Sequence[float]) -> dict[str, float | None]:
    if not seconds:
        return {"p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    a = np.asarray(seconds) * 1000
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99), "max_ms": float(a.max())}


@dataclass
class Receipt:
    petition_id: str
    tracking_code: str
    duplicate_of: str | None
    done_at: float  # time.time() when the 201 arrived


@dataclass
class Submitter:
    """Posts generated petitions to intake, round-robin over its instances."""

    platform: Platform
    _n: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def submit(self, g: GeneratedPetition) -> tuple[float, Receipt | None, int]:
        with self._lock:
            k = self._n
            self._n += 1
        url = f"{self.platform.url('intake', k)}/v1/petitions"
        t0 = time.perf_counter()
        try:
            resp = self.platform.http().post(
                url, json=g.body, headers={"Idempotency-Key": g.idempotency_key}, timeout=60
            )
        except requests.ConnectionError:
            # a keep-alive connection closed by the server as it was reused; the key makes a resend safe
            resp = self.platform.http().post(
                url, json=g.body, headers={"Idempotency-Key": g.idempotency_key}, timeout=60
            )
        elapsed = time.perf_counter() - t0
        if resp.status_code != 201:
            return elapsed, None, resp.status_code
        body = resp.json()
        return elapsed, Receipt(body["petition_id"], body["tracking_code"], body.get("duplicate_of"), time.time()), 201


def _run_clients(client: Callable[[], None], concurrency: int) -> float:
    """Run `concurrency` threads of `client` to the end; the seconds it took."""
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def batch_loop(
    platform: Platform,
    petitions: Iterator[GeneratedPetition],
    size: int,
    concurrency: int,
    duration_s: float,
    progress: Callable[[int], None],
) -> dict[str, Any]:
    """`concurrency` clients each posting batches of `size` petitions back to back to
    `POST /v1/petitions/batch` for `duration_s`, with the dispatcher's token; petitions/s and the
    latency of a whole batch."""
    lock = threading.Lock()
    latencies: list[float] = []
    accepted = [0]
    errors: dict[int, int] = {}
    stop_at = time.perf_counter() + duration_s
    url = f"{platform.url('intake')}/v1/petitions/batch"

    def client() -> None:
        while time.perf_counter() < stop_at:
            with lock:
                chunk = [g for _, g in zip(range(size), petitions, strict=False)]
            if len(chunk) < size:
                return
            items = [{"idempotency_key": g.idempotency_key, "petition": g.body} for g in chunk]
            t0 = time.perf_counter()
            resp = platform.http().post(url, json={"items": items}, headers=platform.staff_headers, timeout=120)
            elapsed = time.perf_counter() - t0
            with lock:
                if resp.status_code != 200:
                    errors[resp.status_code] = errors.get(resp.status_code, 0) + 1
                    continue
                latencies.append(elapsed)
                for result in resp.json()["results"]:
                    if result["status"] == 201:
                        accepted[0] += 1
                    else:
                        errors[result["status"]] = errors.get(result["status"], 0) + 1
            progress(size)

    wall = _run_clients(client, concurrency)
    return {
        "batch": size,
        "concurrency": concurrency,
        "batches": len(latencies),
        "petitions": accepted[0],
        "errors": errors,
        "seconds": wall,
        "per_s": accepted[0] / wall,
        **percentiles_ms(latencies),
    }


def closed_loop(
    submitter: Submitter,
    petitions: Iterator[GeneratedPetition],
    concurrency: int,
    duration_s: float,
    progress: Callable[[int], None],
    limit: int | None = None,
) -> tuple[dict[str, Any], list[Receipt]]:
    """`concurrency` clients each submitting back to back for `duration_s` (or until `limit`)."""
    lock = threading.Lock()
    latencies: list[float] = []
    receipts: list[Receipt] = []
    errors: dict[int, int] = {}
    stop_at = time.perf_counter() + duration_s

    def client() -> None:
        while time.perf_counter() < stop_at:
            with lock:
                if limit is not None and len(latencies) + sum(errors.values()) >= limit:
                    return
                g = next(petitions, None)
            if g is None:
                return
            elapsed, receipt, status = submitter.submit(g)
            with lock:
                if receipt is None:
                    errors[status] = errors.get(status, 0) + 1
                else:
                    latencies.append(elapsed)
                    receipts.append(receipt)
            progress(1)

    wall = _run_clients(client, concurrency)
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "seconds": wall,
        "per_s": len(latencies) / wall,
        **percentiles_ms(latencies),
    }, receipts


def open_loop(
    submitter: Submitter, petitions: Sequence[GeneratedPetition], rate: float, progress: Callable[[int], None]
) -> tuple[dict[str, Any], list[Receipt]]:
    """Submit petition i at start + i / rate, whatever the answers' latency (up to 64 in flight)."""
    start = time.perf_counter() + 0.2
    results: list[tuple[float, Receipt | None, int]] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        result = submitter.submit(petitions[i])
        with lock:
            results.append(result)
        progress(1)

    with ThreadPoolExecutor(64) as pool:
        list(pool.map(one, range(len(petitions))))
    wall = time.perf_counter() - start
    ok = [r for r in results if r[1] is not None]
    return {
        "target_per_s": rate,
        "requests": len(ok),
        "errors": len(results) - len(ok),
        "achieved_per_s": len(ok) / wall,
        **percentiles_ms([r[0] for r in ok]),
    }, [r[1] for r in ok if r[1] is not None]
