"""Kafka plumbing: the idempotent producer, topic creation (topic_config.py), and a ping for readiness."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import KafkaError

from petition_common import topics
from petition_common.config import Settings
from petition_common.envelope import Event
from petition_common.topic_config import ensure_topics, producer_codec

log = logging.getLogger(__name__)

__all__ = ["EventPublisher", "KafkaError", "PublishFailed", "ensure_topics", "kafka_ping"]


class PublishFailed(RuntimeError):
    """The broker did not acknowledge in time; the outbox keeps the events for the relay."""


class EventPublisher:
    """Publishes events and waits for the broker's acknowledgement (acks=all, idempotent).

    With idempotence on, the producer keeps the order of sends to one partition even when it
    retries, so the events of one petition reach the topic in the order they are sent.
    After a failure the publisher stays "cold" for a few seconds: requests then leave their
    events to the outbox relay instead of each waiting for the broker's timeout.
    """

    def __init__(self, settings: Settings, ack_timeout_s: float = 5.0, cooldown_s: float = 3.0):
        self._settings = settings
        self._ack_timeout_s = ack_timeout_s
        self._cooldown_s = cooldown_s
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()
        self._cold_until = 0.0

    def _get(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                self._producer = KafkaProducer(
                    **self._settings.kafka_client(),
                    client_id=f"petitions-{self._settings.service}",
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=1,
                    max_block_ms=int(self._ack_timeout_s * 1000),
                    bootstrap_timeout_ms=int(self._ack_timeout_s * 1000),
                    request_timeout_ms=int(self._ack_timeout_s * 1000),
                    # retries live inside delivery_timeout_ms; past it the send fails and the
                    # outbox marker stays for the relay
                    delivery_timeout_ms=int(self._ack_timeout_s * 2000) + 1000,
                    retry_backoff_ms=100,
                    # the topics keep their history: compressed, a county's year takes 1.2 GB on
                    # disk instead of 1.75 (docs/operations.md, "Topics")
                    compression_type=producer_codec(self._settings),
                )
            return self._producer

    @property
    def cold(self) -> bool:
        return time.monotonic() < self._cold_until

    def publish(self, events: Sequence[Event], force: bool = False) -> None:
        """Send in order and wait for every acknowledgement; raises PublishFailed."""
        if not events:
            return
        if self.cold and not force:
            raise PublishFailed("broker recently unreachable; leaving events to the relay")
        try:
            producer = self._get()
            futures = [
                producer.send(
                    self._settings.topic(topics.TOPIC_OF_TYPE[e.type])
                    if e.type in topics.TOPIC_OF_TYPE
                    else self._settings.topic(topics.DEADLETTER),
                    key=e.message_key.encode(),
                    value=e.to_bytes(),
                    headers=e.headers(),
                )
                for e in events
            ]
            for future in futures:
                future.get(timeout=self._ack_timeout_s * 2 + 2)
        except KafkaError as exc:
            self._cold_until = time.monotonic() + self._cooldown_s
            self._discard()
            raise PublishFailed(str(exc)) from exc

    def send_raw(self, topic: str, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        """Publish bytes as they are (the dead-letter path); raises PublishFailed."""
        try:
            self._get().send(topic, key=key, value=value, headers=headers).get(timeout=self._ack_timeout_s * 2 + 2)
        except KafkaError as exc:
            self._discard()
            raise PublishFailed(str(exc)) from exc

    def _discard(self) -> None:
        """Drop the producer after a failure; the next publish builds a fresh one.

        An idempotent producer whose broker was killed can be left in a fatal state (its producer id
        and sequence numbers no longer match the restarted broker's) and would then fail every
        later send. A new producer gets a new id; the events it sends again carry their old
        CloudEvent ids, so consumers still de-duplicate them.
        """
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=0)
            except Exception as exc:  # closing a broken producer may itself fail; it is gone either way
                log.info("closing a failed producer", extra={"error": repr(exc)})

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=5)
                self._producer = None


def kafka_ping(settings: Settings) -> None:
    """Raises unless a broker answers a metadata request within the dependency timeout."""
    admin = KafkaAdminClient(
        **settings.kafka_client(),
        client_id=f"petitions-{settings.service}-ping",
        request_timeout_ms=int(settings.dependency_timeout_s * 1000) + 500,
        bootstrap_timeout_ms=int(settings.dependency_timeout_s * 1000),
    )
    try:
        admin.list_topics()
    finally:
        admin.close()
