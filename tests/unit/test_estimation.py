"""CBPE (sklambda.monitoring.model_quality.estimation): the isotonic map, the estimates it gives on seeded windows
with covariate shift (tracks the realized accuracy) and with concept drift (does not, by design), and the refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score, roc_auc_score

from sklambda.monitoring.model_quality.estimation import (
    MAX_BREAKPOINTS,
    EstimationUnavailable,
    card_section,
    estimate,
    isotonic,
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
