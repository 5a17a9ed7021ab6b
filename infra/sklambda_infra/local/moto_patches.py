"""Every reach into moto's private internals, in one module, for the moto release the patches were written for.

The local stack runs moto's server in this process (ThreadedMotoServer), so where moto lacks something the template
relies on, the stack can change moto's own objects. Each function below names what moto lacks. They touch private
names (``moto.firehose.models``, ``moto.s3.notifications._get_s3_event``, ``moto.stepfunctions.models``) that moto
may rename or reshape in any release, so importing this module checks ``moto.__version__`` first and refuses any
version outside SUPPORTED_MOTO (pyproject.toml pins ``moto[server]==5.2.5``). To move to a newer moto: re-check each
patch against its source, then widen SUPPORTED_MOTO.

Every patch is installed at most once per process and is idempotent.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import moto

# The moto releases these patches were written against and checked with: >=5.2.5, <5.3.
SUPPORTED_MOTO = ((5, 2, 5), (5, 3, 0))

# A Firehose stream's partitioner: a record's data and the delivery time -> the S3 prefix the record belongs under.
Partitioner = Callable[[bytes, datetime], str]

_lock = threading.Lock()
_installed: set[str] = set()
logger = logging.getLogger(__name__)


class UnsupportedMoto(RuntimeError):
    """The installed moto is not one the patches of moto's internals were written for."""


def _version_tuple(version: str) -> tuple[int, int, int]:
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", version)
    if not match:
        raise UnsupportedMoto(f"cannot read moto's version {version!r}")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def check_moto_version(version: str) -> None:
    """Raise UnsupportedMoto unless ``version`` (moto.__version__, e.g. ``5.2.5``) is within SUPPORTED_MOTO."""
    low, high = SUPPORTED_MOTO
    if not low <= _version_tuple(version) < high:
        wanted = f">={'.'.join(map(str, low))},<{'.'.join(map(str, high))}"
        raise UnsupportedMoto(
            f"the local stack patches moto's internals for moto {wanted} (pyproject.toml pins moto[server]==5.2.5), "
            f"but moto {version} is installed. Reinstall the pinned one (`.venv/bin/pip install -e '.[dev]'`), or "
            f"check every patch in {__name__} against moto {version} and widen SUPPORTED_MOTO."
        )


check_moto_version(moto.__version__)


def _once(name: str) -> bool:
    """True the first time ``name`` is asked for in this process (the caller installs then), False afterwards."""
    with _lock:
        if name in _installed:
            return False
        _installed.add(name)
        return True


# --------------------------------------------------------------------------------------------------------------
# Firehose: dynamic partitioning


def partition_firehose_deliveries(partitioner_for: Callable[[str], Partitioner | None]) -> None:
    """Write Firehose records to S3 under the prefix each stream's partitioner gives them.

    moto lacks: dynamic partitioning. moto 5.2.5's ``FirehoseBackend.put_s3_records`` writes each PutRecord(Batch)
    call as one object under ``<Prefix>YYYY/MM/DD/HH/`` and evaluates no ``!{...}`` expression of the prefix (no moto
    issue found; LocalStack's is localstack/localstack#8169). Wrapped here: a stream for which
    ``partitioner_for(stream_name)`` returns a Partitioner has its records grouped by the prefix it gives each one and
    written as one object per prefix, named as Firehose names them; any other stream keeps moto's behaviour.
    """
    if not _once("firehose"):
        return
    from moto.firehose.models import FirehoseBackend
    from moto.s3.models import s3_backends

    original = FirehoseBackend.put_s3_records

    def put_s3_records(self, delivery_stream_name, version_id, s3_destination, records):
        partitioner = partitioner_for(delivery_stream_name)
        if partitioner is None:
            return original(self, delivery_stream_name, version_id, s3_destination, records)
        now = datetime.now(UTC)
        groups: dict[str, list[bytes]] = defaultdict(list)
        for record in records:
            groups[partitioner(record["Data"], now)].append(record["Data"])
        bucket = s3_destination["BucketARN"].split(":")[-1]
        stamp = now.strftime("%Y-%m-%d-%H-%M-%S")
        for prefix, data in groups.items():
            key = f"{prefix}{delivery_stream_name}-{version_id}-{stamp}-{uuid.uuid4()}"
            s3_backends[self.account_id][self.partition].put_object(bucket, key, b"".join(data))
        return [{"RecordId": str(uuid.uuid4())} for _ in records]

    FirehoseBackend.put_s3_records = put_s3_records


# --------------------------------------------------------------------------------------------------------------
# S3: event notification fields


