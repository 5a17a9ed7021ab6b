"""The champion/challenger gate: may a new version (the challenger) replace the one serving (the champion)?

Both versions are scored on the same labeled rows (a labeled recent window, or a holdout file), so the comparison is
paired: each row's luck is shared by both, and only their difference is tested. Per metric:

- ROC AUC: DeLong, DeLong & Clarke-Pearson (1988), "Comparing the areas under two or more correlated receiver
  operating characteristic curves: a nonparametric approach", Biometrics 44:837-845. The variance of the difference
  is built from both models' structural components on the same positives and negatives (Sun & Xu 2014 midranks).
- every other metric: a paired bootstrap (Efron & Tibshirani 1993, ch. 16): rows are resampled once and both models
  are scored on each resample, so the difference's spread keeps their correlation.

The gain is challenger - champion for a larger-is-better metric, champion - challenger otherwise (log loss, Brier,
MAE, RMSE). With a one-sided level `alpha`:

- the challenger is *non-inferior* when the gain's lower confidence bound is above -margin (it is not worse than the
  champion by more than `margin`);
- it is *better* when, in addition, the gain's lower bound is above 0 and the gain itself is at least `min_gain`.

Decision: `replace` (non-inferior and better), `keep_champion` (non-inferior, not shown better: it may serve, but
replacing the champion gains nothing shown), `reject` (possibly worse by more than the margin).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

from sklambda.monitoring.model_quality.metrics import HIGHER_IS_BETTER, delong_components

REPLACE, KEEP_CHAMPION, REJECT = "replace", "keep_champion", "reject"
# The metrics the paired bootstrap compares (ROC AUC has DeLong's exact paired variance instead).
BOOTSTRAP_METRICS = ("accuracy", "balanced_accuracy", "log_loss", "brier", "mae", "rmse", "r2")
GATE_METRICS = ("roc_auc", *BOOTSTRAP_METRICS)
LOG_LOSS_EPS = np.finfo(np.float64).eps


@dataclass(frozen=True)
class GateConfig:
    """The gate's settings (defaults chosen for ROC AUC on a few thousand labeled rows; `bench/gate.py` measures them).

    metric: one of GATE_METRICS. margin: how much worse (in the metric's units) the challenger may be and still be
    non-inferior. min_gain: the least gain that justifies a replacement. alpha: one-sided level of both tests.
    resamples, seed: of the paired bootstrap. Raises ValueError for an unknown metric, alpha outside (0, 1), a
    negative margin or min_gain, or fewer than 100 resamples.
    """

    metric: str = "roc_auc"
    margin: float = 0.01
    min_gain: float = 0.005
    alpha: float = 0.05
    resamples: int = 2000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.metric not in GATE_METRICS:
            raise ValueError(f"unknown gate metric {self.metric!r}; choose from {', '.join(GATE_METRICS)}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.margin < 0 or self.min_gain < 0:
            raise ValueError("margin and min_gain must be >= 0")
        if self.resamples < 100:
            raise ValueError(f"resamples must be at least 100, got {self.resamples}")


@dataclass(frozen=True)
class GateResult:
    """The gate's verdict on one pair of versions.

    champion, challenger: the metric of each on the rows. gain: challenger's improvement (> 0 = better, in the
    metric's units). gain_lower: its one-sided lower confidence bound at 1 - alpha; se: its standard error.
    method: paired_delong or paired_bootstrap. non_inferior, better, decision: module docstring. reason: one line.
    """

    metric: str
    rows: int
    champion: float
    challenger: float
    gain: float
    gain_lower: float
    se: float
    method: str
    non_inferior: bool
    better: bool
    decision: str
    reason: str
    config: GateConfig

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        out = asdict(self)
        out["config"] = asdict(self.config)
        return out


def compare_versions(y_true: Any, champion: Any, challenger: Any, *, config: GateConfig | None = None) -> GateResult:
    """Gate `challenger` against `champion` on the same rows (module docstring for the tests and the decision).

    y_true: (n,) labels: bool (positive class) for roc_auc and the binary metrics, numbers for regression metrics.
    champion, challenger: (n,) what each version served for the metric: the positive class's probability (roc_auc,
    log_loss, brier), the predicted label as bool (accuracy, balanced_accuracy) or the predicted value (mae, rmse,
    r2). Raises ValueError for shapes that differ, fewer than 2 rows, or a metric that is undefined on the rows
    (ROC AUC with one class).
    """
    config = config or GateConfig()
    y = np.asarray(y_true)
    a = np.asarray(champion)
    b = np.asarray(challenger)
    if not (y.shape == a.shape == b.shape) or y.ndim != 1:
        shapes = f"{y.shape}, {a.shape}, {b.shape}"
        raise ValueError(f"y_true, champion and challenger must be 1-d of one length, got {shapes}")
    if len(y) < 2:
        raise ValueError("the gate needs at least 2 labeled rows")
    sign = 1.0 if HIGHER_IS_BETTER.get(config.metric, True) else -1.0
    if config.metric == "roc_auc":
        value_a, value_b, se = _paired_delong(y.astype(bool), a.astype(float), b.astype(float))
        method = "paired_delong"
    else:
        value_a, value_b, se = _paired_bootstrap(config, y, a, b)
        method = "paired_bootstrap"
    gain = sign * (value_b - value_a)
    z = float(sps.norm.ppf(1 - config.alpha))
    lower = gain - z * se
    non_inferior = lower > -config.margin
    better = non_inferior and lower > 0 and gain >= config.min_gain
    decision = REPLACE if better else KEEP_CHAMPION if non_inferior else REJECT
    reason = (
        f"{config.metric}: challenger {value_b:.4f} vs champion {value_a:.4f}, gain {gain:+.4f} "
        f"(one-sided {1 - config.alpha:.0%} lower bound {lower:+.4f}); "
        + (
            f"better by at least {config.min_gain:g}"
            if better
            else f"not worse by more than {config.margin:g}, not shown better by {config.min_gain:g}"
            if non_inferior
            else f"may be worse by more than {config.margin:g}"
        )
    )
    return GateResult(
        config.metric, len(y), value_a, value_b, gain, lower, se, method, non_inferior, better, decision, reason, config
    )


def _paired_delong(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(AUC of a, AUC of b, standard error of AUC_b - AUC_a) by DeLong's covariance of the two on the same rows."""
    ca, cb = delong_components(y, a), delong_components(y, b)
    if ca is None or cb is None:
        raise ValueError("ROC AUC is undefined on these rows: they hold one class only")
    auc_a, v10_a, v01_a = ca
    auc_b, v10_b, v01_b = cb
    m, n = len(v10_a), len(v01_a)
    var = (np.var(v10_b - v10_a, ddof=1) / m if m > 1 else 0.0) + (np.var(v01_b - v01_a, ddof=1) / n if n > 1 else 0.0)
    return auc_a, auc_b, float(np.sqrt(var))


