"""The rollout check in template.yaml: its schedule, its environment, its least-privilege role and its alarms."""

from __future__ import annotations

from pathlib import Path

from sklambda import config
from tests.infra.test_template import (
    _statements_by_sid,
    alarm_on,
    allowed_actions,
    as_list,
    assert_settings_read_what_the_template_sets,
    deployed_value,
    grants_kms_sign,
    takes_the_runtime_default,
    template,  # noqa: F401 (the fixture)
    translate,
)

ROOT = Path(__file__).resolve().parents[2]
ROLLOUT_APP = ROOT / "functions" / "rollout_check" / "app.py"
ROLLOUT_CHECK_SETTINGS = {
    config.MODEL_BUCKET,
    config.SIGNING_KEY_ID,
    config.MONITORING_BUCKET,
    config.ROLLOUT_EVENT_BUS,
    config.SHADOW_WINDOW_HOURS,
}


def test_rollout_check_runs_every_five_minutes_by_default_without_retries(template):  # noqa: F811
    # GIVEN the function translated by SAM
    resources = translate()["Resources"]
    rules = [r["Properties"] for r in resources.values() if r["Type"] == "AWS::Events::Rule"]
    target_arn = {"Fn::GetAtt": ["RolloutCheckFunction", "Arn"]}
    (rule,) = [r for r in rules if any(t["Arn"] == target_arn for t in r["Targets"])]
    # THEN an enabled rule invokes it on its schedule parameter, once per firing, by default every 5 minutes
    assert rule["ScheduleExpression"] == {"Ref": "RolloutCheckSchedule"} and rule["State"] == "ENABLED"
    (target,) = rule["Targets"]
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 0
    assert template["Parameters"]["RolloutCheckSchedule"]["Default"] == "rate(5 minutes)"
    # AND a run ends before the next one starts
    assert template["Resources"]["RolloutCheckFunction"]["Properties"]["Timeout"] < 300


def test_rollout_check_environment_is_exactly_the_settings_the_code_reads(template):  # noqa: F811
    props = template["Resources"]["RolloutCheckFunction"]["Properties"]
    variables = props["Environment"]["Variables"]
    assert set(variables) == ROLLOUT_CHECK_SETTINGS
    assert_settings_read_what_the_template_sets(config.RolloutCheckSettings, variables)
    assert variables[config.MONITORING_BUCKET] == {"Ref": "DataBucket"}
    for name in (config.ROLLOUT_EVENT_BUS, config.SHADOW_WINDOW_HOURS):
        value = deployed_value(template, variables[name])
        assert takes_the_runtime_default(config.RolloutCheckSettings, name, value), (name, value)
    assert (props["CodeUri"], props["Handler"]) == ("functions/rollout_check/", "app.handler")


def test_rollout_check_role_writes_only_alias_records_and_its_reports(template):  # noqa: F811
    statements = _statements_by_sid(template, "RolloutCheckFunction")
    # THEN it cannot sign, verifies with the signing key only and uses the data key only through S3
    assert grants_kms_sign(list(statements.values())) == []
    assert statements["VerifyModelCards"]["Resource"] == {"Fn::GetAtt": ["SigningKey", "Arn"]}
    assert "kms:ViaService" in statements["UseDataKeyThroughS3"]["Condition"]["StringEquals"]
    # AND it reads captures, labels and models, listing only their prefixes
    listed = {sid: s["Condition"]["StringLike"]["s3:prefix"] for sid, s in statements.items() if sid.startswith("List")}
    assert sorted(listed.values()) == ["capture/*", "ground-truth/*", "models/*"]
    # AND it writes alias records (the rollback) and its two report folders, nothing else: no card, no artifact
    writers = [s for action, s in allowed_actions(list(statements.values())) if action == "s3:putobject"]
    written = sorted(str(r["Fn::Sub"]) for s in writers for r in as_list(s["Resource"]))
    assert written == [
        "${DataBucket.Arn}/reports/rollout/*",
        "${DataBucket.Arn}/reports/shadow/*",
        "${ModelBucket.Arn}/models/*/aliases/*",
    ]
    # AND it puts events on the default bus only, with no wildcard action or resource
    assert statements["PutRolloutEvents"]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:events:${AWS::Region}:${AWS::AccountId}:event-bus/default"
    }
    for sid, statement in statements.items():
        assert "*" not in as_list(statement["Resource"]), sid
        assert not any(a.endswith(":*") for a in as_list(statement["Action"])), sid


def test_rollbacks_and_failures_are_alarmed(template):  # noqa: F811
    resources = template["Resources"]
    for logical_id, query in (
        ("CanaryRolledBackAlarm", "SELECT MAX(CanaryRolledBack) FROM sklambda WHERE service = 'sklambda'"),
        ("RolloutCheckFailedAlarm", "SELECT SUM(RolloutCheckFailed) FROM sklambda WHERE service = 'sklambda'"),
    ):
        alarm = resources[logical_id]["Properties"]
        (metric,) = [m for m in alarm["Metrics"] if m.get("ReturnData")]
        assert metric["Expression"] == query
        assert {"Ref": "AlarmTopic"} in alarm["AlarmActions"]
    assert {"Ref": "AlarmTopic"} in alarm_on(template, "AWS/Lambda", "Errors", {"Ref": "RolloutCheckFunction"})[
        "AlarmActions"
    ]
    # AND the function really emits those names
    source = ROLLOUT_APP.read_text(encoding="utf-8")
    for name in ("CanaryRolledBack", "RolloutCheckFailed", "RolloutRequests", "RolloutErrorRate", "RolloutLatencyP50"):
        assert f'"{name}"' in source
