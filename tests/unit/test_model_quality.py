"""Model quality: metrics against scikit-learn, interval coverage, the degradation rule and its state, the join.

Coverage simulations draw windows from a fixed population whose true metric is computed on 400,000 rows; each
interval should cover it at about its nominal 95 %. Seeds are fixed, so the tests are deterministic.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from sklambda.monitoring.model_quality import metrics as mq
from sklambda.monitoring.model_quality.degradation import (
    DEFAULT_TOLERANCES,
    DEGRADED,
    INSUFFICIENT_LABELS,
    NO_REFERENCE,
    OK,
    DegradationConfig,
    check_degradation,
    holdout_references,
    pooled_run_test,
    update_state,
)
from sklambda.monitoring.model_quality.join import join_labels

COVERAGE_SIMULATIONS = 300
# With 300 simulations a 95 % interval's coverage has a standard error of ~1.3 points.
COVERAGE_RANGE = (0.91, 0.99)


def binary_window(n: int, seed: int, slope: float = 2.0, prevalence_shift: float = -1.0):
    """A calibrated binary problem: label ~ Bernoulli(p), p = sigmoid(shift + slope * x), ties in the scores."""
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=n), 2)  # rounding makes tied scores, which ROC AUC must count as one half
    p = 1 / (1 + np.exp(-(prevalence_shift + slope * x)))
    y = rng.random(n) < p
    return y, p


def regression_window(n: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.normal(3.0, 2.0, n)
    return y, y + rng.normal(0.2, 1.0, n) + 0.3 * rng.standard_t(4, n)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_metrics_equal_sklearns_on_random_windows(seed):
    # GIVEN a random binary window with tied scores and a threshold other than 0.5
    y, p = binary_window(3000, seed)
    threshold, cost_fp, cost_fn = 0.4, 1.0, 7.5
    # WHEN every classification metric is computed
    out = mq.classification_metrics(y, p, threshold=threshold, costs=(cost_fp, cost_fn))
    # THEN each equals scikit-learn's (or the confusion matrix's cost per row)
    pred = p >= threshold
    _tn, fp, fn, _tp = skm.confusion_matrix(y, pred).ravel()
    expected = {
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "precision": skm.precision_score(y, pred),
        "recall": skm.recall_score(y, pred),
        "f1": skm.f1_score(y, pred),
        "roc_auc": skm.roc_auc_score(y, p),
        "log_loss": skm.log_loss(y, p),
        "brier": skm.brier_score_loss(y, p),
        "cost_per_row": (fp * cost_fp + fn * cost_fn) / len(y),
    }
    for name, value in expected.items():
        assert out[name].value == pytest.approx(value, rel=1e-9, abs=1e-12), name
        assert out[name].lower <= out[name].value <= out[name].upper, name


def multiclass_window(n: int, seed: int, k: int = 3):
    """A calibrated k-class problem: label ~ Categorical(p), p = softmax of random logits, rounded (tied scores)."""
    rng = np.random.default_rng(seed)
    p = np.exp(1.5 * rng.normal(size=(n, k)))
    p = np.round(p / p.sum(axis=1, keepdims=True), 2)
    p = p / p.sum(axis=1, keepdims=True)
    y = np.minimum(np.sum(rng.random((n, 1)) >= np.cumsum(p, axis=1), axis=1), k - 1)
    return y, p


@pytest.mark.parametrize(("seed", "k"), [(0, 3), (1, 4), (2, 6)])
def test_multiclass_metrics_equal_sklearns_on_random_windows(seed, k):
    # GIVEN a random k-class window with text labels and tied probabilities
    y, p = multiclass_window(3000, seed, k)
    classes = [f"class-{c}" for c in range(k)]
    labels, pred = np.array(classes)[y], np.array(classes)[p.argmax(axis=1)]
    # WHEN every multiclass metric is computed
    out = mq.multiclass_metrics(labels, p, classes=classes)
    # THEN each equals scikit-learn's to 1e-12 (the Brier score is 1.9's multiclass one, not halved)
    expected = {
        "accuracy": skm.accuracy_score(labels, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(labels, pred),
        "precision_macro": skm.precision_score(labels, pred, average="macro", zero_division=0),
        "recall_macro": skm.recall_score(labels, pred, average="macro", zero_division=0),
        "f1_macro": skm.f1_score(labels, pred, average="macro", zero_division=0),
        "roc_auc_ovr": skm.roc_auc_score(labels, p, multi_class="ovr", average="macro", labels=classes),
        "log_loss": skm.log_loss(labels, p, labels=classes),
        "brier": skm.brier_score_loss(labels, p, labels=classes),
    }
    assert set(out) == {*expected, "ece"}
    for name, value in expected.items():
        assert out[name].value == pytest.approx(value, rel=1e-12, abs=1e-12), name
        assert out[name].lower <= out[name].value <= out[name].upper, name
    # AND the ECE is the binary ECE of "the prediction is right" against the predicted class's probability
    top = mq.expected_calibration_error(pred == labels, p.max(axis=1))
    assert out["ece"].value == pytest.approx(top.value, rel=1e-12)


def test_multiclass_macro_scores_average_the_classes_present_as_sklearn_does():
    # GIVEN a window where one class is never the label and another never predicted
    classes = ["a", "b", "c", "d"]
    y = np.array(["a", "a", "b", "b", "c", "c", "a", "b"])
    pred = np.array(["a", "b", "b", "d", "a", "c", "a", "b"])
    # WHEN the metrics are computed from the labels alone
    out = mq.multiclass_metrics(y, None, classes=classes, predicted=pred)
    # THEN the macro scores and balanced accuracy equal sklearn's (zero_division=0; balanced accuracy drops "d")
    for name, metric in (("precision_macro", skm.precision_score), ("recall_macro", skm.recall_score)):
        assert out[name].value == pytest.approx(metric(y, pred, average="macro", zero_division=0), abs=1e-12)
    assert out["f1_macro"].value == pytest.approx(skm.f1_score(y, pred, average="macro", zero_division=0), abs=1e-12)
    with pytest.warns(UserWarning, match="y_pred contains classes not in y_true"):
        balanced = skm.balanced_accuracy_score(y, pred)
    assert out["balanced_accuracy"].value == pytest.approx(balanced, abs=1e-12)
    # AND the probability metrics are left out
    assert set(out) == {"accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro"}


def test_multiclass_ovr_auc_is_undefined_on_a_window_missing_a_class():
    # GIVEN a 3-class window with no row of the third class
    y, p = multiclass_window(600, 4)
    y = np.minimum(y, 1)
    # WHEN the metrics are computed THEN the OvR AUC is NaN (sklearn raises) and the rest are defined
    out = mq.multiclass_metrics(y, p, classes=[0, 1, 2])
    assert np.isnan(out["roc_auc_ovr"].value) and np.isfinite(out["log_loss"].value)


def test_multiclass_labels_outside_the_cards_classes_are_refused_by_name():
    with pytest.raises(ValueError, match=r"y_true row 1 has label 'penguin', not one of the model's classes"):
        mq.multiclass_metrics(["a", "penguin", "b"], np.full((3, 3), 1 / 3), classes=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"prob must have shape \(n, 3\)"):
        mq.multiclass_metrics(["a", "b"], np.full((2, 2), 0.5), classes=["a", "b", "c"])


def test_multiclass_labels_given_as_text_match_numeric_classes():
    # GIVEN numeric classes and labels read back as text (a CSV of labels)
    y, p = multiclass_window(500, 6)
    # WHEN the metrics are computed from the text labels THEN they equal those from the numbers
    text = mq.multiclass_metrics(y.astype(str), p, classes=[0, 1, 2], only=("accuracy", "log_loss"))
    numbers = mq.multiclass_metrics(y, p, classes=[0, 1, 2], only=("accuracy", "log_loss"))
    assert text == numbers


def test_window_metrics_use_the_multiclass_metrics_for_a_card_with_three_classes():
    # GIVEN a 3-class window and the card's classes
    y, p = multiclass_window(800, 5)
    # WHEN the window's metrics are computed for that card
    out = mq.window_metrics("classification", y, prob=p, classes=[0, 1, 2])
    # THEN they carry the card's multiclass holdout names, which the degradation check has references for
    assert {"f1_macro", "roc_auc_ovr", "balanced_accuracy", "log_loss"} <= set(out)
    card_metrics = {"rows": 1000, "accuracy": 0.7, "f1_macro": 0.7, "roc_auc_ovr": 0.85, "log_loss": 0.7}
    report = check_degradation(out, card_metrics, labeled_rows=len(y))
    compared = {m.name for m in report.metrics if m.verdict != NO_REFERENCE}
    assert compared == {"accuracy", "f1_macro", "roc_auc_ovr", "log_loss"}


def test_expected_calibration_error_equals_the_per_bin_definition():
    # GIVEN a miscalibrated window (probabilities squeezed towards 0.5)
    y, p = binary_window(5000, 3)
    q = 0.5 + 0.6 * (p - 0.5)
    # WHEN ECE is computed
    ece = mq.expected_calibration_error(y, q)
    # THEN it equals sum_b n_b/n |acc_b - conf_b| over ten equal-width bins, computed bin by bin
    edges = np.linspace(0, 1, mq.ECE_BINS + 1)
    total = 0.0
    for lo, hi in itertools.pairwise(edges):
        inside = (q >= lo) & ((q < hi) if hi < 1 else (q <= hi))
        if inside.any():
            total += inside.sum() / len(q) * abs(y[inside].mean() - q[inside].mean())
    assert ece.value == pytest.approx(total, rel=1e-12)
    assert ece.lower <= ece.value <= ece.upper


@pytest.mark.parametrize("seed", [0, 1])
def test_regression_metrics_equal_sklearns_on_random_windows(seed):
    # GIVEN a random regression window
    y, pred = regression_window(2000, seed)
    # WHEN the regression metrics are computed
    out = mq.regression_metrics(y, pred)
    # THEN MAE, RMSE and R² equal scikit-learn's, and mean bias is mean(prediction - truth)
    assert out["mae"].value == pytest.approx(skm.mean_absolute_error(y, pred), rel=1e-12)
    assert out["rmse"].value == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)), rel=1e-12)
    assert out["r2"].value == pytest.approx(skm.r2_score(y, pred), rel=1e-12)
    assert out["mean_bias"].value == pytest.approx(np.mean(pred - y), rel=1e-12)


def test_metrics_undefined_on_a_window_with_one_class_are_nan_not_errors():
    # GIVEN a window whose labels are all negative
    y, p = np.zeros(600, dtype=bool), np.linspace(0.01, 0.99, 600)
    # WHEN the metrics are computed
    out = mq.classification_metrics(y, p)
    # THEN ROC AUC and recall are undefined (NaN) and accuracy is still computed
    assert np.isnan(out["roc_auc"].value) and np.isnan(out["recall"].value)
    assert out["accuracy"].value == pytest.approx(np.mean(p < 0.5))
    assert out["roc_auc"].to_dict()["value"] is None


def test_window_metrics_follow_the_cards_task_and_decision_section():
    # GIVEN a binary window and a decision section with a threshold and costs
    y, p = binary_window(1000, 5)
    decision = {"positive_class": 1, "threshold": 0.3, "costs": {"false_positive": 2.0, "false_negative": 3.0}}
    # WHEN the window's metrics are computed for a classifier, and only two of them on request
    out = mq.window_metrics("classification", y, prob=p, decision=decision)
    two = mq.classification_metrics(y, p, threshold=0.3, only=("roc_auc", "accuracy"))
    # THEN the decision's threshold and costs are used, and `only` computes just those names
    pred = p >= 0.3
    assert out["accuracy"].value == pytest.approx(np.mean(pred == y))
    assert out["cost_per_row"].value == pytest.approx((2.0 * np.sum(pred & ~y) + 3.0 * np.sum(~pred & y)) / len(y))
    assert set(two) == {"roc_auc", "accuracy"} and two["accuracy"] == out["accuracy"]


def test_window_metrics_refuse_an_unknown_task_and_a_regression_window_without_predictions():
    with pytest.raises(ValueError, match="unknown task"):
        mq.window_metrics("ranking", np.zeros(3), predicted=np.zeros(3))
    with pytest.raises(ValueError, match="predictions"):
        mq.window_metrics("regression", np.zeros(3))


def _coverage(metric, population, n: int) -> float:
    """Share of COVERAGE_SIMULATIONS windows of n rows whose interval covers the population's value."""
    truth = metric(*population(400_000, 10_000)).value
    hits = 0
    for seed in range(COVERAGE_SIMULATIONS):
        est = metric(*population(n, seed))
        hits += est.lower <= truth <= est.upper
    return hits / COVERAGE_SIMULATIONS