def enrich_s3_notifications() -> None:
    """Give moto's S3 event notifications the ``versionId`` and ``sequencer`` fields real S3 sends.

    moto lacks: moto 5.2.5's ``moto.s3.notifications._get_s3_event`` builds ObjectCreated records with only the
    object's key, size and eTag (no moto issue found). S3 sends ``versionId`` for a versioned bucket and a
    ``sequencer`` (hex, increasing per key) always (https://docs.aws.amazon.com/AmazonS3/latest/userguide/
    notification-content-structure.html); consumers that key on the object version (exactly-once batch scoring)
    need them. Wrapped here: both are added when moto's record lacks them.
    """
    if not _once("s3-notifications"):
        return
    from moto.s3 import notifications

    original = notifications._get_s3_event
    counter = iter(range(1, 1 << 62))

    def get_s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict[str, Any]:
        event = original(event_name, bucket, key, notification_id)
        for record in event.get("Records", []):
            obj = record["s3"]["object"]
            version = getattr(key, "version_id", None)
            if version and version != "null":
                obj.setdefault("versionId", version)
            obj.setdefault("sequencer", f"{int(time.time() * 1000):012X}{next(counter):08X}")
        return event

    notifications._get_s3_event = get_s3_event


# --------------------------------------------------------------------------------------------------------------
# Step Functions: an execution's outcome


def record_execution_outcome(
    account_id: str,
    region: str,
    execution_arn: str,
    status: str,
    *,
    output: str | None = None,
    error: str = "",
    cause: str = "",
) -> None:
    """Set a Step Functions execution's ``status`` (``SUCCEEDED`` with ``output`` as JSON text, or ``FAILED`` with
    ``error`` and ``cause``) and its stop date on moto's execution, so DescribeExecution reports it.

    moto lacks: running executions. moto 5.2.5 keeps state machines and executions but never runs them: an execution
    stays RUNNING (or FAILED for every one with SF_EXECUTION_HISTORY_TYPE=FAILURE; getmoto/moto#6154, #6155), and no
    API sets its outcome. The local stack runs the execution itself (local/states.py) and writes the outcome onto
    moto's ``Execution`` object here. Raises moto's ExecutionDoesNotExist for an unknown ``execution_arn``.
    """
    from moto.stepfunctions.models import stepfunctions_backends

    execution = stepfunctions_backends[account_id][region].describe_execution(execution_arn)
    execution.status = status
    execution.stop_date = datetime.now(UTC)
    if status == "SUCCEEDED":
        execution.output = output
    else:
        execution.error, execution.cause = error, cause


# --------------------------------------------------------------------------------------------------------------
# Step Functions: task tokens (the callback pattern)

# The registries of task tokens the local interpreter waits on (one per running local stack in this process).
_token_registries: list[Any] = []


def route_task_tokens(tokens: Any) -> None:
    """Deliver SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat calls made against moto to ``tokens`` (a
    ``sklambda_infra.local.states.TaskTokens``), where the waiting interpreter thread gets them.

    moto lacks: task tokens. moto 5.2.5's ``StepFunctionBackend.send_task_success`` / ``send_task_failure`` /
    ``send_task_heartbeat`` do nothing and accept any token, and ``StepFunctionResponse.send_task_failure`` drops the
    ``cause`` (moto's own executor, enabled by ``execute_state_machine``, runs no local function, so it is not used).
    Wrapped here, at the response level so that ``cause`` is read: a token one of the routed registries issued gets
    its outcome; any other token, or a bad output, is answered with the API's error
    (https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskSuccess.html): InvalidToken for a
    token never issued, TaskTimedOut for a task already closed (answered, timed out or aborted), InvalidOutput for
    output that is not JSON. ``unroute_task_tokens`` removes the registry when its stack stops.
    """
    with _lock:
        if tokens not in _token_registries:
            _token_registries.append(tokens)
    if not _once("stepfunctions-task-tokens"):
        return
    from moto.core.exceptions import AWSError
    from moto.core.responses import EmptyResult
    from moto.stepfunctions.responses import StepFunctionResponse

    def deliver(response: Any, call: Callable[[Any, str], None]) -> Any:
        token = response._get_param("taskToken")
        with _lock:
            registries = list(_token_registries)
        owner = next((r for r in registries if r.knows(token)), None)
        if owner is None:
            raise AWSError("Invalid Token: 'Invalid token'", "InvalidToken")
        from sklambda_infra.local.states import TaskTokenError  # states.py imports no moto; this module does

        try:
            call(owner, token)
        except TaskTokenError as e:
            raise AWSError(e.message, e.code) from None
        return EmptyResult()

    def send_task_success(self: Any) -> Any:
        return deliver(self, lambda owner, token: owner.succeed(token, self._get_param("output")))

    def send_task_failure(self: Any) -> Any:
        return deliver(self, lambda owner, token: owner.fail(token, self._get_param("error"), self._get_param("cause")))

    def send_task_heartbeat(self: Any) -> Any:
        return deliver(self, lambda owner, token: owner.heartbeat(token))

    StepFunctionResponse.send_task_success = send_task_success
    StepFunctionResponse.send_task_failure = send_task_failure
    StepFunctionResponse.send_task_heartbeat = send_task_heartbeat


