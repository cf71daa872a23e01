"""The registry's towns and villages from routing's public listing, cached for a minute: every
submit page shows them, and they change only when the county imports a new registry."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from flask import current_app

from services.web.backends import Backends

CACHE_S = 60.0


@dataclass(frozen=True)
class Areas:
    towns: list[dict[str, Any]]

    def village(self, village_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """(town, village) of a village id, or None."""
        for town in self.towns:
            for village in town["villages"]:
                if village["village_id"] == village_id:
                    return town, village
        return None


class AreaCache:
    def __init__(self, backends: Backends):
        self.backends = backends
        self._value: Areas | None = None
        self._at = -1e9
        self._lock = threading.Lock()

    def get(self) -> Areas:
        if time.monotonic() - self._at < CACHE_S and self._value is not None:
            return self._value
        answer = self.backends.get("routing", "/v1/areas")
        areas = Areas(answer.body.get("towns", []) if answer.ok else [])
        with self._lock:
            # an empty registry is not cached: the county may be imported any moment now
            self._value, self._at = areas, (time.monotonic() if areas.towns else -1e9)
        return areas

    def grids(self, village_id: str) -> list[dict[str, str]]:
        answer = self.backends.get("routing", f"/v1/areas/villages/{village_id}/grids")
        return answer.body.get("grids", []) if answer.ok else []


def current_areas() -> AreaCache:
    """The app's cache of towns and villages (built by create_app)."""
    return current_app.extensions["areas"]
