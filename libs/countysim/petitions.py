"""Synthetic petitions for a generated county: intake request bodies plus the ground truth behind them.

Each `GeneratedPetition.body` is exactly a `POST /v1/petitions` body (CONTRACT.md)::

    {"channel": "miniprogram", "category": "drainage", "content": "...",
     "location": {"town": "城关街道", "village": "陈家庄新村", "grid_id"?: ..., "address"?: ...,
                  "lat"?: 36.47, "lon"?: 119.83},
     "citizen": {"name": "王伟", "phone": "13812345678"}}

`truth.route` is the most specific route the body allows, in the order grid_id > point > village >
triage (a point petition may also name its village; routing is expected to prefer the point):

- `grid_id`: the grid is given explicitly.
- `point`: lat/lon at least ~1 m inside the truth grid; village name given or empty.
- `village`: the village name — canonical or one of its aliases (misspellings included) — plus a free-text
  address, no coordinates; routing can resolve the village but not the grid.
- `triage`: the town only (village empty), or a village name that exists nowhere in the county.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Any, Literal, cast

from countysim import names, templates
from countysim.geometry import sample_point_inside
from countysim.model import AreaLevel, County, Grid
from countysim.sampling import normalise_shares, shuffled_quota, sub_rng
from petition_kernel.taxonomy import DEFAULT_FILE, load_categories
from petition_kernel.times import BEIJING

RouteKind = Literal["grid_id", "point", "village", "triage"]

DEFAULT_CATEGORIES_FILE = DEFAULT_FILE
CHANNEL_MIX: Mapping[str, float] = {"miniprogram": 0.45, "hotline": 0.35, "web": 0.10, "visit": 0.08, "other": 0.02}
LOCATION_MIX: Mapping[str, float] = {"grid_id": 0.35, "point": 0.35, "village": 0.22, "triage": 0.08}
# Planted hotspot petitions must all land in their area, so they carry a grid id or a point.
HOTSPOT_LOCATION_MIX: Mapping[str, float] = {"grid_id": 0.5, "point": 0.5}
ROUTE_KINDS: tuple[RouteKind, ...] = ("grid_id", "point", "village", "triage")

# Relative submission rate per local hour: busy office hours, a lunch dip, quiet nights.
HOURLY_RHYTHM = (
    0.04, 0.03, 0.02, 0.02, 0.03, 0.06, 0.15, 0.40, 0.85, 1.00, 1.00, 0.90,
    0.55, 0.60, 0.95, 1.00, 0.95, 0.80, 0.55, 0.45, 0.35, 0.25, 0.12, 0.07,
)  # fmt: skip
WEEKEND_FACTOR = 0.6


@dataclass(frozen=True)
class PetitionTruth:
    grid_id: str  # the grid the petition really concerns, whatever the body reveals
    route: RouteKind  # the route the body allows (module docstring)
    submitted_at: datetime  # timezone-aware, UTC, whole milliseconds


@dataclass(frozen=True)
class GeneratedPetition:
    body: dict[str, Any]
    truth: PetitionTruth
    idempotency_key: str  # a stable UUID to send as Idempotency-Key when replaying


def load_category_shares(path: str | Path = DEFAULT_CATEGORIES_FILE) -> dict[str, float]:
    """Category code → share of petitions, from a categories.yaml."""
    return {code: category.share for code, category in load_categories(path).items()}


@lru_cache(maxsize=1)
def _default_shares() -> dict[str, float]:
    return load_category_shares()


def generate_petitions(
    county: County,
    n: int,
    seed: int,
    start: datetime,
    days: float,
    categories: Mapping[str, float] | None = None,
    location_mix: Mapping[str, float] | None = None,
) -> list[GeneratedPetition]:
    """`n` petitions submitted over [start, start + days), sorted by submission time.

    Grids are drawn in proportion to their population. Categories (default: the shares in
    config/categories.yaml), channels (CHANNEL_MIX) and location kinds (default LOCATION_MIX) are
    stratified: their counts match the shares as closely as integers allow. Times follow a daily
    rhythm in China time (HOURLY_RHYTHM, quieter weekends). `start` must be timezone-aware.
    """
    _check_window(start, days)
    rng = sub_rng(seed, "times")
    span_ms = int(days * 86_400_000)
    times: list[datetime] = []
    while len(times) < n:
        t = start + timedelta(milliseconds=int(rng.random() * span_ms))
        local = t.astimezone(BEIJING)
        weight = HOURLY_RHYTHM[local.hour] * (WEEKEND_FACTOR if local.weekday() >= 5 else 1.0)
        if rng.random() < weight:
            times.append(t)
    shares = normalise_shares(categories if categories is not None else _default_shares(), "categories")
    mix = normalise_shares(location_mix or LOCATION_MIX, "location_mix", ROUTE_KINDS)
    return _petitions(county, county.grids, sorted(times), seed, shares, mix)


def plant_hotspot(
    county: County,
    area_level: AreaLevel,
    area_id: str,
    category: str,
    count: int,
    start: datetime,
    hours: float,
    seed: int,
    location_mix: Mapping[str, float] | None = None,
) -> list[GeneratedPetition]:
    """`count` petitions of one category in one grid, village or town within [start, start + hours).

    Times are uniform over the window and locations resolvable to a grid (HOTSPOT_LOCATION_MIX) unless
    `location_mix` says otherwise. Mix the result into a `generate_petitions` background to test
    hotspot detection.
    """
    _check_window(start, hours / 24)
    pool = county.grids_in(area_level, area_id)
    rng = sub_rng(seed, f"hotspot:{area_id}:{category}")
    span_ms = int(hours * 3_600_000)
    times = sorted(start + timedelta(milliseconds=int(rng.random() * span_ms)) for _ in range(count))
    mix = normalise_shares(location_mix or HOTSPOT_LOCATION_MIX, "location_mix", ROUTE_KINDS)
    return _petitions(county, pool, times, seed, {category: 1.0}, mix, stream=f"hotspot:{area_id}:{category}")


def _check_window(start: datetime, days: float) -> None:
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be timezone-aware (e.g. datetime(2024, 7, 1, tzinfo=UTC))")
    if days <= 0:
        raise ValueError("the time window must be positive")


def _petitions(
    county: County,
    pool: Sequence[Grid],
    times: list[datetime],
    seed: int,
    shares: Mapping[str, float],
    mix: Mapping[str, float],
    stream: str = "petitions",
) -> list[GeneratedPetition]:
    n = len(times)
    categories = shuffled_quota(sub_rng(seed, f"{stream}:categories"), n, shares)
    channels = shuffled_quota(sub_rng(seed, f"{stream}:channels"), n, CHANNEL_MIX)
    kinds = shuffled_quota(sub_rng(seed, f"{stream}:locations"), n, mix)
    grids = sub_rng(seed, f"{stream}:grids").choices(
        pool, cum_weights=list(accumulate(g.population for g in pool)), k=n
    )
    rng = sub_rng(seed, f"{stream}:details")
    out = []
    for t, category, channel, kind, grid in zip(times, categories, channels, kinds, grids, strict=True):
        location, place = _location(rng, county, grid, kind)
        body = {
            "channel": channel,
            "category": category,
            "content": templates.compose(rng, category, place),
            "location": location,
            "citizen": _citizen(rng, channel),
        }
        truth = PetitionTruth(grid.grid_id, cast(RouteKind, kind), t.astimezone(UTC))
        out.append(GeneratedPetition(body, truth, str(uuid.UUID(int=rng.getrandbits(128), version=4))))
    return out


def _location(rng: random.Random, county: County, grid: Grid, kind: str) -> tuple[dict[str, Any], str]:
    """The body's `location` for one route kind, and how the content refers to the place."""
    village = county.villages_by_id[grid.village_id]
    town = county.towns_by_id[grid.town_id].name
    address = templates.address(rng)
    location: dict[str, Any]
    if kind == "grid_id":
        location = {"town": town, "village": village.name, "grid_id": grid.grid_id}
        if rng.random() < 0.5:
            location["address"] = address
        typed = village.name
    elif kind == "point":
        lon, lat = sample_point_inside(grid.polygon, rng)
        typed = village.name if rng.random() < 0.5 else ""
        location = {"town": town, "village": typed, "lat": lat, "lon": lon}
        if rng.random() < 0.3:
            location["address"] = address
    elif kind == "village":
        typed = village.name if rng.random() < 0.6 else rng.choice(village.aliases)
        location = {"town": town, "village": typed, "address": address}
    else:  # triage: nothing that identifies a village
        typed = "" if rng.random() < 0.5 else names.unknown_place_name(rng)
        location = {"town": town, "village": typed}
        if typed:
            location["address"] = address
    place = f"{typed}{address}" if typed and rng.random() < 0.8 else templates.vague_place(rng)
    return location, place


def _citizen(rng: random.Random, channel: str) -> dict[str, str]:
    # hotline operators often record only 王先生 / 李女士, and some callers ring from a landline
    if channel == "hotline" and rng.random() < 0.25:
        name = names.surname(rng) + rng.choice(("先生", "女士"))
    else:
        name = names.person_name(rng)
    phone = names.landline_phone(rng) if channel == "hotline" and rng.random() < 0.15 else names.mobile_phone(rng)
    return {"name": name, "phone": phone}
