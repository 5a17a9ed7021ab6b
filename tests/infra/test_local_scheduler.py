"""The local stack's EventBridge schedules: expressions, discovery from the template, and the firing thread."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sklambda_infra.local.scheduler import (
    SCHEDULE_EVERY_ENV,
    Rate,
    ScheduleError,
    Scheduler,
    ScheduleSource,
    parse_schedule,
    schedule_every_from_env,
    schedule_sources,
)
from sklambda_infra.template import Resolver, load_template, parse_template
from sklambda_infra.translation import translate

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 27, 7, 21, 30, tzinfo=UTC)  # a Friday


class FakeClock:
    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def __call__(self) -> datetime:
        return self.moment


def _source(expression: str = "rate(5 minutes)", **changes) -> ScheduleSource:
    fields = {
        "function": "Fn",
        "event": "Tick",
        "expression": expression,
        "rule_name": "stack-FnTick",
        "rule_arn": "arn:aws:events:us-east-1:123456789012:rule/stack-FnTick",
        "region": "us-east-1",
        "account_id": "123456789012",
    }
    return ScheduleSource(**{**fields, **changes})


class Recorder:
    """An `invoke` that records its calls; `fail` and `block` make it raise or wait."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.fail = False
        self.release = threading.Event()
        self.release.set()
        self.lock = threading.Lock()

    def __call__(self, logical_id: str, event: object) -> object:
        with self.lock:
            self.calls.append((logical_id, event))
        self.release.wait(5)
        if self.fail:
            raise RuntimeError("boom")
        return {"ok": True}


# ------------------------------------------------------------------------------------------------ expressions


def test_a_rate_fires_every_period_counted_from_when_the_schedule_started():
    # GIVEN rate(5 minutes) started at T0
    rate = parse_schedule("rate(5 minutes)")
    # WHEN asking for the next time at T0, a bit later, and exactly on a fire time
    # THEN fire times stay on the T0 + k * 5 min grid, strictly after the given time
    assert rate.next_after(T0, anchor=T0) == T0 + timedelta(minutes=5)
    assert rate.next_after(T0 + timedelta(minutes=7), anchor=T0) == T0 + timedelta(minutes=10)
    assert rate.next_after(T0 + timedelta(minutes=10), anchor=T0) == T0 + timedelta(minutes=15)
    assert parse_schedule("rate(1 hour)").next_after(T0) == T0 + timedelta(hours=1)
    assert parse_schedule("rate(2 days)") == Rate(timedelta(days=2), "rate(2 days)")


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        # every day at 06:00 (the template's example): tomorrow, since 06:00 today has passed
        ("cron(0 6 * * ? *)", T0, datetime(2026, 11, 28, 6, 0, tzinfo=UTC)),
        # steps: every 15 minutes from minute 0, and every 10 minutes from */10
        ("cron(0/15 * * * ? *)", T0, datetime(2026, 11, 27, 7, 30, tzinfo=UTC)),
        ("cron(*/10 * * * ? *)", datetime(2026, 11, 27, 7, 50, tzinfo=UTC), datetime(2026, 11, 27, 8, 0, tzinfo=UTC)),
        # range with a step in hours, list of minutes
        ("cron(5,35 8-18/2 * * ? *)", T0, datetime(2026, 11, 27, 8, 5, tzinfo=UTC)),
        (
            "cron(5,35 8-18/2 * * ? *)",
            datetime(2026, 11, 27, 18, 35, tzinfo=UTC),
            datetime(2026, 11, 28, 8, 5, tzinfo=UTC),
        ),
        # day-of-week names (1 = Sunday): Friday 07:21 -> Monday 09:00 when only MON is allowed
        ("cron(0 9 ? * MON *)", T0, datetime(2026, 11, 30, 9, 0, tzinfo=UTC)),
        ("cron(0 9 ? * 2-6 *)", datetime(2026, 11, 28, 0, 0, tzinfo=UTC), datetime(2026, 11, 30, 9, 0, tzinfo=UTC)),
        ("cron(0 9 ? * SUN,SAT *)", T0, datetime(2026, 11, 28, 9, 0, tzinfo=UTC)),
        # month names and a list of months, day-of-month fixed, year range
        ("cron(0 0 1 JAN,JUL ? 2027-2028)", T0, datetime(2027, 1, 1, 0, 0, tzinfo=UTC)),
        ("cron(30 12 15 3 ? *)", T0, datetime(2027, 3, 15, 12, 30, tzinfo=UTC)),
        # L, W and # (last day of month, nearest weekday, last Friday, first Monday)
        ("cron(0 0 L * ? *)", T0, datetime(2026, 11, 30, 0, 0, tzinfo=UTC)),
        ("cron(0 0 L 2 ? *)", T0, datetime(2027, 2, 28, 0, 0, tzinfo=UTC)),
        ("cron(0 0 15W * ? *)", T0, datetime(2026, 12, 15, 0, 0, tzinfo=UTC)),
        ("cron(0 0 1W * ? *)", T0, datetime(2026, 12, 1, 0, 0, tzinfo=UTC)),  # Tuesday 1 December
        ("cron(0 0 ? * 6L *)", T0, datetime(2026, 12, 25, 0, 0, tzinfo=UTC)),
        ("cron(0 0 ? * 2#1 *)", T0, datetime(2026, 12, 7, 0, 0, tzinfo=UTC)),
        # L alone in day-of-week is its last day, Saturday; a stepped range of days (Monday, Wednesday, Friday)
        ("cron(0 0 ? * L *)", T0, datetime(2026, 11, 28, 0, 0, tzinfo=UTC)),
        ("cron(0 9 ? * 2-6/2 *)", T0, datetime(2026, 11, 27, 9, 0, tzinfo=UTC)),
        # a range past the field's end wraps (croniter, as Quartz; EventBridge's reference does not say)
        ("cron(0 22-2 * * ? *)", datetime(2026, 11, 27, 23, 30, tzinfo=UTC), datetime(2026, 11, 28, 0, 0, tzinfo=UTC)),
    ],
)
def test_cron_gives_the_next_matching_minute_in_utc(expression, after, expected):
    # GIVEN a cron expression WHEN asking for its next time after `after` THEN it is the expected minute
    assert parse_schedule(expression).next_after(after) == expected


