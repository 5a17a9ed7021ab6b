"""Drift statistics: false-alarm rate on clean windows, detection of single-feature shifts, report and state.

The baseline is computed exactly like publish does (card_baseline on the training
sample, predictions of the fitted model); clean windows come from the same generator with other seeds.
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from sklambda.monitoring.drift import (
    DRIFT,
    INSUFFICIENT_DATA,
    NO_DRIFT,
    DriftConfig,
    check_card,
    check_drift,
    render_html,
    stats,
    update_state,
)
from sklambda.publishing.baseline import card_baseline, feature_baseline, prediction_baseline
from sklambda.registry.schema import InputSchema, infer_schema
from sklambda_infra import sample

DETECTION_WINDOWS = 20
DETECTION_ROWS = 5000


class Model:
    """The churn model with its card's baseline, schema and class order."""

    def __init__(self) -> None:
        X, y = sample.churn_data(5000, seed=0)
        self.X, y_train, _, _ = sample.split(X, y)
        self.schema = infer_schema(self.X, pii=sample.PII)
        self.estimator = sample.logistic_pipeline().fit(self.X, y_train)
        self.classes = [str(c) for c in self.estimator.classes_]
        self.baseline = card_baseline(
            self.X, self.schema, self.estimator.predict(self.X), self.estimator.predict_proba(self.X), self.classes
        )

    def check(self, window: pd.DataFrame, *, logit_shift: float = 0.0, config: DriftConfig | None = None):
        proba = self.estimator.predict_proba(window)
        if logit_shift:
            p = np.clip(proba[:, 1], 1e-9, 1 - 1e-9)
            p = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + logit_shift)))
            proba = np.column_stack([1 - p, p])
        predictions = np.asarray(self.classes)[proba.argmax(axis=1)]
        return check_drift(
            self.baseline, self.schema, window, predictions=predictions, probabilities=proba, config=config
        )


@pytest.fixture(scope="module")
def model() -> Model:
    return Model()


def clean_window(n: int, seed: int) -> pd.DataFrame:
    return sample.churn_data(n, seed=seed)[0]


# --- single-feature shifts, each applied to a clean window ----------------------------------------------------


def shift_age(w: pd.DataFrame, rng: np.random.Generator, base: dict) -> pd.DataFrame:
    # 0.25 std of age (~4.8 years): a tenth of customers cross the median; the integer type is kept.
    w["age"] = np.round(w["age"] + 0.25 * base["features"]["age"]["std"]).astype(int)
    return w


def shift_charges(w: pd.DataFrame, rng: np.random.Generator, base: dict) -> pd.DataFrame:
    w["monthly_charges"] = w["monthly_charges"] + 0.25 * base["features"]["monthly_charges"]["std"]
    return w


def shift_plan_share(w: pd.DataFrame, rng: np.random.Generator, base: dict) -> pd.DataFrame:
    # 5 points move from "basic" (50%) to "premium" (15%).
    basic = np.flatnonzero(w["plan"].to_numpy() == "basic")
    moved = rng.choice(basic, int(0.05 * len(w)), replace=False)
    w.loc[moved, "plan"] = "premium"
    return w


def unseen_region(w: pd.DataFrame, rng: np.random.Generator, base: dict) -> pd.DataFrame:
    w.loc[rng.choice(len(w), int(0.02 * len(w)), replace=False), "region"] = "atlantis"
    return w


def null_tenure(w: pd.DataFrame, rng: np.random.Generator, base: dict) -> pd.DataFrame:
    w["tenure_months"] = w["tenure_months"].astype("float64")
    w.loc[rng.choice(len(w), int(0.05 * len(w)), replace=False), "tenure_months"] = np.nan
    return w


SHIFTS = {
    "age mean +0.25 std": (shift_age, "age"),
    "monthly_charges mean +0.25 std": (shift_charges, "monthly_charges"),
    "plan: 5 points basic -> premium": (shift_plan_share, "plan"),
    "region: 2% unseen categories": (unseen_region, "region"),
    "tenure_months nulls 0% -> 5%": (null_tenure, "tenure_months"),
}


def consecutive_rate(reports) -> float:
    """Share of windows (from the second on) where update_state declares the model drifted."""
    state, hits = None, []
    for r in reports:
        state, drifted = update_state(state, r)
        hits.append(drifted)
    return float(np.mean(hits[1:]))


