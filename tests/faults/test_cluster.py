"""A three-broker Kafka cluster loses a broker, then its controller leader, while citizens keep submitting.

The module starts a cluster of its own (`deploy/local/stack.py --cluster`: three KRaft nodes, each a
broker and a controller, with the single broker's SASL users and ACLs) on free ports and in a folder of
its own, so the session's broker is never touched; the services use the session's FerretDB with
databases of their own. They run as they would on a cluster: every topic with three replicas and
`min.insync.replicas=2`, producers with `acks=all`, all three brokers in `KAFKA_BOOTSTRAP_SERVERS`.

Each scenario streams petitions at intake, kills one node with SIGKILL mid-stream, waits until the
cluster has fenced it, starts it again and waits until every partition has its three replicas in
sync, then reconciles: nothing lost, nothing counted twice, and no 5xx to any petition. The table is
printed and written to .local/faults-cluster.md (docs/reliability.md has a measured one).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from petition_common.config import Settings
from petition_common.topic_config import ALL_TOPICS, describe, spec_for
from petition_devtools.kafka_access import admin_client_config, admin_settings
from petition_devtools.namespace import database_prefix
from petition_devtools.processes import REPO, ServiceFleet
from tests.faults.support import Stream, bodies, progress, record
from tests.support import MONGO, STACK, eventually

NODES = (1, 2, 3)
RESULTS: list[dict] = []


def _free_port_block(size: int, first: int = 19192) -> int:
    """The first port of `size` consecutive free ones (a node uses two: broker and controller)."""
    for base in range(first, first + 2000, 10):
        if all(_free(p) for p in range(base, base + size)):
            return base
    raise RuntimeError("no free block of ports for the cluster")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


@dataclass
class Cluster:
    env: dict[str, str]  # stack.py's environment: the cluster's folder, ports and size
    bootstrap: str

    def stack(self, *args: str) -> None:
        subprocess.run([*STACK, *args], env=self.env, check=True, capture_output=True, timeout=300)

    def kill(self, node: int) -> None:
        self.stack("kill", f"kafka-{node}")

    def start(self, node: int) -> None:
        """Start a node again; returns once its log says it has started."""
        self.stack("start", f"kafka-{node}")

    def _admin(self) -> KafkaAdminClient:
        return KafkaAdminClient(
            **admin_client_config(self.bootstrap), client_id="faults-cluster", request_timeout_ms=5000
        )

    def _ask(self, question):  # type: ignore[no-untyped-def]
        """Ask a fresh admin client (a cached one may still point at a killed node); AssertionError
        on a broker error, so that `eventually` asks again."""
        try:
            admin = self._admin()
        except KafkaError as exc:
            raise AssertionError(f"no broker answered: {exc!r}") from exc
        try:
            return question(admin)
        except KafkaError as exc:
            raise AssertionError(f"broker error: {exc!r}") from exc
        finally:
            admin.close()

    def controller_leader(self) -> int:
        """The node leading the KRaft controller quorum (DescribeQuorum on __cluster_metadata)."""
        quorum = self._ask(lambda a: a.describe_metadata_quorum())
        leader = quorum["topics"][0]["partitions"][0]["leader_id"]
        assert leader in NODES, quorum
        return int(leader)

    def live_brokers(self) -> set[int]:
        brokers = self._ask(lambda a: a.describe_cluster())["brokers"]
        return {b["broker_id"] for b in brokers if not b.get("is_fenced")}

    def out_of_sync(self) -> list[str]:
        """Every partition of every topic whose in-sync replicas are fewer than its replicas."""

        def look(admin: KafkaAdminClient) -> list[str]:
            lagging = []
            for topic in admin.describe_topics():
                for p in topic["partitions"]:
                    if set(p["isr_nodes"]) != set(p["replica_nodes"]):
                        lagging.append(f"{topic['name']}-{p['partition_index']} isr={p['isr_nodes']}")
            return lagging

        return self._ask(look)

    def wait_in_sync(self, timeout_s: float = 180) -> float:
        """Wait until every partition has all its replicas in sync; returns the seconds it took."""
        started = time.monotonic()

        def in_sync() -> None:
            lagging = self.out_of_sync()
            assert not lagging, lagging

        eventually(in_sync, timeout_s=timeout_s, interval_s=1)
        return time.monotonic() - started


@pytest.fixture(scope="module")
def cluster(stack: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    shared = Path(os.environ.get("PETITIONS_LOCAL_DIR", REPO / ".local")).resolve()
    root = tmp_path_factory.mktemp("cluster")
    for installed in ("kafka", "bin"):  # the session's jars and FerretDB build, not fetched again
        (root / installed).symlink_to(shared / installed)
    base = _free_port_block(2 * len(NODES))
    env = {
        **os.environ,
        "PETITIONS_LOCAL_DIR": str(root),
        "KAFKA_CLUSTER": str(len(NODES)),
        "KAFKA_PORT": str(base),
        "KAFKA_CONTROLLER_PORT": str(base + 1),
        "STACK_TIMEOUT": "240",
    }
    bootstrap = subprocess.run([*STACK, "bootstrap"], env=env, check=True, capture_output=True, text=True).stdout
    found = Cluster(env, bootstrap.strip())
    # this module's clients (the services' users, the admin) sign in with the cluster's passwords
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PETITIONS_LOCAL_DIR", str(root))
        try:
            found.stack("up", "kafka")
            yield found
        finally:
            subprocess.run([*STACK, "down", "kafka"], env=env, check=False, capture_output=True)


@pytest.fixture
def fleet(cluster: Cluster, run_env: dict[str, str], unique_prefix: str, tmp_path: Path) -> Iterator[ServiceFleet]:
    """The services' fleet on the three-broker cluster (tests/faults/conftest.py starts the platform on it)."""
    env = {
        **run_env,
        "KAFKA_TOPIC_PREFIX": f"{unique_prefix}-",
        "MONGO_DB_PREFIX": database_prefix(unique_prefix),
        "KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap,
        "KAFKA_REPLICATION_FACTOR": "3",
        "KAFKA_MIN_INSYNC_REPLICAS": "2",
    }
    services = ServiceFleet(env=env, log_dir=tmp_path / "logs")
    yield services
    services.stop_all(kill=False)


