"""The predict function driven with API Gateway REST events from events/ against a moto registry."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import sys
import types

import pandas as pd
import pytest
import sklearn

from sklambda.errors import ConfigurationError
from sklambda.runtime_env import MANIFEST_NAME, RuntimeManifest, find_manifest
from tests.support import call, event_body, import_predict_app, load_event, store_built


def test_predict_returns_predictions_and_probabilities_per_class(predict_app, published, lambda_context):
    # GIVEN a published churn model behind the production alias
    # WHEN the sample predict event is sent
    status, body = call(predict_app, load_event("predict.json"), lambda_context)
    # THEN every row gets a label and a probability for each class that sums to one
    assert status == 200
    assert body["model_name"] == "churn" and body["model_version"] == published.version
    assert len(body["predictions"]) == 2
    assert set(body["predictions"]) <= {"yes", "no"}
    for probs in body["probabilities"]:
        assert set(probs) == {"no", "yes"}
        assert sum(probs.values()) == pytest.approx(1.0)


def test_predictions_match_the_model_called_directly(predict_app, published, logistic_model, lambda_context):
    # GIVEN the rows of the sample event
    rows = event_body("predict.json")["instances"]
    # WHEN they are scored through the handler
    _, body = call(predict_app, load_event("predict.json"), lambda_context)
    # THEN the answer equals predict_proba on the same rows
    expected = logistic_model.predict_proba(pd.DataFrame(rows))
    assert [p["yes"] for p in body["probabilities"]] == pytest.approx(expected[:, 1].tolist())
    assert body["predictions"] == logistic_model.predict(pd.DataFrame(rows)).tolist()


def test_invalid_rows_get_422_naming_each_row_and_field(predict_app, published, lambda_context):
    # GIVEN rows with a wrong type, an unknown feature and a missing one (and a null tenure_months: training had
    # none, but publish proved the pipeline imputes it, so that one is scored with a warning, not refused)
    # WHEN they are sent
    status, body = call(predict_app, load_event("predict_invalid.json"), lambda_context)
    # THEN the answer is 422 with one message per problem
    assert status == 422
    problems = {(d.get("row"), d.get("field")): d["message"] for d in body["error"]["details"]}
    assert "expected an integer" in problems[(0, "age")]
    assert (0, "tenure_months") not in problems
    assert problems[(0, "favourite_colour")] == "unknown feature"
    assert problems[(1, "plan")] == "missing feature"
    assert body["error"]["code"] == "invalid_input"


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_rejected_with_the_field_named(predict_app, published, lambda_context, token):
    # GIVEN a body whose JSON carries a non-finite number (Python's json accepts these tokens)
    row = event_body("predict.json")["instances"][0]
    raw = json.dumps({"instances": [row]}).replace('"monthly_charges": 79.5', f'"monthly_charges": {token}')
    # WHEN it is sent
    status, body = call(predict_app, load_event("predict.json", raw_body=raw), lambda_context)
    # THEN it is a 422 naming the field
    assert status == 422
    assert body["error"]["details"] == [
        {"row": 0, "field": "monthly_charges", "message": f"expected a finite number, got {float(token)}"}
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('{"instances": [', "not valid JSON"),
        ("", "empty"),
        ("[1, 2]", "must be a JSON object"),
        ('{"rows": []}', "expected shape"),
        ('{"instances": {"age": 3}}', "expected shape"),
    ],
)
def test_malformed_bodies_get_400_with_a_reason(predict_app, published, lambda_context, raw, expected):
    # GIVEN a body that is not a valid predict request
    # WHEN it is sent
    status, body = call(predict_app, load_event("predict.json", raw_body=raw), lambda_context)
    # THEN the answer is 400 and says what is wrong, never a 500
    assert status == 400
    assert expected in body["error"]["message"]


def test_empty_instances_is_a_client_error(predict_app, published, lambda_context):
    status, body = call(predict_app, load_event("predict.json", body={"instances": []}), lambda_context)
    assert status == 422
    assert "no instances" in body["error"]["message"]


def test_too_many_rows_gets_413(function_env, published, lambda_context, monkeypatch):
    # GIVEN a limit of 3 rows per request
    monkeypatch.setenv("SKLAMBDA_MAX_ROWS", "3")
    app = import_predict_app()
    row = event_body("predict.json")["instances"][0]
    # WHEN 4 rows are sent
    status, body = call(app, load_event("predict.json", body={"instances": [row] * 4}), lambda_context)
    # THEN it is refused as too large, naming the limit
    assert status == 413
    assert "limit is 3" in body["error"]["message"]


def test_body_over_the_size_limit_gets_413_before_parsing(function_env, published, lambda_context, monkeypatch):
    monkeypatch.setenv("SKLAMBDA_MAX_BODY_BYTES", "100")
    app = import_predict_app()
    status, body = call(app, load_event("predict.json", raw_body="{" + " " * 200), lambda_context)
    assert status == 413
    assert "limit is 100" in body["error"]["message"]


@pytest.mark.parametrize(
    ("path_name", "query", "fragment"),
    [
        ("nope", None, "unknown model 'nope'"),
        ("churn", {"alias": "staging"}, "has no alias 'staging'"),
        ("churn", {"version": "99"}, "has no version '99'"),
    ],
)
def test_unknown_model_alias_or_version_is_404(predict_app, published, lambda_context, path_name, query, fragment):
    event = load_event("predict.json", query=query)
    event["pathParameters"] = {"name": path_name}
    event["path"] = f"/models/{path_name}/predict"
    status, body = call(predict_app, event, lambda_context)
    assert status == 404
    assert fragment in body["error"]["message"]


def test_alias_and_version_together_is_400(predict_app, published, lambda_context):
    event = load_event("predict.json", query={"alias": "production", "version": "1"})
    status, body = call(predict_app, event, lambda_context)
    assert status == 400
    assert "not both" in body["error"]["message"]


def test_explicit_version_is_served(predict_app, published, function_env, churn_build, forest_model, lambda_context):
    # GIVEN version 1 (logistic) in production and version 2 (forest) published without an alias
    store_built(function_env, churn_build(forest_model, version="2"))
    # WHEN version 2 is asked for explicitly
    _, body = call(predict_app, load_event("predict.json", query={"version": "2"}), lambda_context)
    # THEN version 2 answers while the default stays on production
    assert body["model_version"] == "2"
    assert call(predict_app, load_event("predict.json"), lambda_context)[1]["model_version"] == "1"


def test_promote_and_rollback_take_effect_without_redeploy(
    function_env, published, churn_build, forest_model, lambda_context, monkeypatch
):
    # GIVEN a container with a zero alias TTL serving version 1
    monkeypatch.setenv("SKLAMBDA_ALIAS_TTL_SECONDS", "0")
    app = import_predict_app()
    assert call(app, load_event("predict.json"), lambda_context)[1]["model_version"] == "1"
    # WHEN version 2 is promoted, then rolled back
    store_built(function_env, churn_build(forest_model, version="2"), alias="production")
    after_promote = call(app, load_event("predict.json"), lambda_context)[1]["model_version"]
    function_env.registry.rollback("churn", "production")
    after_rollback = call(app, load_event("predict.json"), lambda_context)[1]["model_version"]
    # THEN the same warm container follows the alias both ways
    assert (after_promote, after_rollback) == ("2", "1")


def test_tampered_artifact_is_refused_with_503_and_a_metric(
    function_env, published, registry_env, lambda_context, capsys, monkeypatch
):
    # GIVEN the joblib artifact bytes changed after publishing, and a predict function serving with scikit-learn (the
    # compiled path's own artifact: tests/functional/test_compiled_serving.py)
    monkeypatch.setenv("SKLAMBDA_SERVING_RUNTIME", "scikit-learn")
    predict_app = import_predict_app()
    s3 = registry_env.s3()
    blob = s3.get_object(Bucket=registry_env.bucket, Key=published.artifact.key)["Body"].read()
    s3.put_object(Bucket=registry_env.bucket, Key=published.artifact.key, Body=blob[:-8] + b"tampered")
    # WHEN a prediction is asked for
    status, body = call(predict_app, load_event("predict.json"), lambda_context)
    # THEN the model is refused before unpickling, with a clear message and a ModelRefused metric
    assert status == 503
    assert body["error"]["code"] == "model_refused"
    assert "does not match the signed sha256" in body["error"]["message"]
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    refused = [m for m in emf if "ModelRefused" in m]
    assert refused and refused[0]["reason"] == "artifact_tampered" and refused[0]["model"] == "churn"


def test_card_edited_after_signing_is_refused(predict_app, published, registry_env, lambda_context):
    # GIVEN someone edits the card (here: inflates a metric) without re-signing
    s3 = registry_env.s3()
    key = registry_env.registry.card_key("churn", published.version)
    card = json.loads(s3.get_object(Bucket=registry_env.bucket, Key=key)["Body"].read())
    card["metrics"]["accuracy"] = 0.999
    s3.put_object(Bucket=registry_env.bucket, Key=key, Body=json.dumps(card).encode())
    # WHEN a prediction is asked for
    status, body = call(predict_app, load_event("predict.json"), lambda_context)
    # THEN the signature check fails
    assert status == 503
    assert "failed signature verification" in body["error"]["message"]


def test_model_from_another_sklearn_version_is_refused_naming_both(
    predict_app, registry_env, published, lambda_context, monkeypatch
):
    # GIVEN a version whose signed card records scikit-learn 1.0.2 (publish now refuses such an artifact, so the
    # card is re-signed by the trusted key, as a version published before that check, and before compiled artifacts,
    # would be: a compiled artifact does not depend on the runtime's scikit-learn, test_compiled_serving.py)
    versions = {**published.library_versions, "scikit-learn": "1.0.2"}
    old = dataclasses.replace(published, library_versions=versions, compiled=None)
    key = registry_env.registry.card_key("churn", published.version)
    registry_env.s3().put_object(Bucket=registry_env.bucket, Key=key, Body=registry_env.signer.sign(old).to_json())
    # WHEN it is asked to predict
    status, body = call(predict_app, load_event("predict.json"), lambda_context)
    # THEN it is refused and the message names both versions
    assert status == 503
    assert "1.0.2" in body["error"]["message"] and sklearn.__version__ in body["error"]["message"]


def test_metrics_carry_model_and_version_dimensions(predict_app, published, lambda_context, capsys):
    call(predict_app, load_event("predict.json"), lambda_context)
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    main = next(m for m in emf if "Predictions" in m)
    assert main["Predictions"] == [2.0]
    assert main["model"] == "churn" and main["version"] == "1"
    assert "PredictLatency" in main and "ModelLoadTime" in main


def test_model_info_shows_the_public_card(predict_app, published, lambda_context):
    status, body = call(predict_app, load_event("model_info.json"), lambda_context)
    assert status == 200
    assert body["aliases"] == {"production": "1"} and body["versions"] == ["1"]
    card = body["model"]
    assert card["task"] == "classification" and card["classes"] == ["no", "yes"]
    assert "baseline" not in card and "key" not in card["artifact"]
    pii = [f for f in card["input_schema"]["features"] if f["pii"]]
    assert [f["name"] for f in pii] == ["customer_id"]
    # AND it shows the permutation importance per input feature and the decision threshold, not the background
    importance = card["importance"]["features"]
    assert {f["name"] for f in importance} == set(published.input_schema.names)
    assert importance[0]["mean"] >= importance[-1]["mean"]
    assert card["decision"]["threshold"] == 0.5 and "explanation" not in card
    # AND it says what was checked: the signature, verified with the function's trusted key
    assert "signed" not in card
    assert card["signature"] == {
        "verified": True,
        "key_id": predict_app.settings.signing_key_id,
        "algorithm": "ECDSA_SHA_256",
    }


def forge_card(registry_env, version: str) -> str:
    """Rewrite the stored card after publishing (another artifact sha256, a better metric), keeping its signature."""
    s3 = registry_env.s3()
    key = registry_env.registry.card_key("churn", version)
    card = json.loads(s3.get_object(Bucket=registry_env.bucket, Key=key)["Body"].read())
    forged = "f" * 64
    card["artifact"]["sha256"] = forged
    card["metrics"]["accuracy"] = 0.999
    s3.put_object(Bucket=registry_env.bucket, Key=key, Body=json.dumps(card).encode())
    return forged


def test_model_info_of_a_card_forged_after_publishing_is_refused_like_predict(
    predict_app, published, registry_env, lambda_context, capsys
):
    # GIVEN the card was rewritten after publishing, its old signature kept
    forged = forge_card(registry_env, published.version)
    # WHEN the model info and a prediction are asked for
    status, body = call(predict_app, load_event("model_info.json"), lambda_context)
    predict_status, predict_body = call(predict_app, load_event("predict.json"), lambda_context)
    # THEN model info is the predict route's refusal (503 model_refused, metric reason bad_signature), never the card
    assert (status, predict_status) == (503, 503)
    assert body["error"]["code"] == predict_body["error"]["code"] == "model_refused"
    assert "failed signature verification" in body["error"]["message"]
    text = json.dumps(body)
    assert forged not in text and "0.999" not in text and '"signed"' not in text and '"verified"' not in text
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [m["reason"] for m in emf if "ModelRefused" in m][:1] == ["bad_signature"]


def test_health_answers_without_a_model(predict_app, lambda_context):
    status, body = call(predict_app, load_event("health.json"), lambda_context)
    assert status == 200 and body["status"] == "ok"


def test_health_reports_the_package_set_of_the_layer_it_runs_on(function_env, lambda_context, tmp_path, monkeypatch):
    # GIVEN a layer folder with its runtime manifest on sys.path, as Lambda puts /opt/python there
    manifest = RuntimeManifest(
        python="3.12",
        platform="manylinux_2_34_x86_64",
        packages={"scikit-learn": "1.9.1", "numpy": "2.4.6", "lightgbm": "4.7.0"},
        modules=("sklearn", "numpy", "lightgbm"),
    )
    manifest.write(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    app = import_predict_app()

    # WHEN /health is called
    status, body = call(app, load_event("health.json"), lambda_context)

    # THEN it names the runtime's fingerprint, python, platform and every package with its version
    assert status == 200
    assert body["runtime"] == {
        "fingerprint": manifest.fingerprint,
        "python": "3.12",
        "platform": "manylinux_2_34_x86_64",
        "packages": {"lightgbm": "4.7.0", "numpy": "2.4.6", "scikit-learn": "1.9.1"},
    }


def test_health_reads_the_manifest_once_per_container(function_env, lambda_context, tmp_path, monkeypatch):
    # GIVEN a container that answered /health with a manifest on sys.path
    RuntimeManifest(python="3.12", platform="host", packages={"numpy": "2.4.6"}, modules=("numpy",)).write(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    app = import_predict_app()
    first = call(app, load_event("health.json"), lambda_context)[1]["runtime"]

    # WHEN the file goes away and /health is called again
    (tmp_path / MANIFEST_NAME).unlink()
    second = call(app, load_event("health.json"), lambda_context)[1]["runtime"]

    # THEN the answer is the one read at first use
    assert second == first and second["packages"] == {"numpy": "2.4.6"}


def test_health_says_runtime_null_when_not_on_a_built_layer(predict_app, lambda_context):
    # GIVEN the developer's venv: no runtime manifest anywhere on sys.path
    assert find_manifest() is None

    # WHEN /health is called
    status, body = call(predict_app, load_event("health.json"), lambda_context)

    # THEN it says so plainly instead of guessing a package set
    assert status == 200 and "runtime" in body and body["runtime"] is None


def test_unknown_route_is_a_json_404(predict_app, lambda_context):
    event = load_event("health.json")
    event["path"] = event["resource"] = "/nothing/here"
    status, body = call(predict_app, event, lambda_context)
    assert status == 404
    assert body["error"]["code"] == "route_not_found"


def test_missing_configuration_fails_the_cold_start(registry_env, monkeypatch):
    # GIVEN no model bucket configured
    monkeypatch.delenv("SKLAMBDA_MODEL_BUCKET", raising=False)
    monkeypatch.setenv("SKLAMBDA_SIGNING_KEY_ID", registry_env.signing_key_id)
    # WHEN the function module is imported
    with pytest.raises(ConfigurationError, match="SKLAMBDA_MODEL_BUCKET"):
        import_predict_app()


# --- Open Inference Protocol v2 ---------------------------------------------------------------------------------
def test_v2_infer_with_one_input_per_feature(predict_app, published, lambda_context):
    status, body = call(predict_app, load_event("v2_infer.json"), lambda_context)
    assert status == 200
    assert body["id"] == "req-1" and body["model_name"] == "churn" and body["model_version"] == "1"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs["predict"]["shape"] == [2] and outputs["predict"]["datatype"] == "BYTES"
    proba = outputs["predict_proba"]
    assert proba["shape"] == [2, 2] and proba["parameters"]["classes"] == ["no", "yes"]
    assert sum(proba["data"][:2]) == pytest.approx(1.0)


def test_v2_infer_agrees_with_the_rest_route(predict_app, published, lambda_context):
    _, rest = call(predict_app, load_event("predict.json"), lambda_context)
    _, v2 = call(predict_app, load_event("v2_infer.json"), lambda_context)
    proba = next(o for o in v2["outputs"] if o["name"] == "predict_proba")["data"]
    assert proba[1::2] == pytest.approx([p["yes"] for p in rest["probabilities"]])


def test_v2_infer_with_a_single_2d_tensor_in_schema_order(predict_app, published, lambda_context):
    rows = event_body("predict.json")["instances"]
    names = [f["name"] for f in published.input_schema.to_dict()["features"]]
    request = {"inputs": [{"name": "input-0", "shape": [2, len(names)], "datatype": "BYTES",
                           "data": [r[n] for r in rows for n in names]}],
               "outputs": [{"name": "predict"}]}  # fmt: skip
    status, body = call(predict_app, load_event("v2_infer.json", body=request), lambda_context)
    assert status == 200
    assert [o["name"] for o in body["outputs"]] == ["predict"]


def test_v2_errors_use_the_protocol_error_shape(predict_app, published, lambda_context):
    request = event_body("v2_infer.json")
    request["inputs"] = [i for i in request["inputs"] if i["name"] != "age"]
    status, body = call(predict_app, load_event("v2_infer.json", body=request), lambda_context)
    assert status == 422
    assert "age" in body["error"]
    assert body["details"] == [{"field": "age", "message": "missing input for this feature"}]


def test_v2_metadata_lists_inputs_with_datatypes(predict_app, published, lambda_context):
    status, body = call(predict_app, load_event("v2_model_metadata.json"), lambda_context)
    assert status == 200 and body["platform"] == "sklearn" and body["versions"] == ["1"]
    types = {i["name"]: i["datatype"] for i in body["inputs"]}
    assert types["age"] == "INT64" and types["plan"] == "BYTES" and types["monthly_income"] == "FP64"


def test_v2_health_and_model_ready(predict_app, published, lambda_context):
    for path, resource, params in [
        ("/v2/health/live", "/v2/health/live", None),
        ("/v2/health/ready", "/v2/health/ready", None),
        ("/v2/models/churn/ready", "/v2/models/{name}/ready", {"name": "churn"}),
    ]:
        event = load_event("health.json")
        event.update(path=path, resource=resource, pathParameters=params)
        status, _ = call(predict_app, event, lambda_context)
        assert status == 200, path


def test_snapstart_hook_preloads_the_production_model(function_env, published, monkeypatch):
    # GIVEN the Lambda runtime's snapshot_restore_py module and a model listed for preloading
    hooks = []
    fake = types.ModuleType("snapshot_restore_py")
    fake.register_before_snapshot = hooks.append
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", fake)
    monkeypatch.setenv("SKLAMBDA_PRELOAD_MODELS", "churn, missing")
    # WHEN the function initialises and the runtime runs the before-snapshot hook
    app = import_predict_app()
    assert len(hooks) == 1
    hooks[0]()
    # THEN the production model is already verified and loaded; the missing one did not break the snapshot
    assert app.server().is_loaded("churn", published.version)
    assert not app.server().is_loaded("missing", "1")


def test_no_snapstart_hook_without_models_to_preload(function_env, monkeypatch):
    hooks = []
    fake = types.ModuleType("snapshot_restore_py")
    fake.register_before_snapshot = hooks.append
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", fake)
    import_predict_app()
    assert hooks == []


def test_binary_body_that_is_not_utf8_is_a_400(predict_app, published, lambda_context):
    event = load_event("predict.json", raw_body=base64.b64encode(b"\xff\xfe\x00garbage").decode())
    event["isBase64Encoded"] = True
    status, body = call(predict_app, event, lambda_context)
    assert status == 400 and "not UTF-8" in body["error"]["message"]


def test_deeply_nested_json_is_a_400_not_a_crash(predict_app, published, lambda_context):
    status, body = call(predict_app, load_event("predict.json", raw_body="[" * 100_000 + "]" * 100_000), lambda_context)
    assert status == 400 and "nested too deeply" in body["error"]["message"]


def test_an_over_long_alias_is_a_400_naming_the_parameter(predict_app, published, lambda_context):
    status, body = call(predict_app, load_event("predict.json", query={"alias": "a" * 80}), lambda_context)
    assert status == 400
    assert body["error"]["details"][0]["field"] == "alias"


def test_log_keys_of_one_request_do_not_leak_into_the_next(predict_app, published, lambda_context):
    # GIVEN a request whose logs are tagged with the model version
    stream = io.StringIO()
    handler = predict_app.logger.registered_handler
    # Assigned, not setStream(): that flushes the previous stream, which an earlier test's capture may have closed.
    previous, handler.stream = handler.stream, stream
    try:
        call(predict_app, load_event("predict_invalid.json"), lambda_context)
        assert '"model_version":"1"' in stream.getvalue()
        stream.truncate(0)
        stream.seek(0)
        # WHEN the next request fails before any model is chosen
        call(predict_app, load_event("predict.json", raw_body="{"), lambda_context)
    finally:
        handler.stream = previous
    logs = [json.loads(line) for line in stream.getvalue().splitlines()]
    # THEN its log lines carry no stale model keys
    assert logs and all("model_version" not in line for line in logs)


# --- issue 10: no 500 for a client's input --------------------------------------------------------------------------
def _raw_row_body(**raw_values: str) -> str:
    """The sample event's first row as JSON text with some values replaced by raw JSON text (numbers json.dumps
    cannot write: 2 followed by 308 zeros, 4,301-digit integers)."""
    row = {**event_body("predict.json")["instances"][0], **{name: f"<{name}>" for name in raw_values}}
    raw = json.dumps({"instances": [row]})
    for name, text in raw_values.items():
        raw = raw.replace(json.dumps(f"<{name}>"), text)
    return raw


def test_a_body_that_is_a_4301_digit_integer_is_a_400_on_both_routes(predict_app, published, lambda_context):
    # GIVEN the fuzzed body of the issue: the digit 1 followed by 4,300 zeros (over Python's integer-digit limit)
    raw = "1" + "0" * 4300
    for event in ("predict.json", "v2_infer.json"):
        # WHEN it is sent to the REST and the v2 route
        status, body = call(predict_app, load_event(event, raw_body=raw), lambda_context)
        # THEN it is a client error saying the integer is too long, never a 500
        assert status == 400, event
        message = body["error"]["message"] if event == "predict.json" else body["error"]
        assert "4301 digits is too long to read" in message


def test_the_readme_row_with_monthly_income_2e308_as_an_integer_is_a_422_naming_the_field(
    predict_app, published, lambda_context
):
    # GIVEN the README's example row with "monthly_income" set to 2 followed by 308 zeros (beyond float64)
    raw = _raw_row_body(monthly_income="2" + "0" * 308)
    # WHEN it is sent
    status, body = call(predict_app, load_event("predict.json", raw_body=raw), lambda_context)
    # THEN it is refused as out of the float range, with row and field named
    assert status == 422
    assert body["error"]["code"] == "invalid_input"
    (detail,) = body["error"]["details"]
    assert (detail["row"], detail["field"]) == (0, "monthly_income")
    assert "64-bit float range" in detail["message"] and "309 digits" in detail["message"]


@pytest.mark.parametrize(
    ("field", "raw", "expected"),
    [
        ("monthly_income", "1" + "0" * 4300, "4301 digits is too long to read"),
        ("plan", '[1, {"x": ' + "9" * 5000 + "}]", "5000 digits is too long to read"),
        ("age", str(2**63), "within the 64-bit range"),
        ("age", str(-(2**63) - 1), "within the 64-bit range"),
        ("support_calls", "1e300", "within the 64-bit range"),
        ("monthly_charges", "-" + "9" * 400, "64-bit float range"),
        ("monthly_charges", "1e400", "expected a finite number"),
        ("has_partner", "true", "expected a string category"),
        ("age", "true", "expected an integer"),
    ],
)
def test_numbers_no_feature_can_hold_are_client_errors_naming_row_and_field(
    predict_app, published, lambda_context, field, raw, expected
):
    # GIVEN a row whose value is too long to read, beyond int64 / float64, or of the wrong type (also nested)
    # WHEN it is sent
    status, body = call(predict_app, load_event("predict.json", raw_body=_raw_row_body(**{field: raw})), lambda_context)
    # THEN it is a 4xx whose details name row 0 and the field
    assert status in (400, 422)
    (detail,) = body["error"]["details"]
    assert detail["row"] == 0 and detail["field"].split(".")[0] == field
    assert expected in detail["message"]


@pytest.mark.parametrize(
    ("row_change", "field"),
    [({"plan": "\ud800"}, "plan"), ({"region": "north\udfff"}, "region"), ({"\ud800x": 1}, "\\ud800x")],
)
def test_a_lone_surrogate_in_a_value_or_a_feature_name_is_a_400_naming_it(
    predict_app, published, lambda_context, row_change, field
):
    # GIVEN a row with a lone surrogate, escaped in valid JSON, in a category value or in a feature name
    row = {**event_body("predict.json")["instances"][0], **row_change}
    raw = json.dumps({"instances": [row]})
    assert "\\ud" in raw
    # WHEN it is sent
    status, body = call(predict_app, load_event("predict.json", raw_body=raw), lambda_context)
    # THEN it is refused (it is not text UTF-8 can encode), naming row and field (printable), never scored
    assert status == 400
    assert body["error"]["code"] == "malformed_request"
    (detail,) = body["error"]["details"]
    assert (detail["row"], detail["field"]) == (0, field)
    assert "lone surrogate" in detail["message"]


def test_v2_tensor_data_that_cannot_be_read_is_refused_naming_the_input(predict_app, published, lambda_context):
    # GIVEN v2 requests whose "age" data holds a 4,301-digit integer, an int64 overflow, or a lone surrogate
    request = event_body("v2_infer.json")
    request["inputs"][1]["data"] = ["<age>", 63]
    cases = [
        ('"<age>"', 400, "4301 digits"),
        ('"<age>"', 422, "64-bit range"),
        ('"<age>"', 400, "lone surrogate"),
    ]
    values = ["1" + "0" * 4300, str(10**30), '"\\ud800"']
    for (placeholder, expected_status, fragment), value in zip(cases, values, strict=True):
        raw = json.dumps(request).replace(placeholder, value)
        # WHEN it is sent to the v2 route
        status, body = call(predict_app, load_event("v2_infer.json", raw_body=raw), lambda_context)
        # THEN the error is in the protocol's shape and names the input
        assert status == expected_status, value[:20]
        assert fragment in body["error"]
        assert body["details"][0]["field"] == "age"


def test_v2_data_nested_deeper_than_python_would_recurse_is_a_client_error(predict_app, published, lambda_context):
    # GIVEN a v2 request whose one input's data is nested 900 levels deep (json.loads still reads it)
    request = event_body("v2_infer.json")
    request["inputs"] = [{"name": "x", "shape": [1, 11], "datatype": "FP64", "data": ["<deep>"]}]
    raw = json.dumps(request).replace('"<deep>"', "[" * 900 + "1" + "]" * 900)
    # WHEN it is sent
    status, body = call(predict_app, load_event("v2_infer.json", raw_body=raw), lambda_context)
    # THEN it is a 4xx (its shape does not match), never a 500 from recursion
    assert status == 422
    assert "does not match" in body["error"]


@pytest.mark.parametrize("depth", [100_000, 5_000])
def test_bodies_nested_too_deeply_are_a_400(predict_app, published, lambda_context, depth):
    raw = '{"instances": ' + "[" * depth + "]" * depth + "}"
    status, body = call(predict_app, load_event("predict.json", raw_body=raw), lambda_context)
    assert status == 400
    assert "nested too deeply" in body["error"]["message"]


@pytest.mark.parametrize(
    ("query", "status_code"),
    [
        ({"version": "\ud800"}, 400),
        ({"alias": "prod\udc00"}, 400),
        ({"explain": "\ud800"}, 400),
        ({"alias": "x" * 5000}, 400),
    ],
)
def test_query_strings_that_cannot_name_a_version_are_client_errors(
    predict_app, published, lambda_context, query, status_code
):
    # GIVEN a query string with a lone surrogate or an over-long value
    # WHEN the sample request is sent with it
    status, body = call(predict_app, load_event("predict.json", query=query), lambda_context)
    # THEN the answer is the 4xx that names the problem
    assert status == status_code
    assert body["error"]["message"]


@pytest.mark.parametrize("name", ["\ud800", "../churn", "Churn", "a" * 500, "churn%00", " ", "ch urn", "チャーン"])
def test_a_model_name_with_odd_characters_is_a_404_naming_it(predict_app, published, lambda_context, name):
    # GIVEN a path whose model name is not one the registry allows (a lone surrogate matches no route at all)
    event = load_event("predict.json")
    event["pathParameters"] = {"name": name}
    event["path"] = f"/models/{name}/predict"
    # WHEN it is asked for a prediction
    status, body = call(predict_app, event, lambda_context)
    # THEN it is a 404 that says why, never a registry call with that name
    assert status == 404
    assert body["error"]["code"] in ("model_not_found", "route_not_found")
    assert "invalid model name" in body["error"]["message"] or "no route" in body["error"]["message"]


def test_a_body_that_is_not_utf8_text_itself_is_a_400(predict_app, published, lambda_context):
    # GIVEN an event whose body string holds a raw lone surrogate (not an escape), and a base64 body of latin-1 bytes
    row = {**event_body("predict.json")["instances"][0], "plan": "\ud800"}
    raw = json.dumps({"instances": [row]}, ensure_ascii=False)
    latin1 = base64.b64encode('{"instances": [{"plan": "caf\u00e9"}]}'.encode("latin-1")).decode()
    binary = {**load_event("predict.json"), "body": latin1, "isBase64Encoded": True}
    for event in (load_event("predict.json", raw_body=raw), binary):
        # WHEN it is sent
        status, body = call(predict_app, event, lambda_context)
        # THEN it is refused as unreadable, never a 500
        assert status == 400
        assert body["error"]["code"] == "malformed_request"
