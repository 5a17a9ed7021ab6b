"""Pure helpers: percentiles, ratios and verdicts. No timing here, so the tests can cover all of it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

PASS, MISS = "PASS", "MISS"


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of an empty sample")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def ratio(measured: float, baseline: float) -> float:
    if baseline <= 0:
        raise ValueError(f"baseline must be positive, got {baseline}")
    return measured / baseline


def verdict(value: float, target: float) -> str:
    """PASS when `value` (a ratio or a size: smaller is better) is at most `target`."""
    return PASS if value <= target else MISS


@dataclass(frozen=True)
class Spread:
    """Median and interquartile range of a sample: how stable a repeated ratio was on a noisy machine."""

    median: float
    p25: float
    p75: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(median(values), percentile(values, 25), percentile(values, 75), len(values))

    def __str__(self) -> str:
        return f"{self.median:.2f}x (IQR {self.p25:.2f}-{self.p75:.2f}, n={self.n})"


def interleaved_order(rounds: int) -> list[tuple[str, str]]:
    """ABBA order of the two arms per round, so neither always runs first (warm caches, turbo, drift)."""
    return [("subject", "baseline") if r % 2 == 0 else ("baseline", "subject") for r in range(rounds)]
