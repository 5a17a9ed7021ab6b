"""A small local interpreter of Amazon States Language, for the template's state machines.

moto stores state machines and executions but does not run Task or Map states against local functions, so the
local stack runs them here: `StateMachineRunner(definition, invoke).run(input)` walks the states and calls
`invoke(function_arn, payload)` for each Lambda task. Supported (JSONPath query language only):

- Task: `arn:aws:states:::lambda:invoke` (Parameters.FunctionName, Payload / Payload.$; the result is
  {"Payload": ..., "StatusCode": 200}) and a Lambda function ARN as Resource (the result is the payload);
  `arn:aws:states:::events:putEvents` (Parameters.Entries; each entry's Detail object is sent as JSON text and the
  execution's and state machine's ARNs are appended to its Resources, as the optimized integration does; a non-zero
  FailedEntryCount fails the state with EventBridge.FailedEntry; the result is {"Entries": [...],
  "FailedEntryCount": 0}) and `arn:aws:states:::sns:publish` (TopicArn, Message, Subject, MessageAttributes...;
  a Message that is not a string is sent as JSON text; the result is {"MessageId": ...}), both through the
  `services` the runner is given (the local stack's moto clients).
- The callback pattern: any of those three with `.waitForTaskToken` appended. A fresh task token is put in the
  context (`$$.Task.Token`), the task's request is made, then the state waits for SendTaskSuccess (its output is the
  state's result), SendTaskFailure (the state fails with that error and cause, so Retry and Catch apply), or
  TimeoutSeconds / HeartbeatSeconds (and their ...Path forms) to elapse: States.Timeout / States.HeartbeatTimeout
  (https://docs.aws.amazon.com/step-functions/latest/dg/connect-to-resource.html#connect-wait-token). Tokens live
  in a TaskTokens registry; the local stack routes SendTask* calls made against its moto endpoint to it.
- Wait: Seconds, SecondsPath, Timestamp, TimestampPath. Each wait is honoured but capped at `max_wait_s`
  (DEFAULT_MAX_LOCAL_WAIT_S), so "wait 10 minutes for canary traffic" does not stall a local run; a capped wait is
  logged with what it asked for.
- Map: inline and DISTRIBUTED (ItemProcessor or Iterator), ItemsPath, ItemSelector / Parameters, MaxConcurrency /
  MaxConcurrencyPath (items run in parallel threads, each invoking a function, so as many workers as the
  concurrency run at once), ToleratedFailurePercentage/Count. A failed DISTRIBUTED map fails with
  States.ExceedToleratedFailureThreshold, as in the cloud; an inline one with its item's error.
- Pass (Result, Parameters), Succeed, Fail (Error, Cause), Choice (the comparison operators on paths and And/Or/Not).
- InputPath, Parameters, ResultSelector, ResultPath, OutputPath; Retry (ErrorEquals, MaxAttempts, IntervalSeconds,
  BackoffRate, capped at 1 s locally) and Catch (ErrorEquals, ResultPath, Next); States.ALL and States.TaskFailed.
- The context object: $$.Execution (given by the caller), $$.State.Name / EnteredTime, $$.Task.Token, $$.Map.Item.
- Intrinsic functions in `.$` fields: States.Format, StringToJson, JsonToString, Array, ArrayLength, MathAdd, UUID
  (INTRINSICS), nested; a call given the wrong arguments fails the state with States.IntrinsicFailure.
Anything else (Parallel, other service integrations, `.sync`, other intrinsic functions, JSONata) raises
UnsupportedState before the execution starts, never silently. When the `stopping` event given to
the runner is set, a Wait or a task waiting for its token ends the run with ExecutionAborted.
"""

from __future__ import annotations

import copy
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
EVENTS_PUT_EVENTS = "arn:aws:states:::events:putEvents"
SNS_PUBLISH = "arn:aws:states:::sns:publish"
WAIT_FOR_TASK_TOKEN = ".waitForTaskToken"
# The optimized integrations run through `services` (resource ARN -> a call of the service's API).
SERVICE_INTEGRATIONS = (EVENTS_PUT_EVENTS, SNS_PUBLISH)
SUPPORTED_TYPES = {"Task", "Map", "Pass", "Succeed", "Fail", "Choice", "Wait"}
MAX_LOCAL_RETRY_WAIT_S = 1.0
# The longest a Wait state sleeps locally, whatever it asks for (a constructor parameter of StateMachineRunner).
DEFAULT_MAX_LOCAL_WAIT_S = 2.0
# How often a task waiting for its token looks at the `stopping` event.
TOKEN_POLL_S = 0.1
WAIT_FIELDS = ("Seconds", "SecondsPath", "Timestamp", "TimestampPath")

