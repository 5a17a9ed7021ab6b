"""Label files uploaded under feedback/<model>/: read in bounded memory, checked row by row, stored in chunks.

Input keys (URL-decoded by the caller, sklambda.batch.decode_s3_key): `feedback/<model>/<relative path>` ending in
.csv, .jsonl, .csv.gz or .jsonl.gz. Labels are checked against the card of the model's default alias (the alias the
predict route serves). A CSV file has a header with `inference_id` (or `id`), `label` and optionally `time`; a JSON
Lines file has one label object per line (rules: labels.py).

Outputs, in the data bucket, all under ground-truth/ (the feedback function writes nowhere else):
    ground-truth/model=<model>/dt=<arrival day>/<digest>.jsonl   the accepted labels, one object per chunk of
                                                                  `chunk_labels` rows read (store.write_labels)
    ground-truth/errors/<model>/<relative path>.jsonl            the rejected rows, one line each (batch's format:
                                                                  {"line", "raw", "raw_truncated", "reasons"})
    ground-truth/summaries/<model>/<relative path>.summary.json  the summary (every file ends with one)
`read_labels` reads only the model= partitions, so the errors and summaries are never read as labels.

Idempotency: the chunks are cut from the file's rows the same way on every run and stored by the digest of their
labels, under the day of the upload's event time (not of the run): the same file processed again (an SQS redelivery)
stores nothing new (`created` False for every chunk) and rewrites the same errors file and summary.

Rows are independent: bad rows are quarantined, good ones stored (there is no reject threshold: a label is good or
not by itself). A file fails as a whole when it cannot be read as labels (unknown model, refused card, bad CSV
header: nothing is stored) or breaks off (corrupt gzip: the chunks before the break stay stored, and the failed
summary lists them). A failed file's errors file is not written.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sklambda.batch.format import error_line
from sklambda.batch.keys import CSV, CSV_GZ, detect_format
from sklambda.batch.reader import CorruptInput, RecordReader, raw_blocks
from sklambda.batch.writer import MultipartWriter
from sklambda.config import FEEDBACK_PREFIX, GROUND_TRUTH_PREFIX, MIN_PART_BYTES
from sklambda.errors import ModelNotFound, ModelRefused, SklambdaError
from sklambda.monitoring.ground_truth.labels import (
    ROW_FIELDS,
    Duplicates,
    LabelRules,
    LabelRulesSource,
    check_file_rows,
    csv_header,
)
from sklambda.monitoring.ground_truth.store import write_labels

SUCCEEDED, FAILED = "succeeded", "failed"
MAX_RAW_BYTES = 10 * 1024  # of a rejected row, kept in the errors file (as batch keeps)


class FeedbackInputError(SklambdaError):
    """An object under feedback/ that cannot be a label file (no model folder, unknown suffix): nothing to report."""

    code = "invalid_feedback_file"


class FeedbackFileFailed(SklambdaError):
    """A label file that could not be read as labels; its failed summary is written and carried here."""

    code = "feedback_file_failed"

    def __init__(self, summary: FeedbackSummary) -> None:
        super().__init__(f"{summary.input_key}: {summary.failure_reason}: {summary.report}")
        self.summary = summary


@dataclass(frozen=True)
class FeedbackKey:
    """What a feedback/ key names: the model, the path below its folder and the format (csv, jsonl, *.gz)."""

    model: str
    relative_path: str
    format: str

    @property
    def errors_key(self) -> str:
        """ground-truth/errors/<model>/<relative path>.jsonl: one line per rejected row."""
        return f"{GROUND_TRUTH_PREFIX}errors/{self.model}/{self.relative_path}.jsonl"

    @property
    def summary_key(self) -> str:
        """ground-truth/summaries/<model>/<relative path>.summary.json: the file's summary."""
        return f"{GROUND_TRUTH_PREFIX}summaries/{self.model}/{self.relative_path}.summary.json"


def parse_feedback_key(key: str) -> FeedbackKey:
    """Model and relative path from a feedback/ key (URL-decoded). Raises FeedbackInputError naming the key when it is
    not feedback/<model>/<file> with a known suffix."""
    if not key.startswith(FEEDBACK_PREFIX):
        raise FeedbackInputError(f"{key!r} is not a label file: label files go under {FEEDBACK_PREFIX}<model>/")
    model, sep, relative = key[len(FEEDBACK_PREFIX) :].partition("/")
    if not model or not sep or not relative or relative.endswith("/"):
        raise FeedbackInputError(f"{key!r} is not a label file: expected feedback/<model>/<file>.csv or .jsonl")
    try:
        fmt = detect_format(relative)
    except SklambdaError as e:
        raise FeedbackInputError(e.message.replace("cannot score", "cannot read labels of")) from None
    return FeedbackKey(model, relative, fmt)


