"""Automatic canary rollback: is the canary version of an alias worse than its stable version beyond the bounds?

Both versions answer the same alias, callers split between them at random (Canary.takes hashes the caller key), so
their captured requests since the canary started are two independent samples of the same traffic. Three comparisons,
each a one-sided test of "the canary is worse than the stable version by more than the bound" (a non-inferiority
margin, so an equal canary sits far inside the null and repeated checks rarely reject it):

- error rate (error records / requests): the Farrington-Manning score test of a risk difference above `delta`
  (Farrington & Manning 1990, "Test statistics and sample size formulae for comparative binomial trials with null
  hypothesis of non-zero risk difference or non-unity relative risk", Statistics in Medicine 9:1447-1454; the
  restricted maximum-likelihood rates in closed form, their appendix). The difference's interval is Newcombe's hybrid
  score interval (Newcombe 1998, "Interval estimation for the difference between independent proportions",
  Statistics in Medicine 17:873-890, method 10) from the two Wilson intervals.
- latency (per-request latency_ms): the p50 ratio canary / stable. Test: the one-sided Mann-Whitney U test of the
  canary's latencies divided by the bound against the stable version's (Mann & Whitney 1947, Annals of Mathematical
  Statistics 18:50-60): under a scale model (one version's latencies a multiple of the other's), it tests whether that
  multiple, the ratio of the medians, is above the bound. Interval: the Hodges-Lehmann interval of the shift of the
  log latencies, inverted from the same U statistic (Hollander, Wolfe & Chicken 2014, "Nonparametric Statistical
  Methods", 3rd ed., section 4.3), exponentiated into a ratio.
- quality on labeled rows (once labels exist): the card's main metric (the scoring of its permutation importance:
  ROC AUC for a binary classifier with probabilities, accuracy for other classifiers, R² for regressors) of each
  version on its own labeled rows, with model_quality.metrics' standard errors. The two samples are independent
  (different callers: not paired), so the drop's variance is the sum of theirs; a one-sided Wald z-test of a drop
  above `max_quality_drop`.

The p-values of the comparisons that could be made are adjusted with Holm's step-down procedure (Holm 1979, "A simple
sequentially rejective multiple test procedure", Scandinavian Journal of Statistics 6:65-70); a bound is violated when
its adjusted p-value is at most the level of this check. The check is repeated (every few minutes, as requests
arrive), so early checks spend little of `alpha`: the level is the O'Brien-Fleming-type spending function of Lan &
DeMets (1983, "Discrete sequential boundaries for clinical trials", Biometrika 70:659-663),
alpha(t) = 2 (1 - Φ(z_{1 - alpha/2} / √t)), at the information fraction t = fewest requests of a version / min_requests
(capped at 1). It is used as each check's nominal level (not the increment between looks, which would need the looks'
correlation): a simplification the rollout benchmark measures (an equal canary checked 10 times on its way to 200
requests). With it, a canary has to be overwhelmingly worse to be rolled back on its first requests (15 errors in 40
against 2 in 300 is), and is held to `alpha` from min_requests on.
Verdict: `rolled_back` as soon as a bound is violated (a broken canary must not wait for min_requests), else
`collecting` until each version has `min_requests` requests, else `healthy`. Displayed intervals are two-sided 95 %
(model_quality.metrics.DEFAULT_CONFIDENCE), the decisions one-sided at the check's level.

Layout in the data bucket:
    reports/rollout/<model>/<alias>/latest.json | .html     the last check's verdict, rewritten by every check
    reports/rollout/<model>/<alias>/<check time>.json | .html   kept for every rolled_back verdict
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from sklambda.monitoring.ground_truth.store import read_labels
from sklambda.monitoring.model_quality.degradation import _holm
from sklambda.monitoring.model_quality.join import ID, LABEL, join_labels
from sklambda.monitoring.model_quality.metrics import (
    DEFAULT_CONFIDENCE,
    HIGHER_IS_BETTER,
    NAN_ESTIMATE,
    Estimate,
    wilson,
    window_metrics,
)
from sklambda.registry.card import CLASSIFICATION, REGRESSION, ModelCard
from sklambda.registry.signing import CardVerifier, read_card
from sklambda.registry.store import AliasRecord, Registry
from sklambda.updating.traffic import ERROR_OUTCOME, AliasTraffic, read_alias_traffic, since

COLLECTING, HEALTHY, ROLLED_BACK = "collecting", "healthy", "rolled_back"
VERDICT_FORMAT = "sklambda.updating.canary-verdict/v1"
REPORT_PREFIX = "reports/rollout/"
ERROR_RATE, LATENCY = "error_rate", "latency_p50_ratio"
# Below this many labeled rows per version the quality comparison is not made: the metrics' normal intervals need
# a few dozen rows (the usual central-limit rule of thumb), and until then errors and latency decide alone.
MIN_LABELED_ROWS = 30
# Latencies are clipped to this (ms) before their logarithm: a scoring time rounded to 0 ms is still a time.
MIN_LATENCY_MS = 1e-3


@dataclass(frozen=True)
class RolloutBounds:
    """How much worse than the stable version a canary may be before it is rolled back automatically.

    max_error_rate_increase: canary error rate - stable error rate, as a fraction (0.01 = one percentage point).
    max_latency_ratio: canary p50 latency / stable p50 latency (1.5 = 50 % slower).
    max_quality_drop: stable - canary in the main metric's units (larger-is-better metrics; the reverse otherwise).
    min_requests: requests per version before a canary can be called healthy.
    alpha: one-sided level of each test, family-wise across the three (Holm).
    Raises ValueError for a negative increase or drop, a ratio below 1, min_requests below 1 or alpha outside (0, 1).
    """

    max_error_rate_increase: float = 0.01
    max_latency_ratio: float = 1.5
    max_quality_drop: float = 0.02
    min_requests: int = 200
    alpha: float = 0.05

    def __post_init__(self) -> None:
        if not 0 <= self.max_error_rate_increase < 1:
            raise ValueError(f"max_error_rate_increase must be in [0, 1), got {self.max_error_rate_increase}")
        if not self.max_latency_ratio >= 1:
            raise ValueError(f"max_latency_ratio must be at least 1, got {self.max_latency_ratio}")
        if not self.max_quality_drop >= 0:
            raise ValueError(f"max_quality_drop must be at least 0, got {self.max_quality_drop}")
        if self.min_requests < 1:
            raise ValueError(f"min_requests must be at least 1, got {self.min_requests}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, every field."""
        return asdict(self)


