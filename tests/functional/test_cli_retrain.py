"""`sklambda retrain` and `sklambda approve` against moto: what they start, what they refuse."""

from __future__ import annotations

import json

import boto3
import pytest

from sklambda.updating.retraining import RunStore
from sklambda_infra.cli import main

DATA_BUCKET = "sklambda-data-test"


@pytest.fixture
def stack(registry_env, monkeypatch) -> dict:
    """The registry, a data bucket and a stand-in RetrainStateMachine in moto, named as the environment does."""
    boto3.client("s3").create_bucket(Bucket=DATA_BUCKET)
    role = boto3.client("iam").create_role(RoleName="sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    definition = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
    arn = boto3.client("stepfunctions").create_state_machine(name="retrain", definition=definition, roleArn=role)[
        "stateMachineArn"
    ]
    for name, value in {
        "SKLAMBDA_MODEL_BUCKET": registry_env.bucket,
        "SKLAMBDA_DATA_BUCKET": DATA_BUCKET,
        "SKLAMBDA_RETRAIN_STATE_MACHINE_ARN": arn,
        "SKLAMBDA_LOCAL_FILE": "/nonexistent/local.json",
    }.items():
        monkeypatch.setenv(name, value)
    return {"arn": arn}


def executions(arn: str) -> list[dict]:
    sfn = boto3.client("stepfunctions")
    found = sfn.list_executions(stateMachineArn=arn)["executions"]
    return [sfn.describe_execution(executionArn=e["executionArn"]) for e in found]


def test_retrain_starts_a_run_named_by_its_run_id_with_the_options_as_its_request(stack, capsys) -> None:
    # WHEN a canary run with approval is started by hand
    code = main(["retrain", "churn", "--canary", "25", "--approval", "--run-id", "churn-manual-1"])
    # THEN one execution runs, named by the run id, its input the request
    assert code == 0
    (execution,) = executions(stack["arn"])
    assert execution["name"] == "churn-manual-1"
    assert json.loads(execution["input"]) == {
        "model": "churn", "alias": "production", "run_id": "churn-manual-1", "rollout": "canary",
        "approval": True, "trigger": {"source": "manual"}, "canary_weight": 25.0,
    }  # fmt: skip
    assert "retraining run churn-manual-1 started" in capsys.readouterr().out


def test_resume_reruns_the_recorded_request_under_a_new_execution_name(stack) -> None:
    # GIVEN a run whose report recorded its request
    store = RunStore(boto3.client("s3"), DATA_BUCKET, "churn", "r-7")
    request = {"model": "churn", "run_id": "r-7", "rollout": "shadow", "approval": False}
    store.put_json(store.prefix + "report.json", {"status": "failed", "request": request})
    # WHEN it is resumed, allowing 5 % of the training rows to be refused
    assert main(["retrain", "churn", "--resume", "r-7", "--max-refused", "5"]) == 0
    # THEN the same request runs again (same run id) with that share, in an execution of another name (names are
    # unique)
    (execution,) = executions(stack["arn"])
    assert json.loads(execution["input"]) == {**request, "max_refused_share": 0.05}
    assert execution["name"].startswith("r-7-resume-")


def test_resume_and_approve_refuse_a_run_that_left_nothing_to_act_on(stack, capsys) -> None:
    # GIVEN a run that recorded its assemble step only
    store = RunStore(boto3.client("s3"), DATA_BUCKET, "churn", "r-8")
    store.write_record("assemble", {"step": "assemble", "status": "succeeded", "started_at": None})
    # WHEN a run that never reported is resumed, an unknown run is approved, and r-8 (no approval asked) is approved
    resumed = main(["retrain", "churn", "--resume", "nope"])
    unknown = main(["approve", "churn", "nope", "--reject", "--reason", "too risky"])
    not_asked = main(["approve", "churn", "r-8"])
    # THEN each fails with a message saying why, and nothing was started
    err = capsys.readouterr().err
    assert (resumed, unknown, not_asked) == (2, 2, 2)
    assert "run nope of churn has no report" in err
    assert "model churn has no retraining run nope (no records under s3://sklambda-data-test/retraining/" in err
    assert "run r-8 of model churn waits for no approval" in err
    assert executions(stack["arn"]) == []
