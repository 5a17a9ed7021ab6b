"""The drift check's sharper tests: each statistic's null calibration and power, the family, the reasons, and
``sklambda.drift.compare``.

Null calibration uses a few hundred vectorised draws (a few seeds' worth), not a benchmark: the rates are
checked loosely, against bounds a miscalibrated test would cross. The benchmark (bench/drift.py) measures the
whole check's false-alarm rate and power on many windows.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from sklambda.drift import compare
from sklambda.monitoring.drift import DriftConfig, check_drift, render_html, stats
from sklambda.monitoring.drift.check import DEPENDENCE, UNSEEN
from sklambda.publishing.baseline import card_baseline, numeric_summary
from sklambda.registry.schema import infer_schema

DRAWS = 400


def frame(n: int, seed: int, *, rho: float = 0.0) -> pd.DataFrame:
    """Two numeric features (correlation ``rho``), a skewed one and a category; `x` and `y` standard normal."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    y = rho * x + np.sqrt(1 - rho**2) * rng.standard_normal(n)
    return pd.DataFrame(
        {
            "x": x,
            "y": y,
            "skewed": rng.lognormal(0, 1, n),
            "colour": rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2]),
        }
    )


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return frame(4000, 0)


@pytest.fixture(scope="module")
def baseline(reference):
    schema = infer_schema(reference)
    return schema, card_baseline(reference, schema)


# --- each statistic: calibrated under the null, powerful on an obvious change ----------------------------------


def test_the_rank_sum_test_on_bins_is_calibrated_when_both_samples_share_the_bins():
    # GIVEN baseline and live counts drawn from the same 10 equal-mass bins
    rng = np.random.default_rng(1)
    shares = np.full(10, 0.1)
    p = [stats.rank_sum(rng.multinomial(4000, shares), rng.multinomial(500, shares))[1] for _ in range(DRAWS)]
    # THEN p < 0.05 about 5% of the time (a miscalibrated test would be far off)
    assert 0.01 <= np.mean(np.less(p, 0.05)) <= 0.09


def test_the_rank_sum_test_sees_mass_moving_to_higher_bins_and_signs_its_effect():
    # GIVEN live counts with mass moved from the lowest bins to the highest
    base = np.full(10, 400)
    live = np.array([25, 35, 40, 45, 50, 50, 55, 65, 65, 70])
    # WHEN tested
    rank_biserial, p = stats.rank_sum(base, live)
    # THEN the shift is significant and the effect positive (live values higher)
    assert p < 1e-5 and rank_biserial > 0.1
    # AND it is scipy's Mann-Whitney U on the values the bins stand for (ties corrected, no continuity correction)
    expanded = sps.mannwhitneyu(
        np.repeat(np.arange(10), live), np.repeat(np.arange(10), base), method="asymptotic", use_continuity=False
    )
    assert p == pytest.approx(expanded.pvalue, rel=1e-9)


def test_the_exceedance_test_is_calibrated_even_when_the_window_is_larger_than_the_training_sample():
    # GIVEN 300-row training samples and 3,000-row windows of the same distribution
    rng = np.random.default_rng(2)
    draws = 250
    train, live = rng.standard_normal((draws, 300)), rng.standard_normal((draws, 3000))
    edge = np.quantile(train, 0.99, axis=1, keepdims=True, method="inverted_cdf")  # as publish stores it
    beyond_train, beyond = (train > edge).sum(axis=1), (live > edge).sum(axis=1)
    outside = ((live < train.min(axis=1, keepdims=True)) | (live > train.max(axis=1, keepdims=True))).sum(axis=1)
    # WHEN each window is tested for its upper tail and its share outside the training range
    pairs = zip(beyond_train, beyond, strict=True)
    p_tail = [stats.exceedance_test(int(t), 300, int(k), 3000, two_sided=True) for t, k in pairs]
    p_range = [stats.exceedance_test(1, 300, int(k), 3000, two_sided=False) for k in outside]
    # THEN neither flags more than its level (the training sample's own noise is in the law)
    assert np.mean(np.less(p_tail, 0.05)) <= 0.08
    assert np.mean(np.less(p_range, 0.05)) <= 0.08


def test_the_exceedance_test_flags_three_percent_of_values_past_the_training_maximum():
    # GIVEN 15 of 500 live values past the maximum of 4,000 training values (expected: ~0.25 of them)
    p = stats.exceedance_test(1, 4000, 15, 500, two_sided=False)
    # THEN the test is decisive
    assert p < 1e-10


