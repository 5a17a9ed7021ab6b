"""Read `template.yaml` and resolve CloudFormation intrinsics the way the local stack needs them.

No AWS calls here: the loader turns the short tags (`!Ref`, `!Sub`, `!GetAtt`, ...) into their long forms,
and `Resolver` evaluates Parameters, Conditions, pseudo parameters and intrinsics against the physical ids
the caller (the local provisioner) gives it. SAM's own rules (Globals, events, generated resources) are not
here: `sklambda_infra.translation` has aws-sam-translator produce the CloudFormation the resolver then evaluates.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# moto's default account; every ARN the local stack builds uses it.
ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
DEFAULT_STACK_NAME = "sklambda-local"

# The resource types the local stack runs itself, as the SAM transform generates them.
LAMBDA_FUNCTION = "AWS::Lambda::Function"
LAMBDA_LAYER = "AWS::Lambda::LayerVersion"
LAMBDA_VERSION = "AWS::Lambda::Version"
LAMBDA_ALIAS = "AWS::Lambda::Alias"
EVENT_SOURCE_MAPPING = "AWS::Lambda::EventSourceMapping"
EVENT_INVOKE_CONFIG = "AWS::Lambda::EventInvokeConfig"
EVENTS_RULE = "AWS::Events::Rule"
REST_API = "AWS::ApiGateway::RestApi"
API_STAGE = "AWS::ApiGateway::Stage"


class TemplateError(Exception):
    """The template cannot be read or an intrinsic cannot be evaluated locally."""


class UnresolvedReference(TemplateError):
    """A Ref or Fn::GetAtt names something the local stack has no value for."""

    def __init__(self, logical_id: str, attribute: str | None = None) -> None:
        self.logical_id = logical_id
        self.attribute = attribute
        target = logical_id if attribute is None else f"{logical_id}.{attribute}"
        super().__init__(f"no local value for {target}")


class _NoValue:
    """`Ref: AWS::NoValue`: the property is removed."""

    _instance: _NoValue | None = None

    def __new__(cls) -> _NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "AWS::NoValue"

    def __bool__(self) -> bool:
        return False


NO_VALUE = _NoValue()

# ---------------------------------------------------------------------------------------------------------------
# Loading


@functools.cache
def _cfn_loader() -> type:
    """SafeLoader that understands CloudFormation's short-form tags (`!Ref`, `!GetAtt a.b`, `!Sub`...).

    Built on first use: PyYAML is in the dev extra only, and `sklambda --help` or `publish` must start without it.
    """
    import yaml

    class CfnLoader(yaml.SafeLoader):
        pass

    def construct_short_tag(loader: CfnLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        if tag_suffix == "Ref":
            return {"Ref": value}
        if tag_suffix == "Condition":
            return {"Condition": value}
        if tag_suffix == "GetAtt" and isinstance(value, str):
            logical_id, _, attribute = value.partition(".")
            return {"Fn::GetAtt": [logical_id, attribute]}
        return {f"Fn::{tag_suffix}": value}

    CfnLoader.add_multi_constructor("!", construct_short_tag)
    return CfnLoader


def parse_template(text: str) -> dict[str, Any]:
    import yaml

    try:
        template = yaml.load(text, Loader=_cfn_loader())
    except yaml.YAMLError as e:
        raise TemplateError(f"template is not valid YAML: {e}") from None
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise TemplateError("template has no Resources section")
    return template


def load_template(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise TemplateError(f"cannot read template {path}: {e}") from None
    return parse_template(text)


# ---------------------------------------------------------------------------------------------------------------
# Parameters, pseudo parameters


@dataclass(frozen=True)
class Pseudo:
    """Values of the AWS:: pseudo parameters in the local stack."""

    region: str = DEFAULT_REGION
    account_id: str = ACCOUNT_ID
    stack_name: str = DEFAULT_STACK_NAME
    partition: str = "aws"
    url_suffix: str = "amazonaws.com"

    @property
    def stack_id(self) -> str:
        # Like CloudFormation's, a UUID per stack (derived from the name, so stable across restarts): templates
        # build unique names from it (e.g. a bucket named with the UUID's first group).
        seed = f"sklambda-local/{self.account_id}/{self.region}/{self.stack_name}"
        stack_uuid = uuid.uuid5(uuid.NAMESPACE_URL, seed)
        stack = f"stack/{self.stack_name}/{stack_uuid}"
        return f"arn:{self.partition}:cloudformation:{self.region}:{self.account_id}:{stack}"

    def value(self, name: str) -> Any:
        values = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::StackId": self.stack_id,
            "AWS::Partition": self.partition,
            "AWS::URLSuffix": self.url_suffix,
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }
        if name not in values:
            raise TemplateError(f"unknown pseudo parameter {name}")
        return values[name]


def _scalar_text(value: Any) -> str:
    """How CloudFormation spells a scalar once it is a string (YAML `true` becomes "true")."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parameter_values(template: Mapping[str, Any], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Each parameter's value: override, else Default; list types split on commas; AllowedValues enforced."""
    declared: Mapping[str, Any] = template.get("Parameters") or {}
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(declared))
    if unknown:
        raise TemplateError(f"unknown parameter(s): {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, spec in declared.items():
        spec = spec or {}
        if name in overrides:
            raw = overrides[name]
        elif "Default" in spec:
            raw = spec["Default"]
        else:
            raise TemplateError(f"parameter {name} has no Default and no override was given")
        kind = str(spec.get("Type", "String"))
        if kind == "CommaDelimitedList" or kind.startswith("List<"):
            items = raw if isinstance(raw, list) else [p.strip() for p in _scalar_text(raw).split(",")]
            values[name] = [_scalar_text(i) for i in items]
            continue
        text = _scalar_text(raw)
        allowed = spec.get("AllowedValues")
        if allowed is not None and text not in [_scalar_text(a) for a in allowed]:
            raise TemplateError(f"parameter {name}={text!r} is not one of {allowed}")
        pattern = spec.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(pattern, text):
            raise TemplateError(f"parameter {name}={text!r} does not match {pattern}")
        values[name] = text
    return values


# ---------------------------------------------------------------------------------------------------------------
# Resolver

Fallback = Callable[[str, str | None], Any]
_SUB_VAR = re.compile(r"\$\{([^}]*)\}")


def _is_intrinsic(value: Any) -> bool:
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        return key in {"Ref", "Condition"} or key.startswith("Fn::")
    return False


class Resolver:
    """Evaluates intrinsics for one local stack.

    `refs` maps a logical id to what `Ref` returns; `attributes` maps (logical id, attribute) to what
    `Fn::GetAtt` returns. Both are read on every call, so the provisioner fills them as it creates resources.
    A name found in neither goes to `fallback(logical_id, attribute)` when given, else raises
    UnresolvedReference.
    """

    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        parameters: Mapping[str, Any] | None = None,
        pseudo: Pseudo | None = None,
        refs: Mapping[str, Any] | None = None,
        attributes: Mapping[tuple[str, str], Any] | None = None,
        fallback: Fallback | None = None,
    ) -> None:
        self.template = template
        self.pseudo = pseudo or Pseudo()
        self.parameters = parameter_values(template, parameters)
        self.refs: Mapping[str, Any] = refs if refs is not None else {}
        self.attributes: Mapping[tuple[str, str], Any] = attributes if attributes is not None else {}
        self.fallback = fallback
        self._conditions: dict[str, bool] = {}
        self._evaluating: set[str] = set()

    # -- conditions ------------------------------------------------------------------------------------------

    @property
    def conditions(self) -> dict[str, bool]:
        return {name: self.condition(name) for name in self.template.get("Conditions") or {}}

    def condition(self, name: str) -> bool:
        if name in self._conditions:
            return self._conditions[name]
        declared = self.template.get("Conditions") or {}
        if name not in declared:
            raise TemplateError(f"unknown condition {name}")
        if name in self._evaluating:
            raise TemplateError(f"condition {name} refers to itself")
        self._evaluating.add(name)
        try:
            value = self.resolve(declared[name])
        finally:
            self._evaluating.discard(name)
        if not isinstance(value, bool):
            raise TemplateError(f"condition {name} does not evaluate to true or false: {value!r}")
        self._conditions[name] = value
        return value

    def set_parameter(self, name: str, value: Any) -> None:
        """Give a parameter a value after the fact (the local stack generates some); conditions are re-evaluated."""
        if name not in self.parameters:
            raise TemplateError(f"unknown parameter {name}")
        self.parameters[name] = value
        self._conditions.clear()

    def enabled(self, logical_id: str) -> bool:
        """False when the resource's Condition is false."""
        resource = self.template["Resources"][logical_id]
        name = resource.get("Condition")
        return True if name is None else self.condition(name)

    # -- values ----------------------------------------------------------------------------------------------

    def resolve(self, value: Any) -> Any:
        """Evaluate every intrinsic in `value`; `Ref: AWS::NoValue` removes dict keys and list items."""
        if isinstance(value, dict):
            if _is_intrinsic(value):
                name, arg = next(iter(value.items()))
                return self._intrinsic(name, arg)
            out = {}
            for key, item in value.items():
                resolved = self.resolve(item)
                if resolved is not NO_VALUE:
                    out[key] = resolved
            return out
        if isinstance(value, list):
            return [r for r in (self.resolve(v) for v in value) if r is not NO_VALUE]
        return value

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo.value(name)
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        return self._missing(name, None)

    def get_att(self, logical_id: str, attribute: str) -> Any:
        if (logical_id, attribute) in self.attributes:
            return self.attributes[(logical_id, attribute)]
        return self._missing(logical_id, attribute)

    def _missing(self, logical_id: str, attribute: str | None) -> Any:
        if self.fallback is not None:
            return self.fallback(logical_id, attribute)
        raise UnresolvedReference(logical_id, attribute)

    def _intrinsic(self, name: str, arg: Any) -> Any:
        handler = self._HANDLERS.get(name)
        if handler is None:
            raise TemplateError(f"{name} is not supported locally")
        return handler(self, arg)

    def _fn_ref(self, arg: Any) -> Any:
        return self.ref(self._text(self.resolve(arg), "Ref"))

    def _fn_condition(self, arg: Any) -> bool:
        return self.condition(self._text(arg, "Condition"))

    def _fn_get_att(self, arg: Any) -> Any:
        if isinstance(arg, str):
            logical_id, _, attribute = arg.partition(".")
        else:
            arg = self.resolve(arg)
            if not isinstance(arg, list) or len(arg) != 2:
                raise TemplateError(f"Fn::GetAtt takes [LogicalId, Attribute], got {arg!r}")
            logical_id, attribute = (self._text(a, "Fn::GetAtt") for a in arg)
        return self.get_att(logical_id, attribute)

    def _fn_sub(self, arg: Any) -> str:
        if isinstance(arg, str):
            text, variables = arg, {}
        elif isinstance(arg, list) and len(arg) == 2 and isinstance(arg[1], dict):
            text, variables = arg[0], {k: self.resolve(v) for k, v in arg[1].items()}
        else:
            raise TemplateError(f"Fn::Sub takes a string or [string, {{vars}}], got {arg!r}")
        text = self._text(text, "Fn::Sub")

        def substitute(match: re.Match[str]) -> str:
            expr = match.group(1)
            if expr.startswith("!"):
                return "${" + expr[1:] + "}"
            if expr in variables:
                value = variables[expr]
            elif "." in expr and not expr.startswith("AWS::"):
                logical_id, _, attribute = expr.partition(".")
                value = self.get_att(logical_id, attribute)
            else:
                value = self.ref(expr)
            if isinstance(value, list | dict) or value is NO_VALUE:
                raise TemplateError(f"Fn::Sub variable ${{{expr}}} is not a string: {value!r}")
            return _scalar_text(value)

        return _SUB_VAR.sub(substitute, text)

    def _fn_join(self, arg: Any) -> str:
        arg = self.resolve(arg)
        if not isinstance(arg, list) or len(arg) != 2 or not isinstance(arg[1], list):
            raise TemplateError(f"Fn::Join takes [delimiter, [values]], got {arg!r}")
        return self._text(arg[0], "Fn::Join").join(_scalar_text(v) for v in arg[1])

    def _fn_select(self, arg: Any) -> Any:
        arg = self.resolve(arg)
        if not isinstance(arg, list) or len(arg) != 2 or not isinstance(arg[1], list):
            raise TemplateError(f"Fn::Select takes [index, [values]], got {arg!r}")
        try:
            return arg[1][int(arg[0])]
        except (ValueError, IndexError):
            raise TemplateError(f"Fn::Select index {arg[0]!r} is out of range for {arg[1]!r}") from None

    def _fn_split(self, arg: Any) -> list[str]:
        arg = self.resolve(arg)
        if not isinstance(arg, list) or len(arg) != 2:
            raise TemplateError(f"Fn::Split takes [delimiter, string], got {arg!r}")
        return self._text(arg[1], "Fn::Split").split(self._text(arg[0], "Fn::Split"))

    def _fn_if(self, arg: Any) -> Any:
        if not isinstance(arg, list) or len(arg) != 3:
            raise TemplateError(f"Fn::If takes [condition, value_if_true, value_if_false], got {arg!r}")
        return self.resolve(arg[1] if self.condition(self._text(arg[0], "Fn::If")) else arg[2])

    def _fn_equals(self, arg: Any) -> bool:
        arg = self.resolve(arg)
        if not isinstance(arg, list) or len(arg) != 2:
            raise TemplateError(f"Fn::Equals takes two values, got {arg!r}")
        left, right = (_scalar_text(a) if not isinstance(a, list | dict) else a for a in arg)
        return left == right

    def _booleans(self, arg: Any, name: str) -> list[bool]:
        if not isinstance(arg, list):
            raise TemplateError(f"{name} takes a list of conditions, got {arg!r}")
        values = [self.resolve(a) for a in arg]
        if not all(isinstance(v, bool) for v in values):
            raise TemplateError(f"{name} takes conditions, got {values!r}")
        return values

    def _fn_and(self, arg: Any) -> bool:
        return all(self._booleans(arg, "Fn::And"))

    def _fn_or(self, arg: Any) -> bool:
        return any(self._booleans(arg, "Fn::Or"))

    def _fn_not(self, arg: Any) -> bool:
        values = self._booleans(arg, "Fn::Not")
        if len(values) != 1:
            raise TemplateError(f"Fn::Not takes exactly one condition, got {arg!r}")
        return not values[0]

    def _fn_find_in_map(self, arg: Any) -> Any:
        arg = self.resolve(arg)
        if not isinstance(arg, list) or len(arg) < 3:
            raise TemplateError(f"Fn::FindInMap takes [map, top key, second key], got {arg!r}")
        mappings = self.template.get("Mappings") or {}
        try:
            return mappings[arg[0]][_scalar_text(arg[1])][_scalar_text(arg[2])]
        except (KeyError, TypeError):
            if len(arg) == 4 and isinstance(arg[3], dict) and "DefaultValue" in arg[3]:
                return arg[3]["DefaultValue"]
            raise TemplateError(f"Fn::FindInMap {arg[:3]!r} has no value") from None

    def _fn_base64(self, arg: Any) -> str:
        import base64

        return base64.b64encode(self._text(self.resolve(arg), "Fn::Base64").encode()).decode()

    def _fn_get_azs(self, arg: Any) -> list[str]:
        region = self.resolve(arg) or self.pseudo.region
        return [f"{region}{zone}" for zone in "abc"]

    def _fn_to_json_string(self, arg: Any) -> str:
        return json.dumps(self.resolve(arg), separators=(",", ":"))

    def _fn_length(self, arg: Any) -> int:
        value = self.resolve(arg)
        if not isinstance(value, list):
            raise TemplateError(f"Fn::Length takes a list, got {value!r}")
        return len(value)

    @staticmethod
    def _text(value: Any, where: str) -> str:
        if isinstance(value, str):
            return value
        if isinstance(value, int | float | bool):
            return _scalar_text(value)
        raise TemplateError(f"{where} expected a string, got {value!r}")

    _HANDLERS: dict[str, Callable[[Resolver, Any], Any]] = {
        "Ref": _fn_ref,
        "Condition": _fn_condition,
        "Fn::GetAtt": _fn_get_att,
        "Fn::Sub": _fn_sub,
        "Fn::Join": _fn_join,
        "Fn::Select": _fn_select,
        "Fn::Split": _fn_split,
        "Fn::If": _fn_if,
        "Fn::Equals": _fn_equals,
        "Fn::And": _fn_and,
        "Fn::Or": _fn_or,
        "Fn::Not": _fn_not,
        "Fn::FindInMap": _fn_find_in_map,
        "Fn::Base64": _fn_base64,
        "Fn::GetAZs": _fn_get_azs,
        "Fn::ToJsonString": _fn_to_json_string,
        "Fn::Length": _fn_length,
    }


