"""Ground-truth labels in the data bucket: written once per request or file, read back per window of arrival.

Layout (the data bucket's default encryption is SSE-KMS with the stack's DataKey, template.yaml `DataBucket`):
    ground-truth/model=<name>/dt=<arrival yyyy-mm-dd>/<digest>.jsonl
One object holds the labels of one accepted request or file, one JSON object per line:
    {"inference_id": "...", "label": <class or number>, "time": "<ISO 8601 UTC>" | null, "arrival": "<ISO 8601 UTC>"}
`time` is when the outcome was observed, as the sender gave it (null when not given); `arrival` is when sklambda
stored it, and names the partition.

Idempotency. The object's name is the SHA-256 of its labels (ids, labels, times: not the arrival), so the same
request retried on the same day is stored once (`created=False`); it is rewritten with the later arrival, so labels
sent again after a correction (A, then B, then A) are the newest again. Across days, or when a label is corrected,
several records of one id exist; `read_labels` keeps one per id: the newest by (time or arrival, arrival). So the
same id and label sent twice counts once, and a changed label is the newer one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError

from sklambda.config import GROUND_TRUTH_PREFIX

ID, LABEL, TIME, ARRIVAL = "inference_id", "label", "time", "arrival"
# json.dumps(..., sort_keys=True, separators=(",", ":"), ensure_ascii=False) of one row, written out: the keys are
# already in sorted order, and a string is escaped by the json module's own C encoder (a third of dumps' time).
_text = json.encoder.encode_basestring  # type: ignore[attr-defined]


def _value(value: Any) -> str:
    value = _plain(value)
    return _text(value) if isinstance(value, str) else json.dumps(value, allow_nan=False)


_EXISTS = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


@dataclass(frozen=True)
class Label:
    """One ground-truth label: the served prediction's `inference_id`, the true `label` (a class of the card's
    `classes` for classifiers, a finite number for regressors) and `time`, when it was observed (timezone-aware, or
    None). Validation against the card is the caller's (ground_truth.labels); this type only stores.
    """

    inference_id: str
    label: Any
    time: datetime | None = None


@dataclass(frozen=True)
class StoredLabels:
    """What `write_labels` did. key: the S3 key of the object; labels: how many it holds; created: False when an
    identical object was already stored that day (a retried request or file, or labels sent again after a
    correction), which is not an error: it was rewritten with the new arrival.
    """

    key: str
    labels: int
    created: bool


@dataclass(frozen=True)
class LabelsRead:
    """The labels that arrived in a window. frame: one row per labeled id (the newest record of each), columns
    `inference_id`, `label`, `time` (pandas UTC timestamps: observed time, or arrival when none was given) and
    `arrival`; records: lines read; duplicates: records dropped as older records of an id; objects: objects read;
    malformed: lines that were not label records (counted, never raised).
    """

    frame: pd.DataFrame
    records: int
    duplicates: int
    objects: int
    malformed: int

    def summary(self) -> dict[str, int]:
        """Counts, JSON-ready."""
        return {
            "labels": len(self.frame),
            "records": self.records,
            "duplicates": self.duplicates,
            "objects": self.objects,
            "malformed": self.malformed,
        }


def label_prefix(model: str, day: date) -> str:
    """The S3 prefix of one model's labels that arrived on one UTC day:
    `ground-truth/model=<model>/dt=<yyyy-mm-dd>/`.
    """
    return f"{GROUND_TRUTH_PREFIX}model={model}/dt={day.isoformat()}/"


def model_label_prefix(model: str) -> str:
    """The S3 prefix of all of one model's labels (erasure and listing)."""
    return f"{GROUND_TRUTH_PREFIX}model={model}/"


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        raise ValueError(f"label time {moment!r} has no timezone")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain(value: Any) -> Any:
    """numpy scalars as Python values, so the digest and the JSON agree for 1, np.int64(1) and True."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


def write_labels(s3: Any, bucket: str, model: str, labels: Sequence[Label], *, arrival: datetime) -> StoredLabels:
    """Store `labels` (validated, at least one) as one object of `model` in the partition of `arrival`'s UTC day.

    Raises ValueError for no labels or a naive datetime; S3 errors other than "already exists" propagate as
    botocore's ClientError.
    """
    if not labels:
        raise ValueError("no labels to store")
    stamp = _iso(arrival)
    # One encoding per row serves both the digest (the compact, key-sorted JSON list of the rows) and the body (the
    # same text with the arrival appended): a million-row label file spent ~40 % of its time encoding twice.
    rows = [
        f'{{"{ID}":{_text(lab.inference_id)},"{LABEL}":{_value(lab.label)},"{TIME}":{_value(_iso(lab.time))}}}'
        for lab in labels
    ]
    digest = hashlib.sha256(("[" + ",".join(rows) + "]").encode()).hexdigest()[:40]
    key = f"{label_prefix(model, arrival.astimezone(UTC).date())}{digest}.jsonl"
    tail = ',"' + ARRIVAL + '":' + json.dumps(stamp) + "}\n"
    body = "".join(row[:-1] + tail for row in rows).encode()
    put = {"Bucket": bucket, "Key": key, "Body": body, "ContentType": "application/x-ndjson"}
    try:
        s3.put_object(**put, IfNoneMatch="*")
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") not in _EXISTS:
            raise
        # The same labels again on the same day: a retry, or a correction undone (A, then B, then A again). Written
        # again with this arrival, so that they are the newest again, as their sender means; for a retry (or an SQS
        # redelivery of a file, whose arrival is the upload's) nothing else changes.
        s3.put_object(**put)
        return StoredLabels(key, len(rows), created=False)
    return StoredLabels(key, len(rows), created=True)


def _objects(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield obj["Key"]


def _days(start: datetime, end: datetime) -> Iterator[date]:
    day, last = start.astimezone(UTC).date(), end.astimezone(UTC).date()
    while day <= last:
        yield day
        day += timedelta(days=1)


def _record(line: bytes) -> dict | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get(ID), str) or LABEL not in record:
        return None
    if not isinstance(record.get(ARRIVAL), str):
        return None
    return record


def read_labels(s3: Any, bucket: str, model: str, start: datetime, end: datetime) -> LabelsRead:
    """The labels of `model` that arrived in [start, end) (timezone-aware), one per id: the newest (module docstring).

    Reads every object of the UTC days the window touches. Lines that are not label records are counted as
    malformed. S3 errors propagate as botocore's ClientError.
    """
    lo, hi = pd.Timestamp(start).tz_convert(UTC), pd.Timestamp(end).tz_convert(UTC)
    records: list[dict] = []
    malformed = objects = 0
    for day in _days(start, end):
        for key in _objects(s3, bucket, label_prefix(model, day)):
            objects += 1
            for line in s3.get_object(Bucket=bucket, Key=key)["Body"].read().splitlines():
                if not line.strip():
                    continue
                record = _record(line)
                if record is None:
                    malformed += 1
                else:
                    records.append(record)
    frame = pd.DataFrame.from_records(records, columns=[ID, LABEL, TIME, ARRIVAL])
    # One unit for both columns (the parsed units follow the texts' precision), so one can fill the other.
    frame[ARRIVAL] = pd.to_datetime(frame[ARRIVAL], utc=True, errors="coerce", format="ISO8601").dt.as_unit("ns")
    bad = frame[ARRIVAL].isna()
    malformed += int(bad.sum())
    frame = frame[~bad & (frame[ARRIVAL] >= lo) & (frame[ARRIVAL] < hi)]
    observed = pd.to_datetime(frame[TIME], utc=True, errors="coerce", format="ISO8601").dt.as_unit("ns")
    frame = frame.assign(**{TIME: observed.fillna(frame[ARRIVAL])})
    read = len(frame)
    frame = frame.sort_values([TIME, ARRIVAL], kind="stable").drop_duplicates(ID, keep="last").reset_index(drop=True)
    return LabelsRead(frame, records=read, duplicates=read - len(frame), objects=objects, malformed=malformed)
