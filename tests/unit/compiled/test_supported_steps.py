"""Every supported step, compiled, answers as scikit-learn: within 1e-12 in probability or value, exactly in class, on
unseen rows with nulls and categories training never saw, all at once and one row alone."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from sklambda.compiled import evaluate
from sklambda.compiled.evaluate import InvalidModelInput, UnknownCategory
from sklambda.registry.schema import infer_schema
from sklambda_infra import sample
from tests.unit.compiled.helpers import assert_agrees, columns_of, compiled, served_frame

NUMERIC, CATEGORICAL = list(sample.NUMERIC), list(sample.CATEGORICAL)


def _prep(numeric=None, categorical=None, remainder="drop") -> ColumnTransformer:
    numeric = numeric if numeric is not None else Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
    categorical = categorical if categorical is not None else OneHotEncoder(handle_unknown="ignore")
    return ColumnTransformer([("num", numeric, NUMERIC), ("cat", categorical, CATEGORICAL)], remainder=remainder)


def _pipe(model, **prep) -> Pipeline:
    return Pipeline([("prep", _prep(**prep)), ("model", model)])


def _scaled(scaler) -> Pipeline:
    return Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", scaler)])


def _remainder(remainder) -> Pipeline:
    """The numbers reach the forest as the remainder (raw, NaN included, when passed through); the id is dropped."""
    prep = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL), ("id", "drop", list(sample.PII))],
        remainder=remainder,
    )
    return Pipeline([("prep", prep), ("model", RandomForestClassifier(n_estimators=20, max_depth=8, random_state=0))])


def _income(X: pd.DataFrame) -> pd.Series:
    """A regression target: 0.4 * age + tenure / 10 + the plan's price, plus noise."""
    noise = np.random.default_rng(7).normal(0, 2, len(X))
    return 0.4 * X["age"] + X["tenure_months"] / 10 + X["plan"].map({"basic": 0, "plus": 5, "premium": 12}) + noise


PREPROCESSING: dict[str, Callable[[], object]] = {
    "imputer-mean": lambda: _prep(),
    "imputer-most-frequent": lambda: _prep(
        numeric=_scaled(StandardScaler()).set_params(impute__strategy="most_frequent")
    ),
    "imputer-constant-with-indicator": lambda: _prep(
        numeric=Pipeline(
            [("impute", SimpleImputer(strategy="constant", fill_value=-1, add_indicator=True)), ("s", StandardScaler())]
        ),
    ),
    "pipeline-in-pipeline": lambda: _prep(
        numeric=Pipeline([("inner", _scaled(StandardScaler())), ("more", Pipeline([("range", MinMaxScaler())]))])
    ),
    "standard-scaler-no-mean": lambda: _prep(numeric=_scaled(StandardScaler(with_mean=False))),
    "standard-scaler-no-std": lambda: _prep(numeric=_scaled(StandardScaler(with_std=False))),
    "minmax-scaler-clip": lambda: _prep(numeric=_scaled(MinMaxScaler(clip=True))),
    "maxabs-scaler": lambda: _prep(numeric=_scaled(MaxAbsScaler())),
    "robust-scaler": lambda: _prep(numeric=_scaled(RobustScaler())),
    "one-hot-drop-first": lambda: _prep(categorical=OneHotEncoder(drop="first", handle_unknown="ignore")),
    "one-hot-if-binary-dense": lambda: _prep(
        categorical=OneHotEncoder(drop="if_binary", handle_unknown="ignore", sparse_output=False)
    ),
    "ordinal-missing-and-unknown": lambda: _prep(
        categorical=OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-2)
    ),
}


@pytest.mark.parametrize("build", PREPROCESSING.values(), ids=PREPROCESSING.keys())
def test_preprocessing_steps_answer_as_scikit_learn(build, churn_compiled):
    # GIVEN a preprocessor before a ridge regression (a continuous answer shows any difference in the arithmetic)
    model = Pipeline([("prep", build()), ("model", Ridge(alpha=1.0))]).fit(churn_compiled.X, _income(churn_compiled.X))
    # WHEN compiled and scoring unseen rows THEN the values agree within 1e-12
    assert_agrees(model, churn_compiled.schema, churn_compiled.frame)


