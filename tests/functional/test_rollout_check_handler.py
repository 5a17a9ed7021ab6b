"""The rollout check function (functions/rollout_check/app.py) with events from events/, its environment from
template.yaml, and moto: captures are written as lines into the data bucket the way the capture stream delivers
them (capture/model=<name>/dt=<day>/), in the capture format with `latency_ms`, `alias` and error records.

CanaryRolledBack events are observed through an EventBridge rule on the default bus that targets an SQS queue.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType, SimpleNamespace

import boto3
import numpy as np
import pytest

from sklambda.monitoring.capture import Pseudonymizer
from sklambda.monitoring.ground_truth.store import Label, write_labels
from sklambda.monitoring.windows import capture_prefix
from sklambda.registry.schema import to_records
from sklambda.updating.rollout_check import roll_back
from sklambda_infra import sample
from tests.functional.test_drift_check_handler import metric_values
from tests.support import store_built, template_environment

ROOT = Path(__file__).resolve().parents[2]
ROLLOUT_APP = ROOT / "functions" / "rollout_check" / "app.py"
EVENTS = ROOT / "events"
DATA_BUCKET = "sklambda-data-test"
PSEUDONYMS = Pseudonymizer(b"k" * 32)


def load_event(name: str, **changes) -> dict:
    return {**copy.deepcopy(json.loads((EVENTS / name).read_text())), **changes}


def capture_lines(model, version: str, *, requests: int, errors: int, seed: int, latency_ms: float = 20.0,
                  alias: str = "production", at: datetime | None = None) -> list[str]:  # fmt: skip
    """`requests` one-row requests answered by `version` of churn through `alias` (row records with latency_ms and
    alias), `errors` of them failed (one error record each, no features), as the predict function captures them."""
    at = at or datetime.now(UTC)
    X, _ = sample.churn_data(requests, seed=seed)
    proba = model.predict_proba(X)
    rng = np.random.default_rng(seed)
    lines = []
    for i, row in enumerate(to_records(X)):
        head = {"capture": "sklambda/v1", "timestamp": at.isoformat(timespec="milliseconds"), "model": "churn",
                "version": version, "request_id": f"r{seed}-{i}"}  # fmt: skip
        if i < errors:
            lines.append({**head, "outcome": "error", "status": 500, "code": "internal", "rows": 1, "alias": alias})
            continue
        features = {**row, "customer_id": PSEUDONYMS.pseudonym(row["customer_id"])}
        lines.append(
            {
                **head,
                "row": 0,
                "features": features,
                "prediction": str(model.classes_[proba[i].argmax()]),
                "probabilities": dict(zip(map(str, model.classes_), proba[i].tolist(), strict=True)),
                "key_id": PSEUDONYMS.key_id,
                "inference_id": f"churn-{seed}-{i}",
                "latency_ms": float(latency_ms * np.exp(rng.normal(0, 0.2))),
                "alias": alias,
            }
        )
    return [json.dumps(line, separators=(",", ":")) + "\n" for line in lines]


def deliver(lines: list[str], part: str) -> None:
    """One capture object, as Firehose writes it into today's partition."""
    key = capture_prefix("churn", datetime.now(UTC).date()) + part
    boto3.client("s3").put_object(Bucket=DATA_BUCKET, Key=key, Body="".join(lines).encode())


