"""What the fault scenarios share: a stream of citizens, the reconciliation until it passes, the table.

A `Stream` submits generated petitions at a steady rate, as the mini-program does: it retries a
petition with its Idempotency-Key on 503 or a broken connection until it gets a 201. After a fault,
`record` runs the independent reconciliation (petition_devtools.reconcile) until it passes: every
petition that got a 201 is in intake, assigned in routing, tracked in sla and counted exactly once in
stats, and nothing else was created. Each scenario's row is printed and written to a Markdown table.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import requests

from countysim import generate_petitions
from petition_common.config import Settings
from petition_devtools.processes import SERVICES, ServiceFleet
from petition_devtools.reconcile import Endpoints, reconcile
from petition_devtools.tokens import county_tokens, token_for, write_tokens_file
from tests.support import diagnosis, eventually

RATE_PER_S = 20
# what a client meets when the server dies under it: refused, timed out, or an answer cut off
# mid-body (a kill -9 after the commit, while the 201 is on the wire); each is sent again
BROKEN = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
# the services whose logs explain a failed reconciliation check (petition_devtools.reconcile)
_SERVICES_OF = {
    "published once on petitions.intake.v1": ("intake",),
    "nothing else was created": ("intake",),
    "in intake": ("intake",),
    "assigned in routing": ("routing",),
    "tracked in sla": ("sla",),
    "counted once in stats (accepted)": ("stats",),
    "counted once in stats, by category": ("stats",),
}


@dataclass
class Stream:
    """A citizen population submitting at a steady rate, retrying each petition until it is accepted."""

    url: str
    bodies: list
    accepted: list[str] = field(default_factory=list)
    attempts: int = 0
    retries: int = 0
    # every answer other than 201, by status (a good petition should get none but 503)
    refusals: Counter[int] = field(default_factory=Counter)
    # the longest a citizen waited from the first attempt to the 201, retries included
    slowest_s: float = 0.0
    # petitions started (all of `bodies` unless `finish_after` ended the stream early)
    submitted: int = 0
    limit: int | None = None
    thread: threading.Thread | None = None
    rate_per_s: float = RATE_PER_S  # petitions a second, each citizen's in a crowd
    # errors no fault explains that stopped a citizen; `join` reports them
    failures: list[str] = field(default_factory=list)

    def start(self) -> Stream:
        self.thread = threading.Thread(target=self._guarded, args=(self._run,), daemon=True)
        self.thread.start()
        return self

    def _guarded(self, work, *args) -> None:
        try:
            work(*args)
        except Exception as exc:  # kept for `join`, which fails the scenario with it
            self.failures.append(f"{type(exc).__name__}: {exc}")

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.refusals.items() if status >= 500)

    def finish_after(self, more: int) -> None:
        """End the stream once `more` further petitions are accepted (or the bodies run out)."""
        self.limit = len(self.accepted) + more

    def _run(self) -> None:
        self._submit_each(self.bodies)

    def _submit_each(self, bodies: list) -> None:
        session = requests.Session()
        for generated in bodies:
            if self.limit is not None and len(self.accepted) >= self.limit:
                break
            self.submitted += 1
            started = time.monotonic()
            deadline = started + 180
            while time.monotonic() < deadline:
                self.attempts += 1
                try:
                    resp = session.post(
                        f"{self.url}/v1/petitions",
                        json=generated.body,
                        timeout=10,
                        headers={"Idempotency-Key": generated.idempotency_key},
                    )
                    if resp.status_code == 201:
                        self.accepted.append(resp.json()["petition_id"])
                        self.slowest_s = max(self.slowest_s, time.monotonic() - started)
                        break
                    self.refusals[resp.status_code] += 1
                    if resp.status_code != 503:  # the only refusal a good petition may be retried after
                        break
                except BROKEN:
                    session = requests.Session()
                self.retries += 1
                time.sleep(0.5)
            time.sleep(max(0.0, 1 / self.rate_per_s - (time.monotonic() - started)))

    def join(self) -> None:
        assert self.thread is not None
        self.thread.join(300)
        assert not self.failures, f"a citizen stopped submitting: {self.failures}"


@dataclass
class CrowdStream(Stream):
    """`clients` citizens submitting at once, each as a `Stream` does, over its share of the bodies:
    intake writes the submissions that arrive together in groups (group commit), so a fault strikes
    a group mid-write. The counts are the crowd's together."""

    clients: int = 6

    def _run(self) -> None:
        shares = [self.bodies[k :: self.clients] for k in range(self.clients)]
        citizens = [
            threading.Thread(target=self._guarded, args=(self._submit_each, share), daemon=True) for share in shares
        ]
        for citizen in citizens:
            citizen.start()
        for citizen in citizens:
            citizen.join(300)


