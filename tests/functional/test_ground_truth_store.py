"""Ground-truth storage: labels written once per request, read back per window of arrival, newest label per id."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from sklambda.monitoring.ground_truth.store import Label, label_prefix, read_labels, write_labels

BUCKET = "sklambda-data-test"
DAY = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.fixture
def s3(mocked_aws: None):
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def test_the_same_labels_sent_twice_on_one_day_are_stored_once(s3) -> None:
    # GIVEN labels stored once
    labels = [Label("a", "yes"), Label("b", "no", DAY - timedelta(hours=1))]
    first = write_labels(s3, BUCKET, "churn", labels, arrival=DAY)
    # WHEN the same request is retried later that day
    again = write_labels(s3, BUCKET, "churn", labels, arrival=DAY + timedelta(hours=2))
    # THEN one object holds them, in the arrival day's partition
    assert first.created and not again.created and first.key == again.key
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="ground-truth/")["Contents"]]
    assert keys == [first.key] and first.key.startswith(label_prefix("churn", DAY.date()))
    read = read_labels(s3, BUCKET, "churn", DAY, DAY + timedelta(days=1))
    assert sorted(read.frame["inference_id"]) == ["a", "b"] and read.duplicates == 0


def test_a_changed_label_replaces_the_older_one_and_a_repeat_counts_once(s3) -> None:
    # GIVEN id "a" labeled "yes" on one day, then "no" the next, and "b" sent on both days unchanged
    write_labels(s3, BUCKET, "churn", [Label("a", "yes"), Label("b", "no")], arrival=DAY)
    write_labels(s3, BUCKET, "churn", [Label("a", "no"), Label("b", "no")], arrival=DAY + timedelta(days=1))
    # WHEN both days are read
    read = read_labels(s3, BUCKET, "churn", DAY, DAY + timedelta(days=2))
    # THEN each id counts once, and "a" has its newer label
    labels = dict(zip(read.frame["inference_id"], read.frame["label"], strict=True))
    assert labels == {"a": "no", "b": "no"}
    assert read.records == 4 and read.duplicates == 2


def test_only_labels_that_arrived_in_the_window_are_read_and_malformed_lines_are_counted(s3) -> None:
    # GIVEN labels arriving before, inside and after a window, and a torn line in the window's partition
    for hours, ident in ((-2, "before"), (1, "inside"), (30, "after")):
        write_labels(s3, BUCKET, "churn", [Label(ident, 1.5)], arrival=DAY + timedelta(hours=hours))
    s3.put_object(Bucket=BUCKET, Key=label_prefix("churn", DAY.date()) + "torn.jsonl", Body=b'{"inference_id": "x"\n')
    # WHEN the window [DAY, DAY + 1 day) is read
    read = read_labels(s3, BUCKET, "churn", DAY, DAY + timedelta(days=1))
    # THEN only the label inside it is returned, and the torn line is counted, not raised
    assert list(read.frame["inference_id"]) == ["inside"] and read.malformed == 1


def test_a_naive_arrival_time_is_refused(s3) -> None:
    with pytest.raises(ValueError, match="timezone"):
        write_labels(s3, BUCKET, "churn", [Label("a", 1)], arrival=datetime(2026, 11, 30))


def test_labels_sent_again_after_a_correction_on_the_same_day_are_the_newest_again(s3) -> None:
    # GIVEN id "a" labeled "yes", corrected to "no", then sent as "yes" again, all on one day
    write_labels(s3, BUCKET, "churn", [Label("a", "yes")], arrival=DAY)
    write_labels(s3, BUCKET, "churn", [Label("a", "no")], arrival=DAY + timedelta(minutes=1))
    again = write_labels(s3, BUCKET, "churn", [Label("a", "yes")], arrival=DAY + timedelta(minutes=2))
    # WHEN the day is read
    read = read_labels(s3, BUCKET, "churn", DAY, DAY + timedelta(days=1))
    # THEN the repeat was not a new object, but "yes" is the label again
    assert not again.created
    assert dict(zip(read.frame["inference_id"], read.frame["label"], strict=True)) == {"a": "yes"}
