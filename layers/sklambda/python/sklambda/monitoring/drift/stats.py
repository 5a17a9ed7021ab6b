"""Vectorised two-sample statistics between a baseline summary (counts per bin/category) and a live window.

The card keeps summaries, not training rows, so every test works on counts: the baseline's counts are its
shares times its row count, which makes each test a two-sample test that accounts for the baseline's own
sampling noise (a one-sample test against the baseline shares would flag that noise on large windows).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps


def psi(expected: np.ndarray, actual: np.ndarray, epsilon: float) -> float:
    """Population stability index of two count vectors over the same bins; empty bins get ``epsilon`` share."""
    e, a = _shares(expected, epsilon), _shares(actual, epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def js_distance(expected: np.ndarray, actual: np.ndarray) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) of two count vectors over the same categories."""
    p, q = _shares(expected, 0.0), _shares(actual, 0.0)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum()
        kl_q = np.where(q > 0, q * np.log2(q / m), 0.0).sum()
    return float(math.sqrt(max(0.0, (kl_p + kl_q) / 2)))


def chi2_homogeneity(expected: np.ndarray, actual: np.ndarray, min_expected: float) -> tuple[float, float]:
    """Chi-square test that two count vectors come from one distribution: (statistic, p-value).

    Columns whose expected count is below ``min_expected`` in either row are merged into one bucket.
    """
    table = np.vstack([np.asarray(expected, float), np.asarray(actual, float)])
    total = table.sum()
    rows = table.sum(axis=1)
    if total <= 0 or (rows <= 0).any():
        return 0.0, 1.0
    exp = np.outer(rows, table.sum(axis=0)) / total
    small = (exp < min_expected).any(axis=0)
    if small.any():
        table = np.hstack([table[:, ~small], table[:, small].sum(axis=1, keepdims=True)])
        table = table[:, table.sum(axis=0) > 0]
        exp = np.outer(rows, table.sum(axis=0)) / total
    if table.shape[1] < 2:
        return 0.0, 1.0
    stat = float(((table - exp) ** 2 / exp).sum())
    return stat, float(sps.chi2.sf(stat, table.shape[1] - 1))


def binned_ks(expected: np.ndarray, actual: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov on binned data: the largest CDF gap at the bin edges, and its p-value.

    Evaluated at the baseline's quantile edges only, so the statistic is a lower bound of the raw KS
    statistic and the p-value (asymptotic, with the usual small-sample correction) is conservative.
    """
    e, a = np.asarray(expected, float), np.asarray(actual, float)
    n, m = e.sum(), a.sum()
    if n <= 0 or m <= 0 or len(e) < 2:
        return 0.0, 1.0
    d = float(np.abs(np.cumsum(e)[:-1] / n - np.cumsum(a)[:-1] / m).max())
    en = math.sqrt(n * m / (n + m))
    return d, float(min(1.0, sps.kstwobign.sf((en + 0.12 + 0.11 / en) * d)))


def proportion_test(x1: float, n1: float, x2: float, n2: float) -> tuple[float, float]:
    """Cohen's h of two proportions (signed, second minus first) and the arcsine test's two-sided p-value.

    The arcsine transform stabilises the variance (1/n), so the test behaves for proportions near 0, where the
    pooled z-test calls one null in a window of a never-null feature significant.
    """
    if n1 <= 0 or n2 <= 0:
        return 0.0, 1.0
    p1, p2 = min(max(x1 / n1, 0.0), 1.0), min(max(x2 / n2, 0.0), 1.0)
    h = 2 * math.asin(math.sqrt(p2)) - 2 * math.asin(math.sqrt(p1))
    z = abs(h) / math.sqrt(1 / n1 + 1 / n2)
    return h, float(2 * sps.norm.sf(z))


def adjust(p_values: list[float], method: str) -> list[float]:
    """Holm (family-wise error) or Benjamini-Hochberg (false discovery rate) adjusted p-values, input order."""
    p = np.asarray(p_values, float)
    m = len(p)
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        adj = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ranked))
    elif method == "bh":
        adj = np.minimum.accumulate((m * ranked / np.arange(1, m + 1))[::-1])[::-1]
        adj = np.minimum(1.0, adj)
    else:
        raise ValueError(f"unknown correction {method!r}")
    out = np.empty(m)
    out[order] = adj
    return out.tolist()


def _shares(counts: np.ndarray, epsilon: float) -> np.ndarray:
    c = np.asarray(counts, float)
    total = c.sum()
    s = c / total if total > 0 else np.full(len(c), 1.0 / max(len(c), 1))
    return np.maximum(s, epsilon) if epsilon else s
