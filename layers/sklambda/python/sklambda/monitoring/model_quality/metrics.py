"""Model-quality metrics of one window of labeled predictions, each with a confidence interval.

Binary classification (with the card's positive class): accuracy, balanced accuracy, precision, recall and F1
of the positive class, ROC AUC, log loss, Brier score, expected calibration error and the business cost per row.
Multiclass classification (`multiclass_metrics`, names as scikit-learn's scoring strings and the card's holdout
metrics): accuracy, balanced accuracy, precision_macro, recall_macro, f1_macro, roc_auc_ovr, log loss, the
multiclass Brier score and the top-label ECE; no cost per row (the card's costs are binary only).
Regression: MAE, RMSE, R² and mean bias. Every metric is an `Estimate`: the point value, a two-sided interval at
``confidence`` and a standard error that the degradation rule (sklambda.monitoring.model_quality.degradation)
uses for its one-sided test.

Intervals, by metric:

- accuracy, precision, recall: Wilson score interval for a proportion (Wilson 1927, "Probable inference, the law
  of succession, and statistical inference", JASA 22:209-212; recommended by Brown, Cai & DasGupta 2001,
  "Interval estimation for a binomial proportion", Statistical Science 16:101-133).
- balanced accuracy: normal interval of the mean of the two class recalls, their binomial variances added
  (the recalls are computed on disjoint rows, so they are independent given the class counts).
- ROC AUC: DeLong, DeLong & Clarke-Pearson 1988 ("Comparing the areas under two or more correlated receiver
  operating characteristic curves: a nonparametric approach", Biometrics 44:837-845), with the midrank algorithm
  of Sun & Xu 2014 ("Fast implementation of DeLong's algorithm", IEEE Signal Processing Letters 21:1389-1393):
  O(n log n), ties counted as one half, as sklearn's roc_auc_score does.
- log loss, Brier score, cost per row, MAE, mean bias: means of independent per-row losses, so a normal (central
  limit) interval: mean ± z·sd/√n.
- RMSE: the normal interval of the mean squared error, square-rooted at both ends (a monotone transform).
- F1: a seeded multinomial bootstrap of the confusion matrix (resampling rows with replacement only redraws the
  four counts, so ``BOOTSTRAP_RESAMPLES`` resamples cost O(resamples), not O(rows)); percentile interval.
  Multiclass precision_macro, recall_macro and f1_macro: the same bootstrap of the k x k confusion matrix.
- multiclass balanced accuracy: normal interval of the mean of the class recalls, their binomial variances added.
- multiclass ROC AUC (one-vs-rest, macro): DeLong's structural components of each class's AUC combined into one
  influence value per row, whose sum of squares is the variance of the macro mean; the covariance between the
  classes' AUCs (every row is positive for one class and negative for the others) is kept. With one class it is
  DeLong's variance exactly.
- expected calibration error, R²: a seeded bootstrap of rows (``BOOTSTRAP_RESAMPLES`` resamples, on at most
  ``BOOTSTRAP_MAX_ROWS`` rows drawn once, the standard error rescaled by √(sample/n)); percentile interval
  shifted to the full-window estimate. ECE uses ``ECE_BINS`` equal-width bins of the positive-class probability
  (Naeini, Cooper & Hauskrecht 2015, "Obtaining well calibrated probabilities using Bayesian binning", AAAI;
  Guo et al. 2017, "On calibration of modern neural networks", ICML); multiclass, the top-label ECE of Guo et al.
  2017 (section 2): bins of the predicted class's probability, against whether the prediction was right.

Pure numpy/scipy; no pandas, no S3.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

CLASSIFICATION, REGRESSION = "classification", "regression"
# Two-sided confidence of every interval.
DEFAULT_CONFIDENCE = 0.95
# Resamples of every bootstrap interval (F1, ECE, R²); the seed makes a window's interval reproducible.
BOOTSTRAP_RESAMPLES = 500
BOOTSTRAP_SEED = 0
# Row bootstraps (ECE, R²) resample at most this many rows; the standard error is rescaled to the full window.
BOOTSTRAP_MAX_ROWS = 20_000
# Resamples drawn at once in a row bootstrap: bounds its memory to ~BOOTSTRAP_CHUNK x BOOTSTRAP_MAX_ROWS x 8 bytes.
BOOTSTRAP_CHUNK = 50
# Equal-width probability bins of the expected calibration error (the usual 10 of Guo et al. 2017).
ECE_BINS = 10
# Probabilities are clipped to [EPS, 1 - EPS] in log loss, as sklearn's log_loss does since 1.5 (float64 eps).
LOG_LOSS_EPS = float(np.finfo(np.float64).eps)
# Direction of each metric: True when larger is better. Names follow the card's holdout metrics
# (sklambda.publishing.publisher._metrics) where the card has them.
HIGHER_IS_BETTER = {
    "accuracy": True,
    "balanced_accuracy": True,
    "precision": True,
    "recall": True,
    "f1": True,
    "roc_auc": True,
    "precision_macro": True,
    "recall_macro": True,
    "f1_macro": True,
    "roc_auc_ovr": True,
    "log_loss": False,
    "brier": False,
    "ece": False,
    "cost_per_row": False,
    "mae": False,
    "rmse": False,
    "r2": True,
    "mean_bias": False,  # compared by its absolute value
}


@dataclass(frozen=True)
class Estimate:
    """One metric on one window: ``value`` with the interval [lower, upper] at ``confidence``.

    se: the standard error used by the one-sided degradation test (for a bootstrap, the resamples' standard
    deviation). method: how the interval was computed ("wilson", "normal", "delong", "bootstrap").
    value is NaN (and the interval with it) when the metric is undefined on the window, e.g. ROC AUC with one class.
    """

    value: float
    lower: float
    upper: float
    se: float
    method: str
    confidence: float = DEFAULT_CONFIDENCE

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: NaN becomes None."""
        return {
            "value": _num(self.value),
            "lower": _num(self.lower),
            "upper": _num(self.upper),
            "se": _num(self.se),
            "method": self.method,
            "confidence": self.confidence,
        }


