"""Columns the model never reads: from the fitted pipeline's structure, confirmed by its answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sklambda.publishing.unread import confirm_unread, unread_columns
from sklambda.registry.schema import infer_schema


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    n = 120
    X = pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "plan": rng.choice(["x", "y", "z"], n),
            "note": rng.choice(["p", "q"], n),
        }
    )
    return X, (X["a"] + rng.normal(size=n) > 0).astype(int).to_numpy()


def test_columns_no_transformer_selects_are_unread_with_remainder_drop(data):
    # GIVEN a pipeline whose ColumnTransformer selects a, b and plan (remainder="drop", scikit-learn's default)
    X, y = data
    prep = ColumnTransformer([("num", StandardScaler(), ["a", "b"]), ("cat", OneHotEncoder(), ["plan"])])
    model = Pipeline([("prep", prep), ("clf", LogisticRegression())]).fit(X, y)
    # WHEN its unread columns are found
    found = unread_columns(model, list(X.columns))
    # THEN id and note are, and the reason names the step and the remainder
    assert list(found) == ["id", "note"]
    assert found["id"] == "ColumnTransformer 'prep' drops it (remainder='drop')"


def test_a_transformer_set_to_drop_leaves_its_columns_unread(data):
    # GIVEN a ColumnTransformer that passes the remainder through but has a "drop" transformer for plan
    X, y = data
    prep = ColumnTransformer([("num", StandardScaler(), ["a"]), ("gone", "drop", ["plan"])], remainder="passthrough")
    model = Pipeline([("prep", prep), ("clf", LogisticRegression())]).fit(X[["a", "b", "plan"]], y)
    # THEN plan alone is unread, and why says which transformer
    assert unread_columns(model, ["a", "b", "plan"]) == {
        "plan": "ColumnTransformer 'prep' drops it (its transformer 'gone' is 'drop')"
    }


@pytest.mark.parametrize(
    "make",
    [
        lambda: Pipeline(
            [
                ("p", ColumnTransformer([("n", StandardScaler(), ["a"])], remainder="passthrough")),
                ("m", LinearRegression()),
            ]
        ),
        lambda: LinearRegression(),
        lambda: Pipeline([("s", StandardScaler()), ("m", LinearRegression())]),
    ],
    ids=["remainder passthrough", "bare estimator", "no column transformer"],
)
def test_nothing_is_claimed_unread_unless_a_column_transformer_drops_it(data, make):
    # GIVEN a model fitted on a and b that reads both, or whose structure says nothing about columns
    X, y = data
    model = make().fit(X[["a", "b"]], y)
    # THEN no column is unread
    assert unread_columns(model, ["a", "b"]) == {}


def test_nested_pipelines_column_transformers_and_feature_unions_are_followed(data):
    # GIVEN an outer ColumnTransformer passing a, b and plan to a Pipeline whose own ColumnTransformer reads only a
    # and plan, and a FeatureUnion of two ColumnTransformers that between them read b and plan
    inner = Pipeline(
        [("select", ColumnTransformer([("num", StandardScaler(), ["a"]), ("cat", OneHotEncoder(), ["plan"])]))]
    )
    nested = Pipeline(
        [("outer", ColumnTransformer([("both", inner, ["a", "b", "plan"])])), ("m", LogisticRegression())]
    )
    union = FeatureUnion(
        [
            ("n", ColumnTransformer([("b", StandardScaler(), ["b"])])),
            ("c", ColumnTransformer([("plan", OneHotEncoder(), ["plan"])])),
        ]
    )
    unioned = Pipeline([("u", union), ("m", LogisticRegression())])
    X, y = data
    columns = list(X.columns)
    # WHEN their unread columns are found
    # THEN the nested pipeline never reads b (nor id and note), and the union never reads a (nor id and note)
    found = unread_columns(nested.fit(X, y), columns)
    assert sorted(found) == ["b", "id", "note"]
    assert found["b"] == "ColumnTransformer 'outer.both.select' drops it (remainder='drop')"
    assert sorted(unread_columns(unioned.fit(X, y), columns)) == ["a", "id", "note"]


def test_confirmation_makes_the_columns_optional_only_when_answers_do_not_change(data):
    # GIVEN a pipeline that reads a, b and plan, and the schema of its training data
    X, y = data
    prep = ColumnTransformer([("num", StandardScaler(), ["a", "b"]), ("cat", OneHotEncoder(), ["plan"])])
    model = Pipeline([("prep", prep), ("clf", LogisticRegression())]).fit(X, y)
    schema = infer_schema(X, pii=["id"])
    # WHEN confirmed for the really unread columns
    relaxed = confirm_unread(model, X, schema, ["id", "note"])
    # THEN those two are optional and nothing else changed
    assert relaxed is not None
    assert relaxed.optional_names == ("id", "note")
    assert relaxed.required_names == ("a", "b", "plan")
    # AND a column the model does read is never confirmed (its absence changes the answers or cannot be scored)
    assert confirm_unread(model, X, schema, ["a"]) is None
