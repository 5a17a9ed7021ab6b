"""What the compiled evaluator cannot reproduce exactly is refused at compile time, naming the step and why."""

from __future__ import annotations

import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC

from sklambda.compiled.compile import NotCompilable, compile_model
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