NAN_ESTIMATE = Estimate(float("nan"), float("nan"), float("nan"), float("nan"), "undefined")


def _num(x: float) -> float | None:
    return None if not np.isfinite(x) else float(x)


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(sps.norm.ppf(0.5 + confidence / 2))


def wilson(successes: int, trials: int, confidence: float = DEFAULT_CONFIDENCE) -> Estimate:
    """Proportion successes/trials with the Wilson score interval (Wilson 1927). NaN estimate for 0 trials.

    se is the plain binomial sqrt(p(1-p)/n), what the degradation z-test uses.
    """
    if trials <= 0:
        return NAN_ESTIMATE
    z = _z(confidence)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    lower, upper = float(max(0.0, centre - half)), float(min(1.0, centre + half))
    return Estimate(p, lower, upper, float(np.sqrt(p * (1 - p) / trials)), "wilson", confidence)


def mean_estimate(values: np.ndarray, confidence: float = DEFAULT_CONFIDENCE) -> Estimate:
    """Mean of per-row values with the normal (central limit) interval mean ± z·sd/√n (sd with ddof=1)."""
    n = len(values)
    if n == 0:
        return NAN_ESTIMATE
    mean = float(np.mean(values))
    se = float(np.std(values, ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    z = _z(confidence)
    return Estimate(mean, mean - z * se, mean + z * se, se, "normal", confidence)


def roc_auc(y_true: np.ndarray, score: np.ndarray, confidence: float = DEFAULT_CONFIDENCE) -> Estimate:
    """ROC AUC of ``score`` for the boolean ``y_true`` with DeLong's variance (Sun & Xu 2014 midrank algorithm).

    y_true: bool, shape (n,). score: float, shape (n,), larger = more likely positive. NaN estimate when one class
    is missing. The interval is clipped to [0, 1].
    """
    y = np.asarray(y_true, dtype=bool)
    components = delong_components(y, np.asarray(score, dtype=float))
    if components is None:
        return NAN_ESTIMATE
    auc, v10, v01 = components
    m, n = len(v10), len(v01)
    var = (np.var(v10, ddof=1) / m if m > 1 else 0.0) + (np.var(v01, ddof=1) / n if n > 1 else 0.0)
    se = float(np.sqrt(var))
    z = _z(confidence)
    return Estimate(auc, max(0.0, auc - z * se), min(1.0, auc + z * se), se, "delong", confidence)


def delong_components(y: np.ndarray, s: np.ndarray) -> tuple[float, np.ndarray, np.ndarray] | None:
    """(AUC, V10 per positive, V01 per negative): DeLong's structural components by Sun & Xu's midranks.

    V10: per positive, the share of negatives scored below it (ties one half); V01: per negative, the share of
    positives scored above it. Their means are the AUC. None when one class is missing.
    """
    m, n = int(y.sum()), len(y) - int(y.sum())
    if m == 0 or n == 0:
        return None
    tz = sps.rankdata(s)  # midranks over all rows
    tz_pos, tz_neg = tz[y], tz[~y]
    auc = float((tz_pos.sum() - m * (m + 1) / 2) / (m * n))
    v10 = (tz_pos - sps.rankdata(s[y])) / n
    v01 = 1.0 - (tz_neg - sps.rankdata(s[~y])) / m
    return auc, v10, v01


def balanced_accuracy(tp: int, fn: int, tn: int, fp: int, confidence: float = DEFAULT_CONFIDENCE) -> Estimate:
    """Mean of the two class recalls (binary), normal interval with the recalls' binomial variances added.

    NaN estimate when one class has no rows (sklearn then warns and averages the defined recall only).
    """
    pos, neg = tp + fn, tn + fp
    if pos == 0 or neg == 0:
        return NAN_ESTIMATE
    tpr, tnr = tp / pos, tn / neg
    value = (tpr + tnr) / 2
    se = float(np.sqrt(tpr * (1 - tpr) / pos + tnr * (1 - tnr) / neg) / 2)
    z = _z(confidence)
    return Estimate(value, max(0.0, value - z * se), min(1.0, value + z * se), se, "normal", confidence)


def _percentile_interval(point: float, resamples: np.ndarray, confidence: float, scale: float = 1.0) -> Estimate:
    """Percentile interval of ``resamples`` around its own centre, rescaled by ``scale`` and moved to ``point``."""
    resamples = resamples[np.isfinite(resamples)]
    if len(resamples) < 2:
        return Estimate(point, float("nan"), float("nan"), float("nan"), "bootstrap", confidence)
    lo_q, hi_q = np.quantile(resamples, [0.5 - confidence / 2, 0.5 + confidence / 2])
    centre = float(np.mean(resamples))
    se = float(np.std(resamples, ddof=1)) * scale
    lower = point - (centre - lo_q) * scale
    upper = point + (hi_q - centre) * scale
    return Estimate(point, float(lower), float(upper), se, "bootstrap", confidence)


def f1(
    tp: int,
    fp: int,
    fn: int,
    tn: int,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Estimate:
    """F1 of the positive class, 2TP/(2TP+FP+FN), with a multinomial bootstrap of the confusion matrix.

    Resampling n rows with replacement redraws (TP, FP, FN, TN) from Multinomial(n, observed shares), so the
    bootstrap is exact and costs O(resamples). 0 when there is no positive row and no positive prediction
    (sklearn's zero_division=0); NaN estimate for an empty window.
    """
    n = tp + fp + fn + tn
    if n == 0:
        return NAN_ESTIMATE
    point = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0
    counts = np.random.default_rng(seed).multinomial(n, np.array([tp, fp, fn, tn]) / n, size=resamples)
    denom = 2 * counts[:, 0] + counts[:, 1] + counts[:, 2]
    boot = np.divide(2.0 * counts[:, 0], denom, out=np.zeros(resamples), where=denom > 0)
    est = _percentile_interval(point, boot, confidence)
    return Estimate(point, max(0.0, est.lower), min(1.0, est.upper), est.se, "bootstrap", confidence)


def _ece_from_bins(bin_count: np.ndarray, bin_pos: np.ndarray, bin_prob: np.ndarray) -> np.ndarray:
    """ECE from per-bin sums; arrays of shape (..., bins)."""
    total = bin_count.sum(axis=-1)
    gap = np.abs(bin_pos - bin_prob)  # |sum(y) - sum(p)| per bin = n_b * |acc_b - conf_b|
    return gap.sum(axis=-1) / np.where(total > 0, total, 1)


def _bootstrap_rows(n: int, seed: int) -> np.ndarray:
    """The rows a row bootstrap resamples: all of them, or BOOTSTRAP_MAX_ROWS drawn once without replacement."""
    if n <= BOOTSTRAP_MAX_ROWS:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, n]).choice(n, BOOTSTRAP_MAX_ROWS, replace=False))


