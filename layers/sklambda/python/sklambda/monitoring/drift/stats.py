"""Vectorised two-sample statistics between a baseline summary (counts per bin/category) and a live window.

The card keeps summaries, not training rows, so every test works on counts: the baseline's counts are its
shares times its row count, which makes each test a two-sample test that accounts for the baseline's own
sampling noise (a one-sample test against the baseline shares would flag that noise on large windows).

Combining: ``cauchy_combination`` merges the dependent tests of one column into one p-value, ``adjust`` corrects
the columns' p-values for their number.
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


def rank_sum(expected: np.ndarray, actual: np.ndarray) -> tuple[float, float]:
    """Wilcoxon-Mann-Whitney rank-sum test on two count vectors over the same ordered bins: (rank-biserial, p-value).

    Each bin is one block of ties (midranks); the variance has the tie correction, so the test is exact in its
    normal approximation for grouped data (Lehmann 1975, "Nonparametrics", ch. 1.4). The rank-biserial correlation
    2U/(nm) - 1 (Cureton 1956) is in [-1, 1], positive when the live values lie higher. Grouping into ~10 bins costs
    power when a shift is small next to a bin's width (only values crossing an edge count), but of the tests the
    bins allow it is the one aimed at a shift, which chi-square spreads over every direction of change. Returns
    (0, 1) when a sample is empty.
    """
    e, a = np.asarray(expected, float), np.asarray(actual, float)
    n, m = e.sum(), a.sum()
    if n <= 0 or m <= 0 or len(e) < 2:
        return 0.0, 1.0
    t = e + a
    total = n + m
    midranks = np.cumsum(t) - (t - 1) / 2
    u = float((a * midranks).sum() - m * (m + 1) / 2)
    var = n * m / 12 * ((total + 1) - float((t**3 - t).sum()) / (total * (total - 1)))
    if var <= 0:
        return 0.0, 1.0
    z = (u - n * m / 2) / math.sqrt(var)
    return 2 * u / (n * m) - 1, float(2 * sps.norm.sf(abs(z)))


def exceedance_test(training_beyond: int, training_rows: int, beyond: int, rows: int, *, two_sided: bool) -> float:
    """p-value of ``beyond`` of ``rows`` live values lying past a training order statistic that ``training_beyond`` of
    ``training_rows`` training values lie past.

    Under exchangeability (same continuous distribution), the number of m new values beyond the r-th most extreme
    of N training values is beta-binomial(m, r, N + 1 - r) (Gumbel & von Schelling 1950, "The distribution of the
    number of exceedances", Ann. Math. Stat. 21); here r = training_beyond + 1, as the edge is the first value not
    beyond it. The law carries the training sample's own noise, so it stays calibrated when the window is much
    larger than the training set, where a binomial against the training share would not. Beyond both ends of the
    training range (r = 1 each side) counts as beyond the second most extreme value of one side (r = 2): the N + 1
    gaps of the training sample are exchangeable. Ties at the edge make the upper tail conservative.

    two_sided: also small when fewer values than expected lie beyond (a clipped tail); otherwise only "more".
    """
    if training_rows <= 0 or rows <= 0:
        return 1.0
    # The distribution's methods, not a frozen one: freezing builds a new instance and its docstrings on every call,
    # six times the cost of the sf itself.
    law = (int(rows), training_beyond + 1, training_rows - training_beyond)
    upper = float(sps.betabinom.sf(beyond - 1, *law))
    if not two_sided:
        return min(1.0, upper)
    return min(1.0, 2 * min(upper, float(sps.betabinom.cdf(beyond, *law))))


def correlation_test(
    r_baseline: np.ndarray, n_baseline: float, r_live: np.ndarray, n_live: float
) -> tuple[np.ndarray, np.ndarray]:
    """Two-sample test of Spearman correlations, elementwise: (Fisher z difference, two-sided p-values).

    z = atanh(r); its variance (1 + r^2 / 2) / (n - 3) is Bonett & Wright's (2000, Psychometrika 65) for Spearman's
    rho, which holds beyond the bivariate normal better than Fieller, Hartley & Pearson's 1.06 / (n - 3).
    """
    rb = np.clip(np.asarray(r_baseline, float), -0.9999, 0.9999)
    rl = np.clip(np.asarray(r_live, float), -0.9999, 0.9999)
    if n_baseline <= 3 or n_live <= 3:
        return np.zeros_like(rb), np.ones_like(rb)
    se = np.sqrt((1 + rb**2 / 2) / (n_baseline - 3) + (1 + rl**2 / 2) / (n_live - 3))
    dz = np.arctanh(rl) - np.arctanh(rb)
    return dz, 2 * sps.norm.sf(np.abs(dz) / se)


def spearman(matrix: np.ndarray) -> np.ndarray:
    """Spearman's rank correlation matrix of the columns of ``matrix`` ([rows, columns], no NaN): Pearson's on
    average ranks (ties share their midrank). A constant column correlates 0 with every other."""
    ranks = sps.rankdata(matrix, axis=0)
    ranks -= ranks.mean(axis=0)
    norms = np.sqrt((ranks**2).sum(axis=0))
    norms[norms == 0] = np.inf
    ranks /= norms
    return ranks.T @ ranks


def cauchy_combination(p_values: list[float], weights: list[float]) -> float:
    """One p-value for several dependent tests of one hypothesis: the Cauchy combination (Liu & Xie 2020, JASA 115,
    "Cauchy combination test: a powerful test with analytic p-value calculation under arbitrary dependency structures").

    T = sum w_i tan((1/2 - p_i) pi), with weights summing to 1, is standard Cauchy when the tests are independent, and
    its upper tail stays that of a standard Cauchy under any dependence of bivariate-normal type: the p-value
    1/2 - arctan(T)/pi is valid at the small levels used here, and close to the smallest p_i / w_i when one test is
    strong, to the p_i when all agree. p-values above 1/2 count as 1/2 (their terms as 0): a test that cannot fire (a
    never-null feature's null-rate test has p = 1 exactly, whose term is minus infinity) would otherwise cancel the
    others; dropping negative terms only moves T by O(1), against the T ~ 1 / (pi alpha) at stake. Empty input: 1.
    """
    if not p_values:
        return 1.0
    p = np.clip(np.asarray(p_values, float), 1e-300, 0.5)
    w = np.asarray(weights, float)
    w = w / w.sum()
    small = p < 1e-15  # tan((1/2 - p) pi) = 1 / (p pi) to double precision, without its cancellation
    terms = np.where(small, 1 / (np.maximum(p, 1e-300) * math.pi), np.tan((0.5 - p) * math.pi))
    t = float((w * terms).sum())
    if t > 1e15:
        return min(1.0, 1 / (t * math.pi))
    return float(min(1.0, max(0.0, 0.5 - math.atan(t) / math.pi)))


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
