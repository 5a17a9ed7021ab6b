"""The model-quality check on the local stack: predictions with ids over the local API are captured (log line ->
subscription filter -> moto's Firehose -> the data bucket), their labels are stored with the ground-truth store, and
`sklambda local invoke quality-check` joins them and writes the report."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from sklambda import aws, config
from sklambda.monitoring.ground_truth.store import Label, write_labels
from sklambda.registry.schema import to_records
from sklambda_infra import cli, sample
from sklambda_infra.local import cli as local_cli
from tests.support import point_at_stack

ROOT = Path(__file__).resolve().parents[2]
ROWS = 600  # above the degradation rule's 500 labeled rows, below the API's 1,000 rows per request


def predict(stack, rows: list[dict], ids: list[str]) -> dict:
    request = urllib.request.Request(
        f"{stack.api_url}/models/churn/predict",
        data=json.dumps({"instances": rows, "inference_ids": ids}).encode(),
        headers={"x-api-key": stack.details["api_key"], "content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def captured_rows(stack, s3, bucket: str, timeout_s: float = 20.0) -> int:
    """Capture lines leave through the worker's log and the subscription forwarder, after the response."""
    deadline = time.monotonic() + timeout_s
    rows = 0
    while time.monotonic() < deadline:
        stack.forwarder.flush()
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=config.CAPTURE_PREFIX).get("Contents", [])
        rows = sum(len(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read().splitlines()) for o in listing)
        if rows >= ROWS:
            break
        time.sleep(0.2)
    return rows


@pytest.mark.e2e
def test_labels_of_predictions_served_by_the_local_api_are_joined_by_the_quality_check(
    nothing_captured, monkeypatch, capsys
):
    stack = nothing_captured
    details = stack.details
    point_at_stack(stack, monkeypatch)
    data_bucket = details["buckets"]["DataBucket"]
    s3 = boto3.client("s3", endpoint_url=stack.aws_endpoint_url)
    # GIVEN 600 predictions of churn (the stack's production model) served over the local API with our ids, captured
    X, y = sample.churn_data(ROWS, seed=301)
    ids = [f"e2e-{i}" for i in range(ROWS)]
    assert predict(stack, to_records(X), ids)["inference_ids"] == ids
    assert captured_rows(stack, s3, data_bucket) == ROWS
    # AND their true labels, stored as the feedback path stores them
    labels = [Label(i, t) for i, t in zip(ids, y, strict=True)]
    write_labels(s3, data_bucket, "churn", labels, arrival=datetime.now(UTC) - timedelta(minutes=1))
    # WHEN `sklambda local invoke quality-check --model churn` runs (the stack details stand for .sklambda/local.json)
    monkeypatch.setattr(local_cli, "read_details", lambda root: details)
    capsys.readouterr()
    code = cli.main(["local", "invoke", "quality-check", "--project-root", str(ROOT), "--model", "churn"])
    summary = json.loads(capsys.readouterr().out)
    # THEN every label joined its prediction and the window was judged on them (enough labels for a verdict)
    assert code == 0, summary
    (result,) = summary["results"]
    assert (result["status"], result["labeled_rows"], result["join_rate"]) == ("checked", ROWS, 1.0)
    assert result["verdict"] in ("ok", "degraded")
    # AND the report in the stack's data bucket has the realized metrics; no estimate, and it says why (the stack's
    # churn is published without a holdout, so its card has no calibration map)
    report = json.loads(s3.get_object(Bucket=data_bucket, Key=result["reports"]["json"])["Body"].read())
    assert report["join"]["by_version"] == {result["version"]: ROWS}
    assert {m["name"] for m in report["realized"]["metrics"]} >= {"accuracy", "roc_auc", "f1", "ece"}
    assert not report["estimated"]["available"] and "no CBPE estimation section" in report["estimated"]["reason"]
    s3.head_object(Bucket=data_bucket, Key=result["reports"]["page"])
    aws.reset_clients()
