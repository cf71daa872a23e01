"""The stats service over the real stack.

1. A generated month of the reference county (~33,000 petitions, countysim) with two planted
   hotspots (a concentrated burst in one grid; an emerging rise in one village) over noise
   everywhere else. Every lifecycle event is generated here (stats_world.py) and PUBLISHED DIRECTLY
   to the topics with kafka-python, as intake, routing and sla would (driving ~190,000 events
   through their HTTP APIs would take far longer than this test may), in an order where the topics
   interleave freely and 1% of messages arrive twice. Checked: the figures against an independent
   computation over the generated truth (written here, without the service's code); every planted
   hotspot alerted exactly once, and published once; false alarms on the noise within the stated
   bound; a second instance answering the same; and a rebuild from the topics reproducing every
   figure exactly.
   Midway, the service is killed (SIGKILL) and a new one continues from the checkpoints.
2. A few petitions driven through the real intake and routing services over HTTP, to show that
   stats counts what those services actually publish (duplicates included).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import chinese_calendar
import orjson
import pytest
import requests
import yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from countysim import generate_petitions, plant_hotspot
from petition_common.config import Settings
from petition_common.kafka_io import ensure_topics
from petition_devtools.kafka_access import admin_settings
from petition_devtools.tokens import county_tokens, token_for, write_tokens_file
from petition_kernel.times import BEIJING
from tests.e2e.stats_world import INTAKE, ROUTING, SLA, Truth, World
from tests.support import KAFKA, REPO, eventually, kafka_client, read_topic

MONTH = datetime(2024, 7, 1, tzinfo=BEIJING)  # 2024-07-01 00:00 in Beijing
PETITIONS = 33_000  # a month of countysim's reference year (~396,000 petitions)
# Hotspot rules of the test's own, sized for this volume (~1,085 petitions a day) and kept apart from
# the shipped config/hotspots.yaml, so that retuning that file cannot change what this test proves.
HOTSPOTS = {
    "lateness_hours": 24,
    "defaults": {"window_hours": 72, "baseline_days": 28, "alpha": 1.0e-6, "min_count": 5, "prior_count": 2.0,
                 "min_baseline_days": 7},
    "levels": {"grid": {"threshold": 5}, "village": {"threshold": 28}, "town": {"threshold": 150}},
}  # fmt: skip
# False alarms: alerts that contain no planted petition. Offline runs of the same detector over six
# generated months at this volume and these rules raised 0-3 a month (8 in 6 months: mostly emerging
# alerts in the first weeks, while the baseline is short). Stated bound for one month:
MAX_FALSE_ALARMS = 5
POLICY = yaml.safe_load((REPO / "config" / "sla-policy.yaml").read_text("utf-8"))
SATISFACTION = ("satisfied", "basically_satisfied", "dissatisfied")


@pytest.fixture(scope="module")
def month(county):
    start = MONTH.astimezone(UTC)
    noise = generate_petitions(county, PETITIONS, seed=2024, start=start, days=31)
    grid = county.grids[1234]
    village = county.villages[40]
    concentrated = plant_hotspot(county, "grid", grid.grid_id, "drainage", 10, start + timedelta(days=12), 20, seed=1)
    emerging = plant_hotspot(
        county, "village", village.village_id, "environment", 18, start + timedelta(days=22), 48, 2
    )
    items = (
        [(p, None) for p in noise] + [(p, "concentrated") for p in concentrated] + [(p, "emerging") for p in emerging]
    )
    world = World(county, items, seed=77).build()
    planted = {
        "concentrated": ("concentrated", "grid", grid.grid_id, "drainage"),
        "emerging": ("emerging", "village", village.name, "environment"),
    }
    return world, planted


# ---- the independent computation ------------------------------------------------------------------


def _workdays_after(start: date, n: int) -> date:
    day = start
    while n:
        day += timedelta(days=1)
        n -= chinese_calendar.is_workday(day)
    return day


def _workdays_between(start: date, end: date) -> int:
    return sum(chinese_calendar.is_workday(start + timedelta(days=i)) for i in range(1, (end - start).days + 1))


def _contact_hours(category: str) -> float:
    return POLICY.get("categories", {}).get(category, {}).get("contact_hours", POLICY["defaults"]["contact_hours"])


def expected(truths: list[Truth], keep: Callable[[Truth], bool] = lambda t: True) -> dict:
    """The summary's counts as the definitions in docs/statistics.md say, from the generated truth."""
    c: Counter[str] = Counter()
    for t in truths:
        if not keep(t):
            continue
        if t.duplicate_of is not None:
            c["duplicates"] += 1
            continue
        c["accepted"] += 1
        c["assigned"] += 1
        local_day = t.submitted_at.astimezone(BEIJING).date()
        if t.contacted_at is not None:
            c["contacted"] += 1
            c["contact_seconds"] += (t.contacted_at - t.submitted_at) // timedelta(seconds=1)
            c["contacted_on_time"] += t.contacted_at - t.submitted_at <= timedelta(hours=_contact_hours(t.category))
        if t.replies:
            first = min(t.replies)
            c["replied"] += 1
            deadline = datetime.combine(_workdays_after(local_day, 5) + timedelta(days=1), datetime.min.time(), BEIJING)
            for start, end in t.pauses:  # one pause, over before the reply, started before the deadline
                if start < deadline:
                    deadline += min(end - start, timedelta(days=5))
            c["replied_on_time"] += first <= deadline
            c["reply_working_days"] += _workdays_between(local_day, first.astimezone(BEIJING).date())
        c["closed"] += t.closed
        c["transferred"] += t.transferred
        c["reopened"] += t.reopened
        c["withdrawn"] += t.withdrawn
        if t.ratings:
            c["feedback"] += 1
            c[max(t.ratings)[1]] += 1
        c["sla_warned"] += t.sla_warned
        c["sla_breached"] += t.sla_breached
    return {k: v for k, v in c.items() if v}


