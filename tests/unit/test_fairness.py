"""Segment metrics and fairness differences (sklambda.monitoring.model_quality.fairness) against hand-computed
values and, where it is installed (dev extra), fairlearn's own functions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sklambda.monitoring.model_quality import fairness as fx


def feature(report, name):
    return next(f for f in report.features if f.name == name)


def group(report, name, label):
    return next(g for g in feature(report, name).groups if g.group == label)


def gap(report, name, metric):
    return next((g for g in feature(report, name).gaps if g.name == metric), None)


def small_binary():
    """Two groups of 4 rows, hand-countable:
    a: y 1 1 0 0, pred 1 0 1 0 -> accuracy 2/4, recall 1/2, selection 2/4
    b: y 1 1 1 0, pred 1 1 1 1 -> accuracy 3/4, recall 3/3, selection 4/4
    """
    y = [1, 1, 0, 0, 1, 1, 1, 0]
    pred = [1, 0, 1, 0, 1, 1, 1, 1]
    proba = [0.9, 0.4, 0.6, 0.1, 0.8, 0.7, 0.6, 0.9]
    g = ["a"] * 4 + ["b"] * 4
    return y, pred, proba, g


def test_per_group_metrics_match_hand_counts():
    # GIVEN two groups of four rows
    y, pred, proba, g = small_binary()
    # WHEN reported with no minimum group size
    r = fx.segment_report(y, pred, proba, {"gender": g}, {"gender"}, positive_label=1, min_group_rows=1)
    a, b = group(r, "gender", "a"), group(r, "gender", "b")
    # THEN each group's metrics are the hand-counted ones
    assert a.metrics == {"accuracy": 0.5, "recall": 0.5, "selection_rate": 0.5, "roc_auc": 0.75}
    assert b.metrics["accuracy"] == 0.75 and b.metrics["recall"] == 1.0 and b.metrics["selection_rate"] == 1.0
    # b's AUC: positives 0.8, 0.7, 0.6 against the negative 0.9 -> every pair wrong
    assert b.metrics["roc_auc"] == 0.0
    assert (a.rows, a.positives, b.rows, b.positives) == (4, 2, 4, 3)


def test_fairness_differences_are_the_gaps_of_selection_rate_and_true_positive_rate():
    # GIVEN the hand-countable groups, gender sensitive
    y, pred, proba, g = small_binary()
    r = fx.segment_report(y, pred, proba, {"gender": g}, {"gender"}, positive_label=1, min_group_rows=1)
    # THEN demographic parity difference = 1.0 - 0.5 and equal opportunity difference = 1.0 - 0.5
    dp, eo = gap(r, "gender", fx.DEMOGRAPHIC_PARITY), gap(r, "gender", fx.EQUAL_OPPORTUNITY)
    assert dp.gap == pytest.approx(0.5) and (dp.highest, dp.lowest) == ("b", "a")
    assert eo.gap == pytest.approx(0.5)
    assert gap(r, "gender", "accuracy").gap == pytest.approx(0.25)


def test_a_segment_that_is_not_sensitive_has_no_fairness_differences():
    # GIVEN region as a segment only
    y, pred, proba, g = small_binary()
    r = fx.segment_report(y, pred, proba, {"region": g}, positive_label=1, min_group_rows=1)
    # THEN its gaps are the metrics' only
    assert {x.name for x in feature(r, "region").gaps} == {"accuracy", "recall", "selection_rate", "roc_auc"}
    assert not feature(r, "region").sensitive


def test_matches_fairlearn_on_random_data():
    fairlearn_metrics = pytest.importorskip("fairlearn.metrics")
    # GIVEN three large groups with different rates
    rng = np.random.default_rng(3)
    g = rng.choice(["x", "y", "z"], size=3000, p=[0.5, 0.3, 0.2])
    y = rng.integers(0, 2, size=3000)
    lift = np.select([g == "x", g == "y"], [0.2, 0.0], -0.15)
    pred = (rng.random(3000) < 0.5 + lift).astype(int)
    r = fx.segment_report(y, pred, None, {"gender": g}, {"gender"}, positive_label=1)
    # THEN both differences equal fairlearn's between_groups values
    dp = fairlearn_metrics.demographic_parity_difference(y, pred, sensitive_features=g)
    eo = fairlearn_metrics.equal_opportunity_difference(y, pred, sensitive_features=g)
    assert gap(r, "gender", fx.DEMOGRAPHIC_PARITY).gap == pytest.approx(dp, abs=1e-12)
    assert gap(r, "gender", fx.EQUAL_OPPORTUNITY).gap == pytest.approx(eo, abs=1e-12)


def test_a_small_group_is_reported_but_never_compared_nor_flagged():
    # GIVEN 100 rows of group a all right, 5 rows of group b all wrong
    y = [1] * 105
    pred = [1] * 100 + [0] * 5
    g = ["a"] * 100 + ["b"] * 5
    # WHEN reported with the default minimum of 30 rows
    r = fx.segment_report(y, pred, None, {"gender": g}, {"gender"}, positive_label=1)
    b = group(r, "gender", "b")
    # THEN b is listed as too small, with its size and values, and no gap is computed (one group is left)
    assert b.too_small and b.rows == 5 and b.metrics["accuracy"] == 0.0
    assert feature(r, "gender").gaps == ()
    assert r.flagged == []


def test_a_gap_over_the_bound_is_flagged_only_when_its_interval_lies_above_the_bound():
    # GIVEN selection rates 0.6 vs 0.4 (gap 0.2 > bound 0.1) in groups of 40 and then of 2000 rows
    def rates(n):
        g = ["a"] * n + ["b"] * n
        pred = [1] * int(0.6 * n) + [0] * (n - int(0.6 * n)) + [1] * int(0.4 * n) + [0] * (n - int(0.4 * n))
        return fx.segment_report([1] * (2 * n), pred, None, {"s": g}, {"s"}, positive_label=1)

    small, large = rates(40), rates(2000)
    # THEN with 40 rows the interval reaches below 0.1: not flagged; with 2000 it lies above: flagged
    s, big = gap(small, "s", fx.DEMOGRAPHIC_PARITY), gap(large, "s", fx.DEMOGRAPHIC_PARITY)
    assert s.gap == pytest.approx(0.2) and s.interval[0] < 0.1 and not s.flagged
    assert big.interval[0] > 0.1 and big.flagged
    assert ("s", big) in large.flagged


def test_newcombe_interval_matches_the_published_example():
    # GIVEN Newcombe (1998) table II, example (a): 56/70 vs 48/80 -> 95% CI 0.0524 to 0.3339
    p1, p2 = 56 / 70, 48 / 80
    low, high = fx.newcombe_interval(p1, fx.wilson_interval(56, 70), p2, fx.wilson_interval(48, 80))
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def test_regression_reports_mae_and_mean_bias_per_group_and_flags_only_with_a_bound():
    # GIVEN group a predicted 1 too high on each row, group b exact
    y = [10.0, 20.0, 30.0, 40.0]
    pred = [11.0, 21.0, 30.0, 40.0]
    g = ["a", "a", "b", "b"]
    unbounded = fx.segment_report(y, pred, None, {"region": g}, task=fx.REGRESSION, min_group_rows=1)
    bounded = fx.segment_report(
        y, pred, None, {"region": g}, task=fx.REGRESSION, min_group_rows=1, bounds={"mean_bias": 0.5}
    )
    # THEN MAE and bias are 1 for a and 0 for b; only the bounded report flags the bias gap
    assert group(unbounded, "region", "a").metrics == {"mae": 1.0, "mean_bias": 1.0}
    assert group(unbounded, "region", "b").metrics == {"mae": 0.0, "mean_bias": 0.0}
    assert not gap(unbounded, "region", "mae").flagged and gap(unbounded, "region", "mae").bound is None
    assert gap(bounded, "region", "mean_bias").flagged


def test_nulls_form_their_own_group_and_the_report_is_plain_json():
    # GIVEN a feature with nulls
    y, pred, proba, _ = small_binary()
    g = ["a", None, "a", float("nan"), "b", "b", None, "b"]
    r = fx.segment_report(y, pred, proba, {"region": g}, positive_label=1, min_group_rows=1)
    # THEN the nulls are one group labelled None and the report serializes without NaN
    assert group(r, "region", None).rows == 3
    json.dumps(r.to_dict(), allow_nan=False)


def test_multiclass_reports_accuracy_only():
    # GIVEN three classes (no positive label)
    r = fx.segment_report(
        ["x", "y", "z", "x"], ["x", "y", "x", "x"], None, {"s": ["a", "a", "b", "b"]}, {"s"}, min_group_rows=1
    )
    # THEN accuracy per group, no fairness differences (they need a positive label)
    assert group(r, "s", "b").metrics == {"accuracy": 0.5}
    assert {x.name for x in feature(r, "s").gaps} == {"accuracy"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sensitive": {"gender"}}, "not among the groups"),
        ({"bounds": {"accuracy": -1}}, "finite number >= 0"),
        ({"metrics": ["f1"]}, "unknown classification metrics"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, message):
    # GIVEN a sensitive name that is not a group, a negative bound or an unknown metric
    y, pred, proba, g = small_binary()
    with pytest.raises(ValueError, match=message):
        fx.segment_report(y, pred, proba, {"region": g}, positive_label=1, **kwargs)


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="groups\\['region'\\] has 3 rows"):
        fx.segment_report([1, 0], [1, 0], None, {"region": ["a", "b", "c"]}, positive_label=1)
