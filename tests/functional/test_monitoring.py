"""The drift check over captured predictions in S3: window selection, reports, consecutive-window state."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from sklambda.errors import ModelRefused
from sklambda.monitoring.drift_check import StateStore, run_drift_check
from sklambda.monitoring.windows import Window
from sklambda_infra import sample
from tests.support import write_capture

DATA_BUCKET = "sklambda-data-test"
END = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
WINDOW = Window.ending(END, hours=24)


@pytest.fixture
def data_bucket(registry_env):
    registry_env.s3().create_bucket(Bucket=DATA_BUCKET)
    return registry_env.s3()


def capture(s3, model, X, *, version="1", at=END - timedelta(hours=1), name="part-0"):
    write_capture(s3, DATA_BUCKET, model, X, at=at, version=version, part=name)


def check(registry_env):
    return run_drift_check("churn", registry=registry_env.registry, data_bucket=DATA_BUCKET, window=WINDOW,
                           verifier=registry_env.verifier)  # fmt: skip


def test_clean_window_is_no_drift_with_json_and_html_reports(registry_env, published, data_bucket, logistic_model):
    # GIVEN a day of captured predictions drawn like the training data
    X, _ = sample.churn_data(3000, seed=11)
    capture(data_bucket, logistic_model, X)
    # WHEN the drift check runs over that day
    result = check(registry_env)
    # THEN there is no drift, and both reports and the state are in S3
    assert result.report.verdict == "no_drift" and not result.model_drifted
    assert result.report.rows == 3000
    doc = json.loads(data_bucket.get_object(Bucket=DATA_BUCKET, Key=result.report_keys["json"])["Body"].read())
    assert doc["verdict"] == "no_drift" and doc["model"] == {"name": "churn", "version": "1"}
    html = data_bucket.get_object(Bucket=DATA_BUCKET, Key=result.report_keys["html"])["Body"].read().decode()
    assert "monthly_charges" in html and "no_drift" in html
    assert StateStore(data_bucket, DATA_BUCKET).load("churn") == result.state
    # AND the report says the card (whose baseline is the reference) was verified with the trusted key
    verified = {"verified": True, "key_id": registry_env.signing_key_id, "algorithm": "ECDSA_SHA_256"}
    assert doc["card_signature"] == result.to_dict()["card_signature"] == verified


def test_a_card_forged_after_publishing_is_refused_and_nothing_is_written(
    registry_env, published, data_bucket, logistic_model
):
    # GIVEN captures, and the card's baseline rewritten after publishing (its old signature kept)
    capture(data_bucket, logistic_model, sample.churn_data(500, seed=13)[0])
    key = registry_env.registry.card_key("churn", "1")
    card = json.loads(data_bucket.get_object(Bucket=registry_env.bucket, Key=key)["Body"].read())
    card["baseline"]["features"] = {}
    data_bucket.put_object(Bucket=registry_env.bucket, Key=key, Body=json.dumps(card).encode())
    # WHEN the drift check runs
    with pytest.raises(ModelRefused) as refused:
        check(registry_env)
    # THEN it is refused for its signature, and no report or state was written
    assert refused.value.reason == "bad_signature"
    listed = data_bucket.list_objects_v2(Bucket=DATA_BUCKET, Prefix="reports/")
    assert listed.get("KeyCount", 0) == 0


def test_a_check_asked_not_to_verify_says_so_in_its_report(registry_env, published, data_bucket, logistic_model):
    # GIVEN captures of the published model
    capture(data_bucket, logistic_model, sample.churn_data(500, seed=14)[0])
    # WHEN the check is explicitly run without a verifier
    result = run_drift_check("churn", registry=registry_env.registry, data_bucket=DATA_BUCKET, window=WINDOW,
                             verifier=None)  # fmt: skip
    # THEN the report says plainly that the card was not verified
    doc = json.loads(data_bucket.get_object(Bucket=DATA_BUCKET, Key=result.report_keys["json"])["Body"].read())
    assert doc["card_signature"]["verified"] is False and "not checked" in doc["card_signature"]["note"]


def test_a_shift_must_persist_for_consecutive_windows_before_the_model_is_drifted(
    registry_env, published, data_bucket, logistic_model
):
    # GIVEN captured rows whose monthly charges rose by 15 (plans got dearer)
    X, _ = sample.churn_data(3000, seed=12)
    X["monthly_charges"] = X["monthly_charges"] + 15
    capture(data_bucket, logistic_model, X)
    # WHEN two consecutive checks see it
    first, second = check(registry_env), check(registry_env)
    # THEN each window is drifted on that feature, but only the second declares the model drifted
    assert first.report.verdict == "drift" and "monthly_charges" in first.report.drifted_features
    assert (first.model_drifted, second.model_drifted) == (False, True)


def test_records_of_other_versions_or_outside_the_window_are_ignored(
    registry_env, published, data_bucket, logistic_model
):
    X, _ = sample.churn_data(1000, seed=13)
    capture(data_bucket, logistic_model, X, version="2", name="other-version")
    capture(data_bucket, logistic_model, X, at=END + timedelta(minutes=5), name="after-window")
    capture(data_bucket, logistic_model, X.head(200), name="in-window")
    result = check(registry_env)
    # THEN only the 200 in-window rows of version 1 count: too few to judge
    assert result.report.rows == 200
    assert result.report.verdict == "insufficient_data" and not result.model_drifted


def test_no_raw_identifier_is_read_back_from_the_capture(registry_env, published, data_bucket, logistic_model):
    X, _ = sample.churn_data(600, seed=14)
    capture(data_bucket, logistic_model, X)
    result = check(registry_env)
    assert json.dumps(result.report.to_dict()).count("C01") == 0


def test_lines_in_any_layout_are_read_and_torn_or_foreign_lines_are_skipped(
    registry_env, published, data_bucket, logistic_model
):
    import gzip

    from sklambda.monitoring.windows import capture_prefix, read_capture

    # GIVEN 40 captured rows, then an object holding 5 of the same records re-serialized with other key order
    # (decoded the slow way), a blank line, a torn line, another model's line, and no final newline, gzipped
    X, _ = sample.churn_data(40, seed=13)
    capture(data_bucket, logistic_model, X)
    key = capture_prefix("churn", END.date()) + "part-0"
    records = [
        json.loads(line) for line in data_bucket.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read().splitlines()
    ]
    reordered = [json.dumps(dict(reversed(list(r.items())))) for r in records[:5]]
    body = "\n".join(
        [*reordered, "", '{"capture":"sklambda/v1","timestamp":"2026-', json.dumps({**records[0], "model": "x"})]
    )
    data_bucket.put_object(
        Bucket=DATA_BUCKET, Key=capture_prefix("churn", END.date()) + "part-1.gz", Body=gzip.compress(body.encode())
    )
    card = registry_env.registry.get_card("churn", "1")
    # WHEN the window is read in full, and sampled to 20 rows
    full = read_capture(data_bucket, DATA_BUCKET, card, WINDOW)
    sampled = read_capture(data_bucket, DATA_BUCKET, card, WINDOW, max_rows=20)
    # THEN every record of the model is read once, whatever its layout, and nothing else
    assert (full.rows, full.rows_in_window, full.estimated) == (45, 45, False)
    assert full.features["age"].tolist() == [*X["age"], *X["age"][:5]]  # objects in key order, lines in order
    # AND the sample holds 20 of them, with the window's size estimated from the lines it visited
    assert sampled.rows == 20 and sampled.estimated
    assert 20 <= sampled.rows_in_window <= 49
    assert set(sampled.features["customer_id"]) <= set(full.features["customer_id"])


def _line_of(record: dict, **features) -> bytes:
    """A capture line in CaptureRecord's own byte layout (so it takes read_capture's fast path) with some values
    replaced, as an older or broken writer could have left it."""
    from sklambda.monitoring.capture import CAPTURE_MARKER

    changed = {**record, "features": {**record["features"], **features}}
    changed.pop("capture", None)
    return json.dumps({"capture": CAPTURE_MARKER, **changed}, separators=(",", ":")).encode()


def test_records_that_cannot_be_used_are_quarantined_counted_and_the_rest_compared(
    registry_env, published, data_bucket, logistic_model
):
    from sklambda.monitoring.windows import capture_prefix

    # GIVEN 300 good captured rows, and next to them lines no check can use: the lone surrogate in "plan",
    # a truncated line, a line with a byte that is not UTF-8, a 5,000-digit integer, wrong types, a number beyond
    # float64, an Infinity token, features that are not an object, a prediction that is an object
    X, _ = sample.churn_data(300, seed=31)
    capture(data_bucket, logistic_model, X)
    key = capture_prefix("churn", END.date()) + "part-0"
    good = json.loads(data_bucket.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read().splitlines()[0])
    bad = [
        _line_of(good, plan="\ud800"),
        _line_of(good)[:-40],
        _line_of(good, region="north").replace(b"north", b"n\xffrth"),
        _line_of(good, age=0).replace(b'"age":0', b'"age":' + b"9" * 5000),
        _line_of(good, age="forty-two"),
        _line_of(good, plan=7),
        _line_of(good, monthly_income=2 * 10**308),
        _line_of(good, monthly_charges=0.5).replace(b'"monthly_charges":0.5', b'"monthly_charges":Infinity'),
        json.dumps({**good, "features": ["not", "an", "object"]}).encode(),
        json.dumps({**good, "prediction": {"yes": 1}}).encode(),
    ]
    data_bucket.put_object(Bucket=DATA_BUCKET, Key=capture_prefix("churn", END.date()) + "part-1", Body=b"\n".join(bad))
    # WHEN the drift check runs
    result = check(registry_env)
    # THEN it completes: the 300 good rows are compared, the 10 bad lines quarantined and counted by reason
    assert result.report.rows == 300
    assert result.quarantined_records == 10
    reasons = result.quarantine_reasons
    assert reasons["features.plan: not valid Unicode text (a lone surrogate)"] == 1
    assert reasons["line is not a JSON object (torn, truncated or not UTF-8)"] == 3
    assert reasons["features.age: not a number"] == 1
    assert reasons["features.monthly_income: a number beyond the 64-bit float range"] == 1
    assert reasons["features.monthly_charges: not a finite number"] == 1
    # AND both reports are written and say so, without any of the values
    doc = json.loads(data_bucket.get_object(Bucket=DATA_BUCKET, Key=result.report_keys["json"])["Body"].read())
    assert doc["quarantined_records"] == 10 and doc["quarantine_reasons"] == reasons
    assert result.to_dict()["quarantined_records"] == 10
    html = data_bucket.get_object(Bucket=DATA_BUCKET, Key=result.report_keys["html"])["Body"].read().decode()
    assert "10 record(s) quarantined" in html and "forty-two" not in html
