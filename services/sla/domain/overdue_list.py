"""`GET /v1/sla/overdue`: the overdue clocks a staff member may see, filtered, by deadline, keyset-paged."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from petition_kernel.access import Area, may_read
from petition_kernel.times import format_time, parse_time
from services.sla.domain.clocks import reached_level
from services.sla.domain.open_clocks import entry_levels, entry_running, entry_times

if TYPE_CHECKING:
    from petition_common.auth import Staff


@dataclass(frozen=True)
class OverdueFilter:
    town: str | None = None
    grid_id: str | None = None
    clock: str | None = None
    level: int | None = None
    open: bool | None = None


def overdue_items(
    docs: Iterable[Mapping[str, Any]], now: datetime, staff: Staff, flt: OverdueFilter
) -> list[dict[str, Any]]:
    """Clocks past their deadline: still running, or ended late within the keep window; by deadline."""
    items = []
    for doc in docs:
        grid_id, town = doc.get("grid_id"), doc.get("town")
        if not may_read(staff, Area(grid_id=grid_id)):
            continue
        if flt.grid_id and grid_id != flt.grid_id:
            continue
        if flt.town and flt.town != town and not (grid_id and grid_id.startswith(flt.town)):
            continue  # a town by name, or by id (grid ids nest in their town's id)
        for raw in doc.get("clocks", []):
            entry = entry_times(raw)
            if flt.clock and entry["clock"] != flt.clock:
                continue
            running = entry_running(entry, now)
            until = now if running else entry["ended_at"]
            if until < entry["deadline"] or (not running and entry["ended_at"] <= entry["deadline"]):
                continue
            if flt.open is not None and flt.open != running:
                continue
            level = reached_level(entry, entry_levels(entry), now)
            if flt.level and level < flt.level:
                continue
            items.append(
                {
                    "petition_id": doc["_id"],
                    "clock": entry["clock"],
                    "generation": entry["generation"],
                    "deadline": raw["deadline"],
                    "overdue_seconds": int((until - entry["deadline"]) // timedelta(seconds=1)),
                    "level": max(level, 1),
                    "open": running,
                    "ended_at": raw.get("ended_at") if not running else None,
                    "outcome": entry.get("outcome") if not running else None,
                    "paused": bool(entry.get("paused")) and running,
                    "grid_id": grid_id,
                    "town": town,
                    "category": doc.get("category"),
                }
            )
    items.sort(key=overdue_sort_key)
    return items


def overdue_sort_key(item: Mapping[str, Any]) -> tuple[str, str, str, int]:
    # deadlines are RFC 3339 UTC strings from format_time; compare them as instants
    return (format_time(parse_time(item["deadline"])), item["petition_id"], item["clock"], item["generation"])


def encode_cursor(item: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(overdue_sort_key(item)))).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str, str, int]:
    """The sort key after which the next page starts; ValueError if the cursor is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        deadline, pid, clock, generation = orjson.loads(raw)
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError) as exc:
        raise ValueError("not a cursor of this endpoint") from exc
    if not all(isinstance(x, str) for x in (deadline, pid, clock)) or not isinstance(generation, int):
        raise ValueError("not a cursor of this endpoint")
    try:
        # in the sort key's written form, also for a cursor issued before deadlines carried milliseconds
        deadline = format_time(parse_time(deadline))
    except ValueError as exc:
        raise ValueError("not a cursor of this endpoint") from exc
    return deadline, pid, clock, generation


def page(items: list[dict[str, Any]], limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """Keyset paging over items sorted by `overdue_sort_key`: stable while time passes."""
    if cursor is not None:
        after = decode_cursor(cursor)
        items = [i for i in items if overdue_sort_key(i) > after]
    chunk = items[:limit]
    return chunk, encode_cursor(chunk[-1]) if len(items) > limit else None
