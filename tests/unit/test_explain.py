"""Local explanations (serving.explain): additivity, exactness against independent computations, feature naming."""

from __future__ import annotations

import itertools
import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.tree import DecisionTreeRegressor

from sklambda.registry.schema import infer_schema
from sklambda.serving.background import background_frame, background_sample
from sklambda.serving.explain import LINEAR_EXACT, SHAPLEY_EXACT, SHAPLEY_SAMPLING, TREE_EXACT, Explainer
from sklambda_infra import sample

# Additivity is exact up to float rounding; the brief's bound is 1e-6.
ADDS_UP = 1e-9


@pytest.fixture(scope="module")
def schema(churn: SimpleNamespace):
    return infer_schema(churn.X, pii=sample.PII)


@pytest.fixture(scope="module")
def background(churn: SimpleNamespace, schema) -> pd.DataFrame:
    """The background as a model card stores it (32 rows, customer_id redacted), read back like a request."""
    return background_frame(background_sample(churn.X, schema), schema)


@pytest.fixture(scope="module")
def rows(churn: SimpleNamespace) -> pd.DataFrame:
    return churn.X_holdout.iloc[:6].reset_index(drop=True)


def regression_target(X: pd.DataFrame) -> pd.Series:
    return X["monthly_charges"] * 2 + X["tenure_months"] - 3 * X["support_calls"] + (X["plan"] == "premium") * 20


@pytest.fixture(scope="module")
def regressors(churn: SimpleNamespace) -> dict:
    y = regression_target(churn.X)
    return {
        LINEAR_EXACT: Pipeline([("prep", sample.preprocessor()), ("model", Ridge())]).fit(churn.X, y),
        TREE_EXACT: Pipeline([("prep", sample.preprocessor()), ("model", DecisionTreeRegressor(max_depth=6))]).fit(
            churn.X, y
        ),
        SHAPLEY_EXACT: Pipeline(
            [("prep", sample.preprocessor()), ("model", HistGradientBoostingRegressor(max_iter=30))]
        ).fit(churn.X, y),
    }


def assert_adds_up(explanations, expected: np.ndarray) -> None:
    total = explanations.base_values[None, :] + explanations.values.sum(axis=1)
    np.testing.assert_allclose(total, expected, rtol=0, atol=ADDS_UP)
    np.testing.assert_allclose(explanations.predictions, expected, rtol=0, atol=ADDS_UP)


# --- 1. additivity ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_name", "method", "expected_method"),
    [
        ("logistic_model", "auto", LINEAR_EXACT),
        ("forest_model", "auto", TREE_EXACT),
        ("forest_model", SHAPLEY_EXACT, SHAPLEY_EXACT),
        ("forest_model", SHAPLEY_SAMPLING, SHAPLEY_SAMPLING),
        ("logistic_model", SHAPLEY_SAMPLING, SHAPLEY_SAMPLING),
    ],
)
def test_attributions_plus_base_value_equal_each_class_probability(
    request, background, rows, model_name, method, expected_method
):
    # GIVEN a churn classifier and the card's background
    model = request.getfixturevalue(model_name)
    explainer = Explainer(model, background, method=method)

    # WHEN several rows are explained
    explanations = explainer.explain(rows)

    # THEN for every row and class, base value + attributions == predict_proba
    assert explanations.method == expected_method
    assert explanations.outputs == ("no", "yes")
    assert explanations.values.shape == (len(rows), len(background.columns), 2)
    assert_adds_up(explanations, model.predict_proba(rows))


@pytest.mark.parametrize("method", [LINEAR_EXACT, TREE_EXACT, SHAPLEY_EXACT])
def test_attributions_plus_base_value_equal_the_prediction_of_a_regressor(regressors, background, rows, method):
    # GIVEN a regression pipeline of each kind
    model = regressors[method]

    # WHEN rows are explained
    explanations = Explainer(model, background).explain(rows)

    # THEN the method is the one for that kind of model and the single output "prediction" adds up to predict
    assert explanations.method == method
    assert explanations.outputs == ("prediction",)
    assert_adds_up(explanations, model.predict(rows).reshape(-1, 1))


