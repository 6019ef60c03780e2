"""Binomial intervals for shares counted on a sample: the Wilson score bound. Pure math."""

from __future__ import annotations

import math

#: One-sided 95% normal quantile.
Z_95 = 1.6449


def wilson_lower(correct: int, n: int, z: float = Z_95) -> float:
    """Lower end of the Wilson score interval for ``correct`` successes out of ``n``."""
    if n <= 0:
        return 0.0
    p = correct / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n)
