"""The retraining pipeline (sklambda.updating.retraining) with moto: its steps one by one, and RetrainStateMachine's
definition from template.yaml run by the local interpreter (sklambda_infra.local.states) with an invoke that calls
functions/retrain/app.py and train.py in-process, their environment from template.yaml. The rollout check
(RolloutCheckFunction, another helper's) is a fake answering the verdicts a test gives.

Training data is a few hundred churn rows: "new concept" rows where churn grows with tenure (the champion learned the
opposite, so a retrained candidate beats it on them) and "noise" rows whose labels are random (no candidate is better).
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType, SimpleNamespace

import boto3
import numpy as np
import pandas as pd
import pytest

from sklambda.updating import retraining
from sklambda.updating.retraining import RetrainRequest, RunStore, decide_approval
from sklambda_infra import sample
from sklambda_infra.local.states import StateMachineRunner, StatesError, TaskFailed, TaskTokens
from sklambda_infra.template import load_template
from tests.support import template_environment

ROOT = Path(__file__).resolve().parents[2]
DATA_BUCKET = "sklambda-data-test"
ACCOUNT = "arn:aws:lambda:us-east-1:123456789012:function:sk"
ARNS = {"RetrainFunctionArn": f"{ACCOUNT}-retrain", "TrainFunctionArn": f"{ACCOUNT}-retrain-train",
        "RolloutCheckFunctionArn": f"{ACCOUNT}-rollout-check"}  # fmt: skip


def training_rows(n: int, *, seed: int, concept: str) -> str:
    """n churn rows as CSV with the target column `churned`: "new" (churn when tenure is long) or "noise"."""
    X, _ = sample.churn_data(n, seed=seed)
    rng = np.random.default_rng(seed)
    new = (X["tenure_months"] + rng.normal(0, 10, n)) > 60
    churned = new if concept == "new" else rng.random(n) < 0.4
    return X.assign(churned=np.where(churned, "yes", "no")).to_csv(index=False)


def import_function(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def retrain(function_env, published, target_runtime, lambda_context, monkeypatch) -> SimpleNamespace:
    """churn version 1 at production, the data bucket, the approval topic, both functions imported with their
    template environment, and a queue receiving every sklambda.updating event."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=DATA_BUCKET)
    topic = boto3.client("sns").create_topic(Name="approvals")["TopicArn"]
    refs = {"DataBucket": DATA_BUCKET, "ModelBucket": function_env.bucket, "ApprovalTopic": topic}
    attributes = {("SigningKey", "Arn"): function_env.signing_key_id}
    for logical_id in ("RetrainFunction", "RetrainTrainFunction"):
        for name, value in template_environment(logical_id, refs, attributes).items():
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("SKLAMBDA_RUNTIME_PATH", target_runtime)  # the layer's host copy stands for /opt/python
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    sqs, events = boto3.client("sqs"), boto3.client("events")
    queue = sqs.create_queue(QueueName="retraining-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="updating", EventPattern=json.dumps({"source": ["sklambda.updating"]}), State="ENABLED")
    events.put_targets(Rule="updating", Targets=[{"Id": "queue", "Arn": queue_arn}])

    def delivered() -> list[dict]:
        messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(m["Body"]) for m in messages]

    def put_training_data(text: str, name: str = "part-0.csv") -> None:
        s3.put_object(Bucket=DATA_BUCKET, Key=f"training-data/churn/{name}", Body=text.encode())

    app = import_function(ROOT / "functions" / "retrain" / "app.py", "retrain_app")
    train = import_function(ROOT / "functions" / "retrain" / "train.py", "retrain_train")
    return SimpleNamespace(
        s3=s3, env=function_env, app=app, train=train, context=lambda_context, delivered=delivered,
        put_training_data=put_training_data,
    )  # fmt: skip


def request(run_id: str, **fields) -> RetrainRequest:
    return RetrainRequest(model="churn", run_id=run_id, **fields)


