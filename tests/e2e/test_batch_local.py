"""Batch scoring end to end on the local stack: `aws s3 cp` into incoming/ -> S3 notification -> SQS -> the
batch function -> scored/, errors/ and the summary; a file above the fan-out threshold goes through the state
machine's Distributed Map (local interpreter, parallel chunk workers) and comes out as one merged file.
"""

from __future__ import annotations

import json
import time

import pytest

from sklambda_infra import sample
from sklambda_infra.local import LocalStack
from tests.support import FANOUT_BYTES, aws_cli

BIG_ROWS = 130_000  # about 7.4 MB: two chunks


@pytest.fixture
def stack(project_stack: LocalStack) -> LocalStack:
    """The shared project stack: churn in production, a fan-out threshold of FANOUT_BYTES and chunks of CHUNK_BYTES."""
    return project_stack


def wait_for_object(stack: LocalStack, bucket: str, key: str, timeout_s: float) -> bytes:
    s3 = stack.client("s3")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            if time.monotonic() > deadline:
                raise AssertionError(f"s3://{bucket}/{key} did not appear in {timeout_s} s") from None
            time.sleep(0.2)


def data_bucket(stack: LocalStack) -> str:
    return stack.details["buckets"]["DataBucket"]


@pytest.mark.e2e
def test_local_stack_wires_the_queue_and_the_state_machine(stack):
    details = stack.details
    # GIVEN the project's template on the local stack
    (source,) = [s for s in details["sqs_event_sources"] if s["function"] == "BatchScoreFunction"]
    # THEN the batch function polls the queue the bucket notifies, and the state machine exists in moto
    assert source["report_batch_item_failures"]
    notification = stack.client("s3").get_bucket_notification_configuration(Bucket=data_bucket(stack))
    (queue,) = [q for q in notification["QueueConfigurations"] if q["QueueArn"] == details["arns"]["BatchQueue"]]
    assert queue["Filter"]["Key"]["FilterRules"] == [{"Name": "Prefix", "Value": "incoming/"}] or queue["Filter"][
        "Key"
    ]["FilterRules"] == [{"Name": "prefix", "Value": "incoming/"}]
    machine = details["state_machines"]["BatchFanOutStateMachine"]
    env = details["functions"]["BatchScoreFunction"]["environment"]
    assert env["SKLAMBDA_BATCH_STATE_MACHINE_ARN"] == machine
    assert env["SKLAMBDA_BATCH_DATA_BUCKET"] == data_bucket(stack)


@pytest.mark.e2e
def test_aws_s3_cp_into_incoming_is_scored_within_seconds(stack, tmp_path):
    # GIVEN a CSV with one row that does not match the schema
    X, _ = sample.churn_data(200, seed=7)
    lines = X.to_csv(index=False).splitlines()
    fields = lines[4].split(",")
    fields[1] = "old"  # age
    lines[4] = ",".join(fields)
    path = tmp_path / "day one.csv"
    path.write_text("\n".join(lines) + "\n")
    bucket = data_bucket(stack)
    # WHEN it is copied into incoming/churn/ with the aws CLI
    started = time.monotonic()
    aws_cli(stack, "s3", "cp", str(path), f"s3://{bucket}/incoming/churn/day one.csv")
    # THEN the summary, the scored file and the errors file appear
    summary = json.loads(wait_for_object(stack, bucket, "scored/churn/day one.csv.summary.json", timeout_s=60))
    elapsed = time.monotonic() - started
    print(f"s3 cp -> summary in {elapsed:.2f} s (includes the function's cold start)")
    assert (summary["status"], summary["rows_read"], summary["rows_scored"], summary["rows_rejected"]) == (
        "succeeded",
        200,
        199,
        1,
    )
    assert summary["input"]["version_id"]  # the notification carried the version id
    scored = wait_for_object(stack, bucket, "scored/churn/day one.csv", timeout_s=5).decode().splitlines()
    assert len(scored) == 200
    errors = wait_for_object(stack, bucket, "errors/churn/day one.csv.jsonl", timeout_s=5).splitlines()
    assert len(errors) == 1
    # AND the message was deleted: nothing waits in the queue or the dead-letter queue
    sqs = stack.client("sqs")
    for queue in ("BatchQueue", "BatchDeadLetterQueue"):
        url = stack.details["resources"][queue]
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        assert attributes["ApproximateNumberOfMessages"] == "0", queue


@pytest.mark.e2e
def test_large_file_goes_through_the_local_distributed_map_into_one_output(stack, tmp_path):
    # GIVEN a file above the fan-out threshold
    X, _ = sample.churn_data(BIG_ROWS, seed=11)
    path = tmp_path / "big.csv"
    X.to_csv(path, index=False)
    assert path.stat().st_size > FANOUT_BYTES
    bucket = data_bucket(stack)
    # WHEN it is uploaded
    started = time.monotonic()
    aws_cli(stack, "s3", "cp", str(path), f"s3://{bucket}/incoming/churn/big.csv")
    # THEN the state machine scores its chunks in parallel and merges them into one scored file and one summary
    summary = json.loads(wait_for_object(stack, bucket, "scored/churn/big.csv.summary.json", timeout_s=90))
    print(f"s3 cp -> merged summary of {BIG_ROWS} rows in {time.monotonic() - started:.2f} s")
    assert (summary["status"], summary["chunks"], summary["rows_scored"]) == ("succeeded", 2, BIG_ROWS)
    scored = stack.client("s3").get_object(Bucket=bucket, Key="scored/churn/big.csv")["Body"].read().splitlines()
    assert len(scored) == BIG_ROWS + 1
    # AND the execution is recorded as SUCCEEDED in moto
    sfn = stack.client("stepfunctions")
    machine = stack.details["state_machines"]["BatchFanOutStateMachine"]
    (execution,) = sfn.list_executions(stateMachineArn=machine)["executions"]
    assert stack.watcher.wait(execution["executionArn"], timeout_s=10)
    described = sfn.describe_execution(executionArn=execution["executionArn"])
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"])["rows_scored"] == BIG_ROWS
