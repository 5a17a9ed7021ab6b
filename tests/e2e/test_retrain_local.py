"""The retraining pipeline on the local stack: `sklambda retrain --wait` starts RetrainStateMachine, whose states the
local interpreter runs against the stack's retrain and train functions (each in its worker, with its template
environment: the train function's parity gate runs in its layers' local folders), and prints the run's report."""

from __future__ import annotations

import json

import boto3
import numpy as np
import pytest

from sklambda import aws
from sklambda.registry.store import Registry
from sklambda_infra import sample
from sklambda_infra.cli import main
from tests.support import point_at_stack, publish_to_stack

MODEL = "churn-retrain"  # a model of its own: the shared stack's churn stays as other tests expect it


@pytest.mark.e2e
def test_retrain_wait_publishes_gates_and_promotes_a_retrained_version(
    project_stack, churn, logistic_model, monkeypatch, tmp_path, capsys
):
    # GIVEN the model at production on the running stack, and new-concept training data under its prefix
    details = project_stack.details
    (tmp_path / "local.json").write_text(json.dumps(details))
    monkeypatch.setenv("SKLAMBDA_LOCAL_FILE", str(tmp_path / "local.json"))
    for name in ("SKLAMBDA_MODEL_BUCKET", "SKLAMBDA_SIGNING_KEY_ID", "SKLAMBDA_RETRAIN_STATE_MACHINE_ARN"):
        monkeypatch.delenv(name, raising=False)
    point_at_stack(project_stack, monkeypatch)
    publish_to_stack(project_stack, churn, logistic_model, name=MODEL)
    X, _ = sample.churn_data(600, seed=5)
    rng = np.random.default_rng(5)
    churned = np.where((X["tenure_months"] + rng.normal(0, 10, len(X))) > 60, "yes", "no")
    s3 = boto3.client("s3", endpoint_url=project_stack.aws_endpoint_url)
    data_bucket = details["buckets"]["DataBucket"]
    key = f"training-data/{MODEL}/rows.csv"
    s3.put_object(Bucket=data_bucket, Key=key, Body=X.assign(churned=churned).to_csv(index=False).encode())
    try:
        # WHEN a run without rollout is started and waited for
        code = main(["retrain", MODEL, "--no-rollout", "--run-id", "e2e-run", "--wait", "--timeout", "300", "--json"])
        out, err = capsys.readouterr()
        # THEN it succeeded: version 2 trained, published (signed by the train function), gated and promoted
        assert code == 0, err + out
        report = json.loads(out[out.index("{") :])
        assert (report["status"], report["candidate"], report["gate"]["decision"]) == ("succeeded", "2", "replace")
        assert [s["step"] for s in report["steps"]] == ["assemble", "train", "gate", "rollout", "promote"]
        assert Registry(details["model_bucket"]).resolve(MODEL, alias="production") == "2"
    finally:
        s3.delete_object(Bucket=data_bucket, Key=key)
        aws.reset_clients()
