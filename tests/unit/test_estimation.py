"""CBPE (sklambda.monitoring.model_quality.estimation): the isotonic map, the estimates it gives on seeded windows
with covariate shift (tracks the realized accuracy) and with concept drift (does not, by design), and the refusals;
binary and multiclass (one-vs-rest maps)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score

from sklambda.monitoring.model_quality import metrics as mq
from sklambda.monitoring.model_quality.estimation import (
    MAX_BREAKPOINTS,
    MULTICLASS_METHOD,
    Estimate,
    EstimationUnavailable,
    MulticlassEstimate,
    card_section,
    estimate,
    isotonic,
    multiclass_card_section,
)

TOLERANCE = 0.02
ROWS = 2000


def concept(rng, n, shift=0.0, drifted=False):
    """Rows with x0 shifted by `shift` and labels from P(y | x) = sigmoid(1.5 x0 - x1 - 0.5) (x0 reversed: drift)."""
    X = rng.normal(0.0, 1.0, (n, 2))
    X[:, 0] += shift
    logit = (-1.5 if drifted else 1.5) * X[:, 0] - X[:, 1] - 0.5
    return X, rng.random(n) < 1 / (1 + np.exp(-logit))


@pytest.fixture(scope="module")
def fitted():
    """An under-confident logistic model (scores squashed towards 0.5) and its holdout calibration section."""
    rng = np.random.default_rng(7)
    model = LogisticRegression(C=0.0005).fit(*concept(rng, 5000))
    X, y = concept(rng, 5000)
    return model, card_section(model.predict_proba(X), y, positive_index=1, threshold=0.5)


def realized_accuracy(model, X, y):
    return float(np.mean((model.predict_proba(X)[:, 1] >= 0.5) == y))


def test_isotonic_fit_matches_scikit_learn_on_the_seen_scores():
    # GIVEN noisy 0/1 labels over scores with ties
    rng = np.random.default_rng(0)
    x = np.round(rng.random(3000), 2)
    y = rng.random(3000) < x**2
    # WHEN fitted by pool-adjacent-violators here and by scikit-learn
    xs, ys = isotonic(x, y)
    expected = IsotonicRegression(out_of_bounds="clip").fit(x, y).predict(x)
    # THEN both maps agree at every seen score and the map is non-decreasing
    np.testing.assert_allclose(np.interp(x, xs, ys), expected, atol=1e-12)
    assert np.all(np.diff(xs) >= 0) and np.all(np.diff(ys) >= 0)


def test_the_calibration_map_is_compact_rounded_and_json_ready(fitted):
    _, section = fitted
    calibration = section["calibration"]
    assert calibration["method"] == "isotonic" and 2 <= len(calibration["x"]) <= MAX_BREAKPOINTS
    assert len(calibration["x"]) == len(calibration["y"])
    assert json.loads(json.dumps(section, allow_nan=False)) == section


def test_under_covariate_shift_the_estimate_tracks_realized_accuracy_better_than_the_holdout_accuracy(fitted):
    # GIVEN windows whose x0 is shifted (P(x) changes) but whose concept P(y | x) is the holdout's
    model, section = fitted
    rng = np.random.default_rng(11)
    estimated, baseline = [], []
    for shift in np.linspace(-1.5, 1.5, 20):
        X, y = concept(rng, ROWS, shift)
        actual = realized_accuracy(model, X, y)
        # WHEN the accuracy is estimated from the predicted probabilities alone
        estimated.append(abs(estimate(section, model.predict_proba(X)).accuracy - actual))
        baseline.append(abs(section["holdout"]["accuracy"] - actual))
    # THEN it is within 0.02 of the realized accuracy in >= 90 % of windows, where assuming the holdout's is not
    assert np.mean(np.array(estimated) <= TOLERANCE) >= 0.9
    assert np.mean(np.array(baseline) <= TOLERANCE) < 0.6
    assert np.mean(estimated) < np.mean(baseline) / 3


def test_estimated_f1_and_roc_auc_cover_the_realized_ones_on_a_shifted_window(fitted):
    model, section = fitted
    X, y = concept(np.random.default_rng(3), 20_000, shift=1.0)
    proba = model.predict_proba(X)
    e = estimate(section, proba)
    f1 = f1_score(y, proba[:, 1] >= 0.5)
    auc = roc_auc_score(y, proba[:, 1])
    assert abs(e.f1 - f1) < TOLERANCE and abs(e.roc_auc - auc) < TOLERANCE
    assert e.f1_interval[0] < e.f1 < e.f1_interval[1] and e.roc_auc_interval[0] < e.roc_auc < e.roc_auc_interval[1]
    assert abs(e.accuracy - realized_accuracy(model, X, y)) < TOLERANCE


def test_under_concept_drift_the_estimate_misses_the_realized_accuracy_as_cbpe_assumes_none(fitted):
    # GIVEN a window where x0's effect on the label is reversed (P(y | x) changed): expected, documented failure
    model, section = fitted
    X, y = concept(np.random.default_rng(5), ROWS, drifted=True)
    # WHEN estimated
    e = estimate(section, model.predict_proba(X))
    # THEN the estimate still reports the old concept's accuracy, far above the realized one
    actual = realized_accuracy(model, X, y)
    assert e.accuracy - actual > 0.2
    assert not e.accuracy_interval[0] <= actual <= e.accuracy_interval[1]


def test_a_threshold_given_at_estimation_replaces_the_cards(fitted):
    # GIVEN a window scored by the model
    model, section = fitted
    X, y = concept(np.random.default_rng(9), ROWS)
    proba = model.predict_proba(X)
    # WHEN estimated at a higher threshold than the card's 0.5
    at_high = estimate(section, proba, threshold=0.55)
    # THEN the estimate follows the realized accuracy at that threshold, not at the card's
    realized_high = float(np.mean((proba[:, 1] >= 0.55) == y))
    assert abs(at_high.accuracy - realized_high) < TOLERANCE
    assert abs(realized_high - realized_accuracy(model, X, y)) > 2 * TOLERANCE


@pytest.mark.parametrize("section", [None, {}, {"method": "other"}])
def test_a_card_without_a_cbpe_section_says_estimation_is_unavailable(section):
    with pytest.raises(EstimationUnavailable, match="estimation unavailable"):
        estimate(section, np.array([[0.2, 0.8]]))


def test_probabilities_that_are_not_binary_are_refused(fitted):
    _, section = fitted
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        estimate(section, np.full((4, 3), 1 / 3))
    with pytest.raises(ValueError, match="empty window"):
        estimate(section, np.empty((0, 2)))


def test_a_holdout_with_too_few_positives_cannot_be_calibrated():
    proba = np.column_stack([np.linspace(1, 0, 100), np.linspace(0, 1, 100)])
    with pytest.raises(EstimationUnavailable, match="at least"):
        card_section(proba, np.arange(100) >= 95, positive_index=1, threshold=0.5)


def test_the_estimate_is_json_ready(fitted):
    model, section = fitted
    X, _ = concept(np.random.default_rng(1), 500)
    d = estimate(section, model.predict_proba(X)).to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d and len(d["roc_auc_interval"]) == 2


# --- multiclass ---------------------------------------------------------------------------------------------------

# Logits of the 3-class concept P(y | x) = softmax(W x + b); drift swaps classes 0 and 2's dependence on x0.
WEIGHTS = np.array([[1.5, 0.0], [-1.0, 1.0], [0.0, -1.5]])
BIAS = np.array([0.0, 0.2, -0.2])


def three_classes(rng, n, shift=0.0, drifted=False):
    """Rows with x0 shifted by `shift` and labels drawn from the 3-class softmax concept."""
    X = rng.normal(0.0, 1.0, (n, 2))
    X[:, 0] += shift
    weights = WEIGHTS[[2, 1, 0]] * [1, 0] + WEIGHTS * [0, 1] if drifted else WEIGHTS
    logits = X @ weights.T + BIAS
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return X, np.minimum(np.sum(rng.random((n, 1)) >= np.cumsum(p, axis=1), axis=1), 2)


@pytest.fixture(scope="module")
def fitted_multiclass():
    """An under-confident multinomial logistic model (max probability ~0.04 below its accuracy) and its section."""
    rng = np.random.default_rng(11)
    model = LogisticRegression(C=0.01).fit(*three_classes(rng, 5000))
    X, y = three_classes(rng, 5000)
    return model, multiclass_card_section(model.predict_proba(X), y)


def test_the_multiclass_section_keeps_one_map_per_class_and_the_holdouts_metrics(fitted_multiclass):
    _, section = fitted_multiclass
    # THEN the section is JSON-ready, has a map per class, and the holdout's realized sklearn metrics
    assert json.loads(json.dumps(section, allow_nan=False)) == section
    assert section["method"] == MULTICLASS_METHOD and section["classes"] == 3 and len(section["calibrations"]) == 3
    assert set(section["holdout"]) == {"rows", "accuracy", "f1_macro", "roc_auc_ovr", "class_shares"}
    assert sum(section["holdout"]["class_shares"]) == pytest.approx(1.0)


def test_multiclass_holdout_metrics_equal_sklearns():
    # GIVEN a holdout's probabilities and labels
    rng = np.random.default_rng(3)
    model = LogisticRegression(C=0.01).fit(*three_classes(rng, 2000))
    X, y = three_classes(rng, 2000)
    proba = model.predict_proba(X)
    # WHEN the section is built THEN its holdout accuracy, macro F1 and OvR AUC are scikit-learn's
    holdout = multiclass_card_section(proba, y)["holdout"]
    pred = proba.argmax(axis=1)
    assert holdout["accuracy"] == pytest.approx(np.mean(pred == y), abs=1e-12)
    assert holdout["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"), abs=1e-12)
    assert holdout["roc_auc_ovr"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovr"), abs=1e-12)


def test_under_covariate_shift_the_multiclass_estimate_tracks_realized_accuracy(fitted_multiclass):
    # GIVEN windows whose x0 is shifted (the realized accuracy moves with it), labels from the same concept
    model, section = fitted_multiclass
    rng = np.random.default_rng(12)
    est_errors, base_errors, raw_errors = [], [], []
    for shift in np.linspace(-1.5, 1.5, 9):
        X, y = three_classes(rng, ROWS, shift)
        proba = model.predict_proba(X)
        realized = float(np.mean(proba.argmax(axis=1) == y))
        # WHEN the accuracy is estimated without the labels
        e = estimate(section, proba)
        est_errors.append(abs(e.accuracy - realized))
        base_errors.append(abs(section["holdout"]["accuracy"] - realized))
        raw_errors.append(abs(proba.max(axis=1).mean() - realized))
    # THEN it is within TOLERANCE of the realized accuracy in every window, closer than the holdout accuracy and
    # than the model's own (uncalibrated) confidence
    assert max(est_errors) <= TOLERANCE, est_errors
    assert np.mean(est_errors) < np.mean(base_errors) / 2
    assert np.mean(est_errors) < np.mean(raw_errors) / 2


def test_multiclass_intervals_cover_the_realized_metrics_on_shifted_windows(fitted_multiclass):
    # GIVEN 20 shifted windows
    model, section = fitted_multiclass
    rng = np.random.default_rng(13)
    names = ("accuracy", "f1_macro", "roc_auc_ovr")
    covered = dict.fromkeys(names, 0)
    for shift in np.linspace(-1.2, 1.2, 20):
        X, y = three_classes(rng, ROWS, shift)
        proba = model.predict_proba(X)
        # WHEN each is estimated
        e = estimate(section, proba)
        assert isinstance(e, MulticlassEstimate) and sum(e.expected_class_shares) == pytest.approx(1.0)
        realized = mq.multiclass_metrics(y, proba, classes=[0, 1, 2], only=names)
        for name in names:
            low, high = getattr(e, f"{name}_interval")
            assert low <= getattr(e, name) <= high, name
            covered[name] += low <= realized[name].value <= high
    # THEN each 95 % interval holds the realized (sklearn) metric in most windows (they leave out the maps' own
    # error, so somewhat less than 95 %)
    assert all(hits >= 16 for hits in covered.values()), covered  # measured: 17 of 20 each


def test_under_concept_drift_the_multiclass_estimate_misses_the_realized_accuracy(fitted_multiclass):
    # GIVEN a window whose P(y | x) changed (classes 0 and 2 swap their dependence on x0)
    model, section = fitted_multiclass
    X, y = three_classes(np.random.default_rng(14), ROWS, drifted=True)
    proba = model.predict_proba(X)
    # WHEN estimated THEN the estimate follows the old concept, far from the realized accuracy (CBPE's assumption)
    assert abs(estimate(section, proba).accuracy - float(np.mean(proba.argmax(axis=1) == y))) > 0.1


def test_binary_sections_still_give_binary_estimates(fitted):
    # GIVEN a binary card section as published before multiclass estimation existed
    model, section = fitted
    X, _ = concept(np.random.default_rng(2), 300)
    # WHEN estimated THEN the binary Estimate, with its own names
    e = estimate(section, model.predict_proba(X))
    assert type(e) is Estimate and set(section) == {"method", "positive_index", "threshold", "calibration", "holdout"}


def test_multiclass_estimation_refuses_a_threshold_and_the_wrong_shape(fitted_multiclass):
    _, section = fitted_multiclass
    with pytest.raises(ValueError, match="binary classifiers only"):
        estimate(section, np.full((4, 3), 1 / 3), threshold=0.4)
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        estimate(section, np.full((4, 2), 0.5))
    with pytest.raises(ValueError, match="empty window"):
        estimate(section, np.empty((0, 3)))


def test_a_multiclass_holdout_with_a_rare_class_cannot_be_calibrated():
    # GIVEN a holdout with 5 rows of its third class
    y = np.r_[np.zeros(50, int), np.ones(45, int), np.full(5, 2)]
    proba = np.full((100, 3), 1 / 3)
    # THEN no section, and the message names the class's column
    with pytest.raises(EstimationUnavailable, match=r"class at column 2: .*at least"):
        multiclass_card_section(proba, y)


def test_the_multiclass_estimate_is_json_ready(fitted_multiclass):
    model, section = fitted_multiclass
    X, _ = three_classes(np.random.default_rng(1), 500)
    d = estimate(section, model.predict_proba(X)).to_dict()
    assert json.loads(json.dumps(d, allow_nan=False)) == d and len(d["expected_class_shares"]) == 3


def test_a_multiclass_model_whose_predict_is_not_the_argmax_gets_no_section(fitted_multiclass):
    # GIVEN a holdout where predict disagrees with predict_proba's argmax on 5 % of the rows (as SVC's can)
    model, _ = fitted_multiclass
    X, y = three_classes(np.random.default_rng(15), 1000)
    proba = model.predict_proba(X)
    predicted = proba.argmax(axis=1)
    predicted[:50] = (predicted[:50] + 1) % 3
    # THEN no section: the estimate assumes the argmax is what is served
    with pytest.raises(EstimationUnavailable, match=r"differ from the class of its largest probability on 5\.0%"):
        multiclass_card_section(proba, y, predicted)
    # AND agreeing predictions are accepted
    assert multiclass_card_section(proba, y, proba.argmax(axis=1))["method"] == MULTICLASS_METHOD