@pytest.fixture
def rollout_env(function_env, published, churn_v1, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """churn v1 in production and v2 (the same estimator) published beside it; the function's environment as
    template.yaml sets it; CanaryRolledBack events routed to a queue."""
    boto3.client("s3").create_bucket(Bucket=DATA_BUCKET)
    store_built(function_env, replace(churn_v1, card=replace(churn_v1.card, version="2")))
    env = template_environment(
        "RolloutCheckFunction",
        refs={"DataBucket": DATA_BUCKET, "ModelBucket": function_env.bucket},
        attributes={("SigningKey", "Arn"): function_env.signing_key_id},
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sqs, events = boto3.client("sqs"), boto3.client("events")
    queue_url = sqs.create_queue(QueueName="rollout-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="rollout", EventPattern=json.dumps({"source": ["sklambda.monitoring"]}), State="ENABLED")
    events.put_targets(Rule="rollout", Targets=[{"Id": "queue", "Arn": queue_arn}])

    def delivered() -> list[dict]:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    return SimpleNamespace(registry=function_env.registry, delivered=delivered)


@pytest.fixture
def rollout_app(rollout_env) -> ModuleType:
    """A fresh import of the function, as a new Lambda container would do."""
    spec = importlib.util.spec_from_file_location("rollout_check_app", ROLLOUT_APP)
    module = importlib.util.module_from_spec(spec)
    sys.modules["rollout_check_app"] = module
    spec.loader.exec_module(module)
    return module


def test_a_failing_canary_is_rolled_back_with_an_event_and_a_report(
    rollout_app, rollout_env, logistic_model, lambda_context, capsys
):
    # GIVEN a 10 % canary of v2 that failed 15 of its 40 requests, while v1 failed 2 of 300
    rollout_env.registry.start_canary("churn", "production", "2", 10)
    deliver(capture_lines(logistic_model, "1", requests=300, errors=2, seed=1), "part-1")
    deliver(capture_lines(logistic_model, "2", requests=40, errors=15, seed=2), "part-2")
    # WHEN the schedule fires
    summary = rollout_app.handler(load_event("rollout_check_scheduled.json"), lambda_context)
    # THEN the canary is rolled back: the alias answers v1 alone again
    assert summary["rolled_back"] == ["churn/production"]
    (result,) = summary["results"]
    assert result["status"] == "rolled_back" and result["rollback"]["applied"] is True
    record = rollout_env.registry.get_alias("churn", "production")
    assert (record.version, record.canary) == ("1", None)
    # AND the verdict names the error rate, with the per-version counts
    verdict = result["verdict"]
    assert (verdict["canary"]["requests"], verdict["canary"]["errors"]) == (40, 15)
    assert verdict["stable"]["requests"] == 300 and verdict["reasons"][0]["metric"] == "error_rate"
    # AND one CanaryRolledBack event says why, with the report kept under reports/rollout/churn/
    (event,) = rollout_env.delivered()
    assert (event["source"], event["detail-type"]) == ("sklambda.monitoring", "CanaryRolledBack")
    detail = event["detail"]
    assert detail["versions"] == {"stable": "1", "canary": "2"} and detail["alias"] == "production"
    assert detail["reasons"][0]["metric"] == "error_rate"
    s3 = boto3.client("s3")
    assert detail["report"]["json"].startswith("reports/rollout/churn/production/")
    report = json.loads(s3.get_object(Bucket=DATA_BUCKET, Key=detail["report"]["json"])["Body"].read())
    assert report["status"] == "rolled_back" and report["rollback"]["applied"] is True
    html = s3.get_object(Bucket=DATA_BUCKET, Key=detail["report"]["html"])["Body"].read().decode()
    assert "rolled_back" in html and "error_rate" in html
    # AND the metrics say so, per version and per model
    out = capsys.readouterr().out
    assert metric_values(out, "CanaryRolledBack", "churn") == [1]
    assert sorted(metric_values(out, "RolloutRequests", "churn")) == [40, 300]


def test_an_on_demand_check_answers_the_verdict_of_a_canary_still_collecting(
    rollout_app, rollout_env, logistic_model, lambda_context
):
    # GIVEN a canary with a few good requests
    rollout_env.registry.start_canary("churn", "production", "2", 10, bounds={"min_requests": 100})
    deliver(capture_lines(logistic_model, "1", requests=150, errors=0, seed=3), "part-3")
    deliver(capture_lines(logistic_model, "2", requests=20, errors=0, seed=4), "part-4")
    # WHEN the retraining pipeline asks for it
    answer = rollout_app.handler(load_event("rollout_check_on_demand.json"), lambda_context)
    # THEN the answer is that alias's verdict: collecting, with the stored bounds, nothing rolled back
    assert (answer["status"], answer["stable_version"], answer["canary_version"]) == ("collecting", "1", "2")
    assert answer["verdict"]["bounds"]["min_requests"] == 100 and answer["rollback"] is None
    assert answer["report_urls"]["json"].endswith("reports/rollout/churn/production/latest.json")
    assert rollout_env.registry.get_alias("churn", "production").canary is not None
    assert rollout_env.delivered() == []


def test_a_rollback_decided_on_an_alias_that_changed_since_does_nothing(rollout_env):
    # GIVEN the alias read with its canary at 10 %, then ramped to 50 % by someone else
    rollout_env.registry.start_canary("churn", "production", "2", 10)
    evaluated = rollout_env.registry.get_alias("churn", "production")
    rollout_env.registry.start_canary("churn", "production", "2", 50)
    # WHEN the rollback decided on the first read is applied
    outcome = roll_back(rollout_env.registry, evaluated)
    # THEN nothing is rolled back, and the answer says why
    assert outcome["applied"] is False and "changed since" in outcome["message"]
    assert rollout_env.registry.get_alias("churn", "production").canary.weight == 50


def test_a_shadow_is_compared_on_the_replayed_traffic_and_its_report_written(
    rollout_app, rollout_env, logistic_model, lambda_context
):
    # GIVEN v2 shadowing production, an hour of v1's requests, half of them labeled
    rollout_env.registry.set_shadow("churn", "production", "2")
    deliver(capture_lines(logistic_model, "1", requests=400, errors=0, seed=5), "part-5")
    _, y = sample.churn_data(400, seed=5)
    labels = [Label(f"churn-5-{i}", t) for i, t in enumerate(y) if i % 2 == 0]
    write_labels(boto3.client("s3"), DATA_BUCKET, "churn", labels, arrival=datetime.now(UTC))
    # WHEN it is checked on demand
    answer = rollout_app.handler({"model": "churn"}, lambda_context)
    # THEN there is no canary verdict, and the shadow was compared on every captured row
    assert answer["status"] == "no_canary" and answer["verdict"] is None
    shadow = answer["shadow"]
    assert shadow["status"] == "compared", shadow
    assert shadow["replay"]["rows_replayed"] == 400
    # AND the same estimator agrees everywhere, reproduces every captured prediction, and would not replace v1
    assert shadow["agreement"]["rate"] == 1.0 and shadow["fidelity"]["share"] == 1.0
    quality = shadow["quality"]
    assert quality["labeled_rows"] == 200 and quality["verdict"] == "would keep the stable version: not shown better"
    # AND no pii note, as JSON or as a page: churn's pii customer_id is never read (its pseudonyms change no answer)
    assert "note" not in shadow["fidelity"]
    s3 = boto3.client("s3")
    assert shadow["report"]["json"] == "reports/shadow/churn/production/v2.json"
    html = s3.get_object(Bucket=DATA_BUCKET, Key=shadow["report"]["html"])["Body"].read().decode()
    assert "would keep the stable version" in html and "pseudonyms" not in html


def test_a_malformed_request_is_an_invalid_request_answer(rollout_app, lambda_context):
    for event in ({"model": ""}, {"model": "churn", "colour": "red"}, ["churn"]):
        answer = rollout_app.handler(event, lambda_context)
        assert answer["status"] == "invalid_request" and answer["error"]["code"] == "malformed_request", event


def test_a_canary_with_unknown_bounds_is_a_failed_answer_naming_them(rollout_app, rollout_env, lambda_context, capsys):
    # GIVEN a canary stored with a bound no version of sklambda knows
    rollout_env.registry.start_canary("churn", "production", "2", 10, bounds={"max_error_rate": 0.1})
    # WHEN it is checked
    answer = rollout_app.handler({"model": "churn", "alias": "production"}, lambda_context)
    # THEN the answer is failed, naming the bound, the canary is left as it is, and RolloutCheckFailed is counted
    assert answer["status"] == "failed" and answer["error"]["code"] == "invalid_rollout"
    assert "max_error_rate" in answer["error"]["message"]
    assert rollout_env.registry.get_alias("churn", "production").canary is not None
    assert metric_values(capsys.readouterr().out, "RolloutCheckFailed", "churn") == [1]