# ---------------------------------------------------------------------------------------------------------------
# Dependencies


def references(value: Any) -> set[str]:
    """Names that `value` refers to through Ref, Fn::GetAtt and Fn::Sub (both Fn::If branches count)."""
    found: set[str] = set()
    _collect_references(value, found)
    return found


def _collect_references(value: Any, found: set[str]) -> None:
    if isinstance(value, list):
        for item in value:
            _collect_references(item, found)
        return
    if not isinstance(value, dict):
        return
    if _is_intrinsic(value):
        name, arg = next(iter(value.items()))
        if name == "Ref" and isinstance(arg, str):
            found.add(arg)
            return
        if name == "Fn::GetAtt":
            if isinstance(arg, str):
                found.add(arg.partition(".")[0])
            elif isinstance(arg, list) and arg and isinstance(arg[0], str):
                found.add(arg[0])
            _collect_references(arg, found)
            return
        if name == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1] if len(arg) > 1 else {})
            if isinstance(text, str):
                for expr in _SUB_VAR.findall(text):
                    if expr.startswith("!") or expr in variables:
                        continue
                    found.add(expr.partition(".")[0] if not expr.startswith("AWS::") else expr)
            _collect_references(variables, found)
            return
    for item in value.values():
        _collect_references(item, found)


