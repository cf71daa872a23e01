"""No petition lost: faults injected into the running platform while citizens keep submitting.

Each scenario runs the four services as real processes on the local Kafka and FerretDB, streams
generated petitions at intake (a client that retries with its Idempotency-Key on 503 or a broken
connection, as the mini-program does; or several at once, and staff actions at routing, so that the
faults strike group commits), injects one fault, and then runs the independent
reconciliation (petition_devtools.reconcile) until it passes: every petition that got a 201 is in
intake, assigned in routing, tracked in sla and counted exactly once in stats, and nothing else was
created. The table of figures is printed and written to .local/faults.md.

Bounded: each stream is a fixed number of petitions; loopback only. `bin/test tests/faults` runs it.
"""

from __future__ import annotations

import subprocess
import time

import pytest
import requests
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from petition_common.config import Settings
from petition_devtools.kafka_access import admin_settings
from petition_devtools.processes import REPO, ServiceFleet
from petition_devtools.tokens import token_for
from tests.faults.support import ActionCrowd, BatchStream, CrowdStream, Stream, bodies, progress, record
from tests.support import KAFKA, MONGO, STACK, eventually, kafka_client, read_topic

RESULTS: list[dict] = []


def _stack(*args: str) -> None:
    subprocess.run([*STACK, *args], check=True, capture_output=True)


def _record(name: str, stream: Stream, fleet: ServiceFleet, fault_over: float) -> None:
    settings = Settings(
        service="faults",
        kafka_bootstrap=KAFKA,
        mongo_uri=MONGO,
        topic_prefix=fleet.env["KAFKA_TOPIC_PREFIX"],
        **admin_settings(),
    )
    row = record(RESULTS, REPO / ".local" / "faults.md", name, stream, settings, fleet, fault_over)
    assert len(stream.accepted) == stream.submitted == len(stream.bodies), stream.refusals
    assert row["lost"] == 0 and row["duplicated in stats"] == 0


# ---- the scenarios


@pytest.mark.timeout(600)
def test_broker_killed_and_restarted_mid_stream(platform, county):
    """Six citizens at once, so that the broker dies while submissions are written in groups and
    their markers wait in the outbox; every one is published once Kafka is back."""
    url = platform.processes["intake"].url
    stream = CrowdStream(url, bodies(county, 900, seed=1), clients=6, rate_per_s=15).start()
    progress(stream, 30)
    before = _grouped(url, "submissions")
    _stack("kill", "kafka")
    time.sleep(5)  # the fault: Kafka stays down 5 s
    _stack("start", "kafka")
    fault_over = time.monotonic()
    stream.join()
    _record("6 citizens at once: kill -9 Kafka, restart after 5 s", stream, platform, fault_over)
    grouped = _grouped(url, "submissions") - before
    print(f"submissions written in groups of more than one from the kill on: {grouped:.0f}")
    assert grouped > 0, "no two submissions were written together: the fault struck no group"


@pytest.mark.timeout(900)
def test_each_service_killed_mid_stream(platform, county):
    stream = Stream(platform.processes["intake"].url, bodies(county, 400, seed=2)).start()
    for name in ("intake", "routing", "sla", "stats"):
        progress(stream, 20)
        platform.stop(name, kill=True)
        time.sleep(1)  # the fault: the service stays down 1 s
        platform.start(name, extra_env=platform.extra_env)
        platform.wait_ready([name])
        if name == "intake":
            stream.url = platform.processes["intake"].url
    fault_over = time.monotonic()
    stream.join()
    _record("kill -9 intake, routing, sla, stats in turn", stream, platform, fault_over)


@pytest.mark.timeout(900)
def test_database_stopped_for_30_seconds(platform, county):
    stream = Stream(platform.processes["intake"].url, bodies(county, 200, seed=3)).start()
    progress(stream, 20)
    _stack("stop", "ferretdb")
    time.sleep(30)  # the fault: FerretDB stays down 30 s
    _stack("start", "ferretdb")
    fault_over = time.monotonic()
    stream.join()
    _record("FerretDB stopped for 30 s", stream, platform, fault_over)


