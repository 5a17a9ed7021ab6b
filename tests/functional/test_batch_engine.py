"""Batch scoring engine: files in incoming/ → scored/, errors/ and a summary, atomically (moto S3)."""

from __future__ import annotations

import gzip
import io
import itertools
import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from sklambda.batch import (
    BatchInputError,
    BatchJobCrashed,
    BatchJobFailed,
    ChunkingUnsafe,
    ObjectRef,
    decode_s3_key,
    engine,
    merge_chunks,
    ordering,
    parse_incoming_key,
    plan_chunks,
    score_chunk,
    score_object,
    writer,
)
from sklambda.config import BatchSettings
from sklambda.serving.scoring import Scorer
from tests.support import BATCH_DATA_BUCKET as DATA
from tests.support import publish_churn

PROBA = ["proba_no", "proba_yes"]


def put(s3, key: str, body: bytes) -> ObjectRef:
    s3.put_object(Bucket=DATA, Key=key, Body=body)
    return ObjectRef(DATA, key, None, None, len(body))


def get(s3, key: str) -> bytes:
    return s3.get_object(Bucket=DATA, Key=key)["Body"].read()


def exists(s3, key: str) -> bool:
    return s3.list_objects_v2(Bucket=DATA, Prefix=key).get("KeyCount", 0) > 0 and any(
        o["Key"] == key for o in s3.list_objects_v2(Bucket=DATA, Prefix=key)["Contents"]
    )


def summary_of(s3, relative: str) -> dict:
    return json.loads(get(s3, f"scored/{relative}.summary.json"))


def errors_of(s3, relative: str) -> list[dict]:
    return [json.loads(line) for line in get(s3, f"errors/{relative}.jsonl").splitlines()]


def holdout_csv(churn, n: int = 200, **extra) -> bytes:
    frame = churn.X_holdout.iloc[:n].copy()
    for name, value in extra.items():
        frame[name] = value
    return frame.to_csv(index=False).encode()


def failed(call) -> dict:
    with pytest.raises(BatchJobFailed) as caught:
        call()
    assert caught.value.retryable is False
    return caught.value.summary.to_dict()


SETTINGS = BatchSettings(chunk_rows=64)


# -- keys -------------------------------------------------------------------------------------------------
def test_incoming_key_names_model_alias_or_version_and_relative_path():
    assert parse_incoming_key("incoming/churn/2024/day.csv").model == "churn"
    assert parse_incoming_key("incoming/churn/2024/day.csv").relative_path == "2024/day.csv"
    assert parse_incoming_key("incoming/churn@staging/a.csv").alias == "staging"
    assert parse_incoming_key("incoming/churn@3/a.csv").version == "3"
    assert parse_incoming_key("incoming/churn@1.2/a.jsonl.gz").version == "1.2"
    assert decode_s3_key("incoming/churn/my+file%40x.csv") == "incoming/churn/my file@x.csv"


@pytest.mark.parametrize(
    "key",
    ["scored/churn/a.csv", "incoming/churn.csv", "incoming/churn/", "incoming/churn/a.parquet", "incoming//a.csv"],
)
def test_key_that_is_not_a_batch_input_is_refused_naming_it(key):
    with pytest.raises(BatchInputError, match="cannot score"):
        parse_incoming_key(key)


def test_batch_settings_read_from_environment():
    settings = BatchSettings.from_env({"SKLAMBDA_BATCH_REJECT_THRESHOLD": "0.25", "SKLAMBDA_BATCH_CHUNK_ROWS": "10"})
    assert (settings.reject_threshold, settings.chunk_rows, settings.data_bucket) == (0.25, 10, None)


