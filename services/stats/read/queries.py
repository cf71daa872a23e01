"""Answers of the stats endpoints, computed from a `Table` (no I/O).

Every answer counts the petitions accepted in the period, by submission day, whatever happened to
them later (docs/statistics.md). Rates are exact fractions of the counts, null when the
denominator is 0; every rate is defined once, in libs/petition_kernel/rates.py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from petition_kernel.rates import METRICS, rank, rates
from services.stats.domain.facts import INDEX
from services.stats.domain.periods import TIME_ZONE, format_day_start, intervals
from services.stats.read.params import Filters, StatsQuery
from services.stats.read.table import Table

BREAKDOWN_DIM = {"town": "town", "village": "village", "grid": "grid", "category": "category",
                 "department": "department", "channel": "channel"}  # fmt: skip


class OutOfScope(Exception):
    """The filters name an area the caller's token does not cover (answered 404)."""


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def flat(v: np.ndarray | list[int]) -> dict[str, int]:
    """A counter vector as {counter name: count}: the rows the rate table reads."""
    return {name: int(v[i]) for name, i in INDEX.items()}


def counts(v: np.ndarray | list[int]) -> dict[str, Any]:
    """The contract's `Counts` object (plus this service's additions) from a counter vector."""
    g = flat(v)
    accepted, feedback = g["accepted"], g["feedback"]
    return {
        "accepted": accepted,
        "duplicates": g["duplicates"],
        "assigned": g["assigned"],
        "contacted": g["contacted"],
        "contacted_on_time": g["contacted_on_time"],
        "replied": g["replied"],
        "replied_on_time": g["replied_on_time"],
        "closed": g["closed"],
        "transferred": g["transferred"],
        "reopened": g["reopened"],
        "withdrawn": g["withdrawn"],
        "feedback": {
            "count": feedback,
            "satisfied": g["satisfied"],
            "basically_satisfied": g["basically_satisfied"],
            "dissatisfied": g["dissatisfied"],
        },
        "sla": {
            "warned": g["sla_warned"],
            "breached": g["sla_breached"],
            # replied petitions whose on-time verdict rests on a provisional calendar year
            "replied_provisional": g["replied_provisional"],
        },
        "averages": {
            "hours_to_contact": _ratio(g["contact_seconds"], g["contacted"] * 3600),
            "working_days_to_reply": _ratio(g["reply_working_days"], g["replied"]),
        },
        "rates": rates(g),
    }