def as_counts(summary: dict) -> dict:
    """The same counters read back from a `Counts` answer of the service."""
    fb, avg = summary["feedback"], summary["averages"]
    out = {k: summary[k] for k in ("accepted", "duplicates", "assigned", "contacted", "contacted_on_time", "replied",
                                   "replied_on_time", "closed", "transferred", "reopened", "withdrawn")}  # fmt: skip
    out.update({"feedback": fb["count"], **{s: fb[s] for s in SATISFACTION}})
    out.update({"sla_warned": summary["sla"]["warned"], "sla_breached": summary["sla"]["breached"]})
    out["contact_seconds"] = round(avg["hours_to_contact"] * 3600 * out["contacted"]) if out["contacted"] else 0
    out["reply_working_days"] = round(avg["working_days_to_reply"] * out["replied"]) if out["replied"] else 0
    return {k: v for k, v in out.items() if v}


# ---- helpers ---------------------------------------------------------------------------------------


def publish(world: World, prefix: str) -> dict[str, int]:
    producer = KafkaProducer(**kafka_client(), linger_ms=20, batch_size=512 * 1024)
    sent: Counter[str] = Counter()
    for m in world.publishing_order():
        producer.send(f"{prefix}{m.topic}", key=m.key.encode(), value=m.value, headers=m.headers)
        sent[m.topic] += 1
    # and one message that is not a CloudEvent at all: dead-lettered, never counted
    producer.send(f"{prefix}{INTAKE}", key=b"JZ20240701999999", value=b"{not json")
    producer.flush(120)
    producer.close()
    return dict(sent)


def end_offsets(prefix: str) -> dict[str, int]:
    consumer = KafkaConsumer(**kafka_client())
    try:
        tps = [TopicPartition(f"{prefix}{t}", p) for t in (INTAKE, ROUTING, SLA) for p in range(4)]
        return {f"{tp.topic.removeprefix(prefix)}:{tp.partition}": o for tp, o in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


class Stats:
    def __init__(self, url: str, token: str):
        self.url = url
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str, **params: str) -> dict:
        r = self.http.get(f"{self.url}{path}", params=params, timeout=30)
        assert r.status_code == 200, (path, params, r.text)
        return r.json()

    def progress(self) -> int:
        """Messages counted so far (the offsets of every partition's newest checkpoint)."""
        status = self.get("/v1/stats/status")
        return sum(sum((head or {}).get("offsets", {}).values()) for head in status["partitions"].values())

    def caught_up(self, ends: dict[str, int]) -> dict:
        status = self.get("/v1/stats/status")
        got = {}
        for head in status["partitions"].values():
            got.update((head or {}).get("offsets", {}))
        behind = {k: (got.get(k), v) for k, v in ends.items() if v and got.get(k) != v}
        assert not behind, f"partitions behind: {behind}"
        hot = (status["hotspots"] or {}).get("offsets", {})
        behind = {k: (hot.get(k), v) for k, v in ends.items() if v and not k.startswith(SLA) and hot.get(k) != v}
        assert not behind, f"hotspot detector behind: {behind}"
        return status