@dataclass(frozen=True)
class FeedbackSummary:
    """The outcome of one label file, as written to its summary key (`to_dict`) and returned to the handler.

    rows_read == rows_accepted + rows_rejected; `rejected_by_reason` counts each rejected row once, under its first
    problem's reason (labels.REASONS); `objects_created` of `label_keys` were new (the others were already stored:
    a file processed again creates none).
    """

    status: str
    input_bucket: str
    input_key: str
    input_version_id: str | None
    model_name: str
    model_version: str | None
    format: str
    arrival: datetime
    rows_read: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    label_keys: list[str] = field(default_factory=list)
    objects_created: int = 0
    output_bucket: str = ""
    errors_key: str | None = None
    summary_key: str = ""
    duration_seconds: float = 0.0
    failure_reason: str | None = None
    report: str | None = None
    # A CSV header's columns other than the label row's fields: not read (a misspelt `time` would leave its labels
    # undated, so the summary names them).
    ignored_columns: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The summary's JSON document."""
        return {
            "status": self.status,
            "input": {"bucket": self.input_bucket, "key": self.input_key, "version_id": self.input_version_id},
            "model": {"name": self.model_name, "version": self.model_version},
            "format": self.format,
            "arrival": self.arrival.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "rows_read": self.rows_read,
            "rows_accepted": self.rows_accepted,
            "rows_rejected": self.rows_rejected,
            "rejected_by_reason": dict(self.rejected_by_reason),
            "ignored_columns": list(self.ignored_columns),
            "objects_created": self.objects_created,
            "duration_seconds": round(self.duration_seconds, 3),
            "outputs": {
                "bucket": self.output_bucket,
                "labels": list(self.label_keys),
                "errors": self.errors_key,
                "summary": self.summary_key,
            },
            "failure": {"reason": self.failure_reason, "report": self.report} if self.failure_reason else None,
        }


class _Failure(Exception):
    def __init__(self, reason: str, report: str) -> None:
        super().__init__(report)
        self.reason, self.report = reason, report


@dataclass
class _Progress:
    """What one file has done so far: counts, label objects written, rejected rows per reason."""

    model_version: str | None = None
    rows_read: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    label_keys: list[str] = field(default_factory=list)
    objects_created: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    ignored_columns: list[str] = field(default_factory=list)