CLASSIFIERS: dict[str, Callable[[], object]] = {
    "logistic": lambda: _pipe(LogisticRegression(max_iter=1000)),
    "ordinal-unknown-value": lambda: _pipe(
        DecisionTreeClassifier(max_depth=8, random_state=0),
        categorical=OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
    ),
    "remainder-passthrough": lambda: _remainder("passthrough"),
    "remainder-pipeline": lambda: _remainder(_scaled(RobustScaler())),
    "decision-tree": lambda: _pipe(DecisionTreeClassifier(max_depth=10, random_state=0)),
    "extra-trees": lambda: _pipe(ExtraTreesClassifier(n_estimators=20, max_depth=10, random_state=0)),
    "gradient-boosting": lambda: _pipe(GradientBoostingClassifier(n_estimators=30, max_depth=3, random_state=0)),
    "gradient-boosting-exponential": lambda: _pipe(
        GradientBoostingClassifier(loss="exponential", n_estimators=30, max_depth=3, random_state=0)
    ),
    "gradient-boosting-zero-init": lambda: _pipe(
        GradientBoostingClassifier(init="zero", n_estimators=30, max_depth=3, random_state=0)
    ),
    "hist-gradient-boosting": lambda: _pipe(
        HistGradientBoostingClassifier(max_iter=10, max_leaf_nodes=15, random_state=0)
    ),
}


@pytest.mark.parametrize("build", CLASSIFIERS.values(), ids=CLASSIFIERS.keys())
def test_binary_classifier_pipelines_answer_as_scikit_learn(build, churn_compiled):
    # GIVEN a pipeline fitted on the churn sample
    model = build().fit(churn_compiled.X, churn_compiled.y)
    # WHEN compiled and scoring unseen rows THEN it agrees with scikit-learn
    assert_agrees(model, churn_compiled.schema, churn_compiled.frame)
    # AND one pass gives both answers, each as its own method gives it
    evaluator = compiled(model, churn_compiled.schema)
    columns = columns_of(churn_compiled.frame)
    labels, proba = evaluator.predict_and_proba(columns)
    assert np.array_equal(labels, evaluator.predict(columns)) and np.array_equal(
        proba, evaluator.predict_proba(columns)
    )


MULTICLASS = {
    "logistic-multinomial": lambda: LogisticRegression(max_iter=1000),
    "random-forest": lambda: RandomForestClassifier(n_estimators=20, max_depth=10, random_state=0),
    "gradient-boosting": lambda: GradientBoostingClassifier(n_estimators=15, max_depth=3, random_state=0),
    "hist-gradient-boosting": lambda: HistGradientBoostingClassifier(max_iter=5, max_leaf_nodes=15, random_state=0),
}


@pytest.mark.parametrize("build", MULTICLASS.values(), ids=MULTICLASS.keys())
def test_multiclass_classifiers_answer_as_scikit_learn(build, churn_compiled):
    # GIVEN a classifier of the payment method (four classes) from the other features
    columns = [c for c in CATEGORICAL if c != "payment_method"]
    prep = ColumnTransformer(
        [("num", _scaled(StandardScaler()), NUMERIC), ("cat", OneHotEncoder(handle_unknown="ignore"), columns)]
    )
    model = Pipeline([("prep", prep), ("model", build())]).fit(churn_compiled.X, churn_compiled.X["payment_method"])
    # WHEN compiled THEN it agrees with scikit-learn and names the four classes
    assert_agrees(model, churn_compiled.schema, churn_compiled.frame)
    assert compiled(model, churn_compiled.schema).classes == sorted(churn_compiled.X["payment_method"].unique())


REGRESSORS = {
    "linear-regression": lambda: LinearRegression(),
    "ridge": lambda: Ridge(alpha=3.0),
    "lasso": lambda: Lasso(alpha=0.05),
    "elastic-net": lambda: ElasticNet(alpha=0.05, l1_ratio=0.3),
    "decision-tree": lambda: DecisionTreeRegressor(max_depth=8, random_state=0),
    "random-forest": lambda: RandomForestRegressor(n_estimators=20, max_depth=8, random_state=0),
    "extra-trees": lambda: ExtraTreesRegressor(n_estimators=20, max_depth=8, random_state=0),
    "gradient-boosting": lambda: GradientBoostingRegressor(n_estimators=30, max_depth=3, random_state=0),
    "hist-gradient-boosting": lambda: HistGradientBoostingRegressor(max_iter=10, max_leaf_nodes=15, random_state=0),
}