def rollout_bounds_from(settings: Mapping[str, Any] | None) -> RolloutBounds:
    """RolloutBounds with `settings` (e.g. Canary.bounds: only the values given at promote) over the defaults.

    Raises ValueError naming unknown keys, or a value RolloutBounds refuses (or that is not a number).
    """
    known = {f.name: f.type for f in fields(RolloutBounds)}
    unknown = sorted(set(settings or {}) - set(known))
    if unknown:
        raise ValueError(f"unknown rollout bound(s) {unknown}; known: {sorted(known)}")
    values: dict[str, Any] = {}
    for name, value in (settings or {}).items():
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"rollout bound {name} must be a number, got {value!r}")
        try:
            values[name] = int(value) if name == "min_requests" else float(value)
        except ValueError:
            raise ValueError(f"rollout bound {name} must be a number, got {value!r}") from None
    return RolloutBounds(**values)


def main_metric(task: str, has_probabilities: bool, classes: int) -> str:
    """The metric quality is compared on: as the card's permutation importance scores (publishing.publisher)."""
    if task == REGRESSION:
        return "r2"
    return "roc_auc" if has_probabilities and classes == 2 else "accuracy"


@dataclass(frozen=True)
class LabeledQuality:
    """The main metric of each version on its labeled rows: `metric`, {version: Estimate}, {version: labeled rows}."""

    metric: str
    estimates: Mapping[str, Estimate]
    rows: Mapping[str, int]