def store_label_file(
    s3: Any,
    bucket: str,
    key: str,
    *,
    version_id: str | None,
    data_bucket: str,
    rules: LabelRulesSource,
    alias: str,
    arrival: datetime,
    chunk_labels: int,
    max_line_bytes: int,
    now: datetime | None = None,
) -> FeedbackSummary:
    """Read the label file `bucket`/`key` (at `version_id`), store its good rows as labels of its model in
    `data_bucket`, quarantine the bad ones, write the summary (module docstring for the keys).

    arrival: the upload's time (the S3 event's eventTime), naming the partition. alias: the alias whose card the
    labels are checked against. chunk_labels: rows read per stored object (and per batch held in memory).
    max_line_bytes: a longer row is rejected without being read whole. now: the clock `time` is checked against
    (default: the current time).

    Returns the summary (status succeeded, also with rejected rows). Raises FeedbackInputError for a key that is not
    a label file (nothing written), FeedbackFileFailed (its failed summary written) for an unknown model, a refused
    card, a bad CSV header or a corrupt file; S3 errors propagate as botocore's ClientError (nothing half-visible:
    the errors file is a multipart upload aborted on failure).
    """
    started = time.monotonic()
    target = parse_feedback_key(key)
    errors = MultipartWriter(s3, data_bucket, target.errors_key, part_bytes=MIN_PART_BYTES)
    progress = _Progress()
    failure: _Failure | None = None
    try:
        try:
            label_rules = rules.get(target.model, alias=alias)
        except (ModelNotFound, ModelRefused) as e:
            raise _Failure(e.code, e.message) from None
        progress.model_version = label_rules.version
        extra = {"VersionId": version_id} if version_id else {}
        body = s3.get_object(Bucket=bucket, Key=key, **extra)["Body"]
        _store_rows(
            s3,
            body,
            target,
            label_rules,
            progress,
            errors,
            data_bucket=data_bucket,
            arrival=arrival,
            now=now or datetime.now(UTC),
            chunk_labels=chunk_labels,
            max_line_bytes=max_line_bytes,
        )
        if progress.rows_rejected:
            errors.complete()
        else:
            errors.abort()
    except _Failure as e:
        errors.abort()
        failure = e
    except BaseException:
        errors.abort()
        raise
    result = FeedbackSummary(
        FAILED if failure else SUCCEEDED,
        input_bucket=bucket,
        input_key=key,
        input_version_id=version_id,
        model_name=target.model,
        model_version=progress.model_version,
        format=target.format,
        arrival=arrival,
        rows_read=progress.rows_read,
        rows_accepted=progress.rows_accepted,
        rows_rejected=progress.rows_rejected,
        rejected_by_reason=dict(progress.by_reason),
        label_keys=progress.label_keys,
        objects_created=progress.objects_created,
        output_bucket=data_bucket,
        errors_key=target.errors_key if progress.rows_rejected and not failure else None,
        summary_key=target.summary_key,
        duration_seconds=time.monotonic() - started,
        failure_reason=failure.reason if failure else None,
        report=failure.report if failure else None,
        ignored_columns=progress.ignored_columns,
    )
    s3.put_object(
        Bucket=data_bucket,
        Key=target.summary_key,
        Body=json.dumps(result.to_dict(), indent=2).encode(),
        ContentType="application/json",
    )
    if failure:
        raise FeedbackFileFailed(result)
    return result


def _store_rows(
    s3: Any,
    body: Any,
    target: FeedbackKey,
    rules: LabelRules,
    progress: _Progress,
    errors: MultipartWriter,
    *,
    data_bucket: str,
    arrival: datetime,
    now: datetime,
    chunk_labels: int,
    max_line_bytes: int,
) -> None:
    """Read `body` (a StreamingBody) batch by batch with batch's reader, store each batch's good rows as one label
    object, write its bad rows to `errors`, and count in `progress` (after every batch, so that a failure later in
    the file reports what was already stored). Raises _Failure for a bad header or a corrupt file."""
    csv = target.format in (CSV, CSV_GZ)
    reader = RecordReader(
        raw_blocks(body, gzip=target.format.endswith(".gz")),
        batch_rows=chunk_labels,
        max_line_bytes=max_line_bytes,
        quoted=csv,
    )
    header: list[str] | None = None
    seen = Duplicates()
    try:
        for batch in reader:
            records, lines, reader_rejected = batch.records, batch.lines, batch.rejected
            if csv and header is None:
                header = _header(records[0], lines[0], reader_rejected.get(0))
                progress.ignored_columns = [name for name in header if name not in ROW_FIELDS]
                records, lines = records[1:], lines[1:]
                reader_rejected = {i - 1: r for i, r in reader_rejected.items() if i > 0}
            rows = check_file_rows(records, lines, reader_rejected, header=header, rules=rules, now=now, seen=seen)
            for line, raw, problems in rows.rejected:
                progress.by_reason[problems[0].reason] += 1
                reasons = [(p.field, p.message) for p in problems]
                errors.write(error_line(line, raw, reasons, MAX_RAW_BYTES, len(raw) >= max_line_bytes))
            if rows.labels:
                stored = write_labels(s3, data_bucket, target.model, rows.labels, arrival=arrival)
                progress.label_keys.append(stored.key)
                progress.objects_created += stored.created
            progress.rows_read += len(records)
            progress.rows_accepted += len(rows.labels)
            progress.rows_rejected += len(rows.rejected)
    except CorruptInput as e:
        raise _Failure("corrupt_input", str(e)) from None
    if csv and header is None:
        raise _Failure("bad_header", "the file is empty: a CSV label file starts with a header row")


def _header(record: bytes, line: int, reader_rejected: str | None) -> list[str]:
    if reader_rejected is not None:
        raise _Failure("bad_header", f"line {line}: {reader_rejected}")
    try:
        return csv_header(record)
    except ValueError as e:
        raise _Failure("bad_header", f"line {line}: {e}") from None