class Queries:
    """The endpoints' answers over one table. `covers(grid_id)` scopes a staff member to their area."""

    def __init__(self, table: Table, category_names: Mapping[str, str]):
        self.table = table
        self.category_names = category_names

    # ---- selecting rows

    def _area_mask(self, f: Filters) -> np.ndarray:
        t, dims = self.table, self.table.dictionary.dims
        mask = np.ones(t.rows, dtype=bool)
        for dim, value in (("town", f.town), ("grid", f.grid_id), ("category", f.category)):
            if value is not None:
                code = dims[dim].find(value)
                mask &= t.columns[dim] == (code if code is not None else -1)
        if f.village is not None:
            mask &= np.isin(t.columns["village"], self.table.dictionary.village_codes(f.village))
        return mask

    def _scope_mask(self, covers: Callable[[str | None], bool] | None) -> np.ndarray | None:
        if covers is None:
            return None
        grids = self.table.dictionary.dims["grid"].values
        allowed = np.array([covers(g) for g in grids], dtype=bool)
        return allowed[self.table.columns["grid"]]

    def mask(self, f: Filters, covers: Callable[[str | None], bool] | None = None) -> np.ndarray:
        t = self.table
        mask = self._area_mask(f)
        scope = self._scope_mask(covers)
        if scope is not None:
            if f.areas() and mask.any() and not (mask & scope).any():
                raise OutOfScope
            mask &= scope
        if f.first_day is not None:
            mask &= t.day >= f.first_day
        if f.end_day is not None:
            mask &= t.day < f.end_day
        return mask

    def _period(self, f: Filters, mask: np.ndarray | None = None) -> tuple[int | None, int | None]:
        first, end = f.first_day, f.end_day
        if first is None or end is None:
            days = self.table.day[mask] if mask is not None else self.table.day
            if len(days):
                first = int(days.min()) if first is None else first
                end = int(days.max()) + 1 if end is None else end
        return first, end

    @staticmethod
    def _period_doc(first: int | None, end: int | None) -> dict[str, str | None]:
        return {
            "from": format_day_start(first) if first is not None else None,
            "to": format_day_start(end) if end is not None else None,
        }

    def _head(self, q: StatsQuery) -> dict[str, Any]:
        first, end = q.filters.first_day, q.filters.end_day
        out: dict[str, Any] = {"period": self._period_doc(first, end)}
        if q.filters.echo():
            out["filters"] = q.filters.echo()
        return out

    # ---- endpoints

    def summary(self, q: StatsQuery, covers: Callable[[str | None], bool] | None = None) -> dict[str, Any]:
        mask = self.mask(q.filters, covers)
        return {**self._head(q), **counts(self.table.totals(mask))}

    def _rows(self, mask: np.ndarray, by: str) -> list[tuple[dict[str, Any], np.ndarray]]:
        dim = BREAKDOWN_DIM[by]
        values = self.table.dictionary.dims[dim].values
        rows = []
        for code, sums in self.table.grouped(mask, dim).items():
            value = values[code]
            if by == "village":
                town, village = value if value is not None else (None, None)
                head: dict[str, Any] = {"key": village, "name": village, "town": town}
            elif by == "category":
                head = {"key": value, "name": self.category_names.get(value) if value else None}
            else:
                head = {"key": value, "name": value}
            rows.append((head, sums))
        return rows

    def breakdown(self, q: StatsQuery, covers: Callable[[str | None], bool] | None = None) -> dict[str, Any]:
        assert q.by is not None
        mask = self.mask(q.filters, covers)
        items = [{**head, **counts(sums)} for head, sums in self._rows(mask, q.by)]
        items.sort(
            key=lambda r: (-r["accepted"], -r["duplicates"], r["key"] is None, str(r["key"]), str(r.get("town")))
        )
        return {"by": q.by, **self._head(q), "items": items}

    def timeseries(self, q: StatsQuery, covers: Callable[[str | None], bool] | None = None) -> dict[str, Any]:
        assert q.interval is not None
        mask = self.mask(q.filters, covers)
        first, end = self._period(q.filters, mask)
        out: dict[str, Any] = {"interval": q.interval, "time_zone": TIME_ZONE, **self._head(q), "points": []}
        out["period"] = self._period_doc(first, end)
        if first is None or end is None or end <= first:
            return out
        per_day = self.table.by_day(mask, first, end - first)
        for start, stop in intervals(first, end, q.interval):
            sums = per_day[start - first : stop - first].sum(axis=0)
            out["points"].append({"start": format_day_start(start), "end": format_day_start(stop), **counts(sums)})
        return out

    def ranking(self, q: StatsQuery, covers: Callable[[str | None], bool] | None = None) -> dict[str, Any]:
        assert q.level is not None and q.metric is not None
        mask = self.mask(q.filters, covers)
        rows = []
        for head, sums in self._rows(mask, q.level):
            if head["key"] is None:
                continue  # petitions not placed in an area of this level
            area_id = head["key"] if q.level != "village" else f"{head['town']}/{head['key']}"
            rows.append({**flat(sums), **head, "id": area_id})
        ranked = rank(rows, q.metric, confidence=q.confidence, worst_first=q.order == "worst")
        metric = METRICS[q.metric]
        items = []
        for r in ranked:
            item = {
                "rank": r.rank,
                "key": r.row["key"],
                "name": r.row["name"],
                "rate": r.rate,
                "ci_low": r.low,
                "ci_high": r.high,
                "count": r.count,
                "successes": r.successes,
            }
            if q.level == "village":
                item["town"] = r.row["town"]
            items.append(item)
        return {
            "level": q.level,
            "metric": q.metric,
            "definition": metric.definition,
            "order": q.order,
            "confidence": q.confidence,
            "ranked_by": "ci_high ascending" if q.order == "worst" else "ci_low descending",
            **self._head(q),
            "items": items,
        }
