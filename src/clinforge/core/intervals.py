"""Confidence intervals shared by every layer (de-identification scores, review results, benchmarks).

One implementation, so that a proportion reported by ``benchmarks/deid.py``, the de-identification scorer and the
review app's results page carries the same interval (``tests/test_deid_physionet.py`` checks it against
statsmodels' ``proportion_confint(method="wilson")``).
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of the proportion k/n, clipped to [0, 1]; ``(nan, nan)`` when n is 0.

    Example:
        >>> [round(x, 4) for x in wilson(8, 10)]
        [0.4902, 0.9433]
    """
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)
