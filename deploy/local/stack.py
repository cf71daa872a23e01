#!/usr/bin/env python3
"""Install, start and stop the local infrastructure: Apache Kafka (one node, or a cluster of three),
FerretDB and Keycloak.

These machines have no Docker engine, so the broker and the MongoDB-protocol server run as plain
processes on 127.0.0.1. Everything lives under one git-ignored folder (default `.local/` at the
repository root, override with PETITIONS_LOCAL_DIR); downloads and builds go through Maven's and
Go's own user-level caches, so a fresh clone on a warm machine installs in seconds.

    python deploy/local/stack.py install        # fetch Kafka jars, build FerretDB (idempotent)
    python deploy/local/stack.py up             # install, start both, wait until ready
    python deploy/local/stack.py down           # stop both (SIGTERM, then SIGKILL)
    python deploy/local/stack.py status
    python deploy/local/stack.py start|stop|kill NAME   # NAME = kafka | ferretdb | keycloak (fault tests)
    python deploy/local/stack.py bootstrap      # the brokers' addresses, for KAFKA_BOOTSTRAP_SERVERS

Ports come from KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), MONGO_PORT (27017), KEYCLOAK_PORT
(8180) and KEYCLOAK_MANAGEMENT_PORT (9180, its health endpoints). Keycloak (the staff identity
provider, deploy/local/keycloak.py) runs on Java 21+, found apart from the broker's Java 17.

`--cluster` (or KAFKA_CLUSTER=3) runs three KRaft nodes instead of one, each a broker and a controller,
named kafka-1..3 (NAME may be one of them; `kafka` means all three), node i on KAFKA_PORT + 2(i-1)
and KAFKA_CONTROLLER_PORT + 2(i-1) with its own data folder and log; internal topics then get three
replicas and min.insync.replicas=2. The same SASL users and ACLs as on one node.
Standard library only: it runs before the project's virtualenv exists.

Kafka authenticates every client (SASL_PLAINTEXT) and authorizes with ACLs: `admin`, the super user,
signs in with PLAIN against this file's broker configuration; the services and `reader` with
SCRAM-SHA-256, as users that petition_devtools.kafka_access creates with their ACLs. All passwords are
generated once into run/kafka-credentials.json (mode 600).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import keycloak
from maven import mvn

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
FERRETDB_VERSION = "v1.24.2"
# our two patches of FerretDB v1 (see install_ferretdb and docs/ferretdb.md); the name changes with them
FERRETDB_PATCH = "idindex-untracked"
ID_COLUMN_ORIGINAL = "IDColumn = DefaultColumn + \"->'$._id'\""
ID_COLUMN_PATCHED = 'IDColumn = DefaultColumn + `->"_id"`'
# resource.Track/Untrack: leak detection that records a stack trace into a pprof profile and sets
# a finalizer for every cursor and transaction; debug builds keep it
TRACK_FUNCS = ("func Track(obj any, token *Token) {\n", "func Untrack(obj any, token *Token) {\n")
TRACK_GUARD = "\tif !debugbuild.Enabled {\n\t\treturn\n\t}\n"


def kafka_version() -> str:
    """The one place the Kafka version is written down is the pom (kept equal to docker-compose)."""
    text = (HERE / "pom.xml").read_text()
    return text.split("<kafka.version>")[1].split("</kafka.version>")[0].strip()


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def kafka_libs(self) -> Path:
        return self.root / "kafka" / kafka_version() / "libs"

    def kafka_data(self, node: str) -> Path:
        return self.root / "data" / node

    @property
    def ferretdb_bin(self) -> Path:
        return self.root / "bin" / f"ferretdb-{FERRETDB_VERSION}-{FERRETDB_PATCH}"

    @property
    def ferretdb_data(self) -> Path:
        return self.root / "data" / "ferretdb"


def layout() -> Layout:
    return Layout(Path(os.environ.get("PETITIONS_LOCAL_DIR", REPO / ".local")).resolve())


def port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def cluster_size() -> int:
    """How many Kafka nodes: KAFKA_CLUSTER (1, the default, or 3)."""
    size = int(os.environ.get("KAFKA_CLUSTER") or 1)
    if size not in (1, 3):
        sys.exit(f"[stack] KAFKA_CLUSTER must be 1 or 3, not {size}")
    return size


def say(msg: str) -> None:
    print(f"[stack] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# install


def install_kafka(lay: Layout) -> None:
    marker = lay.kafka_libs / ".complete"
    if marker.exists():
        return
    if shutil.which("mvn") is None or shutil.which("java") is None:
        sys.exit("[stack] Kafka needs Java 17 and Maven (apt-get install openjdk-17-jdk-headless maven)")
    say(f"fetching Apache Kafka {kafka_version()} jars from Maven Central (cached in ~/.m2) ...")
    lay.kafka_libs.mkdir(parents=True, exist_ok=True)
    result = mvn("dependency:copy-dependencies", f"-DoutputDirectory={lay.kafka_libs}")
    if result.returncode != 0:
        sys.exit(f"[stack] mvn failed:\n{result.stdout}{result.stderr}")
    marker.touch()


def install_ferretdb(lay: Layout) -> None:
    if lay.ferretdb_bin.exists():
        return
    if shutil.which("go") is None:
        sys.exit("[stack] FerretDB is built from source and needs Go (apt-get install golang)")
    say(f"building FerretDB {FERRETDB_VERSION} with our two patches (Go's caches make re-builds fast) ...")
    # `go install ...@v1.24.2` builds a binary that panics at start-up: the module as published has
    # an empty build/version/version.txt (it is generated in FerretDB's own release pipeline). So we
    # download the very same module, write the version file, and build its cmd/ferretdb.
    mod = subprocess.run(
        ["go", "mod", "download", "-json", f"{FERRETDB_MODULE}@{FERRETDB_VERSION}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    src_dir = Path(mod.split('"Dir": "')[1].split('"')[0])
    build_dir = lay.root / "build" / f"ferretdb-{FERRETDB_VERSION}"
    shutil.rmtree(build_dir, ignore_errors=True)
    shutil.copytree(src_dir, build_dir)
    for path in build_dir.rglob("*"):
        path.chmod(path.stat().st_mode | 0o200)
    (build_dir / "build" / "version" / "version.txt").write_text(FERRETDB_VERSION + "\n")
    # FerretDB v1.24's SQLite backend creates the unique _id index on `sjson->"_id"` but filters on
    # `sjson->'$._id'`; SQLite only uses an expression index for the identical expression, so every
    # lookup, update and delete by _id scanned the collection (60-125 ms at 20,000 documents instead
    # of 0.5 ms). Writing the filter as the index is written makes SQLite use the index.
    metadata = build_dir / "internal" / "backends" / "sqlite" / "metadata" / "metadata.go"
    source = metadata.read_text()
    if ID_COLUMN_ORIGINAL not in source:
        sys.exit(f"[stack] {metadata}: the line to patch is not there; FerretDB changed?")
    metadata.write_text(source.replace(ID_COLUMN_ORIGINAL, ID_COLUMN_PATCHED))
    # Every command opens a transaction or a cursor, and FerretDB tracks each one's lifetime for its
    # leak detection: a stack trace recorded into a pprof profile and a finalizer. That was 10 % of
    # its CPU in the benchmark's profile (bench/RESULTS.md); release builds skip it here, debug
    # builds (-tags ferretdb_debug) keep it.
    resource = build_dir / "internal" / "util" / "resource" / "resource.go"
    source = resource.read_text()
    for func in TRACK_FUNCS:
        if func not in source:
            sys.exit(f"[stack] {resource}: {func.strip()} is not there; FerretDB changed?")
        source = source.replace(func, func + TRACK_GUARD)
    resource.write_text(source)
    lay.ferretdb_bin.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["go", "build", "-o", str(lay.ferretdb_bin), "./cmd/ferretdb"], cwd=build_dir, check=True)
    shutil.rmtree(build_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# processes


@dataclass(frozen=True)
class Component:
    name: str
    port: int
    # Kafka nodes only: the KRaft node id and the controller listener's port
    node_id: int = 0
    controller_port: int = 0

    @property
    def is_kafka(self) -> bool:
        return self.node_id > 0

    def pidfile(self, lay: Layout) -> Path:
        return lay.run / f"{self.name}.pid"

    def logfile(self, lay: Layout) -> Path:
        return lay.logs / f"{self.name}.log"


def kafka_nodes() -> list[Component]:
    """One node called `kafka`, or kafka-1..3 on every other port from KAFKA_PORT and KAFKA_CONTROLLER_PORT."""
    kport, cport, size = port("KAFKA_PORT", 9092), port("KAFKA_CONTROLLER_PORT", 9093), cluster_size()
    if size == 1:
        return [Component("kafka", kport, node_id=1, controller_port=cport)]
    return [
        Component(f"kafka-{i}", kport + 2 * (i - 1), node_id=i, controller_port=cport + 2 * (i - 1))
        for i in range(1, size + 1)
    ]


def components() -> dict[str, Component]:
    return {
        **{node.name: node for node in kafka_nodes()},
        "ferretdb": Component("ferretdb", port("MONGO_PORT", 27017)),
        "keycloak": Component("keycloak", port("KEYCLOAK_PORT", 8180)),
    }


def bootstrap_servers() -> str:
    """What clients put in KAFKA_BOOTSTRAP_SERVERS: every broker, so that any one of them may be down."""
    return ",".join(f"127.0.0.1:{node.port}" for node in kafka_nodes())


def expand(name: str | None) -> list[str]:
    """The components a command line's NAME means (`kafka` on a cluster: all its nodes)."""
    if name is None:
        return ["ferretdb", *(node.name for node in kafka_nodes()), "keycloak"]
    if name == "kafka":
        return [node.name for node in kafka_nodes()]
    return [name]