# -- happy paths ------------------------------------------------------------------------------------------
def test_csv_output_is_input_columns_plus_prediction_probabilities_and_version(server, s3, churn, logistic_model):
    # GIVEN a CSV with every feature plus an id column the model does not know
    body = holdout_csv(churn, 192, batch_ref=[f"R{i}" for i in range(192)])
    ref = put(s3, "incoming/churn/2024/day.csv", body)

    # WHEN it is scored
    summary = score_object(ref, server=server, settings=SETTINGS, s3=s3)

    # THEN every row is scored; the output keeps each input row's text and appends the model's columns
    assert (summary.status, summary.rows_read, summary.rows_scored, summary.rows_rejected) == ("succeeded", 192, 192, 0)
    out = get(s3, "scored/churn/2024/day.csv")
    in_lines, out_lines = body.decode().splitlines(), out.decode().splitlines()
    assert out_lines[0] == in_lines[0] + ",prediction,proba_no,proba_yes,decision,model_version,inference_id"
    assert all(o.startswith(i + ",") for i, o in zip(in_lines[1:], out_lines[1:], strict=True))
    scored = pd.read_csv(io.BytesIO(out))
    expected = logistic_model.predict_proba(churn.X_holdout.iloc[:192])
    assert np.array_equal(scored[PROBA].to_numpy(), expected)  # repr round-trips: identical floats
    assert scored["prediction"].tolist() == logistic_model.predict(churn.X_holdout.iloc[:192]).tolist()
    # AND the decision applies the card's threshold (default 0.5) to P(yes)
    assert scored["decision"].tolist() == np.where(expected[:, 1] >= 0.5, "yes", "no").tolist()
    assert set(scored["model_version"].astype(str)) == {"1"}
    assert scored["batch_ref"].tolist() == [f"R{i}" for i in range(192)]
    assert summary_of(s3, "churn/2024/day.csv")["status"] == "succeeded"
    assert not exists(s3, "errors/churn/2024/day.csv.jsonl")


@pytest.mark.parametrize("suffix", ["csv.gz", "jsonl", "jsonl.gz"])
def test_each_format_is_scored_into_the_same_format(server, s3, churn, logistic_model, suffix):
    # GIVEN the same 150 rows as CSV.gz, JSONL or JSONL.gz
    frame = churn.X_holdout.iloc[:150]
    if suffix.startswith("csv"):
        body = frame.to_csv(index=False).encode()
    else:
        body = frame.to_json(orient="records", lines=True).encode()
    if suffix.endswith(".gz"):
        body = gzip.compress(body)
    ref = put(s3, f"incoming/churn/day.{suffix}", body)

    # WHEN scored
    summary = score_object(ref, server=server, settings=SETTINGS, s3=s3)

    # THEN the output has the input's format (gz in, gz out) and the model's probabilities
    out = get(s3, f"scored/churn/day.{suffix}")
    if suffix.endswith(".gz"):
        out = gzip.decompress(out)
    scored = pd.read_csv(io.BytesIO(out)) if suffix.startswith("csv") else pd.read_json(io.BytesIO(out), lines=True)
    assert summary.rows_scored == 150 and summary.format == suffix
    assert np.allclose(scored[PROBA].to_numpy(), logistic_model.predict_proba(frame), rtol=0, atol=1e-15)
    assert list(scored.columns) == [*frame.columns, "prediction", *PROBA, "decision", "model_version", "inference_id"]


# -- prediction ids ---------------------------------------------------------------------------------------
def test_generated_inference_ids_name_job_and_byte_offset_and_a_retry_writes_the_same_ones(server, s3, churn):
    # GIVEN a CSV of 100 rows without an inference_id column
    body = holdout_csv(churn, 100)
    ref = put(s3, "incoming/churn/ids.csv", body)

    # WHEN it is scored twice (a retried job)
    score_object(ref, server=server, settings=SETTINGS, s3=s3, job_id="jobA")
    first = get(s3, "scored/churn/ids.csv")
    score_object(ref, server=server, settings=SETTINGS, s3=s3, job_id="jobA")

    # THEN every row gets the id <job id>-<byte offset of its line>, unique, and the retry writes the same bytes
    scored = pd.read_csv(io.BytesIO(first))
    offsets, at = [], 0
    for line in body.splitlines(keepends=True):
        offsets.append(at)
        at += len(line)
    assert scored["inference_id"].tolist() == [f"jobA-{o}" for o in offsets[1:]]
    assert scored["inference_id"].is_unique
    assert get(s3, "scored/churn/ids.csv") == first


def test_a_csv_inference_id_column_gives_the_ids_and_bad_or_repeated_ones_are_rejected_naming_the_line(
    server, s3, churn
):
    # GIVEN a CSV whose inference_id column holds the caller's ids; one is blank-containing, one repeats row 0's
    frame = churn.X_holdout.iloc[:30].copy()
    frame["inference_id"] = [f"order-{i}" for i in range(30)]
    frame.loc[frame.index[4], "inference_id"] = "has space"
    frame.loc[frame.index[7], "inference_id"] = "order-0"
    ref = put(s3, "incoming/churn/given.csv", frame.to_csv(index=False).encode())

    # WHEN scored
    summary = score_object(ref, server=server, settings=SETTINGS, s3=s3)

    # THEN the good rows keep their ids (no second inference_id column) and the bad ones are rejected with reasons
    scored = pd.read_csv(io.BytesIO(get(s3, "scored/churn/given.csv")))
    assert list(scored.columns).count("inference_id") == 1
    assert scored["inference_id"].tolist() == [f"order-{i}" for i in range(30) if i not in (4, 7)]
    assert (summary.rows_scored, summary.rows_rejected) == (28, 2)
    reasons = {e["line"]: e["reasons"][0] for e in errors_of(s3, "churn/given.csv")}
    assert set(reasons) == {6, 9} and {r["field"] for r in reasons.values()} == {"inference_id"}
    assert "already the id of line 2" in reasons[9]["message"]