def _metric(name: str, y: np.ndarray, s: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray | float:
    """The metric of scores `s` for labels `y`, over the row index sets `rows` ((r, n): one value per set)."""
    y2 = y if rows is None else y[rows]
    s2 = s if rows is None else s[rows]
    axis = -1
    if name == "accuracy":
        return np.mean(y2.astype(bool) == s2.astype(bool), axis=axis)
    if name == "balanced_accuracy":
        yb, sb = y2.astype(bool), s2.astype(bool)
        positives, negatives = yb.sum(axis=axis), (~yb).sum(axis=axis)
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = (yb & sb).sum(axis=axis) / positives
            specificity = (~yb & ~sb).sum(axis=axis) / negatives
        return (recall + specificity) / 2
    if name == "log_loss":
        p = np.clip(s2.astype(float), LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
        yb = y2.astype(bool)
        return -np.mean(np.where(yb, np.log(p), np.log1p(-p)), axis=axis)
    if name == "brier":
        return np.mean((s2.astype(float) - y2.astype(bool)) ** 2, axis=axis)
    err = s2.astype(float) - y2.astype(float)
    if name == "mae":
        return np.mean(np.abs(err), axis=axis)
    if name == "rmse":
        return np.sqrt(np.mean(err * err, axis=axis))
    if name == "r2":
        yf = y2.astype(float)
        total = np.sum((yf - yf.mean(axis=axis, keepdims=True)) ** 2, axis=axis)
        with np.errstate(invalid="ignore", divide="ignore"):
            return 1 - np.sum(err * err, axis=axis) / total
    raise ValueError(f"unknown gate metric {name!r}")


# Resampled row indices are drawn in blocks of this many resamples, to bound memory (rows x block x 8 bytes).
_BLOCK = 200


def _paired_bootstrap(config: GateConfig, y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """(metric of a, metric of b, bootstrap standard error of b - a): both scored on the same resamples."""
    value_a, value_b = float(_metric(config.metric, y, a)), float(_metric(config.metric, y, b))
    if not (np.isfinite(value_a) and np.isfinite(value_b)):
        raise ValueError(f"{config.metric} is undefined on these rows")
    rng = np.random.default_rng(config.seed)
    n = len(y)
    diffs = []
    for start in range(0, config.resamples, _BLOCK):
        rows = rng.integers(0, n, size=(min(_BLOCK, config.resamples - start), n))
        diffs.append(np.asarray(_metric(config.metric, y, b, rows)) - np.asarray(_metric(config.metric, y, a, rows)))
    d = np.concatenate(diffs)
    d = d[np.isfinite(d)]
    return value_a, value_b, float(np.std(d, ddof=1))


def gate_config_from(settings: Mapping[str, Any] | None) -> GateConfig:
    """GateConfig with `settings` applied over the defaults (unknown keys raise ValueError)."""
    known = set(GateConfig.__dataclass_fields__)
    unknown = sorted(set(settings or {}) - known)
    if unknown:
        raise ValueError(f"unknown gate setting(s) {unknown}; known: {sorted(known)}")
    return GateConfig(**dict(settings or {}))
