"""The model-quality check function (functions/quality_check/app.py) with events from events/, its environment from
template.yaml, and moto.

PerformanceDegraded events are observed through an EventBridge rule on the default bus that targets an SQS queue
(moto delivers put_events to SQS targets).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType, SimpleNamespace

import boto3
import numpy as np
import pytest

from sklambda import config
from sklambda.monitoring.ground_truth.store import Label, write_labels
from sklambda_infra import sample
from tests.functional.test_drift_check_handler import emf_documents, metric_values
from tests.support import store_built, template_environment, write_capture

ROOT = Path(__file__).resolve().parents[2]
QUALITY_APP = ROOT / "functions" / "quality_check" / "app.py"
EVENTS = ROOT / "events"
DATA_BUCKET = "sklambda-data-test"
ON_DEMAND_END = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)


def load_event(name: str, **changes) -> dict:
    return {**copy.deepcopy(json.loads((EVENTS / name).read_text())), **changes}


def served_and_labeled(model, rows: int, *, seed: int, served: datetime, arrived: datetime, flip: float = 0.0,
                       name: str = "churn") -> None:  # fmt: skip
    """`rows` predictions of `name` captured at `served` with ids, and their labels (a share `flip` wrong) stored as
    arriving at `arrived`."""
    X, y = sample.churn_data(rows, seed=seed)
    ids = [f"{name}-{seed}-{i}" for i in range(rows)]
    s3 = boto3.client("s3")
    write_capture(s3, DATA_BUCKET, model, X, at=served, name=name, part=f"s{seed}", inference_ids=ids)
    swapped = np.random.default_rng(seed).random(rows) < flip
    truth = [("no" if t == "yes" else "yes") if s else t for t, s in zip(y, swapped, strict=True)]
    write_labels(s3, DATA_BUCKET, name, [Label(i, t) for i, t in zip(ids, truth, strict=True)], arrival=arrived)


@pytest.fixture
def quality_env(function_env, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    boto3.client("s3").create_bucket(Bucket=DATA_BUCKET)
    # The function's environment as template.yaml sets it, with this test's bucket and key.
    env = template_environment(
        "QualityCheckFunction",
        refs={"DataBucket": DATA_BUCKET, "ModelBucket": function_env.bucket},
        attributes={("SigningKey", "Arn"): function_env.signing_key_id},
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    sqs, events = boto3.client("sqs"), boto3.client("events")
    queue_url = sqs.create_queue(QueueName="quality-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="quality", EventPattern=json.dumps({"source": ["sklambda.monitoring"]}), State="ENABLED")
    events.put_targets(Rule="quality", Targets=[{"Id": "queue", "Arn": queue_arn}])

    def delivered() -> list[dict]:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    return SimpleNamespace(registry=function_env, env=env, delivered=delivered)


@pytest.fixture
def quality_app(quality_env) -> ModuleType:
    """A fresh import of the function, as a new Lambda container would do."""
    spec = importlib.util.spec_from_file_location("quality_check_app", QUALITY_APP)
    module = importlib.util.module_from_spec(spec)
    sys.modules["quality_check_app"] = module
    spec.loader.exec_module(module)
    return module


def test_the_template_environment_is_what_the_function_reads(quality_app, quality_env):
    # GIVEN the function imported with template.yaml's environment
    settings = quality_app.settings
    # THEN its data bucket is the template's DataBucket and its window, lookback and bus are the template's defaults
    assert settings.monitoring_bucket == DATA_BUCKET
    assert (settings.window_hours, settings.lookback_days, settings.event_bus) == (24.0, 14.0, "default")
    assert quality_env.env[config.QUALITY_LOOKBACK_DAYS] == "14"


def test_scheduled_event_checks_every_model_with_a_production_alias_and_emits_its_metrics(
    quality_app, quality_env, published, churn_v1, logistic_model, lambda_context, capsys
):
    # GIVEN churn and retention in production, a staging-only model, each with an hour-old labeled capture
    for name, alias in (("retention", "production"), ("candidate", "staging")):
        renamed = replace(churn_v1, card=replace(churn_v1.card, name=name))
        store_built(quality_env.registry, renamed, alias=alias)
    now = datetime.now(UTC)
    for k, name in enumerate(("churn", "retention", "candidate")):
        served_and_labeled(logistic_model, 600, seed=200 + k, served=now - timedelta(hours=3),
                           arrived=now - timedelta(hours=1), name=name)  # fmt: skip
    # WHEN the schedule fires
    summary = quality_app.handler(load_event("quality_check_scheduled.json"), lambda_context)
    # THEN both production models are checked, not the staging one, each with its reports in the data bucket
    assert summary["status"] == "ok" and (summary["checked"], summary["failed"]) == (2, 0)
    assert [r["model"] for r in summary["results"]] == ["churn", "retention"]
    s3 = boto3.client("s3")
    for result in summary["results"]:
        assert result["labeled_rows"] == 600 and result["join_rate"] == 1.0
        for kind in ("json", "html", "page"):
            s3.head_object(Bucket=DATA_BUCKET, Key=result["reports"][kind])
        assert result["report_urls"]["json"] == f"s3://{DATA_BUCKET}/{result['reports']['json']}"
    # AND each model's metrics carry its own model and version dimensions: rows, join rate, realized and estimated
    out = capsys.readouterr().out
    assert metric_values(out, "LabeledRows", "churn") == [600]
    assert metric_values(out, "JoinRate", "retention") == [100.0]
    churn_roc = summary["results"][0]["metrics"]["roc_auc"]["value"]
    assert metric_values(out, "RealizedRocAuc", "churn") == [pytest.approx(churn_roc)]
    assert len(metric_values(out, "EstimatedAccuracy", "churn")) == 1
    assert {d["version"] for d in emf_documents(out) if "ModelDegraded" in d} == {"1"}


def test_a_degradation_seen_in_two_windows_puts_one_performance_degraded_event(
    quality_app, quality_env, published, logistic_model, lambda_context, capsys
):
    # GIVEN a window's labels contradicting 40 % of the predictions
    served_and_labeled(logistic_model, 700, seed=210, served=ON_DEMAND_END - timedelta(hours=6),
                       arrived=ON_DEMAND_END - timedelta(hours=2), flip=0.4)  # fmt: skip
    event = load_event("quality_check_on_demand.json")
    # WHEN the check runs twice (two consecutive windows see the drop)
    first = quality_app.handler(event, lambda_context)
    assert quality_env.delivered() == []
    second = quality_app.handler(event, lambda_context)
    # THEN the first window is degraded without the model being degraded; the second declares it
    assert first["results"][0]["verdict"] == "degraded" and first["degraded"] == []
    assert second["degraded"] == ["churn"] and second["results"][0]["event_id"]
    # AND exactly one PerformanceDegraded event reached the bus, with the metrics, their intervals and report links
    (delivered,) = quality_env.delivered()
    assert (delivered["source"], delivered["detail-type"]) == ("sklambda.monitoring", "PerformanceDegraded")
    detail = delivered["detail"]
    assert detail["model"] == "churn" and detail["model_degraded"] is True
    assert "accuracy" in detail["degraded_metrics"]
    accuracy = detail["metrics"]["accuracy"]
    assert accuracy["lower"] < accuracy["value"] < accuracy["upper"] < accuracy["reference"]
    assert detail["report_urls"]["html"].startswith(f"s3://{DATA_BUCKET}/reports/quality/churn/")
    # AND ModelDegraded was 0 then 1
    assert metric_values(capsys.readouterr().out, "ModelDegraded", "churn") == [0, 1]


def test_too_few_labels_put_no_event_however_wrong_they_are(
    quality_app, quality_env, published, logistic_model, lambda_context
):
    # GIVEN only 100 labels, half of them contradicting the predictions
    served_and_labeled(logistic_model, 100, seed=220, served=ON_DEMAND_END - timedelta(hours=6),
                       arrived=ON_DEMAND_END - timedelta(hours=2), flip=0.5)  # fmt: skip
    event = load_event("quality_check_on_demand.json")
    # WHEN the check runs twice
    results = [quality_app.handler(event, lambda_context)["results"][0] for _ in range(2)]
    # THEN both windows say too few labels, the model is not degraded and no event is sent
    assert [r["verdict"] for r in results] == ["insufficient_labels"] * 2
    assert not any(r["model_degraded"] for r in results) and quality_env.delivered() == []


@pytest.mark.parametrize(
    "event",
    [
        {"model": ""},
        {"model": "churn", "window_hours": -1},
        {"model": "churn", "colour": "red"},
        ["churn"],
        {"model": "churn", "end": "2030-01-01T00:00:00Z"},  # a window that has not happened yet
    ],
)
def test_a_malformed_request_is_an_invalid_request_result_not_a_crash(quality_app, event, lambda_context):
    # WHEN the function is invoked with a request it cannot read
    result = quality_app.handler(event, lambda_context)
    # THEN it answers invalid_request, naming the fields
    assert result["status"] == "invalid_request" and result["error"]["code"] == "malformed_request"
    if isinstance(event, dict) and "end" in event:
        error = result["error"]["errors"][0]
        assert error["field"] == "end" and error["message"].startswith("end 2030-01-01T00:00:00+00:00 is in the future")


def test_an_unknown_model_is_a_failed_entry(quality_app, quality_env, published, lambda_context, capsys):
    # WHEN a model that was never published is checked on demand
    result = quality_app.handler({"model": "nosuchmodel"}, lambda_context)
    # THEN the result is a failed entry with the registry's reason, and QualityCheckFailed is counted
    assert result["status"] == "failed"
    assert result["results"][0]["error"]["code"] == "model_not_found"
    assert metric_values(capsys.readouterr().out, "QualityCheckFailed", "nosuchmodel") == [1]
