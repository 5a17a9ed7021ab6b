"""Event sources of the local stack: SQS event source mappings and Step Functions executions.

SqsPoller: one thread per SQS event source mapping of the translated template (SAM writes one per `Type: SQS`
event of a function), doing what Lambda's event source mapping does. It long-polls the queue in moto, invokes the
function with the SQS event shape (at most BatchSize records), deletes the messages that succeeded and leaves the
others to come back after the queue's visibility timeout. With
`FunctionResponseTypes: [ReportBatchItemFailures]` only the messages named in `batchItemFailures` stay; when the
invocation itself fails, every message stays. The dead-letter queue is moto's: it applies the queue's
RedrivePolicy (maxReceiveCount) when a message is received once too often.

ExecutionWatcher: moto keeps state machines and executions (so `states:StartExecution` from a function works
against the local endpoint) but does not run them. The watcher polls moto for RUNNING executions of the
template's state machines, runs each with the local interpreter (`states.py`) in a thread, invoking the
template's functions by ARN and the optimized integrations (events:putEvents, sns:publish: `service_integrations`)
through moto, and records SUCCEEDED / FAILED with output, error and cause on moto's execution, so
`describe-execution` shows the result. Each execution runs once: the watcher remembers every execution ARN it
started, and moto answers a StartExecution that reuses a name as Step Functions does (the same execution for the
same name and input while it runs, ExecutionAlreadyExists otherwise). Its task tokens live in one TaskTokens
registry, which the local stack routes moto's SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat to
(moto_patches.route_task_tokens). An execution still waiting (Wait, task token) when the watcher stops ends ABORTED.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sklambda_infra.local.functions import FunctionError, FunctionTimeout, InvocationError
from sklambda_infra.local.states import (
    DEFAULT_MAX_LOCAL_WAIT_S,
    EVENTS_PUT_EVENTS,
    SNS_PUBLISH,
    ExecutionAborted,
    Service,
    StateMachineRunner,
    StatesError,
    TaskFailed,
    TaskTokens,
)
from sklambda_infra.template import EVENT_SOURCE_MAPPING, Resolver, referenced_function, resources_of_type

Log = Callable[[str], None]
Invoke = Callable[[str, Any], Any]
MAX_SQS_BATCH = 10  # ReceiveMessage returns at most 10 messages
POLL_WAIT_S = 1  # short long-polls, so that stop() is quick


@dataclass(frozen=True)
class SqsEventSource:
    function: str  # logical id
    event: str  # the AWS::Lambda::EventSourceMapping's logical id
    queue_arn: str
    batch_size: int = 10
    report_batch_item_failures: bool = False
    enabled: bool = True


def sqs_event_sources(resolver: Resolver) -> list[SqsEventSource]:
    """Every AWS::Lambda::EventSourceMapping from an SQS queue to one of the template's enabled functions (SAM
    writes one per `Type: SQS` event); `resolver` must know the provisioned physical ids."""
    found = []
    for logical_id in resources_of_type(resolver.template, EVENT_SOURCE_MAPPING):
        if not resolver.enabled(logical_id):
            continue
        props = resolver.template["Resources"][logical_id].get("Properties") or {}
        function = referenced_function(resolver, props.get("FunctionName"))
        queue_arn = str(resolver.resolve(props.get("EventSourceArn", "")))
        if function is None or not queue_arn.startswith("arn:") or queue_arn.split(":")[2] != "sqs":
            continue
        props = resolver.resolve(props)
        found.append(
            SqsEventSource(
                function=function,
                event=logical_id,
                queue_arn=queue_arn,
                batch_size=int(props.get("BatchSize", 10)),
                report_batch_item_failures="ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or []),
                enabled=str(props.get("Enabled", True)).lower() != "false",
            )
        )
    return found


def sqs_event(messages: list[Mapping[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS event source mapping sends, for messages from ReceiveMessage."""
    records = []
    for message in messages:
        attributes = message.get("Attributes", {})
        records.append(
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": {
                    "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
                    "SentTimestamp": attributes.get("SentTimestamp", str(int(time.time() * 1000))),
                    "SenderId": attributes.get("SenderId", "AIDAIENQZJOLO23YVJ4VO"),
                    "ApproximateFirstReceiveTimestamp": attributes.get(
                        "ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000))
                    ),
                },
                "messageAttributes": {
                    name: {
                        "stringValue": value.get("StringValue"),
                        "binaryValue": value.get("BinaryValue"),
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": value.get("DataType", "String"),
                    }
                    for name, value in (message.get("MessageAttributes") or {}).items()
                },
                "md5OfBody": message.get("MD5OfBody") or hashlib.md5(message["Body"].encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        )
    return {"Records": records}


