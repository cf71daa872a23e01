"""Start the services as real gunicorn processes: for `bin/run`, the end-to-end tests and the benchmark.

Each service instance is one `gunicorn` process on 127.0.0.1 with its own port and log file.
`ServiceFleet` starts them, waits for /readyz, and stops them with SIGTERM (then SIGKILL).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from petition_devtools import kafka_access

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "routing", "sla", "stats")
DEFAULT_PORTS = {"intake": 8081, "routing": 8082, "sla": 8083, "stats": 8084, "web": 8085}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServiceProcess:
    name: str
    instance: str
    port: int
    log_path: Path
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None


@dataclass
class ServiceFleet:
    env: dict[str, str]
    log_dir: Path
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    _provisioned: bool = False

    def start(
        self,
        service: str,
        instance: str | None = None,
        port: int | None = None,
        extra_env: dict[str, str] | None = None,
    ) -> ServiceProcess:
        instance = instance or service
        port = port or free_port()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{instance}.log"
        # development unless told otherwise: bin/run, the tests and the benchmark use development credentials
        base = {"PETITIONS_ENV": "development", **os.environ, **self.env}
        self._provision(base)
        env = {
            **base,
            # each service is its own Kafka user, allowed by ACLs to write only its own topic
            **kafka_access.client_env(service),
            **(extra_env or {}),
            f"{service.upper()}_PORT": str(port),
        }
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "--config",
                    str(REPO / "deploy" / "gunicorn.conf.py"),
                    "--bind",
                    f"127.0.0.1:{port}",
                    f"services.{service}.app:create_app()",
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        sp = ServiceProcess(service, instance, port, log_path, proc)
        self.processes[instance] = sp
        return sp

    def _provision(self, env: dict[str, str]) -> None:
        """The Kafka users and this fleet's ACLs (its topic prefix), once, before its first service."""
        if not self._provisioned:
            bootstrap = env.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
            kafka_access.provision(bootstrap, env.get("KAFKA_TOPIC_PREFIX", ""))
            self._provisioned = True

    def start_platform(self, with_web: bool = True) -> dict[str, str]:
        """The four services, then the web pages pointed at them; name -> URL, once all are ready."""
        for name in SERVICES:
            self.start(name)
        self.wait_ready(list(SERVICES), timeout_s=120)
        urls = {name: self.processes[name].url for name in SERVICES}
        if with_web:
            self.start("web", extra_env={f"WEB_{n.upper()}_URL": u for n, u in urls.items()})
            self.wait_ready(["web"], timeout_s=60)
            urls["web"] = self.processes["web"].url
        return urls

    def wait_ready(self, instances: list[str] | None = None, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        for name in instances or list(self.processes):
            sp = self.processes[name]
            while True:
                if not sp.alive():
                    raise RuntimeError(f"{name} exited with {sp.proc.returncode}; see {sp.log_path}")
                if ready(sp.url):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not ready after {timeout_s:.0f}s; see {sp.log_path}")
                time.sleep(0.2)

    def stop(self, instance: str, kill: bool = False, timeout_s: float = 30) -> int | None:
        """SIGTERM (or SIGKILL) and wait; returns the exit code."""
        sp = self.processes.pop(instance)
        _signal(sp, kill)
        return _reap(sp, time.monotonic() + timeout_s)

    def stop_all(self, kill: bool = False, timeout_s: float = 30) -> dict[str, int | None]:
        """Stop every instance at once: all are signalled, then each is waited for, so a fleet takes as
        long to stop as its slowest instance (a graceful stop is 1-2 s each), not the sum."""
        stopping = [self.processes.pop(name) for name in list(self.processes)]
        for sp in stopping:
            _signal(sp, kill)
        deadline = time.monotonic() + timeout_s
        return {sp.instance: _reap(sp, deadline) for sp in stopping}


def _signal(sp: ServiceProcess, kill: bool) -> None:
    if sp.alive():
        with contextlib.suppress(ProcessLookupError):  # it exited just now
            os.killpg(sp.proc.pid, signal.SIGKILL if kill else signal.SIGTERM)


def _reap(sp: ServiceProcess, deadline: float) -> int | None:
    """Wait for a signalled instance until `deadline`; past it, SIGKILL. Returns the exit code."""
    try:
        sp.proc.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sp.proc.pid, signal.SIGKILL)
        sp.proc.wait(10)
    return sp.proc.returncode


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False
