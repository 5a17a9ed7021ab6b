"""EventBridge schedules of the local stack: the template's scheduled events, fired while the stack runs.

`schedule_sources` finds what EventBridge would invoke on a schedule: every AWS::Events::Rule of the translated
template with a ScheduleExpression whose target is one of its functions or state machines (SAM turns each
`Type: Schedule` event of an AWS::Serverless::Function or AWS::Serverless::StateMachine into such a rule, named
`<Function><Event>` / `<Machine><Event>`). A function target is invoked; a state machine target gets a
StartExecution with the event (or the target's Input) as the execution's input, through `start_execution`.
Expressions go through the resolver (`Schedule: !Ref DriftCheckSchedule` gives the parameter's value) and are
checked here, so an expression EventBridge would reject fails the local stack's start with a message naming it.

`Scheduler` runs one daemon thread that sleeps until the next due time and starts each invocation in its own
thread, as EventBridge invokes Lambda asynchronously: the result is discarded, an error is logged and the
schedule keeps going, and an invocation still running when the next one is due is not started twice (that
run is skipped and logged). The function gets the Scheduled Event EventBridge sends, or the rule target's
`Input` JSON in its place, as in AWS.

Locally, `SKLAMBDA_LOCAL_SCHEDULE_EVERY=<seconds>` makes every enabled schedule fire every <seconds> (the first
time <seconds> after the stack starts) instead of following its expression; unset, the template's schedules
are followed (rate(1 day) fires a day after the stack started, cron in UTC).

Expressions: `rate(<n> minute|minutes|hour|hours|day|days)` (singular for 1, plural otherwise, as EventBridge
requires) and `cron(minutes hours day-of-month month day-of-week year)`. Cron is evaluated by croniter
(pallets-eco/croniter, a dev dependency: the tooling never ships): this module checks EventBridge's own rules
(6 fields, `?` in exactly one of day-of-month and day-of-week, day-of-week 1-7 from Sunday, `L` and `#` alone in
day-of-week) and translates the rest to croniter's form (day-of-week 0-6, `6L` -> `L5`, a seconds field); lists,
ranges, steps, names, `L` and `<day>W` in day-of-month, `<day>L` and `<day>#<n>` in day-of-week are croniter's.
Not run locally, refused at start with the reason: `LW` in day-of-month (croniter has no equivalent) and years
after 2099 (croniter's range; EventBridge's goes to 2199). EventBridge Scheduler (`Type: ScheduleV2`, `at(...)`)
is not emulated.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sklambda_infra.template import (
    EVENT_INVOKE_CONFIG,
    EVENTS_RULE,
    Resolver,
    TemplateError,
    referenced_function,
    resources_of_type,
)

STATE_MACHINE = "AWS::StepFunctions::StateMachine"

Log = Callable[[str], None]
Invoke = Callable[[str, Any], Any]
# StartExecution: (state machine ARN, the execution's input) -> anything (the result is not used).
StartExecution = Callable[[str, Any], Any]
Clock = Callable[[], datetime]

SCHEDULE_EVERY_ENV = "SKLAMBDA_LOCAL_SCHEDULE_EVERY"
# Lambda retries a failed asynchronous invocation twice unless EventInvokeConfig.MaximumRetryAttempts says so.
DEFAULT_ASYNC_RETRIES = 2
MIN_YEAR = 1970  # the first year of a cron expression (EventBridge's, croniter's)
MAX_SLEEP_S = 30.0  # the thread re-reads the wall clock at least this often (a laptop may sleep)


class ScheduleError(TemplateError, ValueError):
    """A schedule expression EventBridge would reject, or a schedule the local stack cannot run."""


def invalid(expression: str, reason: str) -> ScheduleError:
    return ScheduleError(f"invalid schedule expression {expression!r}: {reason}")


def _utc(moment: datetime) -> datetime:
    """Aware UTC; a naive datetime is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    """EventBridge's spelling of a time: `2026-11-27T06:00:00Z`."""
    return _utc(moment).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------------------------------------------------------
# Expressions