# --- steps ---------------------------------------------------------------------------------------------------------
def test_assemble_reads_the_prefix_splits_a_seeded_holdout_and_records_its_outcome(retrain) -> None:
    # GIVEN 400 training rows under training-data/churn/
    retrain.put_training_data(training_rows(400, seed=3, concept="new"))
    # WHEN the assemble step runs
    outcome = retrain.app.pipeline().assemble(request("r1", rollout="none"))
    # THEN a fifth of the rows is the holdout (no labeled captures: a seeded split), the rest the training rows
    assert (outcome["training_rows"], outcome["holdout_rows"]) == (320, 80)
    assert outcome["holdout_source"] == "seeded_split" and outcome["champion"] == "1"
    # AND both files and the step's record are in the run's folder
    record = RunStore(retrain.s3, DATA_BUCKET, "churn", "r1").record("assemble")
    assert record["status"] == "succeeded" and record["outcome"] == outcome
    assert outcome["train_key"] == "retraining/churn/r1/train.jsonl.gz"


def test_a_rerun_returns_a_recorded_step_without_redoing_it(retrain) -> None:
    # GIVEN a run whose assemble step succeeded
    retrain.put_training_data(training_rows(400, seed=3, concept="new"))
    first = retrain.app.pipeline().assemble(request("r2"))
    # WHEN the training data is gone and the run is rerun with the same id
    retrain.s3.delete_object(Bucket=DATA_BUCKET, Key="training-data/churn/part-0.csv")
    again = retrain.app.pipeline().assemble(request("r2"))
    # THEN the recorded outcome is returned (the step did not read the prefix again), and a new run id fails on it
    assert again == first
    with pytest.raises(retraining.TrainingDataUnusable, match="too few rows"):
        retrain.app.pipeline().assemble(request("r3"))
    assert RunStore(retrain.s3, DATA_BUCKET, "churn", "r3").record("assemble")["status"] == "failed"


def test_labeled_captures_train_a_model_that_never_reads_its_pii_feature(retrain) -> None:
    # GIVEN training rows, and labeled captured rows of churn, whose customer_id is pii (captured as a pseudonym) but
    # never read by its pipeline (publish found the ColumnTransformer drops it)
    from datetime import UTC, datetime, timedelta

    from sklambda.monitoring.ground_truth.store import Label, write_labels
    from tests.support import write_capture

    retrain.put_training_data(training_rows(300, seed=4, concept="new"))
    X, y = sample.churn_data(120, seed=9)
    now = datetime.now(UTC)
    ids = [f"c-{i}" for i in range(len(X))]
    model = sample.logistic_pipeline().fit(*sample.churn_data(300, seed=1))
    write_capture(retrain.s3, DATA_BUCKET, model, X, at=now - timedelta(hours=2), inference_ids=ids)
    write_labels(retrain.s3, DATA_BUCKET, "churn", [Label(i, t) for i, t in zip(ids, y, strict=True)], arrival=now)
    # WHEN the assemble step runs
    outcome = retrain.app.pipeline().assemble(request("r4"))
    # THEN the 120 labeled captures are found and used beside the prefix's 300 rows (the pseudonyms reach no estimator)
    assert outcome["labeled_captured_rows"] == 120 and outcome["labeled_captured_rows_used"] == 120
    assert not any("pseudonyms" in note for note in outcome["notes"])
    assert outcome["training_rows"] + outcome["holdout_rows"] == 420


def csv_rows(n: int, *, seed: int, **columns) -> pd.DataFrame:
    """n new-concept churn rows as a frame (`churned` the target), with `columns` replaced ({name: values})."""
    return pd.read_csv(io.StringIO(training_rows(n, seed=seed, concept="new"))).assign(**columns)