@pytest.mark.timeout(900)
def test_hotline_batches_through_a_database_stop_and_a_killed_intake(platform, county):
    """Issue #23: a batch's grouped writes lose nothing and store nothing twice when the database goes
    away mid-batch or intake dies mid-batch; the hotline sends the unanswered items again."""
    dispatcher = next(s for s in county.staff if s.role == "county_dispatcher")
    url = platform.processes["intake"].url
    stream = BatchStream(url, bodies(county, 300, seed=6), token=token_for(dispatcher.staff_id)).start()
    fault_over = _database_stop_then_intake_killed(platform, stream)
    stream.join()
    _record("hotline batches of 20: FerretDB stopped 10 s, then intake killed", stream, platform, fault_over)


def _database_stop_then_intake_killed(platform, stream: Stream, before_kill=lambda: None) -> float:
    """FerretDB stopped for 10 s, then intake killed, each while `stream` submits; when the faults
    were over. `before_kill` runs just before intake is killed."""
    progress(stream, 40)
    _stack("stop", "ferretdb")
    time.sleep(10)  # the fault: FerretDB stays down 10 s
    _stack("start", "ferretdb")
    progress(stream, 40)
    before_kill()
    platform.stop("intake", kill=True)
    platform.start("intake", extra_env=platform.extra_env)
    platform.wait_ready(["intake"])
    stream.url = platform.processes["intake"].url
    return time.monotonic()


@pytest.mark.timeout(900)
def test_concurrent_citizens_through_a_database_stop_and_a_killed_intake(platform, county):
    """Issue #23: single submissions that arrive together are written in groups; a group struck by
    the database going away or by intake dying mid-write loses nothing and stores nothing twice, and
    every citizen's retry with the same Idempotency-Key completes or replays their petition."""
    url = platform.processes["intake"].url
    # 6 × 10/s, so that the stream lasts through both faults (~15 s without them)
    stream = CrowdStream(url, bodies(county, 900, seed=7), clients=6, rate_per_s=10).start()
    # written together before the kill: the retries of the citizens the database stop held back, at least
    grouped: list[float] = []
    fault_over = _database_stop_then_intake_killed(
        platform, stream, before_kill=lambda: grouped.append(_grouped(stream.url, "submissions"))
    )
    stream.join()
    _record("6 citizens at once: FerretDB stopped 10 s, then intake killed", stream, platform, fault_over)
    print(f"submissions written in groups of more than one: {grouped[0]:.0f} before the kill")
    assert stream.retries > 0, "no citizen had to retry: the faults struck nothing"
    assert grouped[0] > 0, "no two submissions were written together: the faults struck no group"