Invoke = Callable[[str, Any], Any]
# A service integration: the request (boto3's keyword arguments) -> the API's response without ResponseMetadata.
# It raises StatesError with the integration's error name (e.g. SNS.NotFoundException) when the call fails.
Service = Callable[[dict[str, Any]], dict[str, Any]]
Clock = Callable[[], datetime]


class UnsupportedState(Exception):
    """The definition uses something this interpreter does not run."""


class StatesError(Exception):
    """A state failed with an error name and a cause, as Step Functions reports them."""

    def __init__(self, error: str, cause: str = "") -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


class TaskFailed(StatesError):
    """What `invoke` raises when the function fails (error = the function's errorType)."""


class ExecutionAborted(Exception):
    """The run was stopped from outside (the `stopping` event) while a Wait or a task token was pending; not a
    StatesError, so no Catch applies (StopExecution in the cloud ends an execution as ABORTED the same way)."""


# ---------------------------------------------------------------------------------------------------------------
# Task tokens (the callback pattern)


class TaskTokenError(Exception):
    """A SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat the service refuses. `code` is the API's error name
    (https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskSuccess.html): InvalidToken (a token
    it never issued), TaskTimedOut ("the task token has either expired or the task associated with the token has
    already been closed"), InvalidOutput (output that is not JSON)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class _Pending:
    """One issued token: its outcome once sent, and the last sign of life (for HeartbeatSeconds)."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.done = threading.Event()
        self.outcome: tuple[str, Any, str] | None = None  # ("success", output, "") or ("failure", error, cause)
        self.closed: str | None = None  # why no outcome is accepted any more
        self.beat = time.monotonic()


class TaskTokens:
    """The task tokens issued by running executions and their outcomes, shared by every runner of a local stack.

    `issue(label)` gives a fresh opaque token; `succeed` / `fail` / `heartbeat` are SendTaskSuccess / Failure /
    Heartbeat (they raise TaskTokenError as the API does); `wait` blocks the task until the outcome arrives. An
    outcome sent before `wait` starts (the invoked function answers at once) is kept. Thread-safe.
    """

    def __init__(self) -> None:
        self._tokens: dict[str, _Pending] = {}
        self._lock = threading.Lock()

    def issue(self, label: str) -> str:
        token = secrets.token_urlsafe(96)  # opaque and long, like the cloud's (up to 2048 characters)
        with self._lock:
            self._tokens[token] = _Pending(label)
        return token

    def knows(self, token: str) -> bool:
        with self._lock:
            return token in self._tokens

    def _open(self, token: str) -> _Pending:
        pending = self._tokens.get(token)
        if pending is None:
            raise TaskTokenError("InvalidToken", "Invalid token")
        if pending.closed is not None or pending.outcome is not None:
            raise TaskTokenError("TaskTimedOut", f"Task Timed Out: the task was already closed ({pending.closed})")
        return pending

    def succeed(self, token: str, output: str) -> None:
        """SendTaskSuccess: `output` is the JSON text the task's result becomes."""
        try:
            value = json.loads(output)
        except (TypeError, ValueError) as e:
            raise TaskTokenError("InvalidOutput", f"Invalid Output: {e}") from None
        with self._lock:
            pending = self._open(token)
            pending.outcome = ("success", value, "")
            pending.closed = "succeeded"
        pending.done.set()

    def fail(self, token: str, error: str | None = None, cause: str | None = None) -> None:
        """SendTaskFailure: the task fails with `error` and `cause` (empty when not given)."""
        with self._lock:
            pending = self._open(token)
            pending.outcome = ("failure", error or "", cause or "")
            pending.closed = "failed"
        pending.done.set()

    def heartbeat(self, token: str) -> None:
        """SendTaskHeartbeat: the task is alive; restarts its HeartbeatSeconds."""
        with self._lock:
            self._open(token).beat = time.monotonic()

    def close(self, token: str) -> None:
        """Close a token no one will answer (its task failed before waiting): later calls get TaskTimedOut."""
        with self._lock:
            pending = self._tokens.get(token)
        if pending is not None:
            self._expire(pending, "its task failed")

    def wait(
        self,
        token: str,
        *,
        timeout_s: float | None = None,
        heartbeat_s: float | None = None,
        stopping: threading.Event | None = None,
    ) -> Any:
        """The output sent with SendTaskSuccess. Raises StatesError(error, cause) for SendTaskFailure,
        States.Timeout after `timeout_s`, States.HeartbeatTimeout when no heartbeat (nor outcome) came for
        `heartbeat_s`, ExecutionAborted when `stopping` is set. The token is closed whichever way it ends."""
        with self._lock:
            pending = self._tokens[token]
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            while True:
                now = time.monotonic()
                limits = [TOKEN_POLL_S]
                if deadline is not None:
                    limits.append(deadline - now)
                if heartbeat_s is not None:
                    limits.append(pending.beat + heartbeat_s - now)
                if pending.done.wait(max(0.0, min(limits))):
                    break
                now = time.monotonic()
                if stopping is not None and stopping.is_set() and self._expire(pending, "aborted"):
                    raise ExecutionAborted(f"{pending.label}: stopped while waiting for its task token")
                if deadline is not None and now >= deadline and self._expire(pending, "timed out"):
                    raise StatesError("States.Timeout", f"{pending.label}: no task token outcome in {timeout_s:g} s")
                beat_due = heartbeat_s is not None and now >= pending.beat + heartbeat_s
                if beat_due and self._expire(pending, "heartbeat timed out"):
                    raise StatesError("States.HeartbeatTimeout", f"{pending.label}: no heartbeat for {heartbeat_s:g} s")
        finally:
            self._expire(pending, "closed")
        kind, value, cause = pending.outcome  # type: ignore[misc]
        if kind == "failure":
            raise StatesError(value, cause)
        return value

    def _expire(self, pending: _Pending, why: str) -> bool:
        """Close a token that has no outcome yet (True); False when an outcome won the race."""
        with self._lock:
            if pending.outcome is not None:
                return False
            pending.closed = pending.closed or why
            return True


