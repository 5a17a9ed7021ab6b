"""The predict function on an alias with a canary: rows routed per caller, sticky, each answered and captured by its
version, an error record for a version that failed, and the v2 route answering a whole request with one version."""

from __future__ import annotations

import json
from types import SimpleNamespace

import boto3
import pandas as pd
import pytest

from sklambda import config
from sklambda.monitoring.capture import CAPTURE_MARKER, create_key_ciphertext
from tests.support import BuiltVersion, as_version, call, event_body, import_predict_app, load_event, store_built


@pytest.fixture
def churn_v2(churn_v1, forest_model) -> BuiltVersion:
    """Version 2 of churn: version 1's card around the forest pipeline (so its answers differ from version 1's)."""
    return as_version(churn_v1, "2", forest_model)


@pytest.fixture
def canary_app(function_env, published, churn_v2, monkeypatch):
    """churn 1 in production with version 2 as a 50 % canary keyed by customer_id; capture on for every request."""
    store_built(function_env, churn_v2)
    function_env.registry.start_canary("churn", "production", "2", 50, key="customer_id")
    kms_key = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    monkeypatch.setenv(config.PSEUDONYM_KEY_CIPHERTEXT, create_key_ciphertext(kms_key))
    return import_predict_app()


def rows_of(churn: SimpleNamespace, n: int) -> list[dict]:
    rows = json.loads(churn.X_holdout.head(n).to_json(orient="records"))
    return [{**row, "customer_id": f"C{i:05d}"} for i, row in enumerate(rows)]


def captured(out: str) -> list[dict]:
    lines = []
    for line in out.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("capture") == CAPTURE_MARKER:
            lines.append(record)
    return lines


def predictions_per_version(out: str) -> dict[str, float]:
    """The Predictions metric of the function's EMF lines, summed per `version` dimension."""
    found: dict[str, float] = {}
    for line in out.splitlines():
        try:
            blob = json.loads(line)
        except ValueError:
            continue
        if isinstance(blob, dict) and "_aws" in blob and "Predictions" in blob:
            value = blob["Predictions"]
            found[blob["version"]] = found.get(blob["version"], 0) + (sum(value) if isinstance(value, list) else value)
    return found


def test_rows_are_routed_per_customer_answered_by_their_version_and_captured_with_it(
    canary_app, churn, logistic_model, forest_model, lambda_context, capsys
):
    # GIVEN 16 rows of 16 customers
    rows = rows_of(churn, 16)
    capsys.readouterr()
    # WHEN they are scored through the alias with a 50 % canary
    status, body = call(canary_app, load_event("predict.json", body={"instances": rows}), lambda_context)
    # THEN each row names the version that answered it, both versions answered, and model_version does not pretend one
    assert status == 200
    versions = body["model_versions"]
    assert len(versions) == 16 and set(versions) == {"1", "2"} and body["model_version"] is None
    # AND each row's answer is its own version's model's
    frame = pd.DataFrame(rows).reindex(columns=churn.X.columns)
    expected = {"1": logistic_model.predict_proba(frame)[:, 1], "2": forest_model.predict_proba(frame)[:, 1]}
    assert [p["yes"] for p in body["probabilities"]] == pytest.approx([expected[v][i] for i, v in enumerate(versions)])
    # AND the captured rows name the same version per row, with the alias and the scoring time
    out = capsys.readouterr().out
    records = sorted(captured(out), key=lambda r: r["row"])
    assert [r["version"] for r in records] == versions
    assert {r["alias"] for r in records} == {"production"} and all(r["latency_ms"] > 0 for r in records)
    assert [r["inference_id"] for r in records] == body["inference_ids"]
    # AND each version's predictions are counted under its own version dimension
    assert predictions_per_version(out) == {v: versions.count(v) for v in ("1", "2")}
    # WHEN the same customers come back in another order and one at a time
    again = {}
    for i in (15, 3, 0):
        _, one = call(canary_app, load_event("predict.json", body={"instances": [rows[i]]}), lambda_context)
        again[i] = (one["model_version"], one["model_versions"])
    # THEN each keeps its version (sticky), and a one-row answer names it in model_version too
    assert again == {i: (versions[i], [versions[i]]) for i in (15, 3, 0)}