def confusion(y, p, threshold: float = 0.5) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) at the threshold."""
    pred = p >= threshold
    return int(np.sum(y & pred)), int(np.sum(~y & pred)), int(np.sum(y & ~pred)), int(np.sum(~y & ~pred))


def _accuracy(y, p):
    tp, _fp, _fn, tn = confusion(y, p)
    return mq.wilson(tp + tn, len(y))


def _balanced_accuracy(y, p):
    tp, fp, fn, tn = confusion(y, p)
    return mq.balanced_accuracy(tp, fn, tn, fp)


def _f1(y, p):
    return mq.f1(*confusion(y, p))


def _log_loss(y, p):
    return mq.mean_estimate(-np.where(y, np.log(p), np.log1p(-p)))


# The functions classification_metrics calls, one at a time (the full set would also bootstrap ECE each time).
CLASSIFICATION_INTERVALS = {
    "accuracy (Wilson)": _accuracy,
    "balanced accuracy (normal)": _balanced_accuracy,
    "ROC AUC (DeLong)": mq.roc_auc,
    "log loss (normal)": _log_loss,
    "F1 (multinomial bootstrap)": _f1,
}


def _f1_macro(y, p):
    k = p.shape[1]
    cm = np.bincount(y * k + p.argmax(axis=1), minlength=k * k).reshape(k, k)
    return mq.macro_scores(cm)["f1_macro"]


def _multiclass_balanced_accuracy(y, p):
    k = p.shape[1]
    return mq.multiclass_balanced_accuracy(np.bincount(y * k + p.argmax(axis=1), minlength=k * k).reshape(k, k))


MULTICLASS_INTERVALS = {
    "macro F1 (multinomial bootstrap)": _f1_macro,
    "balanced accuracy (normal)": _multiclass_balanced_accuracy,
    "OvR macro ROC AUC (DeLong influence)": mq.roc_auc_ovr,
}


@pytest.mark.parametrize("name", sorted(MULTICLASS_INTERVALS))
def test_multiclass_intervals_cover_the_population_value_at_the_nominal_rate(name):
    # GIVEN windows of 800 rows from one 3-class population WHEN each gets a 95 % interval
    coverage = _coverage(MULTICLASS_INTERVALS[name], multiclass_window, 800)
    # THEN about 95 % of the intervals cover the population's value
    assert COVERAGE_RANGE[0] <= coverage <= COVERAGE_RANGE[1], coverage


@pytest.mark.parametrize("name", sorted(CLASSIFICATION_INTERVALS))
def test_classification_intervals_cover_the_population_value_at_the_nominal_rate(name):
    # GIVEN windows of 800 rows from one binary population WHEN each gets a 95 % interval
    coverage = _coverage(CLASSIFICATION_INTERVALS[name], binary_window, 800)
    # THEN about 95 % of the intervals cover the population's value
    assert COVERAGE_RANGE[0] <= coverage <= COVERAGE_RANGE[1], coverage


def _rmse(y, pred):
    return mq.regression_metrics(y, pred)["rmse"]


REGRESSION_INTERVALS = {
    "MAE (normal)": lambda y, pred: mq.mean_estimate(np.abs(pred - y)),
    "mean bias (normal)": lambda y, pred: mq.mean_estimate(pred - y),
    "RMSE (normal, square-rooted)": _rmse,
    "R² (row bootstrap)": mq.r2,
}


@pytest.mark.parametrize("name", sorted(REGRESSION_INTERVALS))
def test_regression_intervals_cover_the_population_value_at_the_nominal_rate(name):
    # GIVEN windows of 800 rows from one regression population WHEN each gets a 95 % interval
    coverage = _coverage(REGRESSION_INTERVALS[name], regression_window, 800)
    # THEN about 95 % of the intervals cover the population's value
    assert COVERAGE_RANGE[0] <= coverage <= COVERAGE_RANGE[1], coverage


def test_wilson_interval_stays_inside_zero_one_when_every_trial_succeeds():
    # GIVEN 50 successes out of 50 WHEN the Wilson interval is computed
    est = mq.wilson(50, 50)
    # THEN the interval is below 1 at the bottom (unlike a Wald interval of width 0) and capped at 1
    assert est.value == 1.0 and 0.9 < est.lower < 1.0 and est.upper == 1.0


# ---- degradation rule ----------------------------------------------------------------------------------------

CARD_METRICS = {"split": "holdout", "rows": 20_000, "accuracy": 0.80, "roc_auc": 0.85, "log_loss": 0.45}


def estimates(accuracy: float, se: float, roc_auc: float = 0.85, log_loss: float = 0.45) -> dict[str, mq.Estimate]:
    """Window estimates with one standard error for all (their intervals do not matter to the rule)."""
    return {
        "accuracy": mq.Estimate(accuracy, accuracy - 2 * se, accuracy + 2 * se, se, "wilson"),
        "roc_auc": mq.Estimate(roc_auc, roc_auc - 2 * se, roc_auc + 2 * se, se, "delong"),
        "log_loss": mq.Estimate(log_loss, log_loss - 2 * se, log_loss + 2 * se, se, "normal"),
        "brier": mq.Estimate(0.15, 0.14, 0.16, 0.005, "normal"),
    }


def test_too_few_labels_is_insufficient_never_degraded_even_with_a_large_drop():
    # GIVEN a window 30 accuracy points below the holdout but with fewer labels than min_labeled_rows
    config = DegradationConfig()
    # WHEN the rule is applied
    report = check_degradation(
        estimates(0.50, 0.03), CARD_METRICS, labeled_rows=config.min_labeled_rows - 1, config=config
    )
    # THEN the window and its compared metrics are insufficient_labels
    assert report.verdict == INSUFFICIENT_LABELS
    assert report.degraded_metrics == ()
    assert {m.name: m.verdict for m in report.metrics}["accuracy"] == INSUFFICIENT_LABELS


def test_a_significant_drop_within_tolerance_is_ok():
    # GIVEN 200,000 labels and accuracy 0.5 points below a 2,000,000-row holdout's (significant, but under the
    # 1-point tolerance)
    card = {**CARD_METRICS, "rows": 2_000_000}
    report = check_degradation(estimates(0.795, 0.0009), card, labeled_rows=200_000)
    # WHEN/THEN the accuracy drop is highly significant yet the verdict is ok
    accuracy = {m.name: m for m in report.metrics}["accuracy"]
    assert accuracy.p_value < 1e-3
    assert accuracy.verdict == OK and report.verdict == OK


def test_a_drop_beyond_tolerance_that_is_not_significant_is_ok():
    # GIVEN 500 labels and accuracy 2 points below the holdout (beyond tolerance, within noise: se 0.018)
    report = check_degradation(estimates(0.78, 0.018), CARD_METRICS, labeled_rows=500)
    # THEN the window is ok
    assert report.verdict == OK


def test_a_significant_drop_beyond_tolerance_degrades_the_window():
    # GIVEN 5,000 labels and ROC AUC 0.05 below the holdout (se 0.006)
    report = check_degradation(estimates(0.80, 0.006, roc_auc=0.80), CARD_METRICS, labeled_rows=5000)
    # THEN ROC AUC, and only it, is degraded
    assert report.verdict == DEGRADED
    assert report.degraded_metrics == ("roc_auc",)


def test_a_lower_is_better_metric_degrades_when_it_rises():
    # GIVEN log loss 30 % above the holdout's on 5,000 labels (tolerance 10 % of the holdout value)
    report = check_degradation(estimates(0.80, 0.006, log_loss=0.585), CARD_METRICS, labeled_rows=5000)
    # THEN log loss is degraded
    assert report.degraded_metrics == ("log_loss",)


def test_metrics_the_card_has_no_holdout_value_for_are_reported_not_compared():
    # GIVEN a window with a Brier score, which cards do not record
    report = check_degradation(estimates(0.80, 0.006), CARD_METRICS, labeled_rows=5000)
    # THEN brier is no_reference
    assert {m.name: m.verdict for m in report.metrics}["brier"] == NO_REFERENCE


def test_holdout_references_take_the_cost_per_row_from_the_decision_section():
    # GIVEN a card's metrics and a cost-based decision section
    refs = holdout_references(
        {"split": "holdout", "rows": 100, "roc_auc": 0.9, "f1_macro": 0.7},
        {"threshold": 0.3, "costs": {"false_positive": 1, "false_negative": 5}, "holdout_expected_cost": 0.42},
    )
    # THEN the compared names are the window's metric names (f1_macro: a multiclass window's), with cost_per_row
    # from holdout_expected_cost; "split" and "rows" are not metrics
    assert refs == {"roc_auc": 0.9, "f1_macro": 0.7, "cost_per_row": 0.42}


def test_holdout_uncertainty_makes_a_small_holdout_harder_to_beat():
    # GIVEN the same window compared with a 20,000-row holdout and with a 500-row one
    window = estimates(0.775, 0.008)
    big = check_degradation(window, CARD_METRICS, labeled_rows=2500)
    small = check_degradation(window, {**CARD_METRICS, "rows": 500}, labeled_rows=2500)
    # THEN the small holdout's p-value is larger (its own noise is part of the difference)
    p = {r: {m.name: m.p_value for m in rep.metrics}["accuracy"] for r, rep in (("big", big), ("small", small))}
    assert p["small"] > p["big"]
    assert big.verdict == DEGRADED and small.verdict == OK


def test_model_is_degraded_only_after_consecutive_degraded_windows():
    # GIVEN a degraded window report, an ok one and an insufficient one
    degraded = check_degradation(estimates(0.80, 0.006, roc_auc=0.80), CARD_METRICS, labeled_rows=5000).to_dict()
    ok = check_degradation(estimates(0.80, 0.006), CARD_METRICS, labeled_rows=5000).to_dict()
    quiet = check_degradation(estimates(0.80, 0.006), CARD_METRICS, labeled_rows=10).to_dict()
    # WHEN they are folded in order: degraded, insufficient, degraded, ok
    state, first = update_state(None, degraded)
    state, after_quiet = update_state(state, quiet)
    state, second = update_state(state, degraded)
    flagged_state = state
    state, after_ok = update_state(state, ok)
    # THEN one degraded window is not enough, a quiet window neither counts nor resets, two in a row flag
    # the model with its metrics, and an ok window clears it
    assert (first, after_quiet, second, after_ok) == (False, False, True, False)
    assert flagged_state["degraded_metrics"] == ["roc_auc"] and flagged_state["consecutive_degraded"] == 2
    assert state["consecutive_degraded"] == 0 and state["windows_seen"] == 4


def test_holm_correction_keeps_a_borderline_drop_ok_that_the_per_metric_test_flags():
    # GIVEN accuracy and ROC AUC both 0.035 below a 1,000,000-row holdout with se 0.018 (one-sided p ~0.026 each)
    window = estimates(0.765, 0.018, roc_auc=0.815)
    card = {**CARD_METRICS, "rows": 1_000_000}
    # WHEN checked per metric and with Holm's correction across the compared metrics
    per_metric = check_degradation(window, card, labeled_rows=1000)
    holm = check_degradation(
        window, card, labeled_rows=1000, config=DegradationConfig.from_dict({"correction": "holm"})
    )
    # THEN the per-metric test flags both and Holm (3 tests: smallest p x 3 > 0.05) flags neither
    assert per_metric.degraded_metrics == ("accuracy", "roc_auc")
    assert holm.verdict == OK
    assert all(m.p_adjusted >= m.p_value for m in holm.metrics if m.p_value is not None)


def test_tolerance_overrides_merge_into_the_defaults():
    # GIVEN a config overriding only the ROC AUC tolerance
    config = DegradationConfig.from_dict({"tolerances": {"roc_auc": "0.05"}})
    # THEN the other tolerances keep their defaults
    assert config.tolerances["roc_auc"] == 0.05 and config.tolerances["accuracy"] == DEFAULT_TOLERANCES["accuracy"]


def _window(rows: int, drop: float, window_se: float, holdout_se: float) -> dict:
    """A degraded window's report as update_state reads it: one metric (roc_auc) with its drop and variances."""
    metric = {"name": "roc_auc", "drop": drop, "tolerance": 0.0125, "p_value": 0.01}
    metric.update(window_variance=window_se**2, holdout_variance=holdout_se**2, verdict=DEGRADED)
    return {"verdict": DEGRADED, "labeled_rows": rows, "degraded_metrics": ["roc_auc"], "metrics": [metric]}


