"""Right to erasure: remove every captured record of one data subject, and the ground-truth labels of those records.

The subject id is pseudonymized with each given key (the same HMAC the function used) and every capture object of
the model is rewritten without the records whose pii features carry one of those pseudonyms. S3 has no in-place
edit: the filtered object is written under the same key (an object left empty is deleted).

Versioning: on a versioned bucket a rewrite only adds a new version; the old bytes would stay readable as a
noncurrent version. So every version (current and noncurrent) that holds a matching record is permanently deleted
by version id, after the filtered copy was written. Noncurrent versions are not rewritten (a current copy exists),
only deleted. Delete markers hold no data and are left alone.

Labels (ground-truth/model=<name>/..., monitoring.ground_truth.store) hold no pii feature: an inference id, a label
and times. But a label joined to its prediction says what happened to that subject (did the customer churn), so
labels are personal data about the subject too (GDPR Art. 4(1): information relating to an identifiable person).
The labels whose `inference_id` is the id of a removed capture record (any version of it) are removed the same way:
label objects rewritten without them, emptied ones deleted, old versions holding them permanently deleted. A label
whose prediction was never captured (sampling) cannot be tied to the subject and stays. Quarantined label rows
(ground-truth/errors/) are not searched: they were not stored as labels.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from sklambda import aws
from sklambda.config import CAPTURE_PREFIX
from sklambda.monitoring.capture import Pseudonymizer, is_error
from sklambda.monitoring.ground_truth.store import model_label_prefix


def model_prefix(model: str) -> str:
    """Where Firehose's dynamic partitioning puts a model's captures (see CaptureStream in template.yaml)."""
    return f"{CAPTURE_PREFIX}model={model}/"


@dataclass
class EraseReport:
    """What one erasure did: counts of objects scanned, records removed, objects rewritten or deleted, object versions
    permanently deleted, and the keys touched. `subject_pseudonyms` is how many keys the subject id was pseudonymized
    with.
    """

    subject_pseudonyms: int
    objects_scanned: int = 0
    records_removed: int = 0  # from current objects
    objects_rewritten: int = 0
    objects_deleted: int = 0  # current objects that held only the subject's records
    versions_deleted: int = 0  # object versions permanently deleted (versioned buckets), captures and labels
    keys: list[str] = field(default_factory=list)
    # ground-truth labels of the removed records' inference ids (current objects), and the label objects touched
    labels_removed: int = 0
    label_objects_rewritten: int = 0
    label_objects_deleted: int = 0
    label_objects_scanned: int = 0

    def to_dict(self) -> dict:
        """The counts as the CLI prints them (no keys, no subject id)."""
        return {
            "records_removed": self.records_removed,
            "objects_rewritten": self.objects_rewritten,
            "objects_deleted": self.objects_deleted,
            "objects_scanned": self.objects_scanned,
            "versions_deleted": self.versions_deleted,
            "keys_tried": self.subject_pseudonyms,
            "labels_removed": self.labels_removed,
            "label_objects_rewritten": self.label_objects_rewritten,
            "label_objects_deleted": self.label_objects_deleted,
            "label_objects_scanned": self.label_objects_scanned,
        }


def _record(line: bytes) -> dict | None:
    if not line.strip():
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None  # not a record: never dropped
    return record if isinstance(record, dict) else None


def _matches(line: bytes, model: str, pseudonyms: set[str], ids: set[str]) -> bool:
    """Whether `line` is a capture record of `model` with one of `pseudonyms` in its features; its inference id (when
    it has one) is added to `ids`. An error record (capture.ErrorRecord) holds no features and is never dropped."""
    record = _record(line)
    if record is None or record.get("model") != model or is_error(record):
        return False
    features = record.get("features") or {}
    if not any(isinstance(v, str) and v in pseudonyms for v in features.values()):
        return False
    if isinstance(record.get("inference_id"), str):
        ids.add(record["inference_id"])
    return True


def _is_label_of(line: bytes, ids: set[str]) -> bool:
    record = _record(line)
    return record is not None and record.get("inference_id") in ids


def _split(body: bytes, key: str) -> tuple[list[bytes], bool]:
    zipped = key.endswith(".gz") or body[:2] == b"\x1f\x8b"
    data = gzip.decompress(body) if zipped else body
    return data.splitlines(keepends=True), zipped


def _versions(s3, bucket: str, prefix: str, versioned: bool) -> Iterator[tuple[str, str | None, bool]]:
    """(key, version id, is latest) of every object under prefix; version id None for an unversioned bucket."""
    if versioned:
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
            for v in page.get("Versions", []):
                yield v["Key"], v["VersionId"], bool(v["IsLatest"])
    else:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for o in page.get("Contents", []):
                yield o["Key"], None, True


def erase_subject(
    bucket: str,
    model: str,
    subject: str,
    pseudonymizers: Sequence[Pseudonymizer],
    *,
    prefix: str | None = None,
) -> EraseReport:
    """Remove every capture record of `model` whose pii features equal `subject` (under any of the keys), and the
    labels of those records.

    bucket: the data bucket. subject: the raw identifier (e.g. a customer id). pseudonymizers: one per pseudonymization
        key the captures may have been written with (after a key rotation, old and new). prefix: where to look (default:
        the model's capture partition).

    Every object under the prefix is read (gzip when its key ends in .gz); see the module docstring for how rewrites and
    versioned buckets are handled (GDPR Art. 17: erasure must reach every copy the controller holds, noncurrent versions
    included). Lines that are not capture records of `model` are never dropped.

    The ground-truth labels of `model` whose inference id is that of a record to remove (of any version) are removed
    the same way, before the records (module docstring); none are searched when no such record has an inference id.
    The captures are read twice (once for the ids, once to rewrite them).

    Returns the EraseReport. Raises ValueError without any pseudonymizer. S3 errors propagate as botocore's ClientError
    (needs s3:ListBucket[Versions], s3:GetObject[Version], s3:PutObject, s3:DeleteObject[Version]); an erasure stopped
    by one can be run again.
    """
    if not pseudonymizers:
        raise ValueError("at least one pseudonymization key is needed")
    s3 = aws.client("s3")
    pseudonyms = {p.pseudonym(subject) for p in pseudonymizers}
    report = EraseReport(subject_pseudonyms=len(pseudonyms))
    status = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    versioned = status in ("Enabled", "Suspended")
    where = prefix or model_prefix(model)
    # Labels first, with the ids a read-only pass over the captures finds: were the captures erased first, an erasure
    # stopped between the two could not find the labels' ids again when run once more.
    ids: set[str] = set()
    _rewrite(s3, bucket, where, versioned, lambda line: _matches(line, model, pseudonyms, ids), write=False)
    if ids:
        labels = _rewrite(s3, bucket, model_label_prefix(model), versioned, lambda line: _is_label_of(line, ids))
        report.label_objects_scanned, report.labels_removed = labels.scanned, labels.removed
        report.label_objects_rewritten, report.label_objects_deleted = labels.rewritten, labels.deleted
        report.versions_deleted += labels.versions_deleted
        report.keys.extend(labels.keys)
    captures = _rewrite(s3, bucket, where, versioned, lambda line: _matches(line, model, pseudonyms, set()))
    report.objects_scanned, report.records_removed = captures.scanned, captures.removed
    report.objects_rewritten, report.objects_deleted = captures.rewritten, captures.deleted
    report.versions_deleted += captures.versions_deleted
    report.keys.extend(captures.keys)
    return report


@dataclass
class _Rewritten:
    scanned: int = 0
    removed: int = 0
    rewritten: int = 0
    deleted: int = 0
    versions_deleted: int = 0
    keys: list[str] = field(default_factory=list)


def _rewrite(
    s3, bucket: str, prefix: str, versioned: bool, drop: Callable[[bytes], bool], *, write: bool = True
) -> _Rewritten:
    """Every object (every version) under `prefix` without the lines `drop` says to remove (module docstring);
    `write=False` only reads (and calls `drop` on every line)."""
    out = _Rewritten()
    for key, version_id, latest in list(_versions(s3, bucket, prefix, versioned)):
        extra = {"VersionId": version_id} if version_id else {}
        body = s3.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
        if latest:
            out.scanned += 1
        lines, zipped = _split(body, key)
        kept = [line for line in lines if not drop(line)]
        removed = len(lines) - len(kept)
        if not removed or not write:
            continue
        if latest:
            out.removed += removed
            if kept:
                data = b"".join(kept)
                s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(data) if zipped else data)
                out.rewritten += 1
            elif not versioned:
                s3.delete_object(Bucket=bucket, Key=key)
                out.deleted += 1
            else:
                out.deleted += 1  # its only version is deleted below; no delete marker is left
        if version_id:
            s3.delete_object(Bucket=bucket, Key=key, VersionId=version_id)
            out.versions_deleted += 1
        if not out.keys or out.keys[-1] != key:  # a key's versions are listed together: count the object once
            out.keys.append(key)
    return out