def test_rows_of_the_wrong_type_are_quarantined_and_too_many_fail_the_step_naming_the_field(retrain) -> None:
    # GIVEN a prefix whose monthly_charges is "high" in half its rows
    rows = csv_rows(600, seed=3)
    rows["monthly_charges"] = rows["monthly_charges"].astype(object)
    rows.loc[::2, "monthly_charges"] = "high"
    retrain.put_training_data(rows.to_csv(index=False))
    # WHEN the assemble step runs
    with pytest.raises(retraining.TrainingDataUnusable) as failed:
        retrain.app.pipeline().assemble(request("typed"))
    # THEN it fails naming the field, a count and an example, and every refused row is in the run's quarantine file
    message = failed.value.message
    assert "300 of 600 row(s) (50.0%)" in message and "over the 1.0% allowed" in message
    assert "monthly_charges: 300 row(s), e.g. part-0.csv row 1: expected a number, got string 'high'" in message
    body = retrain.s3.get_object(Bucket=DATA_BUCKET, Key="retraining/churn/typed/refused.jsonl")["Body"].read()
    lines = [json.loads(line) for line in body.splitlines()]
    assert len(lines) == 300 and lines[0]["object"] == "training-data/churn/part-0.csv" and lines[0]["row"] == 1
    assert lines[0]["reasons"] == [{"field": "monthly_charges", "message": "expected a number, got string 'high'"}]
    assert lines[0]["raw"]["monthly_charges"] == "high"
    # AND a rerun allowing a larger share leaves those rows out and trains on the rest
    outcome = retrain.app.pipeline().assemble(request("typed", max_refused_share=0.6))
    assert outcome["refused_rows"] == 300 and outcome["training_rows"] + outcome["holdout_rows"] == 300


def test_a_few_bad_rows_are_left_out_and_counted_and_new_categories_are_reported(retrain) -> None:
    # GIVEN 400 rows: 2 with text in a number (0.5 %, under the 1 % allowed), 3 without a label, and a has_partner
    # coded 0/1 in a second file where the champion saw yes/no
    rows = csv_rows(400, seed=3)
    rows["age"] = rows["age"].astype(object)
    rows.loc[[5, 9], "age"] = "forty"
    rows.loc[[1, 2, 3], "churned"] = None
    other = csv_rows(100, seed=8, has_partner=np.where(np.arange(100) % 4 == 0, 1, 0))
    retrain.put_training_data(rows.to_csv(index=False))
    retrain.put_training_data(other.to_csv(index=False), name="part-1.csv")
    # WHEN the assemble step runs
    outcome = retrain.app.pipeline().assemble(request("few"))
    # THEN the bad and unlabeled rows are left out and counted, and the unseen categories reported with counts
    assert (outcome["refused_rows"], outcome["unlabeled_rows"]) == (2, 3)
    assert outcome["training_rows"] + outcome["holdout_rows"] == 495
    assert outcome["refused_key"] == "retraining/churn/few/refused.jsonl"
    assert outcome["unseen_categories"] == {"has_partner": {"0": 75, "1": 25}}
    notes = " ".join(outcome["notes"])
    assert "2 row(s) left out" in notes and "age: 2 row(s), e.g. part-0.csv row 6" in notes
    assert "3 row(s) without a label" in notes
    assert "has_partner: 100 of 495 row(s) hold categories the champion never saw: '0' (75), '1' (25)" in notes


def test_json_lines_rows_are_checked_as_the_api_checks_a_request(retrain) -> None:
    # GIVEN JSON Lines rows: 300 good, one with a fractional age, one with has_partner as a number, one not JSON
    rows = csv_rows(300, seed=3).astype(object).where(lambda f: f.notna(), None)
    lines = [json.dumps(r) for r in rows.to_dict("records")]
    lines[10] = json.dumps({**rows.iloc[10].to_dict(), "age": 45.5})
    lines[20] = json.dumps({**rows.iloc[20].to_dict(), "has_partner": 1})
    lines[30] = "{not json"
    retrain.s3.put_object(Bucket=DATA_BUCKET, Key="training-data/churn/part.jsonl", Body="\n".join(lines).encode())
    # WHEN the assemble step allows 1 % refused rows (3 of 300)
    outcome = retrain.app.pipeline().assemble(request("jsonl"))
    # THEN those three are refused with the API's messages, the rest train
    assert outcome["refused_rows"] == 3 and outcome["training_rows"] + outcome["holdout_rows"] == 297
    body = retrain.s3.get_object(Bucket=DATA_BUCKET, Key=outcome["refused_key"])["Body"].read()
    reasons = {json.loads(line)["row"]: json.loads(line)["reasons"][0] for line in body.splitlines()}
    assert reasons[11] == {"field": "age", "message": "expected an integer, got 45.5"}
    assert reasons[21] == {"field": "has_partner", "message": "expected a string category, got int 1"}
    assert reasons[31]["field"] is None and reasons[31]["message"].startswith("not valid JSON")


