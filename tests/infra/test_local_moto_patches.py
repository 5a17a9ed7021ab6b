"""The local stack's patches of moto's internals (local/moto_patches.py), each against moto in process.

Each patch adds what moto lacks and the cloud does; the version guard refuses a moto they were not written for.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

import boto3
import moto
import pytest
from botocore.exceptions import ClientError

from sklambda_infra.local import firehose, moto_patches
from sklambda_infra.local.events import ExecutionWatcher
from sklambda_infra.local.moto_patches import UnsupportedMoto, check_moto_version
from sklambda_infra.local.states import TaskTokens

FN = "arn:aws:lambda:us-east-1:123456789012:function:fn"


@pytest.mark.parametrize("version", ["5.2.5", "5.2.9", "5.2.10.dev3"])
def test_the_version_guard_accepts_the_moto_the_patches_were_written_for(version: str) -> None:
    # GIVEN a moto release within the supported range
    # WHEN it is checked
    check_moto_version(version)
    # THEN it passes, as the installed one did when the module was imported
    check_moto_version(moto.__version__)


@pytest.mark.parametrize("version", ["5.2.4", "5.3.0", "6.0.0", "4.2.14", "unknown"])
def test_the_version_guard_refuses_any_other_moto_naming_both_versions(version: str) -> None:
    # GIVEN a moto release whose private internals the patches were not checked against
    # WHEN it is checked
    with pytest.raises(UnsupportedMoto) as refused:
        check_moto_version(version)
    # THEN the message names the installed version, the pin and what to do
    assert version in str(refused.value)
    if version != "unknown":
        assert "moto[server]==5.2.5" in str(refused.value) and "SUPPORTED_MOTO" in str(refused.value)


def test_s3_notifications_carry_the_object_version_and_an_increasing_sequencer(mocked_aws) -> None:
    # GIVEN a versioned bucket notifying a queue of created objects, with the patch installed
    moto_patches.enrich_s3_notifications()
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    s3.create_bucket(Bucket="data")
    s3.put_bucket_versioning(Bucket="data", VersioningConfiguration={"Status": "Enabled"})
    queue = sqs.create_queue(QueueName="incoming")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket="data",
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]},
    )

    # WHEN an object is written twice
    versions = [s3.put_object(Bucket="data", Key="in/a.csv", Body=body)["VersionId"] for body in (b"1", b"2")]

    # THEN each notification names its version, as S3 does, and the sequencers increase
    records = []
    for message in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
        records += json.loads(message["Body"]).get("Records", [])
    objects = [r["s3"]["object"] for r in records]
    assert [o["versionId"] for o in objects] == versions
    sequencers = [int(o["sequencer"], 16) for o in objects]
    assert sequencers == sorted(sequencers) and len(set(sequencers)) == 2


def test_firehose_records_land_under_their_partition_prefix(mocked_aws) -> None:
    # GIVEN a stream partitioned by each record's model and the delivery date, registered with the emulation
    s3, client = boto3.client("s3"), boto3.client("firehose")
    s3.create_bucket(Bucket="captures")
    config = {"BucketARN": "arn:aws:s3:::captures", "RoleARN": "arn:aws:iam::123456789012:role/r", "Prefix": ""}
    for name in ("partitioned", "plain"):
        client.create_delivery_stream(DeliveryStreamName=name, ExtendedS3DestinationConfiguration=config)
    spec = firehose.partitioning(
        "capture/model=!{partitionKeyFromQuery:model}/dt=!{timestamp:yyyy-MM-dd}/", "{model:.m}"
    )
    assert spec is not None
    firehose.register("partitioned", spec)

    # WHEN records of two models are put in one batch, and one record into a stream that is not registered
    lines = [json.dumps({"m": m, "i": i}).encode() + b"\n" for i, m in enumerate(["churn", "fraud", "churn"])]
    client.put_record_batch(DeliveryStreamName="partitioned", Records=[{"Data": line} for line in lines])
    client.put_record(DeliveryStreamName="plain", Record={"Data": b"x\n"})

    # THEN one object per partition holds its records in order; the other stream keeps moto's YYYY/MM/DD/HH layout
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="captures")["Contents"]]
    by_prefix = {k.rsplit("/", 1)[0]: s3.get_object(Bucket="captures", Key=k)["Body"].read() for k in keys}
    assert by_prefix[f"capture/model=churn/dt={day}"] == lines[0] + lines[2]
    assert by_prefix[f"capture/model=fraud/dt={day}"] == lines[1]
    assert by_prefix[datetime.now(UTC).strftime("%Y/%m/%d/%H")] == b"x\n"


def test_a_succeeded_execution_records_its_output_on_moto(mocked_aws) -> None:
    # GIVEN an execution RUNNING in moto
    sfn = boto3.client("stepfunctions")
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"ok": 1}, "End": True}}}
    machine = sfn.create_state_machine(
        name="p", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/r"
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    watcher = ExecutionWatcher(
        {machine: "P"}, sfn, None, lambda line: None, account_id="123456789012", region="us-east-1"
    )

    # WHEN the local interpreter runs it
    watcher._run(machine, execution)

    # THEN DescribeExecution shows what the cloud would: SUCCEEDED with the output
    described = sfn.describe_execution(executionArn=execution)
    assert described["status"] == "SUCCEEDED" and json.loads(described["output"]) == {"ok": 1}


def _callback_machine(sfn) -> str:
    definition = {
        "StartAt": "Approve",
        "States": {
            "Approve": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {"FunctionName": FN, "Payload": {"token.$": "$$.Task.Token"}},
                "End": True,
            }
        },
    }
    return sfn.create_state_machine(
        name="approve", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/r"
    )["stateMachineArn"]


def _run_in_background(sfn, machine: str, tokens: TaskTokens) -> tuple[str, list, threading.Thread]:
    """Start an execution in moto and run it with the local interpreter in a thread; the payloads it sent."""
    execution = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
    payloads: list = []
    got_token = threading.Event()

    def invoke(arn, payload):
        payloads.append(payload)
        got_token.set()

    watcher = ExecutionWatcher(
        {machine: "M"},
        sfn,
        invoke,
        lambda line: None,
        account_id="123456789012",
        region="us-east-1",
        task_tokens=tokens,
    )
    thread = threading.Thread(target=watcher._run, args=(machine, execution))
    thread.start()
    assert got_token.wait(10)
    return execution, payloads, thread


def test_send_task_success_and_failure_against_moto_reach_the_waiting_execution(mocked_aws) -> None:
    # GIVEN SendTask* routed to the registry of the executions, and an execution waiting for its task token
    sfn = boto3.client("stepfunctions")
    tokens = TaskTokens()
    moto_patches.route_task_tokens(tokens)
    try:
        machine = _callback_machine(sfn)
        execution, payloads, thread = _run_in_background(sfn, machine, tokens)

        # WHEN a client sends SendTaskSuccess with boto3, as `sklambda approve` would
        sfn.send_task_success(taskToken=payloads[0]["token"], output='{"approved": true}')
        thread.join(10)

        # THEN the execution succeeds with that output
        described = sfn.describe_execution(executionArn=execution)
        assert described["status"] == "SUCCEEDED" and json.loads(described["output"]) == {"approved": True}

        # AND a second answer to the closed task, an unknown token and bad output get the API's errors
        for call, code in [
            (lambda: sfn.send_task_failure(taskToken=payloads[0]["token"], error="E"), "TaskTimedOut"),
            (lambda: sfn.send_task_heartbeat(taskToken="not-a-token-we-issued"), "InvalidToken"),
        ]:
            with pytest.raises(ClientError) as refused:
                call()
            assert refused.value.response["Error"]["Code"] == code

        # WHEN another execution is answered with SendTaskFailure (bad output first)
        execution, payloads, thread = _run_in_background(sfn, machine, tokens)
        with pytest.raises(ClientError) as invalid:
            sfn.send_task_success(taskToken=payloads[0]["token"], output="{not json")
        assert invalid.value.response["Error"]["Code"] == "InvalidOutput"
        sfn.send_task_failure(taskToken=payloads[0]["token"], error="Rejected", cause="quality dropped by 0.04")
        thread.join(10)

        # THEN it fails with that error and cause (moto alone drops the cause)
        described = sfn.describe_execution(executionArn=execution)
        assert (described["status"], described["error"], described["cause"]) == (
            "FAILED",
            "Rejected",
            "quality dropped by 0.04",
        )
    finally:
        moto_patches.unroute_task_tokens(tokens)