def resource_dependencies(resources: Mapping[str, Any], logical_id: str) -> set[str]:
    """Other resources in `resources` that `logical_id` needs first (Ref, GetAtt, Sub, DependsOn)."""
    body = resources[logical_id] or {}
    needed = references({k: v for k, v in body.items() if k != "DependsOn"})
    depends_on = body.get("DependsOn") or []
    needed.update([depends_on] if isinstance(depends_on, str) else depends_on)
    needed.discard(logical_id)
    return {name for name in needed if name in resources}


def dependency_order(resources: Mapping[str, Any]) -> list[str]:
    """Logical ids so that each comes after everything it depends on; ties keep template order."""
    pending = {name: resource_dependencies(resources, name) for name in resources}
    order: list[str] = []
    done: set[str] = set()
    while pending:
        ready = [name for name, needs in pending.items() if needs <= done]
        if not ready:
            raise TemplateError(f"circular dependency between resources: {', '.join(sorted(pending))}")
        for name in ready:
            order.append(name)
            done.add(name)
            del pending[name]
    return order


def environment_variables(resolver: Resolver, logical_id: str) -> dict[str, str]:
    """An AWS::Lambda::Function's Environment.Variables with intrinsics resolved, as the strings Lambda sets.

    Raises TemplateError when Variables is not a mapping (or an intrinsic cannot be evaluated)."""
    properties = resolver.template["Resources"][logical_id].get("Properties") or {}
    environment = resolver.resolve(properties.get("Environment") or {})
    variables = (environment or {}).get("Variables") or {}
    if not isinstance(variables, dict):
        raise TemplateError(f"{logical_id} Environment.Variables is not a mapping: {variables!r}")
    return {str(name): _scalar_text(value) for name, value in variables.items()}