def test_labels_that_are_not_the_champions_classes_fail_the_step_naming_them_and_the_classes(retrain) -> None:
    # GIVEN a prefix whose target is coded 1/0 where the champion's classes are no/yes
    rows = csv_rows(300, seed=3)
    retrain.put_training_data(rows.assign(churned=np.where(rows["churned"] == "yes", 1, 0)).to_csv(index=False))
    # WHEN the assemble step runs
    with pytest.raises(retraining.TrainingDataUnusable) as failed:
        retrain.app.pipeline().assemble(request("labels"))
    # THEN the reason names the labels with their counts and the classes
    counts = (rows["churned"] == "yes").sum()
    assert f"'1' ({counts})" in failed.value.message and f"'0' ({300 - counts})" in failed.value.message
    assert "its classes: 'no', 'yes'" in failed.value.message


def test_prefix_rows_that_copy_the_labeled_holdout_are_left_out_of_training(retrain) -> None:
    # GIVEN 300 labeled captured rows (their customer_id captured as a pseudonym), also uploaded to the prefix with
    # their raw customer_id, beside 300 other prefix rows
    from datetime import UTC, datetime, timedelta

    from sklambda.monitoring.ground_truth.store import Label, write_labels
    from tests.support import write_capture

    X, y = sample.churn_data(300, seed=9)
    now = datetime.now(UTC)
    ids = [f"c-{i}" for i in range(len(X))]
    model = sample.logistic_pipeline().fit(*sample.churn_data(300, seed=1))
    write_capture(retrain.s3, DATA_BUCKET, model, X, at=now - timedelta(hours=2), inference_ids=ids)
    write_labels(retrain.s3, DATA_BUCKET, "churn", [Label(i, t) for i, t in zip(ids, y, strict=True)], arrival=now)
    retrain.put_training_data(training_rows(300, seed=4, concept="new"))
    retrain.put_training_data(X.assign(churned=y).to_csv(index=False), name="copies.csv")
    # WHEN the assemble step runs
    outcome = retrain.app.pipeline().assemble(request("leak"))
    # THEN the holdout is the newest 60 captures, and their 60 copies in the prefix are not training rows
    assert (outcome["holdout_source"], outcome["holdout_rows"]) == ("recent_labeled", 60)
    assert outcome["holdout_copies_left_out"] == 60
    assert outcome["training_rows"] == 300 + 300 + 240 - 60
    assert any("60 training-data row(s) equal a holdout row" in note for note in outcome["notes"])


# --- the state machine ---------------------------------------------------------------------------------------------
def definition() -> dict:
    machine = load_template(ROOT / "template.yaml")["Resources"]["RetrainStateMachine"]["Properties"]
    text = json.dumps(machine["Definition"])
    for name, arn in ARNS.items():
        text = text.replace("${" + name + "}", arn)
    return json.loads(text)


class Pipeline:
    """RetrainStateMachine run in-process: functions by ARN, the rollout check answering `verdicts` in turn."""

    def __init__(self, retrain: SimpleNamespace, verdicts: list[dict] | None = None) -> None:
        self.retrain, self.verdicts, self.checks = retrain, list(verdicts or []), 0
        self.tokens = TaskTokens()
        self.runner = StateMachineRunner(definition(), self.invoke, task_tokens=self.tokens, max_wait_s=0)

    def invoke(self, arn: str, payload: dict) -> dict:
        if arn == ARNS["RolloutCheckFunctionArn"]:
            assert payload == {"model": "churn", "alias": "production"}
            self.checks += 1
            return self.verdicts.pop(0)
        handler = self.retrain.app.handler if arn == ARNS["RetrainFunctionArn"] else self.retrain.train.handler
        try:
            return json.loads(json.dumps(handler(payload, self.retrain.context), default=str))
        except Exception as e:  # as Lambda reports an unhandled error: errorType is the class name
            cause = json.dumps({"errorMessage": str(e), "errorType": type(e).__name__})
            raise TaskFailed(type(e).__name__, cause) from None

    def run(self, execution: str, **fields) -> tuple[str, dict]:
        """(execution status, report.json) of one execution (its run id: fields' run_id, else its name)."""
        run_id = fields.get("run_id", execution)
        arn = f"arn:aws:states:us-east-1:123456789012:execution:r:{execution}"
        context = {"Execution": {"Name": execution, "Id": arn}}
        try:
            self.runner.run({"model": "churn", **fields}, context)
            status = "SUCCEEDED"
        except StatesError as e:
            status = f"FAILED {e.error}"
        report = RunStore(self.retrain.s3, DATA_BUCKET, "churn", run_id).get_json(
            f"retraining/churn/{run_id}/report.json"
        )
        return status, report