def _resample_chunks(k: int, resamples: int, seed: int):
    """Index arrays (chunk, k) of ``resamples`` resamples with replacement, BOOTSTRAP_CHUNK at a time (memory)."""
    rng = np.random.default_rng(seed)
    for start in range(0, resamples, BOOTSTRAP_CHUNK):
        yield rng.integers(0, k, size=(min(BOOTSTRAP_CHUNK, resamples - start), k))


def _ece_resamples(b: np.ndarray, y: np.ndarray, p: np.ndarray, idx: np.ndarray, bins: int) -> np.ndarray:
    """ECE of each resample (row of ``idx``), by one bincount over (resample, bin) keys."""
    rows = idx.shape[0]
    flat = (np.arange(rows)[:, None] * bins + b[idx]).ravel()
    size = rows * bins
    cnt = np.bincount(flat, minlength=size).reshape(rows, bins)
    pos = np.bincount(flat, y[idx].ravel(), size).reshape(rows, bins)
    prb = np.bincount(flat, p[idx].ravel(), size).reshape(rows, bins)
    return _ece_from_bins(cnt, pos, prb)


def expected_calibration_error(
    y_true: np.ndarray,
    prob: np.ndarray,
    bins: int = ECE_BINS,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Estimate:
    """Binary ECE: Σ_b (n_b/n)·|mean(y in b) - mean(p in b)| over ``bins`` equal-width bins of ``prob``.

    y_true: bool (n,); prob: positive-class probability (n,) in [0, 1]. Bootstrap interval (module docstring).
    ECE is biased upwards on small windows (a perfectly calibrated model has ECE > 0), which the degradation rule's
    tolerance must absorb.
    """
    y = np.asarray(y_true, dtype=float)
    p = np.asarray(prob, dtype=float)
    n = len(y)
    if n == 0:
        return NAN_ESTIMATE
    b = np.minimum((p * bins).astype(np.int64), bins - 1)
    point = float(_ece_from_bins(np.bincount(b, minlength=bins), np.bincount(b, y, bins), np.bincount(b, p, bins)))
    sub = _bootstrap_rows(n, seed)
    bs, ys, ps = b[sub], y[sub], p[sub]
    boot = np.concatenate(
        [_ece_resamples(bs, ys, ps, idx, bins) for idx in _resample_chunks(len(sub), resamples, seed)]
    )
    est = _percentile_interval(point, boot, confidence, scale=float(np.sqrt(len(sub) / n)))
    return Estimate(point, max(0.0, est.lower), est.upper, est.se, "bootstrap", confidence)


def r2(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> Estimate:
    """Coefficient of determination 1 - SSE/SST (sklearn's r2_score), with a bootstrap interval of rows.

    NaN estimate with fewer than 2 rows or a constant y_true (sklearn returns 0 or -inf there).
    """
    y = np.asarray(y_true, dtype=float)
    e2 = (y - np.asarray(y_pred, dtype=float)) ** 2
    n = len(y)
    if n < 2:
        return NAN_ESTIMATE
    sst = float(np.sum((y - y.mean()) ** 2))
    if sst == 0:
        return NAN_ESTIMATE
    point = 1 - float(e2.sum()) / sst
    sub = _bootstrap_rows(n, seed)
    k, ys_all, es_all = len(sub), y[sub], e2[sub]
    parts = []
    for idx in _resample_chunks(k, resamples, seed):
        ys, es = ys_all[idx], es_all[idx]
        boot_sst = np.sum(ys * ys, axis=1) - np.sum(ys, axis=1) ** 2 / k
        parts.append(1 - np.sum(es, axis=1) / np.where(boot_sst > 0, boot_sst, np.nan))
    boot = np.concatenate(parts)
    return _percentile_interval(point, boot, confidence, scale=float(np.sqrt(k / n)))


def _costs(decision: Mapping[str, Any] | None) -> tuple[float, float] | None:
    costs = (decision or {}).get("costs")
    if not costs:
        return None
    return float(costs["false_positive"]), float(costs["false_negative"])


def classification_metrics(
    y_true: np.ndarray,
    prob: np.ndarray | None,
    *,
    predicted: np.ndarray | None = None,
    threshold: float = 0.5,
    costs: tuple[float, float] | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
    only: Collection[str] | None = None,
) -> dict[str, Estimate]:
    """Every binary classification metric of one window, by name (the names of HIGHER_IS_BETTER).

    y_true: bool (n,), True for the positive class. prob: positive-class probability (n,) or None (then ROC AUC,
    log loss, Brier and ECE are left out). predicted: bool (n,) positive predictions; default prob >= threshold
    (the card's decision rule). costs: (false_positive, false_negative) cost of one error, from the card's
    decision section; cost_per_row = (FP·cost_fp + FN·cost_fn)/n is left out without them. only: compute just
    these names (e.g. those the card has holdout values for), skipping the others' intervals.
    Raises ValueError when neither prob nor predicted is given or the shapes differ.
    """
    y = np.asarray(y_true, dtype=bool)
    if prob is None and predicted is None:
        raise ValueError("give the positive-class probability or the predicted labels")
    p = None if prob is None else np.asarray(prob, dtype=float)
    yhat = (p >= threshold) if predicted is None else np.asarray(predicted, dtype=bool)
    if yhat.shape != y.shape or (p is not None and p.shape != y.shape):
        raise ValueError(
            f"shapes differ: y_true {y.shape}, predicted {yhat.shape}, prob {None if p is None else p.shape}"
        )
    tp = int(np.count_nonzero(y & yhat))
    fp = int(np.count_nonzero(~y & yhat))
    fn = int(np.count_nonzero(y & ~yhat))
    tn = len(y) - tp - fp - fn
    n = len(y)
    wanted = (lambda name: True) if only is None else set(only).__contains__
    out: dict[str, Estimate] = {}
    if wanted("accuracy"):
        out["accuracy"] = wilson(tp + tn, n, confidence)
    if wanted("balanced_accuracy"):
        out["balanced_accuracy"] = balanced_accuracy(tp, fn, tn, fp, confidence)
    if wanted("precision"):
        out["precision"] = wilson(tp, tp + fp, confidence)
    if wanted("recall"):
        out["recall"] = wilson(tp, tp + fn, confidence)
    if wanted("f1"):
        out["f1"] = f1(tp, fp, fn, tn, confidence)
    if p is not None:
        if wanted("roc_auc"):
            out["roc_auc"] = roc_auc(y, p, confidence)
        if wanted("log_loss"):
            clipped = np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
            out["log_loss"] = mean_estimate(-np.where(y, np.log(clipped), np.log1p(-clipped)), confidence)
        if wanted("brier"):
            out["brier"] = mean_estimate((p - y) ** 2, confidence)
        if wanted("ece"):
            out["ece"] = expected_calibration_error(y, p, confidence=confidence)
    if costs is not None and wanted("cost_per_row"):
        cost_fp, cost_fn = costs
        row_cost = np.where(~y & yhat, cost_fp, 0.0) + np.where(y & ~yhat, cost_fn, 0.0)
        out["cost_per_row"] = mean_estimate(row_cost, confidence)
    return out


def class_indices(labels: Any, classes: Sequence[Any], field: str = "y_true") -> np.ndarray:
    """Each label's position in ``classes`` (the card's classes, predict_proba's column order), shape (n,) int.

    Raises ValueError naming the first row (0-based) whose label is not one of the classes, and that label.
    """
    values = np.asarray(labels, dtype=object)
    if values.ndim != 1:
        raise ValueError(f"{field} must be one-dimensional, got shape {values.shape}")
    position = {c: i for i, c in enumerate(classes)}
    # Labels may arrive as text (CSV, JSON) for numeric classes: matched by value first, then by text.
    by_text = {str(c): i for i, c in enumerate(classes)}
    uniques, first, inverse = np.unique(values.astype(str), return_index=True, return_inverse=True)
    lookup = np.empty(len(uniques), dtype=np.int64)
    for j, text in enumerate(uniques):
        found = position.get(values[first[j]], by_text.get(str(text)))
        if found is None:
            raise ValueError(
                f"{field} row {int(first[j])} has label {values[first[j]]!r}, not one of the model's classes "
                f"{list(classes)}"
            )
        lookup[j] = found
    return lookup[inverse.reshape(-1)]


def macro_averages(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Macro precision, recall and F1 of confusion matrices shape (..., k, k) (rows: true, columns: predicted).

    As sklearn's precision/recall/f1_score(average="macro") without ``labels``: the mean over the classes present
    in y_true or the predictions, a class with no predicted (or no true) row scoring 0 (zero_division=0).
    """
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(float)
    true, pred = cm.sum(axis=-1).astype(float), cm.sum(axis=-2).astype(float)
    present = (true + pred) > 0
    classes = np.maximum(present.sum(axis=-1), 1)
    precision = np.divide(tp, pred, out=np.zeros_like(tp), where=pred > 0)
    recall = np.divide(tp, true, out=np.zeros_like(tp), where=true > 0)
    f1_denominator = true + pred  # 2TP + FP + FN
    f1_score = np.divide(2 * tp, f1_denominator, out=np.zeros_like(tp), where=f1_denominator > 0)
    return tuple(np.sum(x * present, axis=-1) / classes for x in (precision, recall, f1_score))


def macro_scores(
    cm: np.ndarray,
    confidence: float = DEFAULT_CONFIDENCE,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Estimate]:
    """precision_macro, recall_macro and f1_macro of a k x k confusion matrix (rows true, columns predicted).

    Definitions as sklearn's ``average="macro"`` (see `macro_averages`); intervals from one seeded multinomial
    bootstrap of the k² cells (as `f1`: exact for a row bootstrap, O(resamples·k²)). Empty matrix: NaN estimates.
    """
    cm = np.asarray(cm, dtype=np.int64)
    n = int(cm.sum())
    names = ("precision_macro", "recall_macro", "f1_macro")
    if n == 0:
        return dict.fromkeys(names, NAN_ESTIMATE)
    k = cm.shape[0]
    points = macro_averages(cm)
    counts = np.random.default_rng(seed).multinomial(n, cm.ravel() / n, size=resamples).reshape(resamples, k, k)
    boots = macro_averages(counts)
    out = {}
    for name, point, boot in zip(names, points, boots, strict=True):
        est = _percentile_interval(float(point), boot, confidence)
        out[name] = Estimate(float(point), max(0.0, est.lower), min(1.0, est.upper), est.se, "bootstrap", confidence)
    return out


def multiclass_balanced_accuracy(cm: np.ndarray, confidence: float = DEFAULT_CONFIDENCE) -> Estimate:
    """Mean recall of the classes with rows in y_true (sklearn's balanced_accuracy_score, which drops a class
    absent from y_true with a warning), normal interval with the recalls' binomial variances added.

    cm: k x k confusion matrix, rows true. NaN estimate for an empty matrix.
    """
    cm = np.asarray(cm, dtype=np.int64)
    support = cm.sum(axis=1)
    present = support > 0
    if not present.any():
        return NAN_ESTIMATE
    recall = np.diagonal(cm)[present] / support[present]
    value = float(recall.mean())
    se = float(np.sqrt(np.sum(recall * (1 - recall) / support[present])) / present.sum())
    z = _z(confidence)
    return Estimate(value, max(0.0, value - z * se), min(1.0, value + z * se), se, "normal", confidence)


def roc_auc_ovr(y_index: np.ndarray, prob: np.ndarray, confidence: float = DEFAULT_CONFIDENCE) -> Estimate:
    """One-vs-rest macro ROC AUC: the unweighted mean over the k classes of the AUC of column c for "label is c"
    (sklearn's roc_auc_score(multi_class="ovr", average="macro"); Fawcett 2006, "An introduction to ROC
    analysis", Pattern Recognition Letters 27:861-874), with a DeLong-type interval (module docstring).

    y_index: int (n,), each row's class position; prob: (n, k). NaN estimate when a class has no row (its AUC is
    undefined: sklearn raises there).
    """
    y = np.asarray(y_index)
    p = np.asarray(prob, dtype=float)
    k = p.shape[1]
    n = len(y)
    influence = np.zeros(n)
    aucs = []
    for c in range(k):
        positive = y == c
        components = delong_components(positive, p[:, c])
        if components is None:
            return NAN_ESTIMATE
        auc, v10, v01 = components
        m, q = len(v10), len(v01)
        aucs.append(auc)
        # Influence of each row on AUC_c, scaled so that its sum of squares is DeLong's (ddof=1) variance.
        influence[positive] += (v10 - auc) / (np.sqrt(m * (m - 1)) if m > 1 else m)
        influence[~positive] += (v01 - auc) / (np.sqrt(q * (q - 1)) if q > 1 else q)
    value = float(np.mean(aucs))
    se = float(np.sqrt(np.sum(influence * influence)) / k)
    z = _z(confidence)
    return Estimate(value, max(0.0, value - z * se), min(1.0, value + z * se), se, "delong", confidence)


def multiclass_metrics(
    y_true: Any,
    prob: np.ndarray | None,
    *,
    classes: Sequence[Any],
    predicted: Any = None,
    confidence: float = DEFAULT_CONFIDENCE,
    only: Collection[str] | None = None,
) -> dict[str, Estimate]:
    """Every multiclass classification metric of one window, by name (the names of HIGHER_IS_BETTER).

    y_true: labels (n,), each one of ``classes`` (the card's classes, in predict_proba's column order).
    prob: predict_proba output (n, k) or None (then roc_auc_ovr, log loss, Brier and ECE are left out).
    predicted: the served labels (n,); default the class of the largest probability (what predict returns for
    sklearn's probabilistic classifiers). only: compute just these names.

    Definitions (scikit-learn 1.9 is the reference): accuracy; balanced accuracy and precision/recall/f1_macro
    (`multiclass_balanced_accuracy`, `macro_scores`); roc_auc_ovr (`roc_auc_ovr`); log loss -log p(true class),
    clipped as sklearn's log_loss; Brier score Σ_c (p_c - 1[y = c])² per row, averaged, not halved (sklearn's
    brier_score_loss for 3+ classes, ranging in [0, 2]); ECE: top-label (Guo et al. 2017), the predicted class's
    probability against whether the prediction is right. No cost per row: the card's costs are binary only.
    Raises ValueError when neither prob nor predicted is given, shapes differ, a label is not a class, or there
    are fewer than 3 classes (use classification_metrics).
    """
    k = len(classes)
    if k < 3:
        raise ValueError(f"multiclass metrics need 3 or more classes, got {k}: use classification_metrics")
    if prob is None and predicted is None:
        raise ValueError("give the class probabilities or the predicted labels")
    y = class_indices(y_true, classes)
    p = None if prob is None else np.asarray(prob, dtype=float)
    if p is not None and p.shape != (len(y), k):
        raise ValueError(f"prob must have shape (n, {k}) for n = {len(y)} labels and {k} classes, got {p.shape}")
    yhat = np.argmax(p, axis=1) if predicted is None else class_indices(predicted, classes, "predicted")
    if yhat.shape != y.shape:
        raise ValueError(f"shapes differ: y_true {y.shape}, predicted {yhat.shape}")
    n = len(y)
    cm = np.bincount(y * k + yhat, minlength=k * k).reshape(k, k)
    wanted = (lambda name: True) if only is None else set(only).__contains__
    out: dict[str, Estimate] = {}
    if wanted("accuracy"):
        out["accuracy"] = wilson(int(np.trace(cm)), n, confidence)
    if wanted("balanced_accuracy"):
        out["balanced_accuracy"] = multiclass_balanced_accuracy(cm, confidence)
    macro = [name for name in ("precision_macro", "recall_macro", "f1_macro") if wanted(name)]
    if macro:
        scores = macro_scores(cm, confidence)
        out.update({name: scores[name] for name in macro})
    if p is not None:
        rows = np.arange(n)
        if wanted("roc_auc_ovr"):
            out["roc_auc_ovr"] = roc_auc_ovr(y, p, confidence)
        if wanted("log_loss"):
            out["log_loss"] = mean_estimate(-np.log(np.clip(p[rows, y], LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)), confidence)
        if wanted("brier"):
            residual = p.copy()
            residual[rows, y] -= 1.0
            out["brier"] = mean_estimate(np.sum(residual * residual, axis=1), confidence)
        if wanted("ece"):
            out["ece"] = expected_calibration_error(yhat == y, p[rows, yhat], confidence=confidence)
    return out


def regression_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, *, confidence: float = DEFAULT_CONFIDENCE
) -> dict[str, Estimate]:
    """MAE, RMSE, R² and mean bias (mean of prediction - truth, > 0 = over-prediction) of one window, by name."""
    y = np.asarray(y_true, dtype=float)
    pred = np.asarray(y_pred, dtype=float)
    if y.shape != pred.shape:
        raise ValueError(f"shapes differ: y_true {y.shape}, y_pred {pred.shape}")
    err = pred - y
    mse = mean_estimate(err * err, confidence)
    rmse = Estimate(
        float(np.sqrt(mse.value)),
        float(np.sqrt(max(0.0, mse.lower))),
        float(np.sqrt(max(0.0, mse.upper))),
        # delta method: se(sqrt(M)) = se(M) / (2 sqrt(M))
        float(mse.se / (2 * np.sqrt(mse.value))) if mse.value > 0 else float("nan"),
        "normal",
        confidence,
    )
    return {
        "mae": mean_estimate(np.abs(err), confidence),
        "rmse": rmse,
        "r2": r2(y, pred, confidence),
        "mean_bias": mean_estimate(err, confidence),
    }


def window_metrics(
    task: str,
    y_true: np.ndarray,
    *,
    prob: np.ndarray | None = None,
    predicted: np.ndarray | None = None,
    decision: Mapping[str, Any] | None = None,
    classes: Sequence[Any] | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
) -> dict[str, Estimate]:
    """The metrics of one window for a card's ``task``, ``decision`` and ``classes``.

    Classification with 3 or more ``classes``: `multiclass_metrics` (y_true and predicted are labels, prob is
    (n, k)). Other classification: y_true is bool (True = the decision's positive class); the threshold and costs
    come from ``decision`` (threshold 0.5 without one). Regression: y_true and predicted are numbers.
    Raises ValueError for an unknown task or a regression window without predictions.
    """
    if task == CLASSIFICATION and classes is not None and len(classes) > 2:
        return multiclass_metrics(y_true, prob, classes=classes, predicted=predicted, confidence=confidence)
    if task == CLASSIFICATION:
        threshold = float((decision or {}).get("threshold", 0.5))
        return classification_metrics(
            y_true, prob, predicted=predicted, threshold=threshold, costs=_costs(decision), confidence=confidence
        )
    if task == REGRESSION:
        if predicted is None:
            raise ValueError("a regression window needs its predictions")
        return regression_metrics(y_true, predicted, confidence=confidence)
    raise ValueError(f"unknown task {task!r}")
