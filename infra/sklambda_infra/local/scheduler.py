"""EventBridge schedules of the local stack: the template's scheduled events, fired while the stack runs.

`schedule_sources` finds what EventBridge would invoke on a schedule: every AWS::Events::Rule of the translated
template with a ScheduleExpression whose target is one of its functions (SAM turns each `Type: Schedule` event into
such a rule, named `<Function><Event>`). Expressions go through the resolver (`Schedule: !Ref DriftCheckSchedule`
gives the parameter's value) and are checked here, so an expression EventBridge would reject fails the local
stack's start with a message naming it.

`Scheduler` runs one daemon thread that sleeps until the next due time and starts each invocation in its own
thread, as EventBridge invokes Lambda asynchronously: the result is discarded, an error is logged and the
schedule keeps going, and an invocation still running when the next one is due is not started twice (that
run is skipped and logged). The function gets the Scheduled Event EventBridge sends, or the rule target's
`Input` JSON in its place, as in AWS.

Locally, `SKLAMBDA_LOCAL_SCHEDULE_EVERY=<seconds>` makes every enabled schedule fire every <seconds> (the first
time <seconds> after the stack starts) instead of following its expression; unset, the template's schedules
are followed (rate(1 day) fires a day after the stack started, cron in UTC).

Expressions: `rate(<n> minute|minutes|hour|hours|day|days)` (singular for 1, plural otherwise, as EventBridge
requires) and `cron(minutes hours day-of-month month day-of-week year)` with `*`, `?`, lists, ranges, `/`
steps, month and day names (JAN-DEC, SUN-SAT; day-of-week 1 is Sunday), `L` and `W` in day-of-month
(`L`, `LW`, `15W`) and `L` and `#` in day-of-week (`6L` last Friday, `2#1` first Monday). One of
day-of-month and day-of-week must be `?`. EventBridge Scheduler (`Type: ScheduleV2`, `at(...)`) is not
emulated.
"""

from __future__ import annotations

import calendar
import json
import math
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sklambda_infra.template import (
    EVENT_INVOKE_CONFIG,
    EVENTS_RULE,
    Resolver,
    TemplateError,
    referenced_function,
    resources_of_type,
)

Log = Callable[[str], None]
Invoke = Callable[[str, Any], Any]
Clock = Callable[[], datetime]

SCHEDULE_EVERY_ENV = "SKLAMBDA_LOCAL_SCHEDULE_EVERY"
# Lambda retries a failed asynchronous invocation twice unless EventInvokeConfig.MaximumRetryAttempts says so.
DEFAULT_ASYNC_RETRIES = 2
MIN_YEAR, MAX_YEAR = 1970, 2199  # EventBridge's cron year range
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


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: Mapping[str, int]


_MONTHS_ABBR = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_MONTH_NAMES = {name: i for i, name in enumerate(_MONTHS_ABBR, start=1)}
_DAY_NAMES = {name: i for i, name in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], start=1)}
_MINUTES = _Field("minutes", 0, 59, {})
_HOURS = _Field("hours", 0, 23, {})
_DAY_OF_MONTH = _Field("day-of-month", 1, 31, {})
_MONTH = _Field("month", 1, 12, _MONTH_NAMES)
_DAY_OF_WEEK = _Field("day-of-week", 1, 7, _DAY_NAMES)
_YEAR = _Field("year", MIN_YEAR, MAX_YEAR, {})


def _aws_day_of_week(day: date) -> int:
    """EventBridge numbers days of the week 1 (Sunday) to 7 (Saturday)."""
    return (day.weekday() + 1) % 7 + 1


def _last_day(day: date) -> int:
    return calendar.monthrange(day.year, day.month)[1]


def _nearest_weekday(year: int, month: int, target: int) -> int | None:
    """The `<target>W` day of a month: the weekday nearest to `target`, without leaving the month."""
    last = calendar.monthrange(year, month)[1]
    if target > last:
        return None
    weekday = date(year, month, target).weekday()  # Monday 0 .. Sunday 6
    if weekday == 5:  # Saturday: the Friday before, or the Monday after when the 1st is a Saturday
        return target - 1 if target > 1 else target + 2
    if weekday == 6:  # Sunday: the Monday after, or the Friday before at the end of the month
        return target + 1 if target < last else target - 2
    return target