@dataclass(frozen=True)
class Rate:
    """`rate(n unit)`: every `period`, counted from when the schedule started (the rule's creation in AWS)."""

    period: timedelta
    expression: str

    def next_after(self, after: datetime, *, anchor: datetime | None = None) -> datetime:
        """The first fire time strictly after `after`, on the grid `anchor + k * period` (or `after + period`)."""
        after = _utc(after)
        if anchor is None:
            return after + self.period
        anchor = _utc(anchor)
        periods = math.floor((after - anchor) / self.period) + 1
        due = anchor + periods * self.period
        return due if due > after else due + self.period


_RATE = re.compile(r"rate\(\s*(\S+)\s+(\S+)\s*\)")
_RATE_UNITS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


def _parse_rate(expression: str) -> Rate:
    match = _RATE.fullmatch(expression)
    if match is None:
        raise invalid(expression, "expected rate(<value> <unit>), e.g. rate(1 hour) or rate(5 minutes)")
    value_text, unit = match.groups()
    if not value_text.isdigit() or int(value_text) < 1:
        raise invalid(expression, f"the rate value must be a whole number of at least 1, got {value_text!r}")
    value = int(value_text)
    singular = unit[:-1] if unit.endswith("s") else unit
    if singular not in _RATE_UNITS:
        raise invalid(expression, f"the rate unit must be minute(s), hour(s) or day(s), got {unit!r}")
    if (value == 1) != (unit == singular):
        wanted = singular if value == 1 else singular + "s"
        raise invalid(expression, f"EventBridge wants rate({value} {wanted}): singular for 1, plural otherwise")
    return Rate(value * _RATE_UNITS[singular], expression)


# EventBridge's names of the days of the week, numbered as it numbers them: 1 (Sunday) to 7 (Saturday).
_AWS_DAYS = {name: i for i, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], start=1)}
_DAY_NUMBER = re.compile(r"(?<![#/\w])(\d+)")  # a day of the week, not the n of #n nor a step
_LAST_OF = re.compile(r"(\d+|[A-Z]{3})L")  # <day>L: the last <day> of the month


@dataclass(frozen=True)
class Cron:
    """`cron(minutes hours day-of-month month day-of-week year)`, evaluated in UTC as EventBridge rules are.

    The grammar and the calendar are croniter's (pallets-eco/croniter): `croniter_form` is the same schedule in
    croniter's 7-field form (`minute hour day-of-month month day-of-week second year`, days of the week 0-6 from
    Sunday), as _parse_cron translates it.
    """

    expression: str
    croniter_form: str

    def next_after(self, after: datetime, *, anchor: datetime | None = None) -> datetime | None:
        """The first minute strictly after `after` that matches (aware UTC), or None when none is left."""
        from croniter import CroniterBadDateError, croniter

        try:
            return croniter(self.croniter_form, _utc(after)).get_next(datetime)
        except CroniterBadDateError:  # croniter found no matching time (a past year, 30 February)
            return None


def _day_of_week(text: str, expression: str) -> str:
    """EventBridge's day-of-week field in croniter's numbering: 1-7 from Sunday become 0-6, `<day>L` (the last
    <day> of the month) becomes croniter's `L<day>` and `L` alone (the last day of the week) Saturday."""
    upper = text.upper()
    if upper == "L":
        return "SAT"
    if "," in upper and ("L" in upper or "#" in upper):
        # EventBridge: with # the field holds one expression ("3#1,6#3" is invalid); L the same way.
        raise invalid(expression, f"day-of-week: L and # stand alone in the field, not in a list ({text!r})")

    def day(token: str) -> int:
        number = int(token) if token.isdigit() else _AWS_DAYS.get(token)
        if number is None or not 1 <= number <= 7:
            raise invalid(expression, f"day-of-week: {token} is outside 1-7 (1 is Sunday) and SUN-SAT")
        return number - 1

    upper = _LAST_OF.sub(lambda match: f"L{day(match.group(1))}", upper)
    return _DAY_NUMBER.sub(lambda match: str(day(match.group(1))), upper)


_CRON = re.compile(r"cron\((.*)\)", re.DOTALL)
_CRON_FIELDS = "minutes hours day-of-month month day-of-week year"