# ---------------------------------------------------------------------------------------------------------------
# JSONPath (the subset ASL definitions use: $, $.a.b, $.a[0], $$.Map.Item.Value)


def _path_parts(path: str) -> list[str | int]:
    body = path[1:]
    parts: list[str | int] = []
    for segment in body.replace("[", ".[").split("."):
        if not segment:
            continue
        if segment.startswith("[") and segment.endswith("]"):
            parts.append(int(segment[1:-1]))
        else:
            parts.append(segment)
    return parts


def read_path(data: Any, path: str, context: Mapping[str, Any] | None = None) -> Any:
    if path.startswith("$$"):
        data, path = context or {}, path[1:]
    if not path.startswith("$"):
        raise StatesError("States.Runtime", f"{path!r} is not a JSONPath")
    value = data
    for part in _path_parts(path):
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            raise StatesError("States.Runtime", f"path {path!r} does not exist in the input") from None
    return value


def write_path(data: Any, path: str | None, value: Any) -> Any:
    """ResultPath: None discards the result, "$" replaces the input, "$.a.b" sets a field of a copy."""
    if path is None:
        return data
    if path == "$":
        return value
    out = copy.deepcopy(data) if isinstance(data, dict) else {}
    node = out
    parts = _path_parts(path)
    for part in parts[:-1]:
        node = node.setdefault(part, {})  # type: ignore[union-attr]
    node[parts[-1]] = value  # type: ignore[index]
    return out


def apply_template(template: Any, data: Any, context: Mapping[str, Any]) -> Any:
    """Parameters / ItemSelector / ResultSelector: keys ending in .$ are paths or intrinsic functions, the rest
    literal."""
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = _evaluate(value, data, context) if isinstance(value, str) else value
            else:
                out[key] = apply_template(value, data, context)
        return out
    if isinstance(template, list):
        return [apply_template(v, data, context) for v in template]
    return template


# ---------------------------------------------------------------------------------------------------------------
# Intrinsic functions (https://docs.aws.amazon.com/step-functions/latest/dg/intrinsic-functions.html), a subset


@dataclass(frozen=True)
class _Call:
    name: str
    args: tuple[Any, ...]  # _Path, _Call or a literal (str, number, bool, None)


@dataclass(frozen=True)
class _Path:
    path: str