@pytest.mark.parametrize("build", REGRESSORS.values(), ids=REGRESSORS.keys())
def test_regressors_answer_as_scikit_learn(build, churn_compiled):
    # GIVEN a regression pipeline WHEN compiled THEN its predictions agree within 1e-12 and it has no predict_proba
    model = _pipe(build()).fit(churn_compiled.X, _income(churn_compiled.X))
    assert_agrees(model, churn_compiled.schema, churn_compiled.frame)
    evaluator = compiled(model, churn_compiled.schema)
    assert evaluator.classes is None and not evaluator.has_proba
    with pytest.raises(AttributeError):
        evaluator.predict_proba(columns_of(churn_compiled.frame))


BARE = {
    "decision-tree": lambda: DecisionTreeClassifier(max_depth=10, random_state=0),
    "random-forest": lambda: RandomForestClassifier(n_estimators=20, max_depth=10, random_state=0),
    "extra-trees": lambda: ExtraTreesClassifier(n_estimators=20, max_depth=10, random_state=0),
    "hist-gradient-boosting": lambda: HistGradientBoostingClassifier(max_iter=10, max_leaf_nodes=15, random_state=0),
}


@pytest.mark.parametrize("build", BARE.values(), ids=BARE.keys())
def test_bare_trees_with_missing_values_answer_as_scikit_learn(build, churn_compiled):
    # GIVEN a bare tree model fitted on a DataFrame of numbers with nulls (missing_go_to_left learnt at each split)
    X = churn_compiled.X[NUMERIC]
    assert X["monthly_income"].isna().any()
    model = build().fit(X, churn_compiled.y)
    schema = infer_schema(X)
    frame = served_frame(schema, churn_compiled.frame[NUMERIC])
    assert frame["monthly_income"].isna().any()
    # WHEN compiled THEN rows with nulls go where scikit-learn sends them
    assert_agrees(model, schema, frame)


def test_an_unknown_category_with_handle_unknown_error_is_refused_naming_feature_and_value(churn_compiled):
    # GIVEN a one-hot encoder that refuses unknown categories
    model = _pipe(LogisticRegression(max_iter=500), categorical=OneHotEncoder(handle_unknown="error"))
    model.fit(churn_compiled.X, churn_compiled.y)
    evaluator = compiled(model, churn_compiled.schema)
    frame = churn_compiled.frame
    known = frame[frame["region"] != "atlantis"].reset_index(drop=True)
    known = known[known["plan"].isin(["basic", "plus", "premium"])].reset_index(drop=True)
    # WHEN rows of known categories are scored THEN they agree; WHEN one unknown region comes THEN a ValueError
    # names the feature and the value, as scikit-learn raises one
    assert_agrees(model, churn_compiled.schema, known)
    with pytest.raises(UnknownCategory, match="'atlantis' in feature 'region'"):
        evaluator.predict(columns_of(frame.iloc[30:31].reset_index(drop=True)))
    with pytest.raises(ValueError, match="unknown categor"):
        model.predict(frame.iloc[30:31])


def test_imputed_categories_answer_as_scikit_learn(churn_compiled):
    # GIVEN category columns imputed (most frequent) before one-hot encoding, fitted on data where plan has nulls
    X = churn_compiled.X.astype({"plan": object})
    X.loc[::7, "plan"] = np.nan
    categorical = Pipeline(
        [("impute", SimpleImputer(strategy="most_frequent")), ("encode", OneHotEncoder(handle_unknown="ignore"))]
    )
    model = _pipe(LogisticRegression(max_iter=1000), categorical=categorical).fit(X, churn_compiled.y)
    schema = infer_schema(X, pii=sample.PII)
    unseen = churn_compiled.frame.drop(columns=[f for f in schema.names if f not in churn_compiled.frame])
    frame = served_frame(schema, unseen.astype(object).where(unseen.notna(), None))
    assert frame["plan"].isna().any()
    # WHEN compiled THEN the null plans are imputed as scikit-learn imputes them
    assert_agrees(model, schema, frame)