def test_jsonl_rows_with_an_inference_id_key_keep_it_and_the_others_get_one(server, s3, churn):
    # GIVEN JSON Lines where the first row carries the caller's id and the second does not
    rows = json.loads(churn.X_holdout.iloc[:2].to_json(orient="records"))
    rows[0]["inference_id"] = "mine-1"
    body = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
    ref = put(s3, "incoming/churn/ids.jsonl", body)

    # WHEN scored
    score_object(ref, server=server, settings=SETTINGS, s3=s3, job_id="jobB")

    # THEN the first keeps its id (once) and the second gets <job id>-<byte offset>
    out = [json.loads(line) for line in get(s3, "scored/churn/ids.jsonl").splitlines()]
    assert [o["inference_id"] for o in out] == ["mine-1", f"jobB-{body.index(b'}') + 2}"]


# -- bad input --------------------------------------------------------------------------------------------
def test_empty_object_fails_with_a_report_and_no_scored_file(server, s3):
    summary = failed(
        lambda: score_object(put(s3, "incoming/churn/e.csv", b""), server=server, settings=SETTINGS, s3=s3)
    )
    assert summary["failure"]["reason"] == "empty" and "empty" in summary["failure"]["report"]
    assert summary_of(s3, "churn/e.csv")["status"] == "failed"
    assert not exists(s3, "scored/churn/e.csv")


def test_header_only_fails_as_nothing_to_score(server, s3, churn):
    ref = put(s3, "incoming/churn/h.csv", holdout_csv(churn, 0))
    summary = failed(lambda: score_object(ref, server=server, settings=SETTINGS, s3=s3))
    assert summary["failure"]["reason"] == "no_rows" and "header but no data rows" in summary["failure"]["report"]


def test_semicolon_delimited_file_is_named_as_such(server, s3, churn):
    ref = put(s3, "incoming/churn/s.csv", churn.X_holdout.iloc[:5].to_csv(index=False, sep=";").encode())
    summary = failed(lambda: score_object(ref, server=server, settings=SETTINGS, s3=s3))
    assert "looks ';'-delimited" in summary["failure"]["report"]


def test_missing_feature_column_fails_the_whole_file_before_scoring(server, s3, churn):
    body = churn.X_holdout.iloc[:20].drop(columns=["age", "plan"]).to_csv(index=False).encode()
    summary = failed(
        lambda: score_object(put(s3, "incoming/churn/m.csv", body), server=server, settings=SETTINGS, s3=s3)
    )
    assert summary["failure"]["reason"] == "bad_header"
    assert "age, plan" in summary["failure"]["report"] and summary["rows_scored"] == 0
    assert not exists(s3, "scored/churn/m.csv")


def test_bad_cells_are_rejected_row_by_row_with_line_and_field(server, s3, churn):
    # GIVEN 100 rows where a few cells are text, NaN, infinite, empty or fractional
    frame = churn.X_holdout.iloc[:100].astype(object)
    frame.loc[3, "age"] = "forty"
    frame.loc[5, "monthly_charges"] = "NaN"
    frame.loc[7, "tenure_months"] = "inf"
    frame.loc[9, "age"] = ""  # no nulls in training, but the pipeline imputes one: scored and counted
    frame.loc[11, "monthly_income"] = ""  # nullable: fine
    frame.loc[13, "support_calls"] = "1.5"  # integer feature
    frame.loc[15, "plan"] = ""  # category, imputed as unknown: scored and counted
    ref = put(s3, "incoming/churn/b.csv", frame.to_csv(index=False).encode())

    # WHEN scored
    summary = score_object(ref, server=server, settings=SETTINGS, s3=s3)

    # THEN exactly the bad rows are rejected, each with its physical line (header is line 1) and reason
    errors = errors_of(s3, "churn/b.csv")
    assert summary.rows_scored == 96 and summary.rows_rejected == 4
    assert summary.data_quality_warnings == {"unexpected_null": 2}
    got = {e["line"]: (e["reasons"][0]["field"], e["reasons"][0]["message"]) for e in errors}
    assert got == {
        5: ("age", "expected an integer, got string 'forty'"),
        7: ("monthly_charges", "expected a finite number, got 'NaN'"),
        9: ("tenure_months", "expected a finite integer, got inf"),
        15: ("support_calls", "expected an integer, got 1.5"),
    }
    assert errors[0]["raw"] == frame.to_csv(index=False).splitlines()[4]


