"""The local stack's event plumbing without workers: the States Language interpreter and the SQS poller's rules."""

from __future__ import annotations

import json
import threading
import time

import boto3
import pytest

from sklambda_infra.local import events
from sklambda_infra.local.events import ExecutionWatcher, SqsEventSource, SqsPoller, sqs_event
from sklambda_infra.local.functions import FunctionCrashed, FunctionError, FunctionTimeout
from sklambda_infra.local.states import StateMachineRunner, StatesError, TaskFailed, UnsupportedState

FN = "arn:aws:lambda:us-east-1:123456789012:function:fn"


def _fanout(max_concurrency: int = 2) -> dict:
    """The shape of the template's BatchFanOutStateMachine."""
    task = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "OutputPath": "$.Payload"}
    return {
        "StartAt": "Map",
        "States": {
            "Map": {
                "Type": "Map",
                "ItemsPath": "$.chunks",
                "MaxConcurrencyPath": "$.max",
                "ItemSelector": {"action": "chunk", "job.$": "$.job", "chunk.$": "$$.Map.Item.Value"},
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                    "StartAt": "Chunk",
                    "States": {"Chunk": {**task, "Parameters": {"FunctionName": FN, "Payload.$": "$"}, "End": True}},
                },
                "ResultPath": "$.results",
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Report"}],
                "Next": "Merge",
            },
            "Merge": {
                **task,
                "Parameters": {"FunctionName": FN, "Payload": {"action": "merge", "results.$": "$.results"}},
                "End": True,
            },
            "Report": {
                **task,
                "Parameters": {"FunctionName": FN, "Payload": {"action": "fail", "error.$": "$.error"}},
                "Next": "Failed",
            },
            "Failed": {"Type": "Fail", "Error": "JobFailed", "Cause": "see the report"},
        },
    }


def test_distributed_map_runs_items_in_parallel_then_merges_in_order():
    # GIVEN a function that takes 0.2 s per chunk and records how many run at once
    running, peak, lock = [0], [0], threading.Lock()

    def invoke(arn, payload):
        assert arn == FN
        if payload["action"] == "merge":
            return {"merged": [r["chunk"] for r in payload["results"]]}
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.2)
        with lock:
            running[0] -= 1
        return {"chunk": payload["chunk"], "job": payload["job"]}

    # WHEN 4 chunks run with MaxConcurrency 2 (from the input)
    started = time.monotonic()
    output = StateMachineRunner(_fanout(), invoke).run({"job": "j", "chunks": [0, 1, 2, 3], "max": 2})
    # THEN two ran at a time (about 0.4 s, not 0.8 s) and the merge got the results in item order
    assert peak[0] == 2
    assert time.monotonic() - started < 0.7
    assert output == {"merged": [0, 1, 2, 3]}


def test_a_failed_item_fails_a_distributed_map_and_the_catch_reports_it():
    calls = []

    def invoke(arn, payload):
        calls.append(payload["action"])
        if payload["action"] == "chunk" and payload["chunk"] == 1:
            raise TaskFailed("ValueError", "bad chunk")
        return {"reported": payload.get("error")}

    # WHEN one chunk fails THEN the map fails as in the cloud, the Catch runs the report, and the run fails
    with pytest.raises(StatesError) as failed:
        StateMachineRunner(_fanout(), invoke).run({"job": "j", "chunks": [0, 1], "max": 0})
    assert failed.value.error == "JobFailed"
    assert calls.count("fail") == 1 and "merge" not in calls


def test_retry_stops_after_max_attempts_and_names_the_error():
    attempts = []
    definition = {
        "StartAt": "T",
        "States": {
            "T": {
                "Type": "Task",
                "Resource": FN,
                "Retry": [
                    {"ErrorEquals": ["Fatal"], "MaxAttempts": 0},
                    {"ErrorEquals": ["States.ALL"], "MaxAttempts": 2, "IntervalSeconds": 0},
                ],
                "End": True,
            }
        },
    }

    def flaky(arn, payload):
        attempts.append(1)
        raise TaskFailed("Flaky", "try again")

    with pytest.raises(StatesError, match="Flaky"):
        StateMachineRunner(definition, flaky).run({})
    assert len(attempts) == 3  # first try + 2 retries

    attempts.clear()

    def fatal(arn, payload):
        attempts.append(1)
        raise TaskFailed("Fatal", "no point")

    with pytest.raises(StatesError, match="Fatal"):
        StateMachineRunner(definition, fatal).run({})
    assert len(attempts) == 1


def test_unsupported_states_are_refused_before_running():
    definition = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 1, "End": True}}}
    with pytest.raises(UnsupportedState, match="Wait"):
        StateMachineRunner(definition, lambda arn, payload: None)


class FakeSqs:
    def __init__(self, messages):
        self.messages = messages
        self.deleted: list[str] = []

    def get_queue_url(self, QueueName):
        return {"QueueUrl": f"http://local/{QueueName}"}

    def receive_message(self, **kwargs):
        batch, self.messages = (
            self.messages[: kwargs["MaxNumberOfMessages"]],
            self.messages[kwargs["MaxNumberOfMessages"] :],
        )
        return {"Messages": batch}

    def delete_message_batch(self, QueueUrl, Entries):
        self.deleted += [e["ReceiptHandle"] for e in Entries]