@dataclass(frozen=True)
class Comparison:
    """One bound checked: canary against stable.

    metric: error_rate, latency_p50_ratio or the quality metric's name. test: farrington_manning, mann_whitney or
    wald_z. stable, canary: each version's figure (error rate, p50 ms, metric value). difference: canary - stable
    (error rate), canary / stable (latency), stable - canary for a larger-is-better metric (quality drop).
    interval: its two-sided 95 % interval. bound: the RolloutBounds value it is held to. p_value: one-sided, of "worse
    by more than the bound"; p_adjusted: Holm-adjusted. available: False when the data cannot say (no requests, no
    labels): then only `text` explains. violated: p_adjusted <= alpha.
    """

    metric: str
    test: str
    bound: float
    available: bool
    text: str
    stable: float | None = None
    canary: float | None = None
    difference: float | None = None
    interval: tuple[float | None, float | None] | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    violated: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (non-finite numbers as None)."""
        out = asdict(self)
        for key in ("stable", "canary", "difference", "p_value", "p_adjusted"):
            out[key] = _num(out[key])
        out["interval"] = None if self.interval is None else [_num(v) for v in self.interval]
        return out


@dataclass(frozen=True)
class VersionFigures:
    """One version's traffic since the canary started: requests, error records among them, the error rate with its
    Wilson interval, the p50 latency (ms) of its successful requests, and its labeled rows."""

    version: str
    requests: int
    errors: int
    error_rate: Estimate
    latency_p50_ms: float | None
    labeled_rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "version": self.version,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": _num(self.error_rate.value),
            "error_rate_interval": [_num(self.error_rate.lower), _num(self.error_rate.upper)],
            "latency_p50_ms": _num(self.latency_p50_ms),
            "labeled_rows": self.labeled_rows,
        }


@dataclass(frozen=True)
class CanaryVerdict:
    """The verdict on one canary (module docstring for the tests and the rule).

    status: collecting | healthy | rolled_back. reasons: [{"metric", "text", ...}]: the violated comparisons (their
    figures, interval, bound, p-values) for rolled_back, what is missing for collecting, [] for healthy.
    comparisons: every Comparison, available or not. stable, canary: VersionFigures. level: the one-sided level this
    check held the Holm-adjusted p-values to (spent_alpha at its information fraction).
    """

    model: str
    alias: str
    status: str
    reasons: list[dict[str, Any]]
    comparisons: list[Comparison]
    stable: VersionFigures
    canary: VersionFigures
    bounds: RolloutBounds
    weight: float | None = None
    started_at: str = ""
    evaluated_at: str = ""
    level: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON answer and report:
        {format, model, alias, status, reasons, stable {version, requests, errors, error_rate, error_rate_interval,
        latency_p50_ms, labeled_rows}, canary {...}, comparisons [Comparison.to_dict], bounds, weight, started_at,
        evaluated_at, level, min_requests_met, ...extra (capture: objects, lines, unreadable; labels)}."""
        return {
            "format": VERDICT_FORMAT,
            "model": self.model,
            "alias": self.alias,
            "status": self.status,
            "reasons": self.reasons,
            "stable": self.stable.to_dict(),
            "canary": self.canary.to_dict(),
            "comparisons": [c.to_dict() for c in self.comparisons],
            "bounds": self.bounds.to_dict(),
            "weight": self.weight,
            "started_at": self.started_at,
            "evaluated_at": self.evaluated_at,
            "level": self.level,
            "min_requests_met": min(self.stable.requests, self.canary.requests) >= self.bounds.min_requests,
            **self.extra,
        }


def evaluate_canary(
    requests: pd.DataFrame,
    *,
    stable: str,
    canary: str,
    bounds: RolloutBounds | None = None,
    quality: LabeledQuality | None = None,
    model: str = "",
    alias: str = "",
    weight: float | None = None,
    started_at: str = "",
    evaluated_at: str = "",
) -> CanaryVerdict:
    """The verdict on canary version `canary` against stable version `stable` (module docstring).

    requests: one row per request (traffic.AliasTraffic.requests): `version`, `outcome` ("ok" | "error") and
    `latency_ms` (NaN when unknown); rows of other versions are ignored. quality: the main metric of each version on
    its labeled rows, or None before labels exist. Raises ValueError when stable == canary.
    """
    if stable == canary:
        raise ValueError(f"the canary version must differ from the stable one, both are {stable!r}")
    bounds = bounds or RolloutBounds()
    figures = {v: _figures(requests, v, quality) for v in (stable, canary)}
    s_rows, c_rows = (requests[requests["version"] == v] for v in (stable, canary))
    comparisons = [
        _error_rate(figures[stable], figures[canary], bounds.max_error_rate_increase),
        _latency(_latencies(s_rows), _latencies(c_rows), bounds.max_latency_ratio),
        _quality(quality, stable, canary, bounds.max_quality_drop),
    ]
    fewest = min(figures[stable].requests, figures[canary].requests)
    level = spent_alpha(bounds.alpha, fewest / bounds.min_requests)
    tested = [i for i, c in enumerate(comparisons) if c.available and c.p_value is not None]
    adjusted = _holm([float(comparisons[i].p_value) for i in tested]) if tested else []  # type: ignore[arg-type]
    for i, p in zip(tested, adjusted, strict=True):
        c = comparisons[i]
        comparisons[i] = _with(c, p_adjusted=p, violated=p <= level)
    violated = [c for c in comparisons if c.violated]
    if violated:
        status = ROLLED_BACK
        reasons = [{**c.to_dict(), "text": _violation_text(c, level)} for c in violated]
    elif fewest < bounds.min_requests:
        status = COLLECTING
        reasons = [
            {
                "metric": "requests",
                "text": f"stable v{stable} has {figures[stable].requests} requests and canary v{canary} "
                f"{figures[canary].requests}: {bounds.min_requests} per version are needed to call it healthy",
            }
        ]
    else:
        status, reasons = HEALTHY, []
    return CanaryVerdict(
        model,
        alias,
        status,
        reasons,
        comparisons,
        figures[stable],
        figures[canary],
        bounds,
        weight,
        started_at,
        evaluated_at,
        level,
    )


