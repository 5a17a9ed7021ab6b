"""Batch scoring of files uploaded to S3 (domain only: the Lambda handler builds an ObjectRef and calls in).

    summary = score_object(ObjectRef(bucket, decode_s3_key(raw_key), version_id), server=..., settings=...)

See engine.py for outputs and retry semantics, keys.py for the key layout, ordering.py for late deliveries of
older uploads (superseded jobs), parse.py for validation rules.
"""

from sklambda.batch.engine import (
    FAILED,
    SUCCEEDED,
    SUPERSEDED,
    ByteRange,
    ChunkResult,
    JobSummary,
    ObjectRef,
    job_id_for,
    merge_chunks,
    plan_chunks,
    record_fan_out_failure,
    score_chunk,
    score_object,
)
from sklambda.batch.errors import BatchInputError, BatchJobCrashed, BatchJobFailed, ChunkingUnsafe
from sklambda.batch.keys import Target, decode_s3_key, detect_format, parse_incoming_key

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
