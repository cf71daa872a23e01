"""One benchmark platform: the services as real gunicorn processes in their own namespace.

Each `Platform` has fresh topics and databases (a random prefix), the generated county's grid
registry and staff tokens, and optionally a fake clock file shared by intake, routing and sla (the
year replay moves simulated time by rewriting it). It also answers the questions the stages ask of
the running system: consumer-group lag, Prometheus counters, and resident memory.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families
from pymongo import MongoClient

from countysim import County
from petition_common import topics
from petition_devtools.kafka_access import admin_client_config
from petition_devtools.namespace import drop_namespace
from petition_devtools.processes import ServiceFleet, ServiceProcess
from petition_devtools.procstats import cpu_seconds, rss_kib, stack_pids
from petition_devtools.tokens import county_tokens, token_for, write_tokens_file

# the topics each consumer group reads (services/*/app.py)
CONSUMES: Mapping[str, tuple[str, ...]] = {
    "intake": (topics.ROUTING,),
    "routing": (topics.INTAKE,),
    "sla": (topics.INTAKE, topics.ROUTING),
    "stats": (topics.INTAKE, topics.ROUTING, topics.SLA),
}
_COMMANDS = re.compile(r'^ferretdb_client_requests_total\{command="([^"]+)"[^}]*\} ([0-9.e+]+)$', re.M)
_CONSUMED = re.compile(r"^petitions_consumed_total\{([^}]*)\} ([0-9.e+]+)$", re.M)
_LAST_SCAN = re.compile(r"^petitions_sla_last_scan_timestamp_seconds ([0-9.e+]+)$", re.M)


@dataclass
class Platform:
    county: County
    root: Path
    kafka: str = "127.0.0.1:9092"
    mongo: str = "mongodb://127.0.0.1:27017"
    clock_file: Path | None = None
    ferretdb_debug: str | None = "http://127.0.0.1:8088"  # FerretDB's debug address, for its command counts
    extra_env: Mapping[str, str] = field(default_factory=dict)
    prefix: str = field(default_factory=lambda: f"b{uuid.uuid4().hex[:8]}")
    fleet: ServiceFleet = field(init=False)
    _local: threading.local = field(init=False, default_factory=threading.local)
    _kafka_clients: tuple[KafkaAdminClient, KafkaConsumer] | None = field(init=False, default=None)
    _mongo: MongoClient | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tokens = write_tokens_file(self.root / "tokens.yaml", county_tokens(self.county))
        self.dispatcher = next(s for s in self.county.staff if s.role == "county_dispatcher")
        self.staff_headers = {"Authorization": f"Bearer {token_for(self.dispatcher.staff_id)}"}
        env = {
            "KAFKA_TOPIC_PREFIX": f"{self.prefix}-",
            "MONGO_DB_PREFIX": f"{self.prefix}_",
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
            "MONGO_URI": self.mongo,
            "STAFF_TOKENS_FILE": str(tokens),
            "ROUTING_DISPATCHER_ID": self.dispatcher.staff_id,
            "LOG_LEVEL": "WARNING",
            # the benchmark drives a county's year from one address: it measures throughput, not limits
            "RATE_LIMITS": "off",
            **self.extra_env,
        }
        if self.clock_file is not None:
            for service in ("intake", "routing", "sla"):
                env[f"{service.upper()}_FAKE_CLOCK_FILE"] = str(self.clock_file)
        self.fleet = ServiceFleet(env=env, log_dir=self.root / "logs")

    # ---- processes

    def start(self, counts: Mapping[str, int], import_grids: bool = True) -> None:
        """Start `counts[service]` instances of each service and wait until all are ready."""
        for service, n in counts.items():
            for k in range(n):
                self.fleet.start(service, instance=f"{service}-{k + 1}")
        self.fleet.wait_ready(timeout_s=120)
        if import_grids and counts.get("routing"):
            resp = self.http().post(
                f"{self.url('routing')}/v1/grids/import",
                json=self.county.to_geojson(),
                headers=self.staff_headers,
                timeout=120,
            )
            resp.raise_for_status()

    def instances(self, service: str) -> list[ServiceProcess]:
        return [p for p in self.fleet.processes.values() if p.name == service]

    def url(self, service: str, k: int = 0) -> str:
        found = self.instances(service)
        return found[k % len(found)].url

    def stop(self, drop: bool = True) -> None:
        """Stop the services and (unless `drop` is False) drop this namespace's databases and topics."""
        self.fleet.stop_all()
        if drop:
            self.drop()
        if self._kafka_clients is not None:
            for client in self._kafka_clients:
                client.close()
            self._kafka_clients = None
        if self._mongo is not None:
            self._mongo.close()
            self._mongo = None

    def drop(self) -> None:
        drop_namespace(self.mongo, self.kafka, self.prefix)

    def http(self) -> requests.Session:
        """A keep-alive session per thread."""
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
        return session

    def topic(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    # ---- observations

    def lag(self, groups: Iterable[str]) -> dict[str, int]:
        """Messages not yet committed by each service's consumer group, over the topics it reads."""
        if self._kafka_clients is None:
            self._kafka_clients = (
                KafkaAdminClient(**admin_client_config(self.kafka), client_id="bench-lag"),
                KafkaConsumer(**admin_client_config(self.kafka), client_id="bench-lag"),
            )
        admin, consumer = self._kafka_clients
        groups = list(groups)
        committed_by_group = admin.list_group_offsets([f"{self.prefix}-{s}" for s in groups])
        out = {}
        for service in groups:
            tps = [
                TopicPartition(self.topic(t), p)
                for t in CONSUMES[service]
                for p in sorted(consumer.partitions_for_topic(self.topic(t)) or ())
            ]
            ends = consumer.end_offsets(tps) if tps else {}
            committed = committed_by_group.get(f"{self.prefix}-{service}", {})
            out[service] = sum(
                max(0, end - (committed[tp].offset if tp in committed and committed[tp].offset >= 0 else 0))
                for tp, end in ends.items()
            )
        return out

    def consumed(self, service: str) -> int:
        """Messages all instances of a service consumed (petitions_consumed_total, every outcome but
        dead-lettered: handled, or for stats applied and duplicate, and ignored types)."""
        total = 0.0
        for p in self.instances(service):
            text = self.http().get(f"{p.url}/metrics", timeout=10).text
            for labels, value in _CONSUMED.findall(text):
                if 'outcome="deadlettered"' not in labels:
                    total += float(value)
        return int(total)

    def sla_scanned_at(self) -> float:
        """The clock time (unix seconds) of the oldest last-completed scan among sla's instances."""
        times = []
        for p in self.instances("sla"):
            text = self.http().get(f"{p.url}/metrics", timeout=10).text
            found = _LAST_SCAN.search(text)
            times.append(float(found.group(1)) if found else 0.0)
        return min(times, default=0.0)

    def outbox_empty(self, services: Iterable[str]) -> bool:
        """No outbox marker left to publish in the services' databases (docs/reliability.md).
        `find_one({})` stops at the first document; a count would read the whole collection."""
        if self._mongo is None:
            self._mongo = MongoClient(self.mongo)
        return all(self._mongo[f"{self.prefix}_{s}"]["outbox"].find_one({}, {"_id": 1}) is None for s in services)

    def database_commands(self) -> dict[str, int]:
        """FerretDB's count of the commands it has served, by command (its debug endpoint)."""
        if not self.ferretdb_debug:
            return {}
        try:
            text = self.http().get(f"{self.ferretdb_debug}/debug/metrics", timeout=10).text
        except requests.RequestException:
            return {}
        out: dict[str, int] = {}
        for command, value in _COMMANDS.findall(text):
            out[command] = out.get(command, 0) + int(float(value))
        return out

    def service_commands(self) -> dict[str, int]:
        """The database commands each service sent, by "service command collection" (every instance's
        petitions_db_commands_total summed): who costs FerretDB what."""
        out: dict[str, int] = {}
        for p in self.fleet.processes.values():
            try:
                text = self.http().get(f"{p.url}/metrics", timeout=10).text
            except requests.RequestException:
                continue
            for family in text_string_to_metric_families(text):
                if family.name != "petitions_db_commands":
                    continue
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        labels = sample.labels
                        key = f"{labels['service']} {labels['command']} {labels['collection']}".rstrip()
                        out[key] = out.get(key, 0) + int(sample.value)
        return out

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of every service instance, the broker, the database and this driver."""
        out = {name: cpu_seconds(p.proc.pid) for name, p in self.fleet.processes.items()}
        out.update({name: cpu_seconds(pid) for name, pid in stack_pids().items()})
        out["bench driver"] = cpu_seconds(os.getpid(), children=False)  # the services are its children
        return out

    def rss_mib(self) -> dict[str, float]:
        return {name: rss_kib(p.proc.pid) / 1024 for name, p in self.fleet.processes.items()}

    def stats_summary(self, **params: Any) -> dict[str, Any]:
        resp = self.http().get(
            f"{self.url('stats')}/v1/stats/summary", params=params, headers=self.staff_headers, timeout=30
        )
        resp.raise_for_status()
        return resp.json()
