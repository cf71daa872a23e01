"""The flusher publishes off the request path and deletes the markers of a burst together
(petition_common.store.Flusher)."""

from __future__ import annotations

import threading

from petition_common.envelope import Event
from petition_common.fakes import MemoryDatabase, RecordingPublisher
from petition_common.store import AggregateStore, Flusher, Loaded


class Ticks:
    """A monotonic clock for the flusher that moves only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def world(linger_s: float = 0.1) -> tuple[MemoryDatabase, RecordingPublisher, Flusher, AggregateStore, Ticks]:
    db, publisher, ticks = MemoryDatabase(), RecordingPublisher(), Ticks()
    flusher = Flusher(linger_s=linger_s, clock=ticks)
    return db, publisher, flusher, AggregateStore(db, "things", publisher=publisher, flusher=flusher), ticks


def created(store: AggregateStore, aggregate_id: str) -> None:
    event = Event(type="thing.created", source="tests", subject=aggregate_id, data={"id": aggregate_id})
    store.commit(Loaded(aggregate_id, 0, None), {"id": aggregate_id}, [event])


def test_the_markers_of_a_burst_are_deleted_in_one_statement_after_the_linger() -> None:
    db, publisher, flusher, store, ticks = world()
    for n in range(3):
        created(store, f"t{n}")
    db.commands.clear()
    assert flusher.run_once()
    assert [e.subject for e in publisher.events] == ["t0", "t1", "t2"]  # published at once
    assert db["outbox"].count_documents({}) == 3 and db.commands[("delete", "outbox")] == 0
    created(store, "t3")
    ticks.now += 0.1
    assert flusher.run_once()
    assert len(publisher.events) == 4
    assert db["outbox"].count_documents({}) == 0
    assert db.commands[("delete", "outbox")] == 1  # four markers, one statement


def test_a_full_batch_of_markers_is_deleted_without_waiting() -> None:
    db, _, flusher, store, _ = world(linger_s=60)
    for n in range(4):
        created(store, f"t{n}")
    assert flusher.run_once(batch=4)
    assert db["outbox"].count_documents({}) == 0


def test_stopping_deletes_what_was_published() -> None:
    db, publisher, flusher, store, _ = world(linger_s=60)
    created(store, "t0")
    stop = threading.Event()
    stop.set()  # told to stop with an event queued: it is still published, and its marker deleted
    flusher.run(stop.is_set)
    assert [e.subject for e in publisher.events] == ["t0"]
    assert db["outbox"].count_documents({}) == 0


def test_a_publication_that_fails_leaves_its_markers_to_the_relay() -> None:
    db, publisher, flusher, store, ticks = world()
    publisher.fail = ConnectionError("broker away")
    created(store, "t0")
    assert not flusher.run_once()
    ticks.now += 1
    flusher.run_once()
    assert db["outbox"].count_documents({}) == 1