def spent_alpha(alpha: float, fraction: float) -> float:
    """The O'Brien-Fleming-type spending function of Lan & DeMets (1983): 2 (1 - Φ(z_{1 - alpha/2} / √t)) at the
    information fraction t (clipped to [0, 1]); 0 at t = 0, `alpha` at t = 1."""
    t = min(1.0, max(0.0, fraction))
    if t == 0:
        return 0.0
    return float(2 * sps.norm.sf(float(sps.norm.isf(alpha / 2)) / math.sqrt(t)))


def _figures(requests: pd.DataFrame, version: str, quality: LabeledQuality | None) -> VersionFigures:
    rows = requests[requests["version"] == version]
    errors = int((rows["outcome"] == ERROR_OUTCOME).sum())
    latencies = _latencies(rows)
    return VersionFigures(
        version,
        len(rows),
        errors,
        wilson(errors, len(rows)),
        float(np.median(latencies)) if len(latencies) else None,
        int((quality.rows if quality else {}).get(version, 0)),
    )


def _latencies(rows: pd.DataFrame) -> np.ndarray:
    values = rows.loc[rows["outcome"] != ERROR_OUTCOME, "latency_ms"].to_numpy(dtype=float)
    return values[np.isfinite(values)]


def _error_rate(s: VersionFigures, c: VersionFigures, delta: float) -> Comparison:
    """Farrington-Manning's score test of canary rate - stable rate > delta; Newcombe's interval."""
    if not s.requests or not c.requests:
        return Comparison(ERROR_RATE, "farrington_manning", delta, False, "no request of a version yet")
    p_value = farrington_manning(c.errors, c.requests, s.errors, s.requests, delta)
    return Comparison(
        ERROR_RATE,
        "farrington_manning",
        delta,
        True,
        "",
        s.error_rate.value,
        c.error_rate.value,
        c.error_rate.value - s.error_rate.value,
        newcombe(c.error_rate, s.error_rate),
        p_value,
    )


def farrington_manning(x1: int, n1: int, x2: int, n2: int, delta: float) -> float:
    """One-sided p-value of H1: p1 - p2 > delta, from x1 of n1 and x2 of n2 (Farrington & Manning 1990).

    The score statistic z = (p̂1 - p̂2 - delta) / sqrt(p̃1(1 - p̃1)/n1 + p̃2(1 - p̃2)/n2) uses the maximum-likelihood
    rates restricted to p1 - p2 = delta (closed form: the root of a cubic, their appendix); p = 1 - Φ(z). Returns 1.0
    when the variance is 0 (no errors at all and delta 0: nothing shows a difference). Raises ValueError for n1 or n2
    below 1.
    """
    if n1 < 1 or n2 < 1:
        raise ValueError("both groups need at least one trial")
    p1, p2 = x1 / n1, x2 / n2
    theta = n2 / n1
    a = 1 + theta
    b = -(1 + theta + p1 + theta * p2 + delta * (theta + 2))
    c = delta * delta + delta * (2 * p1 + theta + 1) + p1 + theta * p2
    d = -p1 * delta * (1 + delta)
    v = b**3 / (3 * a) ** 3 - b * c / (6 * a * a) + d / (2 * a)
    u = math.copysign(math.sqrt(max(0.0, b * b / (3 * a) ** 2 - c / (3 * a))), v)
    if u == 0:
        q1 = -b / (3 * a)  # a triple root
    else:
        w = (math.pi + math.acos(min(1.0, max(-1.0, v / u**3)))) / 3
        q1 = 2 * u * math.cos(w) - b / (3 * a)
    q1 = min(1.0, max(0.0, q1))
    q2 = min(1.0, max(0.0, q1 - delta))
    var = q1 * (1 - q1) / n1 + q2 * (1 - q2) / n2
    if var <= 0:
        return 1.0
    z = (p1 - p2 - delta) / math.sqrt(var)
    return float(sps.norm.sf(z))


