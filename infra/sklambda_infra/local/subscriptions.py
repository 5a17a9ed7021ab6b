"""CloudWatch Logs subscription filters for the local stack: function log lines → Firehose.

In the cloud, a subscription filter on a function's log group sends matching log events to its destination
(gzipped batches, which the capture stream unzips and reduces to the messages). Locally there is no CloudWatch
Logs: the stack reads each worker's output, and lines of a subscribed function that match the filter pattern are
put to the destination Firehose stream as the messages Firehose would have extracted (one record per line).
Only Firehose destinations and JSON equality patterns (`{ $.a.b = "x" }`, `{ $.n = 1 }`) or the empty pattern are
emulated; anything else is reported and skipped, never guessed.
"""

from __future__ import annotations

import json
import queue
import re
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sklambda_infra.template import Resolver, resources_of_type

SUBSCRIPTION_FILTER = "AWS::Logs::SubscriptionFilter"
_EQUALS = re.compile(r'^\{\s*\$\.([\w.]+)\s*=\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?)\s*\}$')
FLUSH_SECONDS = 0.2
MAX_BATCH = 500  # PutRecordBatch's record limit


class UnsupportedFilter(ValueError):
    pass


def matcher(pattern: str) -> Callable[[str], bool]:
    """A predicate for one log line, for the empty pattern or one JSON equality."""
    pattern = pattern.strip()
    if not pattern:
        return lambda line: True
    m = _EQUALS.match(pattern)
    if not m:
        raise UnsupportedFilter(f"filter pattern {pattern!r} is not emulated locally (only {{ $.field = value }})")
    path, expected = m.group(1).split("."), json.loads(m.group(2))

    def matches(line: str) -> bool:
        if not line.startswith("{"):
            return False
        try:
            value: Any = json.loads(line)
        except ValueError:
            return False
        for part in path:
            if not isinstance(value, dict) or part not in value:
                return False
            value = value[part]
        return value == expected

    return matches


@dataclass(frozen=True)
class Subscription:
    logical_id: str
    log_group: str
    stream: str
    matches: Callable[[str], bool]


def subscriptions(resolver: Resolver, log: Callable[[str], None]) -> list[Subscription]:
    """The template's enabled subscription filters that can run locally (call after provisioning)."""
    found = []
    for logical_id in resources_of_type(resolver.template, SUBSCRIPTION_FILTER):
        if not resolver.enabled(logical_id):
            continue
        props = resolver.resolve(resolver.template["Resources"][logical_id].get("Properties") or {})
        destination = str(props.get("DestinationArn", ""))
        if ":firehose:" not in destination:
            log(f"[local] {logical_id}: destination {destination!r} is not a Firehose stream; not emulated")
            continue
        try:
            matches = matcher(str(props.get("FilterPattern", "")))
        except UnsupportedFilter as e:
            log(f"[local] {logical_id}: {e}")
            continue
        found.append(Subscription(logical_id, str(props["LogGroupName"]), destination.split("/")[-1], matches))
    return found


class LogForwarder:
    """Takes each function's log lines; sends the matching ones to their streams from one background thread."""

    def __init__(self, subs: list[Subscription], firehose: Any, log: Callable[[str], None]) -> None:
        self._by_group: dict[str, list[Subscription]] = defaultdict(list)
        for sub in subs:
            self._by_group[sub.log_group].append(sub)
        self._firehose = firehose
        self._log = log
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, daemon=True, name="log-subscriptions")
        self.forwarded = 0
        self._started = False

    def describe(self) -> list[dict[str, str]]:
        return [
            {"filter": sub.logical_id, "log_group": group, "stream": sub.stream}
            for group, subs in self._by_group.items()
            for sub in subs
        ]

    def sink(self, log_group: str) -> Callable[[str], None] | None:
        """The callable a function's worker gives its output lines to, or None when nothing subscribes."""
        subs = self._by_group.get(log_group)
        if not subs:
            return None

        def offer(line: str) -> None:
            for sub in subs:
                if sub.matches(line):
                    self._queue.put((sub.stream, line))

        return offer

    def start(self) -> None:
        if self._by_group and not self._started:
            self._started = True
            self._thread.start()

    def stop(self) -> None:
        """Send what is queued, then end the thread."""
        if self._started:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._started = False

    def flush(self, timeout_s: float = 5.0) -> None:
        """Wait until every line offered so far has been sent (tests, demo)."""
        done = threading.Event()
        self._queue.put(("", done))  # type: ignore[arg-type]
        done.wait(timeout_s)

    def _run(self) -> None:
        pending: dict[str, list[str]] = defaultdict(list)
        while True:
            try:
                item = self._queue.get(timeout=FLUSH_SECONDS)
            except queue.Empty:
                self._send(pending)
                continue
            if item is None:
                self._send(pending)
                return
            stream, line = item
            if isinstance(line, threading.Event):
                self._send(pending)
                line.set()
                continue
            pending[stream].append(line)
            if len(pending[stream]) >= MAX_BATCH:
                self._send(pending)

    def _send(self, pending: dict[str, list[str]]) -> None:
        for stream, lines in pending.items():
            if not lines:
                continue
            try:
                answer = self._firehose.put_record_batch(
                    DeliveryStreamName=stream, Records=[{"Data": (line + "\n").encode("utf-8")} for line in lines]
                )
                failed = int(answer.get("FailedPutCount", 0))
                self.forwarded += len(lines) - failed
                if failed:
                    self._log(f"[local] subscription to {stream}: {failed} of {len(lines)} records refused")
            except Exception as e:  # the stream is gone, moto is stopping...: the cloud would retry; we report
                self._log(f"[local] subscription to {stream}: {len(lines)} records not delivered: {e}")
        pending.clear()