def _parse_cron(expression: str) -> Cron:
    """EventBridge's own rules are checked here (6 fields, `?`, days of the week 1-7); croniter checks the rest."""
    from croniter import CroniterError, croniter  # a dev dependency: `sklambda --help` must not need it

    match = _CRON.fullmatch(expression)
    if match is None:
        raise invalid(expression, f"expected cron({_CRON_FIELDS})")
    fields = match.group(1).split()
    if len(fields) != 6:
        raise invalid(expression, f"cron takes 6 fields ({_CRON_FIELDS}), got {len(fields)}")
    minutes, hours, day_of_month, month, day_of_week, year = fields
    for text, name in ((minutes, "minutes"), (hours, "hours"), (month, "month"), (year, "year")):
        if "?" in text:
            raise invalid(expression, f"{name}: ? is only allowed in day-of-month or day-of-week")
    for text, name in ((day_of_month, "day-of-month"), (day_of_week, "day-of-week")):
        if "?" in text and text != "?":
            raise invalid(expression, f"{name}: ? must be the whole field, got {text!r}")
    if (day_of_month == "?") == (day_of_week == "?"):
        raise invalid(expression, "exactly one of day-of-month and day-of-week must be ? (EventBridge rule)")
    if day_of_month.upper() == "LW":
        raise invalid(
            expression,
            "day-of-month: LW (the last weekday of the month) is not supported locally: croniter has no equivalent",
        )
    day_of_month = "*" if day_of_month == "?" else day_of_month
    day_of_week = "*" if day_of_week == "?" else _day_of_week(day_of_week, expression)
    form = f"{minutes} {hours} {day_of_month} {month} {day_of_week} 0 {year}"
    try:
        croniter(form, datetime(MIN_YEAR, 1, 1, tzinfo=UTC))
    except CroniterError as e:
        raise invalid(expression, f"croniter refuses it (as {form!r}): {e}") from None
    return Cron(expression, form)


Schedule = Rate | Cron


def parse_schedule(expression: Any) -> Schedule:
    """A `rate(...)` or `cron(...)` expression; raises ScheduleError naming the expression when invalid."""
    if not isinstance(expression, str):
        raise ScheduleError(f"invalid schedule expression {expression!r}: expected a rate(...) or cron(...) string")
    text = expression.strip()
    if text.startswith("rate("):
        return _parse_rate(text)
    if text.startswith("cron("):
        return _parse_cron(text)
    if text.startswith("at("):
        raise invalid(expression, "at(...) is an EventBridge Scheduler expression, not supported by rules")
    raise invalid(expression, "expected rate(<value> <unit>) or cron(<6 fields>)")


# ---------------------------------------------------------------------------------------------------------------
# Discovery


@dataclass(frozen=True)
class ScheduleSource:
    function: str  # logical id of the function invoked, or of the state machine started (state_machine_arn set)
    event: str  # the AWS::Events::Rule's logical id (`<Function><Event>` for a SAM event)
    expression: str
    rule_name: str
    rule_arn: str
    region: str
    account_id: str
    input: str | None = None  # the target's Input JSON, sent instead of the Scheduled Event
    enabled: bool = True
    description: str = ""
    async_retries: int = DEFAULT_ASYNC_RETRIES  # what Lambda would do after an error (not done locally)
    notes: tuple[str, ...] = ()
    state_machine_arn: str | None = None  # a state machine target: StartExecution instead of an invocation
    # The target is a state machine (`function` is its logical id); its ARN is None when the template was read
    # without a provisioned stack (discovery alone), so such a source cannot run.
    state_machine: bool = False

    @property
    def key(self) -> str:
        return f"{self.function}.{self.event}"

    @property
    def schedule(self) -> Schedule:
        return parse_schedule(self.expression)


def _is_enabled(enabled: Any, state: Any) -> bool:
    if enabled is not None and str(enabled).strip().lower() == "false":
        return False
    return state is None or str(state).strip().upper() != "DISABLED"


def _input_text(value: Any, where: str) -> str | None:
    """The target's Input as JSON text (EventBridge requires valid JSON); None when there is none."""
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value)
    try:
        json.loads(text)
    except ValueError as e:
        raise ScheduleError(f"{where}: Input is not valid JSON ({e}): {text[:200]!r}") from None
    return text


def _state_machine_arn(resolver: Resolver, reference: Any) -> str | None:
    """The target state machine's ARN, or None before the stack is provisioned (discovery alone has no ARN)."""
    try:
        return str(resolver.resolve(reference))
    except TemplateError:
        return None


