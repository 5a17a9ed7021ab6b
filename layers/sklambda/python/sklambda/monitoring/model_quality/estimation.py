"""Performance estimated before labels arrive: confidence-based performance estimation (CBPE) for binary classifiers.

At publish, `fit_calibration` maps the model's scores for the positive class to calibrated probabilities with
isotonic regression on the holdout (pool-adjacent-violators, in numpy), and `card_section` stores the map as
breakpoints in the card's `estimation` section, with the holdout's own metrics; the card is signed as a whole.
In production, `estimate` turns a window's scores into calibrated probabilities p (`np.interp` on the breakpoints)
and each row into expected confusion-matrix entries: a row predicted positive adds p to the expected true positives
and 1 - p to the false positives, a row predicted negative p to the false negatives and 1 - p to the true
negatives. Expected accuracy, F1 and ROC AUC (expected TPR against expected FPR over the score thresholds) follow.
Intervals are for the realized metric of the window, given the calibrated probabilities: labels drawn as
independent Bernoulli(p) (accuracy: its Poisson-binomial variance, normal approximation; F1 and ROC AUC: quantiles
of `SIMULATIONS` seeded label draws). They leave out the calibration map's own error (a holdout of finite size),
so on large windows, where sampling noise is small, they are too narrow.

Source: NannyML, "Performance estimation: how it works", CBPE
(https://github.com/NannyML/nannyml/blob/v0.8.5/docs/how_it_works/performance_estimation.rst).

Assumption, as in that source: no concept drift. The estimate stays right under covariate shift (P(x) changes,
P(y | x) does not) as long as the calibration holds where the shifted rows land; when P(y | x) itself changes,
the calibrated probabilities are wrong and the estimate follows the old concept, not the realized metric
(tests/unit/test_estimation.py shows both). Binary classifiers only; multiclass (one-vs-rest maps) is not built.

Shape of the card section (see sklambda.registry.card):

    estimation  {"method": "cbpe", "positive_index": int, "threshold": float,
                 "calibration": {"method": "isotonic", "x": [scores], "y": [probabilities]},
                 "holdout": {"rows": int, "accuracy": float, "f1": float, "roc_auc": float | None,
                             "positive_rate": float}}

No scikit-learn import: this module runs monitoring-side and at publish.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

METHOD = "cbpe"
CALIBRATION = "isotonic"
# Breakpoints kept in the card: more are thinned to this many, evenly over the map (endpoints kept).
MAX_BREAKPOINTS = 256
# Decimals of the stored breakpoints (scores and probabilities).
DECIMALS = 5
# Fewest holdout rows of each class for a calibration map.
MIN_CLASS_ROWS = 10
CONFIDENCE = 0.95
Z_95 = 1.959963984540054  # the standard normal quantile for a two-sided CONFIDENCE interval
SIMULATIONS = 200
SEED = 0


class EstimationUnavailable(ValueError):
    """The card carries no usable estimation section (published before it existed, without a holdout, not a
    binary classifier with predict_proba, or a holdout with too few rows of a class)."""


@dataclass(frozen=True)
class Estimate:
    """Estimated metrics of one window of n rows, each with a CONFIDENCE interval (low, high) for its realized value.

    roc_auc and its interval are None when the window has fewer than 2 rows.
    holdout_accuracy: the holdout's realized accuracy, the "nothing changed" reference.
    """

    rows: int
    accuracy: float
    accuracy_interval: tuple[float, float]
    f1: float
    f1_interval: tuple[float, float]
    roc_auc: float | None
    roc_auc_interval: tuple[float, float] | None
    expected_positive_rate: float
    holdout_accuracy: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: intervals as [low, high]."""
        out = asdict(self)
        for key in ("accuracy_interval", "f1_interval", "roc_auc_interval"):
            if out[key] is not None:
                out[key] = list(out[key])
        return out