def test_input_scikit_learn_refuses_is_refused_too(churn_compiled):
    # GIVEN gradient boosting fitted on numbers without nulls (its predict refuses NaN)
    X = churn_compiled.X[NUMERIC].fillna(0.0)
    model = GradientBoostingClassifier(n_estimators=5, random_state=0).fit(X, churn_compiled.y)
    schema = infer_schema(X, nullable=["monthly_income"])
    evaluator = compiled(model, schema)
    frame = served_frame(schema, churn_compiled.frame[NUMERIC])
    # WHEN a row with a null income is scored THEN both refuse it with a ValueError
    with pytest.raises(ValueError, match="NaN"):
        model.predict(frame)
    with pytest.raises(InvalidModelInput, match="NaN"):
        evaluator.predict(columns_of(frame))
    # WHEN a column is missing or of another length THEN the evaluator names it
    with pytest.raises(InvalidModelInput, match="'age' missing"):
        evaluator.predict({k: v for k, v in columns_of(frame).items() if k != "age"})
    with pytest.raises(InvalidModelInput, match="has 500 rows, others 1"):
        evaluator.predict({**columns_of(frame), "age": frame["age"].to_numpy()[:1]})


SPARSE = {
    "standard-scaler-logistic": lambda: [("scale", StandardScaler(with_mean=False)), ("model", LogisticRegression())],
    "maxabs-scaler-ridge": lambda: [("scale", MaxAbsScaler()), ("model", Ridge())],
    "random-forest": lambda: [("model", RandomForestClassifier(n_estimators=20, max_depth=8, random_state=0))],
}


@pytest.mark.parametrize("build", SPARSE.values(), ids=SPARSE.keys())
def test_steps_after_a_sparse_column_transformer_answer_as_scikit_learn(build, churn_compiled, monkeypatch):
    monkeypatch.setattr(evaluate, "ROWS_AT_ONCE", 97)  # a big batch's slicing, on 500 rows
    # GIVEN a ColumnTransformer whose output scikit-learn keeps sparse, then scaling (by the reciprocal on a sparse
    # matrix) and a model
    prep = _prep(numeric=_scaled(StandardScaler())).set_params(sparse_threshold=1.0)
    steps = build()
    y = _income(churn_compiled.X) if isinstance(steps[-1][1], Ridge) else churn_compiled.y
    model = Pipeline([("prep", prep), *steps]).fit(churn_compiled.X, y)
    assert model.named_steps["prep"].sparse_output_
    # WHEN compiled THEN it agrees with scikit-learn within 1e-12
    assert_agrees(model, churn_compiled.schema, churn_compiled.frame)


def test_a_pipeline_without_column_transformer_on_a_dataframe_answers_as_scikit_learn(churn_compiled):
    # GIVEN nested pipelines whose first step encodes the DataFrame's category columns directly
    X = churn_compiled.X[CATEGORICAL]
    inner = Pipeline(
        [("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)), ("scale", MaxAbsScaler())]
    )
    model = Pipeline([("prep", inner), ("model", LogisticRegression())]).fit(X, churn_compiled.y)
    schema = infer_schema(X, nullable=["plan"])
    frame = served_frame(schema, churn_compiled.frame[CATEGORICAL])
    # WHEN compiled THEN the nested steps are named by their path and the answers agree
    assert compiled(model, schema).steps == ("prep/encode", "prep/scale", "model")
    assert_agrees(model, schema, frame)


def test_boolean_integer_and_none_marked_category_columns_answer_as_scikit_learn():
    # GIVEN booleans, integers and a category whose nulls were None in training (a category of its own to the
    # encoders), one-hot and ordinal encoded, or passed through to a forest
    rng = np.random.default_rng(0)
    n = 1500
    X = pd.DataFrame(
        {
            "active": rng.random(n) < 0.4,
            "visits": rng.integers(0, 5, n),
            "color": pd.Series(np.where(rng.random(n) < 0.1, None, rng.choice(["red", "blue"], n)), dtype=object),
        }
    )
    y = X["active"] ^ (X["visits"] > 2)
    schema = infer_schema(X)
    assert schema.feature("color").missing == "none"
    unseen = pd.DataFrame({"active": [True, False, True], "visits": [7, 1, 3], "color": [None, "green", "red"]})
    frame = served_frame(schema, unseen)
    one_hot = ColumnTransformer([("o", OneHotEncoder(handle_unknown="ignore"), ["active", "visits", "color"])])
    ordinal = ColumnTransformer(
        [("o", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1), ["color"])],
        remainder="passthrough",
    )
    for model in (
        Pipeline([("prep", one_hot), ("model", LogisticRegression())]),
        Pipeline([("prep", ordinal), ("model", RandomForestClassifier(n_estimators=10, random_state=0))]),
    ):
        # WHEN compiled THEN unseen integers and categories, and the None category, are scored as scikit-learn does
        assert_agrees(model.fit(X, y), schema, frame)