def test_two_borderline_degraded_windows_raise_no_alarm_unless_the_pooled_run_confirms_the_drop():
    # GIVEN two degraded windows whose drops (0.016, ~1.6 standard errors each) pass the window's test
    borderline = _window(2000, 0.016, 0.0088, 0.0039)
    # WHEN they are folded in a row
    state, _ = update_state(None, borderline)
    state, alarm = update_state(state, borderline)
    # THEN the run is long enough, but the pooled drop (z ~2.2 < 2.33) does not confirm it at 1 %: no alarm
    assert state["consecutive_degraded"] == 2 and not alarm
    assert state["pooled"]["metrics"]["roc_auc"]["p_adjusted"] > 0.01
    # AND two windows 0.03 lower (the drop the monitor must catch) raise it
    state, _ = update_state(None, _window(2000, 0.03, 0.0088, 0.0039))
    state, alarm = update_state(state, _window(2000, 0.03, 0.0088, 0.0039))
    assert alarm and state["pooled"]["confirmed"]


def test_the_pooled_test_counts_the_shared_holdout_error_once_not_once_per_window():
    # GIVEN three windows whose own error is small but whose common holdout is noisy (se 0.01)
    windows = [_window(20_000, 0.018, 0.003, 0.01) for _ in range(3)]
    # WHEN the run is pooled
    pooled = pooled_run_test(windows, DegradationConfig(consecutive_windows=3))
    # THEN the holdout's variance is not averaged away: z = 0.018 / sqrt(0.003^2 / 3 + 0.01^2) ~ 1.76, not 3.2
    p = pooled["metrics"]["roc_auc"]["p_value"]
    assert p == pytest.approx(0.039, abs=0.002) and not pooled["confirmed"]