def isotonic(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic (non-decreasing) least-squares fit of 0/1 labels y on scores x by pool-adjacent-violators.

    x, y: shape (n,). Returns the step function as breakpoints (xs, ys), both non-decreasing, each block of
    pooled scores giving its lowest and highest score the block's mean label, so that `np.interp(s, xs, ys)`
    is the fitted value at a seen score and linear between blocks (as sklearn's IsotonicRegression predicts).
    Raises ValueError for empty or mismatched input.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or len(x) == 0:
        raise ValueError(f"isotonic needs two equal 1-d arrays, got shapes {x.shape} and {y.shape}")
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    unique, start = np.unique(x, return_index=True)
    weight = np.diff(np.append(start, len(x))).astype(float)
    total = np.add.reduceat(y, start)
    # Blocks as stacks: summed labels, weights, first and last unique score index.
    sums: list[float] = []
    weights: list[float] = []
    lows: list[int] = []
    highs: list[int] = []
    for i in range(len(unique)):
        s, w, lo = total[i], weight[i], i
        while sums and sums[-1] / weights[-1] >= s / w:
            s += sums.pop()
            w += weights.pop()
            lo = lows.pop()
            highs.pop()
        sums.append(s)
        weights.append(w)
        lows.append(lo)
        highs.append(i)
    xs, ys = [], []
    for s, w, lo, hi in zip(sums, weights, lows, highs, strict=True):
        xs.append(unique[lo])
        ys.append(s / w)
        if hi != lo:
            xs.append(unique[hi])
            ys.append(s / w)
    return np.asarray(xs), np.asarray(ys)


def fit_calibration(scores: np.ndarray, is_positive: np.ndarray) -> dict[str, Any]:
    """The calibration map of the card: isotonic breakpoints of P(positive | score), rounded to DECIMALS and
    thinned to MAX_BREAKPOINTS.

    scores: shape (n,), the model's probability of the positive class on the holdout. is_positive: shape (n,)
    booleans, the holdout labels. Raises EstimationUnavailable with fewer than MIN_CLASS_ROWS rows of a class.
    """
    scores = np.asarray(scores, dtype=float)
    is_positive = np.asarray(is_positive, dtype=bool)
    positives = int(is_positive.sum())
    if min(positives, len(is_positive) - positives) < MIN_CLASS_ROWS:
        raise EstimationUnavailable(
            f"the holdout needs at least {MIN_CLASS_ROWS} rows of each class to calibrate, "
            f"has {positives} positive of {len(is_positive)}"
        )
    xs, ys = isotonic(scores, is_positive)
    if len(xs) > MAX_BREAKPOINTS:
        keep = np.unique(np.round(np.linspace(0, len(xs) - 1, MAX_BREAKPOINTS)).astype(int))
        xs, ys = xs[keep], ys[keep]
    return {
        "method": CALIBRATION,
        "x": [float(v) for v in np.round(xs, DECIMALS)],
        "y": [float(v) for v in np.round(ys, DECIMALS)],
    }


def calibrate(calibration: Mapping[str, Any], scores: np.ndarray) -> np.ndarray:
    """Calibrated probabilities, shape (n,), of scores, shape (n,), by the card's map (linear between breakpoints,
    constant beyond its ends)."""
    return np.interp(np.asarray(scores, dtype=float), calibration["x"], calibration["y"])


def card_section(
    probabilities: np.ndarray, is_positive: np.ndarray, *, positive_index: int, threshold: float
) -> dict[str, Any]:
    """The card's `estimation` section from the holdout.

    probabilities: shape (n, 2), predict_proba on the holdout; is_positive: shape (n,), its labels as booleans;
    positive_index: the column of the positive class; threshold: a row is predicted positive when that column is
    >= threshold (the card's decision threshold). Raises EstimationUnavailable (see fit_calibration).
    """
    scores = _positive_scores(probabilities, positive_index)
    is_positive = np.asarray(is_positive, dtype=bool)
    predicted = scores >= threshold
    return {
        "method": METHOD,
        "positive_index": int(positive_index),
        "threshold": float(threshold),
        "calibration": fit_calibration(scores, is_positive),
        "holdout": {
            "rows": len(scores),
            "accuracy": float(np.mean(predicted == is_positive)),
            "f1": _f1(
                float(np.sum(predicted & is_positive)),
                float(np.sum(predicted & ~is_positive)),
                float(np.sum(~predicted & is_positive)),
            ),
            "roc_auc": _auc_from_labels(_ranks(scores), is_positive),
            "positive_rate": float(np.mean(is_positive)),
        },
    }


def estimate(
    section: Mapping[str, Any] | None,
    probabilities: np.ndarray,
    threshold: float | None = None,
    *,
    simulations: int = SIMULATIONS,
    seed: int = SEED,
) -> Estimate:
    """Estimated accuracy, F1 and ROC AUC of one window of predictions whose labels are not known yet.

    section: the card's `estimation` (None for a card without one). probabilities: shape (n, 2), what the model
    returned (predict_proba column order, as the card's classes). threshold: the decision threshold on the
    positive class's probability (default: the one stored in the section, the card's decision). simulations, seed:
    label draws for the F1 and ROC AUC intervals.

    Raises EstimationUnavailable when section is None or not a CBPE section; ValueError for an empty window or
    probabilities that are not (n, 2).
    """
    if not section or section.get("method") != METHOD:
        raise EstimationUnavailable(
            "estimation unavailable: the model card has no CBPE calibration (published before estimation existed, "
            "without a holdout, or not a binary classifier with predict_proba); republish with a holdout"
        )
    scores = _positive_scores(probabilities, int(section["positive_index"]))
    n = len(scores)
    if n == 0:
        raise ValueError("cannot estimate the performance of an empty window")
    cut = float(section["threshold"] if threshold is None else threshold)
    p = calibrate(section["calibration"], scores)
    predicted = scores >= cut
    correct = np.where(predicted, p, 1 - p)  # P(the prediction is right), per row
    accuracy = float(correct.mean())
    spread = Z_95 * float(np.sqrt(np.sum(correct * (1 - correct)))) / n
    tp, fp, fn = float(p[predicted].sum()), float((1 - p[predicted]).sum()), float(p[~predicted].sum())
    ranks = _ranks(scores)
    rng = np.random.default_rng(seed)
    draws = rng.random((simulations, n)) < p  # labels drawn from the calibrated probabilities
    f1_draws = np.array([_f1(*_counts(predicted, d)) for d in draws])
    auc = _expected_auc(scores, p) if n >= 2 else None
    auc_interval = None
    if auc is not None:
        auc_draws = np.array([a for a in (_auc_from_labels(ranks, d) for d in draws) if a is not None])
        if len(auc_draws):
            auc_interval = _quantiles(auc_draws)
    return Estimate(
        rows=n,
        accuracy=accuracy,
        accuracy_interval=(max(0.0, accuracy - spread), min(1.0, accuracy + spread)),
        f1=_f1(tp, fp, fn),
        f1_interval=_quantiles(f1_draws),
        roc_auc=auc,
        roc_auc_interval=auc_interval,
        expected_positive_rate=float(p.mean()),
        holdout_accuracy=float(section["holdout"]["accuracy"]),
    )


def _positive_scores(probabilities: np.ndarray, positive_index: int) -> np.ndarray:
    proba = np.asarray(probabilities, dtype=float)
    if proba.ndim != 2 or proba.shape[1] != 2:
        raise ValueError(f"CBPE needs binary predict_proba output of shape (n, 2), got {proba.shape}")
    return proba[:, positive_index]


def _counts(predicted: np.ndarray, positive: np.ndarray) -> tuple[float, float, float]:
    return (
        float(np.sum(predicted & positive)),
        float(np.sum(predicted & ~positive)),
        float(np.sum(~predicted & positive)),
    )


def _f1(tp: float, fp: float, fn: float) -> float:
    """F1 of the positive class; 0 when there is nothing to find and nothing predicted (as sklearn's zero_division)."""
    denominator = 2 * tp + fp + fn
    return 2 * tp / denominator if denominator > 0 else 0.0


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1-based ranks of scores, ties given their mean rank (Mann-Whitney)."""
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    unique_start = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[unique_start[1:], len(scores)]
    mean_rank = (unique_start + 1 + ends) / 2
    ranks = np.empty(len(scores))
    ranks[order] = np.repeat(mean_rank, ends - unique_start)
    return ranks


def _auc_from_labels(ranks: np.ndarray, positive: np.ndarray) -> float | None:
    """ROC AUC from Mann-Whitney ranks; None when one class is absent."""
    n1 = int(positive.sum())
    n0 = len(positive) - n1
    if n1 == 0 or n0 == 0:
        return None
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _expected_auc(scores: np.ndarray, p: np.ndarray) -> float | None:
    """Area under the expected ROC curve: rows by descending score (tied scores as one step), expected TPR =
    cumulative p / total p against expected FPR = cumulative (1 - p) / total (1 - p), trapezoids."""
    positives, negatives = p.sum(), (1 - p).sum()
    if positives <= 0 or negatives <= 0:
        return None
    order = np.argsort(-scores, kind="stable")
    s, q = scores[order], p[order]
    last_of_tie = np.r_[s[1:] != s[:-1], True]
    tpr = np.r_[0.0, np.cumsum(q)[last_of_tie] / positives]
    fpr = np.r_[0.0, np.cumsum(1 - q)[last_of_tie] / negatives]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def _quantiles(values: np.ndarray) -> tuple[float, float]:
    tail = (1 - CONFIDENCE) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)