def test_an_explicit_version_bypasses_the_canary_and_the_answer_is_unchanged(canary_app, churn, lambda_context):
    # GIVEN the alias with a canary WHEN version 1 is asked for by version
    event = load_event("predict.json", body={"instances": rows_of(churn, 8)}, query={"version": "1"})
    status, body = call(canary_app, event, lambda_context)
    # THEN version 1 answers every row and the answer has no per-row versions
    assert status == 200 and body["model_version"] == "1" and "model_versions" not in body
    # AND the model's description shows the stable version's card with the canary as this container routes it
    _, info = call(canary_app, load_event("model_info.json"), lambda_context)
    assert info["model"]["version"] == "1"
    assert info["canary"] == {"version": "2", "weight": 50.0, "key": "customer_id"}
    _, info = call(canary_app, load_event("model_info.json", query={"version": "2"}), lambda_context)
    assert info["model"]["version"] == "2" and "canary" not in info


def test_rows_one_version_refuses_are_named_in_the_request_and_that_version_writes_an_error_record(
    canary_app, churn, lambda_context, capsys
):
    # GIVEN 16 customers' rows, of which row 5 has a wrong type
    rows = rows_of(churn, 16)
    _, body = call(canary_app, load_event("predict.json", body={"instances": rows}), lambda_context)
    version_of_5 = body["model_versions"][5]
    rows[5] = {**rows[5], "age": "old"}
    capsys.readouterr()
    # WHEN they are sent
    status, body = call(canary_app, load_event("predict.json", body={"instances": rows}), lambda_context)
    # THEN the 422 names row 5 of the request (not its place among its version's rows)
    assert status == 422
    assert [(d["row"], d["field"]) for d in body["error"]["details"]] == [(5, "age")]
    # AND the version that refused it writes one error record (its rows counted, no values), and no row is captured
    lines = captured(capsys.readouterr().out)
    assert [(r["outcome"], r["version"], r["status"], r["code"], r["alias"]) for r in lines] == [
        ("error", version_of_5, 422, "invalid_input", "production")
    ]
    assert lines[0]["rows"] == body_rows_of(version_of_5, rows, canary_app) and "features" not in lines[0]
    # AND a request without rows is the usual 422
    status, body = call(canary_app, load_event("predict.json", body={"instances": []}), lambda_context)
    assert status == 422 and "no instances" in body["error"]["message"]


def body_rows_of(version: str, rows: list[dict], app) -> int:
    """How many of `rows` the canary routes to `version` (the routing rule itself, read from the registry)."""
    from sklambda.serving import routing

    record = app.server().registry.get_alias("churn", "production")
    ids = [f"x-{i}" for i in range(len(rows))]
    return routing.route_rows(record, rows, ids).count(version)


def test_the_v2_route_answers_a_whole_request_with_the_version_of_its_inference_id(canary_app, lambda_context):
    # GIVEN a v2 request carrying the caller's inference id
    request = event_body("v2_infer.json")
    answers = {}
    for caller in ("order-1", "order-2", "order-3", "order-4", "order-5", "order-6"):
        request["parameters"] = {"inference_id": caller}
        # WHEN it is sent twice
        first = call(canary_app, load_event("v2_infer.json", body=request), lambda_context)[1]["model_version"]
        second = call(canary_app, load_event("v2_infer.json", body=request), lambda_context)[1]["model_version"]
        answers[caller] = (first, second)
    # THEN one version answers the request, the same each time, the one the canary's rule gives for that id
    record = canary_app.server().registry.get_alias("churn", "production")
    assert answers == {caller: (record.route(caller),) * 2 for caller in answers}
    assert {first for first, _ in answers.values()} == {"1", "2"}


def test_the_alias_record_with_its_canary_is_read_once_per_ttl(function_env, published, churn_v1):
    # GIVEN a model server with a 60 s alias TTL on a fake clock, which has read production (no canary yet)
    from sklambda.serving.server import ModelServer

    now = [0.0]
    server = ModelServer(function_env.registry, function_env.verifier, alias_ttl_seconds=60, clock=lambda: now[0])
    assert server.alias_record("churn", "production").canary is None
    store_built(function_env, as_version(churn_v1, "2"))
    function_env.registry.start_canary("churn", "production", "2", 10)
    reads = []
    get_alias = function_env.registry.get_alias
    function_env.registry.get_alias = lambda *a: reads.append(a) or get_alias(*a)
    # WHEN it is asked again within the TTL, then after it
    within = [server.alias_record("churn", "production").canary for _ in range(100)]
    now[0] = 61.0
    after = server.alias_record("churn", "production").canary
    # THEN the registry is not read within the TTL, and once after it, when the canary appears
    assert within == [None] * 100 and after.version == "2" and len(reads) == 1
