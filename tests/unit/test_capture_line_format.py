"""The capture line is a contract between its writer (monitoring/capture.py) and its reader (monitoring/windows.py).

windows.py selects a model version's lines in a time window on their bytes, without decoding them: the marker
first, then a UTC timestamp of fixed length, then the model and version at a fixed place. A line in any other form
is still read, decoded field by field, only slower; so a change on one side alone would not fail a functional
test, only the drift check's speed. These tests build lines with capture.py and check the bytes windows.py needs.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from sklambda.config import CaptureSettings
from sklambda.monitoring import windows
from sklambda.monitoring.capture import CAPTURE_MARKER, Capturer, Pseudonymizer, build_records

STAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00")


def captured_line(model: str, version: str) -> tuple[bytes, datetime, datetime]:
    """One line as the predict and batch functions write it (Capturer.capture), and the instants around it."""
    written: list[str] = []
    capturer = Capturer(
        CaptureSettings(key_ciphertext="unused"), pseudonymizer=Pseudonymizer(b"k" * 32), write=written.append
    )
    before = datetime.now(UTC)
    outcome = capturer.capture(
        model=model,
        version=version,
        request_id="req-1",
        rows=[{"who": "C1", "age": 42, "plan": "basic"}],
        predictions=["yes"],
        probabilities=[{"no": 0.25, "yes": 0.75}],
        feature_names=["who", "age", "plan"],
        pii=["who"],
    )
    after = datetime.now(UTC)
    assert outcome.sent == 1 and len(written) == 1
    return written[0].encode("utf-8"), before, after


@pytest.mark.parametrize(("model", "version"), [("churn", "3"), ("caf\u00e9-model", "1.2")])
def test_a_capture_line_starts_with_the_bytes_the_window_reader_selects_on(model: str, version: str) -> None:
    # GIVEN a line written by the capturer
    line, before, after = captured_line(model, version)
    # THEN it is one newline-terminated JSON object whose first key is the marker the log subscription filters on
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert next(iter(json.loads(line))) == "capture" and json.loads(line)["capture"] == CAPTURE_MARKER
    # AND it starts with the reader's prefix: the marker, then the timestamp key
    expected_prefix = b'{"capture":"' + CAPTURE_MARKER.encode() + b'","timestamp":"'
    assert expected_prefix == windows._LINE_PREFIX
    assert line.startswith(windows._LINE_PREFIX)
    # AND the next _STAMP_LEN bytes are the whole timestamp: UTC, milliseconds, in the form the window compares
    start = len(windows._LINE_PREFIX)
    stamp = line[start : start + windows._STAMP_LEN]
    assert STAMP.fullmatch(stamp), stamp
    assert stamp.decode() == json.loads(line)["timestamp"]
    assert stamp.decode() == windows._stamp(datetime.fromisoformat(stamp.decode()))
    assert before - timedelta(milliseconds=1) <= datetime.fromisoformat(stamp.decode()) <= after
    # AND right after it come the model and the version, exactly as the reader's identity fragment spells them
    card = SimpleNamespace(name=model, version=version)
    matcher = windows._Matcher(card, windows.Window(before - timedelta(hours=1), after + timedelta(hours=1)))
    assert line.startswith(matcher.identity, start + windows._STAMP_LEN)


def test_the_reader_takes_a_capture_line_undecoded_and_bounds_it_by_its_timestamp() -> None:
    # GIVEN a line written by the capturer
    line, _, _ = captured_line("churn", "3")
    stamp = datetime.fromisoformat(json.loads(line)["timestamp"])
    card = SimpleNamespace(name="churn", version="3")
    # THEN a window around it selects the line itself, on its bytes (the fast path returns bytes, not a dict)
    assert windows._Matcher(card, windows.Window(stamp - timedelta(hours=1), stamp + timedelta(hours=1)))(line) == line
    # AND the window is [start, end): a window ending at the stamp leaves it out, one starting there keeps it
    assert windows._Matcher(card, windows.Window(stamp - timedelta(hours=1), stamp))(line) is None
    assert windows._Matcher(card, windows.Window(stamp, stamp + timedelta(hours=1)))(line) == line
    # AND another version of the model is not selected
    other = SimpleNamespace(name="churn", version="4")
    assert windows._Matcher(other, windows.Window(stamp - timedelta(hours=1), stamp + timedelta(hours=1)))(line) is None


def test_a_stamp_on_a_whole_second_keeps_its_milliseconds_so_its_length_is_fixed() -> None:
    # GIVEN a record made at a whole second
    (record,) = build_records(
        model="churn",
        version="3",
        request_id="req-1",
        rows=[{"age": 42}],
        predictions=[1.5],
        probabilities=None,
        feature_names=["age"],
        pii=[],
        pseudonymizer=Pseudonymizer(b"k" * 32),
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    # THEN its stamp still has the fixed length the reader slices
    line = record.to_json_line().encode()
    start = len(windows._LINE_PREFIX)
    assert line[start : start + windows._STAMP_LEN] == b"2026-01-01T00:00:00.000+00:00"
    assert line[start + windows._STAMP_LEN : start + windows._STAMP_LEN + 1] == b'"'


@pytest.mark.parametrize("request_id", ["req-1", 'a","outcome":"error', "back\\slash\\", 'q"'])
def test_an_error_record_is_told_from_a_row_on_its_bytes_whatever_the_request_id(request_id: str) -> None:
    # GIVEN an error record and a row record of the same request (its id holding quotes or backslashes)
    from sklambda.monitoring.capture import ErrorRecord

    stamp = "2026-01-01T00:00:00.000+00:00"
    error = ErrorRecord(stamp, "churn", "3", request_id, 503, "model_refused", 2, "production").to_json_line().encode()
    (row,) = build_records(model="churn", version="3", request_id=request_id, rows=[{"age": 42}], predictions=[1],
                           probabilities=None, feature_names=["age"], pii=[], pseudonymizer=Pseudonymizer(b"k" * 32),
                           now=datetime(2026, 1, 1, tzinfo=UTC))  # fmt: skip
    # THEN both start with the bytes the window reader selects on, and only the error record is read as one
    card = SimpleNamespace(name="churn", version="3")
    matcher = windows._Matcher(card, windows.Window(datetime(2025, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)))
    at = len(windows._LINE_PREFIX) + windows._STAMP_LEN
    for line in (error, row.to_json_line().encode()):
        assert line.startswith(windows._LINE_PREFIX) and line.startswith(matcher.identity, at)
    assert windows._error_line(error, at + len(matcher.identity))
    assert not windows._error_line(row.to_json_line().encode(), at + len(matcher.identity))
    assert matcher(error) is None and matcher(row.to_json_line().encode()) is not None


def test_a_pseudonym_is_hmac_sha256_of_the_value_text_under_the_key() -> None:
    # GIVEN a key (the bytes 0..31)
    pseudonymizer = Pseudonymizer(bytes(range(32)))
    # THEN a string's pseudonym is h1: and the hex HMAC-SHA256 of its UTF-8 bytes, as computed independently by
    # `echo -n C0100042 | openssl dgst -sha256 -mac HMAC -macopt hexkey:000102...1f` (erasure and the drift check
    # rely on a value's pseudonym never changing under one key)
    expected = "cd7f159389e6ce981409e9bec4221da1515ce36e4e2ef32ce4e951462296f8c3"
    assert pseudonymizer.pseudonym("C0100042") == "h1:" + expected
    # AND any other value is pseudonymized through its JSON text
    assert pseudonymizer.pseudonym(17) == pseudonymizer.pseudonym("17")
    assert pseudonymizer.pseudonym({"a": [1, 2]}) == pseudonymizer.pseudonym('{"a": [1, 2]}')