def referenced_state_machine(resolver: Resolver, reference: Any) -> str | None:
    """The enabled AWS::StepFunctions::StateMachine that a target's Arn names: a Ref or Fn::GetAtt to it, else its
    resolved ARN. None when it names none of them (or cannot be resolved)."""
    machines = [m for m in resources_of_type(resolver.template, STATE_MACHINE) if resolver.enabled(m)]
    if isinstance(reference, dict) and len(reference) == 1:
        name, arg = next(iter(reference.items()))
        target = arg[0] if isinstance(arg, list) and arg else str(arg).partition(".")[0]
        if name in ("Ref", "Fn::GetAtt") and target in machines:
            return str(target)
    try:
        text = str(resolver.resolve(reference))
    except TemplateError:
        return None
    return next((m for m in machines if text and text == resolver.refs.get(m)), None)


def rule_identity(resolver: Resolver, rule_logical_id: str, name: Any) -> tuple[str, str]:
    """(name, ARN) of the rule: its Name, else `<stack>-<logical id>` as CloudFormation would start it."""
    pseudo = resolver.pseudo
    rule_name = str(name) if name else f"{pseudo.stack_name}-{rule_logical_id}"[:64]
    return rule_name, f"arn:{pseudo.partition}:events:{pseudo.region}:{pseudo.account_id}:rule/{rule_name}"


def _async_retries(resolver: Resolver, function: str) -> int:
    """MaximumRetryAttempts of the function's AWS::Lambda::EventInvokeConfig (SAM writes one from the function's
    EventInvokeConfig), else Lambda's default."""
    for logical_id in resources_of_type(resolver.template, EVENT_INVOKE_CONFIG):
        props = resolver.template["Resources"][logical_id].get("Properties") or {}
        if not resolver.enabled(logical_id) or referenced_function(resolver, props.get("FunctionName")) != function:
            continue
        try:
            return int(resolver.resolve(props.get("MaximumRetryAttempts", DEFAULT_ASYNC_RETRIES)))
        except (TemplateError, TypeError, ValueError):
            return DEFAULT_ASYNC_RETRIES
    return DEFAULT_ASYNC_RETRIES


def _resolve(resolver: Resolver, value: Any, where: str) -> Any:
    try:
        return resolver.resolve(value)
    except TemplateError as e:
        raise ScheduleError(f"{where}: {e}") from None


def _checked_expression(resolver: Resolver, value: Any, where: str) -> str:
    expression = _resolve(resolver, value, where)
    try:
        parse_schedule(expression)
    except ScheduleError as e:
        raise ScheduleError(f"{where}: {e}") from None
    return str(expression).strip()


def schedule_sources(resolver: Resolver) -> list[ScheduleSource]:
    """Every scheduled rule targeting the template's enabled functions or state machines, disabled ones included
    (`enabled=False`).

    Raises ScheduleError when an expression or an Input is invalid, naming the rule.
    """
    pseudo = resolver.pseudo
    found: list[ScheduleSource] = []
    for rule_id in resources_of_type(resolver.template, EVENTS_RULE):
        if not resolver.enabled(rule_id):
            continue
        props = resolver.template["Resources"][rule_id].get("Properties") or {}
        if props.get("ScheduleExpression") is None:
            continue
        where = f"{rule_id} (AWS::Events::Rule)"
        expression = _checked_expression(resolver, props["ScheduleExpression"], where)
        rule_name, rule_arn = rule_identity(resolver, rule_id, _resolve(resolver, props.get("Name"), where))
        enabled = _is_enabled(None, _resolve(resolver, props.get("State"), where))
        for target in props.get("Targets") or []:
            function = referenced_function(resolver, (target or {}).get("Arn"))
            machine = None if function is not None else referenced_state_machine(resolver, (target or {}).get("Arn"))
            if function is None and machine is None:
                continue
            target_where = f"{where} target {target.get('Id', function or machine)}"
            unsupported = sorted(set(target) & {"InputPath", "InputTransformer"})
            notes = (
                (f"{', '.join(unsupported)} not applied locally: the Scheduled Event is sent",) if unsupported else ()
            )
            found.append(
                ScheduleSource(
                    function=function or str(machine),
                    event=rule_id,
                    expression=expression,
                    rule_name=rule_name,
                    rule_arn=rule_arn,
                    region=pseudo.region,
                    account_id=pseudo.account_id,
                    input=_input_text(_resolve(resolver, target.get("Input"), target_where), target_where),
                    enabled=enabled,
                    description=str(_resolve(resolver, props.get("Description"), where) or ""),
                    async_retries=_async_retries(resolver, function) if function else 0,
                    notes=notes,
                    state_machine_arn=None if machine is None else _state_machine_arn(resolver, target["Arn"]),
                    state_machine=machine is not None,
                )
            )
    return found


