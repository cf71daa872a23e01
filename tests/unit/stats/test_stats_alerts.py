"""The alerts store publishes each alert (and each burst) once, on the in-memory fakes."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from petition_common.fakes import MemoryDatabase, RecordingPublisher
from petition_common.store import AggregateStore, commit_id
from services.stats.metrics import StatsMetrics
from services.stats.write.alerts import AlertPublisher

NOW = datetime(2024, 7, 1, 2, 0, tzinfo=UTC)


def alert(alert_id: str, start: str = "2024-06-28T00:00:00.000Z", end: str = "2024-07-01T00:00:00.000Z") -> dict:
    return {
        "alert_id": alert_id,
        "kind": "concentrated",
        "area": {"level": "grid", "id": "G-1", "name": "G-1"},
        "category": "drainage",
        "window_start": start,
        "window_end": end,
        "count": 6,
        "petition_ids": ["JZ20240701000001"],
    }


def publisher(db: MemoryDatabase) -> tuple[AlertPublisher, AggregateStore, StatsMetrics]:
    store = AggregateStore(db, "alerts", publisher=RecordingPublisher())
    metrics = StatsMetrics(CollectorRegistry())
    return AlertPublisher(store, metrics, clock=lambda: NOW), store, metrics


def suppressed(metrics: StatsMetrics, reason: str) -> float:
    return metrics.alerts_suppressed.labels(reason)._value.get()


def test_an_alert_is_committed_once_and_its_burst_is_not_alerted_again():
    alerts, store, metrics = publisher(MemoryDatabase())
    assert alerts.publish(alert("a-1"), scope_grid="G-1")
    assert store.load("a-1").state["scope_grid"] == "G-1"
    # a later window of the same burst overlaps the first: not published
    assert not alerts.publish(alert("a-2", start="2024-06-29T00:00:00.000Z", end="2024-07-02T00:00:00.000Z"))
    assert store.load("a-2").state is None
    assert suppressed(metrics, "same_burst") == 1


def test_an_alert_another_instance_committed_meanwhile_is_not_committed_again():
    db = MemoryDatabase()
    first, _, _ = publisher(db)
    second, store, metrics = publisher(db)
    second._index()  # the second instance read the alerts before the first committed
    assert first.publish(alert("a-1"))
    assert not second.publish(alert("a-1"))  # its blind insert loses; the reload finds the alert
    assert suppressed(metrics, "same_id") == 1
    assert store.latest_seq("a-1") == 1


def test_an_alert_after_a_void_commit_is_committed_after_it():
    """The outbox relay voided the version of a writer that died before committing: not published."""
    db = MemoryDatabase()
    alerts, store, _ = publisher(db)
    store.commits.insert_one({"_id": commit_id("a-1", 1), "aggregate_id": "a-1", "seq": 1, "void": True,
                              "at": NOW, "events": []})  # fmt: skip
    assert alerts.publish(alert("a-1"))
    loaded = store.load("a-1")
    assert loaded.seq == 2 and loaded.state["alert"]["alert_id"] == "a-1"