@pytest.mark.parametrize(
    ("final", "expected_method"),
    [(LogisticRegression(max_iter=500), SHAPLEY_EXACT), (RandomForestClassifier(5, max_depth=6), TREE_EXACT)],
)
def test_every_class_of_a_multiclass_model_adds_up(churn, background, rows, final, expected_method):
    # GIVEN a 3-class model (the plan, predicted from the other features)
    X = churn.X.drop(columns=["plan"])
    model = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), list(sample.NUMERIC[:1]) + list(sample.NUMERIC[2:])),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["region", "payment_method", "has_partner"]),
                    ]
                ),
            ),
            ("model", final),
        ]
    ).fit(X, churn.X["plan"])

    # WHEN rows are explained (multi-class linear models take the model-agnostic path)
    explanations = Explainer(model, background.drop(columns=["plan"])).explain(rows.drop(columns=["plan"]))

    # THEN each of the three class probabilities adds up
    assert explanations.method == expected_method
    assert explanations.outputs == ("basic", "plus", "premium")
    assert_adds_up(explanations, model.predict_proba(rows.drop(columns=["plan"])))


def test_preprocessing_that_mixes_columns_falls_back_to_input_rows_and_still_adds_up(churn, background, rows):
    # GIVEN a pipeline whose PCA step mixes all transformed columns (no output column belongs to one input)
    model = Pipeline(
        [("prep", sample.preprocessor()), ("pca", PCA(n_components=5)), ("model", LogisticRegression())]
    ).fit(churn.X, churn.y)

    # WHEN a row is explained
    explanations = Explainer(model, background).explain(rows.iloc[:2])

    # THEN coalitions are scored through the whole pipeline (11 input columns: sampling) and the sums hold
    assert explanations.method == SHAPLEY_SAMPLING
    assert_adds_up(explanations, model.predict_proba(rows.iloc[:2]))
    # and customer_id, which the pipeline drops, changes nothing in any coalition
    assert np.all(explanations.values[:, 0, :] == 0.0)


def test_passthrough_and_ordinal_columns_map_back_to_their_input_features(churn, rows):
    # GIVEN a ColumnTransformer that passes some columns through (remainder) and ordinal-encodes another, fitted on
    # a frame whose column order differs from the background's
    columns = ["plan", "age", "tenure_months", "support_calls"]
    prep = ColumnTransformer([("ord", OrdinalEncoder(), ["plan"])], remainder="passthrough")
    model = Pipeline([("prep", prep), ("model", Ridge())]).fit(churn.X[columns], regression_target(churn.X))
    background = churn.X[list(reversed(columns))].iloc[:16]

    # WHEN rows are explained
    explanations = Explainer(model, background).explain(rows)

    # THEN the linear path applies, each input feature gets its own coefficient's share, and the sums hold
    assert explanations.method == LINEAR_EXACT
    assert explanations.feature_names == tuple(reversed(columns))
    coef = dict(zip(["plan", "age", "tenure_months", "support_calls"], model[-1].coef_, strict=True))
    age = explanations.values[:, explanations.feature_names.index("age"), 0]
    np.testing.assert_allclose(age, coef["age"] * (rows["age"] - background["age"].mean()), rtol=1e-10)
    assert_adds_up(explanations, model.predict(rows[columns]).reshape(-1, 1))


def test_an_explainer_is_built_from_the_background_a_model_card_stores(forest_model, churn, schema, rows):
    # GIVEN a card (its task, classes, schema and stored background sample)
    records = background_sample(churn.X, schema)
    card = SimpleNamespace(
        name="churn",
        task="classification",
        classes=("no", "yes"),
        input_schema=schema,
        explanation={"background": records, "size": len(records), "pii_replaced": ["customer_id"]},
    )

    # WHEN the explainer is built from it
    explainer = Explainer.from_card(forest_model, card)

    # THEN it explains against that sample, keyed by the card's classes
    assert explainer.outputs == ("no", "yes")
    assert len(explainer.background) == 16 and set(explainer.background["customer_id"]) == {"redacted"}
    assert_adds_up(explainer.explain(rows), forest_model.predict_proba(rows))


# --- 2. linear models: exact against coefficients ------------------------------------------------------------------


def input_feature_of(output_name: str) -> str:
    """'num__age' -> 'age', 'cat__plan_premium' -> 'plan', from the sample preprocessor's naming."""
    transformer, column = output_name.split("__", 1)
    if transformer == "num":
        return column
    (feature,) = [f for f in sample.CATEGORICAL if column.startswith(f + "_")]
    return feature


