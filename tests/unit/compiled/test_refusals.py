"""What the compiled evaluator cannot reproduce exactly is refused at compile time, naming the step and why."""

from __future__ import annotations

import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.svm import SVC

from sklambda.compiled.compile import NotCompilable, compile_model
from sklambda.registry.schema import infer_schema
from sklambda_infra import sample


def _with(model, churn):
    return Pipeline([("prep", sample.preprocessor()), ("model", model)]).fit(churn.X, churn.y)


def test_an_unsupported_estimator_is_named(churn_compiled):
    # GIVEN the demo preprocessing with an SVC WHEN compiled THEN NotCompilable names the step and the class
    model = _with(SVC(), churn_compiled)
    with pytest.raises(NotCompilable, match=r"step 'model' \(sklearn.svm.SVC\) is not supported"):
        compile_model(model, churn_compiled.schema)


def test_infrequent_categories_are_refused(churn_compiled):
    # GIVEN a one-hot encoder that groups infrequent categories
    encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=300)
    prep = ColumnTransformer([("num", StandardScaler(), ["age", "tenure_months"]), ("cat", encoder, ["region"])])
    model = Pipeline([("prep", prep), ("model", LogisticRegression())]).fit(churn_compiled.X, churn_compiled.y)
    # WHEN compiled THEN the refusal names the nested step and the reason
    with pytest.raises(NotCompilable, match=r"'prep/cat' \(sklearn.preprocessing.OneHotEncoder\) groups infrequent"):
        compile_model(model, churn_compiled.schema)


def test_a_category_column_passed_through_unencoded_is_refused(churn_compiled):
    # GIVEN a ColumnTransformer passing a category column through to the estimator (fitted alone: no model takes it)
    prep = ColumnTransformer([("num", StandardScaler(), ["age"]), ("cat", "passthrough", ["plan"])])
    model = Pipeline([("prep", prep), ("model", SVC())])
    prep.fit(churn_compiled.X)
    # WHEN compiled THEN the passthrough of a category is named
    with pytest.raises(NotCompilable, match=r"prep/cat.*category column"):
        compile_model(model, churn_compiled.schema)


def test_a_subclass_of_a_supported_estimator_is_refused(churn_compiled):
    # GIVEN a subclass of LogisticRegression (it may override predict_proba)
    class Tuned(LogisticRegression):
        pass

    model = _with(Tuned(max_iter=1000), churn_compiled)
    # WHEN compiled THEN it is refused by name
    with pytest.raises(NotCompilable, match=r"step 'model' \(.*Tuned\) is not supported"):
        compile_model(model, churn_compiled.schema)


def test_hist_gradient_boosting_with_categorical_splits_is_refused(churn_compiled):
    # GIVEN a HistGradientBoostingClassifier told that an encoded column is categorical
    prep = ColumnTransformer([("cat", OrdinalEncoder(), ["plan"]), ("num", "passthrough", ["age"])])
    model = Pipeline([("prep", prep), ("model", HistGradientBoostingClassifier(max_iter=5, categorical_features=[0]))])
    model.fit(churn_compiled.X, churn_compiled.y)
    # WHEN compiled THEN it is refused: its bitset splits are not reproduced
    with pytest.raises(
        NotCompilable, match=r"step 'model' \(sklearn.ensemble.HistGradientBoostingClassifier\) has categ"
    ):
        compile_model(model, churn_compiled.schema)


def test_an_estimator_fitted_without_column_names_is_refused(churn_compiled):
    # GIVEN a forest fitted on a bare array (the evaluator maps columns by name)
    X = churn_compiled.X[list(sample.NUMERIC)].fillna(0.0)
    model = RandomForestClassifier(n_estimators=2).fit(X.to_numpy(), churn_compiled.y)
    # WHEN compiled THEN the refusal says why
    with pytest.raises(NotCompilable, match=r"'RandomForestClassifier' .* fitted without column names"):
        compile_model(model, churn_compiled.schema)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (HistGradientBoostingRegressor(loss="poisson", max_iter=3), r"loss 'poisson'.*not the identity"),
        (GradientBoostingRegressor(init=Ridge(), n_estimators=3), r"init estimator sklearn.linear_model.Ridge"),
    ],
    ids=["log-link-loss", "custom-init"],
)
def test_boosting_outside_what_is_reproduced_is_refused(model, message, churn_compiled):
    # GIVEN boosting whose answer passes through a link or an init estimator the evaluator does not reproduce
    X = churn_compiled.X[list(sample.NUMERIC)].fillna(0.0)
    model.fit(X, X["support_calls"] + 1)
    # WHEN compiled THEN it is refused, saying why
    with pytest.raises(NotCompilable, match=message):
        compile_model(model, infer_schema(X))