def test_the_next_cron_time_is_strictly_after_the_given_time():
    # GIVEN a schedule at 06:00 daily WHEN asked exactly at 06:00 THEN the next one is tomorrow's
    at_six = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
    assert parse_schedule("cron(0 6 * * ? *)").next_after(at_six) == at_six + timedelta(days=1)


def test_a_cron_with_no_time_left_never_fires():
    # GIVEN a date that does not exist and a year in the past THEN there is no next time
    assert parse_schedule("cron(0 0 30 2 ? *)").next_after(T0) is None
    assert parse_schedule("cron(0 0 1 1 ? 2020)").next_after(T0) is None


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("rate(0 minutes)", "at least 1"),
        ("rate(1 hours)", "rate(1 hour)"),
        ("rate(5 minute)", "rate(5 minutes)"),
        ("rate(5 weeks)", "minute(s), hour(s) or day(s)"),
        ("rate(five minutes)", "whole number"),
        ("rate(5minutes)", "expected rate("),
        ("cron(0 6 * * ?)", "6 fields"),
        ("cron(0 6 * * * *)", "exactly one of day-of-month and day-of-week"),
        ("cron(0 6 ? * ? *)", "exactly one of day-of-month and day-of-week"),
        ("cron(60 6 * * ? *)", "out of range"),
        ("cron(0 24 * * ? *)", "out of range"),
        ("cron(0 6 ? * 8 *)", "outside 1-7"),
        ("cron(0 6 * FOO ? *)", "not acceptable"),
        ("cron(0/0 6 * * ? *)", "step '0'"),
        ("cron(0 ? * * ? *)", "only allowed in day-of-month or day-of-week"),
        ("cron(0 6 * * 1? *)", "whole field"),
        ("cron(0 6 ? * MON,6L *)", "stand alone"),
        ("cron(0 6 ? * 2#1,6#3 *)", "stand alone"),
        ("cron(0 6 ? * 2#6 *)", "not acceptable"),
        ("cron(0 6 * * ? 1969)", "out of range"),
        ("at(2026-11-27T06:00:00)", "EventBridge Scheduler"),
        ("every day", "expected rate("),
    ],
)
def test_an_invalid_expression_is_rejected_with_the_expression_and_the_reason(expression, reason):
    # GIVEN an expression EventBridge would reject WHEN parsing it THEN the error names it and says why
    with pytest.raises(ScheduleError) as error:
        parse_schedule(expression)
    assert repr(expression) in str(error.value)
    assert reason in str(error.value)