class SqsPoller:
    """Lambda's SQS event source mapping for one function event, in a thread."""

    def __init__(self, source: SqsEventSource, sqs: Any, invoke: Invoke, region: str, log: Log) -> None:
        self.source = source
        self.sqs = sqs
        self.invoke = invoke
        self.region = region
        self.log = log
        self.queue_url = sqs.get_queue_url(QueueName=source.queue_arn.rsplit(":", 1)[-1])["QueueUrl"]
        self.invocations = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name=f"sqs-{source.function}-{source.event}")

    def start(self) -> None:
        if self.source.enabled:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=POLL_WAIT_S + 5)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as e:  # the stack may be stopping (moto gone); never kill the thread silently
                if self._stop.is_set():
                    return
                self.log(f"[{self.source.function}] SQS poller error: {type(e).__name__}: {e}")
                self._stop.wait(1)

    def poll_once(self) -> int:
        """Receive one batch and process it; the number of messages received."""
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=min(self.source.batch_size, MAX_SQS_BATCH),
            WaitTimeSeconds=POLL_WAIT_S,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages") or []
        if not messages or self._stop.is_set():
            return len(messages)
        self.invocations += 1
        try:
            result = self.invoke(self.source.function, sqs_event(messages, self.source.queue_arn, self.region))
        except InvocationError as e:
            self.log(f"[{self.source.function}] SQS batch of {len(messages)} failed ({e}); messages stay in the queue")
            return len(messages)
        failed = self._failed_ids(result, messages)
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        if failed:
            self.log(
                f"[{self.source.function}] {len(failed)} of {len(messages)} SQS messages reported as failed; they "
                "come back after the visibility timeout"
            )
        return len(messages)

    def _failed_ids(self, result: Any, messages: list[Mapping[str, Any]]) -> set[str]:
        """Lambda's rules for a batch response: an invalid one fails the whole batch."""
        if not self.source.report_batch_item_failures:
            return set()
        if not isinstance(result, dict) or not result.get("batchItemFailures"):
            return set()
        ids = {m["MessageId"] for m in messages}
        failed = set()
        for failure in result["batchItemFailures"]:
            identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
            if identifier not in ids:
                return ids  # a missing or unknown identifier: Lambda treats the whole batch as failed
            failed.add(identifier)
        return failed


# The prefix of a failed service integration's error name: <prefix>.<the API's error code>.
_ERROR_PREFIX = {"events": "EventBridge", "sns": "SNS"}


def service_integrations(client: Callable[[str], Any]) -> dict[str, Service]:
    """The optimized integrations the interpreter runs, as calls through `client(service)` (the local stack's boto3
    clients of moto): events:putEvents -> PutEvents, sns:publish -> Publish. Each returns the API's response without
    ResponseMetadata; an error the API answers fails the state with `<EventBridge|SNS>.<error code>` and the message
    as its cause, a request boto3 refuses (a missing or misspelt parameter) with States.Runtime."""
    from botocore.exceptions import ClientError, ParamValidationError

    def integration(service: str, operation: str) -> Service:
        def call(request: dict[str, Any]) -> dict[str, Any]:
            try:
                response = getattr(client(service), operation)(**request)
            except ClientError as e:
                error = e.response.get("Error", {})
                code = f"{_ERROR_PREFIX[service]}.{error.get('Code', 'Error')}"
                raise StatesError(code, error.get("Message", "")) from None
            except ParamValidationError as e:
                raise StatesError("States.Runtime", f"{service} {operation}: {e}") from None
            response.pop("ResponseMetadata", None)
            return response

        return call

    return {EVENTS_PUT_EVENTS: integration("events", "put_events"), SNS_PUBLISH: integration("sns", "publish")}


