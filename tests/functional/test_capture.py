"""Prediction capture (pseudonymized, sampled, never failing a prediction) and the right to erasure."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

import boto3
import pytest
from botocore.exceptions import ClientError

from sklambda import config
from sklambda.config import BatchCaptureSettings, CaptureSettings
from sklambda.errors import ConfigurationError
from sklambda.monitoring.capture import CAPTURE_MARKER, MAX_RECORD_BYTES, Capturer, Pseudonymizer, create_key_ciphertext
from sklambda.monitoring.privacy import erase_subject
from tests.support import call, event_body, import_predict_app, load_event

CAPTURE_BUCKET = "sklambda-data-test"


@pytest.fixture
def capture_env(function_env, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """A data bucket (for erasure) and a wrapped pseudonymization key: capture is on."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=CAPTURE_BUCKET)
    data_key = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    ciphertext = create_key_ciphertext(data_key)
    monkeypatch.setenv(config.PSEUDONYM_KEY_CIPHERTEXT, ciphertext)
    return SimpleNamespace(s3=s3, data_key=data_key, ciphertext=ciphertext)


@pytest.fixture
def capturing_app(capture_env):
    return import_predict_app()


def captured_objects(s3) -> dict[str, bytes]:
    listing = s3.list_objects_v2(Bucket=CAPTURE_BUCKET, Prefix=config.CAPTURE_PREFIX).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=CAPTURE_BUCKET, Key=o["Key"])["Body"].read() for o in listing}


def captured_records(s3) -> list[dict]:
    return [json.loads(line) for body in captured_objects(s3).values() for line in body.splitlines() if line]


def log_lines(text: str) -> list[dict]:
    found = []
    for line in text.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def capture_lines(text: str) -> list[dict]:
    """The records the subscription filter { $.capture = "sklambda/v1" } would select from the function's log."""
    return [r for r in log_lines(text) if r.get("capture") == CAPTURE_MARKER]