def test_update_state_rejects_an_unknown_verdict():
    with pytest.raises(ValueError, match="unknown verdict"):
        update_state(None, {"verdict": "drift"})


@pytest.mark.parametrize(
    "settings",
    [{"alpha": 0}, {"correction": "bonferroni"}, {"min_labeled_rows": 0}, {"tolerances": {"roc_auc": -0.1}}, {"x": 1}],
)
def test_invalid_degradation_settings_are_refused(settings):
    with pytest.raises(ValueError):
        DegradationConfig.from_dict(settings)


def compared(y, p) -> dict[str, mq.Estimate]:
    """The estimates a card's holdout metrics can be compared with (ECE and the others are not)."""
    tp, fp, fn, tn = confusion(y, p)
    return {
        "accuracy": mq.wilson(tp + tn, len(y)),
        "balanced_accuracy": mq.balanced_accuracy(tp, fn, tn, fp),
        "roc_auc": mq.roc_auc(y, p),
        "log_loss": _log_loss(y, p),
    }


def test_clean_windows_from_the_holdout_population_rarely_raise_a_model_alarm():
    # GIVEN 20 cards whose holdout metrics come from 10,000 rows of a population, each with 10 clean windows
    alarms = 0
    for model in range(20):
        card = {"rows": 10_000, **{k: v.value for k, v in compared(*binary_window(10_000, 1000 + model)).items()}}
        state = None
        # WHEN each window of 2,000 labels is checked and folded into the model's state
        for window in range(10):
            report = check_degradation(compared(*binary_window(2000, 100 * model + window)), card, labeled_rows=2000)
            state, flagged = update_state(state, report)
            alarms += flagged
    # THEN the alarm rule (2 in a row, confirmed by the pooled test at 1 %) raises at most a few of 200 alarms
    assert alarms <= 5


