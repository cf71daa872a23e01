"""Positions for "near me" are kept as ~100 m cells and distances told in 100 m bands."""

from __future__ import annotations

import random

from services.intake import domain


def test_every_point_of_a_cell_has_the_same_centre_within_the_cell() -> None:
    rng = random.Random(3)
    for _ in range(1000):
        lat, lon = rng.uniform(-89.9, 89.9), rng.uniform(-179.9, 179.9)
        c_lat, c_lon = domain.coarse_point(lat, lon)
        assert abs(c_lat - lat) <= domain.CELL_DEGREES / 2 + 1e-9
        assert abs(c_lon - lon) <= domain.CELL_DEGREES / 2 + 1e-9
        assert domain.coarse_point(c_lat, c_lon) == (c_lat, c_lon)
    assert domain.coarse_point(36.21013, 120.05021) == domain.coarse_point(36.21049, 120.05099)


def test_distances_are_told_in_bands_of_100_m() -> None:
    assert [domain.distance_band(d) for d in (0, 0.3, 99.9, 100, 100.1, 950)] == [100, 100, 100, 100, 200, 1000]
