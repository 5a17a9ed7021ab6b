"""Property-based tests of batch files (hypothesis): whatever a file holds, the job ends with a summary.

Random CSV and JSONL content (random bytes, random cells, wrong types, huge numbers, lone surrogates, NaN and
infinities, blank lines, ragged rows, quotes) goes through score_object against moto S3. For every file:
- the job never raises anything but BatchJobFailed (whose failed summary is written);
- the summary in S3 is the job's, and its counts add up: rows_read == rows_scored + rows_rejected;
- a succeeded job's scored file has one line per scored row (plus the CSV header).
Fixed seed (derandomize) and a small budget, so the run is the same every time and takes seconds.
"""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sklambda.batch import BatchJobFailed, ObjectRef, score_object
from sklambda.config import BatchSettings
from tests.support import BATCH_DATA_BUCKET as DATA

SETTINGS = BatchSettings(chunk_rows=16, max_line_bytes=16 * 1024)
PROPERTY = settings(
    derandomize=True,
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
HUGE = ["2" + "0" * 308, "1" + "0" * 4300, "-" + "9" * 400, "1e309", "-1e400", "1" + "0" * 20]
SPECIAL = ["NaN", "nan", "inf", "-inf", "Infinity", "", " ", "true", "FALSE", "1.5", "3.0", "0x10", "١٢"]
_keys = itertools.count()


@pytest.fixture
def features(churn) -> list[str]:
    return list(churn.X.columns)


def text_cells() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(HUGE + SPECIAL),
        st.integers(min_value=-(10**30), max_value=10**30).map(str),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.text(max_size=12),
        st.text(alphabet=',"\n\r;\t\\', max_size=6),
        st.sampled_from(["basic", "premium", "north", "card", "C0100801"]),
    )


def csv_cell(text: str) -> str:
    """Quote some cells the RFC 4180 way, leave others raw (so raw quotes and commas occur too)."""
    if any(c in text for c in ',"\n') and len(text) % 2:
        return '"' + text.replace('"', '""') + '"'
    return text


def json_values() -> st.SearchStrategy[str]:
    """JSON text of one value: valid values of every type, and tokens json.dumps would never write."""
    return st.one_of(
        st.sampled_from([*HUGE, "NaN", "Infinity", "-Infinity", "null", "true", '"\\ud800"', '"a\\udfff"', "[]", "{}"]),
        st.integers().map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(json.dumps),
        st.text(max_size=10).map(json.dumps),
        st.booleans().map(json.dumps),
        st.sampled_from(['"basic"', '"premium"', "1", "42", "0.5", '"1"']),
    )


# Built once: a strategy built anew for every cell costs more than drawing from it.
TEXT_CELLS, JSON_VALUES = text_cells(), json_values()


@st.composite
def csv_files(draw, features: list[str]) -> bytes:
    header = features if draw(st.booleans()) else draw(st.permutations(features))
    lines = [",".join(header)]
    for _ in range(draw(st.integers(min_value=0, max_value=25))):
        kind = draw(st.sampled_from(["row", "row", "row", "blank", "ragged", "bytes"]))
        if kind == "blank":
            lines.append("")
        elif kind == "bytes":
            lines.append(draw(st.binary(max_size=40)).decode("latin-1"))
        else:
            n = len(header) + (draw(st.sampled_from([-1, 1])) if kind == "ragged" else 0)
            lines.append(",".join(csv_cell(draw(TEXT_CELLS)) for _ in range(n)))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    body = newline.join(lines) + draw(st.sampled_from(["", newline]))
    return body.encode("utf-8", "surrogatepass")


@st.composite
def jsonl_files(draw, features: list[str]) -> bytes:
    lines = []
    for _ in range(draw(st.integers(min_value=0, max_value=25))):
        kind = draw(st.sampled_from(["row", "row", "row", "blank", "missing", "junk"]))
        if kind == "blank":
            lines.append("")
        elif kind == "junk":
            lines.append(draw(st.sampled_from(["[1, 2]", "42", '"text"', "{", "{'a': 1}", "null"])))
        else:
            names = features[1:] if kind == "missing" else features
            lines.append("{" + ", ".join(f"{json.dumps(n)}: {draw(JSON_VALUES)}" for n in names) + "}")
    return ("\n".join(lines) + "\n").encode()


def run(s3, server, suffix: str, body: bytes) -> dict:
    """Score `body` as a new upload; the job's summary as written to S3 (asserting it is the returned one)."""
    key = f"incoming/churn/prop-{next(_keys)}.{suffix}"
    s3.put_object(Bucket=DATA, Key=key, Body=body)
    try:
        summary = score_object(ObjectRef(DATA, key), server=server, settings=SETTINGS, s3=s3)
    except BatchJobFailed as e:
        summary = e.summary
    written = json.loads(s3.get_object(Bucket=DATA, Key=summary.summary_key)["Body"].read())
    assert written == json.loads(json.dumps(summary.to_dict()))
    assert written["rows_read"] == written["rows_scored"] + written["rows_rejected"]
    if written["status"] == "succeeded":
        scored = s3.get_object(Bucket=DATA, Key=written["outputs"]["scored"])["Body"].read()
        header = 1 if suffix == "csv" else 0
        assert len(scored.splitlines()) == written["rows_scored"] + header or b"\r" in body or b'"' in scored
    return written


@PROPERTY
@given(data=st.data())
def test_any_csv_file_ends_with_a_summary_whose_counts_add_up(s3, server, features, data):
    # GIVEN a CSV with the model's header and random cells, ragged rows, raw bytes and blank lines
    body = data.draw(csv_files(features))
    # WHEN it is scored THEN the job ends with its summary and the counts add up (see run)
    run(s3, server, "csv", body)


@PROPERTY
@given(data=st.data())
def test_any_jsonl_file_ends_with_a_summary_whose_counts_add_up(s3, server, features, data):
    # GIVEN JSON lines with values of every type, huge numbers, NaN, lone surrogates, junk lines
    body = data.draw(jsonl_files(features))
    # WHEN it is scored THEN the job ends with its summary and the counts add up
    run(s3, server, "jsonl", body)


@PROPERTY
@given(body=st.binary(max_size=300), suffix=st.sampled_from(["csv", "jsonl", "csv.gz"]))
def test_any_bytes_end_with_a_summary(s3, server, body, suffix):
    # GIVEN random bytes under any suffix WHEN scored THEN the job ends with its summary
    assert run(s3, server, suffix, body)["status"] in ("succeeded", "failed")