def test_linear_log_odds_attributions_are_coefficient_times_distance_to_background_mean(
    logistic_model, background, rows
):
    # GIVEN the logistic pipeline and the coefficient view computed here, independently of sklambda.serving.explain
    prep, model = logistic_model[:-1], logistic_model[-1]
    explainer = Explainer(logistic_model, background, max_background=len(background))
    Z, Zb = prep.transform(rows), prep.transform(background)
    per_column = model.coef_[0] * (Z - Zb.mean(axis=0))
    owners = [input_feature_of(n) for n in prep.get_feature_names_out()]
    expected = np.zeros((len(rows), len(background.columns)))
    for c, owner in enumerate(owners):
        expected[:, list(background.columns).index(owner)] += per_column[:, c]

    # WHEN the rows are explained
    explanations = explainer.explain(rows)

    # THEN the log-odds attributions are those sums, of the positive class, from the mean log-odds
    log_odds = explanations.log_odds
    assert log_odds.of == "yes"
    np.testing.assert_allclose(log_odds.values, expected, rtol=1e-10, atol=1e-12)
    assert log_odds.base_value == pytest.approx(model.decision_function(Zb).mean(), abs=1e-10)
    np.testing.assert_allclose(
        log_odds.base_value + log_odds.values.sum(axis=1), logistic_model.decision_function(rows)
    )
    # AND the probability attributions are the same numbers rescaled per row (same signs, same proportions)
    yes = explanations.values[:, :, 1]
    ratio = yes.sum(axis=1) / expected.sum(axis=1)
    np.testing.assert_allclose(yes, expected * ratio[:, None], rtol=1e-9, atol=1e-15)
    assert np.all(ratio > 0)
    assert explanations.base_values[1] == pytest.approx(1 / (1 + math.exp(-log_odds.base_value)))


# --- 3. agreement with brute-force Shapley values ------------------------------------------------------------------

SMALL_FEATURES = ["customer_id", "age", "tenure_months", "support_calls", "plan", "payment_method"]


@pytest.fixture(scope="module")
def small_forest(churn: SimpleNamespace) -> Pipeline:
    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "tenure_months", "support_calls"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan", "payment_method"]),
        ]
    )
    forest = RandomForestClassifier(n_estimators=3, max_depth=5, random_state=0)
    return Pipeline([("prep", prep), ("model", forest)]).fit(churn.X[SMALL_FEATURES], churn.y)


def brute_force_shapley(model, x: pd.Series, background: pd.DataFrame) -> np.ndarray:
    """Shapley values of v(S) = mean_b P(x_S, b_~S) by enumerating every subset of the input columns (each v(S)
    computed once: the sum asks for every subset n times)."""
    names = list(background.columns)
    n = len(names)
    values: dict[frozenset[str], np.ndarray] = {}

    def v(subset: tuple[str, ...]) -> np.ndarray:
        if frozenset(subset) not in values:
            hybrid = background.copy()
            for name in subset:
                hybrid[name] = pd.Series([x[name]] * len(hybrid), dtype=background[name].dtype)
            values[frozenset(subset)] = model.predict_proba(hybrid).mean(axis=0)
        return values[frozenset(subset)]

    phi = np.zeros((n, 2))
    for j, name in enumerate(names):
        others = [m for m in names if m != name]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                phi[j] += weight * (v((*subset, name)) - v(subset))
    return phi


@pytest.fixture(scope="module")
def small_case(small_forest, churn, background) -> SimpleNamespace:
    bg = background[SMALL_FEATURES].iloc[:12].reset_index(drop=True)
    rows = churn.X_holdout[SMALL_FEATURES].iloc[:3].reset_index(drop=True)
    reference = np.stack([brute_force_shapley(small_forest, rows.iloc[i], bg) for i in range(len(rows))])
    return SimpleNamespace(background=bg, rows=rows, reference=reference)


@pytest.mark.parametrize("method", ["auto", SHAPLEY_EXACT])
def test_exact_methods_agree_with_brute_force_shapley_values(small_forest, small_case, method):
    # GIVEN a 3-tree forest on 5 model features and brute-force Shapley values with the same background
    explainer = Explainer(small_forest, small_case.background, method=method)

    # WHEN the rows are explained by the tree walk (auto) or by enumerating coalitions
    explanations = explainer.explain(small_case.rows)

    # THEN both are exact
    assert explanations.method == (TREE_EXACT if method == "auto" else SHAPLEY_EXACT)
    np.testing.assert_allclose(explanations.values, small_case.reference, rtol=0, atol=1e-12)


