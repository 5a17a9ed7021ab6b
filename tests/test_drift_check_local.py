"""`sklambda local invoke drift-check`: the drift check function run against the local stack's resources."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from sklambda import aws
from sklambda.capture import Pseudonymizer, build_records
from sklambda.monitoring import capture_prefix
from sklambda.publish import publish, to_records
from sklambda.registry import Registry
from sklambda.signing import CardSigner
from sklambda_infra import cli, sample
from sklambda_infra.local import LocalStack
from sklambda_infra.local import cli as local_cli

ROOT = Path(__file__).resolve().parents[1]


class Log(list):
    def __call__(self, line: str) -> None:
        self.append(line)


def put_capture(s3, bucket: str, model, X, at: datetime) -> None:
    """Captured records under capture/model=churn/dt=<day>/, as the cloud's Firehose partitions them."""
    proba = model.predict_proba(X)
    records = build_records(
        model="churn",
        version="1",
        request_id="req",
        rows=to_records(X),
        predictions=model.classes_[proba.argmax(axis=1)].tolist(),
        probabilities=[dict(zip(map(str, model.classes_), p, strict=True)) for p in proba.tolist()],
        feature_names=list(X.columns),
        pii=sample.PII,
        pseudonymizer=Pseudonymizer(b"k" * 32),
        now=at,
    )
    s3.put_object(
        Bucket=bucket,
        Key=capture_prefix("churn", at.date()) + "part-0",
        Body=b"".join(r.to_json_line() for r in records),
    )


@pytest.mark.e2e
def test_local_invoke_runs_the_drift_check_against_the_running_stack(churn, logistic_model, monkeypatch, capsys):
    with LocalStack(ROOT, stack_name="drift-e2e", aws_port=0, api_port=0, log=Log()) as stack:
        details = stack.details
        for name, value in {
            "AWS_ENDPOINT_URL": stack.aws_endpoint_url,
            "AWS_ACCESS_KEY_ID": details["access_key_id"],
            "AWS_SECRET_ACCESS_KEY": details["secret_access_key"],
            "AWS_DEFAULT_REGION": details["region"],
        }.items():
            monkeypatch.setenv(name, value)
        aws.reset_clients()
        # GIVEN churn in production and an hour-old capture of 800 rows in the stack's data bucket
        publish(
            logistic_model,
            churn.X,
            churn.y,
            name="churn",
            alias="production",
            pii=sample.PII,
            registry=Registry(details["model_bucket"]),
            signer=CardSigner(details["signing_key_id"]),
        )
        data_bucket = details["buckets"]["DataBucket"]
        s3 = boto3.client("s3", endpoint_url=stack.aws_endpoint_url)
        put_capture(
            s3, data_bucket, logistic_model, sample.churn_data(800, seed=31)[0], datetime.now(UTC) - timedelta(hours=1)
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
