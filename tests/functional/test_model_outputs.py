"""What a model gives is what the API says it gives: a non-finite prediction or probability is never a success
(REST, v2 and batch each name the row), and metadata announces only the outputs the loaded model really has.

The odd models (tests/fixtures/usercode/) are finite on every training row, so they publish through the real path;
a row with `divisor` 0, never seen in training, makes them produce inf or NaN.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import odd_models
import pandas as pd
import pytest
from odd_models import RatioRegressor, ShakyClassifier, linear_svc, ratio_data

from sklambda.batch import BatchJobFailed, ObjectRef, score_object
from sklambda.config import BatchSettings
from sklambda.publishing import build_card
from sklambda.serving.server import ModelServer
from tests.support import BuiltVersion, call, load_event, store_built

DATA = "sklambda-data-outputs"
# Rows 1 and 3 have divisor 0: amount/0 is inf (and 0/0 NaN); the classifier's probabilities are NaN there.
ROWS = [
    {"amount": 12.5, "divisor": 2},
    {"amount": 30.0, "divisor": 0},
    {"amount": 64.0, "divisor": 8},
    {"amount": 0.0, "divisor": 0},
]


@pytest.fixture(scope="module")
def data() -> SimpleNamespace:
    return ratio_data()


@pytest.fixture(scope="module")
def odd_builds(data, target_runtime) -> dict[str, BuiltVersion]:
    """Each odd model built once per module, when a test first needs it, through publish's own path (build_card:
    its checks and the parity gate); each test's registry then stores it as publish() does (publish_odd)."""
    return {}


def publish_odd(env, builds: dict[str, BuiltVersion], name: str, fit, data) -> None:
    if name not in builds:
        model, y = fit()
        # The estimators live in tests/fixtures/usercode/: shipped with the model, as a user's own module would be.
        builds[name] = BuiltVersion(*build_card(model, data.X, y, name=name, version="1", code=[odd_models.__file__]))
    store_built(env, builds[name], alias="production")


@pytest.fixture
def ratio(registry_env, odd_builds, data) -> str:
    publish_odd(registry_env, odd_builds, "ratio", lambda: (RatioRegressor().fit(data.X, data.y_reg), data.y_reg), data)
    return "ratio"


@pytest.fixture
def shaky(registry_env, odd_builds, data) -> str:
    publish_odd(
        registry_env, odd_builds, "shaky", lambda: (ShakyClassifier().fit(data.X, data.y_cls), data.y_cls), data
    )
    return "shaky"


@pytest.fixture
def svc(registry_env, odd_builds, data) -> str:
    """A LinearSVC (no predict_proba) on integer labels 0/1."""
    y = (data.y_cls == "high").astype(int).rename("high")
    publish_odd(registry_env, odd_builds, "svc", lambda: (linear_svc(SimpleNamespace(X=data.X, y_cls=y)), y), data)
    return "svc"


def rest(name: str, rows: list[dict], *, query: dict | None = None) -> dict:
    event = load_event("predict.json", body={"instances": rows}, query=query)
    event.update(path=f"/models/{name}/predict", pathParameters={"name": name})
    return event


def v2(name: str, rows: list[dict], outputs: list[str] | None = None) -> dict:
    body: dict = {
        "inputs": [
            {"name": "amount", "shape": [len(rows)], "datatype": "FP64", "data": [r["amount"] for r in rows]},
            {"name": "divisor", "shape": [len(rows)], "datatype": "INT64", "data": [r["divisor"] for r in rows]},
        ]
    }
    if outputs is not None:
        body["outputs"] = [{"name": o} for o in outputs]
    event = load_event("v2_infer.json", body=body)
    event.update(path=f"/v2/models/{name}/infer", pathParameters={"name": name})
    return event


def v2_metadata(name: str) -> dict:
    event = load_event("v2_model_metadata.json")
    event.update(path=f"/v2/models/{name}", pathParameters={"name": name})
    return event


def info(name: str) -> dict:
    event = load_event("model_info.json")
    event.update(path=f"/models/{name}", pathParameters={"name": name})
    return event


