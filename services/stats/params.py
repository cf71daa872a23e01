"""Query parameters of the stats endpoints: parsed and checked, every problem named by its field.

`from` and `to` are a date (YYYY-MM-DD, the start of that day in Asia/Shanghai) or an RFC 3339
date-time that falls on a local day boundary: statistics are kept per submission day, so a period
that cuts a day in two could not be answered exactly and is refused rather than rounded.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date

import orjson

from petition_kernel.rates import METRICS
from petition_kernel.times import BEIJING, parse_time
from services.stats.domain.periods import INTERVALS, local_midnight_day

AREA_FILTERS = ("town", "village", "grid_id", "category")
PERIOD = ("from", "to")
BREAKDOWN_BY = ("town", "village", "grid", "category", "department", "channel")
RANK_LEVELS = ("town", "village", "grid")
ORDERS = ("best", "worst")
ALERT_KINDS = ("concentrated", "emerging")
AREA_LEVELS = ("grid", "village", "town")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
_CATEGORY = re.compile(r"^[a-z_]{2,40}$")
MAX_DAYS = 3700  # ten years of days in one timeseries
# the days a period may name: statistics start long after the first, and a period far in the future
# would only overflow the calendar arithmetic (year 10000) for an answer that is always empty
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date(2999, 12, 31)


class InvalidQuery(ValueError):
    def __init__(self, fields: dict[str, str]):
        self.fields = fields
        super().__init__("; ".join(f"{k}: {v}" for k, v in fields.items()))


@dataclass(frozen=True)
class Filters:
    first_day: int | None = None  # inclusive
    end_day: int | None = None  # exclusive
    town: str | None = None
    village: str | None = None
    grid_id: str | None = None
    category: str | None = None

    def areas(self) -> dict[str, str]:
        return {k: v for k, v in (("town", self.town), ("village", self.village), ("grid_id", self.grid_id)) if v}

    def echo(self) -> dict[str, str]:
        out = self.areas()
        if self.category:
            out["category"] = self.category
        return out


def _day(name: str, raw: str, errors: dict[str, str]) -> int | None:
    day = _parse_day(name, raw, errors)
    if day is not None and not FIRST_DAY.toordinal() <= day <= LAST_DAY.toordinal():
        errors[name] = f"must fall between {FIRST_DAY} and {LAST_DAY}"
        return None
    return day


def _parse_day(name: str, raw: str, errors: dict[str, str]) -> int | None:
    if _DATE.match(raw):
        try:
            return date.fromisoformat(raw).toordinal()
        except ValueError:
            errors[name] = "not a valid date (YYYY-MM-DD)"
            return None
    if _DATETIME.match(raw):
        try:
            moment = parse_time(raw)
            day = local_midnight_day(moment)
        except (ValueError, OverflowError):  # 9999-12-31T16:00:00Z is a day of the year 10000 here
            errors[name] = f"not a valid RFC 3339 date-time between {FIRST_DAY} and {LAST_DAY}"
            return None
        if day is None:
            local = moment.astimezone(BEIJING).isoformat()
            errors[name] = (
                f"statistics are kept per day (Asia/Shanghai); {local} is not the start of a day: "
                "give a date (YYYY-MM-DD) or a date-time at 00:00 +08:00"
            )
        return day
    errors[name] = "must be a date (YYYY-MM-DD) or an RFC 3339 date-time"
    return None


def _text(name: str, raw: str | None, max_len: int, errors: dict[str, str]) -> str | None:
    if raw is None:
        return None
    value = raw.strip()
    if not value or len(value) > max_len:
        errors[name] = f"must be 1 to {max_len} characters"
        return None
    return value


def _choice(name: str, raw: str | None, allowed: tuple[str, ...], errors: dict[str, str], required: bool) -> str | None:
    if raw is None:
        if required:
            errors[name] = f"is required: one of {', '.join(allowed)}"
        return None
    if raw not in allowed:
        errors[name] = f"must be one of {', '.join(allowed)}"
        return None
    return raw


def _check_unknown(args: Mapping[str, str], allowed: Collection[str], errors: dict[str, str]) -> None:
    for name in args:
        if name not in allowed:
            errors[name] = "unknown parameter"


def _single(args: Mapping[str, list[str]], errors: dict[str, str]) -> dict[str, str]:
    out = {}
    for name, values in args.items():
        if len(values) > 1:
            errors[name] = "give this parameter once"
        out[name] = values[0]
    return out


def parse_filters(
    raw: Mapping[str, list[str]], categories: Collection[str], extra: Collection[str] = ()
) -> tuple[Filters, dict[str, str], dict[str, str]]:
    """(filters, the other allowed parameters given, errors)."""
    errors: dict[str, str] = {}
    args = _single(raw, errors)
    _check_unknown(args, (*PERIOD, *AREA_FILTERS, *extra), errors)
    first = _day("from", args["from"], errors) if "from" in args else None
    end = _day("to", args["to"], errors) if "to" in args else None
    if first is not None and end is not None and end <= first:
        errors["to"] = "must be after from"
    category = _text("category", args.get("category"), 40, errors)
    if category is not None and not _CATEGORY.match(category):
        errors["category"] = "must be a category code (lower-case letters and _)"
    elif category is not None and category not in categories:
        errors["category"] = "unknown category code"
    filters = Filters(
        first_day=first,
        end_day=end,
        town=_text("town", args.get("town"), 100, errors),
        village=_text("village", args.get("village"), 100, errors),
        grid_id=_text("grid_id", args.get("grid_id"), 64, errors),
        category=category,
    )
    return filters, {k: v for k, v in args.items() if k in extra}, errors


@dataclass(frozen=True)
class StatsQuery:
    filters: Filters
    by: str | None = None
    interval: str | None = None
    level: str | None = None
    metric: str | None = None
    order: str = "best"
    confidence: float = 0.95


def parse_summary(raw: Mapping[str, list[str]], categories: Collection[str]) -> StatsQuery:
    filters, _, errors = parse_filters(raw, categories)
    if errors:
        raise InvalidQuery(errors)
    return StatsQuery(filters)


def parse_breakdown(raw: Mapping[str, list[str]], categories: Collection[str]) -> StatsQuery:
    filters, extra, errors = parse_filters(raw, categories, ("by",))
    by = _choice("by", extra.get("by"), BREAKDOWN_BY, errors, required=True)
    if errors:
        raise InvalidQuery(errors)
    return StatsQuery(filters, by=by)


def parse_timeseries(raw: Mapping[str, list[str]], categories: Collection[str]) -> StatsQuery:
    filters, extra, errors = parse_filters(raw, categories, ("interval",))
    interval = _choice("interval", extra.get("interval"), INTERVALS, errors, required=True)
    if filters.first_day is not None and filters.end_day is not None and filters.end_day - filters.first_day > MAX_DAYS:
        errors["to"] = f"a timeseries covers at most {MAX_DAYS} days"
    if errors:
        raise InvalidQuery(errors)
    return StatsQuery(filters, interval=interval)


def parse_ranking(raw: Mapping[str, list[str]], categories: Collection[str]) -> StatsQuery:
    filters, extra, errors = parse_filters(raw, categories, ("level", "metric", "order", "confidence"))
    level = _choice("level", extra.get("level"), RANK_LEVELS, errors, required=True)
    metric = _choice("metric", extra.get("metric"), tuple(METRICS), errors, required=True)
    order = _choice("order", extra.get("order"), ORDERS, errors, required=False) or "best"
    confidence = 0.95
    if "confidence" in extra:
        try:
            confidence = float(extra["confidence"])
            if not 0.5 <= confidence < 1.0:
                raise ValueError
        except ValueError:
            errors["confidence"] = "must be a number from 0.5 to below 1"
    if errors:
        raise InvalidQuery(errors)
    return StatsQuery(filters, level=level, metric=metric, order=order, confidence=confidence)


@dataclass(frozen=True)
class AlertQuery:
    filters: Filters
    kind: str | None
    area_level: str | None
    limit: int
    cursor: tuple[str, str] | None  # (window_end, alert_id) of the last item of the previous page


def encode_cursor(window_end: str, alert_id: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([window_end, alert_id])).decode().rstrip("=")


def parse_alerts(raw: Mapping[str, list[str]], categories: Collection[str]) -> AlertQuery:
    errors: dict[str, str] = {}
    args = _single(raw, errors)
    allowed = ("from", "to", "kind", "area_level", "town", "category", "limit", "cursor")
    _check_unknown(args, allowed, errors)
    filters, _, more = parse_filters(
        {k: [v] for k, v in args.items() if k in ("from", "to", "town", "category")}, categories
    )
    errors.update(more)
    kind = _choice("kind", args.get("kind"), ALERT_KINDS, errors, required=False)
    level = _choice("area_level", args.get("area_level"), AREA_LEVELS, errors, required=False)
    limit = 100
    if "limit" in args:
        try:
            limit = int(args["limit"])
            if not 1 <= limit <= 500:
                raise ValueError
        except ValueError:
            errors["limit"] = "must be a whole number from 1 to 500"
    cursor = None
    if "cursor" in args:
        try:
            text = args["cursor"]
            end, alert_id = orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            if not isinstance(end, str) or not isinstance(alert_id, str):
                raise ValueError
            cursor = (end, alert_id)
        except (ValueError, TypeError, orjson.JSONDecodeError):
            errors["cursor"] = "not a cursor this service issued"
    if errors:
        raise InvalidQuery(errors)
    return AlertQuery(filters, kind, level, limit, cursor)