def read_pid(comp: Component, lay: Layout) -> int | None:
    try:
        pid = int(comp.pidfile(lay).read_text())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def port_open(p: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", p)) == 0


KAFKA_USERS = ("admin", "intake", "routing", "sla", "stats", "reader")


def kafka_credentials(lay: Layout) -> dict[str, str]:
    """Every Kafka user's password, generated on first use and kept in run/ (not readable by others)."""
    path = lay.run / "kafka-credentials.json"
    known = json.loads(path.read_text()) if path.exists() else {}
    if set(KAFKA_USERS) - set(known):
        known = {user: known.get(user) or secrets.token_urlsafe(18) for user in KAFKA_USERS}
        lay.run.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps(known, indent=1))
    return known


def kafka_security(admin_password: str) -> list[str]:
    """SASL on both listeners, and ACLs: nobody may do anything an ACL does not allow, but `admin`."""
    plain = (
        'org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" '
        f'password="{admin_password}" user_admin="{admin_password}";'
    )
    return [
        "listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms=SCRAM-SHA-256,PLAIN",
        "sasl.mechanism.inter.broker.protocol=PLAIN",
        "sasl.mechanism.controller.protocol=PLAIN",
        f"listener.name.sasl_plaintext.plain.sasl.jaas.config={plain}",
        "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config="
        "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        "listener.name.controller.sasl.enabled.mechanisms=PLAIN",
        f"listener.name.controller.plain.sasl.jaas.config={plain}",
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users=User:admin",
        "allow.everyone.if.no.acl.found=false",
    ]