# --- the bar ------------------------------------------------------------------------------------------------


def test_clean_windows_of_every_size_raise_at_most_one_percent_drifted_windows(model):
    # GIVEN 200 clean windows of 100 to 50,000 rows from the training generator, with the model's predictions,
    # and min_rows lowered to 100 so that even the smallest windows are tested rather than called insufficient
    config = DriftConfig(min_rows=100)
    sizes = (100, 300, 1000, 3000, 5000, 10000, 20000, 50000)
    reports = [model.check(clean_window(n, 10_000 + 97 * i + n), config=config) for n in sizes for i in range(25)]
    # WHEN counting windows with a drifted verdict
    alarms = [r for r in reports if r.verdict == DRIFT]
    rate = len(alarms) / len(reports)
    print(f"\nfalse-alarm rate: {len(alarms)}/{len(reports)} = {rate:.1%}")
    print("    drifted windows:", [(r.rows, r.drifted_features) for r in alarms])
    # THEN at most 1% of them are drifted, and no window is insufficient at these sizes
    assert len(reports) == 200
    assert rate <= 0.01
    assert all(r.verdict in (NO_DRIFT, DRIFT) for r in reports)


@pytest.mark.parametrize("shift", list(SHIFTS))
def test_each_single_feature_shift_is_detected_on_5000_row_windows(model, shift):
    # GIVEN 20 clean 5,000-row windows with one change applied
    change, feature = SHIFTS[shift]
    rng = np.random.default_rng(7)
    reports = [
        model.check(change(clean_window(DETECTION_ROWS, 50_000 + i), rng, model.baseline))
        for i in range(DETECTION_WINDOWS)
    ]
    # WHEN each window is checked
    rate = np.mean([feature in r.drifted_features for r in reports])
    model_rate = consecutive_rate(reports)
    print(f"\n{shift}: drifted windows {rate:.0%}, model drifted (2 in a row) {model_rate:.0%}")
    print("   ", reports[0].feature(feature).reasons)
    # THEN every window flags that feature, and the model is declared drifted from the second window on
    assert rate == 1.0
    assert model_rate == 1.0


def test_a_shift_in_the_prediction_distribution_is_detected_on_5000_row_windows(model):
    # GIVEN clean features but a model whose log-odds moved by +0.4 (e.g. an upstream encoding change)
    reports = [model.check(clean_window(DETECTION_ROWS, 60_000 + i), logit_shift=0.4) for i in range(20)]
    # WHEN checked
    rate = np.mean([r.prediction_drifted for r in reports])
    shares = reports[0].predictions[0].tests
    print(f"\nprediction shift: drifted windows {rate:.0%}, model {consecutive_rate(reports):.0%}; {shares}")
    # THEN the prediction part is flagged in every window, and no feature is
    assert rate == 1.0
    assert all(r.verdict == DRIFT and not r.drifted_features for r in reports)


# --- guards against false alarms -----------------------------------------------------------------------------


def test_a_window_below_the_minimum_size_is_insufficient_data_even_when_shifted(model):
    # GIVEN a 200-row window with a big shift and the default minimum of 500 rows
    w = clean_window(200, 5)
    w["age"] = w["age"] + 30
    # WHEN checked
    report = model.check(w)
    # THEN the verdict is insufficient_data and nothing is flagged, though the scores are reported
    assert report.verdict == INSUFFICIENT_DATA
    assert report.drifted_features == ()
    assert report.feature("age").tests["ks"] > 0.3


def test_an_empty_window_is_insufficient_data_and_still_serialises(model):
    report = check_drift(model.baseline, model.schema, clean_window(0, 1), predictions=np.array([]))
    assert report.verdict == INSUFFICIENT_DATA
    assert json.loads(json.dumps(report.to_dict(), allow_nan=False))["rows"] == 0


def test_a_tiny_effect_on_a_huge_window_is_significant_but_not_drift(model):
    # GIVEN a 50,000-row window where monthly_charges moved by 0.06 std: p-values are tiny, the effect is not
    # (not age: its integer values moved would put some past the training maximum, a real change)
    w = clean_window(50_000, 11)
    w["monthly_charges"] = w["monthly_charges"] + 0.06 * model.baseline["features"]["monthly_charges"]["std"]
    # WHEN checked
    report = model.check(w)
    # THEN the location test is significant, yet monthly_charges is not drifted
    charges = report.feature("monthly_charges")
    assert charges.p_values["location"] < 1e-4
    assert "monthly_charges" not in report.drifted_features