def figures(stats: Stats) -> dict:
    """A broad set of answers, to compare before and after a rebuild and across instances."""
    out = {"summary": stats.get("/v1/stats/summary")}
    for by in ("town", "village", "grid", "category", "department", "channel"):
        out[f"breakdown:{by}"] = stats.get("/v1/stats/breakdown", by=by)
    for interval in ("day", "week", "month"):
        out[f"timeseries:{interval}"] = stats.get("/v1/stats/timeseries", interval=interval)
    out["ranking"] = stats.get("/v1/stats/ranking", level="village", metric="satisfaction_rate")
    return out


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


# ---- 1. a month, published directly ---------------------------------------------------------------


def test_a_generated_month_counted_alerted_and_rebuilt(fleet, month, county, tmp_path):
    world, planted = month
    prefix = fleet.env["KAFKA_TOPIC_PREFIX"]
    settings = Settings(service="stats", kafka_bootstrap=KAFKA, topic_prefix=prefix, **admin_settings())
    ensure_topics(settings, [INTAKE, ROUTING, SLA, "petitions.alerts.v1", "petitions.deadletter.v1"])
    hotspots_file = tmp_path / "hotspots.yaml"
    hotspots_file.write_text(yaml.safe_dump(HOTSPOTS), encoding="utf-8")
    tokens = write_tokens_file(tmp_path / "tokens.yaml", county_tokens(county))
    env = {"STAFF_TOKENS_FILE": str(tokens), "STATS_HOTSPOTS_FILE": str(hotspots_file),
           "STATS_CHECKPOINT_INTERVAL_S": "2", "STATS_REFRESH_INTERVAL_S": "0.5"}  # fmt: skip
    service = fleet.start("stats", extra_env=env)
    fleet.wait_ready()
    dispatcher = next(s for s in county.staff if s.role == "county_dispatcher")
    stats = Stats(service.url, token_for(dispatcher.staff_id))

    # publish in the background; once part is counted, kill the service (SIGKILL: no final checkpoint)
    # and start a new one, which must continue from the checkpoints without losing or repeating anything
    started = time.monotonic()
    sent: dict[str, int] = {}
    publisher = threading.Thread(target=lambda: sent.update(publish(world, prefix)))
    publisher.start()
    eventually(lambda: stats.progress() > 40_000, timeout_s=120, interval_s=0.5)
    fleet.stop("stats", kill=True)
    service = fleet.start("stats", extra_env=env)
    fleet.wait_ready(["stats"])
    stats = Stats(service.url, token_for(dispatcher.staff_id))
    publisher.join()
    published_s = time.monotonic() - started
    ends = end_offsets(prefix)
    assert sum(ends.values()) == sum(sent.values()) + 1
    eventually(lambda: stats.caught_up(ends), timeout_s=150, interval_s=1)
    print(
        f"\n{sum(sent.values()):,} messages published in {published_s:.0f}s, counted {time.monotonic() - started:.0f}s"
    )

    # -- the figures, against the independent computation
    truths = world.truths
    summary = stats.get("/v1/stats/summary")
    assert as_counts(summary) == expected(truths)
    assert summary["accepted"] > 31_000 and summary["duplicates"] > 500
    town = county.towns[3].name
    assert as_counts(stats.get("/v1/stats/summary", town=town)) == expected(truths, lambda t: t.final_town == town)
    village = county.villages[7].name
    assert as_counts(stats.get("/v1/stats/summary", village=village)) == expected(
        truths, lambda t: t.final_village == village
    )
    grid = county.grids[77].grid_id
    assert as_counts(stats.get("/v1/stats/summary", grid_id=grid)) == expected(truths, lambda t: t.final_grid == grid)
    in_week = lambda t: date(2024, 7, 8) <= t.submitted_at.astimezone(BEIJING).date() < date(2024, 7, 15)  # noqa: E731
    week = stats.get("/v1/stats/summary", category="utilities", **{"from": "2024-07-08", "to": "2024-07-15"})
    assert as_counts(week) == expected(truths, lambda t: t.category == "utilities" and in_week(t))
    by_channel = {r["key"]: as_counts(r) for r in stats.get("/v1/stats/breakdown", by="channel")["items"]}
    assert by_channel == {ch: expected(truths, lambda t, ch=ch: t.channel == ch) for ch in {t.channel for t in truths}}
    by_department = {r["key"]: r["accepted"] for r in stats.get("/v1/stats/breakdown", by="department")["items"]}
    want_departments: Counter[str] = Counter(t.department for t in truths if t.duplicate_of is None)
    assert by_department == dict(want_departments)
    weeks = stats.get("/v1/stats/timeseries", interval="week", town=town)["points"]
    for point in weeks:
        first = datetime.fromisoformat(point["start"]).date()
        last = datetime.fromisoformat(point["end"]).date()
        keep = lambda t, a=first, b=last: t.final_town == town and a <= t.submitted_at.astimezone(BEIJING).date() < b  # noqa: E731
        assert as_counts(point) == expected(truths, keep), point["start"]
    ranking = stats.get("/v1/stats/ranking", level="town", metric="closure_rate")["items"]
    assert len(ranking) == 12 and all(r["ci_low"] <= r["rate"] <= r["ci_high"] for r in ranking)
    assert [r["ci_low"] for r in ranking] == sorted((r["ci_low"] for r in ranking), reverse=True)

    # -- answers are fast (the unit tests time a whole year; here the month over HTTP)
    slowest = 0.0
    for path, params in [("/v1/stats/summary", {}), ("/v1/stats/breakdown", {"by": "grid"}),
                         ("/v1/stats/timeseries", {"interval": "day"}),
                         ("/v1/stats/ranking", {"level": "village", "metric": "response_rate"})]:  # fmt: skip
        t0 = time.perf_counter()
        stats.get(path, **params)
        slowest = max(slowest, time.perf_counter() - t0)
    print(f"slowest of four queries over HTTP: {slowest * 1000:.0f} ms")
    assert slowest < 1.0

    # -- invalid filters are 400 with the field named; no token is 401; out of area is 404
    r = stats.http.get(f"{service.url}/v1/stats/summary", params={"from": "2024-07-01T10:00:00+08:00", "x": "1"})
    assert r.status_code == 400 and set(r.json()["error"]["fields"]) == {"from", "x"}
    assert requests.get(f"{service.url}/v1/stats/summary", timeout=10).status_code == 401
    supervisor = next(s for s in county.staff if s.role == "town_supervisor" and s.town_id != county.towns[3].town_id)
    other = requests.get(f"{service.url}/v1/stats/summary", params={"town": town}, timeout=10,
                         headers={"Authorization": f"Bearer {token_for(supervisor.staff_id)}"})  # fmt: skip
    assert other.status_code == 404

    # -- hotspots: each planted one alerted exactly once; noise within the bound; each published once
    alerts = stats.get("/v1/alerts", limit="500")["items"]
    truth_of = {t.petition_id: t for t in truths}
    keys = Counter((a["kind"], a["area"]["level"], a["area"]["id"], a["category"]) for a in alerts)
    for name, key in planted.items():
        mine = [a for a in alerts if (a["kind"], a["area"]["level"], a["area"]["id"], a["category"]) == key]
        assert len(mine) == 1, (name, key, mine)
        assert any(truth_of[p].planted == name for p in mine[0]["petition_ids"])
    for a in alerts:
        hits = {truth_of[p].planted for p in a["petition_ids"]} - {None}
        if hits:  # any other alert the planted petitions raised is in the planted area or around it
            assert keys[(a["kind"], a["area"]["level"], a["area"]["id"], a["category"])] == 1
            assert a["category"] in ("drainage", "environment")
    false_alarms = [a for a in alerts if not {truth_of[p].planted for p in a["petition_ids"]} - {None}]
    noise = [(a["kind"], a["area"]["level"], a["area"]["name"], a["category"], a["count"]) for a in false_alarms]
    print(f"{len(alerts)} alerts, {len(false_alarms)} on noise alone: {noise}")
    assert len(false_alarms) <= MAX_FALSE_ALARMS
    on_topic = read_topic(f"{prefix}petitions.alerts.v1", lambda ms: len(ms) >= len(alerts), timeout_s=20)
    assert Counter(m["value"]["data"]["alert_id"] for m in on_topic) == Counter(a["alert_id"] for a in alerts)
    assert all(m["key"] == m["value"]["data"]["area"]["id"] for m in on_topic)
    metrics = requests.get(f"{service.url}/metrics", timeout=10).text
    assert metric(metrics, "petitions_stats_alerts_total") == len(alerts)
    assert metric(metrics, "petitions_deadlettered_total", reason="unparseable") == 1
    assert metric(metrics, "petitions_consumed_total", outcome="duplicate") >= 0.005 * sum(sent.values())
    assert metric(metrics, "petitions_http_request_seconds_count", route="/v1/stats/summary") > 0

    # -- a second instance: the partitions are shared out, one detector runs, both answer the same
    before = figures(stats)
    second = fleet.start("stats", instance="stats-2", extra_env=env)
    fleet.wait_ready(["stats-2"])
    stats2 = Stats(second.url, token_for(dispatcher.staff_id))

    def shared() -> None:
        m1 = requests.get(f"{service.url}/metrics", timeout=10).text
        m2 = requests.get(f"{second.url}/metrics", timeout=10).text
        owned = (metric(m1, "petitions_stats_owned_partitions"), metric(m2, "petitions_stats_owned_partitions"))
        assert sorted(owned) == [2, 2], owned
        running = metric(m1, "petitions_stats_detector_running") + metric(m2, "petitions_stats_detector_running")
        assert running == 1
        assert figures(stats2) == before

    eventually(shared, timeout_s=60, interval_s=1)
    fleet.stop("stats-2")

    # -- the rebuild from the topics gives the same figures
    run_env = {**os.environ, **fleet.env, **env}
    rebuild = subprocess.run([sys.executable, "-m", "services.stats.rebuild"], cwd=REPO, env=run_env,
                             capture_output=True, text=True, timeout=240)  # fmt: skip
    assert rebuild.returncode == 0, rebuild.stderr[-3000:]
    result = orjson.loads(rebuild.stdout)
    assert "partition 3:" in rebuild.stderr and "messages" in rebuild.stderr  # progress output
    assert result["totals"]["accepted"] == summary["accepted"]
    assert result["alerts_published"] == 0  # every alert it found again was published before
    eventually(lambda: _switched(stats, result["generation"], ends), timeout_s=60, interval_s=1)
    assert figures(stats) == before
    again = read_topic(f"{prefix}petitions.alerts.v1", lambda ms: False, timeout_s=5)
    assert len(again) == len(on_topic)

    # -- rehearsing the same rules on the topics finds the alerts the live detector raised
    rehearse = subprocess.run([sys.executable, "-m", "services.stats.rehearse", "--warm-up-days", "0", "--list"],
                              cwd=REPO, env=run_env, capture_output=True, text=True, timeout=240)  # fmt: skip
    assert rehearse.returncode == 0, rehearse.stderr[-3000:]
    tried = orjson.loads(rehearse.stdout)
    assert "hotspots:" in rehearse.stderr  # progress output
    assert tried["petitions_observed"] == summary["accepted"] + summary["duplicates"]
    area_key = lambda a: (a["kind"], a["area"]["level"], a["area"]["id"], a["category"])  # noqa: E731
    assert {area_key(a) for a in tried["raised"]} == set(keys)
    assert len(tried["raised"]) == sum(tried["alerts"].values()) == len(alerts)


