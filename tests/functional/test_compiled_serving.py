"""The compiled serving path (sklambda.compiled): publish compiles what the parity gate proves agrees with the
estimator, the predict function serves it without scikit-learn, scipy or pandas, and anything else is served by
scikit-learn as before, with the card saying why."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline

from sklambda.compiled import compile as compile_module
from sklambda.compiled import program as program_module
from sklambda_infra import sample
from tests.support import (
    BuiltVersion,
    build_churn,
    call,
    event_body,
    import_predict_app,
    load_event,
    store_built,
)

ROOT = Path(__file__).resolve().parents[2]


def _for_model(event: dict, name: str) -> dict:
    """The sample event `event` addressed to model `name` instead of churn."""
    event["path"] = event["path"].replace("/models/churn", f"/models/{name}")
    event["requestContext"]["path"] = event["requestContext"]["path"].replace("/models/churn", f"/models/{name}")
    event["pathParameters"] = {**(event.get("pathParameters") or {}), "name": name}
    return event


def _model_info(app, context, name: str = "churn") -> dict:
    status, body = call(app, _for_model(load_event("model_info.json"), name), context)
    assert status == 200, body
    return body["model"]


def test_a_compilable_pipeline_is_published_with_its_compiled_artifact_and_the_agreement(churn_v1):
    # GIVEN churn's logistic pipeline (imputer, scaler, one-hot encoder, logistic regression), built as publish does
    section = churn_v1.card.compiled
    # THEN the card names the compiled artifact, pinned by its sha256, and what the parity gate measured
    assert section["used"] is True, section
    assert hashlib.sha256(churn_v1.compiled).hexdigest() == section["artifact"]["sha256"]
    assert len(churn_v1.compiled) == section["artifact"]["size"]
    agreement = section["agreement"]
    assert agreement["rows"] >= 100 and agreement["routes"] == ["rest", "v2"]
    assert agreement["class_flips"] == 0 and agreement["max_abs_difference"] <= 1e-6


def test_the_compiled_path_answers_as_the_scikit_learn_path(function_env, published, lambda_context, monkeypatch):
    # GIVEN the published churn model, served by the compiled evaluator and, in another container, by scikit-learn
    compiled_app = import_predict_app()
    monkeypatch.setenv("SKLAMBDA_SERVING_RUNTIME", "scikit-learn")
    sklearn_app = import_predict_app()
    event = load_event("predict.json")
    # WHEN the same rows are scored by both
    status_c, compiled = call(compiled_app, event, lambda_context)
    status_s, reference = call(sklearn_app, load_event("predict.json"), lambda_context)
    # THEN both answer, with the same classes and probabilities within 1e-6, and each says what scored it
    assert status_c == status_s == 200
    assert compiled["predictions"] == reference["predictions"]
    for got, want in zip(compiled["probabilities"], reference["probabilities"], strict=True):
        assert got == pytest.approx(want, abs=1e-6)
    assert _model_info(compiled_app, lambda_context)["capabilities"]["runtime"] == "compiled"
    assert _model_info(sklearn_app, lambda_context)["capabilities"]["runtime"] == "scikit-learn"


def test_a_pipeline_the_evaluator_does_not_support_is_served_by_scikit_learn_and_the_card_says_why(
    churn, churn_build, registry_env, predict_app, lambda_context
):
    # GIVEN a pipeline whose estimator the compiled evaluator does not support (k nearest neighbours)
    model = Pipeline([("prep", sample.preprocessor()), ("model", KNeighborsClassifier())]).fit(churn.X, churn.y)
    built = churn_build(model, name="knn")
    # THEN publish still succeeds, without a compiled artifact, and the card names the step and why
    assert built.compiled is None
    assert built.card.compiled["used"] is False
    assert "KNeighborsClassifier" in built.card.compiled["reason"]
    # AND the version is served by scikit-learn
    store_built(registry_env, built, alias="production")
    status, body = call(predict_app, _for_model(load_event("predict.json"), "knn"), lambda_context)
    assert status == 200 and len(body["predictions"]) == len(event_body("predict.json")["instances"])
    assert _model_info(predict_app, lambda_context, "knn")["capabilities"]["runtime"] == "scikit-learn"


def test_a_compiled_program_that_disagrees_with_the_estimator_is_not_used(churn, logistic_model, monkeypatch):
    # GIVEN a compiler that compiles another model than the one published (a regularized refit: other probabilities)
    other = sample.logistic_pipeline().set_params(model__C=0.01).fit(churn.X, churn.y)
    compile_model = compile_module.compile_model
    monkeypatch.setattr(compile_module, "compile_model", lambda model, schema: compile_model(other, schema))
    # WHEN the model is built as publish builds it
    built = build_churn(churn, logistic_model)
    # THEN the parity gate in the target runtime finds the difference: no compiled artifact, and the card says why
    assert built.compiled is None
    assert built.card.compiled["used"] is False
    reason = built.card.compiled["reason"]
    assert reason.startswith("the compiled evaluator") and "differ" in reason and "row" in reason


def test_a_tampered_compiled_artifact_is_refused_before_it_is_read(
    predict_app, published, registry_env, lambda_context, monkeypatch
):
    # GIVEN the compiled artifact replaced by other bytes of the same size
    ref = published.compiled_artifact
    s3 = registry_env.s3()
    blob = s3.get_object(Bucket=registry_env.bucket, Key=ref.key)["Body"].read()
    s3.put_object(Bucket=registry_env.bucket, Key=ref.key, Body=bytes(reversed(blob)))
    reads = []
    original = program_module.CompiledProgram.from_bytes
    monkeypatch.setattr(
        program_module.CompiledProgram, "from_bytes", classmethod(lambda cls, b: reads.append(b) or original(b))
    )
    # WHEN a prediction is asked of it
    status, body = call(predict_app, load_event("predict.json"), lambda_context)
    # THEN it is refused as a tampered joblib artifact is (503, model_refused), and the bytes were never read
    assert status == 503 and body["error"]["code"] == "model_refused"
    assert "compiled artifact" in body["error"]["message"] and "sha256" in body["error"]["message"]
    assert reads == []


def test_a_compiled_version_does_not_depend_on_the_runtimes_scikit_learn_but_its_explanations_do(
    predict_app, published, registry_env, lambda_context
):
    # GIVEN a compiled version whose card records another scikit-learn than the runtime's (re-signed by the trusted key)
    versions = {**published.library_versions, "scikit-learn": "1.0.2"}
    old = dataclasses.replace(published, library_versions=versions)
    key = registry_env.registry.card_key("churn", published.version)
    registry_env.s3().put_object(Bucket=registry_env.bucket, Key=key, Body=registry_env.signer.sign(old).to_json())
    # WHEN it is asked to predict, then to explain
    status, body = call(predict_app, load_event("predict.json"), lambda_context)
    explained, why = call(predict_app, load_event("predict.json", query={"explain": "true"}), lambda_context)
    # THEN the compiled evaluator answers (it repeats the arithmetic the parity gate proved at publish), while the
    # explanation, which needs the unpickled estimator, is refused naming both versions
    assert status == 200 and len(body["predictions"]) == 2
    assert explained == 503 and "1.0.2" in why["error"]["message"]


def test_explanations_on_the_compiled_path_are_the_scikit_learn_paths(
    function_env, published, lambda_context, monkeypatch
):
    # GIVEN the same model served by the compiled evaluator and by scikit-learn
    compiled_app = import_predict_app()
    monkeypatch.setenv("SKLAMBDA_SERVING_RUNTIME", "scikit-learn")
    sklearn_app = import_predict_app()
    query = {"explain": "true"}
    # WHEN explanations are asked of both
    status_c, compiled = call(compiled_app, load_event("predict.json", query=query), lambda_context)
    status_s, reference = call(sklearn_app, load_event("predict.json", query=query), lambda_context)
    # THEN the compiled path explains (the estimator loaded, verified, on first use) exactly as scikit-learn's
    assert status_c == status_s == 200
    assert compiled["explanations"] == reference["explanations"]


# The predict function in a fresh interpreter, its registry in moto in that process: after a compiled model answered,
# which of the heavy packages were imported.
CHILD = textwrap.dedent(
    """
    import json, os, sys
    from types import SimpleNamespace
    from moto import mock_aws
    with mock_aws():
        import boto3
        from sklambda.registry.card import ModelCard
        from sklambda.registry.signing import CardSigner
        from sklambda.registry.store import Registry
        spec = json.load(open(sys.argv[1]))
        boto3.client("s3").create_bucket(Bucket=spec["bucket"])
        key = boto3.client("kms").create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["KeyId"]
        os.environ.update(SKLAMBDA_MODEL_BUCKET=spec["bucket"], SKLAMBDA_SIGNING_KEY_ID=key)
        card = CardSigner(key).sign(ModelCard.from_dict(spec["card"]))
        registry = Registry(spec["bucket"])
        registry.put_version(card, open(spec["artifact"], "rb").read(), {}, open(spec["compiled"], "rb").read())
        registry.set_alias(card.name, "production", card.version)
        sys.path.insert(0, spec["function"])
        import app
        context = SimpleNamespace(function_name="predict", function_version="1", memory_limit_in_mb=1024,
            invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:predict",
            aws_request_id="r", get_remaining_time_in_millis=lambda: 30000)
        response = app.handler(json.load(open(spec["event"])), context)
    heavy = sorted(m for m in ("sklearn", "scipy", "pandas", "joblib") if m in sys.modules)
    print(json.dumps({"status": response["statusCode"], "body": json.loads(response["body"]), "imported": heavy}))
    """
)


def test_a_compiled_model_is_served_without_importing_scikit_learn_scipy_or_pandas(churn_v1, tmp_path):
    # GIVEN churn version 1 with its compiled artifact, and a fresh interpreter with the predict function
    built: BuiltVersion = churn_v1
    (tmp_path / "artifact").write_bytes(built.blob)
    (tmp_path / "compiled").write_bytes(built.compiled)
    (tmp_path / "event.json").write_text(json.dumps(load_event("predict.json")))
    spec = {
        "bucket": "sklambda-models-child",
        "card": dataclasses.replace(built.card, signature=None).to_dict(include_signature=False),
        "artifact": str(tmp_path / "artifact"),
        "compiled": str(tmp_path / "compiled"),
        "event": str(tmp_path / "event.json"),
        "function": str(ROOT / "functions" / "predict"),
    }
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    env = {
        "PATH": "/usr/bin:/bin",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "POWERTOOLS_SERVICE_NAME": "sklambda",
        "POWERTOOLS_METRICS_NAMESPACE": "sklambda",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }
    # WHEN it answers a prediction
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "spec.json")], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    # THEN it answered, and scikit-learn, scipy, pandas and joblib were never imported
    assert answer["status"] == 200, answer["body"]
    assert answer["imported"] == []


@pytest.mark.parametrize(("feature", "value"), [("monthly_charges", -30000), ("tenure_months", 10**9)])
def test_a_row_far_beyond_training_is_answered_on_the_compiled_path_as_scikit_learn_answers_it(
    function_env, published, lambda_context, monkeypatch, capsys, feature, value
):
    # GIVEN the churn model on both paths and a row whose decision function is far below -709 or above 709 (the values
    # a new user sent: math.exp overflowed there and the compiled path answered 500)
    compiled_app = import_predict_app()
    monkeypatch.setenv("SKLAMBDA_SERVING_RUNTIME", "scikit-learn")
    sklearn_app = import_predict_app()
    rows = event_body("predict.json")["instances"]
    rows[0] = {**rows[0], feature: value}
    # WHEN both score it
    status_c, compiled = call(compiled_app, load_event("predict.json", body={"instances": rows}), lambda_context)
    fell_back = "CompiledFallbacks" in capsys.readouterr().out
    status_s, reference = call(sklearn_app, load_event("predict.json", body={"instances": rows}), lambda_context)
    # THEN both answer 200 with the same saturated probabilities and an out-of-range warning, the compiled evaluator
    # itself answering (no fallback to scikit-learn)
    assert status_c == status_s == 200, compiled
    assert not fell_back
    assert compiled["probabilities"] == reference["probabilities"]
    assert compiled["predictions"] == reference["predictions"]
    assert {w["code"] for w in compiled["warnings"]} == {"out_of_range"}


@pytest.mark.parametrize("error", [ArithmeticError, ValueError, KeyError])
def test_an_evaluator_failure_is_answered_by_scikit_learn_and_counted(
    predict_app, published, lambda_context, monkeypatch, capsys, error
):
    # GIVEN a compiled evaluator that fails in a way the parity gate never met: any error but its two refusals of the
    # input (UnknownCategory, InvalidModelInput), a ValueError included
    from sklambda.compiled.evaluate import CompiledModel

    def broken(self, columns):
        raise error("an evaluator bug")

    monkeypatch.setattr(CompiledModel, "predict_and_proba", broken)
    # WHEN a prediction is asked for
    status, body = call(predict_app, load_event("predict.json"), lambda_context)
    # THEN the estimator answers (verified and unpickled on the spot), never a 500, and the fallback is counted
    assert status == 200 and len(body["predictions"]) == 2
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any("CompiledFallbacks" in m and m["model"] == "churn" for m in emf)