DayRule = Callable[[date], bool]


@dataclass(frozen=True)
class Cron:
    """`cron(minutes hours day-of-month month day-of-week year)`, evaluated in UTC as EventBridge rules are."""

    expression: str
    minutes: frozenset[int]
    hours: frozenset[int]
    months: frozenset[int]
    years: frozenset[int]
    day_rule: DayRule

    def next_after(self, after: datetime, *, anchor: datetime | None = None) -> datetime | None:
        """The first minute strictly after `after` that matches, or None when none is left (year 2199 passed)."""
        moment = _utc(after).replace(second=0, microsecond=0) + timedelta(minutes=1)
        while moment.year <= MAX_YEAR:
            if moment.year not in self.years:
                later = [year for year in self.years if year > moment.year]
                if not later:
                    return None
                moment = datetime(min(later), 1, 1, tzinfo=UTC)
            elif moment.month not in self.months:
                moment = (moment.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
            elif not self.day_rule(moment.date()):
                moment = moment.replace(hour=0, minute=0) + timedelta(days=1)
            elif moment.hour not in self.hours:
                moment = moment.replace(minute=0) + timedelta(hours=1)
            elif moment.minute not in self.minutes:
                moment += timedelta(minutes=1)
            else:
                return moment
        return None


def _number(token: str, field: _Field, expression: str) -> int:
    upper = token.upper()
    if upper in field.names:
        return field.names[upper]
    if not token.isdigit():
        raise invalid(expression, f"{field.name}: {token!r} is not a number{' or a name' if field.names else ''}")
    value = int(token)
    if not field.low <= value <= field.high:
        raise invalid(expression, f"{field.name}: {value} is outside {field.low}-{field.high}")
    return value


def _values(text: str, field: _Field, expression: str) -> frozenset[int]:
    """`*`, `5`, `1,15`, `MON-FRI`, `0/15`, `*/10`, `8-18/2` -> the values they stand for."""
    values: set[int] = set()
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        if not base:
            raise invalid(expression, f"{field.name}: empty item in {text!r}")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise invalid(expression, f"{field.name}: step {step_text!r} is not a whole number of at least 1")
            step = int(step_text)
        if base == "*":
            start, end = field.low, field.high
        elif "-" in base:
            first, _, last = base.partition("-")
            start, end = _number(first, field, expression), _number(last, field, expression)
            if start > end:
                raise invalid(expression, f"{field.name}: range {base!r} goes backwards")
        else:
            start = _number(base, field, expression)
            end = field.high if slash else start
        values.update(range(start, end + 1, step))
    return frozenset(values)


def _day_of_month_rule(text: str, expression: str) -> DayRule:
    upper = text.upper()
    if upper == "L":
        return lambda day: day.day == _last_day(day)
    if upper == "LW":
        return lambda day: day.day == _nearest_weekday(day.year, day.month, _last_day(day))
    if upper.endswith("W"):
        target = _number(upper[:-1], _DAY_OF_MONTH, expression)
        return lambda day: day.day == _nearest_weekday(day.year, day.month, target)
    if "L" in upper or "W" in upper or "#" in upper:
        raise invalid(expression, f"day-of-month: {text!r} is not supported (use L, LW or <day>W alone)")
    days = _values(text, _DAY_OF_MONTH, expression)
    return lambda day: day.day in days


def _day_of_week_rule(text: str, expression: str) -> DayRule:
    upper = text.upper()
    if upper == "L":  # the last day of the week: Saturday
        return lambda day: _aws_day_of_week(day) == 7
    if upper.endswith("L") and "," not in upper:
        weekday = _number(upper[:-1], _DAY_OF_WEEK, expression)
        return lambda day: _aws_day_of_week(day) == weekday and day.day + 7 > _last_day(day)
    if "#" in upper and "," not in upper:
        weekday_text, _, nth_text = upper.partition("#")
        weekday = _number(weekday_text, _DAY_OF_WEEK, expression)
        if not nth_text.isdigit() or not 1 <= int(nth_text) <= 5:
            raise invalid(expression, f"day-of-week: in {text!r} the number after # must be 1 to 5")
        nth = int(nth_text)
        return lambda day: _aws_day_of_week(day) == weekday and (day.day - 1) // 7 + 1 == nth
    if "L" in upper or "#" in upper:
        raise invalid(expression, f"day-of-week: {text!r} is not supported (use <day>L or <day>#<n> alone)")
    weekdays = _values(text, _DAY_OF_WEEK, expression)
    return lambda day: _aws_day_of_week(day) in weekdays


_CRON = re.compile(r"cron\((.*)\)", re.DOTALL)
_CRON_FIELDS = "minutes hours day-of-month month day-of-week year"


def _parse_cron(expression: str) -> Cron:
    match = _CRON.fullmatch(expression)
    if match is None:
        raise invalid(expression, f"expected cron({_CRON_FIELDS})")
    fields = match.group(1).split()
    if len(fields) != 6:
        raise invalid(expression, f"cron takes 6 fields ({_CRON_FIELDS}), got {len(fields)}")
    minutes, hours, day_of_month, month, day_of_week, year = fields
    for text, field in ((minutes, _MINUTES), (hours, _HOURS), (month, _MONTH), (year, _YEAR)):
        if "?" in text:
            raise invalid(expression, f"{field.name}: ? is only allowed in day-of-month or day-of-week")
    for text, field in ((day_of_month, _DAY_OF_MONTH), (day_of_week, _DAY_OF_WEEK)):
        if "?" in text and text != "?":
            raise invalid(expression, f"{field.name}: ? must be the whole field, got {text!r}")
    if (day_of_month == "?") == (day_of_week == "?"):
        raise invalid(expression, "exactly one of day-of-month and day-of-week must be ? (EventBridge rule)")
    if day_of_month == "?":
        day_rule = _day_of_week_rule(day_of_week, expression)
    else:
        day_rule = _day_of_month_rule(day_of_month, expression)
    return Cron(
        expression=expression,
        minutes=_values(minutes, _MINUTES, expression),
        hours=_values(hours, _HOURS, expression),
        months=_values(month, _MONTH, expression),
        years=_values(year, _YEAR, expression),
        day_rule=day_rule,
    )


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
    function: str  # logical id of the function invoked
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


def _rule_identity(resolver: Resolver, rule_logical_id: str, name: Any) -> tuple[str, str]:
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
    """Every scheduled rule targeting the template's enabled functions, disabled ones included (`enabled=False`).

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
        rule_name, rule_arn = _rule_identity(resolver, rule_id, _resolve(resolver, props.get("Name"), where))
        enabled = _is_enabled(None, _resolve(resolver, props.get("State"), where))
        for target in props.get("Targets") or []:
            function = referenced_function(resolver, (target or {}).get("Arn"))
            if function is None:
                continue
            target_where = f"{where} target {target.get('Id', function)}"
            unsupported = sorted(set(target) & {"InputPath", "InputTransformer"})
            notes = (
                (f"{', '.join(unsupported)} not applied locally: the Scheduled Event is sent",) if unsupported else ()
            )
            found.append(
                ScheduleSource(
                    function=function,
                    event=rule_id,
                    expression=expression,
                    rule_name=rule_name,
                    rule_arn=rule_arn,
                    region=pseudo.region,
                    account_id=pseudo.account_id,
                    input=_input_text(_resolve(resolver, target.get("Input"), target_where), target_where),
                    enabled=enabled,
                    description=str(_resolve(resolver, props.get("Description"), where) or ""),
                    async_retries=_async_retries(resolver, function),
                    notes=notes,
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
    event)`, from one daemon thread; each invocation runs in a thread of its own.

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
    ) -> None:
        if every_s is not None and not (math.isfinite(every_s) and every_s > 0):
            raise ScheduleError(f"every_s must be a number of seconds above 0, got {every_s!r}")
        self.sources = list(sources)
        self.invoke = invoke
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
