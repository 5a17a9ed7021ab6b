"""Performance estimated before labels arrive: confidence-based performance estimation (CBPE), binary and multiclass.

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
(tests/unit/test_estimation.py shows both).

Multiclass (3 or more classes; `multiclass_card_section`, `estimate` on such a section), as NannyML's multiclass
CBPE (https://github.com/NannyML/nannyml/blob/v0.8.5/docs/how_it_works/performance_estimation.rst, "Multiclass
Classification"): one isotonic map per class, one-vs-rest (P(label = c | score of c)), fitted on the holdout; in
production each row's k calibrated probabilities are divided by their sum so that they sum to one. The prediction is
the class of the largest score (predict for sklearn's probabilistic classifiers). The expected confusion matrix
follows: a row predicted c adds its calibrated probability of each class t to cell (t, c). Expected accuracy is
the mean calibrated probability of the predicted class; expected macro F1 the mean over classes of each class's
one-vs-rest expected F1; expected ROC AUC (one-vs-rest, macro) the mean over classes of the binary expected AUC
of the class's scores against its calibrated probabilities. Intervals as the binary ones, labels drawn from the
calibrated categorical distribution of each row.

Shapes of the card section (see sklambda.registry.card); a binary card keeps its exact form, so cards published
before multiclass estimation keep their signed JSON, and a runtime that predates it reads a multiclass section as
"estimation unavailable" (its method is not "cbpe"):

    binary      {"method": "cbpe", "positive_index": int, "threshold": float,
                 "calibration": {"method": "isotonic", "x": [scores], "y": [probabilities]},
                 "holdout": {"rows": int, "accuracy": float, "f1": float, "roc_auc": float | None,
                             "positive_rate": float}}
    multiclass  {"method": "cbpe_multiclass", "classes": int, "prediction": "argmax",
                 "calibrations": [{"method": "isotonic", "x": [...], "y": [...]}, ...]   one per class, column order
                 "holdout": {"rows": int, "accuracy": float, "f1_macro": float, "roc_auc_ovr": float | None,
                             "class_shares": [float, ...]}}

No scikit-learn import: this module runs monitoring-side and at publish.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from sklambda.monitoring.model_quality.metrics import macro_averages

METHOD = "cbpe"
MULTICLASS_METHOD = "cbpe_multiclass"
# How a multiclass row's predicted class follows from its scores (the only rule built).
ARGMAX = "argmax"
CALIBRATION = "isotonic"
# Breakpoints kept in the card: more are thinned to this many, evenly over the map (endpoints kept).
MAX_BREAKPOINTS = 256
# Decimals of the stored breakpoints (scores and probabilities).
DECIMALS = 5
# Largest share of holdout rows whose predict differs from predict_proba's argmax (exact ties may break either
# way) for which the multiclass estimate, which assumes the argmax, is still stored.
MAX_ARGMAX_DISAGREEMENT = 0.01
# Fewest holdout rows of each class for a calibration map.
MIN_CLASS_ROWS = 10
CONFIDENCE = 0.95
Z_95 = 1.959963984540054  # the standard normal quantile for a two-sided CONFIDENCE interval
SIMULATIONS = 200
SEED = 0


class EstimationUnavailable(ValueError):
    """The card carries no usable estimation section (published before it existed, without a holdout, not a
    classifier with predict_proba, or a holdout with too few rows of a class)."""


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


@dataclass(frozen=True)
class MulticlassEstimate:
    """Estimated metrics of one window of n rows of a multiclass model, each with a CONFIDENCE interval (low, high)
    for its realized value; names as the realized metrics' (sklambda.monitoring.model_quality.metrics).

    roc_auc_ovr and its interval are None when the window has fewer than 2 rows. expected_class_shares: the mean
    calibrated probability of each class (card's class order). holdout_accuracy: the "nothing changed" reference.
    """

    rows: int
    accuracy: float
    accuracy_interval: tuple[float, float]
    f1_macro: float
    f1_macro_interval: tuple[float, float]
    roc_auc_ovr: float | None
    roc_auc_ovr_interval: tuple[float, float] | None
    expected_class_shares: tuple[float, ...]
    holdout_accuracy: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: intervals and shares as lists."""
        out = asdict(self)
        for key in ("accuracy_interval", "f1_macro_interval", "roc_auc_ovr_interval", "expected_class_shares"):
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


def multiclass_card_section(
    probabilities: np.ndarray, y_index: np.ndarray, predicted_index: np.ndarray | None = None
) -> dict[str, Any]:
    """The card's `estimation` section of a multiclass model from the holdout (shape in the module docstring).

    probabilities: shape (n, k), k >= 3, predict_proba on the holdout; y_index: int shape (n,), each row's label as
    its column in probabilities (sklambda.monitoring.model_quality.metrics.class_indices); predicted_index: the
    model's predict on the holdout, as columns, to check that it is the argmax the estimate assumes. Raises
    EstimationUnavailable when a class has fewer than MIN_CLASS_ROWS rows (or all but MIN_CLASS_ROWS) or predict
    disagrees with the argmax on more than MAX_ARGMAX_DISAGREEMENT of the rows (e.g. SVC's Platt probabilities),
    ValueError for other shapes.
    """
    proba = np.asarray(probabilities, dtype=float)
    y = np.asarray(y_index)
    if proba.ndim != 2 or proba.shape[1] < 3 or y.shape != (len(proba),):
        raise ValueError(
            f"multiclass CBPE needs probabilities (n, k >= 3) and one label per row, got {proba.shape}, {y.shape}"
        )
    k = proba.shape[1]
    if predicted_index is not None:
        disagree = float(np.mean(np.asarray(predicted_index) != np.argmax(proba, axis=1)))
        if disagree > MAX_ARGMAX_DISAGREEMENT:
            raise EstimationUnavailable(
                f"the model's predictions differ from the class of its largest probability on {disagree:.1%} of the "
                "holdout rows; multiclass estimation assumes they agree"
            )
    calibrations = []
    for c in range(k):
        try:
            calibrations.append(fit_calibration(proba[:, c], y == c))
        except EstimationUnavailable as e:
            raise EstimationUnavailable(f"class at column {c}: {e}") from e
    predicted = np.argmax(proba, axis=1)
    cm = np.bincount(y * k + predicted, minlength=k * k).reshape(k, k)
    aucs = [_auc_from_labels(_ranks(proba[:, c]), y == c) for c in range(k)]
    return {
        "method": MULTICLASS_METHOD,
        "classes": k,
        "prediction": ARGMAX,
        "calibrations": calibrations,
        "holdout": {
            "rows": len(y),
            "accuracy": float(np.trace(cm) / len(y)),
            "f1_macro": float(macro_averages(cm)[2]),
            "roc_auc_ovr": None if any(a is None for a in aucs) else float(np.mean(aucs)),
            "class_shares": [float(v) for v in np.bincount(y, minlength=k) / len(y)],
        },
    }


def calibrate_multiclass(calibrations: list[Mapping[str, Any]], probabilities: np.ndarray) -> np.ndarray:
    """Calibrated class probabilities, shape (n, k): each column through its class's map, each row divided by its
    sum (NannyML's multiclass CBPE). A row every map sends to 0 keeps the model's own probabilities."""
    proba = np.asarray(probabilities, dtype=float)
    calibrated = np.column_stack([calibrate(m, proba[:, c]) for c, m in enumerate(calibrations)])
    total = calibrated.sum(axis=1, keepdims=True)
    return np.where(total > 0, calibrated / np.where(total > 0, total, 1.0), proba)


def estimate(
    section: Mapping[str, Any] | None,
    probabilities: np.ndarray,
    threshold: float | None = None,
    *,
    simulations: int = SIMULATIONS,
    seed: int = SEED,
) -> Estimate | MulticlassEstimate:
    """Estimated accuracy, F1 and ROC AUC of one window of predictions whose labels are not known yet.

    section: the card's `estimation` (None for a card without one). probabilities: shape (n, 2) for a binary
    section, (n, k) for a multiclass one: what the model returned (predict_proba column order, as the card's
    classes). threshold: binary only, the decision threshold on the positive class's probability (default: the one
    stored in the section, the card's decision). simulations, seed: label draws for the F1 and ROC AUC intervals.
    Returns an Estimate (binary) or a MulticlassEstimate (multiclass section: see `estimate_multiclass`).

    Raises EstimationUnavailable when section is None or not a CBPE section; ValueError for an empty window,
    probabilities of the wrong shape, or a threshold with a multiclass section.
    """
    if section and section.get("method") == MULTICLASS_METHOD:
        if threshold is not None:
            raise ValueError("a threshold applies to binary classifiers only; a multiclass model predicts the argmax")
        return estimate_multiclass(section, probabilities, simulations=simulations, seed=seed)
    if not section or section.get("method") != METHOD:
        raise EstimationUnavailable(
            "estimation unavailable: the model card has no CBPE calibration (published before estimation existed, "
            "without a holdout, or not a classifier with predict_proba); republish with a holdout"
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


def estimate_multiclass(
    section: Mapping[str, Any], probabilities: np.ndarray, *, simulations: int = SIMULATIONS, seed: int = SEED
) -> MulticlassEstimate:
    """Estimated accuracy, macro F1 and one-vs-rest macro ROC AUC of one window of a multiclass model.

    section: a multiclass `estimation` section; probabilities: shape (n, k), k the section's classes. Definitions
    and intervals in the module docstring: the accuracy interval from the Poisson-binomial variance of "the
    prediction is right", the F1 and AUC intervals from `simulations` seeded label draws. The realized macro
    scores these intervals target are sklearn's (metrics.multiclass_metrics); a simulated window missing a class
    has no OvR AUC and is left out of that interval. Raises ValueError for an empty window or a shape other than
    (n, k).
    """
    calibrations = section["calibrations"]
    k = len(calibrations)
    proba = np.asarray(probabilities, dtype=float)
    if proba.ndim != 2 or proba.shape[1] != k:
        raise ValueError(f"this model's CBPE needs predict_proba output of shape (n, {k}), got {proba.shape}")
    n = len(proba)
    if n == 0:
        raise ValueError("cannot estimate the performance of an empty window")
    p = calibrate_multiclass(calibrations, proba)
    predicted = np.argmax(proba, axis=1)
    rows = np.arange(n)
    correct = p[rows, predicted]  # P(the prediction is right), per row
    accuracy = float(correct.mean())
    spread = Z_95 * float(np.sqrt(np.sum(correct * (1 - correct)))) / n
    is_predicted = predicted[:, None] == np.arange(k)
    tp = np.sum(p * is_predicted, axis=0)
    fp = np.sum((1 - p) * is_predicted, axis=0)
    fn = np.sum(p * ~is_predicted, axis=0)
    f1_macro = float(np.mean([_f1(*c) for c in zip(tp, fp, fn, strict=True)]))
    aucs = [_expected_auc(proba[:, c], p[:, c]) for c in range(k)] if n >= 2 else [None]
    auc = None if any(a is None for a in aucs) else float(np.mean(aucs))
    draws = _draw_classes(p, simulations, np.random.default_rng(seed))  # (simulations, n) labels
    cells = np.arange(simulations)[:, None] * k * k + draws * k + predicted
    confusion = np.bincount(cells.ravel(), minlength=simulations * k * k).reshape(simulations, k, k)
    f1_draws = macro_averages(confusion)[2]
    auc_interval = None
    if auc is not None:
        auc_draws = np.mean([_auc_of_draws(_ranks(proba[:, c]), draws == c) for c in range(k)], axis=0)
        auc_draws = auc_draws[np.isfinite(auc_draws)]
        if len(auc_draws):
            auc_interval = _quantiles(auc_draws)
    return MulticlassEstimate(
        rows=n,
        accuracy=accuracy,
        accuracy_interval=(max(0.0, accuracy - spread), min(1.0, accuracy + spread)),
        f1_macro=f1_macro,
        f1_macro_interval=_quantiles(f1_draws),
        roc_auc_ovr=auc,
        roc_auc_ovr_interval=auc_interval,
        expected_class_shares=tuple(float(v) for v in p.mean(axis=0)),
        holdout_accuracy=float(section["holdout"]["accuracy"]),
    )


def _draw_classes(p: np.ndarray, simulations: int, rng: np.random.Generator) -> np.ndarray:
    """Labels drawn from each row's categorical distribution p (n, k): shape (simulations, n), int."""
    cumulative = np.cumsum(p, axis=1)
    uniform = rng.random((simulations, len(p), 1)) * cumulative[None, :, -1:]  # rows summing to 1 up to rounding
    return np.minimum(np.sum(uniform >= cumulative[None], axis=2), p.shape[1] - 1)


def _auc_of_draws(ranks: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """ROC AUC by Mann-Whitney ranks of each row of positive (draws, n); NaN where a draw lacks a class."""
    n1 = positive.sum(axis=1).astype(float)
    n0 = positive.shape[1] - n1
    rank_sum = positive.astype(float) @ ranks
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((n1 > 0) & (n0 > 0), (rank_sum - n1 * (n1 + 1) / 2) / (n1 * n0), np.nan)


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