def scheduled_event(source: ScheduleSource, when: datetime) -> Any:
    """What the function receives: the target's Input when it has one, else EventBridge's Scheduled Event."""
    if source.input is not None:
        return json.loads(source.input)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": source.account_id,
        "time": iso(when),
        "region": source.region,
        "resources": [source.rule_arn],
        "detail": {},
    }


def schedule_every_from_env(environ: Mapping[str, str] | None = None) -> float | None:
    """SKLAMBDA_LOCAL_SCHEDULE_EVERY as seconds, or None (unset or empty: follow the template's schedules)."""
    raw = (os.environ if environ is None else environ).get(SCHEDULE_EVERY_ENV, "").strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise ScheduleError(
            f"{SCHEDULE_EVERY_ENV}={raw!r} must be a number of seconds above 0 (unset it to follow the template)"
        )
    return seconds


# ---------------------------------------------------------------------------------------------------------------
# The scheduler


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Entry:
    """One enabled schedule's timing and counters."""

    def __init__(self, source: ScheduleSource, schedule: Schedule, label: str, anchor: datetime) -> None:
        self.source = source
        self.schedule = schedule
        self.label = label
        self.anchor = anchor
        self.due: datetime | None = schedule.next_after(anchor, anchor=anchor)
        self.thread: threading.Thread | None = None
        self.fired = 0
        self.skipped = 0
        self.succeeded = 0
        self.failed = 0


