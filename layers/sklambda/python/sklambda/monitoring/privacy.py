"""Right to erasure: remove every captured record of one data subject.

The subject id is pseudonymized with each given key (the same HMAC the function used) and every capture object of
the model is rewritten without the records whose pii features carry one of those pseudonyms. S3 has no in-place
edit: the filtered object is written under the same key (an object left empty is deleted).

Versioning: on a versioned bucket a rewrite only adds a new version; the old bytes would stay readable as a
noncurrent version. So every version (current and noncurrent) that holds a matching record is permanently deleted
by version id, after the filtered copy was written. Noncurrent versions are not rewritten (a current copy exists),
only deleted. Delete markers hold no data and are left alone.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from sklambda import aws
from sklambda.config import CAPTURE_PREFIX
from sklambda.monitoring.capture import Pseudonymizer


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
    versions_deleted: int = 0  # object versions permanently deleted (versioned buckets)
    keys: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The counts as the CLI prints them (no keys, no subject id)."""
        return {
            "records_removed": self.records_removed,
            "objects_rewritten": self.objects_rewritten,
            "objects_deleted": self.objects_deleted,
            "objects_scanned": self.objects_scanned,
            "versions_deleted": self.versions_deleted,
            "keys_tried": self.subject_pseudonyms,
        }


def _matches(line: bytes, model: str, pseudonyms: set[str]) -> bool:
    if not line.strip():
        return False
    try:
        record = json.loads(line)
    except ValueError:
        return False  # not a capture record: never dropped
    if not isinstance(record, dict) or record.get("model") != model:
        return False
    features = record.get("features") or {}
    return any(isinstance(v, str) and v in pseudonyms for v in features.values())


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
    """Remove every capture record of `model` whose pii features equal `subject` (under any of the keys).

    bucket: the data bucket. subject: the raw identifier (e.g. a customer id). pseudonymizers: one per pseudonymization
        key the captures may have been written with (after a key rotation, old and new). prefix: where to look (default:
        the model's capture partition).

    Every object under the prefix is read (gzip when its key ends in .gz); see the module docstring for how rewrites and
    versioned buckets are handled (GDPR Art. 17: erasure must reach every copy the controller holds, noncurrent versions
    included). Lines that are not capture records of `model` are never dropped.

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
    for key, version_id, latest in list(_versions(s3, bucket, prefix or model_prefix(model), versioned)):
        extra = {"VersionId": version_id} if version_id else {}
        body = s3.get_object(Bucket=bucket, Key=key, **extra)["Body"].read()
        if latest:
            report.objects_scanned += 1
        lines, zipped = _split(body, key)
        kept = [line for line in lines if not _matches(line, model, pseudonyms)]
        removed = len(lines) - len(kept)
        if not removed:
            continue
        if latest:
            report.records_removed += removed
            if kept:
                data = b"".join(kept)
                s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(data) if zipped else data)
                report.objects_rewritten += 1
            elif not versioned:
                s3.delete_object(Bucket=bucket, Key=key)
                report.objects_deleted += 1
            else:
                report.objects_deleted += 1  # its only version is deleted below; no delete marker is left
        if version_id:
            s3.delete_object(Bucket=bucket, Key=key, VersionId=version_id)
            report.versions_deleted += 1
        report.keys.append(key)
    return report
