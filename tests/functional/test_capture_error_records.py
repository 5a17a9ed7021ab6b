"""Every reader of capture lines skips error records (sklambda.monitoring.capture.ErrorRecord): the drift check's
window, the quality check's predictions and the right to erasure each read one mixed in with row records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from sklambda.monitoring.capture import ErrorRecord, Pseudonymizer
from sklambda.monitoring.privacy import erase_subject
from sklambda.monitoring.windows import Window, capture_prefix, read_capture, read_predictions
from tests.support import write_capture

DATA_BUCKET = "sklambda-data-test"
AT = datetime(2026, 11, 27, 5, 0, tzinfo=UTC)
WINDOW = Window.ending(AT + timedelta(hours=1), hours=24)


def error_line(version: str = "1", request_id: str = "req-9") -> str:
    stamp = AT.isoformat(timespec="milliseconds")
    return ErrorRecord(stamp, "churn", version, request_id, 503, "model_refused", 7, "production").to_json_line()


@pytest.fixture
def mixed(registry_env, published, logistic_model, churn):
    """5 captured rows of churn 1, then error records of version 1 in two forms (CaptureRecord's own byte layout and
    reordered keys), all in one object."""
    s3 = registry_env.s3()
    s3.create_bucket(Bucket=DATA_BUCKET)
    X = churn.X_holdout.head(5)
    write_capture(s3, DATA_BUCKET, logistic_model, X, at=AT, inference_ids=[f"id-{i}" for i in range(5)])
    key = capture_prefix("churn", AT.date()) + "part-0"
    rows = s3.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read()
    stamp = AT.isoformat(timespec="milliseconds")
    reordered = f'{{"outcome":"error","capture":"sklambda/v1","model":"churn","version":"1","timestamp":"{stamp}"}}\n'
    s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=rows + (error_line() + reordered).encode())
    return s3


def test_the_drift_window_reads_the_rows_and_skips_error_records(registry_env, mixed):
    card = registry_env.registry.get_card("churn", "1")
    for max_rows in (None, 3):
        window = read_capture(mixed, DATA_BUCKET, card, WINDOW, max_rows=max_rows)
        assert window.quarantined == 0
        assert window.rows == (5 if max_rows is None else 3)
    assert read_capture(mixed, DATA_BUCKET, card, WINDOW).rows_in_window == 5


def test_the_quality_check_reads_the_predictions_and_skips_error_records(mixed):
    found = read_predictions(mixed, DATA_BUCKET, "churn", WINDOW, labeled={"id-1"}, served=("1", WINDOW))
    assert sorted(found.frame["inference_id"]) == [f"id-{i}" for i in range(5)]
    assert found.unidentified == 0 and found.quarantined == 0


def test_erasure_leaves_error_records_which_hold_no_values(mixed, churn):
    subject = str(churn.X_holdout["customer_id"].iloc[0])
    report = erase_subject(DATA_BUCKET, "churn", subject, [Pseudonymizer(b"k" * 32)])
    body = mixed.get_object(Bucket=DATA_BUCKET, Key=capture_prefix("churn", AT.date()) + "part-0")["Body"].read()
    assert report.records_removed == 1
    assert body.count(b'"outcome":"error"') == 2 and body.count(b'"features"') == 4
