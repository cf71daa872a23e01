"""The grid registry as stored (one aggregate, one commit per import) and this process's copy of it.

Every import replaces the whole registry atomically; every instance routes with the newest version,
or with the one before for at most `max_age_s` after another instance's import.
"""

from __future__ import annotations

import threading
import time
import zlib
from datetime import datetime
from typing import Any

import orjson

from petition_common.aggregates import retry_on_conflict
from petition_common.store import AggregateStore, Loaded
from petition_kernel.times import format_time
from services.routing import domain

REGISTRY_ID = "county"


class RegistryHolder:
    """This process's copy of the newest committed grid registry."""

    def __init__(self, store: AggregateStore):
        self.store = store
        self.version = 0
        self.current: domain.GridRegistry | None = None
        self._lock = threading.Lock()
        self._checked_at = -1e9
        self._serialised: tuple[int, bytes] | None = None

    def refresh(self, max_age_s: float = 0.0) -> None:
        """Pick up a newer registry. With `max_age_s`, skip the database check when the last one is
        younger: routing asks before every petition, and an import through another instance is
        then picked up within that time (an import through this one is at once)."""
        now = time.monotonic()
        if now - self._checked_at < max_age_s:
            return
        self._checked_at = now
        if self.store.latest_seq(REGISTRY_ID) <= self.version:
            return
        with self._lock:
            loaded = self.store.load(REGISTRY_ID)
            if loaded.state is not None and loaded.seq > self.version:
                # validated when it was imported; building the spatial index takes ~0.3 s for a county
                self.current = domain.GridRegistry.from_geojson(_unpack(loaded.state["geojson"]))
                self.version = loaded.seq

    def feature_collection(self) -> tuple[int, bytes] | None:
        """(version, the whole registry as GeoJSON bytes) for map clients; built once per version."""
        current, version = self.current, self.version
        if current is None:
            return None
        cached = self._serialised
        if cached is None or cached[0] != version:
            features = [g.to_feature() for g in current.grids]
            body = orjson.dumps({"type": "FeatureCollection", "version": version, "features": features})
            cached = self._serialised = (version, body)
        return cached

    def commit(self, geojson: dict[str, Any], imported_by: str, at: datetime) -> int:
        """Store `geojson` (validated by the caller) as the newest registry; its version."""
        state = {"geojson": _pack(geojson), "imported_by": imported_by, "imported_at": format_time(at)}
        # an import replaces whatever is there: it is built on the newest version, not on a loaded state
        retry_on_conflict(
            lambda: self.store.commit(Loaded(REGISTRY_ID, self.store.latest_seq(REGISTRY_ID), None), state),
            REGISTRY_ID,
        )
        self.refresh()
        return self.version


def _pack(geojson: dict[str, Any]) -> bytes:
    # stored as compressed JSON bytes: FerretDB v1 cannot store nested arrays (polygon rings), and
    # the registry is only ever read whole
    return zlib.compress(orjson.dumps(geojson), 6)


def _unpack(blob: bytes) -> dict[str, Any]:
    return orjson.loads(zlib.decompress(blob))
