#!/usr/bin/env python3
"""Install, start and stop the local infrastructure: one Apache Kafka node, FerretDB and Keycloak.

These machines have no Docker engine, so the broker and the MongoDB-protocol server run as plain
processes on 127.0.0.1. Everything lives under one git-ignored folder (default `.local/` at the
repository root, override with PETITIONS_LOCAL_DIR); downloads and builds go through Maven's and
Go's own user-level caches, so a fresh clone on a warm machine installs in seconds.

    python deploy/local/stack.py install        # fetch Kafka jars, build FerretDB (idempotent)
    python deploy/local/stack.py up             # install, start both, wait until ready
    python deploy/local/stack.py down           # stop both (SIGTERM, then SIGKILL)
    python deploy/local/stack.py status
    python deploy/local/stack.py start|stop|kill NAME   # NAME = kafka | ferretdb | keycloak

Ports come from KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), MONGO_PORT (27017), KEYCLOAK_PORT
(8180) and KEYCLOAK_MANAGEMENT_PORT (9180, its health endpoints). Keycloak (the staff identity
provider, deploy/local/keycloak.py) runs on Java 21+, found apart from the broker's Java 17.
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

    @property
    def kafka_data(self) -> Path:
        return self.root / "data" / "kafka"

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
    result = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-Dstyle.color=never",
            "-f",
            str(HERE / "pom.xml"),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={lay.kafka_libs}",
        ],
        capture_output=True,
        text=True,
    )
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

    def pidfile(self, lay: Layout) -> Path:
        return lay.run / f"{self.name}.pid"

    def logfile(self, lay: Layout) -> Path:
        return lay.logs / f"{self.name}.log"


def components() -> dict[str, Component]:
    return {
        "kafka": Component("kafka", port("KAFKA_PORT", 9092)),
        "ferretdb": Component("ferretdb", port("MONGO_PORT", 27017)),
        "keycloak": Component("keycloak", port("KEYCLOAK_PORT", 8180)),
    }


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


def kafka_command(lay: Layout) -> list[str]:
    cfg = lay.run / "kafka-server.properties"
    data = lay.kafka_data
    kport = port("KAFKA_PORT", 9092)
    cport = port("KAFKA_CONTROLLER_PORT", 9093)
    lay.run.mkdir(parents=True, exist_ok=True)
    admin_password = kafka_credentials(lay)["admin"]
    cfg.touch(mode=0o600)  # it holds the admin password
    cfg.write_text(
        "\n".join(
            [
                "process.roles=broker,controller",
                "node.id=1",
                f"controller.quorum.voters=1@127.0.0.1:{cport}",
                f"listeners=SASL_PLAINTEXT://127.0.0.1:{kport},CONTROLLER://127.0.0.1:{cport}",
                f"advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{kport}",
                "controller.listener.names=CONTROLLER",
                "inter.broker.listener.name=SASL_PLAINTEXT",
                *kafka_security(admin_password),
                f"log.dirs={data}",
                # services create their topics explicitly with the partition counts they need
                "auto.create.topics.enable=false",
                "num.partitions=4",
                "offsets.topic.replication.factor=1",
                "offsets.topic.num.partitions=8",
                "transaction.state.log.replication.factor=1",
                "transaction.state.log.min.isr=1",
                "transaction.state.log.num.partitions=4",
                "share.coordinator.state.topic.replication.factor=1",
                "share.coordinator.state.topic.min.isr=1",
                "group.initial.rebalance.delay.ms=0",
                # Every platform topic states its own retention, replicas and codec
                # (libs/petition_common/topic_config.py). These defaults only reach topics made
                # outside it (the benchmark's, some tests'), and keep their history too rather than
                # delete it after Kafka's 7 days.
                "log.retention.ms=-1",
                "log.retention.bytes=-1",
                "min.insync.replicas=1",
                "unclean.leader.election.enable=false",
                "compression.type=producer",
                "",
            ]
        )
    )
    if not (data / "meta.properties").exists():
        data.mkdir(parents=True, exist_ok=True)
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
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
    heap = os.environ.get("KAFKA_HEAP_OPTS", "-Xms256m -Xmx768m")
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
    if comp.name == "kafka":
        # the port opens before the broker has joined its own quorum; this line comes after
        log = comp.logfile(lay)
        return log.exists() and "Kafka Server started" in log.read_text(errors="replace")
    if comp.name == "keycloak":
        return keycloak.ready(port("KEYCLOAK_MANAGEMENT_PORT", 9180))
    return True


def start(name: str, lay: Layout, timeout: float) -> None:
    comp = components()[name]
    if read_pid(comp, lay) is not None and ready(comp, lay):
        say(f"{name} already running on 127.0.0.1:{comp.port}")
        return
    if port_open(comp.port):
        sys.exit(f"[stack] port {comp.port} for {name} is taken by another process; set the port variable")
    lay.logs.mkdir(parents=True, exist_ok=True)
    lay.run.mkdir(parents=True, exist_ok=True)
    log = comp.logfile(lay)
    env = dict(os.environ)
    if name == "keycloak":
        cmd, env = keycloak.command(lay.root, lay.run, comp.port, port("KEYCLOAK_MANAGEMENT_PORT", 9180))
    else:
        cmd = kafka_command(lay) if name == "kafka" else ferretdb_command(lay)
    if name == "ferretdb":
        # FerretDB's live heap is a few MB, so Go's default (GOGC=100) collected ~26 times a second
        # under the benchmark's load: 11 % of its CPU. Ten times the live heap between collections
        # is still only tens of MB.
        env["GOGC"] = os.environ.get("FERRETDB_GOGC", "1000")
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    comp.pidfile(lay).write_text(str(proc.pid))
    say(f"starting {name} on 127.0.0.1:{comp.port} (log: {log})")
    deadline = time.monotonic() + timeout
    while not ready(comp, lay):
        if proc.poll() is not None:
            sys.exit(f"[stack] {name} exited with code {proc.returncode}; see {log}")
        if time.monotonic() > deadline:
            sys.exit(f"[stack] {name} not ready after {timeout:.0f}s; see {log}")
        time.sleep(0.2)
    say(f"{name} ready in {time.monotonic() - deadline + timeout:.1f}s")
    if name == "keycloak":
        keycloak.ensure_realm(f"http://127.0.0.1:{comp.port}", keycloak.admin_password(lay.run))


def stop(name: str, lay: Layout, kill: bool = False, timeout: float = 30) -> None:
    comp = components()[name]
    pid = read_pid(comp, lay)
    if pid is None:
        comp.pidfile(lay).unlink(missing_ok=True)
        return
    os.killpg(pid, signal.SIGKILL if kill else signal.SIGTERM)
    deadline = time.monotonic() + timeout
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
    parser.add_argument("command", choices=["install", "up", "down", "status", "start", "stop", "kill"])
    parser.add_argument("name", nargs="?", choices=sorted(components()))
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("STACK_TIMEOUT", 120)))
    args = parser.parse_args(argv)
    lay = layout()
    names = [args.name] if args.name else ["ferretdb", "kafka", "keycloak"]
    if args.command in ("install", "up", "start"):
        install_kafka(lay)
        install_ferretdb(lay)
        keycloak.install(lay.root)
    if args.command in ("up", "start"):
        for name in names:
            start(name, lay, args.timeout)
    elif args.command in ("down", "stop", "kill"):
        for name in names:
            stop(name, lay, kill=args.command == "kill")
    elif args.command == "status":
        for name, comp in components().items():
            pid = read_pid(comp, lay)
            state = "ready" if pid and ready(comp, lay) else ("starting" if pid else "stopped")
            print(f"{name}\t{state}\t127.0.0.1:{comp.port}\tpid={pid or '-'}\tlog={comp.logfile(lay)}")


if __name__ == "__main__":
    main()
