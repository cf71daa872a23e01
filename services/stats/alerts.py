"""Hotspot alerts: published once each, and listed for `GET /v1/alerts`.

Publishing is a commit of the `alerts` aggregate store with the alert's deterministic `alert_id`
as the aggregate id: the first commit inserts `{alert_id}:000001` and queues the event in the
outbox; any later attempt (a replay, a second instance, a rebuild) fails that unique insert and
publishes nothing. The CloudEvents id is derived from the alert id too, so should the outbox relay
republish after a crash, consumers see the same event id. A raised alert whose window overlaps an
existing alert of the same kind, level, area and category (the same burst found again by a replay
whose cross-partition order differed) is not published either.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from petition_common.envelope import Event
from petition_common.store import AggregateStore, Conflict, Loaded
from petition_kernel.times import format_time, parse_time, utc_now
from services.stats.metrics import StatsMetrics

log = logging.getLogger(__name__)

SOURCE = "petitions/stats"
_EVENT_NAMESPACE = uuid.UUID("3f4e1a52-6c0b-5d8e-9b7a-2c1d0e9f8a64")


def _burst_key(doc: dict[str, Any]) -> tuple[str, str, str, str]:
    return (doc["kind"], doc["area"]["level"], doc["area"]["id"], doc["category"])


def alert_event(doc: dict[str, Any]) -> Event:
    return Event(
        type="alert.hotspot",
        source=SOURCE,
        subject=doc["alert_id"],
        data=doc,
        time=format_time(parse_time(doc["window_end"])),
        id=str(uuid.uuid5(_EVENT_NAMESPACE, doc["alert_id"])),
        key=doc["area"]["id"],
    )


class AlertLog:
    """The alerts committed so far, read from the store (a scan of a small collection), cached briefly."""

    def __init__(self, store: AggregateStore, max_age_s: float = 1.0):
        self.store = store
        self.max_age_s = max_age_s
        self._cached: list[dict[str, Any]] = []
        self._at = 0.0
        self._lock = threading.Lock()

    def all(self) -> list[dict[str, Any]]:
        """Every alert as {"alert": data with `raised_at`, "scope_grid": a grid of the area}, newest
        window end first. `scope_grid` (the grid of the petition that raised it) decides which
        staff see the alert: grid ids nest under their village and town ids."""
        with self._lock:
            if time.monotonic() - self._at > self.max_age_s:
                docs = self.store.commits.find({}, {"state": 1})  # a void commit has no state
                alerts = [
                    {
                        "alert": {**d["state"]["alert"], "raised_at": d["state"]["raised_at"]},
                        "scope_grid": d["state"].get("scope_grid"),
                    }
                    for d in docs
                    if d.get("state")
                ]
                alerts.sort(key=lambda a: (a["alert"]["window_end"], a["alert"]["alert_id"]), reverse=True)
                self._cached, self._at = alerts, time.monotonic()
            return self._cached


class AlertPublisher:
    def __init__(self, store: AggregateStore, metrics: StatsMetrics, clock: Callable[[], datetime] = utc_now):
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self._windows: dict[tuple[str, str, str, str], list[tuple[str, str]]] | None = None

    def _index(self) -> dict[tuple[str, str, str, str], list[tuple[str, str]]]:
        if self._windows is None:
            windows: dict[tuple[str, str, str, str], list[tuple[str, str]]] = defaultdict(list)
            for record in AlertLog(self.store, max_age_s=0).all():
                alert = record["alert"]
                windows[_burst_key(alert)].append((alert["window_start"], alert["window_end"]))
            self._windows = windows
        return self._windows

    def _overlaps(self, doc: dict[str, Any]) -> bool:
        start, end = parse_time(doc["window_start"]), parse_time(doc["window_end"])
        return any(parse_time(s) < end and start < parse_time(e) for s, e in self._index().get(_burst_key(doc), []))

    def _commit(self, alert_id: str, state: dict[str, Any], events: list[Event]) -> bool:
        """Insert the alert's commit; False if it exists. A void commit (the outbox relay's placeholder
        for a writer that died before committing) does not count as published: commit after it."""
        loaded = Loaded(alert_id, 0, None)
        for _ in range(3):
            try:
                self.store.commit(loaded, state, events)
                return True
            except Conflict:
                loaded = self.store.load(alert_id)
                if loaded.state is not None:
                    return False
        return False

    def publish(self, doc: dict[str, Any], scope_grid: str | None = None) -> bool:
        """Commit the alert for publication; False when it (or its burst) was published before."""
        if self._overlaps(doc):
            self.metrics.alerts_suppressed.labels("same_burst").inc()
            return False
        state = {"alert": doc, "raised_at": format_time(self.clock()), "scope_grid": scope_grid}
        if not self._commit(doc["alert_id"], state, [alert_event(doc)]):
            self.metrics.alerts_suppressed.labels("same_id").inc()
            return False
        self._index()[_burst_key(doc)].append((doc["window_start"], doc["window_end"]))
        self.metrics.alerts.labels(doc["kind"], doc["area"]["level"]).inc()
        log.info(
            "hotspot alert",
            extra={"alert_id": doc["alert_id"], "kind": doc["kind"], "area": doc["area"], "count": doc["count"]},
        )
        return True

    def import_published(self, doc: dict[str, Any], raised_at: str, scope_grid: str | None = None) -> bool:
        """Record an alert read back from the alerts topic (the rebuild), without publishing it again."""
        if not self._commit(doc["alert_id"], {"alert": doc, "raised_at": raised_at, "scope_grid": scope_grid}, []):
            return False
        self._index()[_burst_key(doc)].append((doc["window_start"], doc["window_end"]))
        return True
