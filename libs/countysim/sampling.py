"""Seeded randomness helpers shared by the county and petition generators."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence


def sub_rng(seed: int, stream: str) -> random.Random:
    """An independent generator per concern (layout, names, times...).

    Separate streams keep outputs stable when an unrelated knob changes: a different category mix
    must not move every submission time. String seeds are hashed with SHA-512 by `random.Random`,
    so this does not depend on PYTHONHASHSEED.
    """
    return random.Random(f"{seed}:{stream}")


def apportion(total: int, weights: Sequence[float], minimum: int = 0) -> list[int]:
    """Split `total` into integer parts proportional to `weights` (largest remainder method).

    Every part gets at least `minimum`. Ties are broken by position, so the result is deterministic.
    """
    if total < minimum * len(weights):
        raise ValueError(f"cannot give {len(weights)} parts at least {minimum} out of {total}")
    weight_sum = float(sum(weights))
    if any(w < 0 for w in weights) or weight_sum <= 0:
        raise ValueError("weights must be non-negative with a positive sum")
    spare = total - minimum * len(weights)
    exact = [spare * w / weight_sum for w in weights]
    parts = [int(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - parts[i]), i))
    for i in by_remainder[: spare - sum(parts)]:
        parts[i] += 1
    return [p + minimum for p in parts]


def shuffled_quota(rng: random.Random, n: int, shares: Mapping[str, float]) -> list[str]:
    """`n` labels whose counts match `shares` as closely as integers allow, in random order.

    Stratified rather than drawn independently, so that even a small sample has the configured mix
    (benchmarks and tests compare against the shares).
    """
    labels = list(shares)
    counts = apportion(n, [shares[label] for label in labels])
    out = [label for label, count in zip(labels, counts, strict=True) for _ in range(count)]
    rng.shuffle(out)
    return out


def normalise_shares(shares: Mapping[str, float], what: str, allowed: Sequence[str] | None = None) -> dict[str, float]:
    """Validate a label → share mapping and scale it to sum to 1."""
    if not shares:
        raise ValueError(f"{what}: empty mix")
    unknown = sorted(set(shares) - set(allowed)) if allowed is not None else []
    if unknown:
        raise ValueError(f"{what}: unknown keys {unknown}; allowed {list(allowed or [])}")
    if any(v < 0 for v in shares.values()) or sum(shares.values()) <= 0:
        raise ValueError(f"{what}: shares must be non-negative with a positive sum")
    total = float(sum(shares.values()))
    return {k: v / total for k, v in shares.items()}
