"""Poisson upper tail with the standard library only (scipy is not a dependency)."""

from __future__ import annotations

import math


def poisson_sf(k: int, mu: float) -> float:
    """P(X >= k) for X ~ Poisson(mu).

    For k > mu the tail is summed upwards from the k-th term, which is computed in log space with
    lgamma; the terms then shrink geometrically (ratio mu/(i+1) < 1), so tails as small as 1e-300
    come out with full relative precision, where 1 - CDF would cancel to 0. For k <= mu the tail is
    at least about one half and 1 - P(X < k) is accurate.
    """
    if not (mu >= 0.0 and math.isfinite(mu)):
        raise ValueError(f"mu must be finite and >= 0, got {mu}")
    if k <= 0:
        return 1.0
    if mu == 0.0:
        return 0.0
    log_mu = math.log(mu)
    if k > mu:
        term = math.exp(-mu + k * log_mu - math.lgamma(k + 1))
        total, i = term, k
        while term > total * 1e-17:
            i += 1
            term *= mu / i
            total += term
        return min(1.0, total)
    lower = math.fsum(math.exp(-mu + i * log_mu - math.lgamma(i + 1)) for i in range(k))
    return max(0.0, 1.0 - lower)


def critical_count(mu: float, alpha: float) -> int:
    """The smallest k with P(X >= k | Poisson(mu)) < alpha: the count that would raise an alarm."""
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    k = math.floor(mu)  # the tail there is about 1/2, so for any sensible alpha the answer is above
    if poisson_sf(k, mu) < alpha:
        k = 0
    while poisson_sf(k, mu) >= alpha:
        k += 1
    return k
