"""Scoring a file uploaded to S3: stream, validate, score in chunks, write outputs atomically.

One pass (score_object) or fan-out over byte ranges (plan_chunks -> score_chunk x N -> merge_chunks), with the
same outputs byte for byte: both score through `_score_part` and the one scoring loop (stream.py), and both end
through `_conclude`, which publishes the outputs and the summary (built by job.Job.summary). score_file runs the
same loop in memory for the publish-time parity gate. No Lambda event shapes here: the handler builds an ObjectRef
and calls in.

Retries: output keys depend only on the input key, and every output is a multipart upload completed at the
end (aborted on any error), so a retry after a crash overwrites complete objects or nothing. A job that failed
because of its input raises BatchJobFailed (not retryable); any other exception (S3, network, a bug) writes a failed
summary with the counts so far and raises BatchJobCrashed (retryable) from it.

Ordering (ordering.py): a job for an object version older than the one whose outputs are published (by the S3
event sequencer in ObjectRef.sequencer) publishes nothing; it returns a summary with status "superseded", written to
the superseded record beside the summary (keys.Target.superseded_key), never over the newer summary.

Counts: every summary has rows_read == rows_scored + rows_rejected (summary.py).
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from sklambda import aws
from sklambda.batch.errors import BatchJobCrashed, BatchJobFailed, JobFailure
from sklambda.batch.format import output_columns
from sklambda.batch.job import ByteRange, ChunkResult, Job, ObjectRef
from sklambda.batch.keys import CSV, CSV_GZ, detect_format
from sklambda.batch.ordering import Superseded
from sklambda.batch.s3io import concat, copy_errors, get_object, next_line_start, read_header, wants_explanations
from sklambda.batch.stream import Part, ScoredObserver, Scoring, stream
from sklambda.batch.summary import FAILED, SUCCEEDED, SUPERSEDED, JobSummary, Tally
from sklambda.batch.writer import MultipartWriter
from sklambda.config import BatchSettings
from sklambda.errors import InvalidInput, ModelNotFound, ModelRefused
from sklambda.serving.server import LoadedModel, ModelServer

# output_columns: the parity gate (publishing/parity_child.py) reads a scored file's columns from here.
__all__ = [
    "MAX_REPORT_CHARS",
    "THRESHOLD_TAG",
    "ByteRange",
    "merge_chunks",
    "output_columns",
    "plan_chunks",
    "record_fan_out_failure",
    "reject_threshold",
    "score_chunk",
    "score_file",
    "score_object",
]

# A model card tag that overrides settings.reject_threshold for that model: a share of rows in [0, 1].
THRESHOLD_TAG = "batch_reject_threshold"
# A Step Functions error Cause can be a whole stack trace; the summary keeps its start.
MAX_REPORT_CHARS = 4000


def reject_threshold(loaded: LoadedModel | None, settings: BatchSettings) -> float:
    """The share of rejected rows above which a job fails: the card's THRESHOLD_TAG when it is a number in [0, 1],
    else settings.reject_threshold (also when no model is loaded)."""
    if loaded is not None:
        raw = loaded.card.tags.get(THRESHOLD_TAG)
        if raw is not None:
            try:
                value = float(raw)
                if 0 <= value <= 1:
                    return value
            except (TypeError, ValueError):
                pass
    return settings.reject_threshold


# -- one pass --------------------------------------------------------------------------------------------
def score_object(
    ref: ObjectRef,
    *,
    server: ModelServer,
    settings: BatchSettings,
    s3: Any = None,
    job_id: str | None = None,
    observer: ScoredObserver | None = None,
) -> JobSummary:
    """Score the whole object in one streaming pass and publish scored/, errors/ and the summary (keys.py).

    `job_id` defaults to job.job_id_for(ref); `observer` sees every scored batch (monitoring capture). Returns the
    succeeded summary, or a superseded one (status "superseded", nothing published) when a newer upload of the key
    has published its outputs. Raises BatchInputError (bad key), BatchJobFailed (failed summary written; not
    retryable), or BatchJobCrashed (failed summary written when possible; retryable).
    """
    job = Job.of(ref, settings, s3=s3, job_id=job_id, started_at=time.monotonic())
    tally = Tally(model_version=job.target.version)  # an upload naming a version: its summary names it, failed or not
    scored_out = _writer(job, job.target.scored_key, gzip=job.gzip)
    errors_out = _writer(job, job.target.errors_key)

    def score_and_publish() -> None:
        job.guard.check()  # a late delivery of an old version: do not even score it
        _score_part(job, server, tally, scored_out, errors_out, observer=observer)
        _check_threshold(job, tally)
        job.guard.check()
        job.guard.before_write(job.target.scored_key)
        scored_out.complete()

    result = _conclude(job, tally, score_and_publish, errors_out, scored_out=scored_out)
    if result.status == FAILED:
        raise BatchJobFailed(result)
    return result


# -- fan-out ---------------------------------------------------------------------------------------------
def plan_chunks(ref: ObjectRef, *, chunk_bytes: int, s3: Any = None) -> list[ByteRange]:
    """Byte ranges that each end just after a newline, about `chunk_bytes` long, covering the object in order.

    gzip objects cannot be split: one range. Quoted newlines in CSV: a range boundary may fall inside a quoted
    field; score_chunk detects any quoted field spanning lines in its range and raises ChunkingUnsafe, and the
    caller then scores the object with score_object (correct, just not parallel). Raises BatchInputError for a key
    of unknown format; S3 errors propagate.
    """
    s3 = s3 or aws.client("s3")
    fmt = detect_format(ref.key)
    size = ref.size
    if size is None:
        args = {"Bucket": ref.bucket, "Key": ref.key, **({"VersionId": ref.version_id} if ref.version_id else {})}
        size = int(s3.head_object(**args)["ContentLength"])
    if fmt.endswith(".gz") or size <= chunk_bytes:
        return [ByteRange(0, size)]
    bounds = [0]
    target = chunk_bytes
    while target < size:
        cut = next_line_start(s3, ref, target, size)
        if cut >= size:
            break
        if cut > bounds[-1]:
            bounds.append(cut)
        target = max(cut, target) + chunk_bytes
    bounds.append(size)
    return [ByteRange(a, b) for a, b in itertools.pairwise(bounds)]


def score_chunk(
    ref: ObjectRef,
    byte_range: ByteRange,
    *,
    chunk_index: int,
    server: ModelServer,
    settings: BatchSettings,
    s3: Any = None,
    job_id: str | None = None,
    observer: ScoredObserver | None = None,
) -> ChunkResult:
    """Score one byte range into parts under tmp/<job_id>/ (scored and errors, one each per chunk index).

    A failure of the input is returned as a failed ChunkResult (merge_chunks turns it into the failed job);
    ChunkingUnsafe (a quoted line break in the range), BatchInputError and S3 errors are raised.
    """
    job = Job.of(ref, settings, s3=s3, job_id=job_id)
    started = time.monotonic()
    scored_key, errors_key = _tmp_keys(job.job_id, chunk_index)
    scored_out = _writer(job, scored_key, gzip=job.gzip, guarded=False)
    errors_out = _writer(job, errors_key, guarded=False)
    tally = Tally(model_version=job.target.version)
    failure: JobFailure | None = None
    try:
        _score_part(job, server, tally, scored_out, errors_out, byte_range=byte_range, observer=observer)
        scored_out.complete()
        errors_out.complete()
    except JobFailure as e:
        failure = e
        scored_out.abort()
        errors_out.abort()
    except BaseException:
        scored_out.abort()
        errors_out.abort()
        raise
    return ChunkResult(
        index=chunk_index,
        byte_range=byte_range,
        status=FAILED if failure else SUCCEEDED,
        rows_read=tally.rows_read,
        rows_scored=tally.rows_scored,
        rows_rejected=tally.rows_rejected,
        physical_lines=tally.physical_lines,
        scored_key=None if failure else scored_key,
        errors_key=None if failure else errors_key,
        model_version=tally.model_version,
        reject_threshold=job.threshold(tally),
        failure_reason=failure.reason if failure else None,
        report=failure.report if failure else None,
        duration_seconds=time.monotonic() - started,
        data_quality_warnings=dict(tally.data_quality_warnings),
    )


def merge_chunks(
    ref: ObjectRef,
    results: list[ChunkResult],
    *,
    settings: BatchSettings,
    s3: Any = None,
    job_id: str | None = None,
    started_at: float | None = None,
) -> JobSummary:
    """Publish the chunks' parts as one scored file and one errors file, write the summary, delete tmp/.

    `started_at` (monotonic) dates the job; without it the summary's duration is the sum of the chunks'. A failed
    chunk fails the job with its reason, as do no rows at all and a reject rate over the threshold (the lowest of
    the chunks'). Returns the succeeded or superseded summary (as score_object); raises BatchJobFailed or
    BatchJobCrashed (tmp/ parts kept for the retry).
    """
    job = Job.of(ref, settings, s3=s3, job_id=job_id, started_at=started_at or None)
    results = sorted(results, key=lambda r: r.index)
    tally = _merged(results)
    errors_out = _writer(job, job.target.errors_key)

    def gather_and_publish() -> None:
        job.guard.check()
        offset = 0
        for r in results:
            if r.errors_key and r.rows_rejected:
                copy_errors(job.s3, job.bucket, r.errors_key, offset, errors_out)
            offset += r.physical_lines
        failed = next((r for r in results if r.status == FAILED), None)
        if failed is not None:
            raise JobFailure(failed.failure_reason or "failed", failed.report or "")
        if tally.rows_read == 0:
            raise JobFailure("no_rows", "the object has no data rows: there is nothing to score")
        _check_threshold(job, tally)
        concat(job.s3, job.bucket, [r.scored_key for r in results if r.scored_key], job.target.scored_key, job.guard)

    result = _conclude(job, tally, gather_and_publish, errors_out)
    for r in results:
        for key in (r.scored_key, r.errors_key, *_tmp_keys(job.job_id, r.index)):
            if key:
                job.s3.delete_object(Bucket=job.bucket, Key=key)
    if result.status == FAILED:
        raise BatchJobFailed(result)
    return result


def record_fan_out_failure(
    ref: ObjectRef, *, job_id: str, error: str, cause: str, settings: BatchSettings, s3: Any = None
) -> JobSummary:
    """Write the failed summary (reason fan_out_failed, report `error: cause` cut to MAX_REPORT_CHARS) of a
    fanned-out job whose map could not finish (no chunk results to merge), or, when a newer upload of the key
    already published, the superseded record. Returns that summary; S3 errors propagate."""
    job = Job.of(ref, settings, s3=s3, job_id=job_id)
    tally = Tally(model_version=job.target.version)
    failure = JobFailure("fan_out_failed", f"{error}: {cause[:MAX_REPORT_CHARS]}")
    try:
        job.guard.check()
        summary = job.summary(FAILED, tally, failure=failure)
        job.guard.put_summary(summary.to_dict())
    except Superseded as e:
        return _superseded(job, tally, e)
    return summary


# -- in memory -------------------------------------------------------------------------------------------
def score_file(
    loaded: LoadedModel, data: bytes, fmt: str, settings: BatchSettings | None = None
) -> tuple[bytes, bytes]:
    """Score a whole small file in memory exactly as a batch job does (reader, parser, padding, formatter):
    returns (scored output, errors output), the bytes the job would write to scored/ and errors/.

    `fmt` is a keys format (csv, jsonl, csv.gz, jsonl.gz; `data` compressed accordingly). For the publish-time
    parity gate. Raises InvalidInput with the job's reason and report when the file as a whole fails (bad header,
    no rows).
    """
    scored, errors = _MemoryOut(), _MemoryOut()
    try:
        stream(_MemoryBody(data), Scoring(loaded, fmt, settings or BatchSettings(), scored, errors), Tally())
    except JobFailure as e:
        raise InvalidInput(f"{e.reason}: {e.report}") from None
    return scored.getvalue(), errors.getvalue()


# -- shared by every path --------------------------------------------------------------------------------
def _score_part(
    job: Job,
    server: ModelServer,
    tally: Tally,
    scored_out: MultipartWriter,
    errors_out: MultipartWriter,
    *,
    byte_range: ByteRange | None = None,
    observer: ScoredObserver | None = None,
) -> None:
    """Load the model, then stream the object (or `byte_range` of it) through the scoring loop into the outputs."""
    loaded = _load(job, server, tally)
    part = Part()
    if byte_range is not None:
        first = byte_range.start == 0
        csv = job.target.format in (CSV, CSV_GZ)
        header = read_header(job.s3, job.ref, job.settings.max_line_bytes) if csv and not first else None
        part = Part(starts_file=first, header=header, whole_file=False, start_offset=byte_range.start)
    response = get_object(job.s3, job.ref, byte_range)
    scoring = Scoring(
        loaded,
        job.target.format,
        job.settings,
        scored_out,
        errors_out,
        explain=wants_explanations(response),
        observer=observer,
        job_id=job.job_id,
    )
    stream(response["Body"], scoring, tally, part)


def _load(job: Job, server: ModelServer, tally: Tally) -> LoadedModel:
    """The model the key names (version, else alias, else the default alias); its version and reject threshold go
    into the tally. An unknown or refused model fails the job."""
    target = job.target
    try:
        if target.version is not None:
            loaded = server.get(target.model, version=target.version)
        else:
            loaded = server.get(target.model, alias=target.alias or job.settings.default_alias)
    except ModelNotFound as e:
        raise JobFailure("model_not_found", str(e)) from None
    except ModelRefused as e:
        raise JobFailure("model_refused", str(e)) from None
    tally.model_version = loaded.card.version
    tally.reject_threshold = reject_threshold(loaded, job.settings)
    return loaded


def _conclude(
    job: Job,
    tally: Tally,
    work: Callable[[], None],
    errors_out: MultipartWriter,
    *,
    scored_out: MultipartWriter | None = None,
) -> JobSummary:
    """Run `work` (score, or gather the chunks, and publish the scored file), then publish the errors file and the
    summary. Returns the succeeded, failed or superseded summary (written); raises BatchJobCrashed (or, when not
    even the failed summary can be written, the exception itself) for anything but a JobFailure or Superseded."""
    writers = [w for w in (scored_out, errors_out) if w is not None]
    try:
        try:
            work()
            _finish_errors(job, errors_out, tally.rows_rejected)
            result = job.summary(SUCCEEDED, tally)
            job.guard.put_summary(result.to_dict())
            return result
        except JobFailure as failure:
            if scored_out is not None:
                scored_out.abort()
            return _publish_failure(job, tally, errors_out, failure)
    except Superseded as e:
        for w in writers:
            w.abort()
        return _superseded(job, tally, e)
    except Exception as crash:
        for w in writers:
            w.abort()
        _crashed(job, tally, crash)
        raise  # not reached: _crashed raises
    except BaseException:
        for w in writers:
            w.abort()
        raise


def _publish_failure(job: Job, tally: Tally, errors_out: MultipartWriter, failure: JobFailure) -> JobSummary:
    """A failed job: its errors file, no scored file (not even an old one of this key), the failed summary.
    Returns the failed summary, or the superseded one when a newer upload already published."""
    try:
        job.guard.check()
        _finish_errors(job, errors_out, tally.rows_rejected)
        job.guard.delete(job.target.scored_key)  # a failed job leaves no scored file, not even its key's older one
        result = job.summary(FAILED, tally, failure=failure)
        job.guard.put_summary(result.to_dict())
        return result
    except Superseded as e:
        errors_out.abort()
        return _superseded(job, tally, e)
    except BaseException:
        errors_out.abort()
        raise


def _crashed(job: Job, tally: Tally, crash: Exception) -> None:
    """After an unexpected exception: write the failed summary (reason unexpected_error, counts so far) and raise
    BatchJobCrashed from the exception; if S3 refuses even that, the original exception propagates."""
    report = JobFailure(
        "unexpected_error", f"{type(crash).__name__}: {str(crash)[:MAX_REPORT_CHARS]}; the job is retried"
    )
    try:
        result = job.summary(FAILED, tally, failure=report, errors_published=False)
        job.guard.check()
        job.guard.delete(job.target.scored_key)
        job.guard.delete(job.target.errors_key)
        job.guard.put_summary(result.to_dict())
    except Exception:  # S3 refuses this too, or a newer upload published (the retry will say superseded)
        raise crash from None
    raise BatchJobCrashed(result) from crash


def _superseded(job: Job, tally: Tally, e: Superseded) -> JobSummary:
    """The report of a job that published nothing because a newer upload of its key already did; written to the
    superseded record (the newer summary stays as it is)."""
    result = job.summary(SUPERSEDED, tally, superseded_by=e.sequencer)
    body = json.dumps(result.to_dict(), indent=2).encode()
    job.s3.put_object(Bucket=job.bucket, Key=job.target.superseded_key, Body=body, ContentType="application/json")
    return result


def _check_threshold(job: Job, tally: Tally) -> None:
    threshold = job.threshold(tally)
    read, rejected = tally.rows_read, tally.rows_rejected
    if read and rejected / read > threshold:
        raise JobFailure(
            "reject_threshold",
            f"{rejected} of {read} rows ({rejected / read:.1%}) were rejected, above the "
            f"threshold of {threshold:.1%}; no row is published (see the errors file for each row's reasons)",
        )


def _finish_errors(job: Job, errors_out: MultipartWriter, rejected: int) -> None:
    if rejected:
        job.guard.before_write(job.target.errors_key)
        errors_out.complete()
    else:
        errors_out.abort()
        job.guard.delete(job.target.errors_key)  # an old errors file would describe another upload


def _merged(results: list[ChunkResult]) -> Tally:
    """The job's tally from its chunks': counts and warnings summed, the first model version, the lowest threshold."""
    return Tally(
        rows_read=sum(r.rows_read for r in results),
        rows_scored=sum(r.rows_scored for r in results),
        rows_rejected=sum(r.rows_rejected for r in results),
        physical_lines=sum(r.physical_lines for r in results),
        data_quality_warnings=sum((Counter(r.data_quality_warnings) for r in results), Counter()),
        model_version=next((r.model_version for r in results if r.model_version), None),
        reject_threshold=min((r.reject_threshold for r in results), default=None),
        chunks=len(results),
        chunk_seconds=sum(r.duration_seconds for r in results),
    )


def _writer(job: Job, key: str, *, gzip: bool = False, guarded: bool = True) -> MultipartWriter:
    """An output of the job in its data bucket; `guarded` outputs carry the input's sequencer (ordering.py)."""
    metadata = job.guard.metadata if guarded else None
    return MultipartWriter(job.s3, job.bucket, key, part_bytes=job.settings.part_bytes, gzip=gzip, metadata=metadata)


def _tmp_keys(job_id: str, index: int) -> tuple[str, str]:
    return f"tmp/{job_id}/scored-{index:06d}", f"tmp/{job_id}/errors-{index:06d}.jsonl"


class _MemoryOut:
    """A stand-in for MultipartWriter that keeps what is written in memory."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


class _MemoryBody:
    """A stand-in for S3's StreamingBody over bytes in memory."""

    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def read(self, n: int = -1) -> bytes:
        out = self._data[self._pos :] if n < 0 else self._data[self._pos : self._pos + n]
        self._pos += len(out)
        return out
