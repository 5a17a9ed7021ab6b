"""The local stack's event plumbing without workers: the States Language interpreter and the SQS poller's rules."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime

import boto3
import pytest

from sklambda_infra.local import events
from sklambda_infra.local.events import ExecutionWatcher, SqsEventSource, SqsPoller, sqs_event
from sklambda_infra.local.functions import FunctionCrashed, FunctionError, FunctionTimeout
from sklambda_infra.local.states import (
    EVENTS_PUT_EVENTS,
    LAMBDA_INVOKE,
    SNS_PUBLISH,
    WAIT_FOR_TASK_TOKEN,
    ExecutionAborted,
    StateMachineRunner,
    StatesError,
    TaskFailed,
    TaskTokenError,
    TaskTokens,
    UnsupportedState,
)

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


@pytest.mark.parametrize(
    ("state", "named"),
    [
        ({"Type": "Parallel", "Branches": [], "End": True}, "Parallel"),
        ({"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem", "End": True}, "dynamodb:putItem"),
        ({"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync", "End": True}, "startExecution"),
        ({"Type": "Task", "Resource": SNS_PUBLISH, "End": True}, "service client"),
        ({"Type": "Wait", "End": True}, "exactly one of"),
        ({"Type": "Pass", "Parameters": {"m.$": "States.Hash($.a, 'SHA-256')"}, "End": True}, "States.Hash"),
        ({"Type": "Pass", "Parameters": {"m.$": "States.Format('{}', $.a"}, "End": True}, "unclosed"),
        ({"Type": "Pass", "Parameters": {"m.$": "a.b"}, "End": True}, "neither a JSONPath"),
    ],
)
def test_unsupported_states_are_refused_before_running(state, named):
    # GIVEN a definition with something the interpreter does not run (here: a runner without service clients)
    definition = {"StartAt": "S", "States": {"S": state}}
    # WHEN a runner is made for it THEN it refuses at once, naming what is unsupported
    with pytest.raises(UnsupportedState, match=named):
        StateMachineRunner(definition, lambda arn, payload: None)


def _wait_then_pass(wait: dict) -> dict:
    return {
        "StartAt": "W",
        "States": {"W": {"Type": "Wait", **wait, "Next": "P"}, "P": {"Type": "Pass", "End": True}},
    }


NOW = datetime(2026, 11, 30, 18, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("wait", "asked"),
    [
        ({"Seconds": 600}, 600.0),
        ({"SecondsPath": "$.wait_s"}, 90.0),
        ({"Timestamp": "2026-11-30T18:05:00Z"}, 300.0),
        ({"TimestampPath": "$.until"}, 30.0),
        ({"Timestamp": "2026-11-30T17:00:00Z"}, 0.0),
    ],
)
def test_a_wait_state_waits_what_it_asks_capped_locally_and_says_so(wait, asked):
    # GIVEN a Wait state in each of its four forms, and a runner capping waits at 0 s
    lines = []
    runner = StateMachineRunner(_wait_then_pass(wait), None, log=lines.append, max_wait_s=0, now=lambda: NOW)
    # WHEN it runs
    output = runner.run({"wait_s": 90, "until": "2026-11-30T18:00:30Z"})
    # THEN the input passes through, the wait it asked for was computed and capped, and a capped wait is logged
    assert output == {"wait_s": 90, "until": "2026-11-30T18:00:30Z"}
    assert runner.waits == [("W", asked, 0.0)]
    assert any("instead of" in line for line in lines) == (asked > 0)


def test_a_wait_below_the_cap_is_not_shortened():
    runner = StateMachineRunner(_wait_then_pass({"Seconds": 0}), None, max_wait_s=5)
    runner.run({})
    assert runner.waits == [("W", 0.0, 0.0)]


@pytest.mark.parametrize("value", [-1, "ten", True])
def test_a_wait_path_that_is_not_a_number_of_seconds_fails_the_state(value):
    runner = StateMachineRunner(_wait_then_pass({"SecondsPath": "$.s"}), None, max_wait_s=0)
    with pytest.raises(StatesError) as failed:
        runner.run({"s": value})
    assert failed.value.error == "States.Runtime"


def test_a_wait_ends_with_execution_aborted_when_the_runner_is_stopped():
    stopping = threading.Event()
    stopping.set()
    runner = StateMachineRunner(_wait_then_pass({"Seconds": 60}), None, max_wait_s=60, stopping=stopping)
    with pytest.raises(ExecutionAborted):
        runner.run({})


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


def _approval(**task_fields) -> dict:
    """A callback task: the function gets the token and someone answers later, then a Catch for rejections."""
    return {
        "StartAt": "Ask",
        "States": {
            "Ask": {
                "Type": "Task",
                "Resource": f"{LAMBDA_INVOKE}{WAIT_FOR_TASK_TOKEN}",
                "Parameters": {"FunctionName": FN, "Payload": {"token.$": "$$.Task.Token", "model.$": "$.model"}},
                "ResultPath": "$.approval",
                "Catch": [{"ErrorEquals": ["Rejected"], "ResultPath": "$.error", "Next": "Refused"}],
                **task_fields,
                "End": True,
            },
            "Refused": {"Type": "Pass", "End": True},
        },
    }


def _answering(tokens: TaskTokens, answer) -> tuple[list, callable]:
    """An invoke that records its payloads and answers the token from another thread, as a client would."""
    payloads = []

    def invoke(arn, payload):
        payloads.append(payload)
        threading.Thread(target=answer, args=(tokens, payload["token"])).start()
        return {"asked": True}  # the function's own result is not the state's result

    return payloads, invoke


def test_a_callback_task_waits_for_send_task_success_and_takes_its_output():
    # GIVEN a callback task whose function passes the token on, and an approver who answers with SendTaskSuccess
    tokens = TaskTokens()
    payloads, invoke = _answering(tokens, lambda t, token: t.succeed(token, '{"approved": true}'))
    # WHEN it runs
    output = StateMachineRunner(_approval(), invoke, task_tokens=tokens).run({"model": "churn"})
    # THEN the function got a fresh token in its payload, and the state's result is the output sent
    (payload,) = payloads
    assert payload["model"] == "churn" and tokens.knows(payload["token"]) and len(payload["token"]) > 100
    assert output == {"model": "churn", "approval": {"approved": True}}


def test_an_answer_sent_before_the_task_starts_waiting_is_kept():
    # GIVEN a function that answers its own token synchronously, before it returns
    tokens = TaskTokens()

    def invoke(arn, payload):
        tokens.succeed(payload["token"], '"done"')

    # WHEN it runs THEN the early answer is the result
    assert StateMachineRunner(_approval(), invoke, task_tokens=tokens).run({"model": "m"})["approval"] == "done"


def test_send_task_failure_fails_the_state_so_its_catch_applies():
    tokens = TaskTokens()
    _, invoke = _answering(tokens, lambda t, token: t.fail(token, "Rejected", "the gate's figures are worse"))
    output = StateMachineRunner(_approval(), invoke, task_tokens=tokens).run({"model": "churn"})
    assert output["error"] == {"Error": "Rejected", "Cause": "the gate's figures are worse"}


@pytest.mark.parametrize(
    ("fields", "error"),
    [({"TimeoutSeconds": 0}, "States.Timeout"), ({"HeartbeatSeconds": 0}, "States.HeartbeatTimeout")],
)
def test_a_callback_task_nobody_answers_times_out(fields, error):
    # GIVEN a callback task that nobody answers
    tokens, payloads = TaskTokens(), []
    runner = StateMachineRunner(_approval(**fields), lambda arn, payload: payloads.append(payload), task_tokens=tokens)
    # WHEN its TimeoutSeconds / HeartbeatSeconds elapse THEN it fails with the States error for it
    with pytest.raises(StatesError) as failed:
        runner.run({"model": "m"})
    assert failed.value.error == error
    # AND an answer that comes afterwards is refused as the API refuses a closed task
    with pytest.raises(TaskTokenError) as late:
        tokens.succeed(payloads[0]["token"], "{}")
    assert late.value.code == "TaskTimedOut"


def test_heartbeats_keep_a_callback_task_alive_until_its_answer():
    tokens = TaskTokens()

    def answer(t, token):
        for _ in range(3):
            t.heartbeat(token)
        t.succeed(token, "1")

    _, invoke = _answering(tokens, answer)
    output = StateMachineRunner(_approval(HeartbeatSeconds=5), invoke, task_tokens=tokens).run({"model": "m"})
    assert output["approval"] == 1


def test_task_token_calls_are_refused_as_the_api_refuses_them():
    # GIVEN a registry with one answered token
    tokens = TaskTokens()
    token = tokens.issue("state Ask")
    # WHEN the output is not JSON THEN InvalidOutput, and the token stays open
    with pytest.raises(TaskTokenError) as invalid:
        tokens.succeed(token, "not json")
    assert invalid.value.code == "InvalidOutput"
    tokens.succeed(token, "{}")
    # WHEN the token is answered twice, or was never issued THEN TaskTimedOut / InvalidToken
    for call in (lambda: tokens.fail(token, "E"), lambda: tokens.heartbeat(token)):
        with pytest.raises(TaskTokenError) as closed:
            call()
        assert closed.value.code == "TaskTimedOut"
    with pytest.raises(TaskTokenError) as unknown:
        tokens.succeed("AAAA", "{}")
    assert unknown.value.code == "InvalidToken"


def test_a_callback_task_ends_with_execution_aborted_when_the_runner_is_stopped():
    stopping = threading.Event()
    stopping.set()
    runner = StateMachineRunner(_approval(), lambda arn, payload: None, stopping=stopping)
    with pytest.raises(ExecutionAborted):
        runner.run({"model": "m"})


EXECUTION_CONTEXT = {
    "Execution": {"Id": "arn:aws:states:us-east-1:123456789012:execution:m:e1", "Name": "e1", "Input": {}},
    "StateMachine": {"Id": "arn:aws:states:us-east-1:123456789012:stateMachine:m", "Name": "m"},
}


def _notify(resource: str, parameters: dict) -> dict:
    return {
        "StartAt": "N",
        "States": {"N": {"Type": "Task", "Resource": resource, "Parameters": parameters, "End": True}},
    }


def test_put_events_sends_detail_as_json_and_names_the_execution_in_resources():
    # GIVEN a putEvents task whose Detail is an object taken from the input
    requests = []

    def put_events(request):
        requests.append(request)
        return {"Entries": [{"EventId": "ev-1"}], "FailedEntryCount": 0}

    entry = {"Source": "sklambda.updating", "DetailType": "RetrainingSucceeded", "Detail.$": "$.report"}
    definition = _notify(EVENTS_PUT_EVENTS, {"Entries": [entry]})
    # WHEN it runs
    output = StateMachineRunner(definition, None, services={EVENTS_PUT_EVENTS: put_events}).run(
        {"report": {"model": "churn", "version": 4}}, EXECUTION_CONTEXT
    )
    # THEN the event's Detail is JSON text, its Resources name the execution and the state machine (the optimized
    # integration's rule), and the state's result is PutEvents' response
    (request,) = requests
    (sent,) = request["Entries"]
    assert json.loads(sent["Detail"]) == {"model": "churn", "version": 4}
    assert sent["Resources"] == [EXECUTION_CONTEXT["Execution"]["Id"], EXECUTION_CONTEXT["StateMachine"]["Id"]]
    assert output == {"Entries": [{"EventId": "ev-1"}], "FailedEntryCount": 0}


def test_a_failed_entry_fails_the_put_events_state():
    def put_events(request):
        return {"Entries": [{"ErrorCode": "InvalidArgument", "ErrorMessage": "no"}], "FailedEntryCount": 1}

    definition = _notify(EVENTS_PUT_EVENTS, {"Entries": [{"Source": "s", "DetailType": "d", "Detail": {}}]})
    with pytest.raises(StatesError) as failed:
        StateMachineRunner(definition, None, services={EVENTS_PUT_EVENTS: put_events}).run({})
    assert failed.value.error == "EventBridge.FailedEntry" and "InvalidArgument" in failed.value.cause


def test_sns_publish_sends_an_object_message_as_json_and_returns_the_message_id():
    requests = []

    def publish(request):
        requests.append(request)
        return {"MessageId": "msg-1"}

    definition = _notify(
        SNS_PUBLISH, {"TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Message.$": "$", "Subject": "Approve"}
    )
    output = StateMachineRunner(definition, None, services={SNS_PUBLISH: publish}).run({"model": "churn"})
    assert requests == [
        {"TopicArn": "arn:aws:sns:us-east-1:123456789012:t", "Message": '{"model": "churn"}', "Subject": "Approve"}
    ]
    assert output == {"MessageId": "msg-1"}


def test_an_sns_publish_with_a_task_token_waits_for_the_answer():
    # GIVEN an approval request published to SNS with the task token in the message (the approval step's shape)
    tokens = TaskTokens()

    def publish(request):
        token = json.loads(request["Message"])["token"]
        threading.Thread(target=tokens.succeed, args=(token, '{"approved": true}')).start()
        return {"MessageId": "msg-1"}

    parameters = {"TopicArn": "arn:t", "Message": {"token.$": "$$.Task.Token", "model.$": "$.model"}}
    definition = _notify(SNS_PUBLISH + WAIT_FOR_TASK_TOKEN, parameters)
    runner = StateMachineRunner(definition, None, services={SNS_PUBLISH: publish}, task_tokens=tokens)
    # WHEN it runs THEN its result is the approver's answer, not Publish's response
    assert runner.run({"model": "churn"}) == {"approved": True}


def test_a_rerun_with_a_used_name_is_refused_as_step_functions_refuses_it_and_runs_once(mocked_aws):
    # GIVEN an execution named "retrain-churn-4" RUNNING in moto, and the watcher
    sfn = boto3.client("stepfunctions")
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    machine = sfn.create_state_machine(
        name="m", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/r"
    )["stateMachineArn"]
    first = sfn.start_execution(stateMachineArn=machine, name="retrain-churn-4", input='{"v": 4}')["executionArn"]
    watcher = ExecutionWatcher(
        {machine: "M"}, sfn, None, lambda line: None, account_id="123456789012", region="us-east-1"
    )

    # WHEN the same name is started again with the same input while it runs THEN it is the same execution
    # (StartExecution is idempotent for STANDARD workflows), and with another input ExecutionAlreadyExists
    assert (
        sfn.start_execution(stateMachineArn=machine, name="retrain-churn-4", input='{"v": 4}')["executionArn"] == first
    )
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
        sfn.start_execution(stateMachineArn=machine, name="retrain-churn-4", input='{"v": 5}')

    # WHEN the watcher polls, the execution finishes, and the watcher polls again
    watcher.poll_once()
    assert watcher.wait(first, 10)
    watcher.poll_once()
    # THEN it ran once
    assert list(watcher.started) == [first]
    assert sfn.describe_execution(executionArn=first)["status"] == "SUCCEEDED"

    # AND once it has finished, even the same name and input is ExecutionAlreadyExists
    with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
        sfn.start_execution(stateMachineArn=machine, name="retrain-churn-4", input='{"v": 4}')


def test_service_integrations_call_moto_and_name_a_refused_request_after_the_service(mocked_aws):
    # GIVEN the integrations over boto3 clients of moto, a topic with a queue subscribed, and a definition that
    #       publishes to it then to a topic that does not exist
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="approvals")["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    services = events.service_integrations(boto3.client)
    publish = {"Type": "Task", "Resource": SNS_PUBLISH, "Parameters": {"Message.$": "$.note"}}
    definition = {
        "StartAt": "Good",
        "States": {
            "Good": {
                **publish,
                "Parameters": {**publish["Parameters"], "TopicArn": topic},
                "ResultPath": "$.sent",
                "Next": "Bad",
            },
            "Bad": {**publish, "Parameters": {**publish["Parameters"], "TopicArn": topic + "-gone"}, "End": True},
        },
    }
    # WHEN it runs
    with pytest.raises(StatesError) as failed:
        StateMachineRunner(definition, None, services=services).run({"note": "approve churn 4?"})
    # THEN the first message reached the subscriber, and the refused one failed the state with SNS.<the API's code>
    [message] = sqs.receive_message(QueueUrl=queue).get("Messages", [])
    assert json.loads(message["Body"])["Message"] == "approve churn 4?"
    assert failed.value.error == "SNS.NotFound" and failed.value.cause


def test_intrinsic_functions_build_parameters_from_the_input_and_the_context():
    # GIVEN a Pass state whose parameters use the intrinsic functions that run locally, nested and with escapes
    parameters = {
        "subject.$": "States.Format('Approve {} version {}? \\{ticket\\}', $.model, $.version)",
        "name.$": "States.Format('retrain-{}-{}', $.model, States.MathAdd($.version, 1))",
        "text.$": "States.JsonToString($.bounds)",
        "bounds.$": "States.StringToJson($.bounds_text)",
        "pair.$": "States.Array($.model, $$.Execution.Name, 'it\\'s')",
        "size.$": "States.ArrayLength($.drifted)",
        "id.$": "States.UUID()",
    }
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": parameters, "End": True}}}
    data = {
        "model": "churn",
        "version": 4,
        "bounds": {"max_latency_ratio": 1.5},
        "bounds_text": '{"min_requests": 200}',
        "drifted": ["tenure", "plan"],
    }
    # WHEN it runs
    output = StateMachineRunner(definition, None).run(data, {"Execution": {"Name": "e1"}})
    # THEN each function gives what Step Functions' would
    assert output["subject"] == "Approve churn version 4? {ticket}"
    assert output["name"] == "retrain-churn-5"
    assert output["text"] == '{"max_latency_ratio":1.5}'
    assert output["bounds"] == {"min_requests": 200}
    assert output["pair"] == ["churn", "e1", "it's"]
    assert output["size"] == 2
    assert uuid.UUID(output["id"]).version == 4


def test_an_intrinsic_function_given_the_wrong_arguments_fails_the_state():
    parameters = {"m.$": "States.Format('{} and {}', $.a)"}
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": parameters, "End": True}}}
    with pytest.raises(StatesError) as failed:
        StateMachineRunner(definition, None).run({"a": 1})
    assert failed.value.error == "States.IntrinsicFailure"


def test_a_callback_task_whose_request_fails_closes_its_token_and_fails_with_the_functions_error():
    # GIVEN a callback task whose function fails before anyone could answer
    tokens, payloads = TaskTokens(), []

    def invoke(arn, payload):
        payloads.append(payload)
        raise TaskFailed("ValueError", "no approver configured")

    # WHEN it runs THEN the state fails with the function's error, and the token can no longer be answered
    with pytest.raises(StatesError) as failed:
        StateMachineRunner(_approval(), invoke, task_tokens=tokens).run({"model": "m"})
    assert failed.value.error == "ValueError"
    with pytest.raises(TaskTokenError) as late:
        tokens.succeed(payloads[0]["token"], "{}")
    assert late.value.code == "TaskTimedOut"