def test_lw_is_refused_locally_with_the_reason_because_croniter_has_no_equivalent():
    # GIVEN LW (the last weekday of the month), which EventBridge accepts but croniter cannot express
    # WHEN parsing it THEN the local stack refuses it, saying so, rather than run it on other days
    with pytest.raises(ScheduleError, match=r"'cron\(0 6 LW \* \? \*\)'.*LW.*croniter has no equivalent"):
        parse_schedule("cron(0 6 LW * ? *)")


def test_a_non_string_expression_is_rejected_clearly():
    with pytest.raises(ScheduleError, match="expected a rate"):
        parse_schedule(None)


# -------------------------------------------------------------------------------------------------- discovery


def translated(template: dict, **parameters: str) -> Resolver:
    """A resolver over the CloudFormation SAM makes of `template`: what the local stack reads schedules from."""
    return Resolver(translate(template, project_root=ROOT, parameters=parameters).template, parameters=parameters)


def test_discovery_finds_the_drift_check_schedule_of_the_real_template_with_the_parameter_default():
    # GIVEN the project's template with its parameter defaults
    template = load_template(ROOT / "template.yaml")
    default = template["Parameters"]["DriftCheckSchedule"]["Default"]
    # WHEN discovering its schedules
    sources = schedule_sources(translated(template))
    # THEN the drift check is scheduled with the parameter's default, enabled, with the Scheduled Event, by the
    #      rule SAM makes of the function's DriftCheckSchedule event
    [drift] = [s for s in sources if s.function == "DriftCheckFunction"]
    assert drift.event == "DriftCheckFunctionDriftCheckSchedule"
    assert drift.expression == default == "rate(1 day)"
    assert drift.enabled and drift.input is None
    assert drift.rule_arn == (
        "arn:aws:events:us-east-1:123456789012:rule/sklambda-local-DriftCheckFunctionDriftCheckSchedule"
    )
    assert isinstance(drift.schedule, Rate)


def test_discovery_finds_the_quality_check_schedule_of_the_real_template():
    # GIVEN the project's template with its parameter defaults, then with the quality schedule overridden
    template = load_template(ROOT / "template.yaml")
    [default] = [s for s in schedule_sources(translated(template)) if s.function == "QualityCheckFunction"]
    sources = schedule_sources(translated(template, QualityCheckSchedule="rate(6 hours)"))
    [hourly] = [s for s in sources if s.function == "QualityCheckFunction"]
    # THEN the model-quality check is scheduled on its own parameter, enabled, by its own rule
    assert default.event == "QualityCheckFunctionQualityCheckSchedule"
    assert default.expression == template["Parameters"]["QualityCheckSchedule"]["Default"] and default.enabled
    assert hourly.expression == "rate(6 hours)"


def test_discovery_uses_a_parameter_override_and_rejects_an_expression_eventbridge_would_refuse():
    template = load_template(ROOT / "template.yaml")
    # GIVEN a cron override WHEN discovering THEN it is the schedule used
    sources = schedule_sources(translated(template, DriftCheckSchedule="cron(0 6 * * ? *)"))
    [drift] = [s for s in sources if s.function == "DriftCheckFunction"]
    assert drift.expression == "cron(0 6 * * ? *)"
    # GIVEN an override that passes the parameter's AllowedPattern but not EventBridge WHEN discovering
    # THEN the error names the function's event (its rule) and the expression
    with pytest.raises(ScheduleError, match=r"DriftCheckFunctionDriftCheckSchedule .*'rate\(1 hours\)'"):
        schedule_sources(translated(template, DriftCheckSchedule="rate(1 hours)"))