# --- non-finite outputs -------------------------------------------------------------------------------------------
def test_a_regressor_predicting_infinity_or_nan_gets_422_naming_each_row(predict_app, ratio, lambda_context):
    # GIVEN a published regressor that divides by a feature, and rows where that feature is 0
    # WHEN they are sent to the REST route
    status, body = call(predict_app, rest(ratio, ROWS), lambda_context)
    # THEN it is not a success: 422 naming rows 1 (inf) and 3 (nan), nothing about the finite rows
    assert status == 422 and body["error"]["code"] == "invalid_input"
    assert body["error"]["details"] == [
        {"row": 1, "message": "the model produced a non-finite prediction (inf) for this row"},
        {"row": 3, "message": "the model produced a non-finite prediction (nan) for this row"},
    ]


def test_the_same_regressor_scores_finite_rows_as_before(predict_app, ratio, lambda_context):
    # GIVEN only rows the model gives finite predictions for
    # WHEN they are sent
    status, body = call(predict_app, rest(ratio, [ROWS[0], ROWS[2]]), lambda_context)
    # THEN they are scored (the check refuses only non-finite outputs)
    assert status == 200 and body["predictions"] == [6.25, 8.0]


def test_a_classifier_with_a_nan_probability_gets_422_naming_the_row(predict_app, shaky, lambda_context):
    # GIVEN a classifier whose predict_proba is NaN for divisor 0
    # WHEN the rows are sent to the REST route
    status, body = call(predict_app, rest(shaky, ROWS[:3]), lambda_context)
    # THEN row 1 is named as a non-finite probability, not returned as a label with NaN (or null) probabilities
    assert status == 422
    assert body["error"]["details"] == [
        {"row": 1, "message": "the model produced a non-finite probability (nan, nan) for this row"}
    ]


@pytest.mark.parametrize("model", ["ratio", "shaky"])
def test_v2_infer_refuses_non_finite_outputs_in_the_protocol_error_shape(
    predict_app, ratio, shaky, lambda_context, model
):
    # GIVEN the same rows as Open Inference Protocol tensors
    # WHEN they are sent to the v2 route
    status, body = call(predict_app, v2(model, ROWS[:2]), lambda_context)
    # THEN it is a 422 in the protocol's shape ({"error": str, "details": [...]}) naming row 1
    assert status == 422
    assert "row 1: the model produced a non-finite" in body["error"]
    assert [d["row"] for d in body["details"]] == [1]


def test_batch_rejects_non_finite_rows_into_the_errors_file_and_counts_add_up(
    registry_env, ratio, shaky, data, lambda_context
):
    # GIVEN 40 rows for each model, every tenth (lines 2, 12, 22, 32 after the header) with divisor 0
    s3 = registry_env.s3()
    s3.create_bucket(Bucket=DATA)
    frame = data.X.iloc[:40].copy()
    frame.loc[frame.index[::10], "divisor"] = 0
    body = frame.to_csv(index=False).encode()
    server = ModelServer(registry_env.registry, registry_env.verifier)
    for model in ("ratio", "shaky"):
        key = f"incoming/{model}/day.csv"
        s3.put_object(Bucket=DATA, Key=key, Body=body)
        # WHEN the file is scored (in chunks of 16 rows)
        summary = score_object(
            ObjectRef(DATA, key, None, None, len(body)), server=server, settings=BatchSettings(chunk_rows=16), s3=s3
        )
        # THEN the job ends with a summary whose counts add up; the four rows are rejected with their reason
        assert (summary.status, summary.rows_read, summary.rows_scored, summary.rows_rejected) == (
            "succeeded",
            40,
            36,
            4,
        ), model
        errors = [json.loads(line) for line in s3.get_object(Bucket=DATA, Key=summary.errors_key)["Body"].iter_lines()]
        assert [e["line"] for e in errors] == [2, 12, 22, 32]
        assert all("the model produced a non-finite" in e["reasons"][0]["message"] for e in errors)
        scored = pd.read_csv(s3.get_object(Bucket=DATA, Key=summary.scored_key)["Body"])
        assert len(scored) == 36 and (scored["divisor"] != 0).all()
        assert not scored.drop(columns=["model_version"]).isna().any().any()