class FakeStepFunctions:
    """SendTaskSuccess / SendTaskFailure routed to the runner's task tokens (what the local stack's moto does)."""

    def __init__(self, tokens: TaskTokens) -> None:
        self.tokens = tokens

    def send_task_success(self, taskToken: str, output: str) -> None:
        self.tokens.succeed(taskToken, output)

    def send_task_failure(self, taskToken: str, error: str, cause: str) -> None:
        self.tokens.fail(taskToken, error, cause)


def decide_when_asked(retrain, pipeline: Pipeline, run_id: str, *, approved: bool) -> dict:
    """Wait (at most 60 s) for the run's approval request, then approve or reject it as `sklambda approve` does."""
    store = RunStore(retrain.s3, DATA_BUCKET, "churn", run_id)
    deadline = time.monotonic() + 60
    while (store.record("approval") or {}).get("status") != "running":
        assert time.monotonic() < deadline, "the run never asked for an approval"
        time.sleep(0.05)
    return decide_approval(store, FakeStepFunctions(pipeline.tokens), approved=approved, reason="looked at it", by="t")


def canary(status: str, *reasons: str) -> dict:
    """The rollout check's answer for a canary (updating.rollout_check's shape, the fields the pipeline reads)."""
    return {"status": status, "verdict": {"status": status, "reasons": [{"metric": "m", "text": r} for r in reasons]}}


def alias(retrain) -> object:
    return retrain.env.registry.get_alias("churn", "production")


def test_a_run_trains_gates_canaries_waits_for_approval_and_promotes(retrain) -> None:
    # GIVEN new-concept training data and a rollout check that collects once, then finds the canary healthy
    retrain.put_training_data(training_rows(500, seed=5, concept="new"))
    pipeline = Pipeline(retrain, [canary("collecting"), canary("healthy")])
    # WHEN a canary run asking for approval runs, and it is approved when asked
    with ThreadPoolExecutor(1) as pool:
        approval = pool.submit(decide_when_asked, retrain, pipeline, "happy", approved=True)
        status, report = pipeline.run("happy", rollout="canary", canary_weight=20, approval=True)
        approval.result()
    # THEN the run succeeded: version 2 was published, gated (replace), canaried, checked twice and promoted
    assert status == "SUCCEEDED", report
    assert report["status"] == "succeeded" and report["candidate"] == "2"
    assert report["gate"]["decision"] == "replace"
    assert (report["gate"]["champion_version"], report["gate"]["candidate_version"]) == ("1", "2")
    assert report["gate"]["challenger"] > report["gate"]["champion"]  # the metric's values, ROC AUC
    assert [s["step"] for s in report["steps"]] == list(retraining.STEPS)
    assert all(s["status"] == "succeeded" for s in report["steps"])
    assert pipeline.checks == 2
    record = alias(retrain)
    assert (record.version, record.canary) == ("2", None)
    # AND the version records its run, and ModelPromoted and RetrainingSucceeded were put
    assert retrain.env.registry.get_card("churn", "2").tags[retraining.RUN_TAG] == "happy"
    kinds = [e["detail-type"] for e in retrain.delivered()]
    assert kinds == ["ModelPromoted", "RetrainingSucceeded"]