def _settings(cluster: Cluster, fleet: ServiceFleet) -> Settings:
    return Settings(
        service="faults",
        kafka_bootstrap=cluster.bootstrap,
        mongo_uri=MONGO,
        topic_prefix=fleet.env["KAFKA_TOPIC_PREFIX"],
        replication_factor=3,
        min_insync_replicas=2,
        **admin_settings(),
    )


def _fence(cluster: Cluster, node: int, timeout_s: float = 60) -> float:
    """Wait until the cluster has fenced a killed node (its session expired); returns the seconds it took."""
    started = time.monotonic()

    def fenced() -> None:
        assert node not in cluster.live_brokers()

    eventually(fenced, timeout_s=timeout_s, interval_s=0.5)
    return time.monotonic() - started


def _new_leader(cluster: Cluster, old: int, timeout_s: float = 60) -> tuple[int, float]:
    """Wait until the controller quorum has a leader other than `old`; returns it and the seconds it took."""
    started = time.monotonic()

    def elected() -> int:
        leader = cluster.controller_leader()
        assert leader != old
        return leader

    leader = eventually(elected, timeout_s=timeout_s, interval_s=0.5)
    return leader, time.monotonic() - started


def _kill_and_restart(cluster: Cluster, node: int, stream: Stream) -> dict:
    """Kill -9 `node` mid-stream, restart it once it is fenced and the stream went on without it,
    and wait until every partition is back in sync; returns the fault's own figures."""
    progress(stream, 40)
    leader_before = cluster.controller_leader()
    cluster.kill(node)
    killed = time.monotonic()
    leader_after, elected_after = (
        _new_leader(cluster, node)
        if node == leader_before
        else (eventually(cluster.controller_leader, timeout_s=30), None)
    )
    fenced_after = _fence(cluster, node)
    progress(stream, 60)  # citizens go on submitting to two brokers
    cluster.start(node)
    restarted = time.monotonic()
    in_sync_after = cluster.wait_in_sync()
    return {
        "killed": f"node {node}",
        "controller leader": f"{leader_before} -> {leader_after}",
        "new leader after (s)": "-" if elected_after is None else round(elected_after, 1),
        "fenced after (s)": round(fenced_after, 1),
        "down (s)": round(restarted - killed, 1),
        "back in sync after restart (s)": round(in_sync_after, 1),
    }


def _check_topics(cluster: Cluster, settings: Settings) -> None:
    """Every platform topic exists with three replicas, two of them required in sync."""
    specs = [spec_for(settings, name) for name in ALL_TOPICS]
    states = cluster._ask(lambda admin: describe(admin, specs))
    for spec in specs:
        state = states[spec.name]
        assert state.replication_factors == {3}, state
        assert state.configs["min.insync.replicas"] == "2", state


def _run(name: str, cluster: Cluster, platform: ServiceFleet, county, node_of, seed: int) -> dict:
    settings = _settings(cluster, platform)
    _check_topics(cluster, settings)
    cluster.wait_in_sync()
    # more petitions than the fault lasts: the stream runs through it and is ended after it
    stream = Stream(platform.processes["intake"].url, bodies(county, 4000, seed=seed)).start()
    node = node_of(cluster)
    timings = _kill_and_restart(cluster, node, stream)
    fault_over = time.monotonic()
    stream.finish_after(100)
    stream.join()
    extra = {
        "5xx": stream.server_errors,
        "slowest 201 (s)": round(stream.slowest_s, 1),
        **timings,
    }
    row = record(RESULTS, REPO / ".local" / "faults-cluster.md", name, stream, settings, platform, fault_over, extra)
    assert stream.server_errors == 0 and not stream.refusals, stream.refusals
    assert len(stream.accepted) == stream.submitted and stream.thread is not None and not stream.thread.is_alive()
    assert row["lost"] == 0 and row["duplicated in stats"] == 0
    return row


def _a_follower(cluster: Cluster) -> int:
    leader = cluster.controller_leader()
    return next(n for n in NODES if n != leader)


@pytest.mark.timeout(900)
def test_a_broker_killed_and_restarted_mid_stream(cluster, platform, county):
    row = _run("kill -9 a broker (not the controller leader), restart", cluster, platform, county, _a_follower, 11)
    leader_before, leader_after = row["controller leader"].split(" -> ")
    assert leader_before == leader_after  # the quorum kept its leader


@pytest.mark.timeout(900)
def test_the_controller_leader_killed_and_restarted_mid_stream(cluster, platform, county):
    row = _run("kill -9 the controller leader, restart", cluster, platform, county, Cluster.controller_leader, 12)
    leader_before, leader_after = row["controller leader"].split(" -> ")
    assert leader_before != leader_after and row["new leader after (s)"] != "-"
