"""The consumer loop's batch path on the real broker: a poll batch goes to the batch handler at
once, and back to the per-event handlers (with their dead letters) when the batch handler fails or
the batch holds a message that must be dead-lettered; the fetch waits at the broker for a batch
(`fetch_min_bytes`, `fetch_max_wait_ms`), so events that trickle in arrive together."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from kafka import KafkaProducer
from prometheus_client import CollectorRegistry

from petition_common.consumer import ConsumerLoop, MessageMeta
from petition_common.contract import ContractValidator
from petition_common.envelope import Event
from petition_common.kafka_io import EventPublisher, ensure_topics
from petition_common.metrics import PlatformMetrics
from petition_common.topics import DEADLETTER, INTAKE
from tests.conftest import make_settings
from tests.support import eventually, kafka_client, read_topic

CONTRACT = Path(__file__).resolve().parents[2] / "contract"
PID = "JZ20240717000123"


def _withdrawn(n: int) -> Event:
    data = {"petition_id": PID, "withdrawn_at": f"2024-07-17T00:{n:02d}:00.000Z"}
    return Event(type="petition.withdrawn", source="petitions/intake", subject=PID, data=data)


class Recorder:
    def __init__(self, fail_batches: int = 0):
        self.single: list[str] = []
        self.batches: list[list[str]] = []
        self.fail_batches = fail_batches
        self.lock = threading.Lock()

    def one(self, event: Event, meta: MessageMeta) -> None:
        with self.lock:
            self.single.append(event.id)

    def in_batches(self, skip: int = 0) -> list[str]:
        """Ids the batch handler took (of its calls after the first `skip`)."""
        return [event_id for batch in self.batches[skip:] for event_id in batch]

    def batch(self, events: list[tuple[Event, MessageMeta]]) -> None:
        with self.lock:
            self.batches.append([e.id for e, _ in events])
            if len(self.batches) <= self.fail_batches:
                raise RuntimeError("the batch handler gives up")


@pytest.fixture
def run_loop(unique_prefix, request):
    """start(recorder, messages): produce `messages`, then start the loop; settings overridden by an
    indirect parameter, if the test has one."""
    overrides = getattr(request, "param", {})
    settings = make_settings("batchtest", unique_prefix, retry_backoff_s=0.05, **overrides)
    ensure_topics(settings, [INTAKE, DEADLETTER])
    publisher = EventPublisher(settings)
    stop = threading.Event()
    threads = []

    def start(recorder: Recorder, messages: list[bytes]) -> None:
        producer = KafkaProducer(**kafka_client())
        for value in messages:  # one key: one partition, so one poll returns them together
            producer.send(settings.topic(INTAKE), key=PID.encode(), value=value)
        producer.flush()
        producer.close()
        loop = ConsumerLoop(
            settings,
            [INTAKE],
            {"petition.withdrawn": recorder.one},
            publisher,
            ContractValidator(CONTRACT),
            PlatformMetrics(CollectorRegistry(), "batchtest"),
            stop,
            batch_handler=recorder.batch,
        )
        thread = threading.Thread(target=loop.run, daemon=True)
        thread.start()
        threads.append(thread)

    yield settings, start
    stop.set()
    for thread in threads:
        thread.join(15)
    publisher.close()


def test_a_poll_batch_goes_to_the_batch_handler_at_once(run_loop):
    _, start = run_loop
    events = [_withdrawn(n) for n in range(6)]
    recorder = Recorder()
    start(recorder, [e.to_bytes() for e in events])
    eventually(lambda: _assert_equal(recorder.in_batches(), [e.id for e in events]))
    assert recorder.single == []
    assert max(len(b) for b in recorder.batches) > 1


def test_when_the_batch_handler_fails_every_event_is_handled_one_by_one(run_loop):
    _, start = run_loop
    events = [_withdrawn(n) for n in range(6)]
    recorder = Recorder(fail_batches=1)
    start(recorder, [e.to_bytes() for e in events])
    ids = sorted(e.id for e in events)
    eventually(lambda: _assert_equal(sorted(recorder.single + recorder.in_batches(skip=1)), ids))
    assert recorder.batches[0] == [e.id for e in events][: len(recorder.batches[0])]
    assert recorder.single[: len(recorder.batches[0])] == recorder.batches[0]


def test_a_batch_with_a_message_to_dead_letter_is_handled_one_by_one(run_loop):
    settings, start = run_loop
    events = [_withdrawn(n) for n in range(4)]
    poison = b"\x00 not a cloud event"
    recorder = Recorder()
    start(recorder, [events[0].to_bytes(), events[1].to_bytes(), poison, events[2].to_bytes(), events[3].to_bytes()])
    ids = sorted(e.id for e in events)
    eventually(lambda: _assert_equal(sorted(recorder.single + recorder.in_batches()), ids))
    dead = read_topic(settings.topic(DEADLETTER), lambda ms: len(ms) >= 1)
    assert [m["headers"].get("dlq_reason") for m in dead] == ["unparseable"]
    assert recorder.single[:2] == [events[0].id, events[1].id]  # the first poll's batch went one by one


@pytest.mark.parametrize("run_loop", [{"fetch_min_bytes": 16_384, "fetch_max_wait_ms": 2_000}], indirect=True)
def test_events_trickling_in_within_the_fetch_wait_arrive_together(run_loop):
    """A poll batch the services write in one round of commands, instead of one batch (and one
    round) each."""
    settings, start = run_loop
    first = _withdrawn(0)
    recorder = Recorder()
    start(recorder, [first.to_bytes()])
    eventually(lambda: _assert_equal(recorder.single, [first.id]), timeout_s=60)  # the loop is polling now
    trickle = [_withdrawn(n) for n in range(1, 9)]
    producer = KafkaProducer(**kafka_client())
    try:
        for event in trickle:  # one produce request each, 25 ms apart: ~0.2 s, well inside the wait
            producer.send(settings.topic(INTAKE), key=PID.encode(), value=event.to_bytes()).get(timeout=10)
            time.sleep(0.025)
    finally:
        producer.close()
    eventually(lambda: _assert_equal(recorder.single[1:] + recorder.in_batches(), [e.id for e in trickle]))
    # one batch, or two if a fetch's wait ran out mid-trickle; without the wait each event is fetched
    # on its own (the fetch returns at the first byte: 8 batches here)
    assert len(recorder.batches) + len(recorder.single) - 1 <= 2, (recorder.single, recorder.batches)


def _assert_equal(actual: object, expected: object) -> None:
    assert actual == expected