def unroute_task_tokens(tokens: Any) -> None:
    """Stop delivering SendTask* calls to ``tokens`` (its stack stopped); their tokens become InvalidToken."""
    with _lock:
        if tokens in _token_registries:
            _token_registries.remove(tokens)


# --------------------------------------------------------------------------------------------------------------
# EventBridge: rules whose targets are state machines


def start_state_machine_targets() -> None:
    """Make a PutEvents that matches a rule with a Step Functions target start an execution in moto.

    moto lacks: Step Functions targets. moto 5.2.5's ``moto.events.models.Rule.send_to_targets`` (called by
    ``put_events`` for every rule of the event's bus) delivers to log groups, archives, SQS queues, event buses and
    API destinations only, and raises NotImplementedError for any other target, an ``arn:aws:states:`` one
    included; it also ignores the rule's State (a DISABLED rule still delivers) and applies neither Input nor
    InputPath. Wrapped here: a DISABLED rule delivers nothing, as in EventBridge; for a matching event, each state
    machine target gets a StartExecution in moto's Step Functions (where the local stack's ExecutionWatcher runs
    it) whose input is the event as EventBridge sends it (``time`` as ISO 8601 text), or the target's Input (JSON
    text), InputPath (applied to the event) or InputTransformer (moto's own template parser)
    (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html); the rule's other
    targets go to moto's original. A StartExecution that fails is logged (EventBridge would retry, then drop the
    event or send it to the target's dead-letter queue): PutEvents itself still succeeds, as in the cloud.
    """
    if not _once("events-state-machine-targets"):
        return
    from moto.core.utils import iso_8601_datetime_without_milliseconds, utcfromtimestamp
    from moto.events.models import Rule
    from moto.events.utils import EventTemplateParser
    from moto.stepfunctions.models import stepfunctions_backends

    from sklambda_infra.local.states import read_path

    original = Rule.send_to_targets

    def is_state_machine(target: dict[str, Any]) -> bool:
        return str(target.get("Arn", "")).split(":")[2:3] == ["states"]

    def target_input(target: dict[str, Any], event: dict[str, Any]) -> Any:
        sent = {key: value for key, value in event.items() if key != "ingestion-time"}
        if isinstance(sent.get("time"), int | float):
            sent["time"] = iso_8601_datetime_without_milliseconds(utcfromtimestamp(sent["time"]))
        if "Input" in target:
            return json.loads(target["Input"])
        if "InputPath" in target:
            return read_path(sent, target["InputPath"])
        transformer = target.get("InputTransformer")
        if transformer:
            return EventTemplateParser.parse(
                input_template=transformer.get("InputTemplate"),
                input_paths_map=transformer.get("InputPathsMap", {}),
                event={**sent, "ingestion-time": event.get("ingestion-time")},
            )
        return sent

    def send_to_targets(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
        if str(getattr(self, "state", "ENABLED")).upper() == "DISABLED":
            return
        machines = [t for t in self.targets if is_state_machine(t)]
        if machines and self.event_pattern.matches_event(original_event):
            for target in machines:
                arn = str(target["Arn"])
                _, _, _, region, account, _ = arn.split(":", 5)
                try:
                    execution_input = json.dumps(target_input(target, original_event))
                    stepfunctions_backends[account][region].start_execution(
                        arn, name=str(uuid.uuid4()), execution_input=execution_input
                    )
                except Exception as e:  # a bad InputPath, an unknown machine: never fail the caller's PutEvents
                    logger.warning("rule %s: StartExecution of %s failed: %s: %s", self.name, arn, type(e).__name__, e)
        others = [t for t in self.targets if not is_state_machine(t)]
        if not others:
            return
        if machines:
            self = copy.copy(self)
            self.targets = others
        original(self, original_event, transform_input)

    Rule.send_to_targets = send_to_targets