def _parse_call(text: str, start: int = 0) -> tuple[_Call, int]:
    """`States.Name(arg, ...)` from text[start:]; the call and the index after its closing parenthesis."""
    open_at = text.find("(", start)
    name = text[start:open_at].strip()
    if open_at < 0 or not name.startswith("States."):
        raise UnsupportedState(f"{text!r} is not an intrinsic function call")
    args: list[Any] = []
    i = open_at + 1
    while True:
        while i < len(text) and text[i] == " ":
            i += 1
        if i >= len(text):
            raise UnsupportedState(f"{text!r}: unclosed intrinsic function call")
        if text[i] == ")" and not args:
            return _Call(name, ()), i + 1
        if text[i] == "'":
            value, i = _string_literal(text, i)
            args.append(value)
        elif text.startswith("States.", i):
            call, i = _parse_call(text, i)
            args.append(call)
        else:
            end, depth = i, 0
            while end < len(text) and (depth or text[end] not in ",)"):
                depth += {"[": 1, "]": -1}.get(text[end], 0)
                end += 1
            token = text[i:end].strip()
            if token.startswith("$"):
                args.append(_Path(token))
            else:
                try:
                    args.append(json.loads(token))
                except ValueError:
                    raise UnsupportedState(f"{text!r}: cannot read the argument {token!r}") from None
            i = end
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == ",":
            i += 1
            continue
        if i < len(text) and text[i] == ")":
            return _Call(name, tuple(args)), i + 1
        if i >= len(text):
            raise UnsupportedState(f"{text!r}: unclosed intrinsic function call")
        raise UnsupportedState(f"{text!r}: expected , or ) at {i}")


def _string_literal(text: str, start: int) -> tuple[str, int]:
    """A single-quoted literal; a backslash escapes the next character (\\' \\{ \\} \\\\)."""
    out, i = [], start + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            out.append(text[i : i + 2] if text[i + 1] in "{}" else text[i + 1])
            i += 2
            continue
        if char == "'":
            return "".join(out), i + 1
        out.append(char)
        i += 1
    raise UnsupportedState(f"{text!r}: unclosed string literal")


def _format(template: str, values: list[Any]) -> str:
    """States.Format: each unescaped {} takes the next argument (strings as they are, anything else as JSON)."""
    out, i, rest = [], 0, list(values)
    while i < len(template):
        if template.startswith("\\{", i) or template.startswith("\\}", i):
            out.append(template[i + 1])
            i += 2
        elif template.startswith("{}", i):
            if not rest:
                raise StatesError("States.IntrinsicFailure", f"States.Format: more {{}} than arguments in {template!r}")
            value = rest.pop(0)
            out.append(value if isinstance(value, str) else json.dumps(value))
            i += 2
        else:
            out.append(template[i])
            i += 1
    if rest:
        raise StatesError("States.IntrinsicFailure", f"States.Format: more arguments than {{}} in {template!r}")
    return "".join(out)


def _string_to_json(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError) as e:
        raise StatesError("States.IntrinsicFailure", f"States.StringToJson: {e}") from None


INTRINSICS: dict[str, Callable[..., Any]] = {
    "States.Format": lambda template, *values: _format(template, list(values)),
    "States.StringToJson": _string_to_json,
    "States.JsonToString": lambda value: json.dumps(value, separators=(",", ":")),
    "States.Array": lambda *values: list(values),
    "States.ArrayLength": lambda values: len(values),
    "States.MathAdd": lambda a, b: a + b,
    "States.UUID": lambda: str(uuid.uuid4()),
}


def _check_call(call: _Call) -> None:
    if call.name not in INTRINSICS:
        raise UnsupportedState(f"intrinsic function {call.name} does not run locally (only {', '.join(INTRINSICS)})")
    for arg in call.args:
        if isinstance(arg, _Call):
            _check_call(arg)


def _call(call: _Call, data: Any, context: Mapping[str, Any]) -> Any:
    args = [
        _call(a, data, context)
        if isinstance(a, _Call)
        else read_path(data, a.path, context)
        if isinstance(a, _Path)
        else a
        for a in call.args
    ]
    try:
        return INTRINSICS[call.name](*args)
    except TypeError as e:
        raise StatesError("States.IntrinsicFailure", f"{call.name}: {e}") from None


def _evaluate(value: str, data: Any, context: Mapping[str, Any]) -> Any:
    """A `.$` field's value: a JSONPath, or an intrinsic function call."""
    if value.startswith("States."):
        call, _ = _parse_call(value)
        return _call(call, data, context)
    return read_path(data, value, context)