@dataclass
class BatchStream(Stream):
    """A hotline handing over its calls in batches (`POST /v1/petitions/batch`) at the same steady
    rate: each batch is sent again, items with their keys, until every item is accepted; an item
    answered 503, or a whole batch answered 503 or cut off, is sent again, as the contract says."""

    token: str = ""
    size: int = 20

    def _run(self) -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {self.token}"}
        for start in range(0, len(self.bodies), self.size):
            if self.limit is not None and len(self.accepted) >= self.limit:
                break
            chunk = self.bodies[start : start + self.size]
            self.submitted += len(chunk)
            started = time.monotonic()
            waiting = dict(enumerate(chunk))  # the items not answered for good yet
            while waiting and time.monotonic() < started + 180:
                self.attempts += 1
                order = list(waiting)
                items = [{"idempotency_key": waiting[k].idempotency_key, "petition": waiting[k].body} for k in order]
                try:
                    resp = session.post(
                        f"{self.url}/v1/petitions/batch", json={"items": items}, headers=headers, timeout=30
                    )
                except BROKEN:
                    session = requests.Session()
                    resp = None
                if resp is not None and resp.status_code == 200:
                    for result in resp.json()["results"]:
                        k = order[result["index"]]
                        if result["status"] == 201:
                            self.accepted.append(result["petition"]["petition_id"])
                            del waiting[k]
                        else:
                            self.refusals[result["status"]] += 1
                            if result["status"] != 503:  # refused for good: a good petition never is
                                del waiting[k]
                elif resp is not None:
                    self.refusals[resp.status_code] += 1
                    if resp.status_code != 503:
                        break
                if waiting:
                    self.retries += 1
                    time.sleep(0.5)
            self.slowest_s = max(self.slowest_s, time.monotonic() - started)
            time.sleep(max(0.0, len(chunk) / RATE_PER_S - (time.monotonic() - started)))


@dataclass
class ActionCrowd(CrowdStream):
    """`clients` staff members at once recording the first contact on the work orders in `bodies`
    (petition ids), as the grid leaders' pages do: an action answered 503 or cut off is sent again,
    and a 409 after a resend means the first one arrived. routing writes the actions that arrive
    together in groups (group commit), so a fault strikes a group mid-write."""

    token: str = ""

    def _submit_each(self, petition_ids: list) -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {self.token}"}
        for pid in petition_ids:
            self.submitted += 1
            started, resent = time.monotonic(), False
            while time.monotonic() < started + 180:
                self.attempts += 1
                try:
                    resp = session.post(f"{self.url}/v1/workorders/{pid}/contact", json={}, headers=headers, timeout=10)
                except BROKEN:
                    session, resent = requests.Session(), True
                    self.retries += 1
                    time.sleep(0.5)
                    continue
                if resp.status_code == 200 or (resp.status_code == 409 and resent):
                    self.accepted.append(pid)
                    break
                self.refusals[resp.status_code] += 1
                if resp.status_code != 503:
                    break
                resent = True  # a 503 may hide a commit that happened (a lost acknowledgement)
                self.retries += 1
                time.sleep(0.5)
            self.slowest_s = max(self.slowest_s, time.monotonic() - started)
            time.sleep(max(0.0, 1 / self.rate_per_s - (time.monotonic() - started)))


def progress(stream: Stream, more: int, timeout_s: float = 120) -> None:
    """Wait until the stream has had `more` petitions accepted since now (or has ended)."""
    target = len(stream.accepted) + more

    def advanced() -> None:
        assert len(stream.accepted) >= target or not stream.thread.is_alive()  # type: ignore[union-attr]

    eventually(advanced, timeout_s=timeout_s, interval_s=0.2)