# --- outputs and capabilities announced -------------------------------------------------------------------------
def test_v2_metadata_of_a_classifier_without_predict_proba_announces_only_predict(predict_app, svc, lambda_context):
    # GIVEN a LinearSVC (no predict_proba) trained on integer labels
    # WHEN its v2 metadata is asked for, and it is asked to infer
    status, meta = call(predict_app, v2_metadata(svc), lambda_context)
    _, inferred = call(predict_app, v2(svc, ROWS[:1]), lambda_context)
    # THEN the metadata lists only predict, with the datatype infer really uses (INT64, not BYTES)
    assert status == 200
    assert meta["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [-1]}]
    assert [(o["name"], o["datatype"]) for o in inferred["outputs"]] == [("predict", "INT64")]


def test_asking_a_model_without_predict_proba_for_it_says_it_is_not_available(predict_app, svc, lambda_context):
    # WHEN the v2 route is asked for the predict_proba output of the LinearSVC
    status, body = call(predict_app, v2(svc, ROWS[:1], outputs=["predict_proba"]), lambda_context)
    # THEN it is a 422 saying the output is not available from this model, and why
    assert status == 422
    assert body["error"].startswith("output(s) not available from model svc version 1: predict_proba")
    assert body["details"] == [
        {
            "field": "predict_proba",
            "message": "not available: this model's estimator (sklearn.svm._classes.LinearSVC) has no predict_proba",
        }
    ]


def test_explaining_a_classifier_without_predict_proba_is_409_not_a_crash(predict_app, svc, lambda_context):
    # WHEN explanations are asked of the LinearSVC (its card stores a background sample)
    status, body = call(predict_app, rest(svc, ROWS[:1], query={"explain": "true"}), lambda_context)
    # THEN the answer says it cannot be explained and why
    assert status == 409 and body["error"]["code"] == "explanation_unavailable"
    assert "has no predict_proba" in body["error"]["message"]


def test_model_info_lists_what_the_loaded_model_can_give(predict_app, svc, shaky, odd_builds, lambda_context):
    # WHEN the model info of a classifier without and one with predict_proba is asked for
    _, plain = call(predict_app, info(svc), lambda_context)
    _, full = call(predict_app, info(shaky), lambda_context)
    # THEN each lists its real outputs, what scores it, decisions and explanation availability (the shaky model's
    # classifier is user code the compiled evaluator does not run; the LinearSVC is compiled where publish compiled it)
    assert {k: v for k, v in plain["model"]["capabilities"].items() if k != "runtime"} == {
        "outputs": ["predict"],
        "decisions": False,
        "explanations": False,
    }
    assert plain["model"]["capabilities"]["runtime"] == (
        "compiled" if odd_builds[svc].card.compiled_artifact else "scikit-learn"
    )
    assert full["model"]["capabilities"] == {
        "outputs": ["predict", "predict_proba"],
        "runtime": "scikit-learn",
        "decisions": True,
        "explanations": True,
    }


def test_batch_explanations_of_a_classifier_without_predict_proba_fail_before_scoring(registry_env, svc, data):
    # GIVEN a file for the LinearSVC that asks for explanation columns
    s3 = registry_env.s3()
    s3.create_bucket(Bucket=DATA)
    body = data.X.iloc[:20].to_csv(index=False).encode()
    s3.put_object(Bucket=DATA, Key="incoming/svc/x.csv", Body=body, Metadata={"explain": "true"})
    ref = ObjectRef(DATA, "incoming/svc/x.csv", None, None, len(body))
    server = ModelServer(registry_env.registry, registry_env.verifier)
    # WHEN it is scored
    with pytest.raises(BatchJobFailed) as caught:
        score_object(ref, server=server, settings=BatchSettings(chunk_rows=16), s3=s3)
    # THEN the job fails saying why (not explanation columns that claim to attribute the prediction)
    summary = caught.value.summary
    assert summary.failure_reason == "explain_unavailable" and "has no predict_proba" in summary.report
    assert summary.rows_scored == 0