# ---------------------------------------------------------------------------------------------------------------
# The interpreter


def _matches(error_equals: list[str], error: str) -> bool:
    if "States.ALL" in error_equals:
        return not error.startswith("States.Runtime")
    if error in error_equals:
        return True
    return "States.TaskFailed" in error_equals and not error.startswith("States.")


def _base_resource(resource: str) -> str:
    return resource[: -len(WAIT_FOR_TASK_TOKEN)] if resource.endswith(WAIT_FOR_TASK_TOKEN) else resource


def _check_paths(name: str, template: Any) -> None:
    """A `.$` field must hold a JSONPath or an intrinsic function this interpreter runs (INTRINSICS)."""
    if isinstance(template, dict):
        for key, value in template.items():
            if key.endswith(".$") and isinstance(value, str) and value.startswith("States."):
                try:
                    call, end = _parse_call(value)
                    if value[end:].strip():
                        raise UnsupportedState(f"unexpected text after the call: {value[end:]!r}")
                    _check_call(call)
                except UnsupportedState as e:
                    raise UnsupportedState(f"state {name}: {key}: {e}") from None
            elif key.endswith(".$") and not (isinstance(value, str) and value.startswith("$")):
                raise UnsupportedState(
                    f"state {name}: {key}: {value!r} is neither a JSONPath nor an intrinsic function"
                )
            _check_paths(name, value)
    elif isinstance(template, list):
        for value in template:
            _check_paths(name, value)