def _switched(stats: Stats, generation: int, ends: dict[str, int]) -> None:
    status = stats.caught_up(ends)
    assert status["generation"] == generation


# ---- 2. petitions through the real intake and routing ------------------------------------------


def test_petitions_from_the_real_services_are_counted(fleet, county, tmp_path):
    tokens = write_tokens_file(tmp_path / "tokens.yaml", county_tokens(county))
    dispatcher = next(s for s in county.staff if s.role == "county_dispatcher")
    # intake and routing run whole days shifted into a year the working-day calendar covers, so that
    # "replied on time" is computable whatever today's date is (late December has no next-year calendar)
    shift = timedelta(days=(date(2026, 6, 2) - datetime.now(UTC).date()).days)
    clock = tmp_path / "shifted-clock"
    clock.write_text(f"offset:{shift.total_seconds()}")
    env = {"STAFF_TOKENS_FILE": str(tokens), "ROUTING_DISPATCHER_ID": dispatcher.staff_id,
           "STATS_CHECKPOINT_INTERVAL_S": "1", "STATS_REFRESH_INTERVAL_S": "0.5",
           "INTAKE_FAKE_CLOCK_FILE": str(clock), "ROUTING_FAKE_CLOCK_FILE": str(clock)}  # fmt: skip
    intake = fleet.start("intake", extra_env=env)
    routing = fleet.start("routing", extra_env=env)
    service = fleet.start("stats", extra_env=env)
    fleet.wait_ready()
    auth = {"Authorization": f"Bearer {token_for(dispatcher.staff_id)}"}
    http = requests.Session()
    r = http.post(f"{routing.url}/v1/grids/import", json=county.to_geojson(), headers=auth, timeout=60)
    assert r.status_code == 200, r.text

    now = datetime.now(UTC) + shift
    generated = generate_petitions(county, 24, seed=3, start=now - timedelta(minutes=1), days=0.0001)
    receipts = []
    for g in generated:
        r = http.post(f"{intake.url}/v1/petitions", json=g.body, timeout=30)
        assert r.status_code == 201, r.text
        receipts.append(r.json())
    repeat = http.post(f"{intake.url}/v1/petitions", json=generated[0].body, timeout=30).json()
    assert repeat["duplicate_of"] == receipts[0]["petition_id"]  # the same citizen again: a duplicate

    def routed() -> None:
        for receipt in receipts:
            r = http.get(f"{routing.url}/v1/workorders/{receipt['petition_id']}", headers=auth, timeout=10)
            assert r.status_code == 200

    eventually(routed, timeout_s=60)
    outcome: dict[str, int] = defaultdict(int)
    for i, receipt in enumerate(receipts[:12]):
        pid = receipt["petition_id"]
        assert http.post(f"{routing.url}/v1/workorders/{pid}/contact", json={}, headers=auth, timeout=10).ok
        if i % 2 == 0:
            body = {"resolution": "resolved", "summary": "已处理"}
            assert http.post(f"{routing.url}/v1/workorders/{pid}/reply", json=body, headers=auth, timeout=10).ok

    def rate(i: int, receipt: dict) -> None:  # once intake has followed routing's reply
        rating = "satisfied" if i % 4 == 0 else "basically_satisfied"
        body = {"tracking_code": receipt["tracking_code"], "satisfaction": rating}
        r = http.post(f"{intake.url}/v1/petitions/{receipt['petition_id']}/feedback", json=body, timeout=10)
        assert r.status_code == 200, r.text
        outcome[rating] += 1

    for i, receipt in enumerate(receipts[:12:2]):
        eventually(lambda i=i, receipt=receipt: rate(2 * i, receipt), timeout_s=30, interval_s=0.3)
    stats = Stats(service.url, token_for(dispatcher.staff_id))
    today = now.astimezone(BEIJING).date()
    period = {"from": (today - timedelta(days=1)).isoformat(), "to": (today + timedelta(days=2)).isoformat()}

    def counted() -> None:
        s = stats.get("/v1/stats/summary", **period)
        assert (s["accepted"], s["duplicates"], s["assigned"]) == (24, 1, 24)
        assert (s["contacted"], s["contacted_on_time"]) == (12, 12)
        assert (s["replied"], s["replied_on_time"]) == (6, 6)
        assert s["feedback"]["count"] == 6 and s["closed"] == 6  # a satisfied rating closes the order
        assert s["feedback"]["satisfied"] == outcome["satisfied"]
        assert s["rates"]["satisfaction_rate"] == 1.0

    eventually(counted, timeout_s=60, interval_s=1)
    by_town = stats.get("/v1/stats/breakdown", by="town", **period)["items"]
    assert sum(r["accepted"] for r in by_town) == 24
    assert {r["key"] for r in by_town if r["key"]} <= {t.name for t in county.towns}