SYNTHETIC = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Every: {Type: String, Default: rate(10 minutes)}
Globals:
  Function: {Runtime: python3.12}
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.handler
      EventInvokeConfig: {MaximumRetryAttempts: 0}
      Events:
        Sweep: {Type: Schedule, Properties: {Schedule: !Ref Every, Input: '{"action": "sweep"}'}}
        Paused: {Type: Schedule, Properties: {Schedule: rate(1 hour), Enabled: false}}
        Stopped: {Type: Schedule, Properties: {Schedule: rate(1 hour), State: DISABLED}}
        Api: {Type: Api, Properties: {Path: /x, Method: get}}
  Other:
    Type: AWS::Serverless::Function
    Properties: {Handler: app.handler}
  NightlyRule:
    Type: AWS::Events::Rule
    Properties:
      Name: nightly
      ScheduleExpression: cron(0 2 * * ? *)
      Targets:
        - {Id: other, Arn: !GetAtt Other.Arn}
        - {Id: topic, Arn: arn:aws:sns:us-east-1:123456789012:topic}
  PausedRule:
    Type: AWS::Events::Rule
    Properties:
      ScheduleExpression: rate(1 day)
      State: DISABLED
      Targets: [{Id: fn, Arn: !GetAtt Fn.Arn}]
  PatternRule:
    Type: AWS::Events::Rule
    Properties:
      EventPattern: {source: [aws.s3]}
      Targets: [{Id: fn, Arn: !GetAtt Fn.Arn}]
