"""Errors of the batch engine, and which of them a retry can fix.

- BatchInputError: the S3 key itself cannot be a batch job (outside incoming/, no file, unknown suffix).
  Raised before anything is read or written. Not retryable.
- BatchJobFailed: the job ran and failed for a reason in the input or the registry (header mismatch,
  reject rate over the threshold, unreadable or deleted object, unknown model). The failed summary and the
  errors file are already written when it is raised. Not retryable: the same input gives the same result.
- ChunkingUnsafe: a byte range given to score_chunk holds a quoted newline, so ranges cut on newlines may
  split a row; the caller scores the whole object with score_object instead.
- BatchJobCrashed: anything else stopped the job (botocore ClientError for throttling, network errors, a bug);
  a failed summary with the counts so far was written (when S3 allowed it) and the original exception is its
  __cause__. Retryable: a retry is safe (deterministic keys, multipart uploads aborted).
- JobFailure: internal to the engine, never raised to a caller: the reason code and report of a failure of the
  input or the registry, turned into BatchJobFailed once the failed summary is written (into InvalidInput by
  engine.score_file, into a failed ChunkResult by engine.score_chunk).
"""

from __future__ import annotations

from sklambda.batch.summary import JobSummary
from sklambda.errors import SklambdaError


class BatchInputError(SklambdaError):
    """The object key cannot be scored as a batch job."""

    code = "batch_input"


class ChunkingUnsafe(BatchInputError):
    """A byte range cannot be scored on its own (quoted newlines); score the whole object instead."""

    code = "batch_chunking_unsafe"


class BatchJobFailed(SklambdaError):
    """The job failed for a reason a retry cannot fix; `summary` is the failed job summary (already written)."""

    code = "batch_job_failed"
    retryable = False

    def __init__(self, summary: JobSummary) -> None:
        """The message names the input object and the summary's failure reason and report."""
        super().__init__(f"batch job for s3://{summary.input_bucket}/{summary.input_key} failed: {summary.failure}")
        self.summary = summary


class BatchJobCrashed(SklambdaError):
    """An unexpected exception stopped the job; `summary` is the failed summary written for it (reason
    unexpected_error), the exception is __cause__. Retryable."""

    code = "batch_job_crashed"
    retryable = True

    def __init__(self, summary: JobSummary) -> None:
        """The message names the input object and the failed summary's report (the exception's type and text)."""
        super().__init__(f"batch job for s3://{summary.input_bucket}/{summary.input_key} crashed: {summary.failure}")
        self.summary = summary


class JobFailure(Exception):
    """The input or the registry makes the job fail: `reason` is a stable code (bad_header, no_rows, unreadable,
    reject_threshold, model_not_found...), `report` a sentence for people. Internal to the engine (see above)."""

    def __init__(self, reason: str, report: str) -> None:
        """`str(self)` is the report."""
        super().__init__(report)
        self.reason, self.report = reason, report