# --- consecutive windows ---------------------------------------------------------------------------------------


def result(verdict: str, features=(), consecutive: int = 2) -> dict:
    return {"verdict": verdict, "drifted_features": list(features), "config": {"consecutive_windows": consecutive}}


def test_the_model_is_drifted_only_after_n_consecutive_drifted_windows():
    # GIVEN a run of windows: drift, insufficient data, drift
    state, drifted = update_state(None, result(DRIFT, ["age"]))
    # THEN one drifted window does not declare the model drifted
    assert not drifted and state["consecutive_drifted"] == 1
    # WHEN a quiet window (insufficient data) follows, the run neither grows nor ends
    state, drifted = update_state(state, result(INSUFFICIENT_DATA))
    assert not drifted and state["consecutive_drifted"] == 1
    # WHEN a second drifted window follows, the model is drifted, naming the features of the run
    state, drifted = update_state(state, result(DRIFT, ["plan"]))
    assert drifted and state["model_drifted"] and state["drifted_features"] == ["age", "plan"]
    # THEN a clean window ends it, and the state is plain JSON
    state, drifted = update_state(state, result(NO_DRIFT))
    assert not drifted and state["consecutive_drifted"] == 0 and state["drifted_features"] == []
    assert json.loads(json.dumps(state, allow_nan=False)) == state
    assert state["windows_seen"] == 4


def test_consecutive_windows_comes_from_the_window_config():
    state = None
    for expected in (False, False, True):
        state, drifted = update_state(state, result(DRIFT, consecutive=3))
        assert drifted is expected


def test_update_state_accepts_a_report_object(model):
    report = model.check(clean_window(1000, 3))
    state, drifted = update_state(None, report)
    assert state["last_verdict"] == report.verdict and not drifted


# --- config ------------------------------------------------------------------------------------------------------


def test_card_tags_override_the_defaults_and_other_tags_are_ignored():
    # GIVEN card tags with drift settings among others
    tags = {"team": "growth", "drift.alpha": "0.05", "drift.consecutive_windows": "3", "drift.ignore": "age, plan"}
    # WHEN the config is built from them
    config = DriftConfig.from_card_tags(tags)
    # THEN the drift settings are parsed to their types, the rest keep their defaults
    assert config.alpha == 0.05 and config.consecutive_windows == 3 and config.ignore == ("age", "plan")
    assert config.min_rows == DriftConfig().min_rows
    assert DriftConfig.from_dict({"psi_threshold": 0.2}).psi_threshold == 0.2


@pytest.mark.parametrize(
    "overrides", [{"drift.alhpa": "0.05"}, {"drift.alpha": "high"}, {"drift.alpha": "2"}, {"drift.correction": "x"}]
)
def test_a_misspelt_or_invalid_drift_tag_is_refused(overrides):
    with pytest.raises(ValueError):
        DriftConfig.from_card_tags(overrides)


def test_ignored_features_are_left_out_and_check_card_uses_the_card_tags(model):
    # GIVEN a card-like object whose tags ignore age, and a window where only age moved
    class Card:
        name, version = "churn", "3"
        baseline, input_schema = model.baseline, model.schema
        tags = {"drift.ignore": "age"}

    w = clean_window(5000, 21)
    w["age"] = w["age"] + 20
    # WHEN checked through the card
    report = check_card(Card(), w)
    # THEN age is not in the report and the window is clean
    assert "age" not in [f.name for f in report.features]
    assert report.verdict == NO_DRIFT
    assert report.model == {"name": "churn", "version": "3"}


def test_a_feature_missing_from_the_window_is_listed_not_checked(model):
    report = check_drift(model.baseline, model.schema, clean_window(1000, 71).drop(columns=["plan"]))
    assert report.missing_features == ("plan",) and "plan" not in [f.name for f in report.features]