def start_platform(fleet: ServiceFleet, county, tmp_path: Path) -> dict[str, str]:
    """The four services with the county's staff tokens and its grids imported; returns the
    environment they were started with (a restarted instance needs it too)."""
    tokens = write_tokens_file(tmp_path / "tokens.yaml", county_tokens(county))
    dispatcher = next(s for s in county.staff if s.role == "county_dispatcher")
    env = {
        "STAFF_TOKENS_FILE": str(tokens),
        "ROUTING_DISPATCHER_ID": dispatcher.staff_id,
        "CONSUMER_RETRY_BACKOFF_S": "0.1",
        "OUTBOX_RELAY_INTERVAL_S": "0.5",
    }
    for name in SERVICES:
        fleet.start(name, extra_env=env)
    fleet.wait_ready(timeout_s=120)
    headers = {"Authorization": f"Bearer {token_for(dispatcher.staff_id)}"}
    resp = requests.post(
        f"{fleet.processes['routing'].url}/v1/grids/import", json=county.to_geojson(), headers=headers, timeout=60
    )
    assert resp.status_code == 200, resp.text
    return env


def bodies(county, n: int, seed: int) -> list:
    return generate_petitions(county, n, seed=seed, start=datetime(2024, 7, 1, tzinfo=UTC), days=3)


def endpoints(fleet: ServiceFleet) -> Endpoints:
    url = {name: fleet.processes[name].url for name in SERVICES}
    return Endpoints(url["intake"], url["routing"], url["sla"], url["stats"], token="tok-auditor")


def recover(
    settings: Settings, fleet: ServiceFleet, accepted: list[str], fault_over: float, timeout_s: float = 240
) -> tuple[float, list, float]:
    """Reconcile until everything is in place; returns (seconds from the fault's end, last checks,
    seconds the last reconciliation took: a pass asks every service about every petition)."""
    deadline = time.monotonic() + timeout_s
    while True:
        started = time.monotonic()
        try:
            checks = reconcile(settings, endpoints(fleet), set(accepted))
        except requests.RequestException as exc:  # a service still restarting
            checks = [exc]
        if all(getattr(c, "ok", False) for c in checks):
            return time.monotonic() - fault_over, checks, time.monotonic() - started
        if time.monotonic() > deadline:
            return -1.0, checks, time.monotonic() - started
        time.sleep(2)


def record(
    rows: list[dict],
    table: Path,
    name: str,
    stream: Stream,
    settings: Settings,
    fleet: ServiceFleet,
    fault_over: float,
    extra: dict | None = None,
) -> dict:
    """Reconcile until it passes, add the scenario's row of figures (and `extra` columns) to `rows`
    and write them to `table`; asserts that it recovered. Returns the row for the scenario's own
    assertions."""
    recovered, checks, last_pass = recover(settings, fleet, stream.accepted, fault_over)
    by_name = {c.name: c for c in checks if hasattr(c, "name")}
    counted = by_name.get("counted once in stats (accepted)")
    # lost: accepted (201) but missing from the topic or from a service
    presence = ("published once on petitions.intake.v1", "in intake", "assigned in routing", "tracked in sla")
    lost = max((by_name[n].expected - by_name[n].found for n in presence if n in by_name), default=-1)
    row = {
        "scenario": name,
        "submitted": stream.submitted,
        "accepted": len(stream.accepted),
        "client retries": stream.retries,
        "lost": lost,
        "duplicated in stats": max(0, counted.found - counted.expected) if counted else None,
        "time to recover (s)": round(recovered, 1),
        "of which the last check (s)": round(last_pass, 1),
        **(extra or {}),
    }
    rows.append(row)
    write_table(rows, table)
    if recovered < 0:
        failed = [c for c in checks if not getattr(c, "ok", False)]
        services = {s for c in failed for s in _SERVICES_OF.get(getattr(c, "name", ""), ())}
        lines = "\n".join(getattr(c, "line", lambda c=c: repr(c))() for c in checks)
        raise AssertionError(f"{lines}\n{diagnosis(fleet, tuple(services) or None)}")
    return row


def write_table(rows: list[dict], path: Path) -> None:
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    text = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print("\n" + text)
