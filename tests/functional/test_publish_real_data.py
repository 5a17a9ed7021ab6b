"""Publish accepts real data: natural duplicates between a random holdout and training, columns the model never
reads, and holdout columns whose type does not match training's (refused by name, never a numpy message)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sklambda.errors import PublishRejected
from sklambda.publishing import quality
from sklambda.publishing.publisher import build_card
from sklambda_infra import sample
from sklambda_infra.cli import main
from tests.support import wage_like

CATEGORIES = ["maritl", "race", "education", "jobclass", "health", "health_ins"]


@pytest.fixture(scope="module")
def wage():
    """Wage-like data split at random 80/20 (seeded), and a ridge regression of wage fitted on the training part."""
    X, y = wage_like(seed=0)
    order = np.random.default_rng(0).permutation(len(X))
    train, hold = order[600:], order[:600]
    X_train, y_train = X.iloc[train].reset_index(drop=True), y.iloc[train].reset_index(drop=True)
    prep = ColumnTransformer(
        [("num", StandardScaler(), ["year", "age"]), ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORIES)]
    )
    model = Pipeline([("prep", prep), ("model", Ridge())]).fit(X_train, y_train)
    return model, X_train, y_train, X.iloc[hold].reset_index(drop=True), y.iloc[hold].reset_index(drop=True)


def build(model, X, y, **options):
    return build_card(model, X, y, name="wage", version="1", **options)[0]


def refusal(model, X, y, **options) -> PublishRejected:
    with pytest.raises(PublishRejected) as info:
        build(model, X, y, **options)
    return info.value


def checks(error: PublishRejected) -> list[tuple[str | None, str]]:
    return [(e.field, e.message.split("]")[0].lstrip("[")) for e in error.errors]


def leaked(wage, share: float):
    """The wage holdout with its first `share` of rows replaced by training rows (and their targets)."""
    _, X, y, X_hold, y_hold = wage
    k = int(share * len(X_hold))
    return (
        pd.concat([X.iloc[:k], X_hold.iloc[k:]], ignore_index=True),
        pd.concat([y.iloc[:k], y_hold.iloc[k:]], ignore_index=True),
    )


# --- holdout overlap -------------------------------------------------------------------------------------------------
def test_a_random_split_of_data_with_natural_duplicates_is_published_without_an_overlap_warning(wage):
    # GIVEN a correct random split of Wage-like data, where many holdout rows equal some training row by chance
    model, X, y, X_hold, y_hold = wage
    # WHEN published
    card = build(model, X, y, X_holdout=X_hold, y_holdout=y_hold)
    # THEN the overlap check passes silently, and the card records an overlap the training data itself predicted
    assert "holdout_overlap" in card.quality["checks_passed"]
    assert not [w for w in card.quality["warnings"] if w["check"] == "holdout_overlap"]
    measured = card.quality["measurements"]["holdout_overlap"]
    assert measured["observed_rate"] > 0.1  # the old rule refused anything above 1 %
    assert measured["expected_rate"] == pytest.approx(measured["observed_rate"], abs=0.03)
    assert "overrides" not in card.quality


def test_a_holdout_copied_from_training_is_refused_with_observed_and_expected_rates_and_the_override(wage):
    # GIVEN a "holdout" that is 600 training rows
    model, X, y, _, _ = wage
    error = refusal(model, X, y, X_holdout=X.iloc[:600], y_holdout=y.iloc[:600])
    # THEN it is refused by the overlap check, saying what was seen, what a random split gives, and the way out
    assert checks(error) == [(None, "holdout_overlap")]
    assert "600 of 600 holdout rows (100.0%) have an identical training row" in error.message
    assert "where a random split of this data gives 1" in error.message  # 1x.x%, estimated from the training rows
    assert "allow_holdout_overlap=True" in error.message and "--allow-holdout-overlap" in error.message


def test_a_holdout_with_30_percent_leaked_rows_is_published_with_a_warning(wage):
    # GIVEN a random holdout whose first 30 % of rows were replaced by training rows
    model, X, y, _, _ = wage
    X_hold, y_hold = leaked(wage, 0.3)
    # WHEN published
    card = build(model, X, y, X_holdout=X_hold, y_holdout=y_hold)
    # THEN it is published with an overlap warning, the copied share estimated near 30 %
    warning = [w["message"] for w in card.quality["warnings"] if w["check"] == "holdout_overlap"]
    assert len(warning) == 1 and "the holdout metrics may be optimistic" in warning[0]
    assert card.quality["measurements"]["holdout_overlap"]["copied_share"] == pytest.approx(0.3, abs=0.06)


def test_the_override_publishes_a_copied_holdout_with_a_warning_and_records_it_in_the_card(wage):
    # GIVEN a holdout that is mostly training rows, published with allow_holdout_overlap
    model, X, y, _, _ = wage
    X_hold, y_hold = leaked(wage, 0.8)
    card = build(model, X, y, X_holdout=X_hold, y_holdout=y_hold, allow_holdout_overlap=True)
    # THEN it is published; the card records the override and the overlap as a warning
    assert card.quality["overrides"] == ["holdout_overlap"]
    warning = [w["message"] for w in card.quality["warnings"] if w["check"] == "holdout_overlap"]
    assert len(warning) == 1 and "published anyway (allow_holdout_overlap)" in warning[0]
    assert card.quality["measurements"]["holdout_overlap"]["copied_share"] >= quality.OVERLAP_REFUSE_COPIED


# --- column types ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("column", "change", "said"),
    [
        (
            "health_ins",
            lambda s: (s == "1. Yes").astype(int),
            "the holdout has integers (first at holdout row 0: ",
        ),
        ("health_ins", lambda s: s == "1. Yes", "the holdout has booleans (first at holdout row 0: "),
        ("age", lambda s: s.astype(str), "the holdout has text categories (first at holdout row 0: '"),
        ("age", lambda s: s + 0.5, "the holdout has fractional values (600 rows, first at holdout row 0: "),
        (
            "health_ins",
            lambda s: pd.Series([1 if i == 2 else v for i, v in enumerate(s)], dtype=object),
            "the holdout column mixes value types, str (row 0: ",
        ),
    ],
    ids=["integer 0/1 for Yes/No", "booleans for categories", "text for integers", "fractions for integers", "mixed"],
)
def test_a_holdout_column_of_another_type_than_training_is_refused_naming_it(wage, column, change, said):
    # GIVEN the holdout with one column of another type than in training
    model, X, y, X_hold, y_hold = wage
    X_hold = X_hold.assign(**{column: change(X_hold[column])})
    # WHEN published
    error = refusal(model, X, y, X_holdout=X_hold, y_holdout=y_hold)
    # THEN the one refusal names the column and what training had; never a message from numpy
    assert checks(error) == [(column, "column_type")]
    assert said in error.message
    assert "where training had" in error.message and "isnan" not in error.message


def test_training_data_of_another_type_than_the_model_was_fitted_on_is_refused_naming_the_column(wage):
    # GIVEN the model fitted with health_ins "1. Yes"/"2. No", published with training data holding 1/0 there
    model, X, y, _, _ = wage
    X = X.assign(health_ins=(X["health_ins"] == "1. Yes").astype(int))
    # WHEN published
    error = refusal(model, X, y)
    # THEN the refusal names the column and the encoder's categories, not numpy's "ufunc 'isnan' not supported"
    assert checks(error) == [("health_ins", "column_type")]
    assert "the model's OneHotEncoder 'prep.cat' was fitted on text categories ('1. Yes', '2. No')" in error.message
    assert "isnan" not in error.message


def test_integral_floats_in_an_integer_column_are_accepted(wage):
    # GIVEN a holdout whose integer column was read as floats (as pandas reads one with a null)
    model, X, y, X_hold, y_hold = wage
    card = build(model, X, y, X_holdout=X_hold.assign(age=X_hold["age"].astype(float)), y_holdout=y_hold)
    assert "column_type" in card.quality["checks_passed"]


# --- columns the model never reads ----------------------------------------------------------------------------------
def test_columns_the_model_never_reads_are_optional_and_warned_about_unless_pii(churn):
    # GIVEN the churn pipeline (it drops the pii customer_id) fitted on data with one more column it never reads
    channel = np.random.default_rng(0).choice(["web", "shop"], len(churn.X))
    X = churn.X.assign(signup_channel=channel)
    X_hold = churn.X_holdout.assign(signup_channel=channel[: len(churn.X_holdout)])
    model = sample.logistic_pipeline().fit(X, churn.y)
    # WHEN published (the parity gate sends rows without the optional columns through every route)
    card = build(model, X, churn.y, X_holdout=X_hold, y_holdout=churn.y_holdout, pii=sample.PII)
    # THEN both columns are optional in the schema, the rest required
    assert card.input_schema.optional_names == ("customer_id", "signup_channel")
    assert set(card.input_schema.required_names) == set(sample.NUMERIC) | set(sample.CATEGORICAL)
    # AND only the non-pii one is warned about, naming the step that drops it; both are listed with why
    unused = [w for w in card.quality["warnings"] if w["check"] == "unused_feature"]
    assert [w["feature"] for w in unused] == ["signup_channel"]
    assert "ColumnTransformer 'prep' drops it (remainder='drop')" in unused[0]["message"]
    assert sorted(card.quality["measurements"]["unused_feature"]) == ["customer_id", "signup_channel"]
    assert card.parity["rows"] > 0


# --- the CLI ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def cli(registry_env):
    def run(*args: str) -> int:
        return main(["--bucket", registry_env.bucket, "--signing-key", registry_env.signing_key_id, *args])

    return run


def publish_args(files, holdout: str, *extra: str) -> tuple[str, ...]:
    return (
        "publish",
        *("--model", files["model"], "--data", files["train"], "--holdout", holdout),
        *("--target", "churned", "--name", "churn", "--pii", *sample.PII),
        *extra,
    )


def test_the_cli_refuses_a_copied_holdout_and_publishes_it_with_allow_holdout_overlap(cli, files, churn, capsys):
    # GIVEN a holdout CSV made of training rows
    copied = files["dir"] / "copied.csv"
    churn.X.head(300).assign(churned=churn.y.head(300)).to_csv(copied, index=False)
    # WHEN published without and with the override
    refused = cli(*publish_args(files, str(copied)))
    err = capsys.readouterr().err
    published = cli(*publish_args(files, str(copied), "--allow-holdout-overlap"))
    out = capsys.readouterr().out
    # THEN the first is a short refusal naming the override, the second publishes and prints the warning
    assert refused == 2 and "[holdout_overlap]" in err and "--allow-holdout-overlap" in err
    assert "Traceback" not in err
    assert published == 0 and "warning [holdout_overlap]: 300 of 300 holdout rows" in out


def test_the_cli_refuses_a_holdout_csv_with_0_1_where_training_had_yes_no_naming_the_column(cli, files, churn, capsys):
    # GIVEN a holdout CSV whose has_partner column holds 1/0 where the training CSV has "yes"/"no"
    coded = files["dir"] / "coded.csv"
    holdout = churn.X_holdout.assign(has_partner=(churn.X_holdout["has_partner"] == "yes").astype(int))
    holdout.assign(churned=churn.y_holdout).to_csv(coded, index=False)
    # WHEN published
    code = cli(*publish_args(files, str(coded)))
    err = capsys.readouterr().err
    # THEN it is refused in one line naming the column and both types
    assert code == 2
    assert "[column_type] 'has_partner': the holdout has integers (first at holdout row 0: " in err
    assert "where training had text categories ('no', 'yes')" in err
    assert "isnan" not in err and "Traceback" not in err