"""


def test_discovery_reads_input_state_and_scheduled_event_rules_targeting_functions():
    # GIVEN a template with enabled, disabled and non-schedule events, and EventBridge rules
    sources = {s.key: s for s in schedule_sources(translated(parse_template(SYNTHETIC)))}
    # THEN every schedule targeting a function is found, and only those (a SAM event is the rule <Function><Event>)
    assert sorted(sources) == ["Fn.FnPaused", "Fn.FnStopped", "Fn.FnSweep", "Fn.PausedRule", "Other.NightlyRule"]
    # AND Enabled: false / State: DISABLED mark the schedule disabled
    assert {key for key, s in sources.items() if not s.enabled} == {"Fn.FnPaused", "Fn.FnStopped", "Fn.PausedRule"}
    # AND the parameter is resolved, Input is kept, the function's retry setting is read
    assert sources["Fn.FnSweep"].expression == "rate(10 minutes)"
    assert json.loads(sources["Fn.FnSweep"].input) == {"action": "sweep"}
    assert sources["Fn.FnSweep"].async_retries == 0
    # AND a rule's Name gives the ARN the Scheduled Event names
    assert sources["Other.NightlyRule"].rule_arn == "arn:aws:events:us-east-1:123456789012:rule/nightly"
    assert sources["Other.NightlyRule"].async_retries == 2


def test_disabled_schedules_are_never_invoked():
    # GIVEN the synthetic template's schedules and a scheduler on a fake clock
    clock, invoke, lines = FakeClock(T0), Recorder(), []
    scheduler = Scheduler(schedule_sources(translated(parse_template(SYNTHETIC))), invoke, lines.append, now=clock)
    scheduler.arm()
    # WHEN two days pass
    clock.moment = T0 + timedelta(days=2)
    fired = scheduler.tick()
    assert scheduler.wait_idle(5)
    # THEN only the enabled schedules ran, and the disabled ones were reported as not scheduled
    assert sorted(fired) == ["Fn.FnSweep", "Other.NightlyRule"]
    assert sorted(call[0] for call in invoke.calls) == ["Fn", "Other"]
    assert sum("disabled in the template" in line for line in lines) == 3


# -------------------------------------------------------------------------------------------------- scheduler


def test_the_function_gets_eventbridges_scheduled_event_when_the_schedule_is_due():
    # GIVEN a 5-minute schedule armed at T0
    clock, invoke = FakeClock(T0), Recorder()
    source = _source()
    scheduler = Scheduler([source], invoke, lambda line: None, now=clock)
    scheduler.arm()
    # WHEN it is not due yet THEN nothing runs
    clock.moment = T0 + timedelta(minutes=4)
    assert scheduler.tick() == []
    # WHEN the due time passes
    clock.moment = T0 + timedelta(minutes=5, seconds=1)
    assert scheduler.tick() == ["Fn.Tick"]
    assert scheduler.wait_idle(5)
    # THEN the function got the Scheduled Event, timed at the due time and naming the rule
    [(logical_id, event)] = invoke.calls
    assert logical_id == "Fn"
    sample = json.loads((ROOT / "events" / "drift_check_scheduled.json").read_text())
    assert set(event) == set(sample)
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert event["version"] == "0" and event["detail"] == {}
    assert event["time"] == "2026-11-27T07:26:30Z"
    assert event["resources"] == [source.rule_arn]
    assert (event["account"], event["region"]) == ("123456789012", "us-east-1")
    uuid.UUID(event["id"])
    [described] = scheduler.describe()
    assert described["fired"] == 1 and described["succeeded"] == 1
    assert described["next"] == "2026-11-27T07:31:30Z"


def test_a_schedule_with_input_sends_the_input_instead_of_the_scheduled_event():
    clock, invoke = FakeClock(T0), Recorder()
    scheduler = Scheduler([_source(input='{"model": "iris"}')], invoke, lambda line: None, now=clock)
    scheduler.arm()
    clock.moment = T0 + timedelta(minutes=5)
    scheduler.tick()
    assert scheduler.wait_idle(5)
    assert invoke.calls == [("Fn", {"model": "iris"})]


def test_a_late_tick_runs_once_and_stays_on_the_schedule_grid():
    # GIVEN a 5-minute schedule WHEN the clock jumps 17 minutes (a laptop asleep)
    clock, invoke = FakeClock(T0), Recorder()
    scheduler = Scheduler([_source()], invoke, lambda line: None, now=clock)
    scheduler.arm()
    clock.moment = T0 + timedelta(minutes=17)
    # THEN one run, not three, and the next is at T0 + 20 min
    assert scheduler.tick() == ["Fn.Tick"]
    assert scheduler.tick() == []
    assert scheduler.wait_idle(5)
    assert len(invoke.calls) == 1
    assert scheduler.describe()[0]["next"] == "2026-11-27T07:41:30Z"


def test_a_failing_invocation_is_logged_and_the_schedule_keeps_going():
    # GIVEN a function that fails
    clock, invoke, lines = FakeClock(T0), Recorder(), []
    invoke.fail = True
    scheduler = Scheduler([_source()], invoke, lines.append, now=clock)
    scheduler.arm()
    # WHEN it is due THEN the failure is logged (with what Lambda would do), not raised
    clock.moment = T0 + timedelta(minutes=5)
    scheduler.tick()
    assert scheduler.wait_idle(5)
    assert any("invocation failed" in line and "RuntimeError: boom" in line and "retry" in line for line in lines)
    # WHEN it is due again and the function works THEN it runs again
    invoke.fail = False
    clock.moment = T0 + timedelta(minutes=10)
    assert scheduler.tick() == ["Fn.Tick"]
    assert scheduler.wait_idle(5)
    described = scheduler.describe()[0]
    assert (described["fired"], described["failed"], described["succeeded"]) == (2, 1, 1)


def test_a_run_due_while_the_previous_one_is_still_running_is_skipped():
    # GIVEN an invocation that does not finish
    clock, invoke, lines = FakeClock(T0), Recorder(), []
    invoke.release.clear()
    scheduler = Scheduler([_source()], invoke, lines.append, now=clock)
    scheduler.arm()
    clock.moment = T0 + timedelta(minutes=5)
    assert scheduler.tick() == ["Fn.Tick"]
    # WHEN the next run is due THEN it is skipped and logged, not started concurrently
    clock.moment = T0 + timedelta(minutes=10)
    assert scheduler.tick() == []
    assert any("skipped" in line and "still running" in line for line in lines)
    assert len(invoke.calls) == 1
    # WHEN the first finishes THEN the following run starts normally
    invoke.release.set()
    assert scheduler.wait_idle(5)
    clock.moment = T0 + timedelta(minutes=15)
    assert scheduler.tick() == ["Fn.Tick"]
    assert scheduler.wait_idle(5)
    described = scheduler.describe()[0]
    assert (described["fired"], described["skipped"], len(invoke.calls)) == (2, 1, 2)


def test_the_thread_fires_repeatedly_with_the_every_override_and_stops_promptly():
    # GIVEN a daily schedule sped up to every 50 ms (what SKLAMBDA_LOCAL_SCHEDULE_EVERY does)
    invoke, lines = Recorder(), []
    scheduler = Scheduler([_source("rate(1 day)")], invoke, lines.append, every_s=0.05)
    # WHEN the scheduler runs for a while
    scheduler.start()
    try:
        deadline = time.monotonic() + 5
        while len(invoke.calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        started = time.monotonic()
        scheduler.stop()
        stopped_in = time.monotonic() - started
    # THEN the function ran at least 3 times, the log says why, and stop() was quick
    assert len(invoke.calls) >= 3
    assert any("every 0.05 s" in line and "template: rate(1 day)" in line for line in lines)
    assert stopped_in < 1
    assert not scheduler.running
    assert scheduler.wait_idle(5)


def test_stop_returns_at_once_while_the_thread_sleeps_until_a_distant_run():
    # GIVEN a running scheduler whose next run is a day away
    scheduler = Scheduler([_source("rate(1 day)")], Recorder(), lambda line: None, max_sleep_s=60)
    scheduler.start()
    time.sleep(0.05)
    # WHEN stopping THEN it returns well within a second and the thread is gone
    started = time.monotonic()
    scheduler.stop()
    assert time.monotonic() - started < 0.5
    assert not scheduler.running


def test_the_every_override_is_read_from_the_environment():
    assert schedule_every_from_env({}) is None
    assert schedule_every_from_env({SCHEDULE_EVERY_ENV: " "}) is None
    assert schedule_every_from_env({SCHEDULE_EVERY_ENV: "2.5"}) == 2.5
    for bad in ("0", "-1", "soon", "nan"):
        with pytest.raises(ScheduleError, match=SCHEDULE_EVERY_ENV):
            schedule_every_from_env({SCHEDULE_EVERY_ENV: bad})


# ------------------------------------------------------------------------------------- state machine targets

STATE_MACHINE_EVENTS = """
Transform: AWS::Serverless-2016-10-31
Resources:
  Retrain:
    Type: AWS::Serverless::StateMachine
    Properties:
      Definition: {StartAt: P, States: {P: {Type: Pass, End: true}}}
      Policies: []
      Events:
        Weekly: {Type: Schedule, Properties: {Schedule: rate(7 days), Input: '{"reason": "schedule"}'}}
        Drift:
          Type: EventBridgeRule
          Properties: {Pattern: {source: [sklambda.monitoring]}, InputPath: $.detail}
"""
RETRAIN_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:Retrain"


def test_a_scheduled_state_machine_event_starts_an_execution_with_its_input():
    # GIVEN a state machine with a SAM Schedule event (a rule targeting the machine), provisioned under RETRAIN_ARN
    resolver = translated(parse_template(STATE_MACHINE_EVENTS))
    resolver.refs["Retrain"] = RETRAIN_ARN
    [source] = schedule_sources(resolver)
    assert (source.function, source.event, source.state_machine_arn) == ("Retrain", "RetrainWeekly", RETRAIN_ARN)
    # WHEN the schedule is due
    clock, invoke, started = FakeClock(T0), Recorder(), Recorder()
    scheduler = Scheduler([source], invoke, lambda line: None, now=clock, start_execution=started)
    scheduler.arm()
    clock.moment = T0 + timedelta(days=7)
    assert scheduler.tick() == ["Retrain.RetrainWeekly"]
    assert scheduler.wait_idle(5)
    # THEN StartExecution got the machine's ARN and the target's Input; no function was invoked
    assert started.calls == [(RETRAIN_ARN, {"reason": "schedule"})] and invoke.calls == []
