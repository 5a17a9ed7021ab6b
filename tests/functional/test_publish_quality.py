"""Publish-time data quality, the decision threshold, importance and the card sections publish adds."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sklambda.errors import PublishRejected
from sklambda.publishing import quality
from sklambda.publishing.publisher import build_card, permutation_drops, publish
from sklambda.registry.card import OPTIONAL_SECTIONS, ModelCard, canonical_json
from sklambda_infra import sample
from tests.support import publish_churn


def build(model, X, y, **options):
    return build_card(model, X, y, name="churn", version="1", pii=sample.PII, **options)[0]


def refusal(model, X, y, **options) -> PublishRejected:
    with pytest.raises(PublishRejected) as info:
        build(model, X, y, **options)
    return info.value


def checks(error: PublishRejected) -> list[str]:
    return [e.message.split("]")[0].lstrip("[") for e in error.errors]


def warnings_of(card) -> dict[str, set]:
    out: dict[str, set] = {}
    for w in card.quality["warnings"]:
        out.setdefault(w["check"], set()).add(w["feature"])
    return out


@pytest.fixture
def hold(churn):
    return {"X_holdout": churn.X_holdout, "y_holdout": churn.y_holdout}


# --- refusals ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make_target", [lambda y: None, lambda y: pd.Series([None] * len(y), name="churned")])
def test_a_missing_target_is_refused(churn, logistic_model, make_target):
    # GIVEN no target, or a target column that is entirely null
    error = refusal(logistic_model, churn.X, make_target(churn.y))
    # THEN publish refuses and says the target is the problem
    assert checks(error) == ["target"]
    assert "target" in error.message


def test_a_training_set_below_the_minimum_is_refused(churn, logistic_model):
    # GIVEN 30 training rows (the minimum is 50)
    error = refusal(logistic_model, churn.X.head(30), churn.y.head(30))
    assert f"at least {quality.MIN_TRAINING_ROWS} are needed" in error.message


def test_a_class_with_too_few_rows_is_refused(churn, logistic_model):
    # GIVEN 200 "no" rows and only 5 "yes" rows
    keep = np.r_[np.flatnonzero(churn.y == "no")[:200], np.flatnonzero(churn.y == "yes")[:5]]
    error = refusal(logistic_model, churn.X.iloc[keep], churn.y.iloc[keep])
    # THEN the rare class is named with its count
    assert "fewer than 10 training rows of class(es) 'yes' (5)" in error.message


@pytest.mark.parametrize(("column", "value"), [("region", "north"), ("monthly_income", np.nan)])
def test_a_constant_feature_is_refused(churn, logistic_model, column, value):
    # GIVEN a training column with one value in every row (all null counts as one value)
    X = churn.X.assign(**{column: value})
    error = refusal(logistic_model, X, churn.y)
    # THEN publish refuses, naming the column
    assert [(e.field, checks(error)[0]) for e in error.errors] == [(column, "constant_feature")]


def test_a_training_column_missing_from_the_holdout_is_refused(churn, logistic_model):
    error = refusal(
        logistic_model, churn.X, churn.y, X_holdout=churn.X_holdout.drop(columns=["plan"]), y_holdout=churn.y_holdout
    )
    assert [(e.field, checks(error)[0]) for e in error.errors] == [("plan", "missing_feature")]
    assert "not in the holdout data" in error.message


def test_a_column_the_model_expects_but_the_data_lacks_is_refused(churn, logistic_model):
    # GIVEN a model fitted with `region` and training data without it
    error = refusal(logistic_model, churn.X.drop(columns=["region"]), churn.y)
    assert ("region", "missing_feature") in list(zip([e.field for e in error.errors], checks(error), strict=True))
    assert "the model expects it" in error.message


def test_a_holdout_partly_copied_from_training_is_published_with_a_warning_giving_the_count(churn, logistic_model):
    # GIVEN a holdout set where 40 of 400 rows are copies of training rows (whose rows are all distinct)
    X_hold = pd.concat([churn.X.head(40), churn.X_holdout.iloc[40:]], ignore_index=True)
    y_hold = pd.concat([churn.y.head(40), churn.y_holdout.iloc[40:]], ignore_index=True)
    card = build(logistic_model, churn.X, churn.y, X_holdout=X_hold, y_holdout=y_hold)
    # THEN it is published (not mostly copies) with a warning giving observed and expected overlap
    assert warnings_of(card) == {"holdout_overlap": {None}}
    assert "40 of 400 holdout rows (10.0%) have an identical training row" in card.quality["warnings"][0]["message"]
    assert "a random split of this data gives 0.0%" in card.quality["warnings"][0]["message"]


def test_a_holdout_copied_from_training_with_new_ids_the_model_never_reads_is_refused(churn, logistic_model):
    # GIVEN a holdout that is 300 training rows whose customer_id (pii, never read by the pipeline) was replaced, as
    # captures replace it with a pseudonym: every row is unique on all its columns, a copy on those the model reads
    X_hold = churn.X.head(300).assign(customer_id=[f"pseudonym-{i}" for i in range(300)])
    error = refusal(logistic_model, churn.X, churn.y, X_holdout=X_hold, y_holdout=churn.y.head(300))
    # THEN the overlap check compared the rows without the unread id, and refuses the copied holdout
    assert checks(error) == ["holdout_overlap"]
    assert "300 of 300 holdout rows (100.0%) have an identical training row" in error.message


def test_a_small_holdout_overlap_is_tolerated(churn, logistic_model):
    # GIVEN 2 of 400 holdout rows (0.5%, under the 1% share of copies that is reported) copied from training
    X_hold = pd.concat([churn.X.head(2), churn.X_holdout.iloc[2:]], ignore_index=True)
    y_hold = pd.concat([churn.y.head(2), churn.y_holdout.iloc[2:]], ignore_index=True)
    card = build(logistic_model, churn.X, churn.y, X_holdout=X_hold, y_holdout=y_hold)
    assert "holdout_overlap" in card.quality["checks_passed"]
    # AND the measurement names the column the model never reads, left out of the comparison
    measured = card.quality["measurements"]["holdout_overlap"]
    assert (measured["shared_rows"], measured["columns_left_out"]) == (2, ["customer_id"])


def test_a_schema_that_cannot_be_inferred_is_refused(churn, logistic_model):
    # GIVEN a column mixing numbers and text
    X = churn.X.assign(notes=[1 if i % 2 else "x" for i in range(len(churn.X))])
    error = refusal(logistic_model, X, churn.y)
    assert checks(error) == ["schema"]
    assert "cannot infer a feature type for column 'notes'" in error.message


def test_every_problem_is_reported_at_once(registry_env, churn, logistic_model):
    # GIVEN a constant column, a holdout missing a column, an unreadable column, and contradictory options
    X = churn.X.assign(region="north", notes=[1 if i % 2 else "x" for i in range(len(churn.X))])
    X_hold = churn.X_holdout.drop(columns=["plan"]).assign(region="north")
    # WHEN published
    with pytest.raises(PublishRejected) as info:
        publish(
            logistic_model,
            X,
            churn.y,
            name="churn",
            registry=registry_env.registry,
            signer=registry_env.signer,
            X_holdout=X_hold,
            y_holdout=churn.y_holdout,
            pii=sample.PII,
            threshold=0.3,
            costs=(1, 5),
        )
    error = info.value
    # THEN one refusal lists each problem on its own line, with a structured entry per problem
    assert sorted(checks(error)) == sorted(
        ["decision", "schema", "constant_feature", "missing_feature", "missing_feature"]
    )
    lines = error.message.splitlines()
    assert lines[0] == "publish refused: 5 problems with the model or its data"
    assert len(lines) == 6 and all(line.startswith("  - [") for line in lines[1:])
    assert {e.field for e in error.errors} >= {"region", "plan", "notes"}
    # AND nothing was written
    assert registry_env.registry.list_versions("churn") == []


def test_a_metric_gate_that_is_met_publishes(churn, logistic_model, hold):
    card = build(logistic_model, churn.X, churn.y, min_metrics={"roc_auc": 0.7, "log_loss": 0.6}, **hold)
    assert "metric_gate" in card.quality["checks_passed"]


def test_a_metric_below_its_gate_is_refused(churn, logistic_model, hold):
    error = refusal(logistic_model, churn.X, churn.y, min_metrics={"roc_auc": 0.99, "log_loss": 0.1}, **hold)
    assert checks(error) == ["metric_gate", "metric_gate"]
    assert "holdout roc_auc 0.8" in error.message and "below the required minimum 0.99" in error.message
    assert "log_loss" in error.message and "above the allowed maximum 0.1" in error.message


def test_a_gate_on_an_unknown_metric_names_the_available_ones(churn, logistic_model, hold):
    error = refusal(logistic_model, churn.X, churn.y, min_metrics={"auc": 0.8}, **hold)
    assert "unknown metric 'auc'" in error.message
    assert "accuracy, balanced_accuracy, f1_macro, log_loss, roc_auc" in error.message


# --- warnings ---------------------------------------------------------------------------------------------------


def test_clean_churn_data_passes_every_check(churn, logistic_model, hold):
    card = build(logistic_model, churn.X, churn.y, **hold)
    assert card.quality["warnings"] == []
    assert set(card.quality["checks_passed"]) >= set(quality.ALL_CHECKS)


def test_heavy_class_imbalance_is_a_warning(churn, logistic_model):
    # GIVEN 40 "yes" among 1040 rows (3.8%, under 5%)
    keep = np.r_[np.flatnonzero(churn.y == "no")[:1000], np.flatnonzero(churn.y == "yes")[:40]]
    card = build(logistic_model, churn.X.iloc[keep], churn.y.iloc[keep])
    # THEN it publishes, with a warning naming the rare class
    assert warnings_of(card) == {"class_imbalance": {None}}
    assert "'yes' is only 3.8%" in card.quality["warnings"][0]["message"]


def test_a_high_null_rate_is_a_warning(churn, logistic_model):
    # GIVEN monthly_income null in 40% of rows
    X = churn.X.copy()
    X.loc[X.index[: int(0.4 * len(X))], "monthly_income"] = np.nan
    card = build(logistic_model, X, churn.y)
    assert warnings_of(card) == {"null_rate": {"monthly_income"}}


def test_a_feature_that_alone_predicts_the_target_is_flagged_as_leakage(churn, hold):
    # GIVEN a categorical column that is the label in disguise, and a numeric one that nearly is
    rng = np.random.default_rng(0)

    def leaky(X, y):
        return X.assign(
            cancel_code=np.where(y == "yes", "C1", "C0"),
            days_since_cancel=np.where(y == "yes", 1.0, 100.0) + rng.normal(0, 0.5, len(y)),
        )

    X, X_hold = leaky(churn.X, churn.y), leaky(churn.X_holdout, churn.y_holdout)
    model = sample.logistic_pipeline().fit(X, churn.y)  # the pipeline does not even use them
    # WHEN published
    card = build(model, X, churn.y, X_holdout=X_hold, y_holdout=churn.y_holdout)
    # THEN both are warned about as leakage, and as columns the model never reads, and nothing else
    both = {"cancel_code", "days_since_cancel"}
    assert warnings_of(card) == {"leakage": both, "unused_feature": both}


def test_a_regression_feature_correlated_with_the_target_is_flagged_as_leakage(churn):
    X = churn.X[["age", "tenure_months", "monthly_charges"]]
    y = pd.Series(2 * X["monthly_charges"] + np.random.default_rng(0).normal(0, 0.1, len(X)), name="bill")
    card = build_card(LinearRegression().fit(X, y), X, y, name="bill", version="1")[0]
    assert warnings_of(card) == {"leakage": {"monthly_charges"}}
    assert "correlates with the target at +1.000" in card.quality["warnings"][0]["message"]


def test_the_checks_run_without_a_model(churn):
    # GIVEN the quality module on its own (domain code: frames in, report out)
    X = churn.X.assign(region="north")
    report = quality.check_training_data(X, churn.y, task="classification", pii=sample.PII)
    assert report.refused and [p.check for p in report.refusals] == ["constant_feature"]
    assert str(report.refusals[0]) == "[constant_feature] 'region': has the same value in all 1600 training rows"


# --- decision threshold -----------------------------------------------------------------------------------------


def test_by_default_the_threshold_is_one_half_for_the_second_class(churn, logistic_model, hold):
    card = build(logistic_model, churn.X, churn.y, **hold)
    assert card.decision == {
        "positive_class": "yes",
        "rule": "positive when P(positive_class) >= threshold",
        "threshold": 0.5,
        "source": "default",
        "costs": None,
    }


def test_a_user_threshold_and_positive_class_are_stored(churn, logistic_model, hold):
    card = build(logistic_model, churn.X, churn.y, threshold=0.3, positive_class="no", **hold)
    assert (card.decision["threshold"], card.decision["source"], card.decision["positive_class"]) == (0.3, "user", "no")


def test_the_threshold_chosen_from_costs_minimizes_the_holdout_cost(churn, logistic_model, hold):
    # GIVEN a missed churner costs 5 times a needless retention offer
    card = build(logistic_model, churn.X, churn.y, costs=(1.0, 5.0), **hold)
    d = card.decision
    # THEN no threshold in a brute-force scan does better on the holdout set
    p = logistic_model.predict_proba(churn.X_holdout)[:, 1]
    positive = (churn.y_holdout == "yes").to_numpy()

    def cost(t: float) -> float:
        called = p >= t
        return 1.0 * np.sum(called & ~positive) + 5.0 * np.sum(~called & positive)

    scan = min(cost(t) for t in np.r_[np.linspace(0.0001, 0.9999, 5000), p])
    assert d["source"] == "costs" and d["costs"] == {"false_positive": 1.0, "false_negative": 5.0}
    assert 0 < d["threshold"] < 0.5  # expensive misses push it down
    assert cost(d["threshold"]) == pytest.approx(scan)
    assert d["holdout_expected_cost"] == pytest.approx(scan / len(p))


def test_a_threshold_on_a_regressor_is_refused(churn):
    X = churn.X[["age", "tenure_months"]]
    y = churn.X["monthly_charges"]
    with pytest.raises(PublishRejected, match=r"threshold applies only to binary classifiers.*is a regressor"):
        build_card(LinearRegression().fit(X, y), X, y, name="bill", version="1", threshold=0.5)


def test_a_threshold_on_a_multiclass_model_is_refused(churn):
    X = churn.X[["age", "tenure_months", "monthly_charges"]]
    y = churn.X["plan"]
    model = LogisticRegression(max_iter=500).fit(X, y)
    with pytest.raises(PublishRejected, match="classifier with 3 classes"):
        build_card(model, X, y, name="plan", version="1", costs=(1, 2))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"threshold": 0.3, "costs": (1, 5)}, "not both"),
        ({"threshold": 0.0}, "strictly between 0 and 1"),
        ({"threshold": 1.5}, "strictly between 0 and 1"),
        ({"costs": (-1, 5)}, "both >= 0"),
        ({"costs": (0, 0)}, "not both zero"),
        ({"positive_class": "maybe"}, "'maybe' is not one of the model's classes"),
    ],
)
def test_invalid_decision_options_are_refused(churn, logistic_model, options, message):
    error = refusal(logistic_model, churn.X, churn.y, **options)
    assert message in error.message and "decision" in checks(error)


# --- importance, explanation, documentation -----------------------------------------------------------------------


def test_informative_features_rank_above_pure_noise(churn, hold):
    # GIVEN a model that is also given a column of pure noise
    rng = np.random.default_rng(3)
    X = churn.X.assign(noise=rng.normal(size=len(churn.X)))
    X_hold = churn.X_holdout.assign(noise=rng.normal(size=len(churn.X_holdout)))
    numeric = [*sample.NUMERIC, "noise"]
    prep = ColumnTransformer(
        [
            ("num", Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())]), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), list(sample.CATEGORICAL)),
        ]
    )
    model = Pipeline([("prep", prep), ("model", LogisticRegression(max_iter=1000))]).fit(X, churn.y)
    # WHEN published with a holdout set
    card = build(model, X, churn.y, X_holdout=X_hold, y_holdout=churn.y_holdout)
    imp = card.importance
    # THEN importance is per original column, measured on the holdout with ROC AUC, sorted, noise below the signal
    names = [f["name"] for f in imp["features"]]
    assert sorted(names) == sorted(X.columns)
    assert (imp["split"], imp["scoring"], imp["rows"], imp["n_repeats"]) == ("holdout", "roc_auc", 400, 5)
    means = [f["mean"] for f in imp["features"]]
    assert means == sorted(means, reverse=True)
    for informative in ("tenure_months", "support_calls", "last_login_days"):
        assert names.index(informative) < names.index("noise")


def test_without_holdout_importance_says_it_used_training_rows_subsampled(logistic_model):
    X, y = sample.churn_data(3000, seed=4)
    card = build(logistic_model, X, y)
    assert (card.importance["split"], card.importance["rows"]) == ("training", 2000)
    assert card.metrics["split"] == "training"


def test_regressor_importance_uses_r2(churn):
    X = churn.X[["age", "tenure_months", "monthly_charges"]]
    y = 3 * X["tenure_months"] + np.random.default_rng(0).normal(0, 40, len(X))
    card = build_card(LinearRegression().fit(X, y), X, y, name="r", version="1")[0]
    assert card.importance["scoring"] == "r2" and card.importance["features"][0]["name"] == "tenure_months"
    assert card.decision is None


def test_the_background_sample_is_in_the_card_but_not_in_the_public_view(churn, logistic_model, hold):
    card = build(logistic_model, churn.X, churn.y, **hold)
    # THEN the signed card carries the background rows, pii replaced by a stand-in
    background = card.explanation["background"]
    assert card.explanation["size"] == len(background) == 32
    assert card.explanation["pii_replaced"] == ["customer_id"]
    assert {r["customer_id"] for r in background} == {"redacted"}
    assert card.input_schema.validate(background).shape == (32, len(churn.X.columns))
    # AND the API's view shows importance, decision, documentation and quality, but no rows
    public = card.public_dict()
    assert "explanation" not in public and "baseline" not in public
    assert {"importance", "decision", "documentation", "quality"} <= set(public)


def test_documentation_is_stored_and_empty_when_not_given(churn, logistic_model):
    card = build(
        logistic_model,
        churn.X,
        churn.y,
        owner="retention team",
        intended_use="rank customers for retention offers",
        limitations=["trained on 2025 customers only", "not for pricing"],
    )
    assert card.documentation == {
        "owner": "retention team",
        "intended_use": "rank customers for retention offers",
        "limitations": ["trained on 2025 customers only", "not for pricing"],
    }
    assert build(logistic_model, churn.X, churn.y).documentation == {"owner": "", "intended_use": "", "limitations": []}


def test_the_new_sections_are_signed(registry_env, churn, logistic_model):
    # GIVEN a published card
    card = publish_churn(registry_env, churn, logistic_model, threshold=0.4)
    stored = registry_env.registry.get_card("churn", card.version)
    registry_env.verifier.verify(stored)
    # WHEN its decision threshold is edited in S3 without re-signing
    key = registry_env.registry.card_key("churn", card.version)
    raw = json.loads(registry_env.s3().get_object(Bucket=registry_env.bucket, Key=key)["Body"].read())
    raw["decision"]["threshold"] = 0.9
    tampered = ModelCard.from_dict(raw)
    # THEN verification fails
    with pytest.raises(Exception, match="failed signature verification"):
        registry_env.verifier.verify(tampered)


def test_an_old_card_without_the_new_sections_still_loads_and_verifies(registry_env, churn, logistic_model):
    # GIVEN a card as published before these sections existed, signed over its then-canonical JSON
    new, blob, *_ = build_card(logistic_model, churn.X, churn.y, name="churn", version="1", pii=sample.PII)
    old = {k: v for k, v in new.to_dict(include_signature=False).items() if k not in OPTIONAL_SECTIONS}
    signed = registry_env.signer.sign(ModelCard.from_dict(old))
    registry_env.registry.put_version(signed, blob)
    # WHEN it is read back by this code
    card = registry_env.registry.get_card("churn", "1")
    # THEN it loads with the sections empty, its canonical JSON is the old one, and it verifies
    assert all(getattr(card, s) is None for s in OPTIONAL_SECTIONS)
    digest = hashlib.sha256(canonical_json(old)).hexdigest()
    assert card.signing_message() == f"sklambda-card-v1:churn:1:{digest}".encode()
    registry_env.verifier.verify(card)
    assert "explanation" not in card.public_dict()


def test_batched_permutation_drops_agree_with_sklearn(churn, logistic_model):
    # GIVEN the card's batched computation and sklearn's permutation_importance, both ROC AUC on the holdout set
    X, y = churn.X_holdout, churn.y_holdout
    ours, _ = permutation_drops(
        lambda frame: logistic_model.predict_proba(frame)[:, 1], quality.rank_auc, X, (y == "yes").to_numpy(), 20, 0
    )
    theirs = permutation_importance(logistic_model, X, y, scoring="roc_auc", n_repeats=20, random_state=0)
    # THEN they measure the same thing: equal up to the shuffling noise, same order for the features that matter
    assert np.abs(ours - theirs.importances_mean).max() < 0.01
    assert list(np.argsort(-ours)[:4]) == list(np.argsort(-theirs.importances_mean)[:4])
    assert quality.rank_auc((y == "yes").to_numpy(), X["tenure_months"].to_numpy()) == pytest.approx(
        roc_auc_score(y == "yes", X["tenure_months"])
    )


def test_a_holdout_target_with_nulls_or_the_wrong_length_is_refused(churn, logistic_model):
    y_null = churn.y_holdout.where(churn.y_holdout.index >= 3)
    error = refusal(logistic_model, churn.X, churn.y, X_holdout=churn.X_holdout, y_holdout=y_null)
    assert "the holdout target is null in 3 of 400 rows" in error.message
    error = refusal(logistic_model, churn.X, churn.y, X_holdout=churn.X_holdout, y_holdout=churn.y_holdout[:10])
    assert "the holdout data has 400 rows but its target has 10" in error.message


def test_a_very_imbalanced_target_does_not_make_every_category_look_leaky(churn):
    # GIVEN a target that is "no" in 99.3% of rows: every column is then "99% pure" by chance
    y = pd.Series(np.where(np.arange(len(churn.X)) % 150 == 0, "yes", "no"), name="fraud")
    report = quality.check_training_data(churn.X, y, task="classification", pii=sample.PII)
    # THEN the imbalance is warned about, leakage is checked and not reported
    assert not report.refused and "leakage" in report.checks_passed
    assert {w.check for w in report.warnings} == {"class_imbalance"}