def referenced_function(resolver: Resolver, reference: Any) -> str | None:
    """The enabled AWS::Lambda::Function that `reference` names, as a FunctionName or a target Arn can: a Ref or
    Fn::GetAtt to it, else (resolved) its name, its ARN, or its ARN qualified by a version or an alias. None when it
    names none of them (or cannot be resolved)."""
    functions = [f for f in resources_of_type(resolver.template, LAMBDA_FUNCTION) if resolver.enabled(f)]
    if _is_intrinsic(reference):
        name, arg = next(iter(reference.items()))
        target = arg.partition(".")[0] if name == "Fn::GetAtt" and isinstance(arg, str) else arg
        if name == "Fn::GetAtt" and isinstance(arg, list) and arg:
            target = arg[0]
        if name in ("Ref", "Fn::GetAtt") and target in functions:
            return str(target)
    try:
        text = _scalar_text(resolver.resolve(reference))
    except TemplateError:
        return None
    for logical_id in functions:
        arn, function_name = resolver.attributes.get((logical_id, "Arn")), resolver.refs.get(logical_id)
        for known in (arn, function_name):
            if known and (text == known or text.startswith(f"{known}:")):
                return logical_id
    return None


def resources_of_type(template: Mapping[str, Any], kinds: Iterable[str] | str) -> list[str]:
    kinds = {kinds} if isinstance(kinds, str) else set(kinds)
    return [name for name, body in template["Resources"].items() if (body or {}).get("Type") in kinds]
