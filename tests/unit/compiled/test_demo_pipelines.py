"""The demo's two pipelines (sklambda_infra.sample) compiled: the same answers as scikit-learn, exactly."""

from __future__ import annotations

import numpy as np

from sklambda.compiled import evaluate
from sklambda_infra import sample
from tests.unit.compiled.helpers import assert_agrees, columns_of, compiled


def test_logistic_pipeline_answers_as_scikit_learn(churn_compiled):
    # GIVEN the demo's logistic pipeline (imputer, scaler, one-hot encoder, logistic regression)
    model = sample.logistic_pipeline().fit(churn_compiled.X, churn_compiled.y)
    # WHEN it is compiled and scores unseen rows with nulls and unknown categories, all at once and one alone
    # THEN probabilities agree within 1e-12 and classes exactly
    worst = assert_agrees(model, churn_compiled.schema, churn_compiled.frame)
    assert worst <= 1e-12, f"largest difference {worst:.3g}"


def test_forest_pipeline_answers_as_scikit_learn(churn_compiled):
    # GIVEN the demo's forest pipeline with 20 trees of depth 12
    model = sample.forest_pipeline(n_estimators=20).fit(churn_compiled.X, churn_compiled.y)
    # WHEN compiled and scoring the unseen rows, THEN it agrees within 1e-12 and classes exactly
    worst = assert_agrees(model, churn_compiled.schema, churn_compiled.frame)
    assert worst <= 1e-12, f"largest difference {worst:.3g}"


def test_demo_forest_of_100_trees_answers_as_scikit_learn(churn_compiled):
    # GIVEN the demo's forest as served (100 trees)
    model = sample.forest_pipeline(n_estimators=100).fit(churn_compiled.X, churn_compiled.y)
    # WHEN compiled, THEN it agrees with scikit-learn on every unseen row
    worst = assert_agrees(model, churn_compiled.schema, churn_compiled.frame)
    assert worst <= 1e-12, f"largest difference {worst:.3g}"


def test_compiled_model_names_its_steps_and_classes(churn_compiled):
    # GIVEN the compiled logistic pipeline
    model = sample.logistic_pipeline().fit(churn_compiled.X, churn_compiled.y)
    evaluator = compiled(model, churn_compiled.schema)
    # THEN the card can show its steps and classes, and labels come back as the fitted classes_
    assert evaluator.steps == ("prep", "model")
    assert evaluator.classes == ["no", "yes"] and evaluator.has_proba
    labels = evaluator.predict(columns_of(churn_compiled.frame))
    assert set(labels.tolist()) <= {"no", "yes"} and labels.dtype == np.dtype(object)


def test_rows_walked_through_the_trees_in_slices_answer_as_all_at_once(churn_compiled, monkeypatch):
    # GIVEN the forest pipeline, and the evaluator told to walk the trees 37 rows at a time (a big batch's slicing)
    model = sample.forest_pipeline(n_estimators=20).fit(churn_compiled.X, churn_compiled.y)
    monkeypatch.setattr(evaluate, "ROWS_AT_ONCE", 37)
    # WHEN the 500 unseen rows are scored THEN they agree with scikit-learn as before
    assert_agrees(model, churn_compiled.schema, churn_compiled.frame)


def test_scores_far_beyond_the_training_range_answer_as_scikit_learn(churn_compiled):
    # GIVEN the demo's logistic pipeline and unseen rows whose numbers are pushed far beyond anything in training, so
    # that the decision function reaches hundreds of thousands in both directions (math.exp overflows past ~709.78,
    # where scipy's expit, with C's exp, gives exactly 0.0 or 1.0)
    model = sample.logistic_pipeline().fit(churn_compiled.X, churn_compiled.y)
    frame = churn_compiled.frame.copy()
    numbers = [c for c in frame if frame[c].dtype.kind == "f"]
    for i, column in enumerate(numbers):
        frame.loc[i * 40 : i * 40 + 19, column] = -1e9
        frame.loc[i * 40 + 20 : i * 40 + 39, column] = 1e9
    proba = model.predict_proba(frame)
    assert proba.min() == 0.0 and proba.max() == 1.0  # the rows reach both saturated ends
    # WHEN compiled and scoring them, THEN it agrees with scikit-learn exactly (the served answer is never an error)
    worst = assert_agrees(model, churn_compiled.schema, frame)
    assert worst == 0.0, f"largest difference {worst:.3g}"