def newcombe(a: Estimate, b: Estimate) -> tuple[float, float]:
    """Newcombe's hybrid score interval of a - b from the two proportions' Wilson intervals (Newcombe 1998, 10)."""
    d = a.value - b.value
    return (
        float(d - math.sqrt((a.value - a.lower) ** 2 + (b.upper - b.value) ** 2)),
        float(d + math.sqrt((a.upper - a.value) ** 2 + (b.value - b.lower) ** 2)),
    )


def _latency(s: np.ndarray, c: np.ndarray, ratio: float) -> Comparison:
    """Mann-Whitney of canary / ratio against stable; the ratio of p50s with the Hodges-Lehmann ratio interval."""
    if not len(s) or not len(c):
        return Comparison(LATENCY, "mann_whitney", ratio, False, "no successful request with a latency yet")
    p_value = float(sps.mannwhitneyu(c / ratio, s, alternative="greater").pvalue)
    s50, c50 = float(np.median(s)), float(np.median(c))
    low, high = shift_interval(np.log(np.maximum(c, MIN_LATENCY_MS)), np.log(np.maximum(s, MIN_LATENCY_MS)))
    return Comparison(
        LATENCY,
        "mann_whitney",
        ratio,
        True,
        "",
        s50,
        c50,
        c50 / s50 if s50 > 0 else None,
        (_exp(low), _exp(high)),
        p_value,
    )


def shift_interval(x: np.ndarray, y: np.ndarray, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float]:
    """The Hodges-Lehmann interval of the shift d in x - d ~ y: the order statistics k and mn + 1 - k of the m·n
    differences x_i - y_j, k from the normal approximation of the Mann-Whitney U (Hollander, Wolfe & Chicken 2014,
    4.3). Found by bisection on counts (O((m + n) log n) per step), never forming the m·n differences. (-inf, inf)
    when the samples are too small for the confidence."""
    xs, ys = np.sort(np.asarray(x, dtype=float)), np.sort(np.asarray(y, dtype=float))
    m, n = len(xs), len(ys)
    z = float(sps.norm.ppf(0.5 + confidence / 2))
    k = math.floor(m * n / 2 - z * math.sqrt(m * n * (m + n + 1) / 12))
    if k < 1:
        return float("-inf"), float("inf")
    return _kth_difference(xs, ys, k), _kth_difference(xs, ys, m * n + 1 - k)


def _kth_difference(xs: np.ndarray, ys: np.ndarray, k: int) -> float:
    """The k-th smallest of x_i - y_j (1-based), xs and ys sorted."""
    n = len(ys)
    lo, hi = float(xs[0] - ys[-1]), float(xs[-1] - ys[0])

    def at_most(d: float) -> int:  # how many differences are <= d
        return int((n - np.searchsorted(ys, xs - d, side="left")).sum())

    for _ in range(100):
        if hi - lo <= 1e-12 * max(1.0, abs(hi)):
            break
        mid = (lo + hi) / 2
        if at_most(mid) >= k:
            hi = mid
        else:
            lo = mid
    return hi


def _quality(quality: LabeledQuality | None, stable: str, canary: str, drop: float) -> Comparison:
    """Wald z-test of (stable - canary) > drop for independent samples: the two standard errors add in quadrature."""
    name = quality.metric if quality else "quality"
    if quality is None:
        return Comparison(name, "wald_z", drop, False, "no labels yet for the rows either version answered")
    rows = {v: int(quality.rows.get(v, 0)) for v in (stable, canary)}
    a, b = (quality.estimates.get(v, NAN_ESTIMATE) for v in (stable, canary))
    if min(rows.values()) < MIN_LABELED_ROWS:
        text = f"{rows[stable]} and {rows[canary]} labeled rows: {MIN_LABELED_ROWS} per version are needed"
        return Comparison(name, "wald_z", drop, False, text, _num(a.value), _num(b.value))
    se = math.sqrt(a.se**2 + b.se**2) if np.isfinite(a.se) and np.isfinite(b.se) else float("nan")
    if not (np.isfinite(a.value) and np.isfinite(b.value) and np.isfinite(se)) or se <= 0:
        return Comparison(name, "wald_z", drop, False, f"{name} is undefined on the labeled rows", a.value, b.value)
    sign = 1.0 if HIGHER_IS_BETTER.get(name, True) else -1.0
    loss = sign * (a.value - b.value)
    z95 = float(sps.norm.ppf(0.5 + DEFAULT_CONFIDENCE / 2))
    p_value = float(sps.norm.sf((loss - drop) / se))
    interval = (loss - z95 * se, loss + z95 * se)
    return Comparison(name, "wald_z", drop, True, "", a.value, b.value, loss, interval, p_value)