class Scheduler:
    """Fires the enabled `sources` on their schedules (or every `every_s` seconds) with `invoke(logical_id,
    event)`, or `start_execution(state_machine_arn, event)` for a state machine target, from one daemon thread;
    each invocation runs in a thread of its own.

    `now` is the clock (aware UTC datetimes); tests may call `tick()` themselves instead of `start()`.
    """

    def __init__(
        self,
        sources: Iterable[ScheduleSource],
        invoke: Invoke,
        log: Log,
        *,
        every_s: float | None = None,
        now: Clock = utc_now,
        max_sleep_s: float = MAX_SLEEP_S,
        start_execution: StartExecution | None = None,
    ) -> None:
        if every_s is not None and not (math.isfinite(every_s) and every_s > 0):
            raise ScheduleError(f"every_s must be a number of seconds above 0, got {every_s!r}")
        self.sources = list(sources)
        self.invoke = invoke
        self.start_execution = start_execution
        self.log = log
        self.every_s = every_s
        self.now = now
        self.max_sleep_s = max_sleep_s
        self.started_at: datetime | None = None
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="eventbridge-scheduler")

    # -- lifecycle -------------------------------------------------------------------------------------------

    def arm(self) -> None:
        """Compute the first due times from `now()` (done by start(); tests may call it and then tick())."""
        if self.started_at is not None:
            return
        self.started_at = start = _utc(self.now())
        for source in self.sources:
            if not source.enabled:
                self.log(
                    f"[{source.function}] schedule {source.event} ({source.expression}) is disabled in the "
                    "template: not scheduled"
                )
                continue
            if self.every_s is not None:
                schedule: Schedule = Rate(timedelta(seconds=self.every_s), f"every {self.every_s:g} s")
                label = f"every {self.every_s:g} s ({SCHEDULE_EVERY_ENV}; template: {source.expression})"
            else:
                schedule, label = source.schedule, source.expression
            entry = _Entry(source, schedule, label, start)
            self._entries[source.key] = entry
            due = iso(entry.due) if entry.due is not None else "never (no matching time left)"
            self.log(f"[{source.function}] schedule {source.event}: {label}; next run {due}")
            for note in source.notes:
                self.log(f"[{source.function}] schedule {source.event}: {note}")

    def start(self) -> None:
        self.arm()
        if self._entries and not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop firing; returns at once (invocations already running finish in their own threads)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)

    @property
    def running(self) -> bool:
        """True while the scheduler's thread is alive."""
        return self._thread.is_alive()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait for the invocations in flight to finish; False when some still run after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        for entry in list(self._entries.values()):
            thread = entry.thread
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
                if thread.is_alive():
                    return False
        return True

    # -- firing ----------------------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
                delay = self.seconds_until_next()
            except Exception as e:  # a bug here must not end the schedules silently
                self.log(f"[scheduler] error: {type(e).__name__}: {e}")
                delay = 1.0
            self._stop.wait(min(max(delay, 0.001), self.max_sleep_s))

    def seconds_until_next(self) -> float:
        dues = [entry.due for entry in self._entries.values() if entry.due is not None]
        if not dues:
            return self.max_sleep_s
        return (min(dues) - _utc(self.now())).total_seconds()

    def tick(self) -> list[str]:
        """Fire every schedule that is due; the keys (`Function.Event`) of those started."""
        self.arm()
        now = _utc(self.now())
        started: list[str] = []
        for key, entry in self._entries.items():
            if self._stop.is_set():
                break
            if entry.due is None or entry.due > now:
                continue
            due = entry.due
            # One run per tick however late we are (EventBridge does not catch up on missed runs either).
            entry.due = entry.schedule.next_after(now, anchor=entry.anchor)
            source = entry.source
            if entry.due is None:
                self.log(f"[{source.function}] schedule {source.event}: {entry.label} has no later time to run")
            if entry.thread is not None and entry.thread.is_alive():
                with self._lock:
                    entry.skipped += 1
                self.log(
                    f"[{source.function}] schedule {source.event}: run due {iso(due)} skipped, the previous "
                    "scheduled invocation is still running"
                )
                continue
            entry.thread = threading.Thread(
                target=self._run,
                args=(entry, scheduled_event(source, due), due),
                daemon=True,
                name=f"schedule-{source.function}-{source.event}",
            )
            with self._lock:
                entry.fired += 1
            entry.thread.start()
            started.append(key)
        return started

    def _run(self, entry: _Entry, event: Any, due: datetime) -> None:
        source = entry.source
        self.log(f"[{source.function}] schedule {source.event}: invoking (run due {iso(due)}, {entry.label})")
        started = time.monotonic()
        try:
            if source.state_machine:
                if self.start_execution is None or source.state_machine_arn is None:
                    raise ScheduleError(f"no StartExecution or no provisioned ARN to start {source.function}")
                self.start_execution(source.state_machine_arn, event)
            else:
                self.invoke(source.function, event)  # asynchronous invocation: the result goes nowhere
        except Exception as e:
            with self._lock:
                entry.failed += 1
            if self._stop.is_set():
                retries = " (the local stack is stopping)"
            elif source.async_retries:
                retries = f"; in AWS Lambda would retry it up to {source.async_retries} time(s), not done locally"
            else:
                retries = ""
            self.log(
                f"[{source.function}] schedule {source.event}: invocation failed after "
                f"{time.monotonic() - started:.2f} s: {type(e).__name__}: {e}{retries}"
            )
            return
        with self._lock:
            entry.succeeded += 1
        self.log(f"[{source.function}] schedule {source.event}: invocation done in {time.monotonic() - started:.2f} s")

    # -- state -----------------------------------------------------------------------------------------------

    def describe(self) -> list[dict[str, Any]]:
        """Every source, for the stack's details: expression, whether it runs, next time and counters."""
        described = []
        for source in self.sources:
            entry = self._entries.get(source.key)
            with self._lock:
                described.append(
                    {
                        "function": source.function,
                        "event": source.event,
                        "expression": source.expression,
                        "rule_arn": source.rule_arn,
                        "enabled": source.enabled,
                        "local_schedule": entry.label if entry is not None else None,
                        "next": iso(entry.due) if entry is not None and entry.due is not None else None,
                        "fired": entry.fired if entry else 0,
                        "skipped": entry.skipped if entry else 0,
                        "succeeded": entry.succeeded if entry else 0,
                        "failed": entry.failed if entry else 0,
                    }
                )
        return described