def test_a_retrained_version_keeps_the_champions_integer_types_with_nulls(retrain) -> None:
    # GIVEN new-concept rows, a few with no age (the champion imputes a null age: it accepts one)
    rows = csv_rows(500, seed=5)
    rows["age"] = rows["age"].astype("Int64")
    rows.loc[[3, 30, 300], "age"] = pd.NA
    retrain.put_training_data(rows.to_csv(index=False))
    champion = retrain.env.registry.get_card("churn", "1").input_schema
    # WHEN a run without a rollout runs
    status, report = Pipeline(retrain).run("ints", rollout="none")
    # THEN the retrained version's features have the champion's types: age stays integer, now nullable
    assert status == "SUCCEEDED", report
    schema = retrain.env.registry.get_card("churn", "2").input_schema
    assert [(f.name, f.type) for f in schema.features] == [(f.name, f.type) for f in champion.features]
    assert schema.feature("age").type == "integer" and schema.feature("age").nullable


@pytest.mark.filterwarnings("ignore:Skipping features without any observed values")  # the imputer, on `age`
def test_a_candidate_publish_refuses_ends_the_run_with_its_reasons(retrain) -> None:
    # GIVEN training data whose `age` column is empty (publish refuses a constant column)
    rows = pd.read_csv(io.StringIO(training_rows(300, seed=6, concept="new"))).assign(age=None)
    retrain.put_training_data(rows.to_csv(index=False))
    # WHEN a run runs
    status, report = Pipeline(retrain).run("refused", rollout="none")
    # THEN it failed at train with publish's refusal, and no version was published
    assert status == "FAILED RetrainingFailed"
    assert report["failed_step"] == "train" and "'age'" in report["reason"]
    assert retrain.env.registry.list_versions("churn") == ["1"]
    assert [e["detail"]["failed_step"] for e in retrain.delivered()] == ["train"]


def test_a_candidate_the_gate_does_not_prefer_ends_the_run_and_is_never_rolled_out(retrain) -> None:
    # GIVEN training data with random labels: the candidate cannot be shown better than the champion
    retrain.put_training_data(training_rows(500, seed=7, concept="noise"))
    # WHEN a canary run runs
    status, report = Pipeline(retrain).run("gated", rollout="canary")
    # THEN it failed at the gate, with the gate's result, and the alias never got a canary
    assert status == "FAILED RetrainingFailed"
    assert report["failed_step"] == "gate" and report["gate"]["decision"] in ("keep_champion", "reject")
    assert alias(retrain).version == "1" and alias(retrain).canary is None


def test_a_rejected_approval_rolls_the_canary_back_and_a_resume_does_not_retrain(retrain) -> None:
    # GIVEN a canary run found healthy, waiting for its approval
    retrain.put_training_data(training_rows(500, seed=5, concept="new"))
    pipeline = Pipeline(retrain, [canary("healthy")])
    # WHEN the approval is rejected
    with ThreadPoolExecutor(1) as pool:
        rejection = pool.submit(decide_when_asked, retrain, pipeline, "rejected", approved=False)
        status, report = pipeline.run("rejected", rollout="canary", approval=True)
        rejection.result()
    # THEN the run failed at approval with the reason, and its canary was rolled back at once
    assert status == "FAILED RetrainingFailed"
    assert report["failed_step"] == "approval" and "looked at it" in report["reason"]
    assert report["rollout"]["undone"] == "canary_rolled_back"
    assert (alias(retrain).version, alias(retrain).canary) == ("1", None)
    # AND a resume of the run (same run id) reuses its recorded assemble, train and gate: no version 3
    again = Pipeline(retrain, [canary("healthy")])
    with ThreadPoolExecutor(1) as pool:
        approval = pool.submit(decide_when_asked, retrain, again, "rejected", approved=True)
        status, report = again.run("resume-1", run_id="rejected", rollout="canary", approval=True)
        approval.result()
    assert status == "SUCCEEDED" and report["status"] == "succeeded"
    assert retrain.env.registry.list_versions("churn") == ["1", "2"] and alias(retrain).version == "2"
    attempts = {s["step"]: s["attempt"] for s in report["steps"]}
    assert attempts["train"] == 1 and attempts["rollout"] == 2