# ---- join ----------------------------------------------------------------------------------------------------


def test_join_keeps_the_latest_capture_and_label_and_reports_the_join_rate():
    # GIVEN 4 captured predictions (id "b" captured twice) and 4 labels (one unknown id, "a" labeled twice)
    t = pd.Timestamp("2026-01-01")
    predictions = pd.DataFrame(
        {
            "inference_id": ["a", "b", "c", "b"],
            "prediction": [1, 0, 1, 1],
            "probability": [0.9, 0.2, 0.7, 0.8],
            "time": [t, t, t, t + pd.Timedelta("1h")],
            "version": ["1", "1", "1", "2"],
        }
    )
    labels = pd.DataFrame(
        {"inference_id": ["a", "b", "zz", "a"], "label": [0, 1, 1, 1], "time": [t, t, t, t + pd.Timedelta("2h")]}
    )
    # WHEN they are joined
    joined = join_labels(labels, predictions)
    # THEN a and b join (b's second capture, a's second label), zz does not: 2 of 3 distinct labels
    rows = joined.frame.set_index("inference_id")
    assert sorted(rows.index) == ["a", "b"]
    assert rows.loc["b", "version"] == "2" and rows.loc["a", "label"] == 1
    assert joined.summary() == {
        "labels": 3,
        "predictions": 4,
        "matched": 2,
        "join_rate": pytest.approx(2 / 3),
        "duplicate_labels": 1,
        "duplicate_predictions": 1,
    }


