"""Data-quality warnings at inference: values unlike the training data are scored with a warning, per row and in
metrics."""

from __future__ import annotations

import json

import pytest
from sklearn.linear_model import LogisticRegression

from sklambda.registry.schema import FeatureSpec, InputSchema, infer_schema, to_records
from sklambda.serving.data_quality import (
    OUT_OF_RANGE,
    UNEXPECTED_NULL,
    UNSEEN_CATEGORY,
    DataQualityChecker,
    counts,
    probe_null_tolerance,
)
from sklambda_infra import sample
from tests.support import call, load_event

SCHEMA = InputSchema(
    (
        FeatureSpec("who", "category", pii=True),
        FeatureSpec("age", "integer", minimum=18.0, maximum=84.0),
        FeatureSpec("income", "number", nullable=True, minimum=0.0, maximum=1e5),
        FeatureSpec("tenure", "integer", minimum=0.0, maximum=120.0, accepts_null=True),
        FeatureSpec("plan", "category", categories=("basic", "plus", "premium")),
    )
)
ROWS = [
    {"who": "C1", "age": 30, "income": None, "tenure": 12, "plan": "basic"},  # clean (a null where allowed)
    {"who": "C2", "age": 300, "income": -5.0, "tenure": None, "plan": "platinum"},  # everything unusual
    {"who": "C3", "age": 18, "income": 1e5, "tenure": 120, "plan": "premium"},  # on the edges: fine
]


def test_each_unusual_value_gets_a_warning_with_its_row_field_and_reason() -> None:
    # GIVEN rows with values inside, outside and on the edge of the training profile
    warnings = DataQualityChecker(SCHEMA).check_rows(ROWS)
    # THEN only row 1 has warnings, one per unusual field, in schema order, with a readable message
    assert [(w.row, w.field, w.code) for w in warnings] == [
        (1, "age", OUT_OF_RANGE),
        (1, "income", OUT_OF_RANGE),
        (1, "tenure", UNEXPECTED_NULL),
        (1, "plan", UNSEEN_CATEGORY),
    ]
    assert warnings[0].message == "300 is outside the training range [18, 84]"
    assert "'platinum' was not seen in training" in warnings[3].message
    assert counts(warnings) == {OUT_OF_RANGE: 2, UNEXPECTED_NULL: 1, UNSEEN_CATEGORY: 1}


def test_frame_and_row_checks_agree_and_counts_need_no_warning_objects() -> None:
    # GIVEN the same rows as a validated frame (the batch path)
    frame = SCHEMA.validate(ROWS)
    checker = DataQualityChecker(SCHEMA)
    # THEN the vectorized checks find the same warnings and the same counts
    assert checker.check_frame(frame) == checker.check_rows(ROWS)
    assert checker.count(frame) == counts(checker.check_rows(ROWS))


def test_pii_features_are_never_checked_because_the_card_holds_none_of_their_values() -> None:
    warnings = DataQualityChecker(SCHEMA).check_rows([{**ROWS[0], "who": "someone never seen"}])
    assert warnings == []


def test_a_null_is_refused_unless_publish_proved_the_model_scores_it() -> None:
    # GIVEN training data without nulls, a pipeline that imputes numbers and a bare model that cannot
    X, y = sample.churn_data(400, seed=2)
    schema = infer_schema(X, pii=sample.PII)
    imputing = sample.logistic_pipeline().fit(X, y)
    numeric = X[["age", "tenure_months"]]
    bare = LogisticRegression(max_iter=500).fit(numeric, y)
    # WHEN publish probes each feature with a null
    probed = probe_null_tolerance(imputing, X, schema)
    bare_probed = probe_null_tolerance(bare, numeric, infer_schema(numeric))
    # THEN the imputed features accept a null (scored with a warning), the bare model's stay refused
    assert probed.feature("tenure_months").accepts_null and probed.feature("plan").accepts_null
    assert not bare_probed.feature("age").accepts_null
    row = {**to_records(X.head(1))[0], "tenure_months": None}
    frame = probed.validate([row])
    assert imputing.predict(frame).shape == (1,)
    with pytest.raises(Exception, match="not nullable"):
        bare_probed.validate([{"age": None, "tenure_months": 3}])


def test_prediction_with_unusual_values_is_scored_and_warned_about(predict_app, published, lambda_context, capsys):
    # GIVEN the sample request with an age far outside training and an unknown plan in its second row
    body = json.loads(load_event("predict.json")["body"])
    body["instances"][1] = {**body["instances"][1], "age": 140, "plan": "platinum"}
    capsys.readouterr()
    # WHEN it is scored
    status, answer = call(predict_app, load_event("predict.json", body=body), lambda_context)
    # THEN both rows are scored, and the response lists the warnings of row 1 only
    assert status == 200 and len(answer["predictions"]) == 2
    assert [(w["row"], w["field"], w["code"]) for w in answer["warnings"]] == [
        (1, "age", "out_of_range"),
        (1, "plan", "unseen_category"),
    ]
    # AND the DataQualityWarnings metric counts them per check
    emitted = {}
    for line in capsys.readouterr().out.splitlines():
        if '"DataQualityWarnings"' in line:
            blob = json.loads(line)
            emitted[blob["check"]] = blob["DataQualityWarnings"]
    assert emitted == {"out_of_range": [1.0], "unseen_category": [1.0]}


def test_clean_prediction_has_an_empty_warning_list(predict_app, published, lambda_context):
    status, answer = call(predict_app, load_event("predict.json"), lambda_context)
    assert status == 200 and answer["warnings"] == []


def test_a_null_the_pipeline_imputes_is_scored_with_a_warning_not_refused(predict_app, published, lambda_context):
    # GIVEN the published churn pipeline (training had no null tenure_months; publish proved it imputes one)
    assert published.input_schema.feature("tenure_months").accepts_null
    body = json.loads(load_event("predict.json")["body"])
    body["instances"][0] = {**body["instances"][0], "tenure_months": None}
    # WHEN a row with a null tenure_months is sent
    status, answer = call(predict_app, load_event("predict.json", body=body), lambda_context)
    # THEN it is scored, with an unexpected_null warning naming the row and field
    assert status == 200 and len(answer["predictions"]) == 2
    assert [(w["row"], w["field"], w["code"]) for w in answer["warnings"]] == [(0, "tenure_months", "unexpected_null")]
