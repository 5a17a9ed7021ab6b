"""`sklambda local invoke drift-check`: the drift check function run against the local stack's resources."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from sklambda_infra import cli, sample
from sklambda_infra.local import cli as local_cli
from tests.support import point_at_stack, publish_to_stack, write_capture

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_local_invoke_runs_the_drift_check_against_the_running_stack(
    nothing_captured, churn, logistic_model, monkeypatch, capsys
):
    stack = nothing_captured
    details = stack.details
    point_at_stack(stack, monkeypatch)
    # GIVEN churn in production and an hour-old capture of 800 rows in the stack's data bucket
    card = publish_to_stack(stack, churn, logistic_model)
    data_bucket = details["buckets"]["DataBucket"]
    s3 = boto3.client("s3", endpoint_url=stack.aws_endpoint_url)
    write_capture(
        s3,
        data_bucket,
        logistic_model,
        sample.churn_data(800, seed=31)[0],
        at=datetime.now(UTC) - timedelta(hours=1),
        version=card.version,
    )
    # WHEN `sklambda local invoke drift-check` runs (this stack's details stand for .sklambda/local.json)
    monkeypatch.setattr(local_cli, "read_details", lambda root: details)
    capsys.readouterr()
    code = cli.main(["local", "invoke", "drift-check", "--project-root", str(ROOT), "--model", "churn"])
    # THEN it prints the check of churn over the last day, whose report is in the stack's data bucket
    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary
    (result,) = summary["results"]
    assert (result["model"], result["rows"], result["status"]) == ("churn", 800, "checked")
    s3.head_object(Bucket=data_bucket, Key=result["reports"]["json"])
    # AND an unknown model is a failed result and a non-zero exit, not a crash
    code = cli.main(["local", "invoke", "drift-check", "--project-root", str(ROOT), "--model", "nosuchmodel"])
    assert code == 1
    assert json.loads(capsys.readouterr().out)["results"][0]["error"]["code"] == "model_not_found"
    # AND without --model it checks every model with the default alias, as the schedule does, whatever their names
    publish_to_stack(stack, churn, logistic_model, name="retention")
    code = cli.main(["local", "invoke", "drift-check", "--project-root", str(ROOT)])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary
    assert {"churn", "retention"} <= {r["model"] for r in summary["results"]}
    assert "nosuchmodel" not in {r["model"] for r in summary["results"]}
