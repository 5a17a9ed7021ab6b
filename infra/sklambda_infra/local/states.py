"""A small local interpreter of Amazon States Language, for the template's state machines.

moto stores state machines and executions but does not run Task or Map states against local functions, so the
local stack runs them here: `StateMachineRunner(definition, invoke).run(input)` walks the states and calls
`invoke(function_arn, payload)` for each Lambda task. Supported (JSONPath query language only):

- Task: `arn:aws:states:::lambda:invoke` (Parameters.FunctionName, Payload / Payload.$; the result is
  {"Payload": ..., "StatusCode": 200}) and a Lambda function ARN as Resource (the result is the payload).
- Map: inline and DISTRIBUTED (ItemProcessor or Iterator), ItemsPath, ItemSelector / Parameters, MaxConcurrency /
  MaxConcurrencyPath (items run in parallel threads, each invoking a function, so as many workers as the
  concurrency run at once), ToleratedFailurePercentage/Count. A failed DISTRIBUTED map fails with
  States.ExceedToleratedFailureThreshold, as in the cloud; an inline one with its item's error.
- Pass (Result, Parameters), Succeed, Fail (Error, Cause), Choice (the comparison operators on paths and And/Or/Not).
- InputPath, Parameters, ResultSelector, ResultPath, OutputPath; Retry (ErrorEquals, MaxAttempts, IntervalSeconds,
  BackoffRate, capped at 1 s locally) and Catch (ErrorEquals, ResultPath, Next); States.ALL and States.TaskFailed.
Anything else raises UnsupportedState before the execution starts, never silently.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
SUPPORTED_TYPES = {"Task", "Map", "Pass", "Succeed", "Fail", "Choice"}
MAX_LOCAL_RETRY_WAIT_S = 1.0

Invoke = Callable[[str, Any], Any]


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
    """Parameters / ItemSelector / ResultSelector: keys ending in .$ are paths, the rest literal."""
    if isinstance(template, dict):
        out = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = read_path(data, value, context) if isinstance(value, str) else value
            else:
                out[key] = apply_template(value, data, context)
        return out
    if isinstance(template, list):
        return [apply_template(v, data, context) for v in template]
    return template


# ---------------------------------------------------------------------------------------------------------------
# The interpreter


def _matches(error_equals: list[str], error: str) -> bool:
    if "States.ALL" in error_equals:
        return not error.startswith("States.Runtime")
    if error in error_equals:
        return True
    return "States.TaskFailed" in error_equals and not error.startswith("States.")


def validate(definition: Mapping[str, Any]) -> None:
    """Raise UnsupportedState for any state type or feature this interpreter does not run."""
    if definition.get("QueryLanguage", "JSONPath") != "JSONPath":
        raise UnsupportedState("only the JSONPath query language runs locally")
    for name, state in definition["States"].items():
        kind = state.get("Type")
        if kind not in SUPPORTED_TYPES:
            raise UnsupportedState(f"state {name}: type {kind} does not run locally")
        if kind == "Task":
            resource = str(state.get("Resource", ""))
            if resource != LAMBDA_INVOKE and ":lambda:" not in resource:
                raise UnsupportedState(f"state {name}: only Lambda tasks run locally, not {resource}")
        if kind == "Map":
            if "ItemReader" in state or "ResultWriter" in state or "ItemBatcher" in state:
                raise UnsupportedState(f"state {name}: ItemReader, ItemBatcher and ResultWriter do not run locally")
            validate(state.get("ItemProcessor") or state["Iterator"])


class StateMachineRunner:
    """Runs one definition; `invoke(function_arn, payload)` returns the function's result or raises TaskFailed."""

    def __init__(self, definition: Mapping[str, Any], invoke: Invoke, *, log: Callable[[str], None] | None = None):
        validate(definition)
        self.definition = definition
        self.invoke = invoke
        self.log = log or (lambda line: None)
        self.transitions = 0
        self._lock = threading.Lock()

    def run(self, execution_input: Any, context: Mapping[str, Any] | None = None) -> Any:
        """The execution's output, or raises StatesError(error, cause)."""
        return self._run_states(self.definition, execution_input, dict(context or {}))

    def _run_states(self, machine: Mapping[str, Any], data: Any, context: dict[str, Any]) -> Any:
        name = machine["StartAt"]
        while True:
            state = machine["States"][name]
            with self._lock:
                self.transitions += 1
            try:
                output, next_name = self._run_state(name, state, data, context)
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
        if kind == "Pass":
            result = state["Result"] if "Result" in state else self._parameters(state, effective, context)
        elif kind == "Task":
            result = self._with_retry(name, state, lambda: self._task(state, effective, context))
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

    def _task(self, state: Mapping[str, Any], data: Any, context: Mapping[str, Any]) -> Any:
        parameters = self._parameters(state, data, context)
        resource = str(state["Resource"])
        if resource == LAMBDA_INVOKE:
            function = str(parameters["FunctionName"])
            payload = parameters.get("Payload", data)
            return {"Payload": self.invoke(function, payload), "StatusCode": 200, "ExecutedVersion": "$LATEST"}
        return self.invoke(resource, parameters)

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