def test_join_refuses_frames_without_their_key_columns():
    with pytest.raises(ValueError, match="label"):
        join_labels(pd.DataFrame({"inference_id": ["a"]}), pd.DataFrame({"inference_id": ["a"], "prediction": [1]}))


def test_the_quality_report_says_why_a_gap_above_its_bound_is_not_flagged():
    # GIVEN a window's segments: one gap flagged, one above its bound but with an interval reaching below it
    from sklambda.monitoring.model_quality.page import _segments

    gaps = [
        {"name": "recall", "gap": 0.3, "highest": "a", "lowest": "b", "interval": [0.2, 0.4], "bound": 0.1,
         "flagged": True},
        {"name": "accuracy", "gap": 0.14, "highest": "a", "lowest": "c", "interval": [-0.05, 0.33], "bound": 0.1,
         "flagged": False},
    ]  # fmt: skip
    section = {"features": [{"name": "island", "sensitive": False, "groups": [], "gaps": gaps}]}
    # WHEN it is rendered
    html = _segments(section)
    # THEN the flagged one says so, and the other gives its interval and why it is not flagged
    assert "— flagged" in html
    assert "(95% interval -0.05 to 0.33)" in html and "not flagged: its interval reaches below the bound" in html


def test_the_quality_report_says_why_a_segment_feature_has_no_gap():
    # GIVEN a window's segment feature whose groups are all under the minimum size
    from sklambda.monitoring.model_quality.page import _segments

    groups = [{"group": g, "rows": 20, "too_small": True, "metrics": {"accuracy": 0.9}} for g in ("a", "b")]
    section = {"min_group_rows": 30, "features": [{"name": "island", "sensitive": False, "groups": groups, "gaps": []}]}
    # THEN the report says there is no gap, and why
    assert "no gap: fewer than 2 groups of at least 30 labeled rows" in _segments(section)
