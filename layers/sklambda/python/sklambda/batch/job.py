"""What a batch job is: the object it scores (ObjectRef), the byte ranges of a fan-out (ByteRange), what one chunk
returns (ChunkResult), and the job's context (Job), which builds every summary of the job (`Job.summary`).

No I/O here beyond creating the S3 client: the engine (engine.py) runs jobs with a Job in hand.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from sklambda import aws
from sklambda.batch.errors import JobFailure
from sklambda.batch.keys import Target, parse_incoming_key
from sklambda.batch.ordering import Guard
from sklambda.batch.summary import SUCCEEDED, SUPERSEDED, JobSummary, Tally
from sklambda.config import BatchSettings


@dataclass(frozen=True)
class ObjectRef:
    """One uploaded object version, as the S3 event names it. `size` in bytes (None: ask S3 when needed)."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    # The S3 event's sequencer (s3.object.sequencer): orders the uploads of one key. None: the job is unordered.
    sequencer: str | None = None


@dataclass(frozen=True)
class ByteRange:
    """Bytes [start, end) of the object; every range but the last ends just after a newline."""

    start: int
    end: int


@dataclass(frozen=True)
class ChunkResult:
    """What score_chunk returns for one byte range, and the merge task reads back (as a dict, via Step Functions).

    `scored_key` / `errors_key` are its parts under tmp/<job id>/ (None when the chunk failed: `failure_reason`
    and `report` say why). Counts as in Tally; `duration_seconds` on the monotonic clock.
    """

    index: int
    byte_range: ByteRange
    status: str
    rows_read: int
    rows_scored: int
    rows_rejected: int
    physical_lines: int
    scored_key: str | None
    errors_key: str | None
    model_version: str | None
    reject_threshold: float
    failure_reason: str | None = None
    report: str | None = None
    duration_seconds: float = 0.0
    data_quality_warnings: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChunkResult:
        """The result from its `dataclasses.asdict` form (the fan-out state machine's JSON).

        Also reads results written before the rename of `data_quality` to `data_quality_warnings`, so that a map
        started before a deploy merges after it. Raises TypeError on an unknown or missing field.
        """
        data = dict(data)
        if "data_quality" in data:
            data["data_quality_warnings"] = data.pop("data_quality")
        return cls(**{**data, "byte_range": ByteRange(**data["byte_range"])})


def job_id_for(ref: ObjectRef) -> str:
    """24 hex characters of sha256(bucket, key, version id, ETag): a retry of the same object version uses the
    same id, hence the same tmp/ prefix and Step Functions execution name."""
    ident = f"{ref.bucket}\n{ref.key}\n{ref.version_id or ''}\n{ref.etag or ''}"
    return hashlib.sha256(ident.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Job:
    """Everything a job's steps share: its input, where its outputs go, its settings, S3 client and ordering guard.

    `bucket` is the output (data) bucket: settings.data_bucket, else the input's bucket. `started_at` is the
    monotonic time the job started (None for a merge given no start: its duration is then its chunks' sum).
    """

    ref: ObjectRef
    target: Target
    job_id: str
    bucket: str
    settings: BatchSettings
    s3: Any
    guard: Guard
    started_at: float | None = None

    @classmethod
    def of(
        cls,
        ref: ObjectRef,
        settings: BatchSettings,
        *,
        s3: Any = None,
        job_id: str | None = None,
        started_at: float | None = None,
    ) -> Job:
        """The job of `ref`. Raises BatchInputError when its key cannot be a batch input (keys.parse_incoming_key)."""
        s3 = s3 or aws.client("s3")
        target = parse_incoming_key(ref.key)
        bucket = settings.data_bucket or ref.bucket
        guard = Guard(s3, bucket, target.summary_key, ref.sequencer)
        return cls(ref, target, job_id or job_id_for(ref), bucket, settings, s3, guard, started_at)

    @property
    def gzip(self) -> bool:
        """The input is gzipped, so its scored output is too."""
        return self.target.format.endswith(".gz")

    def threshold(self, tally: Tally) -> float:
        """The reject threshold the job is held to: the loaded model's (engine.reject_threshold, in the tally), else
        settings.reject_threshold (before a model is loaded, or when none could be)."""
        return self.settings.reject_threshold if tally.reject_threshold is None else tally.reject_threshold

    def summary(
        self,
        status: str,
        tally: Tally,
        *,
        failure: JobFailure | None = None,
        errors_published: bool = True,
        superseded_by: str | None = None,
    ) -> JobSummary:
        """The job's summary from what it counted: the one place a JobSummary is built.

        The scored key is named only when the job succeeded; the errors key when rows were rejected and their file
        was published (`errors_published=False` after a crash deleted it). A superseded summary names the
        superseded record as its key, no outputs and no failure, and `superseded_by` (the newer sequencer).
        """
        superseded = status == SUPERSEDED
        target = self.target
        duration = tally.chunk_seconds if self.started_at is None else time.monotonic() - self.started_at
        return JobSummary(
            job_id=self.job_id,
            status=status,
            input_bucket=self.ref.bucket,
            input_key=self.ref.key,
            input_version_id=self.ref.version_id,
            input_etag=self.ref.etag,
            input_sequencer=self.ref.sequencer,
            model_name=target.model,
            model_alias=None if target.version else (target.alias or self.settings.default_alias),
            model_version=tally.model_version,
            format=target.format,
            rows_read=tally.rows_read,
            rows_scored=tally.rows_scored,
            rows_rejected=tally.rows_rejected,
            reject_threshold=self.threshold(tally),
            duration_seconds=duration,
            output_bucket=self.bucket,
            scored_key=target.scored_key if status == SUCCEEDED else None,
            errors_key=target.errors_key if tally.rows_rejected and errors_published and not superseded else None,
            summary_key=target.superseded_key if superseded else target.summary_key,
            chunks=tally.chunks,
            failure_reason=failure.reason if failure and not superseded else None,
            report=failure.report if failure and not superseded else None,
            data_quality_warnings=dict(tally.data_quality_warnings),
            superseded_by=superseded_by if superseded else None,
        )