def _messages(n: int) -> list[dict]:
    return [
        {"MessageId": f"m{i}", "ReceiptHandle": f"r{i}", "Body": "{}", "Attributes": {"ApproximateReceiveCount": "2"}}
        for i in range(n)
    ]


def _poller(sqs, invoke, report=True) -> SqsPoller:
    source = SqsEventSource("Fn", "Queue", "arn:aws:sqs:us-east-1:123456789012:q", 10, report)
    return SqsPoller(source, sqs, invoke, "us-east-1", lambda line: None)


def test_poller_sends_the_sqs_event_shape_and_deletes_what_succeeded():
    sqs, events = FakeSqs(_messages(3)), []

    def invoke(function, event):
        events.append(event)
        return {"batchItemFailures": [{"itemIdentifier": "m1"}]}

    assert _poller(sqs, invoke).poll_once() == 3
    (event,) = events
    record = event["Records"][0]
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"].endswith(":q")
    assert (record["messageId"], record["receiptHandle"], record["attributes"]["ApproximateReceiveCount"]) == (
        "m0",
        "r0",
        "2",
    )
    # THEN the failed message stays for redelivery, the others are deleted
    assert sqs.deleted == ["r0", "r2"]


def test_poller_keeps_every_message_when_the_invocation_fails_or_the_response_is_invalid():
    sqs = FakeSqs(_messages(2))

    def crash(function, event):
        raise FunctionError({"errorType": "RuntimeError", "errorMessage": "boom"})

    _poller(sqs, crash).poll_once()
    assert sqs.deleted == []
    sqs = FakeSqs(_messages(2))
    _poller(sqs, lambda f, e: {"batchItemFailures": [{"itemIdentifier": "unknown"}]}).poll_once()
    assert sqs.deleted == []
    # AND without ReportBatchItemFailures a returned list is ignored (the batch succeeded)
    sqs = FakeSqs(_messages(2))
    _poller(sqs, lambda f, e: {"batchItemFailures": [{"itemIdentifier": "m0"}]}, report=False).poll_once()
    assert sqs.deleted == ["r0", "r1"]


def test_sqs_event_defaults_missing_attributes():
    (record,) = sqs_event([{"MessageId": "m", "ReceiptHandle": "r", "Body": "x"}], "arn:q", "eu-west-1")["Records"]
    assert record["awsRegion"] == "eu-west-1" and record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["md5OfBody"] == "9dd4e461268c8034f5c8564e155c67a6"


def test_a_poison_message_ends_in_the_dead_letter_queue_after_max_receives(mocked_aws, monkeypatch):
    # GIVEN a queue redriving to a DLQ after 3 receives, in moto: visibility 0 s, so a failed message is back at once,
    # and short polls (nothing to wait for)
    monkeypatch.setattr(events, "POLL_WAIT_S", 0)
    sqs = boto3.client("sqs")
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3})
    queue = sqs.create_queue(QueueName="Queue", Attributes={"VisibilityTimeout": "0", "RedrivePolicy": redrive})
    sqs.send_message(QueueUrl=queue["QueueUrl"], MessageBody='{"poison": true}')
    calls = []

    def always_fails(function, event):
        calls.append(event["Records"][0]["attributes"]["ApproximateReceiveCount"])
        return {"batchItemFailures": [{"itemIdentifier": event["Records"][0]["messageId"]}]}

    source = SqsEventSource("Fn", "Queue", "arn:aws:sqs:us-east-1:123456789012:Queue", 10, True)
    poller = SqsPoller(source, sqs, always_fails, "us-east-1", lambda line: None)
    # WHEN the poller keeps polling past the visibility timeouts
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        poller.poll_once()
        moved = sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=0).get("Messages", [])
        if moved:
            break
        time.sleep(0.05)
    # THEN the function saw it 3 times, and the message now sits in the DLQ, not lost
    assert calls == ["1", "2", "3"]
    assert [m["Body"] for m in moved] == ['{"poison": true}']


@pytest.mark.parametrize(
    ("raised", "error"),
    [
        (FunctionTimeout("Task timed out after 3.00 seconds"), "States.Timeout"),
        (FunctionTimeout("Fn did not finish its init in 10 s"), "States.Timeout"),
        (FunctionCrashed("Fn: worker exited (exit status -9) after the request timed out"), "Lambda.ServiceException"),
    ],
)
def test_an_execution_fails_with_the_error_the_functions_failure_type_names(mocked_aws, raised, error) -> None:
    # GIVEN a state machine whose one task invokes a function, and an execution of it RUNNING in moto
    sfn = boto3.client("stepfunctions")
    task = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "OutputPath": "$.Payload"}
    definition = {
        "StartAt": "T",
        "States": {"T": {**task, "Parameters": {"FunctionName": FN, "Payload.$": "$"}, "End": True}},
    }
    machine = sfn.create_state_machine(
        name="m", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/r"
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]

    def invoke(function_arn, payload):
        raise raised

    watcher = ExecutionWatcher(
        {machine: "M"}, sfn, invoke, lambda line: None, account_id="123456789012", region="us-east-1"
    )

    # WHEN the local interpreter runs it and the function fails that way
    watcher._run(machine, execution)

    # THEN moto's execution reports FAILED with the error of the failure's type, whatever its message says
    described = sfn.describe_execution(executionArn=execution)
    assert (described["status"], described["error"]) == ("FAILED", error)
    assert described["cause"] == str(raised) and "stopDate" in described