def test_a_feature_the_model_never_reads_is_not_checked_when_clients_leave_it_out(model):
    # GIVEN the card's schema with customer_id optional (the pipeline drops it), and a window where every row left it
    # out (captured as null)
    schema = InputSchema(tuple(replace(f, required=f.name != "customer_id") for f in model.schema.features))
    w = clean_window(2000, 81)
    w["customer_id"] = None
    # WHEN checked
    report = check_drift(model.baseline, schema, w)
    # THEN its null rate is not judged and it is not reported missing: it cannot move the model
    assert "customer_id" not in [f.name for f in report.features] + list(report.missing_features)
    assert report.verdict == NO_DRIFT


# --- pii, report, html ------------------------------------------------------------------------------------------


def test_pii_features_are_only_checked_for_their_null_rate_and_no_value_reaches_the_report(model):
    # GIVEN a window whose customer ids are all new
    w = clean_window(2000, 31)
    w["customer_id"] = [f"SECRET{i}" for i in range(len(w))]
    # WHEN checked
    report = model.check(w)
    feature = report.feature("customer_id")
    # THEN only null-rate scores exist for it, and no id appears in the JSON or HTML
    assert feature.kind == "pii"
    assert set(feature.tests) == {"null_rate_baseline", "null_rate", "null_rate_delta", "null_rate_cohen_h"}
    assert set(feature.p_values) == {"null_rate"} and feature.current is None
    assert "SECRET" not in json.dumps(report.to_dict()) + render_html(report, model.baseline)


def test_report_json_round_trips_without_nan(model):
    w = clean_window(3000, 41)
    w.loc[:5, "monthly_income"] = np.nan
    d = model.check(w).to_dict()
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text) == d
    assert {"rows", "verdict", "drifted_features", "features", "predictions", "config"} <= set(d)
    age = next(f for f in d["features"] if f["name"] == "age")
    assert {"psi", "ks", "null_rate_delta"} <= set(age["tests"]) and set(age["p_adjusted"]) == set(age["p_values"])
    plan = next(f for f in d["features"] if f["name"] == "plan")
    assert {"js", "unseen_share", "max_share_delta"} <= set(plan["tests"]) and "chi2" in plan["p_values"]


def test_html_report_is_self_contained_and_shows_every_feature_and_the_verdict(model):
    # GIVEN a drifted window
    rng = np.random.default_rng(1)
    report = model.check(unseen_region(clean_window(5000, 51), rng, model.baseline))
    # WHEN rendered
    page = render_html(report, model.baseline)
    # THEN every feature, the predictions, the verdict and charts are there, and nothing is fetched or run
    assert report.verdict == DRIFT
    for name in model.schema.names:
        assert f"<h2>{name} " in page
    assert "predicted_class" in page and "drift</span>" in page and page.count("<svg") >= 10
    assert "Most frequent unseen categories: atlantis" in page
    assert "<script" not in page and "src=" not in page and "<link" not in page


def test_regression_predictions_are_compared_as_a_numeric_distribution(model):
    # GIVEN a regression baseline and predictions moved by half a standard deviation
    rng = np.random.default_rng(0)
    predictions = prediction_baseline(rng.normal(10, 2, 4000), None, None)
    base = {"features": model.baseline["features"], "predictions": predictions}
    w = clean_window(5000, 61)
    # WHEN checked
    same = check_drift(base, model.schema, w, predictions=rng.normal(10, 2, 5000))
    moved = check_drift(base, model.schema, w, predictions=rng.normal(11, 2, 5000))
    # THEN only the moved predictions drift
    assert not same.prediction_drifted and moved.prediction_drifted
    assert moved.predictions[0].name == "prediction"
    assert "<h2>prediction " in render_html(moved, base)


def test_boolean_features_are_counted_like_the_baseline_stores_them():
    # GIVEN a boolean feature
    X = pd.DataFrame({"flag": np.random.default_rng(0).random(4000) < 0.3})
    schema = infer_schema(X)
    base = {"features": feature_baseline(X, schema)}
    # WHEN a window with the same share and one with a higher share are checked
    same = check_drift(base, schema, pd.DataFrame({"flag": np.random.default_rng(1).random(5000) < 0.3}))
    moved = check_drift(base, schema, pd.DataFrame({"flag": np.random.default_rng(2).random(5000) < 0.4}))
    # THEN no true/false is taken for an unseen category, and the moved share drifts
    assert same.verdict == NO_DRIFT and same.feature("flag").tests["unseen_share"] == 0
    assert moved.drifted_features == ("flag",)


