"""`petitions-reconcile`: is every accepted petition everywhere it must be, exactly once?

    petitions-reconcile --token AUDITOR_TOKEN [--ids-file accepted.txt]
        [--intake URL] [--routing URL] [--sla URL] [--stats URL]

An independent check an operator can run against a live deployment (and the fault tests run after
every fault). The set of petitions is read from `petitions.intake.v1` (Kafka is the source of
truth), or taken from `--ids-file` (one petition id per line, e.g. every id a client got a 201 for).
For each petition it asks every service over its public HTTP API, with an auditor's token:

- intake has it (GET /v1/petitions/{id});
- routing has a work order for it (GET /v1/workorders/{id});
- sla tracks it (GET /v1/sla/petitions/{id});
- stats counts it exactly once: `accepted` in /v1/stats/summary over all time equals the number of
  petitions (duplicates of another petition excluded, as stats defines accepted), and so does the
  breakdown by category, category by category;
- and nothing else was created: with --ids-file, no other petition was published.

Prints one line per check and exits 1 if any fails. Reads KAFKA_BOOTSTRAP_SERVERS and
KAFKA_TOPIC_PREFIX like the services.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import requests
from kafka import KafkaConsumer, TopicPartition

from petition_common.config import Settings
from petition_common.topics import INTAKE


@dataclass
class Submitted:
    """What the intake topic says was accepted: petition id -> (event ids seen, category, duplicate_of)."""

    event_ids: dict[str, set[str]] = field(default_factory=dict)
    category: dict[str, str] = field(default_factory=dict)
    duplicate_of: dict[str, str | None] = field(default_factory=dict)


def read_submitted(settings: Settings) -> Submitted:
    topic = settings.topic(INTAKE)
    consumer = KafkaConsumer(**settings.kafka_client(), enable_auto_commit=False, group_id=None)
    out = Submitted()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not tps:
            return out
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        while any(consumer.position(tp) < end[tp] for tp in tps):
            for records in consumer.poll(timeout_ms=2000).values():
                for r in records:
                    try:
                        body = orjson.loads(r.value or b"")
                    except orjson.JSONDecodeError:
                        continue  # garbage: the consumers dead-letter it, it is no petition
                    if not isinstance(body, dict) or body.get("type") != "petition.submitted":
                        continue
                    data = body.get("data") or {}
                    pid = data.get("petition_id")
                    if not isinstance(pid, str) or body.get("source") != "petitions/intake":
                        continue
                    out.event_ids.setdefault(pid, set()).add(str(body.get("id")))
                    out.category[pid] = data.get("category", "")
                    out.duplicate_of[pid] = data.get("duplicate_of")
    finally:
        consumer.close()
    return out


@dataclass
class Check:
    name: str
    expected: int
    found: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        status = "ok" if self.ok else "FAIL"
        detail = "" if self.ok else f"  e.g. {', '.join(self.problems[:5])}"
        return f"{status:4s}  {self.name:44s} expected {self.expected:7d}  found {self.found:7d}{detail}"


@dataclass
class Endpoints:
    intake: str
    routing: str
    sla: str
    stats: str
    token: str

    def get(self, url: str, params: dict | None = None) -> requests.Response:
        """GET with the token; a 429 (the token's rate limit, docs/security.md) is waited out as the
        service's Retry-After says, up to 10 times, so a large check is slow rather than wrong."""
        for _ in range(10):
            resp = _session().get(url, params=params, timeout=30, headers={"Authorization": f"Bearer {self.token}"})
            if resp.status_code != 429:
                return resp
            time.sleep(min(60.0, float(resp.headers.get("Retry-After", "1"))))
        return resp


_local = threading.local()


def _session() -> requests.Session:
    """One HTTP session per thread (requests' Session is not meant to be shared between threads)."""
    if not hasattr(_local, "session"):
        _local.session = requests.Session()
    return _local.session


def _present(endpoints: Endpoints, base: str, path: str, ids: Iterable[str]) -> list[str]:
    def missing(pid: str) -> str | None:
        resp = endpoints.get(f"{base}{path.format(pid=pid)}")
        return None if resp.status_code == 200 else f"{pid} ({resp.status_code})"

    with ThreadPoolExecutor(8) as pool:
        return [m for m in pool.map(missing, sorted(ids)) if m is not None]


def reconcile(settings: Settings, endpoints: Endpoints, expected_ids: set[str] | None = None) -> list[Check]:
    submitted = read_submitted(settings)
    ids = expected_ids if expected_ids is not None else set(submitted.event_ids)
    checks = []
    published = [pid for pid in ids if pid in submitted.event_ids]
    twice = [pid for pid in published if len(submitted.event_ids[pid]) > 1]
    checks.append(
        Check(
            "published once on petitions.intake.v1",
            len(ids),
            len(published),
            [f"{p} missing" for p in sorted(ids - set(published))] + [f"{p} twice" for p in twice],
        )
    )
    if expected_ids is not None:
        extra = sorted(set(submitted.event_ids) - expected_ids)
        checks.append(Check("nothing else was created", 0, len(extra), extra))
    for name, base, path in (
        ("in intake", endpoints.intake, "/v1/petitions/{pid}"),
        ("assigned in routing", endpoints.routing, "/v1/workorders/{pid}"),
        ("tracked in sla", endpoints.sla, "/v1/sla/petitions/{pid}"),
    ):
        missing = _present(endpoints, base, path, ids)
        checks.append(Check(name, len(ids), len(ids) - len(missing), missing))

    accepted = [pid for pid in ids if pid in submitted.event_ids and not submitted.duplicate_of.get(pid)]
    summary = endpoints.get(f"{endpoints.stats}/v1/stats/summary").json()
    counted = int(summary["accepted"])
    checks.append(
        Check(
            "counted once in stats (accepted)",
            len(accepted),
            counted,
            [] if counted == len(accepted) else [f"stats says {counted}"],
        )
    )
    by_category = Counter(submitted.category[pid] for pid in accepted)
    breakdown = endpoints.get(f"{endpoints.stats}/v1/stats/breakdown", {"by": "category"}).json()
    rows = {row["key"]: row for row in breakdown["items"]}
    wrong = []
    for category, n in sorted(by_category.items()):
        row = rows.get(category, {})
        got = int(row.get("accepted", 0))
        if got != n:
            wrong.append(f"{category}: {got} != {n}")
    checks.append(Check("counted once in stats, by category", len(by_category), len(by_category) - len(wrong), wrong))
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="petitions-reconcile", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--token", required=True, help="a staff token with the auditor role")
    parser.add_argument("--ids-file", type=Path, help="the petition ids that must exist, one per line")
    for name, port in (("intake", 8081), ("routing", 8082), ("sla", 8083), ("stats", 8084)):
        parser.add_argument(f"--{name}", default=f"http://127.0.0.1:{port}")
    args = parser.parse_args(argv)
    expected = None
    if args.ids_file:
        expected = {line.strip() for line in args.ids_file.read_text().splitlines() if line.strip()}
    endpoints = Endpoints(args.intake, args.routing, args.sla, args.stats, args.token)
    checks = reconcile(Settings.from_env("reconcile"), endpoints, expected)
    for check in checks:
        print(check.line())
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