def test_the_cauchy_combination_of_independent_uniform_p_values_is_uniform_in_its_tail():
    # GIVEN four independent uniform p-values per draw, unequally weighted
    rng = np.random.default_rng(3)
    p = [stats.cauchy_combination(list(rng.random(4)), [0.4, 0.3, 0.2, 0.1]) for _ in range(2000)]
    # THEN the combined p-value is below 0.05 and 0.01 about that often
    assert 0.035 <= np.mean(np.less(p, 0.05)) <= 0.07
    assert np.mean(np.less(p, 0.01)) <= 0.02


def test_a_test_with_p_equal_to_one_does_not_cancel_a_strong_one_in_the_combination():
    # GIVEN a strong test beside a null-rate test that cannot fire (p = 1 exactly)
    combined = stats.cauchy_combination([1e-6, 1.0], [0.5, 0.5])
    # THEN the combination stays close to the strong test over its weight
    assert combined == pytest.approx(2e-6, rel=0.01)


def test_the_correlation_test_is_calibrated_and_sees_a_new_correlation():
    # GIVEN the Spearman correlation of independent normal pairs, baseline 2,000 rows, windows 500 rows
    rng = np.random.default_rng(4)
    base = stats.spearman(rng.standard_normal((2000, 2)))[0, 1]
    null = [stats.spearman(rng.standard_normal((500, 2)))[0, 1] for _ in range(DRAWS)]
    _, p_null = stats.correlation_test(np.full(DRAWS, base), 2000, np.asarray(null), 500)
    x = rng.standard_normal(500)
    moved = stats.spearman(np.column_stack([x, 0.3 * x + rng.standard_normal(500)]))[0, 1]
    _, p_moved = stats.correlation_test(np.array([base]), 2000, np.array([moved]), 500)
    # THEN the null rate is near its level and a 0.3 correlation is found
    assert 0.01 <= np.mean(p_null < 0.05) <= 0.09
    assert p_moved[0] < 1e-6


# --- the check: what each new test catches, and what it says ------------------------------------------------


def test_a_change_confined_to_the_top_decile_is_flagged_by_the_upper_tail_test(baseline):
    # GIVEN a window whose values above the training 90th percentile move twice as far above it
    schema, base = baseline
    w = frame(5000, 11)
    q90 = base["features"]["skewed"]["histogram"]["bin_edges"][-2]
    w["skewed"] = np.where(w["skewed"] > q90, q90 + 2 * (w["skewed"] - q90), w["skewed"])
    # WHEN checked
    skewed = check_drift(base, schema, w).feature("skewed")
    # THEN the feature is flagged, the reason is the upper tail's share
    assert skewed.drifted
    assert any("above the training 99th percentile" in r for r in skewed.reasons)


def test_values_far_above_the_training_maximum_are_flagged_as_out_of_range(baseline):
    # GIVEN 3% of a 500-row window far above the training maximum of x
    schema, base = baseline
    w = frame(500, 12)
    w.loc[:14, "x"] = base["features"]["x"]["max"] + 3.0
    # WHEN checked
    x = check_drift(base, schema, w).feature("x")
    # THEN x is flagged for its share outside the training range
    assert x.drifted and x.tests["out_of_range_share"] == pytest.approx(0.03)
    assert any("outside the training range" in r for r in x.reasons)


def test_a_correlation_change_with_unchanged_marginals_is_flagged_and_names_the_pair(baseline):
    # GIVEN a window where x and y, independent in training, correlate at 0.4 (each still standard normal)
    schema, base = baseline
    report = check_drift(base, schema, frame(5000, 13, rho=0.4))
    # THEN only the multivariate test flags it, naming the pair
    (dependence,) = report.multivariate
    assert dependence.name == DEPENDENCE and dependence.drifted and report.drifted
    assert "Spearman correlation of x and y" in dependence.reasons[0]
    assert not {"x", "y"} & set(report.drifted_features)


def test_a_small_window_keeps_the_power_to_see_a_small_mean_shift(baseline):
    # GIVEN a 500-row window where x moved by 0.3 standard deviations
    schema, base = baseline
    w = frame(500, 14)
    w["x"] = w["x"] + 0.3
    # WHEN checked
    x = check_drift(base, schema, w).feature("x")
    # THEN the rank-sum test flags it and the reason gives the shift in standard deviations
    assert x.drifted and any("+0.3" in r and "sd" in r for r in x.reasons)