# --- statistics ---------------------------------------------------------------------------------------------


def test_holm_and_bh_adjust_like_their_textbook_definitions():
    p = [0.01, 0.04, 0.03, 0.005]
    assert stats.adjust(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.adjust(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert stats.adjust([], "holm") == []


def test_identical_distributions_score_zero():
    counts = np.array([10.0, 20.0, 30.0, 40.0])
    assert stats.psi(counts, counts * 3, 1e-4) == pytest.approx(0)
    assert stats.js_distance(counts, counts) == pytest.approx(0)
    assert stats.binned_ks(counts, counts * 2)[0] == pytest.approx(0)
    assert stats.chi2_homogeneity(counts, counts * 2, 5)[1] == pytest.approx(1)
    assert stats.proportion_test(0, 100, 0, 100) == (0.0, 1.0)


def test_predicted_classes_that_are_not_strings_are_keyed_like_the_baseline():
    # GIVEN a classifier with boolean classes: the baseline keeps them as "True"/"False"
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x": rng.normal(size=4000)})
    schema = infer_schema(X)
    base = {
        "features": feature_baseline(X, schema),
        "predictions": prediction_baseline(X["x"] > 0, None, [False, True]),
    }
    # WHEN a window with the same class shares is checked
    w = pd.DataFrame({"x": rng.normal(size=5000)})
    report = check_drift(base, schema, w, predictions=(w["x"] > 0).to_numpy())
    # THEN the classes are matched, not taken for other/unseen
    assert report.verdict == NO_DRIFT
    assert report.predictions[0].current["frequencies"]["(other)"] == 0


def test_the_benchmark_writes_its_markdown_and_json(tmp_path):
    # GIVEN a tiny benchmark run (the real one: python -m sklambda_infra.bench.drift)
    from sklambda_infra.bench import drift as drift_bench

    drift_bench.main(
        ["--rows", "10000", "--repeats", "1", "--clean-windows", "8", "--shift-windows", "2", "--e2e-repeats", "1",
         "--max-rows", "2500", "--target-scale", "0", "--out", str(tmp_path)]
    )  # fmt: skip
    # THEN both files exist and the JSON holds speed, the end-to-end check from S3 and rates
    result = json.loads((tmp_path / "drift.json").read_text())
    assert result["speed"]["rows"] == 10000 and result["rates"]["clean_windows"] == 8
    e2e = result["end_to_end"]
    assert e2e["rows"] == 10000 and e2e["sampled"]["rows_compared"] == 2500 and e2e["full"]["rows_compared"] == 10000
    # AND the sampled and the full window agree: no drift on the clean day, the shifted feature on the other
    assert e2e["agreement"]["clean"]["full"]["verdict"] == "no_drift" and e2e["verdicts_agree"]
    assert e2e["agreement"]["shifted"]["full"]["drifted_features"] == [drift_bench.SHIFTED_FEATURE]
    text = (tmp_path / "drift.md").read_text()
    assert "Drift check benchmark" in text and "End to end: captured lines in S3" in text


def test_reports_never_fail_on_the_values_of_the_window(model):
    # GIVEN a window whose category values are HTML, a lone surrogate and an odd name, and whose numbers are huge
    window = sample.churn_data(300, seed=21)[0]
    window["plan"] = window["plan"].astype(object)
    window.loc[:99, "plan"] = "<script>alert('x')</script>"
    window.loc[100:149, "plan"] = "\ud800"
    window.loc[150:159, "plan"] = "&amp; \u202e"
    window["monthly_income"] = window["monthly_income"].astype(float)
    window.loc[:9, "monthly_income"] = 1e308
    window.loc[10:19, "monthly_income"] = np.inf
    report = check_drift(model.baseline, model.schema, window)
    # WHEN both reports are rendered
    document = json.dumps(report.to_dict(), allow_nan=False)
    page = render_html(report, model.baseline).encode("utf-8")
    # THEN both are written, the HTML escapes every value, and the surrogate is shown as its escape
    assert json.loads(document)["rows"] == 300
    text = page.decode("utf-8")
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "\\ud800" in text
