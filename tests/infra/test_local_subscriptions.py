"""CloudWatch Logs subscription filters on the local stack: which lines match, batching to Firehose, errors."""

from __future__ import annotations

import json

import pytest

from sklambda_infra.local.subscriptions import LogForwarder, Subscription, UnsupportedFilter, matcher


@pytest.mark.parametrize(
    ("pattern", "line", "expected"),
    [
        ('{ $.capture = "sklambda/v1" }', '{"capture": "sklambda/v1", "row": 0}', True),
        ('{ $.capture = "sklambda/v1" }', '{"capture": "other"}', False),
        ('{ $.capture = "sklambda/v1" }', '{"level": "INFO", "message": "capture"}', False),
        ('{ $.capture = "sklambda/v1" }', "START RequestId: 1 Version: $LATEST", False),
        ('{ $.capture = "sklambda/v1" }', '{"capture": ', False),
        ("{ $.a.b = 2 }", '{"a": {"b": 2}}', True),
        ("{ $.a.b = 2 }", '{"a": {"b": 3}}', False),
        ("", "anything at all", True),
    ],
)
def test_json_equality_patterns_select_exactly_the_matching_lines(pattern, line, expected) -> None:
    assert matcher(pattern)(line) is expected


def test_patterns_that_are_not_emulated_are_refused_not_guessed() -> None:
    with pytest.raises(UnsupportedFilter, match="not emulated"):
        matcher('{ $.a = "x" && $.b = 1 }')
    with pytest.raises(UnsupportedFilter):
        matcher("ERROR")


class FakeFirehose:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, list[bytes]]] = []
        self.fail = fail

    def put_record_batch(self, DeliveryStreamName: str, Records: list[dict]) -> dict:
        if self.fail:
            raise RuntimeError("stream not found")
        self.calls.append((DeliveryStreamName, [r["Data"] for r in Records]))
        return {"FailedPutCount": 0}


def test_matching_lines_of_a_subscribed_group_reach_the_stream_one_record_per_line() -> None:
    # GIVEN a forwarder for one subscribed log group
    sub = Subscription("Sub", "/aws/lambda/predict", "capture", matcher('{ $.capture = "sklambda/v1" }'))
    firehose, log = FakeFirehose(), []
    forwarder = LogForwarder([sub], firehose, log.append)
    forwarder.start()
    sink = forwarder.sink("/aws/lambda/predict")
    # WHEN the function writes a log line and two capture lines, and another group is asked for
    sink('{"level": "INFO", "message": "scored"}')
    for i in range(2):
        sink(json.dumps({"capture": "sklambda/v1", "row": i}))
    forwarder.flush()
    forwarder.stop()
    # THEN the two capture lines were put as newline-terminated records, and no other group is subscribed
    records = [r for _, batch in firehose.calls for r in batch]
    assert [json.loads(r)["row"] for r in records] == [0, 1]
    assert all(r.endswith(b"\n") for r in records)
    assert {stream for stream, _ in firehose.calls} == {"capture"}
    assert forwarder.sink("/aws/lambda/other") is None
    assert forwarder.forwarded == 2 and not log


def test_an_unavailable_stream_is_reported_and_never_raises_into_the_function() -> None:
    sub = Subscription("Sub", "g", "gone", matcher(""))
    log: list[str] = []
    forwarder = LogForwarder([sub], FakeFirehose(fail=True), log.append)
    forwarder.start()
    forwarder.sink("g")("a line")
    forwarder.flush()
    forwarder.stop()
    assert any("1 records not delivered" in line for line in log)