def _violation_text(c: Comparison, level: float) -> str:
    low, high = c.interval or (None, None)
    interval = f"95 % interval {_fmt(low, c.metric)} to {_fmt(high, c.metric)}"
    if c.metric == ERROR_RATE:
        what = (
            f"error rate {_pct(c.canary)} on the canary vs {_pct(c.stable)} on the stable version: "
            f"+{_fmt(c.difference, c.metric)} ({interval}), more than the bound +{_fmt(c.bound, c.metric)}"
        )
    elif c.metric == LATENCY:
        what = (
            f"p50 latency {c.canary:.1f} ms on the canary vs {c.stable:.1f} ms: ratio {_fmt(c.difference, c.metric)} "
            f"({interval}), more than the bound {c.bound:g}"
        )
    else:
        what = (
            f"{c.metric} {c.canary:.4f} on the canary vs {c.stable:.4f}: drop {c.difference:+.4f} ({interval}), more "
            f"than the bound {c.bound:g}"
        )
    return f"{what}; {c.test} one-sided p = {c.p_value:.2g}, Holm-adjusted {c.p_adjusted:.2g} <= level {level:.2g}"


def _fmt(v: float | None, metric: str) -> str:
    if v is None or not np.isfinite(v):
        return "—"
    if metric == ERROR_RATE:
        return f"{100 * v:.2f} pts"
    return f"{v:.3g}" if metric == LATENCY else f"{v:+.4f}"


def _pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.2f} %"


def _exp(v: float) -> float | None:
    return float(np.exp(v)) if np.isfinite(v) else None


def _num(v: Any) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def _with(c: Comparison, **changes: Any) -> Comparison:
    return Comparison(**{**{f.name: getattr(c, f.name) for f in fields(Comparison)}, **changes})


# --- reading the alias's traffic and labels ------------------------------------------------------------------------
def positive_class(card: ModelCard) -> Any:
    """The decision's positive class of a binary classifier (else scikit-learn's second class); None otherwise."""
    if card.task != CLASSIFICATION or len(card.classes or ()) != 2:
        return None
    return (card.decision or {}).get("positive_class", (card.classes or [None, None])[1])


def labeled_quality(card: ModelCard, rows: list[dict], labels: pd.DataFrame) -> LabeledQuality | None:
    """The main metric of each version on its captured rows that have a label (joined on inference_id).

    rows: row records (dicts as captured); labels: ground_truth read_labels' frame (inference_id, label, time). None
    when no row is labeled. A binary classifier's metric is ROC AUC on the positive class's captured probability.
    """
    if not len(labels) or not rows:
        return None
    positive = positive_class(card)
    key = None if positive is None else str(positive)
    predictions = pd.DataFrame(
        {
            ID: [r.get("inference_id") for r in rows],
            "prediction": [r.get("prediction") for r in rows],
            "probability": [
                (r.get("probabilities") or {}).get(key) if key and isinstance(r.get("probabilities"), dict) else None
                for r in rows
            ],
            "version": [str(r.get("version")) for r in rows],
            "time": pd.to_datetime([r.get("timestamp") for r in rows], utc=True, errors="coerce", format="ISO8601"),
        }
    )
    predictions = predictions[predictions[ID].notna()]
    joined = join_labels(labels[[c for c in (ID, LABEL, "time") if c in labels.columns]], predictions).frame
    if not len(joined):
        return None
    has_probabilities = positive is not None and joined["probability"].notna().all()
    metric = main_metric(card.task, bool(has_probabilities), len(card.classes or ()))
    estimates, counts = {}, {}
    for version, part in joined.groupby("version"):
        counts[str(version)] = len(part)
        estimates[str(version)] = _metric_of(card, metric, part, positive)
    return LabeledQuality(metric, estimates, counts)