def emitted_metrics(text: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for blob in log_lines(text):
        for directive in blob.get("_aws", {}).get("CloudWatchMetrics", []):
            for metric in directive["Metrics"]:
                value = blob[metric["Name"]]
                found[metric["Name"]] = sum(value) if isinstance(value, list) else value
    return found


# --- pseudonyms ----------------------------------------------------------------------------------------------------
def test_pseudonyms_are_stable_per_key_and_differ_across_keys() -> None:
    # GIVEN two pseudonymizers with the same key and one with another key
    a, a_again, b = Pseudonymizer(b"k" * 32), Pseudonymizer(b"k" * 32), Pseudonymizer(b"j" * 32)
    # THEN the same id maps to the same pseudonym under one key, to another one under another key
    assert a.pseudonym("C0100042") == a_again.pseudonym("C0100042")
    assert a.pseudonym("C0100042") != b.pseudonym("C0100042")
    assert a.pseudonym("C0100042") != a.pseudonym("C0100043")
    # AND the pseudonym does not contain the identifier, and the key is never shown
    assert "C0100042" not in a.pseudonym("C0100042")
    assert a.key_id == a_again.key_id != b.key_id and "k" * 16 not in repr(a)


def test_wrapped_key_unwraps_to_the_same_pseudonyms_in_every_container(mocked_aws) -> None:
    # GIVEN a data key wrapped by KMS under the pseudonymization context
    kms_key = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    ciphertext = create_key_ciphertext(kms_key)
    # WHEN two containers unwrap it
    first, second = Pseudonymizer.from_ciphertext(ciphertext), Pseudonymizer.from_ciphertext(ciphertext)
    # THEN they agree, and a second key (a rotation) gives other pseudonyms
    assert first.pseudonym("C1") == second.pseudonym("C1")
    assert Pseudonymizer.from_ciphertext(create_key_ciphertext(kms_key)).pseudonym("C1") != first.pseudonym("C1")
    # AND the key cannot be unwrapped without the encryption context
    with pytest.raises(ClientError):
        boto3.client("kms").decrypt(CiphertextBlob=base64.b64decode(ciphertext))


# --- settings ------------------------------------------------------------------------------------------------------
def test_capture_is_off_without_a_key_or_with_a_zero_rate_and_refuses_bad_rates() -> None:
    assert not CaptureSettings.from_env({}).enabled
    assert CaptureSettings.from_env({}).sample_rate == 1.0
    assert CaptureSettings.from_env({config.PSEUDONYM_KEY_CIPHERTEXT: "x"}).enabled
    assert not CaptureSettings.from_env({config.PSEUDONYM_KEY_CIPHERTEXT: "x", config.CAPTURE_SAMPLE_RATE: "0"}).enabled
    with pytest.raises(ConfigurationError, match=config.CAPTURE_SAMPLE_RATE):
        CaptureSettings.from_env({config.CAPTURE_SAMPLE_RATE: "1.5"})
    batch = BatchCaptureSettings.from_env({config.PSEUDONYM_KEY_CIPHERTEXT: "x"})
    assert (batch.sample_rate, batch.max_rows) == (0.01, 10000)


# --- through the handler -------------------------------------------------------------------------------------------
def test_no_raw_pii_value_is_ever_captured(capturing_app, capture_env, published, lambda_context, capsys) -> None:
    # GIVEN the sample predict event, whose rows carry customer ids (a pii feature of the churn model)
    event = load_event("predict.json")
    rows = event_body("predict.json")["instances"]
    capsys.readouterr()
    # WHEN it is scored through the handler
    status, body = call(capturing_app, event, lambda_context)
    assert status == 200
    # THEN nothing the function logged (capture lines, logs, metrics) holds a raw pii value
    out = capsys.readouterr().out
    pii = published.input_schema.pii_features
    raw_values = {str(row[name]) for row in rows for name in pii}
    assert raw_values == {"C0100042", "C0100043"}
    for raw in raw_values:
        assert raw not in out
    # AND one capture line per row holds the pseudonym, the request id, the prediction and probabilities
    pseudonymizer = Pseudonymizer.from_ciphertext(capture_env.ciphertext)
    records = sorted(capture_lines(out), key=lambda r: r["row"])
    assert [r["features"]["customer_id"] for r in records] == [pseudonymizer.pseudonym(r["customer_id"]) for r in rows]
    assert {r["request_id"] for r in records} == {event["requestContext"]["requestId"]}
    assert [r["prediction"] for r in records] == body["predictions"]
    assert [r["probabilities"] for r in records] == body["probabilities"]
    assert records[0]["features"]["age"] == rows[0]["age"]
    assert {(r["model"], r["version"], r["key_id"]) for r in records} == {
        ("churn", published.version, pseudonymizer.key_id)
    }
    assert emitted_metrics(out)["CapturedRecords"] == 2


def test_a_request_mixing_rows_with_and_without_the_pii_column_is_captured_pseudonymized(
    capturing_app, capture_env, published, lambda_context, capsys
):
    # GIVEN capture on, and the sample request whose second row leaves out customer_id (the model never reads it)
    rows = event_body("predict.json")["instances"]
    instances = [rows[0], {k: v for k, v in rows[1].items() if k != "customer_id"}]
    capsys.readouterr()
    # WHEN scored
    status, _ = call(capturing_app, load_event("predict.json", body={"instances": instances}), lambda_context)
    out = capsys.readouterr().out
    # THEN both rows are captured: the given id as its pseudonym (never raw), the left-out one as null
    assert status == 200
    records = sorted(capture_lines(out), key=lambda r: r["row"])
    pseudonym = Pseudonymizer.from_ciphertext(capture_env.ciphertext).pseudonym(rows[0]["customer_id"])
    assert [r["features"]["customer_id"] for r in records] == [pseudonym, None]
    assert rows[0]["customer_id"] not in out


@pytest.mark.parametrize(("rate", "expected"), [("0", 0), ("1", 2)])
def test_sampling_rate_zero_captures_nothing_and_one_captures_all(
    capture_env, published, lambda_context, monkeypatch, capsys, rate, expected
) -> None:
    # GIVEN a function whose capture sample rate is 0 or 1
    monkeypatch.setenv(config.CAPTURE_SAMPLE_RATE, rate)
    app = import_predict_app()
    capsys.readouterr()
    # WHEN 5 requests of 2 rows are scored
    for _ in range(5):
        assert call(app, load_event("predict.json"), lambda_context)[0] == 200
    # THEN nothing or everything was captured
    assert len(capture_lines(capsys.readouterr().out)) == 5 * expected


def test_sampling_is_per_request() -> None:
    # GIVEN a rate of 0.5 and a random source below, then above, it
    draws = iter([0.1, 0.9])
    written: list[str] = []
    capturer = Capturer(
        CaptureSettings(sample_rate=0.5, key_ciphertext="x"),
        pseudonymizer=Pseudonymizer(b"k" * 32),
        write=written.append,
        rng=lambda: next(draws),
    )
    args = dict(model="m", version="1", request_id="r", rows=[{"a": 1}], predictions=[0], probabilities=None)
    # THEN the first request is captured and the second is not
    assert capturer.capture(**args, feature_names=["a"], pii=[]).sent == 1
    assert capturer.capture(**args, feature_names=["a"], pii=[]).sampled is False
    assert len(written) == 1 and json.loads(written[0])["capture"] == CAPTURE_MARKER


def test_rows_of_one_request_are_written_at_once_one_line_each() -> None:
    # GIVEN a capturer writing to a list
    written: list[str] = []
    capturer = Capturer(
        CaptureSettings(key_ciphertext="x"), pseudonymizer=Pseudonymizer(b"k" * 32), write=written.append
    )
    # WHEN three rows are captured
    rows = [{"a": i, "who": f"C{i}"} for i in range(3)]
    outcome = capturer.capture(
        model="m",
        version="1",
        request_id="r",
        rows=rows,
        predictions=[0, 1, 0],
        probabilities=None,
        feature_names=["a", "who"],
        pii=["who"],
    )
    # THEN one write holds three newline-terminated JSON lines (one CloudWatch Logs event each), pii pseudonymized
    assert outcome.sent == 3 and len(written) == 1
    lines = written[0].splitlines()
    assert len(lines) == 3 and written[0].endswith("\n")
    assert [json.loads(line)["row"] for line in lines] == [0, 1, 2]
    assert all(json.loads(line)["features"]["who"].startswith("h1:") for line in lines)


def test_failing_capture_does_not_fail_predictions_and_is_counted(
    capturing_app, capture_env, published, lambda_context, capsys, monkeypatch
) -> None:
    # GIVEN a capture whose log write fails (a closed stream)
    def broken(_: str) -> None:
        raise OSError("stream closed")

    monkeypatch.setattr(capturing_app.capturer, "_write", broken)
    capsys.readouterr()
    # WHEN the sample event is scored
    status, body = call(capturing_app, load_event("predict.json"), lambda_context)
    # THEN the prediction succeeds and the lost records are counted in CaptureFailures
    assert status == 200 and len(body["predictions"]) == 2
    metrics = emitted_metrics(capsys.readouterr().out)
    assert metrics["CaptureFailures"] == 2
    assert "CapturedRecords" not in metrics


def test_an_unusable_key_and_an_oversized_record_are_counted_not_raised() -> None:
    # GIVEN a capturer whose key cannot be unwrapped, and one given a row too large for a log event
    written: list[str] = []
    broken_key = Capturer(CaptureSettings(key_ciphertext=base64.b64encode(b"junk").decode()), write=written.append)
    fine = Capturer(CaptureSettings(key_ciphertext="x"), pseudonymizer=Pseudonymizer(b"k" * 32), write=written.append)
    args = dict(model="m", version="1", request_id="r", predictions=[0, 1], probabilities=None, feature_names=["a"])
    # WHEN both capture two rows
    first = broken_key.capture(**args, rows=[{"a": 1}, {"a": 2}], pii=["a"])
    second = fine.capture(**args, rows=[{"a": 1}, {"a": "x" * MAX_RECORD_BYTES}], pii=[])
    # THEN the outcomes say what was lost, and only the row that fits was written
    assert (first.sent, first.failed) == (0, 2)
    assert (second.sent, second.failed) == (1, 1)
    assert len(written) == 1 and len(written[0].splitlines()) == 1


def test_capture_lines_come_from_the_v2_route_too(capturing_app, capture_env, published, lambda_context, capsys):
    capsys.readouterr()
    status, _ = call(capturing_app, load_event("v2_infer.json"), lambda_context)
    assert status == 200
    assert capture_lines(capsys.readouterr().out)


def _v2_asking_for(output: str) -> dict:
    request = event_body("v2_infer.json")
    request["outputs"] = [{"name": output}]
    return load_event("v2_infer.json", body=request)


def _predict_with(**values) -> dict:
    row = {**event_body("predict.json")["instances"][0], **values}
    return load_event("predict.json", body={"instances": [row]})


@pytest.mark.parametrize(
    ("event", "status_code", "version", "rows"),
    [
        (lambda: _v2_asking_for("explanations"), 422, "1", 2),  # refused after scoring, while the answer is encoded
        (lambda: _predict_with(plan="\ud800"), 400, None, 0),  # the lone surrogate: refused before any version
        (lambda: _predict_with(age=10**30), 422, "1", 1),  # refused by version 1's validation
    ],
    ids=["v2-unknown-output", "lone-surrogate", "int64-overflow"],
)
def test_a_request_answered_with_an_error_captures_no_row_only_an_error_record_of_its_version(
    capturing_app, capture_env, published, lambda_context, capsys, event, status_code, version, rows
):
    # GIVEN capture on for every request
    capsys.readouterr()
    # WHEN a request ends in a 4xx, even one refused after its rows were scored
    status, _ = call(capturing_app, event(), lambda_context)
    # THEN no row is captured; a request that had resolved a version writes one error record naming it, no values
    assert status == status_code
    lines = capture_lines(capsys.readouterr().out)
    assert all("features" not in line and "prediction" not in line for line in lines)
    if version is None:
        assert lines == []
    else:
        assert [(r["outcome"], r["version"], r["status"], r["code"], r["rows"]) for r in lines] == [
            ("error", version, status_code, "invalid_input", rows)
        ]
        assert list(lines[0])[:7] == ["capture", "timestamp", "model", "version", "request_id", "outcome", "status"]


# --- erasure -------------------------------------------------------------------------------------------------------
def put_lines(s3, key: str, records: list[dict]) -> None:
    s3.put_object(Bucket=CAPTURE_BUCKET, Key=key, Body=b"".join(json.dumps(r).encode() + b"\n" for r in records))


def record(p: Pseudonymizer, subject: str, model: str = "churn", row: int = 0) -> dict:
    return {"model": model, "row": row, "features": {"customer_id": p.pseudonym(subject), "age": 3}, "prediction": 1}


@pytest.mark.parametrize("versioned", [False, True])
def test_erase_removes_exactly_one_subjects_records_and_reports_the_count(mocked_aws, versioned) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=CAPTURE_BUCKET)
    if versioned:
        s3.put_bucket_versioning(Bucket=CAPTURE_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    old, new = Pseudonymizer(b"o" * 32), Pseudonymizer(b"n" * 32)
    # GIVEN captures of two models where subject C1 appears under two keys (a rotation) next to C2's records
    put_lines(s3, "capture/model=churn/dt=2026-11-01/a", [record(old, "C1"), record(old, "C2", row=1)])
    put_lines(s3, "capture/model=churn/dt=2026-11-02/b", [record(new, "C1"), record(new, "C1", row=1)])
    put_lines(s3, "capture/model=churn/dt=2026-11-02/c", [record(new, "C2")])
    put_lines(s3, "capture/model=other/dt=2026-11-02/d", [record(new, "C1", model="other")])
    if versioned:  # an older version of a that also held C1
        put_lines(s3, "capture/model=churn/dt=2026-11-01/a", [record(old, "C1"), record(old, "C2", row=1)])
    # WHEN C1 is erased from churn with both keys
    report = erase_subject(CAPTURE_BUCKET, "churn", "C1", [old, new])
    # THEN its three current records are gone from two objects, and everything else is untouched
    assert (report.records_removed, report.objects_rewritten, report.objects_deleted) == (3, 1, 1)
    # AND each object touched is named once, however many of its versions held C1
    assert sorted(report.keys) == ["capture/model=churn/dt=2026-11-01/a", "capture/model=churn/dt=2026-11-02/b"]
    remaining = captured_records(s3)
    c2 = [old.pseudonym("C2"), new.pseudonym("C2")]
    churn = [r for r in remaining if r["model"] == "churn"]
    assert sorted(r["features"]["customer_id"] for r in churn) == sorted(c2)
    assert [r["model"] for r in remaining if r["features"]["customer_id"] == new.pseudonym("C1")] == ["other"]
    # AND on a versioned bucket no version anywhere under the model still holds C1
    if versioned:
        assert report.versions_deleted == 3
        versions = s3.list_object_versions(Bucket=CAPTURE_BUCKET, Prefix="capture/model=churn/")
        for v in versions.get("Versions", []):
            body = s3.get_object(Bucket=CAPTURE_BUCKET, Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
            assert old.pseudonym("C1").encode() not in body and new.pseudonym("C1").encode() not in body
        assert not versions.get("DeleteMarkers")
    # AND a second erase finds nothing
    assert erase_subject(CAPTURE_BUCKET, "churn", "C1", [old, new]).records_removed == 0


def test_cli_creates_a_wrapped_key_and_erases_with_it(mocked_aws, capsys) -> None:
    from sklambda_infra import cli

    # GIVEN a KMS key and a bucket with one subject's capture
    kms_key = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=CAPTURE_BUCKET)
    # WHEN the operator creates the pseudonymization key with the CLI
    assert cli.main(["privacy", "create-key", "--kms-key", kms_key]) == 0
    ciphertext = capsys.readouterr().out.strip()
    p = Pseudonymizer.from_ciphertext(ciphertext)
    put_lines(s3, "capture/model=churn/dt=2026-11-01/a", [record(p, "C1"), record(p, "C2", row=1)])
    # AND erases C1
    args = ["privacy", "erase", "--model", "churn", "--subject", "C1", "--data-bucket", CAPTURE_BUCKET]
    assert cli.main([*args, "--key-ciphertext", ciphertext, "--json"]) == 0
    # THEN the report counts one record from one object, and C2 stays
    assert json.loads(capsys.readouterr().out)["records_removed"] == 1
    assert [r["features"]["customer_id"] for r in captured_records(s3)] == [p.pseudonym("C2")]


def test_capture_benchmark_runs_both_arms_and_reports_the_ratio(aws_credentials) -> None:
    from sklambda_infra.bench import capture as capture_bench
    from sklambda_infra.bench import common

    # GIVEN tiny models and a one-round plan
    models = common.fit_models(rows=400, trees=3)
    # WHEN the benchmark runs
    results = capture_bench.run(rounds=2, block=2, rows=1, models=models)
    # THEN each model has a p50 ratio and a report row
    for r in results["models"].values():
        assert r["ratio_p50"] > 0 and r["p50_ms_with_capture"] > 0
    assert capture_bench.report(results).count("| churn-") == 4  # each model on each serving path


def test_cli_erase_finds_bucket_prefix_and_key_in_the_local_stack_details(mocked_aws, tmp_path, monkeypatch, capsys):
    from sklambda_infra import cli

    # GIVEN local stack details naming the capture bucket, moto's plain prefix and the generated key
    kms_key = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    ciphertext = create_key_ciphertext(kms_key)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=CAPTURE_BUCKET)
    p = Pseudonymizer.from_ciphertext(ciphertext)
    put_lines(s3, "capture/2026/11/27/06/stream-1", [record(p, "C1"), record(p, "C1", model="other", row=1)])
    details = {
        "aws_endpoint_url": "",
        "data_key_id": kms_key,
        "captures": [{"stream": "s", "bucket": CAPTURE_BUCKET, "prefix": "capture/"}],
        "generated_parameters": {"PseudonymKeyCiphertext": ciphertext},
    }
    (tmp_path / "local.json").write_text(json.dumps(details))
    monkeypatch.setenv("SKLAMBDA_LOCAL_FILE", str(tmp_path / "local.json"))
    monkeypatch.delenv(config.PSEUDONYM_KEY_CIPHERTEXT, raising=False)
    # WHEN erase is called with only the model and the subject
    assert cli.main(["privacy", "erase", "--model", "churn", "--subject", "C1", "--json"]) == 0
    # THEN the churn record is gone and the other model's record of the same subject stays
    assert json.loads(capsys.readouterr().out)["records_removed"] == 1
    assert [r["model"] for r in captured_records(s3)] == ["other"]
