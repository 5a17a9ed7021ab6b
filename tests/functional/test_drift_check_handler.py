"""The drift check function (functions/drift_check/app.py) with events from events/ and moto.

Captured predictions are written the way Firehose delivers them; DriftDetected events are observed through an
EventBridge rule on the default bus that targets an SQS queue (moto delivers put_events to SQS targets).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType, SimpleNamespace

import boto3
import pytest

from sklambda import config
from sklambda.config import DriftCheckSettings
from sklambda.errors import ConfigurationError
from sklambda_infra import sample
from tests.support import store_built, write_capture

ROOT = Path(__file__).resolve().parents[2]
DRIFT_APP = ROOT / "functions" / "drift_check" / "app.py"
EVENTS = ROOT / "events"
DATA_BUCKET = "sklambda-data-test"
ON_DEMAND_END = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)


def load_event(name: str, **changes) -> dict:
    event = copy.deepcopy(json.loads((EVENTS / name).read_text()))
    return {**event, **changes}


def capture(model, X, *, name: str = "churn", at: datetime, part: str = "part-0") -> None:
    write_capture(boto3.client("s3"), DATA_BUCKET, model, X, at=at, name=name, part=part)


def shifted(rows: int, seed: int):
    X, _ = sample.churn_data(rows, seed=seed)
    X["monthly_charges"] = X["monthly_charges"] + 15  # plans got dearer
    return X


def clean(rows: int, seed: int):
    return sample.churn_data(rows, seed=seed)[0]


@pytest.fixture
def drift_env(function_env, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    boto3.client("s3").create_bucket(Bucket=DATA_BUCKET)
    monkeypatch.setenv("SKLAMBDA_MONITORING_BUCKET", DATA_BUCKET)
    # A rule on the default bus forwarding every sklambda.monitoring event to a queue the test reads.
    sqs, events = boto3.client("sqs"), boto3.client("events")
    queue_url = sqs.create_queue(QueueName="drift-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="drift", EventPattern=json.dumps({"source": ["sklambda.monitoring"]}), State="ENABLED")
    events.put_targets(Rule="drift", Targets=[{"Id": "queue", "Arn": queue_arn}])

    def delivered() -> list[dict]:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    return SimpleNamespace(registry=function_env, delivered=delivered)


@pytest.fixture
def drift_app(drift_env) -> ModuleType:
    """A fresh import of the function, as a new Lambda container would do."""
    spec = importlib.util.spec_from_file_location("drift_check_app", DRIFT_APP)
    module = importlib.util.module_from_spec(spec)
    sys.modules["drift_check_app"] = module
    spec.loader.exec_module(module)
    return module


def emf_documents(out: str) -> list[dict]:
    documents = []
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            documents.append(json.loads(line))
    return documents


def metric_values(out: str, name: str, model: str) -> list[float]:
    """Every value of metric `name` emitted for `model`, in order (powertools writes a list per document)."""
    values: list[float] = []
    for d in emf_documents(out):
        if name in d and d.get("model") == model:
            values.extend(d[name] if isinstance(d[name], list) else [d[name]])
    return values


def test_scheduled_event_checks_every_model_with_a_production_alias(
    drift_app, drift_env, published, churn_build, logistic_model, lambda_context, capsys
):
    # GIVEN churn and retention in production, a staging-only model, and an hour-old capture of each
    store_built(drift_env.registry, churn_build(logistic_model, name="retention"), alias="production")
    store_built(drift_env.registry, churn_build(logistic_model, name="candidate"), alias="staging")
    at = datetime.now(UTC) - timedelta(hours=1)
    for name in ("churn", "retention", "candidate"):
        capture(logistic_model, clean(1500, seed=21), name=name, at=at)
    # WHEN the schedule fires
    summary = drift_app.handler(load_event("drift_check_scheduled.json"), lambda_context)
    # THEN both production models are checked, not the staging one, and each has its reports in the data bucket
    assert summary["status"] == "ok" and (summary["checked"], summary["failed"]) == (2, 0)
    assert [r["model"] for r in summary["results"]] == ["churn", "retention"]
    s3 = boto3.client("s3")
    for result in summary["results"]:
        assert result["verdict"] == "no_drift" and result["rows"] == 1500
        for kind in ("json", "html"):
            s3.head_object(Bucket=DATA_BUCKET, Key=result["reports"][kind])
            assert result["report_urls"][kind] == f"s3://{DATA_BUCKET}/{result['reports'][kind]}"
    # AND each model's metrics carry its own model and version dimensions
    out = capsys.readouterr().out
    assert metric_values(out, "RowsInWindow", "churn") == [1500]
    assert metric_values(out, "ModelDrifted", "retention") == [0]
    assert not drift_env.delivered()


def test_a_shift_seen_in_two_windows_puts_one_drift_detected_event(
    drift_app, drift_env, published, logistic_model, lambda_context, capsys
):
    # GIVEN a window of captured predictions whose monthly charges rose by 15
    capture(logistic_model, shifted(3000, seed=22), at=ON_DEMAND_END - timedelta(hours=1))
    event = load_event("drift_check_on_demand.json")
    # WHEN the check runs twice (two consecutive windows see the shift)
    first = drift_app.handler(event, lambda_context)
    assert drift_env.delivered() == []
    second = drift_app.handler(event, lambda_context)
    # THEN the first window is drifted without the model being drifted; the second declares the model drifted
    assert first["results"][0]["verdict"] == "drift" and first["drifted"] == []
    assert second["drifted"] == ["churn"] and second["results"][0]["event_id"]
    # AND exactly one DriftDetected event reached the bus, with the result and the report urls
    (delivered,) = drift_env.delivered()
    assert (delivered["source"], delivered["detail-type"]) == ("sklambda.monitoring", "DriftDetected")
    detail = delivered["detail"]
    assert detail["model"] == "churn" and detail["model_drifted"] is True
    assert "monthly_charges" in detail["drifted_features"]
    assert detail["report_urls"]["html"].startswith(f"s3://{DATA_BUCKET}/reports/drift/churn/")
    # AND ModelDrifted was 0 then 1 for churn version 1
    out = capsys.readouterr().out
    assert metric_values(out, "ModelDrifted", "churn") == [0, 1]
    assert {d["version"] for d in emf_documents(out) if "ModelDrifted" in d} == {"1"}


def test_a_clean_window_puts_no_event(drift_app, drift_env, published, logistic_model, lambda_context):
    capture(logistic_model, clean(3000, seed=23), at=ON_DEMAND_END - timedelta(hours=1))
    event = load_event("drift_check_on_demand.json")
    results = [drift_app.handler(event, lambda_context) for _ in range(2)]
    assert [r["results"][0]["verdict"] for r in results] == ["no_drift", "no_drift"]
    assert all(r["drifted"] == [] for r in results)
    assert drift_env.delivered() == []


def test_on_demand_event_checks_only_the_named_model_over_its_window(
    drift_app, drift_env, published, churn_build, logistic_model, lambda_context
):
    # GIVEN two production models and an event naming churn with a 2-hour window
    store_built(drift_env.registry, churn_build(logistic_model, name="retention"), alias="production")
    capture(logistic_model, clean(400, seed=24), at=ON_DEMAND_END - timedelta(hours=1), part="recent")
    capture(logistic_model, clean(400, seed=25), at=ON_DEMAND_END - timedelta(hours=5), part="older")
    event = load_event("drift_check_on_demand.json", window_hours=2)
    # WHEN it is invoked
    summary = drift_app.handler(event, lambda_context)
    # THEN only churn is checked, over [end - 2h, end): the older capture is outside
    (result,) = summary["results"]
    assert result["model"] == "churn" and result["rows"] == 400
    assert result["window"] == {
        "start": "2026-11-27T04:00:00+00:00",
        "end": "2026-11-27T06:00:00+00:00",
        "end_exclusive": True,
        "hours": 2.0,
    }
    # AND the result names the model's monitoring page beside its reports
    assert result["report_urls"]["page"] == f"s3://{DATA_BUCKET}/reports/drift/churn/index.html"


def test_an_unknown_model_is_a_clear_error_result(drift_app, drift_env, published, lambda_context, capsys):
    summary = drift_app.handler(load_event("drift_check_on_demand.json", model="nosuchmodel"), lambda_context)
    assert (summary["status"], summary["checked"], summary["failed"]) == ("failed", 0, 1)
    (result,) = summary["results"]
    assert result["status"] == "failed" and result["error"]["code"] == "model_not_found"
    assert "nosuchmodel" in result["error"]["message"]
    assert metric_values(capsys.readouterr().out, "DriftCheckFailed", "nosuchmodel") == [1]


def test_a_failing_model_does_not_stop_the_scheduled_check_of_the_others(
    drift_app, drift_env, published, churn_build, logistic_model, lambda_context
):
    # GIVEN a second production model whose card was tampered with (its signature no longer verifies)
    store_built(drift_env.registry, churn_build(logistic_model, name="retention"), alias="production")
    s3, bucket = boto3.client("s3"), drift_env.registry.bucket
    key = drift_env.registry.registry.card_key("retention", "1")
    card = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    card["description"] = "tampered"
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(card).encode())
    capture(logistic_model, clean(600, seed=26), at=datetime.now(UTC) - timedelta(hours=1))
    # WHEN the schedule fires
    summary = drift_app.handler(load_event("drift_check_scheduled.json"), lambda_context)
    # THEN churn is checked and retention is reported as failed
    by_model = {r["model"]: r for r in summary["results"]}
    assert by_model["churn"]["status"] == "checked"
    assert by_model["retention"]["status"] == "failed"
    assert by_model["retention"]["error"]["code"] == "model_refused"
    assert "failed signature verification" in by_model["retention"]["error"]["message"]
    assert by_model["churn"]["card_signature"]["verified"] is True
    assert (summary["status"], summary["checked"], summary["failed"]) == ("ok", 1, 1)


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"model": ""},
        {"model": "churn", "window_hours": -1},
        {"model": "churn", "end": "yesterday"},
        {"model": "churn", "extra": 1},
        {"model": "churn", "end": "2030-01-01T00:00:00Z"},  # a window that has not happened yet
    ],
)
def test_a_malformed_on_demand_event_is_refused_with_the_field_named(drift_app, drift_env, event, lambda_context):
    summary = drift_app.handler(event, lambda_context)
    assert summary["status"] == "invalid_request"
    assert summary["error"]["code"] == "malformed_request" and summary["error"]["errors"]
    if "end" in event:
        assert summary["error"]["errors"][0]["field"] == "end"


def test_a_window_ending_in_the_future_writes_nothing(drift_app, drift_env, published, s3, lambda_context):
    # WHEN a drift check is asked for a window ending in 2030
    summary = drift_app.handler({"model": "churn", "end": "2030-01-01T00:00:00Z"}, lambda_context)
    # THEN it is refused, saying so, and no report, state or page is written
    assert "is in the future" in summary["error"]["errors"][0]["message"]
    assert s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix="reports/").get("KeyCount", 0) == 0


def test_settings_default_to_a_day_on_the_default_bus_and_require_the_buckets() -> None:
    env = {config.MODEL_BUCKET: "models", config.SIGNING_KEY_ID: "key", config.MONITORING_BUCKET: "data"}
    settings = DriftCheckSettings.from_env(env)
    assert (settings.window_hours, settings.event_bus, settings.default_alias) == (24.0, "default", "production")
    assert DriftCheckSettings.from_env({**env, config.DRIFT_WINDOW_HOURS: "6"}).window_hours == 6.0
    # AND the monitoring page shows the last 30 windows unless told otherwise (at least one)
    assert settings.history_windows == 30
    assert DriftCheckSettings.from_env({**env, config.DRIFT_HISTORY_WINDOWS: "90"}).history_windows == 90
    with pytest.raises(ConfigurationError, match=config.DRIFT_HISTORY_WINDOWS):
        DriftCheckSettings.from_env({**env, config.DRIFT_HISTORY_WINDOWS: "0"})
    for missing in env:
        with pytest.raises(ConfigurationError, match=missing):
            DriftCheckSettings.from_env({k: v for k, v in env.items() if k != missing})
    for bad in ("0", "-1", "soon"):
        with pytest.raises(ConfigurationError, match=config.DRIFT_WINDOW_HOURS):
            DriftCheckSettings.from_env({**env, config.DRIFT_WINDOW_HOURS: bad})


def test_a_captured_lone_surrogate_is_quarantined_and_the_check_still_reports(
    drift_app, drift_env, published, logistic_model, lambda_context, capsys
):
    from sklambda.monitoring.capture import Pseudonymizer, build_records
    from sklambda.monitoring.windows import capture_prefix

    # GIVEN a clean window, and the record an earlier version captured for the request (a predict with
    # "plan": "\ud800" answered 200): built and written exactly as capture did
    at = ON_DEMAND_END - timedelta(hours=1)
    capture(logistic_model, clean(400, seed=27), at=at)
    row = {**clean(1, seed=28).iloc[0].to_dict(), "plan": "\ud800"}
    (record,) = build_records(
        model="churn", version="1", request_id="req", rows=[row], predictions=["no"],
        probabilities=[{"no": 0.9, "yes": 0.1}], feature_names=list(row), pii=sample.PII,
        pseudonymizer=Pseudonymizer(b"k" * 32), now=at,
    )  # fmt: skip
    key = capture_prefix("churn", at.date()) + "part-surrogate"
    boto3.client("s3").put_object(Bucket=DATA_BUCKET, Key=key, Body=record.to_json_line().encode())
    capsys.readouterr()
    # WHEN the drift check runs on it (before the fix: UnicodeEncodeError, every day that record was in the window)
    summary = drift_app.handler(load_event("drift_check_on_demand.json"), lambda_context)
    # THEN the model is checked on its 400 good rows, the record is quarantined, counted, and a metric says so
    (result,) = summary["results"]
    assert (summary["status"], result["status"], result["rows"]) == ("ok", "checked", 400)
    assert result["quarantined_records"] == 1
    assert result["quarantine_reasons"] == {"features.plan: not valid Unicode text (a lone surrogate)": 1}
    assert metric_values(capsys.readouterr().out, "QuarantinedRecords", "churn") == [1]


def test_a_model_whose_aliases_cannot_be_listed_does_not_stop_the_scheduled_check(
    drift_app, drift_env, published, churn_build, logistic_model, lambda_context, monkeypatch
):
    # GIVEN two production models, and listing the aliases of one of them fails (an S3 error, a corrupt object)
    store_built(drift_env.registry, churn_build(logistic_model, name="retention"), alias="production")
    capture(logistic_model, clean(600, seed=29), at=datetime.now(UTC) - timedelta(hours=1))
    registry = drift_app.registry()
    list_aliases = registry.list_aliases

    def failing(name: str) -> dict:
        if name == "retention":
            raise ValueError("alias object is not JSON")
        return list_aliases(name)

    monkeypatch.setattr(registry, "list_aliases", failing)
    # WHEN the schedule fires
    summary = drift_app.handler(load_event("drift_check_scheduled.json"), lambda_context)
    # THEN churn is still checked, and retention has its own entry instead of stopping the run
    by_model = {r["model"]: r for r in summary["results"]}
    assert by_model["churn"]["status"] == "checked"
    assert set(by_model) == {"churn", "retention"}
    assert summary["status"] == "ok"