def _metric_of(card: ModelCard, metric: str, part: pd.DataFrame, positive: Any) -> Estimate:
    if card.task == REGRESSION:
        y = pd.to_numeric(part[LABEL], errors="coerce").to_numpy(dtype=float)
        pred = pd.to_numeric(part["prediction"], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(y) & np.isfinite(pred)
        return window_metrics(REGRESSION, y[ok], predicted=pred[ok]).get(metric, NAN_ESTIMATE)
    if positive is None:
        right = (part[LABEL].astype(str) == part["prediction"].astype(str)).to_numpy()
        return wilson(int(right.sum()), len(right))
    y = (part[LABEL].astype(str) == str(positive)).to_numpy()
    predicted = (part["prediction"].astype(str) == str(positive)).to_numpy()
    prob = part["probability"].to_numpy(dtype=float) if metric == "roc_auc" else None
    return window_metrics(CLASSIFICATION, y, prob=prob, predicted=predicted).get(metric, NAN_ESTIMATE)


def check_canary(
    registry: Registry,
    record: AliasRecord,
    *,
    s3: Any,
    data_bucket: str,
    verifier: CardVerifier | None,
    now: datetime | None = None,
) -> tuple[CanaryVerdict, AliasTraffic]:
    """Evaluate the canary of alias `record` (which must have one) on its captured traffic and labels since it
    started (read from `data_bucket`). The stable version's card (verified with `verifier`) gives the task and classes.

    Returns the verdict and the traffic it was made on. Raises ValueError when the alias has no canary or its bounds
    are invalid; ModelNotFound / ModelRefused for the card; S3 errors as botocore's ClientError.
    """
    if record.canary is None:
        raise ValueError(f"alias {record.alias!r} of model {record.name!r} has no canary")
    now = now or datetime.now(UTC)
    canary = record.canary
    bounds = rollout_bounds_from(canary.bounds)
    window = since(canary.started_at or now.isoformat(), now)
    traffic = read_alias_traffic(s3, data_bucket, record.name, record.alias, record.versions(), window)
    card, _ = read_card(registry, verifier, record.name, record.version)
    labels = read_labels(s3, data_bucket, record.name, window.start, window.end)
    quality = labeled_quality(card, traffic.rows, labels.frame)
    verdict = evaluate_canary(
        traffic.requests,
        stable=record.version,
        canary=canary.version,
        bounds=bounds,
        quality=quality,
        model=record.name,
        alias=record.alias,
        weight=canary.weight,
        started_at=canary.started_at,
        evaluated_at=now.isoformat(timespec="seconds"),
    )
    extra = {
        "capture": {"objects": traffic.objects, "lines": traffic.lines, "unreadable": traffic.unreadable},
        "labels": {"read": len(labels.frame), "metric": quality.metric if quality else None},
    }
    return CanaryVerdict(**{**verdict.__dict__, "extra": extra}), traffic


def report_folder(model: str, alias: str) -> str:
    """`reports/rollout/<model>/<alias>/`: where an alias's canary verdicts go."""
    return f"{REPORT_PREFIX}{model}/{alias}/"


def write_canary_report(
    s3: Any, bucket: str, verdict: CanaryVerdict, document: Mapping[str, Any], render: Callable[[Mapping], str]
) -> dict[str, str]:
    """Write `document` (the verdict's JSON, with what was done about it) as latest.json / latest.html under the
    alias's folder, and, for a rolled_back verdict, also as <check time>.json / .html (kept). Returns
    {"json", "html"}: the keys of the kept report when there is one, else of latest."""
    folder = report_folder(verdict.model, verdict.alias)
    text = json.dumps(document, indent=2, allow_nan=False)
    html = render(json.loads(text))
    names = ["latest"]
    if verdict.status == ROLLED_BACK:
        stamp = datetime.fromisoformat(verdict.evaluated_at).astimezone(UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
        names.append(stamp)
    for name in names:
        s3.put_object(Bucket=bucket, Key=f"{folder}{name}.json", Body=text.encode(), ContentType="application/json")
        s3.put_object(
            Bucket=bucket, Key=f"{folder}{name}.html", Body=html.encode(), ContentType="text/html; charset=utf-8"
        )
    return {"json": f"{folder}{names[-1]}.json", "html": f"{folder}{names[-1]}.html"}
