"""EventBridge rules of the local stack whose targets are state machines: a matching PutEvents starts an execution.

In the cloud, a PutEvents whose event matches a rule with a Step Functions target makes EventBridge call
StartExecution with the event as the execution's input (or what the target's Input, InputPath or InputTransformer
make of it; https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html). SAM writes
such a rule for each `Type: EventBridgeRule` event of an AWS::Serverless::StateMachine (`<Machine><Event>`, target
`Ref: <Machine>`).

`state_machine_rules` finds every enabled AWS::Events::Rule of the translated template with an EventPattern and at
least one target naming one of the template's state machines; `create_rules` puts each in moto's EventBridge (on
its EventBusName, "default" otherwise) with those targets only. moto evaluates the pattern in PutEvents but raises
NotImplementedError for a Step Functions target; moto_patches.start_state_machine_targets makes it start the
execution in moto instead, where the local stack's ExecutionWatcher runs it. A rule's other targets (Lambda, SQS...)
are not put in moto and are reported in the rule's notes. Scheduled rules are the local scheduler's (scheduler.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sklambda_infra.local.scheduler import referenced_state_machine, rule_identity
from sklambda_infra.template import EVENTS_RULE, Resolver, TemplateError, resources_of_type

DEFAULT_EVENT_BUS = "default"
# The target fields EventBridge applies to a Step Functions target locally (moto_patches.start_state_machine_targets).
TARGET_FIELDS = ("Id", "Arn", "Input", "InputPath", "InputTransformer")


class EventRuleError(TemplateError, ValueError):
    """A rule the local stack cannot put in moto (an invalid pattern or Input), naming the rule."""


@dataclass(frozen=True)
class StateMachineRule:
    """One rule with an event pattern and the state machine targets it starts (put_targets' Targets shape)."""

    rule: str  # logical id
    rule_name: str
    rule_arn: str
    event_bus: str
    event_pattern: str  # JSON text
    targets: tuple[dict[str, Any], ...]
    state_machines: tuple[str, ...]  # logical ids, one per target
    enabled: bool = True
    notes: tuple[str, ...] = ()


def state_machine_rules(resolver: Resolver) -> list[StateMachineRule]:
    """Every enabled AWS::Events::Rule with an EventPattern whose targets include one of the template's state
    machines; `resolver` must know the provisioned ARNs. Raises EventRuleError for a pattern or Input that is not
    JSON (EventBridge would refuse the rule)."""
    found = []
    for rule_id in resources_of_type(resolver.template, EVENTS_RULE):
        props = resolver.template["Resources"][rule_id].get("Properties") or {}
        if not resolver.enabled(rule_id) or props.get("EventPattern") is None:
            continue
        where = f"{rule_id} (AWS::Events::Rule)"
        targets, machines, others, ignored = [], [], [], set()
        for target in props.get("Targets") or []:
            machine = referenced_state_machine(resolver, (target or {}).get("Arn"))
            if machine is None:
                others.append(str(target.get("Id", "?")))
                continue
            applied = {k: v for k, v in target.items() if k in TARGET_FIELDS}
            ignored |= set(target) - set(TARGET_FIELDS) - {"RoleArn"}  # IAM is not emulated: RoleArn is moot
            resolved = _resolve(resolver, applied, f"{where} target {target.get('Id', machine)}")
            if "Input" in resolved and not isinstance(resolved["Input"], str):
                resolved["Input"] = json.dumps(resolved["Input"])
            try:
                json.loads(resolved.get("Input", "{}"))
            except ValueError as e:
                raise EventRuleError(f"{where} target {target.get('Id', machine)}: Input is not JSON ({e})") from None
            targets.append(resolved)
            machines.append(machine)
        if not targets:
            continue
        resolved_props = _resolve(resolver, {k: v for k, v in props.items() if k != "Targets"}, where)
        pattern = resolved_props["EventPattern"]
        pattern_text = pattern if isinstance(pattern, str) else json.dumps(pattern)
        try:
            json.loads(pattern_text)
        except ValueError as e:
            raise EventRuleError(f"{where}: EventPattern is not valid JSON ({e})") from None
        rule_name, rule_arn = rule_identity(resolver, rule_id, resolved_props.get("Name"))
        bus = str(resolved_props.get("EventBusName") or DEFAULT_EVENT_BUS).rsplit("/", 1)[-1]
        notes = (f"targets not run locally: {', '.join(others)} (only state machine targets are)",) if others else ()
        if ignored:
            notes += (f"not applied locally: {', '.join(sorted(ignored))}",)
        found.append(
            StateMachineRule(
                rule=rule_id,
                rule_name=rule_name,
                rule_arn=rule_arn,
                event_bus=bus,
                event_pattern=pattern_text,
                targets=tuple(targets),
                state_machines=tuple(machines),
                enabled=str(resolved_props.get("State", "ENABLED")).upper() != "DISABLED",
                notes=notes,
            )
        )
    return found


def _resolve(resolver: Resolver, value: Any, where: str) -> Any:
    try:
        return resolver.resolve(value)
    except TemplateError as e:
        raise EventRuleError(f"{where}: {e}") from None


def create_rules(events: Any, rules: list[StateMachineRule]) -> None:
    """Put each rule and its state machine targets in moto's EventBridge (`events` is a boto3 client of moto),
    creating a custom event bus a rule names when moto has none of that name. Installs the moto patch that starts
    executions for Step Functions targets."""
    from sklambda_infra.local.moto_patches import start_state_machine_targets

    start_state_machine_targets()
    buses = {bus["Name"] for bus in events.list_event_buses().get("EventBuses", [])}
    for rule in rules:
        if rule.event_bus not in buses:
            events.create_event_bus(Name=rule.event_bus)
            buses.add(rule.event_bus)
        events.put_rule(
            Name=rule.rule_name,
            EventPattern=rule.event_pattern,
            State="ENABLED" if rule.enabled else "DISABLED",
            EventBusName=rule.event_bus,
        )
        events.put_targets(Rule=rule.rule_name, EventBusName=rule.event_bus, Targets=list(rule.targets))


def describe(rules: list[StateMachineRule]) -> list[dict[str, Any]]:
    """The rules for the stack's details."""
    return [
        {
            "rule": rule.rule,
            "rule_name": rule.rule_name,
            "event_bus": rule.event_bus,
            "event_pattern": json.loads(rule.event_pattern),
            "state_machines": list(rule.state_machines),
            "enabled": rule.enabled,
            "notes": list(rule.notes),
        }
        for rule in rules
    ]