def test_quoted_newlines_keep_rows_whole_and_line_numbers_physical(server, s3, churn):
    # GIVEN a CSV whose id column holds quoted newlines, then a bad row after them
    frame = churn.X_holdout.iloc[:10].astype(object)
    frame.loc[1, "customer_id"] = "C1\nsecond line\nthird"
    frame.loc[2, "customer_id"] = 'say "hi"'
    frame.loc[4, "age"] = "old"
    body = frame.to_csv(index=False).encode()
    ref = put(s3, "incoming/churn/q.csv", body)

    summary = score_object(ref, server=server, settings=SETTINGS, s3=s3)

    # THEN the multi-line row is one row, carried through intact, and the bad row's line counts physical lines
    assert (summary.rows_read, summary.rows_rejected) == (10, 1)
    assert errors_of(s3, "churn/q.csv")[0]["line"] == 8  # header 1, rows 2,3-5,6,7, bad row on 8
    scored = pd.read_csv(io.BytesIO(get(s3, "scored/churn/q.csv")))
    assert scored["customer_id"].iloc[1] == "C1\nsecond line\nthird"
    assert scored["customer_id"].iloc[2] == 'say "hi"'


def test_invalid_utf8_row_is_rejected_and_the_rest_scored(server, s3, churn):
    lines = holdout_csv(churn, 50).split(b"\n")
    lines[10] = lines[10].replace(b"C", b"\xff\xfe", 1)
    summary = score_object(put(s3, "incoming/churn/u.csv", b"\n".join(lines)), server=server, settings=SETTINGS, s3=s3)
    errors = errors_of(s3, "churn/u.csv")
    assert (summary.rows_scored, summary.rows_rejected) == (49, 1)
    assert errors[0]["line"] == 11 and "invalid UTF-8" in errors[0]["reasons"][0]["message"]


def test_enormous_line_is_rejected_without_reading_it_whole(server, s3, churn):
    # GIVEN a 3 MiB line among normal rows, with a 64 KiB row limit
    lines = holdout_csv(churn, 30).split(b"\n")
    lines[5] = b"x" * (3 * 1024 * 1024)
    settings = BatchSettings(chunk_rows=64, max_line_bytes=64 * 1024)
    summary = score_object(
        put(s3, "incoming/churn/big.csv", b"\n".join(lines)), server=server, settings=settings, s3=s3
    )
    (error,) = errors_of(s3, "churn/big.csv")
    assert (summary.rows_scored, summary.rows_rejected) == (29, 1)
    assert error["line"] == 6 and error["raw_truncated"] is True and len(error["raw"]) == settings.max_raw_bytes
    assert "longer than 65536 bytes" in error["reasons"][0]["message"]


