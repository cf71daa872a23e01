import itertools
import math
from fractions import Fraction

import pytest

from services.stats.domain.poisson import critical_count, poisson_sf


def _reference_sf(k: int, mu: int) -> float:
    """1 - CDF with exact rational partial sums (integer mu), for moderate values."""
    lower = sum(Fraction(mu**i, math.factorial(i)) for i in range(k))
    return float(1 - lower * Fraction(math.exp(-mu)))


@pytest.mark.parametrize(("k", "mu"), [(1, 1), (5, 1), (10, 2), (3, 5), (12, 5), (20, 10)])
def test_sf_matches_a_direct_sum(k, mu):
    assert poisson_sf(k, mu) == pytest.approx(_reference_sf(k, mu), rel=1e-9)


def test_known_values():
    assert poisson_sf(5, 1.0) == pytest.approx(0.0036598468273437, rel=1e-12)
    assert poisson_sf(1, 1.0) == pytest.approx(1 - math.exp(-1), rel=1e-12)


def test_tiny_tails_keep_relative_precision():
    # P(X >= 100 | 1) = e^-1 * sum_{i>=100} 1/i!, dominated by its first term
    first = math.exp(-1 - math.lgamma(101))
    assert poisson_sf(100, 1.0) == pytest.approx(first * (1 + 1 / 101 + 1 / (101 * 102)), rel=1e-9)
    assert 0.0 < poisson_sf(1500, 1000.0) < 1e-40


def test_edges():
    assert poisson_sf(0, 3.0) == 1.0
    assert poisson_sf(-2, 3.0) == 1.0
    assert poisson_sf(1, 0.0) == 0.0
    with pytest.raises(ValueError):
        poisson_sf(1, -1.0)
    with pytest.raises(ValueError):
        poisson_sf(1, math.inf)


def test_sf_decreases_in_k_and_increases_in_mu():
    tails = [poisson_sf(k, 4.0) for k in range(30)]
    assert all(a > b for a, b in itertools.pairwise(tails))
    assert poisson_sf(8, 3.0) < poisson_sf(8, 3.5)


@pytest.mark.parametrize("mu", [0.05, 0.9, 2.5, 4.7, 30.0])
@pytest.mark.parametrize("alpha", [1e-3, 1e-5])
def test_critical_count_is_the_smallest_alarming_count(mu, alpha):
    k = critical_count(mu, alpha)
    assert poisson_sf(k, mu) < alpha <= poisson_sf(k - 1, mu)