def test_sampling_estimate_converges_to_brute_force_shapley_values(small_forest, small_case):
    # GIVEN the sampling path forced on the small forest with many permutations
    explainer = Explainer(small_forest, small_case.background, method=SHAPLEY_SAMPLING, n_permutations=600)

    # WHEN the rows are explained
    values = explainer.explain(small_case.rows).values

    # THEN the estimate is close to the exact values: with 600 permutations the Monte Carlo error of each value is
    # at most ~0.001 here (mean ~0.0002; attributions are up to ~0.18): 0.005 is a wide margin
    np.testing.assert_allclose(values, small_case.reference, rtol=0, atol=0.005)
    assert np.abs(values - small_case.reference).mean() < 0.001


def test_sampling_is_reproducible_and_independent_of_the_batch(forest_model, background, rows):
    # GIVEN the sampling path with its default seed
    explainer = Explainer(forest_model, background, method=SHAPLEY_SAMPLING)

    # WHEN a row is explained twice, alone and within a batch
    alone = explainer.explain(rows.iloc[[2]]).values[0]
    again = Explainer(forest_model, background, method=SHAPLEY_SAMPLING).explain(rows.iloc[[2]]).values[0]
    in_batch = explainer.explain(rows).values[2]

    # THEN the attributions are the same
    np.testing.assert_array_equal(alone, again)
    np.testing.assert_allclose(alone, in_batch, rtol=0, atol=1e-12)


# --- 4. unused features --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model_name", "method"),
    [("logistic_model", "auto"), ("forest_model", "auto"), ("forest_model", SHAPLEY_SAMPLING)],
)
def test_features_the_model_drops_get_zero_attribution(request, background, rows, model_name, method):
    # GIVEN a pipeline whose ColumnTransformer drops customer_id
    explainer = Explainer(request.getfixturevalue(model_name), background, method=method)

    # WHEN rows are explained
    explanations = explainer.explain(rows)

    # THEN customer_id gets exactly zero for every row and class
    assert np.all(explanations.values[:, explanations.feature_names.index("customer_id"), :] == 0.0)


# --- 5. names and JSON ---------------------------------------------------------------------------------------------


def test_attributions_are_named_by_input_features_in_schema_order(logistic_model, forest_model, schema, background):
    for model in (logistic_model, forest_model):
        # GIVEN an explainer of a pipeline with one-hot encoded categoricals
        explanations = Explainer(model, background).explain(background.iloc[:2])

        # WHEN one row is rendered as JSON
        row = json.loads(json.dumps(explanations.row(0)))

        # THEN the features are the schema's, in its order, with no transformed-column names
        assert explanations.feature_names == schema.names
        assert list(row["attributions"]) == list(schema.names)
        assert set(row["base_value"]) == set(row["value"]) == {"no", "yes"}
        assert all(set(v) == {"no", "yes"} for v in row["attributions"].values())
        assert row["method"] == explanations.method


def test_row_json_of_a_linear_classifier_carries_its_log_odds(logistic_model, background, rows):
    # GIVEN the logistic pipeline
    explanations = Explainer(logistic_model, background).explain(rows)

    # WHEN a row is rendered
    row = explanations.row(1)

    # THEN the log-odds view adds up to the row's log-odds, keyed by the same features
    log_odds = row["log_odds"]
    assert log_odds["of"] == "yes"
    assert list(log_odds["attributions"]) == list(row["attributions"])
    assert log_odds["base_value"] + sum(log_odds["attributions"].values()) == pytest.approx(log_odds["value"])
    assert log_odds["value"] == pytest.approx(logistic_model.decision_function(rows.iloc[[1]])[0])


def test_columns_are_taken_by_name_whatever_their_order_in_the_frame(forest_model, background, rows):
    # GIVEN the same rows with their columns reversed
    explainer = Explainer(forest_model, background)
    shuffled = rows[list(reversed(rows.columns))]

    # WHEN both are explained
    # THEN the attributions are the same, in schema order
    np.testing.assert_array_equal(explainer.explain(shuffled).values, explainer.explain(rows).values)


# --- 6. nulls ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_name", ["logistic_model", "forest_model"])
def test_a_row_with_a_null_the_pipeline_imputes_is_explained(request, schema, background, rows, model_name):
    # GIVEN a validated request row whose nullable monthly_income is null
    model = request.getfixturevalue(model_name)
    record = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in rows.iloc[0].to_dict().items()}
    record["monthly_income"] = None
    frame = schema.validate([record])
    assert frame["monthly_income"].isna().all()

    # WHEN it is explained
    explanations = Explainer(model, background).explain(frame)

    # THEN every attribution is finite and the sums still equal predict_proba
    assert np.isfinite(explanations.values).all()
    assert_adds_up(explanations, model.predict_proba(frame))