def test_truncated_gzip_fails_reporting_the_rows_already_read(server, s3, churn):
    body = gzip.compress(holdout_csv(churn, 400))
    ref = put(s3, "incoming/churn/t.csv.gz", body[: len(body) * 2 // 3])
    summary = failed(lambda: score_object(ref, server=server, settings=SETTINGS, s3=s3))
    assert summary["failure"]["reason"] == "unreadable" and "truncated" in summary["failure"]["report"]
    assert summary["rows_read"] > 0 and f"{summary['rows_read']} row(s)" in summary["failure"]["report"]
    assert not exists(s3, "scored/churn/t.csv.gz")


def test_corrupt_gzip_fails_with_the_report(server, s3, churn):
    body = bytearray(gzip.compress(holdout_csv(churn, 400)))
    body[len(body) // 2 : len(body) // 2 + 50] = b"\x00" * 50
    summary = failed(
        lambda: score_object(put(s3, "incoming/churn/c.csv.gz", bytes(body)), server=server, settings=SETTINGS, s3=s3)
    )
    assert summary["failure"]["reason"] == "unreadable"


@pytest.mark.parametrize(
    ("key", "model"),
    [
        ("incoming/nosuch/a.csv", {"name": "nosuch", "alias": "production", "version": None}),
        ("incoming/churn@nosuch/a.csv", {"name": "churn", "alias": "nosuch", "version": None}),
        ("incoming/churn@9/a.csv", {"name": "churn", "alias": None, "version": "9"}),
    ],
)
def test_unknown_model_alias_or_version_fails_without_retry(server, s3, churn, key, model):
    summary = failed(lambda: score_object(put(s3, key, holdout_csv(churn, 5)), server=server, settings=SETTINGS, s3=s3))
    assert summary["failure"]["reason"] == "model_not_found"
    source = key.split("/")[1]  # the model and selector as uploaded: nosuch, churn@nosuch, churn@9
    assert summary_of(s3, f"{source}/a.csv")["failure"]["reason"] == "model_not_found"
    # AND the failed job's summary still names the model, alias or version the upload asked for
    assert summary["model"] == model


def test_a_refused_version_named_by_the_upload_is_named_in_the_failed_summary(registry_env, server, s3, churn):
    # GIVEN version 1 of churn whose artifact was overwritten after it was signed
    card = registry_env.registry.get_card("churn", "1")
    s3.put_object(Bucket=registry_env.bucket, Key=card.artifact.key, Body=b"not the signed bytes")
    # WHEN a file uploaded for churn@1 is scored
    ref = put(s3, "incoming/churn@1/t.csv", holdout_csv(churn, 5))
    summary = failed(lambda: score_object(ref, server=server, settings=SETTINGS, s3=s3))
    # THEN the job fails as refused, and its summary names the version the upload asked for
    assert summary["failure"]["reason"] == "model_refused"
    assert summary["model"] == {"name": "churn", "alias": None, "version": "1"}


def test_object_deleted_before_it_is_read_is_reported(server, s3):
    summary = failed(
        lambda: score_object(ObjectRef(DATA, "incoming/churn/gone.csv", None), server=server, settings=SETTINGS, s3=s3)
    )
    assert summary["failure"]["reason"] == "input_missing" and "deleted" in summary["failure"]["report"]


def test_reject_rate_above_threshold_fails_and_keeps_the_errors(server, s3, churn):
    # GIVEN 30 of 100 rows with text in a numeric column (threshold 10%)
    frame = churn.X_holdout.iloc[:100].astype(object)
    frame.loc[:29, "age"] = "n/a"
    ref = put(s3, "incoming/churn/r.csv", frame.to_csv(index=False).encode())

    summary = failed(lambda: score_object(ref, server=server, settings=SETTINGS, s3=s3))

    # THEN nothing is published, the errors file lists the 30 rows and the summary says why
    assert summary["failure"]["reason"] == "reject_threshold" and "30 of 100" in summary["failure"]["report"]
    assert summary["outputs"]["scored"] is None
    # AND the counts still add up: 70 rows were scored (none published), 30 rejected
    assert (summary["rows_read"], summary["rows_scored"], summary["rows_rejected"]) == (100, 70, 30)
    assert len(errors_of(s3, "churn/r.csv")) == 30 and not exists(s3, "scored/churn/r.csv")


def test_model_card_tag_overrides_the_reject_threshold(registry_env, server, s3, churn, logistic_model):
    # GIVEN version 2 published with a 50% batch reject threshold in its card
    publish_churn(registry_env, churn, logistic_model, alias="tolerant", tags={"batch_reject_threshold": "0.5"})
    frame = churn.X_holdout.iloc[:100].astype(object)
    frame.loc[:29, "age"] = "n/a"
    ref = put(s3, "incoming/churn@tolerant/r.csv", frame.to_csv(index=False).encode())

    summary = score_object(ref, server=server, settings=SETTINGS, s3=s3)

    assert (summary.status, summary.model_version, summary.reject_threshold) == ("succeeded", "2", 0.5)
    assert summary.rows_scored == 70


# -- atomicity and retries --------------------------------------------------------------------------------
def test_crash_mid_file_leaves_nothing_and_a_retry_publishes_one_complete_file(server, s3, churn, monkeypatch):
    # GIVEN tiny upload parts so the output is mid multipart upload when scoring crashes on the second chunk
    body = holdout_csv(churn, 400)
    ref = put(s3, "incoming/churn/crash.csv", body)
    monkeypatch.setattr(writer, "MIN_PART_BYTES", 1024)
    calls = {"n": 0}
    real = Scorer.score_arrays

    def flaky(self, frame):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("container killed")
        return real(self, frame)

    monkeypatch.setattr(Scorer, "score_arrays", flaky)
    with pytest.raises(BatchJobCrashed) as crashed:
        score_object(ref, server=server, settings=BatchSettings(chunk_rows=64, part_bytes=1024), s3=s3)

    # THEN the crash is retryable and carries the original exception
    assert crashed.value.retryable is True and isinstance(crashed.value.__cause__, RuntimeError)
    # AND no scored object and no incomplete multipart upload remain
    assert not exists(s3, "scored/churn/crash.csv")
    assert not s3.list_multipart_uploads(Bucket=DATA).get("Uploads")
    # AND the job still ends with a failed summary: the reason and the counts so far (two batches of 64 records,
    #     the first one with the header)
    report = summary_of(s3, "churn/crash.csv")
    assert report["status"] == "failed" and report["failure"]["reason"] == "unexpected_error"
    assert "RuntimeError: container killed" in report["failure"]["report"]
    assert (report["rows_read"], report["rows_scored"], report["rows_rejected"]) == (127, 127, 0)
    assert report["outputs"]["scored"] is None

    # WHEN retried (the crash is gone)
    monkeypatch.undo()
    summary = score_object(ref, server=server, settings=SETTINGS, s3=s3)
    assert summary.rows_scored == 400
    assert len(get(s3, "scored/churn/crash.csv").decode().splitlines()) == 401


# -- fan-out ----------------------------------------------------------------------------------------------
def test_chunk_plan_and_merge_equal_the_single_pass_byte_for_byte(server, s3, churn):
    # GIVEN a 400-row CSV with rejected rows scattered through it
    frame = churn.X_holdout.iloc[:400].astype(object)
    frame.loc[[3, 150, 390], "age"] = "bad"
    ref = put(s3, "incoming/churn/f.csv", frame.to_csv(index=False).encode())
    single = score_object(ref, server=server, settings=SETTINGS, s3=s3, job_id="job1")
    one_pass = (get(s3, "scored/churn/f.csv"), get(s3, "errors/churn/f.csv.jsonl"))

    # WHEN planned in ~6 KiB ranges, scored per range and merged
    ranges = plan_chunks(ref, chunk_bytes=6 * 1024, s3=s3)
    results = [
        score_chunk(ref, r, chunk_index=i, server=server, settings=SETTINGS, s3=s3, job_id="job1")
        for i, r in enumerate(ranges)
    ]
    merged = merge_chunks(ref, list(reversed(results)), settings=SETTINGS, s3=s3, job_id="job1")

    # THEN the outputs are identical, counts agree, and tmp/ is cleaned up
    assert len(ranges) > 3 and ranges[0].start == 0 and ranges[-1].end == ref.size
    assert all(a.end == b.start for a, b in itertools.pairwise(ranges))
    assert (get(s3, "scored/churn/f.csv"), get(s3, "errors/churn/f.csv.jsonl")) == one_pass
    assert (
        (merged.rows_read, merged.rows_scored, merged.rows_rejected)
        == (400, 397, 3)
        == (
            single.rows_read,
            single.rows_scored,
            single.rows_rejected,
        )
    )
    assert merged.chunks == len(ranges)
    assert not s3.list_objects_v2(Bucket=DATA, Prefix="tmp/").get("KeyCount")


def test_chunk_with_quoted_newline_asks_for_a_single_pass(server, s3, churn):
    frame = churn.X_holdout.iloc[:200].astype(object)
    frame.loc[150, "customer_id"] = "two\nlines"
    ref = put(s3, "incoming/churn/qq.csv", frame.to_csv(index=False).encode())
    ranges = plan_chunks(ref, chunk_bytes=4 * 1024, s3=s3)
    with pytest.raises(ChunkingUnsafe):
        for i, r in enumerate(ranges):
            score_chunk(ref, r, chunk_index=i, server=server, settings=SETTINGS, s3=s3, job_id="job2")


def test_gzip_objects_are_never_split(server, s3, churn):
    ref = put(s3, "incoming/churn/z.csv.gz", gzip.compress(holdout_csv(churn, 400)))
    assert plan_chunks(ref, chunk_bytes=1024, s3=s3) == [engine.ByteRange(0, ref.size)]


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_explanation_columns_are_added_when_the_upload_asks_and_add_up_to_the_probability(
    server, s3, churn, logistic_model, suffix
):
    # GIVEN 40 rows uploaded with the metadata explain=true
    frame = churn.X_holdout.iloc[:40]
    body = (
        frame.to_csv(index=False).encode() if suffix == "csv" else frame.to_json(orient="records", lines=True).encode()
    )
    s3.put_object(Bucket=DATA, Key=f"incoming/churn/explained.{suffix}", Body=body, Metadata={"explain": "true"})
    ref = ObjectRef(DATA, f"incoming/churn/explained.{suffix}")
    # WHEN scored
    summary = score_object(ref, server=server, settings=SETTINGS, s3=s3)
    # THEN after model_version come explain_base and one explain_<feature> per input feature (then the inference id),
    # which add up to P(yes) on every row
    out = get(s3, f"scored/churn/explained.{suffix}")
    scored = pd.read_csv(io.BytesIO(out)) if suffix == "csv" else pd.read_json(io.BytesIO(out), lines=True)
    names = [f"explain_{c}" for c in frame.columns]
    assert summary.rows_scored == 40
    assert list(scored.columns)[-len(names) - 3 :] == ["model_version", "explain_base", *names, "inference_id"]
    total = scored["explain_base"] + scored[names].sum(axis=1)
    assert np.allclose(total.to_numpy(), scored["proba_yes"].to_numpy(), atol=1e-9)
    assert (scored["explain_customer_id"] == 0).all()


def test_without_the_metadata_no_explanation_columns_are_written(server, s3, churn):
    ref = put(s3, "incoming/churn/plain.csv", churn.X_holdout.iloc[:20].to_csv(index=False).encode())
    score_object(ref, server=server, settings=SETTINGS, s3=s3)
    header = get(s3, "scored/churn/plain.csv").decode().splitlines()[0]
    assert "explain_" not in header


# -- ordering (issue 10) ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("candidate", "than", "newer"),
    [
        ("0055AED6DCD90281E6", "0055AED6DCD90281E5", True),
        ("0055AED6DCD90281E5", "0055AED6DCD90281E6", False),
        ("0055AED6DCD90281E5", "0055AED6DCD90281E5", False),
        ("100", "FF", True),  # padded with leading zeros: 100 > 0FF (as plain strings "100" < "FF")
        ("FF", "0100", False),
        ("0a", "09", True),  # hex case does not matter
        ("01", None, True),
        (None, "01", False),
    ],
)
def test_sequencers_compare_as_hex_after_padding_with_leading_zeros(candidate, than, newer):
    assert ordering.is_newer(candidate, than) is newer


def test_an_older_upload_scoring_while_a_newer_one_publishes_publishes_nothing(server, s3, churn):
    # GIVEN two uploads of one key, the older (sequencer 0A) still scoring when the newer (0B) publishes
    s3.put_bucket_versioning(Bucket=DATA, VersioningConfiguration={"Status": "Enabled"})
    key = "incoming/churn/race.csv"
    old_ref = ObjectRef(DATA, key, s3.put_object(Bucket=DATA, Key=key, Body=holdout_csv(churn, 200))["VersionId"])
    new_ref = ObjectRef(DATA, key, s3.put_object(Bucket=DATA, Key=key, Body=holdout_csv(churn, 50))["VersionId"])
    old_ref, new_ref = replace(old_ref, sequencer="0A"), replace(new_ref, sequencer="0B")
    newer: list = []

    def newer_publishes_meanwhile(*_):
        if not newer:
            newer.append(score_object(new_ref, server=server, settings=SETTINGS, s3=s3))

    # WHEN the older job finishes after the newer one
    older = score_object(old_ref, server=server, settings=SETTINGS, s3=s3, observer=newer_publishes_meanwhile)

    # THEN the older job is superseded: the scored file and summary are the newer upload's
    assert (newer[0].status, older.status, older.superseded_by) == ("succeeded", "superseded", "0B")
    assert older.rows_read == older.rows_scored + older.rows_rejected == 200
    assert summary_of(s3, "churn/race.csv")["input"]["sequencer"] == "0B"
    assert len(get(s3, "scored/churn/race.csv").splitlines()) == 51
    assert json.loads(get(s3, "scored/churn/race.csv.superseded.json"))["superseded_by"] == {"sequencer": "0B"}
    assert s3.head_object(Bucket=DATA, Key="scored/churn/race.csv")["Metadata"] == {"sklambda-sequencer": "0B"}


def test_an_older_failed_upload_neither_deletes_nor_replaces_the_newer_output(server, s3, churn):
    # GIVEN the newer upload (sequencer 02) scored
    key = "incoming/churn/pair.csv"
    newer = replace(put(s3, key, holdout_csv(churn, 30)), sequencer="02")
    score_object(newer, server=server, settings=SETTINGS, s3=s3)
    older = replace(put(s3, key, b"foo,bar\n1,2\n"), sequencer="01")
    # WHEN the older upload, whose header is wrong, is delivered late
    result = score_object(older, server=server, settings=SETTINGS, s3=s3)
    # THEN it does not fail the newer output: superseded, the scored file and summary stay
    assert result.status == "superseded" and result.failure_reason is None
    assert summary_of(s3, "churn/pair.csv")["status"] == "succeeded" and exists(s3, "scored/churn/pair.csv")


def test_of_two_jobs_racing_for_the_summary_only_the_newer_wins(s3, server):
    # GIVEN two jobs of one key that both found no summary (neither has published yet)
    older = ordering.Guard(s3, DATA, "scored/churn/x.csv.summary.json", "01")
    newer = ordering.Guard(s3, DATA, "scored/churn/x.csv.summary.json", "02")
    older.check()
    newer.check()
    # WHEN the newer one writes first, then the older one (its If-None-Match fails, it reads the summary again)
    newer.put_summary({"by": "newer"})
    with pytest.raises(ordering.Superseded) as caught:
        older.put_summary({"by": "older"})
    # THEN the newer summary stays
    assert caught.value.sequencer == "02"
    assert json.loads(get(s3, "scored/churn/x.csv.summary.json")) == {"by": "newer"}


def test_a_newer_job_replaces_a_summary_written_since_it_looked(s3, server):
    # GIVEN two jobs that both found no summary, the older one writing first
    older = ordering.Guard(s3, DATA, "scored/churn/y.csv.summary.json", "01")
    newer = ordering.Guard(s3, DATA, "scored/churn/y.csv.summary.json", "02")
    older.check()
    newer.check()
    older.put_summary({"by": "older"})
    # WHEN the newer one writes (its condition fails once, it reads the older summary and writes over its ETag)
    newer.put_summary({"by": "newer"})
    # THEN the newer summary is the one published
    assert json.loads(get(s3, "scored/churn/y.csv.summary.json")) == {"by": "newer"}


def test_cells_that_cannot_be_parsed_are_their_rows_rejections_not_a_crash(server, s3, churn):
    # GIVEN rows with integers too large for int64 or for a float, and a carriage return inside an unquoted field
    frame = churn.X_holdout.iloc[:40].astype(object)
    frame.loc[2, "age"] = "1" + "0" * 20
    frame.loc[4, "monthly_charges"] = "2" + "0" * 308
    frame.loc[6, "support_calls"] = "1" + "0" * 4300
    lines = frame.to_csv(index=False).splitlines()
    lines[9] = lines[9].replace(",", "\r,", 1)
    ref = put(s3, "incoming/churn/cells.csv", ("\n".join(lines) + "\n").encode())
    # WHEN scored
    summary = score_object(ref, server=server, settings=SETTINGS, s3=s3)
    # THEN each such row is rejected with its reason, the rest scored
    reasons = {e["line"]: e["reasons"][0]["message"] for e in errors_of(s3, "churn/cells.csv")}
    assert (summary.rows_read, summary.rows_scored, summary.rows_rejected) == (40, 36, 4)
    assert reasons[4] == "expected an integer between -2^63 and 2^63, got 1e+20"
    assert reasons[6].startswith("expected a finite number")
    assert reasons[8].startswith("expected a finite integer")
    assert reasons[10].startswith("the row cannot be read as CSV")


def test_json_integers_too_large_for_the_model_are_rejected_per_row(server, s3, churn):
    # GIVEN JSON lines whose numbers are integers too large for a float, or for int64 in an integer feature
    rows = churn.X_holdout.iloc[:20].to_json(orient="records", lines=True).splitlines()
    rows[1] = rows[1].replace('"monthly_charges":', '"monthly_charges":2' + "0" * 308 + ',"x":', 1)
    rows[3] = rows[3].replace('"age":', '"age":' + "9" * 19 + ',"y":', 1)
    ref = put(s3, "incoming/churn/big-ints.jsonl", ("\n".join(rows) + "\n").encode())
    # WHEN scored THEN both rows are rejected with a reason and the job succeeds
    summary = score_object(ref, server=server, settings=SETTINGS, s3=s3)
    reasons = {e["line"]: e["reasons"][0]["message"] for e in errors_of(s3, "churn/big-ints.jsonl")}
    assert (summary.status, summary.rows_scored, summary.rows_rejected) == ("succeeded", 18, 2)
    # (the same checks and words as the API: FeatureSpec.check)
    assert reasons == {
        2: "expected a number within the 64-bit float range (±1.798e+308), got an integer of 309 digits",
        4: "expected an integer within the 64-bit range (±9223372036854775807), got int 9999999999999999999",
    }
