"""Wiring of one service process: clients, stores, background loops, readiness, shutdown.

The one place where real adapters are built (after gunicorn forks: pymongo is not fork-safe).
Background work (consumer loops, the outbox relay, scanners) runs in threads of the same
process as the HTTP handlers; SIGTERM reaches gunicorn, whose `worker_exit` hook calls
`shutdown_all()`, which sets the stop flag, lets each loop commit what it finished, and joins.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from petition_common import mongo
from petition_common.config import Settings
from petition_common.consumer import BatchHandler, ConsumerLoop, Handler
from petition_common.contract import ContractValidator
from petition_common.envelope import Event
from petition_common.kafka_io import EventPublisher, ensure_topics, kafka_ping
from petition_common.metrics import PlatformMetrics
from petition_common.ownership import Ownership
from petition_common.store import AggregateStore, Flusher, OutboxRelay, Publisher
from petition_common.topic_config import TopicMismatch
from petition_common.topics import ALERTS, DEADLETTER, INTAKE, ROUTING, SLA

log = logging.getLogger(__name__)

_RUNTIMES: list[ServiceRuntime] = []


class CountingPublisher:
    """EventPublisher plus metrics; what the stores publish through."""

    def __init__(self, inner: EventPublisher, metrics: PlatformMetrics):
        self.inner = inner
        self.metrics = metrics

    def publish(self, events: Sequence[Event], force: bool = False) -> None:
        self.inner.publish(events, force=force)
        for event in events:
            self.metrics.observe_published(event.type)


StoreFactory = Callable[[str], AggregateStore]


def store_factory(settings: Settings, db: Any, publisher: Publisher | None = None) -> StoreFactory:
    """Aggregate stores by name on `db` (a pymongo Database or the fakes' MemoryDatabase) that check
    their events against the contract and publish them as they commit through `publisher` (by default
    a Kafka producer): a service's bootstrap outside a runtime (tools, fast tests). A runtime's own
    stores (`ServiceRuntime.store`) publish through its flusher thread instead."""
    validate = ContractValidator(settings.contract_dir).validate
    out = publisher if publisher is not None else EventPublisher(settings)
    return lambda name: AggregateStore(db, name, publisher=out, validate=validate)


class ServiceRuntime:
    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None):
        self.settings = settings
        self.metrics = PlatformMetrics(registry or CollectorRegistry(), settings.service)
        commands = self.metrics.db_commands
        self.client = mongo.connect(
            settings, [mongo.CommandCounter(lambda name, coll: commands.labels(settings.service, name, coll).inc())]
        )
        self.db = self.client[settings.database]
        self.publisher = EventPublisher(settings)
        self.counting_publisher = CountingPublisher(self.publisher, self.metrics)
        self.validator = ContractValidator(settings.contract_dir)
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.crashed: list[str] = []
        self.flusher: Flusher | None = None
        self._kafka_ok_until = 0.0
        _RUNTIMES.append(self)

    # ---- readiness

    def check_database(self) -> None:
        mongo.ping(self.client)

    def check_kafka(self) -> None:
        # a metadata round trip costs a connection; one success vouches for two seconds
        if time.monotonic() < self._kafka_ok_until:
            return
        kafka_ping(self.settings)
        self._kafka_ok_until = time.monotonic() + 2.0

    def check_loops(self) -> None:
        if self.crashed:
            raise RuntimeError(f"background loops crashed: {', '.join(self.crashed)}")

    def checks(self) -> dict[str, Callable[[], None]]:
        return {"database": self.check_database, "kafka": self.check_kafka, "loops": self.check_loops}

    # ---- building blocks

    def store(self, name: str) -> AggregateStore:
        if self.flusher is None:
            self.flusher = Flusher()
            flusher = self.flusher
            self.start_thread("flusher", lambda: flusher.run(self.stop.is_set))
        store = AggregateStore(
            self.db, name, publisher=self.counting_publisher, validate=self.validator.validate, flusher=self.flusher
        )
        store.group.on_group = self.metrics.group_sizes.labels(self.settings.service, name).observe
        return store

    def ensure_topics(self) -> None:
        ensure_topics(self.settings, [INTAKE, ROUTING, SLA, ALERTS, DEADLETTER])

    def start_thread(self, name: str, target: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                target()
            except Exception:
                log.exception("background loop crashed", extra={"loop": name})
                # a dead loop must not leave a healthy-looking process: readiness fails from now on
                self.crashed.append(name)

        thread = threading.Thread(target=guarded, name=name, daemon=True)
        thread.start()
        self.threads.append(thread)

    def start_consumer(
        self,
        topics: list[str],
        handlers: dict[str, Handler],
        name: str = "consumer",
        group_id: str | None = None,
        batch_handler: BatchHandler | None = None,
        ownership: Ownership | None = None,
    ) -> None:
        def run() -> None:
            # wait for the broker instead of crashing at start-up: the stack may still be booting
            while not self.stop.is_set():
                try:
                    self.ensure_topics()
                    break
                except TopicMismatch:
                    raise  # the loop stops and readiness answers 503: an operator must fix the topics
                except Exception as exc:
                    log.warning("cannot create topics yet", extra={"error": str(exc)})
                    self.stop.wait(2)
            loop = ConsumerLoop(
                self.settings,
                topics,
                handlers,
                self.publisher,
                self.validator,
                self.metrics,
                self.stop,
                group_id=group_id,
                batch_handler=batch_handler,
                ownership=ownership,
            )
            loop.run()

        self.start_thread(name, run)

    def start_periodic(self, name: str, interval_s: float, job: Callable[[], object]) -> None:
        """Run `job` every `interval_s` until shutdown; a failing run is logged and retried next time."""

        def run() -> None:
            while not self.stop.wait(interval_s):
                try:
                    job()
                except Exception as exc:
                    log.warning("periodic job failed", extra={"job": name, "error": repr(exc)})

        self.start_thread(name, run)

    def start_relay(self, stores: list[AggregateStore]) -> None:
        relay = OutboxRelay({s.name: s for s in stores})

        def run() -> None:
            relay.run_forever(
                self.stop.is_set,
                self.settings.relay_interval_s,
                on_sweep=lambda pending: self.metrics.outbox_pending.labels(self.settings.service).set(pending),
            )

        self.start_thread("outbox-relay", run)

    # ---- shutdown

    def shutdown(self, timeout_s: float = 20.0) -> None:
        self.stop.set()
        deadline = time.monotonic() + timeout_s
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.publisher.close()
        self.client.close()
        if self in _RUNTIMES:
            _RUNTIMES.remove(self)


def shutdown_all() -> None:
    for runtime in list(_RUNTIMES):
        runtime.shutdown()
