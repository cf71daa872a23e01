"""The due queue (petition_common.due) and intake's retention job on it, on the real FerretDB: writers
that race for an hour's numbers leave no gap and lose nothing, and a run reads what is due, not
what waits (the job used to read every ended petition of the last three years on every run)."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import MongoClient, monitoring

from petition_common.due import CURSOR_ID, DueQueue, item_id
from petition_common.fakes import ManualClock, RecordingPublisher
from petition_kernel.times import format_time
from services.intake.bootstrap import bootstrap
from tests.conftest import make_settings

START = datetime(2026, 3, 2, 8, 20, tzinfo=UTC)


class DocumentsRead(monitoring.CommandListener):
    """How many documents the server returned from each collection (find and getMore batches)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._collections: dict[int, str] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("find", "getMore"):
            self._collections[event.request_id] = str(event.command.get("find") or event.command.get("collection"))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        name = self._collections.pop(event.request_id, None)
        if name is not None:
            cursor: dict[str, Any] = event.reply.get("cursor", {})
            self.counts[name] += len(cursor.get("firstBatch", cursor.get("nextBatch", [])))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._collections.pop(event.request_id, None)


@pytest.fixture
def db_and_reads(unique_prefix):
    settings = make_settings("intake", unique_prefix)
    reads = DocumentsRead()
    client = MongoClient(settings.mongo_uri, tz_aware=True, event_listeners=[reads])
    yield settings, client[settings.database], reads
    client.close()


def test_writers_racing_for_an_hours_numbers_leave_no_gap_and_lose_nothing(db_and_reads):
    _, db, _ = db_and_reads
    at = START + timedelta(days=2)
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        queue = DueQueue(db["q"])  # one per process: each learns the others' numbers by losing them
        try:
            for batch in range(10):
                queue.add([(at, {"w": name, "n": batch * 5 + i}) for i in range(5)], horizon=START)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(name,)) for name in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)
    hour = datetime(2026, 3, 4, 8, tzinfo=UTC)
    ids = sorted(d["_id"] for d in db["q"].find({"_id": {"$ne": CURSOR_ID}}))
    assert ids == [item_id(hour, n) for n in range(30)]  # a document per add
    taken = DueQueue(db["q"]).take(at + timedelta(hours=2))
    assert sorted((p["w"], p["n"]) for p in taken.payloads) == [(w, n) for w in "abc" for n in range(50)]


def test_the_retention_job_reads_the_notes_that_are_due_not_those_that_wait(db_and_reads):
    settings, db, reads = db_and_reads
    clock = ManualClock(START)
    parts = bootstrap(settings, db=db, publisher=RecordingPublisher(), clock=clock)
    period = parts.config.retention
    ended = [
        ({"status": "replied"}, {"status": "closed", "petition_id": f"JZ2026030200{n:04d}", "timeline": [{"at": at}]})
        for n, at in enumerate(
            [format_time(START - period - timedelta(days=1))] * 150  # due: taken once the next hour has passed
            + [format_time(START - period + timedelta(days=30))] * 50  # due in 30 days
        )
    ]
    for k in range(0, len(ended), 10):  # 200 ended petitions, 10 a poll batch (none committed: passed over)
        parts.service.notes.note_many(ended[k : k + 10])

    reads.counts.clear()
    assert parts.retention.erase_due() == 0
    # nothing due yet: the cursor is read, none of the 200 notes (nor the old collection, emptied once)
    assert reads.counts["retention_queue"] <= 1 and reads.counts["retention"] == 0

    clock.advance(timedelta(days=2))  # the retention queue's slots are days: taken once the next has passed
    reads.counts.clear()
    assert parts.retention.erase_due() == 0
    # the cursor and the 15 batches of due notes, not the 5 of the 50 waiting
    assert reads.counts["retention_queue"] == 1 + 15
    assert reads.counts["retention"] == 0
    assert parts.retention.notes.queue.pending() == 50