def validate(definition: Mapping[str, Any], services: Iterable[str] = SERVICE_INTEGRATIONS) -> None:
    """Raise UnsupportedState for any state type or feature this interpreter does not run; `services` names the
    optimized integrations (SERVICE_INTEGRATIONS) the caller can run."""
    services = set(services)
    if definition.get("QueryLanguage", "JSONPath") != "JSONPath":
        raise UnsupportedState("only the JSONPath query language runs locally")
    for name, state in definition["States"].items():
        kind = state.get("Type")
        if kind not in SUPPORTED_TYPES:
            raise UnsupportedState(f"state {name}: type {kind} does not run locally")
        for field in ("Parameters", "ItemSelector", "ResultSelector"):
            _check_paths(name, state.get(field))
        if kind == "Task":
            resource = str(state.get("Resource", ""))
            base = _base_resource(resource)
            if base in SERVICE_INTEGRATIONS and base not in services:
                raise UnsupportedState(f"state {name}: {base} needs a service client, and the runner has none")
            lambda_arn = ":lambda:" in resource and not resource.startswith("arn:aws:states:")
            if base not in (LAMBDA_INVOKE, *SERVICE_INTEGRATIONS) and not lambda_arn:
                raise UnsupportedState(
                    f"state {name}: {resource} does not run locally (Lambda, events:putEvents and sns:publish do, "
                    f"optionally {WAIT_FOR_TASK_TOKEN})"
                )
        if kind == "Wait" and sum(field in state for field in WAIT_FIELDS) != 1:
            raise UnsupportedState(f"state {name}: a Wait state takes exactly one of {', '.join(WAIT_FIELDS)}")
        if kind == "Map":
            if "ItemReader" in state or "ResultWriter" in state or "ItemBatcher" in state:
                raise UnsupportedState(f"state {name}: ItemReader, ItemBatcher and ResultWriter do not run locally")
            validate(state.get("ItemProcessor") or state["Iterator"], services)


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _timestamp(value: Any, name: str) -> datetime:
    """An ASL timestamp (RFC 3339, e.g. 2026-11-30T18:00:00Z) as an aware datetime."""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise StatesError("States.Runtime", f"state {name}: {value!r} is not an RFC 3339 timestamp") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class StateMachineRunner:
    """Runs one definition; `invoke(function_arn, payload)` returns the function's result or raises TaskFailed.

    `services` maps an optimized integration's resource (EVENTS_PUT_EVENTS, SNS_PUBLISH) to the call that makes its
    request; a definition using one the runner was not given is refused (UnsupportedState). `task_tokens` is the
    registry SendTask* reaches (a private one when None). `max_wait_s` caps each Wait state (seconds). `stopping`,
    when set, ends a pending Wait or task token with ExecutionAborted. `now` is the clock for Timestamp waits.
    """

    def __init__(
        self,
        definition: Mapping[str, Any],
        invoke: Invoke,
        *,
        log: Callable[[str], None] | None = None,
        services: Mapping[str, Service] | None = None,
        task_tokens: TaskTokens | None = None,
        max_wait_s: float = DEFAULT_MAX_LOCAL_WAIT_S,
        stopping: threading.Event | None = None,
        now: Clock = _utc_now,
    ):
        self.services = dict(services or {})
        validate(definition, self.services)
        self.definition = definition
        self.invoke = invoke
        self.log = log or (lambda line: None)
        self.task_tokens = task_tokens if task_tokens is not None else TaskTokens()
        self.max_wait_s = max_wait_s
        self.stopping = stopping
        self.now = now
        self.transitions = 0
        self.waits: list[tuple[str, float, float]] = []  # (state, seconds asked for, seconds waited)
        self._lock = threading.Lock()

    def run(self, execution_input: Any, context: Mapping[str, Any] | None = None) -> Any:
        """The execution's output, or raises StatesError(error, cause) (or ExecutionAborted, see the class)."""
        return self._run_states(self.definition, execution_input, dict(context or {}))

    def _run_states(self, machine: Mapping[str, Any], data: Any, context: dict[str, Any]) -> Any:
        name = machine["StartAt"]
        while True:
            state = machine["States"][name]
            with self._lock:
                self.transitions += 1
            state_context = {**context, "State": {"Name": name, "EnteredTime": _iso(self.now())}}
            try:
                output, next_name = self._run_state(name, state, data, state_context)
            except StatesError as e:
                catcher = next((c for c in state.get("Catch", []) if _matches(c["ErrorEquals"], e.error)), None)
                if catcher is None:
                    raise
                self.log(f"state {name} failed with {e.error}; caught, next {catcher['Next']}")
                output = write_path(data, catcher.get("ResultPath", "$"), {"Error": e.error, "Cause": e.cause})
                next_name = catcher["Next"]
            if next_name is None:
                return output
            data, name = output, next_name

    def _run_state(self, name: str, state: Mapping[str, Any], data: Any, context: dict[str, Any]):
        kind = state["Type"]
        if kind == "Succeed":
            return self._output(state, read_path(data, state.get("InputPath", "$"))), None
        if kind == "Fail":
            raise StatesError(state.get("Error", "States.Fail"), state.get("Cause", ""))
        if kind == "Choice":
            return data, self._choose(state, data)
        input_path = state.get("InputPath", "$")
        effective = read_path(data, input_path) if input_path is not None else {}
        if kind == "Wait":
            self._wait(name, state, effective)
            return self._output(state, effective), (None if state.get("End") else state["Next"])
        if kind == "Pass":
            result = state["Result"] if "Result" in state else self._parameters(state, effective, context)
        elif kind == "Task":
            result = self._with_retry(name, state, lambda: self._task(name, state, effective, context))
        else:  # Map
            result = self._with_retry(name, state, lambda: self._map(name, state, effective, context))
        if "ResultSelector" in state:
            result = apply_template(state["ResultSelector"], result, context)
        output = write_path(data, state.get("ResultPath", "$"), result)
        return self._output(state, output), (None if state.get("End") else state["Next"])

    @staticmethod
    def _output(state: Mapping[str, Any], data: Any) -> Any:
        path = state.get("OutputPath", "$")
        return {} if path is None else read_path(data, path)

    @staticmethod
    def _parameters(state: Mapping[str, Any], data: Any, context: Mapping[str, Any]) -> Any:
        return apply_template(state["Parameters"], data, context) if "Parameters" in state else data

    def _with_retry(self, name: str, state: Mapping[str, Any], action: Callable[[], Any]) -> Any:
        attempts: dict[int, int] = {}
        while True:
            try:
                return action()
            except StatesError as e:
                rules = state.get("Retry", [])
                index = next((i for i, r in enumerate(rules) if _matches(r["ErrorEquals"], e.error)), None)
                if index is None:
                    raise
                rule = rules[index]
                done = attempts.get(index, 0)
                if done >= int(rule.get("MaxAttempts", 3)):
                    raise
                attempts[index] = done + 1
                wait = float(rule.get("IntervalSeconds", 1)) * float(rule.get("BackoffRate", 2.0)) ** done
                self.log(f"state {name} failed with {e.error}; retry {done + 1}")
                time.sleep(min(wait, MAX_LOCAL_RETRY_WAIT_S))

    def _wait(self, name: str, state: Mapping[str, Any], data: Any) -> None:
        """Sleep what the state asks for (never less than 0), at most max_wait_s; log when capped."""
        if "Seconds" in state or "SecondsPath" in state:
            seconds = state["Seconds"] if "Seconds" in state else read_path(data, state["SecondsPath"])
            if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
                raise StatesError("States.Runtime", f"state {name}: {seconds!r} is not a number of seconds >= 0")
        else:
            stamp = state["Timestamp"] if "Timestamp" in state else read_path(data, state["TimestampPath"])
            seconds = max(0.0, (_timestamp(stamp, name) - self.now()).total_seconds())
        waited = min(float(seconds), self.max_wait_s)
        if waited < seconds:
            self.log(f"state {name}: waits {waited:g} s locally instead of {seconds:g} s (max_wait_s)")
        with self._lock:
            self.waits.append((name, float(seconds), waited))
        if self.stopping is None:
            time.sleep(waited)
        elif self.stopping.wait(waited):
            raise ExecutionAborted(f"state {name}: stopped during its Wait")

    def _task(self, name: str, state: Mapping[str, Any], data: Any, context: Mapping[str, Any]) -> Any:
        resource = str(state["Resource"])
        if not resource.endswith(WAIT_FOR_TASK_TOKEN):
            return self._request(resource, self._parameters(state, data, context), data, context)
        started = time.monotonic()
        token = self.task_tokens.issue(f"state {name}")
        try:
            parameters = self._parameters(state, data, {**context, "Task": {"Token": token}})
            self._request(_base_resource(resource), parameters, data, context)
            timeout = self._seconds(name, state, "TimeoutSeconds", data)
            heartbeat = self._seconds(name, state, "HeartbeatSeconds", data)
        except BaseException:
            self.task_tokens.close(token)  # the task failed before waiting: its token is answered by no one
            raise
        self.log(f"state {name}: waiting for its task token (SendTaskSuccess / SendTaskFailure)")
        remaining = None if timeout is None else max(0.0, timeout - (time.monotonic() - started))
        return self.task_tokens.wait(token, timeout_s=remaining, heartbeat_s=heartbeat, stopping=self.stopping)

    @staticmethod
    def _seconds(name: str, state: Mapping[str, Any], field: str, data: Any) -> float | None:
        """TimeoutSeconds / HeartbeatSeconds, or their ...Path form read from the input; None when not set."""
        if field in state:
            value = state[field]
        elif f"{field}Path" in state:
            value = read_path(data, state[f"{field}Path"])
        else:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise StatesError("States.Runtime", f"state {name}: {field} {value!r} is not a number of seconds >= 0")
        return float(value)

    def _request(self, resource: str, parameters: Any, data: Any, context: Mapping[str, Any]) -> Any:
        if resource == LAMBDA_INVOKE:
            function = str(parameters["FunctionName"])
            payload = parameters.get("Payload", data)
            return {"Payload": self.invoke(function, payload), "StatusCode": 200, "ExecutedVersion": "$LATEST"}
        if resource == EVENTS_PUT_EVENTS:
            return self._put_events(parameters, context)
        if resource == SNS_PUBLISH:
            request = dict(parameters)
            if "Message" in request and not isinstance(request["Message"], str):
                request["Message"] = json.dumps(request["Message"])
            return self.services[SNS_PUBLISH](request)
        return self.invoke(resource, parameters)

    def _put_events(self, parameters: Mapping[str, Any], context: Mapping[str, Any]) -> Any:
        """The optimized integration: Detail objects as JSON text, the execution's and state machine's ARNs appended
        to each entry's Resources, and a non-zero FailedEntryCount failing the state
        (https://docs.aws.amazon.com/step-functions/latest/dg/connect-eventbridge.html)."""
        arns = [
            arn
            for arn in ((context.get("Execution") or {}).get("Id"), (context.get("StateMachine") or {}).get("Id"))
            if arn
        ]
        entries = []
        for entry in parameters.get("Entries") or []:
            entry = dict(entry)
            if "Detail" in entry and not isinstance(entry["Detail"], str):
                entry["Detail"] = json.dumps(entry["Detail"])
            entry["Resources"] = [*entry.get("Resources", []), *arns]
            entries.append(entry)
        result = self.services[EVENTS_PUT_EVENTS]({**parameters, "Entries": entries})
        if result.get("FailedEntryCount"):
            raise StatesError("EventBridge.FailedEntry", json.dumps(result))
        return result

    def _map(self, name: str, state: Mapping[str, Any], data: Any, context: Mapping[str, Any]) -> list[Any]:
        items = read_path(data, state.get("ItemsPath", "$"))
        if not isinstance(items, list):
            raise StatesError("States.Runtime", f"state {name}: ItemsPath does not select an array")
        processor = state.get("ItemProcessor") or state["Iterator"]
        distributed = (processor.get("ProcessorConfig") or {}).get("Mode") == "DISTRIBUTED"
        selector = state.get("ItemSelector", state.get("Parameters"))
        concurrency = state.get("MaxConcurrency", 0)
        if "MaxConcurrencyPath" in state:
            concurrency = read_path(data, state["MaxConcurrencyPath"])
        concurrency = int(concurrency) or len(items) or 1

        def run_item(index: int, item: Any) -> Any:
            item_context = {**context, "Map": {"Item": {"Index": index, "Value": item}}}
            item_input = apply_template(selector, data, item_context) if selector is not None else item
            return self._run_states(processor, item_input, item_context)

        results: list[Any] = [None] * len(items)
        failures: list[StatesError] = []
        with ThreadPoolExecutor(max_workers=min(concurrency, max(len(items), 1))) as pool:
            futures = [pool.submit(run_item, i, item) for i, item in enumerate(items)]
            for i, future in enumerate(futures):
                try:
                    results[i] = future.result()
                except StatesError as e:
                    failures.append(e)
        if failures:
            tolerated = self._tolerated(state, len(items), len(failures))
            if not tolerated:
                if distributed:
                    raise StatesError(
                        "States.ExceedToleratedFailureThreshold",
                        f"{len(failures)} of {len(items)} items failed; first: {failures[0].error}: "
                        f"{failures[0].cause}",
                    )
                raise failures[0]
        return results

    @staticmethod
    def _tolerated(state: Mapping[str, Any], total: int, failed: int) -> bool:
        if "ToleratedFailureCount" in state and failed <= int(state["ToleratedFailureCount"]):
            return True
        percentage = state.get("ToleratedFailurePercentage")
        return percentage is not None and failed * 100 <= float(percentage) * total

    def _choose(self, state: Mapping[str, Any], data: Any) -> str:
        for rule in state.get("Choices", []):
            if self._rule(rule, data):
                return rule["Next"]
        if "Default" not in state:
            raise StatesError("States.NoChoiceMatched", "no Choice rule matched and there is no Default")
        return state["Default"]

    def _rule(self, rule: Mapping[str, Any], data: Any) -> bool:
        if "And" in rule:
            return all(self._rule(r, data) for r in rule["And"])
        if "Or" in rule:
            return any(self._rule(r, data) for r in rule["Or"])
        if "Not" in rule:
            return not self._rule(rule["Not"], data)
        variable = rule["Variable"]
        try:
            value = read_path(data, variable)
        except StatesError:
            value = _MISSING
        for operator, expected in rule.items():
            if operator in ("Variable", "Next"):
                continue
            if operator == "IsPresent":
                return (value is not _MISSING) == expected
            if value is _MISSING:
                return False
            if operator.endswith("Path"):
                expected, operator = read_path(data, expected), operator[: -len("Path")]
            return _compare(operator, value, expected)
        raise UnsupportedState(f"Choice rule without a comparison: {json.dumps(rule)}")


_MISSING = object()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _compare(operator: str, value: Any, expected: Any) -> bool:
    if operator == "IsNull":
        return (value is None) == expected
    if operator == "IsBoolean":
        return isinstance(value, bool) == expected
    if operator == "IsNumeric":
        return (isinstance(value, int | float) and not isinstance(value, bool)) == expected
    if operator == "IsString":
        return isinstance(value, str) == expected
    for prefix in ("String", "Numeric", "Boolean", "Timestamp"):
        if operator.startswith(prefix):
            relation = operator[len(prefix) :]
            break
    else:
        raise UnsupportedState(f"Choice operator {operator} does not run locally")
    return {
        "Equals": value == expected,
        "LessThan": value < expected,
        "GreaterThan": value > expected,
        "LessThanEquals": value <= expected,
        "GreaterThanEquals": value >= expected,
    }[relation]
