"""EventBridge rules whose targets are state machines (local/eventbridge.py and its moto patch): a matching
PutEvents starts an execution in moto, which the local interpreter runs."""

from __future__ import annotations

import json

import boto3
import pytest

from sklambda_infra.local.eventbridge import StateMachineRule, create_rules, state_machine_rules
from sklambda_infra.local.events import ExecutionWatcher
from sklambda_infra.template import Resolver, parse_template
from sklambda_infra.translation import translate

ROLE = "arn:aws:iam::123456789012:role/r"

TEMPLATE = """
Transform: AWS::Serverless-2016-10-31
Resources:
  Retrain:
    Type: AWS::Serverless::StateMachine
    Properties:
      Definition: {StartAt: P, States: {P: {Type: Pass, End: true}}}
      Policies: []
      Events:
        Drift:
          Type: EventBridgeRule
          Properties:
            Pattern: {source: [sklambda.monitoring], detail-type: [DriftDetected, PerformanceDegraded]}
            InputPath: $.detail
  Fn:
    Type: AWS::Serverless::Function
    Properties: {Handler: app.handler, Runtime: python3.12, CodeUri: .}
  Both:
    Type: AWS::Events::Rule
    Properties:
      EventBusName: sklambda
      State: DISABLED
      EventPattern: {source: [sklambda.updating]}
      Targets:
        - {Id: machine, Arn: !Ref Retrain, Input: {reason: updating}}
        - {Id: fn, Arn: !GetAtt Fn.Arn}
  FunctionOnly:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: {source: [aws.s3]}
      Targets: [{Id: fn, Arn: !GetAtt Fn.Arn}]
"""
RETRAIN_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:Retrain"


def test_rules_with_state_machine_targets_are_found_in_the_translated_template():
    # GIVEN a state machine with a SAM EventBridgeRule event, and hand-written rules, the machine provisioned
    resolver = Resolver(translate(parse_template(TEMPLATE)).template)
    resolver.refs["Retrain"] = RETRAIN_ARN
    # WHEN discovering the rules that start state machines
    rules = {rule.rule: rule for rule in state_machine_rules(resolver)}
    # THEN SAM's rule and the mixed one are found (not the function-only one), with the machine's targets only
    assert sorted(rules) == ["Both", "RetrainDrift"]
    drift = rules["RetrainDrift"]
    assert json.loads(drift.event_pattern) == {
        "source": ["sklambda.monitoring"],
        "detail-type": ["DriftDetected", "PerformanceDegraded"],
    }
    assert drift.targets == ({"Arn": RETRAIN_ARN, "Id": "RetrainDriftStepFunctionsTarget", "InputPath": "$.detail"},)
    assert (drift.event_bus, drift.enabled, drift.state_machines) == ("default", True, ("Retrain",))
    both = rules["Both"]
    assert both.targets == ({"Id": "machine", "Arn": RETRAIN_ARN, "Input": '{"reason": "updating"}'},)
    assert (both.event_bus, both.enabled) == ("sklambda", False)
    assert both.notes and "fn" in both.notes[0]


def _machine(sfn, name: str = "retrain") -> str:
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    return sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=ROLE)["stateMachineArn"]


def _rule(name: str, machine: str, target: dict, *, bus: str = "default", enabled: bool = True) -> StateMachineRule:
    return StateMachineRule(
        rule=name,
        rule_name=name,
        rule_arn=f"arn:aws:events:us-east-1:123456789012:rule/{name}",
        event_bus=bus,
        event_pattern=json.dumps({"source": ["sklambda.monitoring"], "detail-type": ["DriftDetected"]}),
        targets=({"Id": "t", "Arn": machine, **target},),
        state_machines=("Retrain",),
        enabled=enabled,
    )


def _drift_detected(events, bus: str = "default") -> None:
    detail = {"model": "churn", "version": "3", "drifted": ["tenure"]}
    response = events.put_events(
        Entries=[
            {
                "Source": "sklambda.monitoring",
                "DetailType": "DriftDetected",
                "Detail": json.dumps(detail),
                "EventBusName": bus,
            },
            {"Source": "sklambda.monitoring", "DetailType": "SomethingElse", "Detail": "{}", "EventBusName": bus},
        ]
    )
    assert response["FailedEntryCount"] == 0


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ({"InputPath": "$.detail"}, {"model": "churn", "version": "3", "drifted": ["tenure"]}),
        ({"Input": '{"reason": "drift"}'}, {"reason": "drift"}),
        (
            {"InputTransformer": {"InputPathsMap": {"m": "$.detail.model"}, "InputTemplate": '{"model": "<m>"}'}},
            {"model": "churn"},
        ),
    ],
)
def test_a_matching_put_events_starts_the_state_machine_with_the_targets_input(mocked_aws, target, expected):
    # GIVEN a state machine and a rule on the default bus targeting it, put in moto
    sfn, events = boto3.client("stepfunctions"), boto3.client("events")
    machine = _machine(sfn)
    create_rules(events, [_rule("drift", machine, target)])
    # WHEN a matching event and a non-matching one are put
    _drift_detected(events)
    # THEN one execution started, its input what the target makes of the event
    [execution] = sfn.list_executions(stateMachineArn=machine)["executions"]
    described = sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == expected


def test_without_a_transform_the_execution_gets_the_event_as_eventbridge_sends_it(mocked_aws):
    sfn, events = boto3.client("stepfunctions"), boto3.client("events")
    machine = _machine(sfn)
    create_rules(events, [_rule("drift", machine, {}, bus="sklambda")])
    _drift_detected(events, bus="sklambda")
    [execution] = sfn.list_executions(stateMachineArn=machine)["executions"]
    event = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert (event["source"], event["detail-type"], event["detail"]["model"]) == (
        "sklambda.monitoring",
        "DriftDetected",
        "churn",
    )
    assert isinstance(event["time"], str) and event["time"].endswith("Z") and "ingestion-time" not in event


def test_a_disabled_rule_starts_nothing(mocked_aws):
    sfn, events = boto3.client("stepfunctions"), boto3.client("events")
    machine = _machine(sfn)
    create_rules(events, [_rule("drift", machine, {}, enabled=False)])
    _drift_detected(events)
    assert sfn.list_executions(stateMachineArn=machine)["executions"] == []


def test_the_watcher_runs_the_execution_an_event_started_once(mocked_aws):
    # GIVEN a rule starting a state machine the watcher watches
    sfn, events = boto3.client("stepfunctions"), boto3.client("events")
    machine = _machine(sfn)
    create_rules(events, [_rule("drift", machine, {"InputPath": "$.detail"})])
    watcher = ExecutionWatcher(
        {machine: "Retrain"}, sfn, None, lambda line: None, account_id="123456789012", region="us-east-1"
    )
    # WHEN the event is put and the watcher polls twice
    _drift_detected(events)
    watcher.poll_once()
    [execution] = sfn.list_executions(stateMachineArn=machine)["executions"]
    assert watcher.wait(execution["executionArn"], 10)
    watcher.poll_once()
    # THEN the execution ran once and succeeded with the event's detail
    assert list(watcher.started) == [execution["executionArn"]]
    described = sfn.describe_execution(executionArn=execution["executionArn"])
    assert described["status"] == "SUCCEEDED" and json.loads(described["output"])["model"] == "churn"
