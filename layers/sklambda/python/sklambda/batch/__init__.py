"""Batch scoring of files uploaded to S3 (domain only: the Lambda handler builds an ObjectRef and calls in).

    summary = score_object(ObjectRef(bucket, decode_s3_key(raw_key), version_id), server=..., settings=...)

See engine.py for outputs and retry semantics, keys.py for the key layout, ordering.py for late deliveries of
older uploads (superseded jobs), parse.py for validation rules. The modules, bottom up:

    summary.py   what a job reports: Tally (counts so far), JobSummary (summary.json)
    errors.py    what callers catch, and which errors a retry can fix
    keys.py      where inputs come from and outputs go
    job.py       ObjectRef, ByteRange, ChunkResult, and Job (a job's context; builds its summaries)
    reader.py    bytes -> records, in bounded memory
    parse.py     records -> validated frames, rejected rows with reasons
    format.py    scored rows -> output bytes, rejected rows -> errors lines
    stream.py    the scoring loop that every path runs
    writer.py    outputs as multipart uploads, visible only when complete
    s3io.py      ranged reads of the input, concatenation of fan-out parts
    ordering.py  superseded jobs (S3 event sequencer)
    engine.py    the entry points: score_object, plan_chunks, score_chunk, merge_chunks, score_file
"""

from sklambda.batch.engine import merge_chunks, plan_chunks, record_fan_out_failure, score_chunk, score_object
from sklambda.batch.errors import BatchInputError, BatchJobCrashed, BatchJobFailed, ChunkingUnsafe
from sklambda.batch.job import ByteRange, ChunkResult, ObjectRef, job_id_for
from sklambda.batch.keys import Target, decode_s3_key, detect_format, parse_incoming_key
from sklambda.batch.summary import FAILED, SUCCEEDED, SUPERSEDED, JobSummary

__all__ = [
    "FAILED",
    "SUCCEEDED",
    "SUPERSEDED",
    "BatchInputError",
    "BatchJobCrashed",
    "BatchJobFailed",
    "ByteRange",
    "ChunkResult",
    "ChunkingUnsafe",
    "JobSummary",
    "ObjectRef",
    "Target",
    "decode_s3_key",
    "detect_format",
    "job_id_for",
    "merge_chunks",
    "parse_incoming_key",
    "plan_chunks",
    "record_fan_out_failure",
    "score_chunk",
    "score_object",
]
