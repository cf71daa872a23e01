"""The rates the county reports (the table RATES, the one definition of each), their Wilson score
intervals, and a ranking that is fair to small areas. Stats computes every rate it answers with
(summary, breakdown, timeseries, ranking) from this table; a wrong rate is fixed here.

Definitions (CONTRACT.md, "Definitions the statistics must use"); counts are per cohort of petitions
accepted in the reporting period, selected by `submitted_at`:

- accepted (受理): petitions submitted and not rejected as invalid.
- response rate (响应率) = contacted on time / accepted. "Contacted on time": the first
  `petition.contacted` lies within the contact deadline (default 6 hours).
- closure rate (办结率, the resolution rate) = closed / accepted. "Closed": the petition has a
  `petition.closed` event.
- satisfaction rate (满意率) = (satisfied + basically_satisfied) / petitions with feedback.
- replied-on-time rate = replied on time / accepted (reported, not ranked).

Wilson score interval for x successes out of n at confidence 1 - a, with z = Φ⁻¹(1 - a/2), p = x/n:

    centre    = (p + z²/(2n)) / (1 + z²/n)
    halfwidth = z / (1 + z²/n) · sqrt(p(1 - p)/n + z²/(4n²))
    interval  = [centre - halfwidth, centre + halfwidth]

Unlike the normal ("Wald") interval it stays inside [0, 1] and is honest for p near 0 or 1 and for
small n, which is exactly where a village with 3 petitions sits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, NamedTuple


class RateEstimate(NamedTuple):
    """A proportion with its interval. `rate` is None when n = 0 (nothing to divide by)."""

    rate: float | None
    low: float
    high: float
    n: int


def wilson(successes: int, n: int, confidence: float = 0.95) -> RateEstimate:
    """The rate successes/n with its Wilson score interval (formula in the module docstring).

    n = 0 gives rate None and the uninformative interval [0, 1].
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"need 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return RateEstimate(None, 0.0, 1.0, 0)
    z = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z / (1.0 + z2n) * math.sqrt(p * (1.0 - p) / n + z2n / (4.0 * n))
    # The exact bounds at x = 0 and x = n are 0 and 1; pin them against rounding.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return RateEstimate(p, low, high, n)


@dataclass(frozen=True)
class Rate:
    """A rate as numerator fields over a denominator field of a row of counts (stats' counter names).

    `name` is its key in the `rates` of a Counts object; `metric` its name as a ranking metric (the
    response rate is reported as `contacted_on_time_rate`), None if areas are not ranked by it.
    """

    name: str
    numerator: tuple[str, ...]
    denominator: str
    definition: str
    metric: str | None = None

    def counts(self, row: Mapping[str, Any]) -> tuple[int, int]:
        """(successes, n) of this rate in `row`."""
        missing = [k for k in (*self.numerator, self.denominator) if k not in row]
        if missing:
            raise KeyError(f"{self.name}: row {row.get('id')!r} lacks {missing}")
        return sum(int(row[k]) for k in self.numerator), int(row[self.denominator])

    def of(self, row: Mapping[str, Any]) -> float | None:
        """The rate in `row`: successes / n, None when n is 0 (nothing to divide by)."""
        successes, n = self.counts(row)
        return successes / n if n else None


CLOSURE_RATE = Rate("closure_rate", ("closed",), "accepted", "closed (petition.closed seen) / accepted", "closure_rate")
RESPONSE_RATE = Rate(
    "contacted_on_time_rate",
    ("contacted_on_time",),
    "accepted",
    "contacted on time (first contact within the contact deadline, default 6 h) / accepted",
    "response_rate",
)
REPLIED_ON_TIME_RATE = Rate(
    "replied_on_time_rate",
    ("replied_on_time",),
    "accepted",
    "replied on time (first reply within the reply deadline, 5 working days) / accepted",
)
SATISFACTION_RATE = Rate(
    "satisfaction_rate",
    ("satisfied", "basically_satisfied"),
    "feedback",
    "(satisfied + basically_satisfied) / petitions with feedback",
    "satisfaction_rate",
)
# THE table: every rate stats reports (summary, breakdown, timeseries) in the order it reports them
RATES: tuple[Rate, ...] = (CLOSURE_RATE, RESPONSE_RATE, REPLIED_ON_TIME_RATE, SATISFACTION_RATE)
# the rates areas are ranked by, by metric name (the ranking's `metric` parameter)
METRICS: dict[str, Rate] = {r.metric: r for r in (RESPONSE_RATE, CLOSURE_RATE, SATISFACTION_RATE) if r.metric}


def rates(row: Mapping[str, Any]) -> dict[str, float | None]:
    """Every rate of RATES in a row of counts: the `rates` object of the contract's Counts."""
    return {r.name: r.of(row) for r in RATES}


@dataclass(frozen=True)
class RankedRow:
    """One area in a ranking: its raw rate, sample size, interval and 1-based rank."""

    rank: int
    id: str
    rate: float | None
    low: float
    high: float
    count: int
    successes: int
    row: Mapping[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.row,
            "id": self.id,
            "rank": self.rank,
            "rate": self.rate,
            "ci_low": self.low,
            "ci_high": self.high,
            "count": self.count,
            "successes": self.successes,
        }


def rank(
    rows: Iterable[Mapping[str, Any]],
    metric: str | Rate,
    *,
    confidence: float = 0.95,
    worst_first: bool = False,
    id_key: str = "id",
) -> list[RankedRow]:
    """Rank areas (towns, villages, grids) by a rate, without rewarding small samples.

    Each row holds an id and the metric's count fields (e.g. `{"id": "v1", "closed": 9,
    "accepted": 10}`). Best first, areas are ordered by the lower bound of the Wilson interval: an
    area ranks high only if its rate is high *with confidence*, so 3/3 (lower bound 0.44) sits below
    940/1000 (0.92). With `worst_first`, areas are ordered by the upper bound, ascending, so that an
    area is at the bottom only if its rate is surely low (0/3 has upper bound 0.56 and does not sink
    below 500/1000). Ties go to the larger count (more evidence), then to the smaller id.
    Areas with no petitions (n = 0, interval [0, 1]) end up last either way.
    """
    m = METRICS[metric] if isinstance(metric, str) else metric
    scored = []
    for row in rows:
        successes, n = m.counts(row)
        est = wilson(successes, n, confidence)
        scored.append((str(row[id_key]), est, successes, row))

    def order(item: tuple[str, RateEstimate, int, Mapping[str, Any]]) -> tuple[float, int, int, str]:
        area_id, est, _, _ = item
        bound = est.high if worst_first else -est.low
        return (est.n == 0, bound, -est.n, area_id)

    return [
        RankedRow(i, area_id, est.rate, est.low, est.high, est.n, successes, row)
        for i, (area_id, est, successes, row) in enumerate(sorted(scored, key=order), start=1)
    ]
