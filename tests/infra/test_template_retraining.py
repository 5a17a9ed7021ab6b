"""RetrainStateMachine and its functions in template.yaml: who may sign, what the functions read from the
environment, how runs start, and that every failure reaches the report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sklambda import config
from sklambda.updating import retraining
from tests.infra.test_template import (
    _template_json,
    assert_settings_read_what_the_template_sets,
    function_statements,
    grants_kms_sign,
    resources_of_type,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def template() -> dict:
    return json.loads(_template_json())


def test_only_the_training_function_may_sign_model_cards(template: dict) -> None:
    # GIVEN every function of the stack and its hand-written policies
    functions = resources_of_type(template, "AWS::Serverless::Function")
    # THEN exactly one grants kms:Sign, the retraining's training function, on the signing key only
    signers = [name for name in functions if grants_kms_sign(function_statements(template, name))]
    assert signers == ["RetrainTrainFunction"]
    (statement,) = grants_kms_sign(function_statements(template, "RetrainTrainFunction"))
    assert statement["Resource"] == {"Fn::GetAtt": ["SigningKey", "Arn"]}
    # AND the step function, which moves aliases, writes no version
    steps = function_statements(template, "RetrainFunction")
    writes = [s["Resource"] for s in steps if "s3:PutObject" in s["Action"]]
    assert {"Fn::Sub": "${ModelBucket.Arn}/models/*/versions/*"} not in writes


def test_retraining_environments_are_the_settings_the_functions_read(template: dict) -> None:
    for logical_id, settings in (
        ("RetrainFunction", config.RetrainSettings),
        ("RetrainTrainFunction", config.TrainSettings),
    ):
        variables = template["Resources"][logical_id]["Properties"]["Environment"]["Variables"]
        assert_settings_read_what_the_template_sets(settings, variables)


def test_monitoring_alerts_start_runs_and_the_schedule_is_off_by_default(template: dict) -> None:
    machine = template["Resources"]["RetrainStateMachine"]["Properties"]
    events = machine["Events"]
    # THEN DriftDetected and PerformanceDegraded of sklambda.monitoring start a run with the event as input, for the
    # models opted in by RetrainEventModels
    assert events["MonitoringAlert"]["Properties"]["Pattern"] == {
        "source": ["sklambda.monitoring"],
        "detail-type": ["DriftDetected", "PerformanceDegraded"],
        "detail": {"model": {"Ref": "RetrainEventModels"}},
    }
    # AND the schedule is a parameter, disabled unless enabled
    assert events["Scheduled"]["Properties"]["State"] == {"Ref": "RetrainScheduleState"}
    assert template["Parameters"]["RetrainScheduleState"]["Default"] == "DISABLED"
    # AND such an event becomes a request for its model, with the stack's automatic rollout and approval
    event = json.loads((ROOT / "events" / "retrain_drift_detected.json").read_text())
    request = retraining.parse_request(event, "exec-1", automatic={"rollout": "shadow", "approval": "true"})
    assert (request.model, request.run_id, request.rollout, request.approval) == ("churn", "exec-1", "shadow", True)
    assert request.trigger == {"event": "DriftDetected", "source": "sklambda.monitoring", "event_id": event["id"],
                               "version": "1"}  # fmt: skip
    # AND the sample input of a run started by hand is a valid request
    manual = json.loads((ROOT / "events" / "retrain_manual.json").read_text())
    assert retraining.parse_request(manual, "ignored").run_id == manual["run_id"]


@pytest.mark.parametrize(
    ("models", "started"),
    [("", {"churn": False, "penguins": False}), ("churn", {"churn": True, "penguins": False}),
     ("churn,penguins", {"churn": True, "penguins": True})],
)  # fmt: skip
def test_only_the_models_opted_in_are_retrained_on_an_alert(template: dict, models: str, started: dict) -> None:
    # GIVEN the rule's pattern with RetrainEventModels resolved as CloudFormation resolves a CommaDelimitedList
    from moto.events.models import EventPattern

    pattern = template["Resources"]["RetrainStateMachine"]["Properties"]["Events"]["MonitoringAlert"]["Properties"]
    resolved = {**pattern["Pattern"], "detail": {"model": models.split(",")}}
    assert template["Parameters"]["RetrainEventModels"]["Default"] == ""
    # WHEN each model's PerformanceDegraded event is matched by EventBridge's rules (moto's matcher)
    matcher = EventPattern.load(json.dumps(resolved))
    matched = {
        model: matcher.matches_event(
            {"source": "sklambda.monitoring", "detail-type": "PerformanceDegraded", "detail": {"model": model}}
        )
        for model in started
    }
    # THEN a run starts only for the models listed (none by default)
    assert matched == started


def _states(template: dict) -> dict[str, Any]:
    return template["Resources"]["RetrainStateMachine"]["Properties"]["Definition"]["States"]


def test_every_step_that_can_fail_is_caught_into_the_report(template: dict) -> None:
    states = _states(template)
    tasks = {name: s for name, s in states.items() if s["Type"] == "Task" and name != "Report"}
    assert tasks
    for name, state in tasks.items():
        # THEN each task hands any error to the report step, keeping the run's data beside it
        (catch,) = state["Catch"]
        assert (catch["ErrorEquals"], catch["ResultPath"], catch["Next"]) == (["States.ALL"], "$.error", "Report"), name
    # AND the report decides how the execution ends
    assert states["Report"]["Next"] == "Finished"
    assert {c["Next"] for c in states["Finished"]["Choices"]} | {states["Finished"]["Default"]} == {
        "Succeeded",
        "Failed",
    }
    # AND the approval waits for its task token, at most a week
    approval = states["RequestApproval"]
    assert approval["Resource"] == "arn:aws:states:::lambda:invoke.waitForTaskToken"
    assert approval["Parameters"]["Payload"]["task_token.$"] == "$$.Task.Token"
    assert approval["TimeoutSeconds"] == 7 * 24 * 3600