def test_a_canary_the_rollout_check_rolls_back_ends_the_run_with_its_reasons(retrain) -> None:
    # GIVEN a canary run whose rollout check finds the canary's error rate beyond its bound
    retrain.put_training_data(training_rows(500, seed=5, concept="new"))
    verdict = canary("rolled_back", "error rate 3.1% vs 0.2% (bound +1.0%)")
    # WHEN the run runs
    status, report = Pipeline(retrain, [verdict]).run("rolledback", rollout="canary")
    # THEN it failed at watch with the check's reason, and nothing is promoted
    assert status == "FAILED RetrainingFailed"
    assert report["failed_step"] == "watch" and "error rate 3.1%" in report["reason"]
    assert (alias(retrain).version, alias(retrain).canary) == ("1", None)


def test_a_shadow_run_promotes_the_shadow_once_healthy_and_clears_it(retrain) -> None:
    # GIVEN new-concept data and a rollout check that finds the shadow healthy at once
    retrain.put_training_data(training_rows(500, seed=5, concept="new"))
    compared = {
        "status": "compared",
        "summary": "the shadow would replace",
        "quality": {"available": True, "decision": "replace"},
    }
    pipeline = Pipeline(retrain, [{"status": "no_canary", "verdict": None, "shadow": compared}])
    # WHEN a shadow run without approval runs
    status, report = pipeline.run("shadowed", rollout="shadow")
    # THEN the candidate shadowed production, was promoted, and the alias has no shadow left
    assert status == "SUCCEEDED", report
    outcomes = {s["step"]: s["status"] for s in report["steps"]}
    assert outcomes == {step: "succeeded" for step in ("assemble", "train", "gate", "rollout", "watch", "promote")}
    record = alias(retrain)
    assert (record.version, record.shadow, record.history) == ("2", None, ("1",))


def test_a_canary_the_real_rollout_check_never_finds_healthy_times_out_and_is_rolled_back(retrain, monkeypatch) -> None:
    # GIVEN the rollout check function itself (its template environment), and a canary that gets no traffic
    refs = {"DataBucket": DATA_BUCKET, "ModelBucket": retrain.env.bucket}
    attributes = {("SigningKey", "Arn"): retrain.env.signing_key_id}
    for name, value in template_environment("RolloutCheckFunction", refs, attributes).items():
        monkeypatch.setenv(name, value)
    check = import_function(ROOT / "functions" / "rollout_check" / "app.py", "rollout_check_app")
    retrain.put_training_data(training_rows(500, seed=5, concept="new"))
    pipeline = Pipeline(retrain)

    def invoke(arn: str, payload: dict) -> dict:
        if arn == ARNS["RolloutCheckFunctionArn"]:
            pipeline.checks += 1
            return json.loads(json.dumps(check.handler(payload, retrain.context), default=str))
        return Pipeline.invoke(pipeline, arn, payload)

    pipeline.runner.invoke = invoke
    # WHEN a canary run allowed two checks runs
    status, report = pipeline.run("quiet", rollout="canary", max_rounds=2)
    # THEN both checks were still collecting (no request of either version), the run timed out with the check's reason
    assert status == "FAILED RetrainingFailed" and pipeline.checks == 2
    assert report["failed_step"] == "watch" and "still collecting after 2 check(s)" in report["reason"]
    assert "requests" in report["reason"]
    # AND the canary was rolled back by the report step
    assert report["rollout"]["undone"] == "canary_rolled_back"
    assert (alias(retrain).version, alias(retrain).canary) == ("1", None)


def test_an_expected_step_failure_is_logged_as_one_line_without_a_traceback(retrain, caplog) -> None:
    # GIVEN no training data WHEN the assemble step runs in the function
    with pytest.raises(retraining.TrainingDataUnusable) as failed:
        retrain.app.handler({"step": "assemble", "run": request("quiet").model_dump()}, retrain.context)
    # THEN the error keeps its class name (Step Functions' error) and the log has one warning with the reason
    (warning,) = [r for r in caplog.records if r.getMessage() == "retraining step ended the run"]
    assert warning.levelname == "WARNING" and warning.error == "TrainingDataUnusable"
    assert "too few rows to retrain churn" in warning.reason
    assert not [r for r in caplog.records if r.exc_info]
    # AND the stack the runtime logs for it stops at the handler: no frame of the domain code that raised it
    frames = [Path(f.filename).name for f in traceback.extract_tb(failed.value.__traceback__)]
    assert "app.py" in frames and "retraining.py" not in frames and failed.value.__cause__ is None