@pytest.mark.timeout(900)
def test_concurrent_staff_actions_through_a_database_stop_and_a_killed_routing(platform, county):
    """Issue #23: staff actions that arrive together are committed in groups; a group struck by the
    database going away or by routing dying mid-write loses no action that was answered 200, and
    records none twice: every order is contacted once, by one `petition.contacted` event."""
    dispatcher = next(s for s in county.staff if s.role == "county_dispatcher")
    token = token_for(dispatcher.staff_id)
    submissions = Stream(platform.processes["intake"].url, bodies(county, 240, seed=8)).start()
    submissions.join()
    assert len(submissions.accepted) == 240, submissions.refusals
    routing = platform.processes["routing"].url
    headers = {"Authorization": f"Bearer {token}"}
    eventually(lambda: _all_routed(routing, headers, submissions.accepted), timeout_s=120, interval_s=1)
    actions = ActionCrowd(routing, list(submissions.accepted), token=token, clients=6, rate_per_s=8).start()
    progress(actions, 30)
    _stack("stop", "ferretdb")
    time.sleep(10)  # the fault: FerretDB stays down 10 s
    _stack("start", "ferretdb")
    progress(actions, 30)
    grouped = _grouped(actions.url, "workorder_changes")
    platform.stop("routing", kill=True)
    platform.start("routing", extra_env=platform.extra_env)
    platform.wait_ready(["routing"])
    actions.url = platform.processes["routing"].url
    actions.join()
    assert sorted(actions.accepted) == sorted(submissions.accepted), actions.refusals
    assert actions.retries > 0, "no action had to be sent again: the faults struck nothing"
    print(f"staff actions written in groups of more than one: {grouped:.0f} before the kill")
    assert grouped > 0, "no two actions were written together: the faults struck no group"
    for pid in actions.accepted:
        order = requests.get(f"{actions.url}/v1/workorders/{pid}", headers=headers, timeout=10).json()
        assert order["status"] == "in_progress", order
    topic = f"{platform.env['KAFKA_TOPIC_PREFIX']}petitions.routing.v1"
    wanted = set(actions.accepted)

    def contacted(messages: list[dict]) -> dict[str, set[str]]:
        ids: dict[str, set[str]] = {}
        for m in messages:
            value = m["value"]
            if isinstance(value, dict) and value.get("type") == "petition.contacted":
                ids.setdefault(value["data"]["petition_id"], set()).add(value["id"])
        return ids

    found = contacted(read_topic(topic, lambda ms: wanted <= set(contacted(ms)), timeout_s=120))
    assert set(found) == wanted
    # a crash between Kafka's acknowledgement and the marker's deletion may publish an event again,
    # with the same id (consumers de-duplicate); two ids would be two contacts recorded
    assert all(len(ids) == 1 for ids in found.values()), {p: ids for p, ids in found.items() if len(ids) > 1}


def _all_routed(routing: str, headers: dict[str, str], petition_ids: list[str]) -> None:
    for pid in petition_ids:
        resp = requests.get(f"{routing}/v1/workorders/{pid}", headers=headers, timeout=10)
        assert resp.status_code == 200 and resp.json()["status"] == "assigned", (pid, resp.status_code)


def _grouped(url: str, writer: str) -> float:
    """Requests the service wrote in groups of more than one (its histogram's count of writes
    against the requests they carried)."""
    text = requests.get(f"{url}/metrics", timeout=5).text
    samples = {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        if family.name == "petitions_group_commit_size"
        for s in family.samples
        if s.labels.get("writer") == writer and "le" not in s.labels
    }
    return samples["petitions_group_commit_size_sum"] - samples["petitions_group_commit_size_count"]


@pytest.mark.timeout(600)
def test_garbage_into_every_topic(platform, county):
    prefix = platform.env["KAFKA_TOPIC_PREFIX"]
    stream = Stream(platform.processes["intake"].url, bodies(county, 150, seed=4)).start()
    producer = KafkaProducer(**kafka_client(), max_request_size=2_000_000)
    for topic in ("petitions.intake.v1", "petitions.routing.v1", "petitions.sla.v1"):
        for value in (
            b"\xff garbage",
            b"{}",
            b'{"specversion": "1.0", "id": "x", "source": "petitions/x", '
            b'"type": "petition.closed", "time": "2024-01-01T00:00:00Z", "data": {}}',
            b"x" * 900_000,
        ):
            producer.send(f"{prefix}{topic}", key=b"JZ20240101000001", value=value).get(timeout=10)
    producer.close()
    fault_over = time.monotonic()
    stream.join()
    _record("garbage, oversized, schema-invalid into every topic", stream, platform, fault_over)


@pytest.mark.timeout(900)
def test_two_instances_of_each_consumer_one_killed(platform, county):
    for name in ("routing", "sla", "stats"):
        platform.start(name, instance=f"{name}-2", extra_env=platform.extra_env)
    platform.wait_ready()
    stream = Stream(platform.processes["intake"].url, bodies(county, 200, seed=5)).start()
    progress(stream, 40)
    for name in ("routing", "sla", "stats"):
        platform.stop(f"{name}-2", kill=True)
    fault_over = time.monotonic()
    stream.join()
    _record("2 instances of each consumer, one killed", stream, platform, fault_over)