def test_the_category_reason_names_the_unseen_categories_when_they_drove_the_test(baseline):
    # GIVEN a window where 5% of colours are ones training never had, and the known shares move only by noise
    schema, base = baseline
    w = frame(2000, 15)
    w["colour"] = w["colour"].astype(object)
    w.loc[:99, "colour"] = "ultraviolet"
    # WHEN checked
    colour = check_drift(base, schema, w).feature("colour")
    # THEN the chi-square driver is the unseen bucket, and the reason says so
    assert colour.tests["chi2_driver"] == UNSEEN
    assert colour.drifted and any("never seen in training" in r for r in colour.reasons)


def test_a_card_published_before_tails_and_correlations_were_kept_is_still_checked_with_notes(baseline):
    # GIVEN a baseline without tail counts or a dependence section (an older card)
    schema, base = baseline
    old = {"features": {k: {f: v for f, v in b.items() if f != "tails"} for k, b in base["features"].items()}}
    # WHEN a window is checked
    report = check_drift(old, schema, frame(1000, 16))
    # THEN the check runs, without the tail tests, saying why
    x = report.feature("x")
    assert "tail_upper" not in x.p_values and "out_of_range" in x.p_values
    assert any("no tail counts" in n for n in x.notes)
    assert any("no feature correlations" in n for n in report.multivariate[0].notes)


def test_the_report_shows_the_new_tests_their_combination_and_the_pairs(baseline):
    # GIVEN a report of a window with a new correlation
    schema, base = baseline
    report = check_drift(base, schema, frame(3000, 17, rho=0.4))
    # WHEN written as JSON and HTML
    doc = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    page = render_html(report, base)
    # THEN the JSON has each column's combined p-value and the multivariate test with its pairs
    assert doc["multivariate_drifted"] and doc["multivariate"][0]["current"]["pairs"][0]["features"] == ["x", "y"]
    assert {"location", "tail_upper", "out_of_range"} <= set(doc["features"][0]["p_values"])
    assert doc["features"][0]["p_combined_adjusted"] >= doc["features"][0]["p_combined"]
    # AND the page shows the pairs table and the multivariate reason
    assert "Across features" in page and "Spearman correlation of x and y" in page and "p[combined]" in page


def test_numeric_summary_counts_the_training_values_beyond_its_tail_quantiles():
    # GIVEN 1..1000
    tails = numeric_summary(np.arange(1, 1001, dtype=float))["tails"]
    # THEN the edges are training values (the empirical quantiles, not interpolations), with what lies beyond them
    assert tails["lower"] == {"edge": 10.0, "beyond": 9} and tails["upper"] == {"edge": 990.0, "beyond": 10}


# --- compare: the notebook entry point ------------------------------------------------------------------------


def test_compare_returns_the_report_the_scheduled_check_gives_for_the_same_baseline(reference, baseline):
    # GIVEN a current frame with x shifted
    schema, base = baseline
    current = frame(2000, 18)
    current["x"] = current["x"] + 0.5
    # WHEN compared in a notebook and checked as the scheduled check does with the card's baseline
    mine = compare(reference, current)
    scheduled = check_drift(base, schema, current)
    # THEN both reports are the same, and x is drifted
    assert mine.to_dict() == scheduled.to_dict()
    assert mine.drifted_features == ("x",)


def test_compare_checks_predictions_as_prediction_drift_and_leaves_the_target_out(reference):
    # GIVEN frames with a predicted class column and a label column; the current predictions lean to "yes"
    ref = reference.assign(predicted=np.where(reference["x"] > 0.5, "yes", "no"), label="no")
    cur = frame(2000, 19)
    cur = cur.assign(predicted=np.where(cur["x"] > -0.5, "yes", "no"), label="no")
    # WHEN compared
    report = compare(ref, cur, prediction="predicted", target="label")
    # THEN the predictions drift, and neither the prediction nor the label is a feature
    assert report.prediction_drifted
    assert {f.name for f in report.features} == {"x", "y", "skewed", "colour"}


def test_compare_rejects_a_prediction_column_missing_from_either_frame_and_an_empty_reference(reference):
    # GIVEN a prediction column only the reference has, and an empty reference
    with pytest.raises(ValueError, match="'predicted' is not in both"):
        compare(reference.assign(predicted="no"), frame(600, 20), prediction="predicted")
    with pytest.raises(ValueError, match="no rows"):
        compare(reference.iloc[:0], frame(600, 20), config=DriftConfig())