class ExecutionWatcher:
    """Runs moto's RUNNING executions of the given state machines with the local interpreter.

    `services` are the optimized integrations (service_integrations), `task_tokens` the registry SendTask* calls
    reach (a private one when None), `max_wait_s` the cap of each Wait state (states.DEFAULT_MAX_LOCAL_WAIT_S)."""

    def __init__(
        self,
        state_machines: Mapping[str, str],  # ARN -> logical id
        stepfunctions: Any,
        invoke_arn: Invoke,
        log: Log,
        *,
        account_id: str,
        region: str,
        poll_s: float = 0.2,
        services: Mapping[str, Service] | None = None,
        task_tokens: TaskTokens | None = None,
        max_wait_s: float = DEFAULT_MAX_LOCAL_WAIT_S,
    ) -> None:
        self.state_machines = dict(state_machines)
        self.sfn = stepfunctions
        self.invoke_arn = invoke_arn
        self.log = log
        self.account_id = account_id
        self.region = region
        self.poll_s = poll_s
        self.services = dict(services or {})
        self.task_tokens = task_tokens if task_tokens is not None else TaskTokens()
        self.max_wait_s = max_wait_s
        self._started_lock = threading.Lock()
        self.started: dict[str, threading.Thread] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="stepfunctions-watcher")

    def start(self) -> None:
        if self.state_machines:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll_once()
            except Exception as e:
                if self._stop.is_set():
                    return
                self.log(f"[states] watcher error: {type(e).__name__}: {e}")

    def poll_once(self) -> None:
        for arn in self.state_machines:
            pages = self.sfn.get_paginator("list_executions").paginate(stateMachineArn=arn, statusFilter="RUNNING")
            for page in pages:
                for execution in page["executions"]:
                    execution_arn = execution["executionArn"]
                    with self._started_lock:
                        if execution_arn in self.started:
                            continue
                        thread = threading.Thread(
                            target=self._run,
                            args=(arn, execution_arn),
                            daemon=True,
                            name=f"execution-{execution['name']}",
                        )
                        self.started[execution_arn] = thread
                    thread.start()

    def wait(self, execution_arn: str, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while execution_arn not in self.started:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        thread = self.started[execution_arn]
        thread.join(max(0.0, deadline - time.monotonic()))
        return not thread.is_alive()

    def _run(self, state_machine_arn: str, execution_arn: str) -> None:
        name = self.state_machines[state_machine_arn]
        described = self.sfn.describe_execution(executionArn=execution_arn)
        definition = json.loads(self.sfn.describe_state_machine(stateMachineArn=state_machine_arn)["definition"])
        context = {
            "Execution": {
                "Id": execution_arn,
                "Name": described["name"],
                "Input": json.loads(described.get("input") or "{}"),
                "StartTime": described["startDate"].isoformat(),
            },
            "StateMachine": {"Id": state_machine_arn, "Name": state_machine_arn.rsplit(":", 1)[-1]},
        }
        self.log(f"[{name}] execution {described['name']} started (local interpreter)")
        started = time.monotonic()
        try:
            runner = StateMachineRunner(
                definition,
                self._invoke,
                log=lambda line: self.log(f"[{name}] {line}"),
                services=self.services,
                task_tokens=self.task_tokens,
                max_wait_s=self.max_wait_s,
                stopping=self._stop,
            )
            output = runner.run(context["Execution"]["Input"], context)
        except ExecutionAborted as e:
            self.log(f"[{name}] execution {described['name']} ABORTED: {e}")
            with contextlib.suppress(Exception):  # the stack is stopping: moto may be gone already
                self._finish(execution_arn, "ABORTED", cause=str(e))
            return
        except StatesError as e:
            self._finish(execution_arn, "FAILED", error=e.error, cause=e.cause)
            self.log(f"[{name}] execution {described['name']} FAILED: {e.error}: {e.cause[:500]}")
            return
        except Exception as e:  # an interpreter bug or an unsupported state: the execution fails, visibly
            self._finish(execution_arn, "FAILED", error="States.Runtime", cause=f"{type(e).__name__}: {e}")
            self.log(f"[{name}] execution {described['name']} FAILED in the local interpreter: {e}")
            return
        self._finish(execution_arn, "SUCCEEDED", output=output)
        self.log(f"[{name}] execution {described['name']} SUCCEEDED in {time.monotonic() - started:.2f} s")

    def _invoke(self, function_arn: str, payload: Any) -> Any:
        try:
            return self.invoke_arn(function_arn, payload)
        except FunctionError as e:
            raise TaskFailed(str(e.error.get("errorType", "Error")), json.dumps(e.error)) from None
        except FunctionTimeout as e:  # ran past its Timeout (handler or init): the Task timed out
            raise TaskFailed("States.Timeout", str(e)) from None
        except InvocationError as e:  # crashed, or never got to run
            raise TaskFailed("Lambda.ServiceException", str(e)) from None

    def _finish(self, execution_arn: str, status: str, *, output: Any = None, error: str = "", cause: str = "") -> None:
        """Record the outcome on moto's execution (moto runs in this process)."""
        from sklambda_infra.local.moto_patches import record_execution_outcome

        out = json.dumps(output) if status == "SUCCEEDED" else None
        record_execution_outcome(
            self.account_id, self.region, execution_arn, status, output=out, error=error, cause=cause
        )