def kafka_cluster_id(lay: Layout) -> str:
    """The cluster's id, made once: every node's data folder is formatted with it (a node formatted
    with another id would not join)."""
    path = lay.run / "kafka-cluster-id"
    if not path.exists():
        lay.run.mkdir(parents=True, exist_ok=True)
        path.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
    return path.read_text().strip()


def kafka_command(lay: Layout, node: Component) -> list[str]:
    cfg = lay.run / f"{node.name}-server.properties"
    data = lay.kafka_data(node.name)
    nodes = kafka_nodes()
    voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in nodes)
    # internal topics: three replicas, two of them in sync, on a cluster; one on one node
    replicas, min_isr = (3, 2) if len(nodes) >= 3 else (1, 1)
    lay.run.mkdir(parents=True, exist_ok=True)
    admin_password = kafka_credentials(lay)["admin"]
    cfg.touch(mode=0o600)  # it holds the admin password
    cfg.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                f"node.id={node.node_id}",
                f"controller.quorum.voters={voters}",
                f"listeners=SASL_PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
                f"advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{node.port}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=SASL_PLAINTEXT",
                *kafka_security(admin_password),
                f"log.dirs={data}",
                # services create their topics explicitly with the partition counts they need
                "auto.create.topics.enable=false",
                "num.partitions=4",
                f"default.replication.factor={replicas}",
                f"offsets.topic.replication.factor={replicas}",
                "offsets.topic.num.partitions=8",
                f"transaction.state.log.replication.factor={replicas}",
                f"transaction.state.log.min.isr={min_isr}",
                "transaction.state.log.num.partitions=4",
                f"share.coordinator.state.topic.replication.factor={replicas}",
                f"share.coordinator.state.topic.min.isr={min_isr}",
                "group.initial.rebalance.delay.ms=0",
                # Every platform topic states its own retention, replicas and codec
                # (libs/petition_common/topic_config.py). These defaults only reach topics made
                # outside it (the benchmark's, some tests'), and keep their history too rather than
                # delete it after Kafka's 7 days.
                "log.retention.ms=-1",
                "log.retention.bytes=-1",
                f"min.insync.replicas={min_isr}",
                "unclean.leader.election.enable=false",
                "compression.type=producer",
                "",
            ]
        )
    )
    if not (data / "meta.properties").exists():
        data.mkdir(parents=True, exist_ok=True)
        cluster_id = kafka_cluster_id(lay)
        subprocess.run(
            [
                "java",
                "-cp",
                f"{lay.kafka_libs}/*",
                "kafka.tools.StorageTool",
                "format",
                # one token: a random id may start with "-", which the parser would take for an option
                f"--cluster-id={cluster_id}",
                "-c",
                str(cfg),
                "--ignore-formatted",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    # three nodes share the machine: each gets less
    heap = os.environ.get("KAFKA_HEAP_OPTS", "-Xms256m -Xmx768m" if len(nodes) == 1 else "-Xms128m -Xmx512m")
    return [
        "java",
        *heap.split(),
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={HERE / 'kafka-log4j2.properties'}",
        "-cp",
        f"{lay.kafka_libs}/*",
        "kafka.Kafka",
        str(cfg),
    ]


def ferretdb_command(lay: Layout) -> list[str]:
    lay.ferretdb_data.mkdir(parents=True, exist_ok=True)
    return [
        str(lay.ferretdb_bin),
        "--handler=sqlite",
        # WAL with synchronous=NORMAL survives a killed process (what the fault tests do); only a
        # power loss can drop the last commits. FULL costs ~10 ms an fsync on every write.
        f"--sqlite-url=file:{lay.ferretdb_data}/?_pragma=synchronous(normal)",
        f"--state-dir={lay.run}",
        f"--listen-addr=127.0.0.1:{port('MONGO_PORT', 27017)}",
        f"--debug-addr=127.0.0.1:{port('FERRETDB_DEBUG_PORT', 8088)}",
        "--telemetry=disable",
        "--log-level=warn",
    ]


def ready(comp: Component, lay: Layout) -> bool:
    if not port_open(comp.port):
        return False
    if comp.is_kafka:
        # the port opens before the broker has joined its own quorum; this line comes after
        log = comp.logfile(lay)
        return log.exists() and "Kafka Server started" in log.read_text(errors="replace")
    if comp.name == "keycloak":
        return keycloak.ready(port("KEYCLOAK_MANAGEMENT_PORT", 9180))
    return True


def start(names: list[str], lay: Layout, timeout: float) -> None:
    """Launch every one of `names` that is not running, then wait until all are ready: a cluster's
    nodes are launched together, since none is ready before a majority of controllers is up."""
    launched = [(name, proc) for name in names if (proc := launch(name, lay)) is not None]
    deadline = time.monotonic() + timeout
    for name, proc in launched:
        comp, log = components()[name], components()[name].logfile(lay)
        while not ready(comp, lay):
            if proc.poll() is not None:
                sys.exit(f"[stack] {name} exited with code {proc.returncode}; see {log}")
            if time.monotonic() > deadline:
                sys.exit(f"[stack] {name} not ready after {timeout:.0f}s; see {log}")
            time.sleep(0.2)
        say(f"{name} ready")
        if name == "keycloak":
            keycloak.ensure_realm(f"http://127.0.0.1:{comp.port}", keycloak.admin_password(lay.run))


def launch(name: str, lay: Layout) -> subprocess.Popen | None:
    """Start one component's process (None if it is running already)."""
    comp = components()[name]
    if read_pid(comp, lay) is not None and ready(comp, lay):
        say(f"{name} already running on 127.0.0.1:{comp.port}")
        return None
    if port_open(comp.port):
        sys.exit(f"[stack] port {comp.port} for {name} is taken by another process; set the port variable")
    lay.logs.mkdir(parents=True, exist_ok=True)
    lay.run.mkdir(parents=True, exist_ok=True)
    log = comp.logfile(lay)
    env = dict(os.environ)
    if name == "keycloak":
        cmd, env = keycloak.command(lay.root, lay.run, comp.port, port("KEYCLOAK_MANAGEMENT_PORT", 9180))
    else:
        cmd = kafka_command(lay, comp) if comp.is_kafka else ferretdb_command(lay)
    if name == "ferretdb":
        # FerretDB's live heap is a few MB, so Go's default (GOGC=100) collected ~26 times a second
        # under the benchmark's load: 11 % of its CPU. Ten times the live heap between collections
        # is still only tens of MB.
        env["GOGC"] = os.environ.get("FERRETDB_GOGC", "1000")
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    comp.pidfile(lay).write_text(str(proc.pid))
    say(f"starting {name} on 127.0.0.1:{comp.port} (log: {log})")
    return proc


def stop(names: list[str], lay: Layout, kill: bool = False, timeout: float = 30) -> None:
    """Signal every one of `names` at once, then wait: a cluster's nodes stop together (the last one
    alone would wait for a controller quorum that is gone)."""
    running = {}
    for name in names:
        comp = components()[name]
        pid = read_pid(comp, lay)
        if pid is None:
            comp.pidfile(lay).unlink(missing_ok=True)
            continue
        os.killpg(pid, signal.SIGKILL if kill else signal.SIGTERM)
        running[name] = (comp, pid)
    deadline = time.monotonic() + timeout
    for name, (comp, pid) in running.items():
        while read_pid(comp, lay) is not None and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if read_pid(comp, lay) is not None:
            say(f"{name} did not stop within {timeout:.0f}s; killing it")
            os.killpg(pid, signal.SIGKILL)
            time.sleep(0.5)
        _reap(pid)
        comp.pidfile(lay).unlink(missing_ok=True)
        say(f"{name} {'killed' if kill else 'stopped'}")


def _reap(pid: int) -> None:
    """Collect our own child's exit status so that it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["install", "up", "down", "status", "start", "stop", "kill", "bootstrap"])
    parser.add_argument("name", nargs="?")
    parser.add_argument("--cluster", action="store_true", help="three Kafka nodes (the same as KAFKA_CLUSTER=3)")
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("STACK_TIMEOUT", 120)))
    args = parser.parse_args(argv)
    if args.cluster:
        os.environ["KAFKA_CLUSTER"] = "3"
    if args.name is not None and args.name != "kafka" and args.name not in components():
        parser.error(f"NAME must be one of kafka, {', '.join(components())}")
    lay = layout()
    names = expand(args.name)
    if args.command == "bootstrap":
        print(bootstrap_servers())
        return
    if args.command in ("install", "up", "start"):
        install_kafka(lay)
        install_ferretdb(lay)
        if args.command == "install" or "keycloak" in names:  # a broker-only start needs no provider
            keycloak.install(lay.root)
    if args.command in ("up", "start"):
        start(names, lay, args.timeout)
    elif args.command in ("down", "stop", "kill"):
        stop(names, lay, kill=args.command == "kill")
    elif args.command == "status":
        for name, comp in components().items():
            pid = read_pid(comp, lay)
            state = "ready" if pid and ready(comp, lay) else ("starting" if pid else "stopped")
            print(f"{name}\t{state}\t127.0.0.1:{comp.port}\tpid={pid or '-'}\tlog={comp.logfile(lay)}")


if __name__ == "__main__":
    main()
