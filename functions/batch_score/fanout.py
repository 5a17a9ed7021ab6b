"""Batch scoring, Step Functions side: the tasks of BatchFanOutStateMachine, one handler dispatching on `action`.

    {"action": "chunk", "job_id", "object", "chunk": {"start", "end"}, "chunk_index"}  -> ChunkResult as a dict
    {"action": "merge", "job_id", "object", "results": [...]}                          -> JobSummary as a dict
    {"action": "fail",  "job_id", "object", "error": {"Error", "Cause"}}              -> failed JobSummary

A chunk that cannot be scored on its own (ChunkingUnsafe: a quoted newline in its range) is returned marked
`chunking_unsafe`, and the merge then scores the whole object in one pass instead. A job that fails for its input
raises BatchJobFailed from the merge (failed summary written): the state machine ends in its Fail state without
retrying. `fail` writes the failed summary when the map itself failed (a chunk kept failing on transient errors).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from batch_shared import record_job, server

from sklambda import aws
from sklambda.batch import (
    BatchJobFailed,
    ByteRange,
    ChunkingUnsafe,
    ChunkResult,
    JobSummary,
    ObjectRef,
    merge_chunks,
    parse_incoming_key,
    score_chunk,
    score_object,
)
from sklambda.config import BatchSettings

logger = Logger()
tracer = Tracer()
settings = BatchSettings.from_env()
MAX_REPORT_CHARS = 4000


def _ref(event: dict[str, Any]) -> ObjectRef:
    return ObjectRef(**event["object"])


def chunk(event: dict[str, Any]) -> dict[str, Any]:
    index = int(event["chunk_index"])
    try:
        result = score_chunk(
            _ref(event),
            ByteRange(**event["chunk"]),
            chunk_index=index,
            server=server(),
            settings=settings,
            job_id=event["job_id"],
        )
    except ChunkingUnsafe as e:
        logger.info("chunk cannot be scored alone; the merge scores the whole object", extra={"reason": e.message})
        return {"index": index, "chunking_unsafe": True}
    logger.info("chunk scored", extra={"chunk": index, "status": result.status, "rows_read": result.rows_read})
    return dataclasses.asdict(result)


def _chunk_result(data: dict[str, Any]) -> ChunkResult:
    return ChunkResult(**{**data, "byte_range": ByteRange(**data["byte_range"])})


def merge(event: dict[str, Any]) -> dict[str, Any]:
    ref, job_id, results = _ref(event), event["job_id"], event["results"]
    try:
        if any(r.get("chunking_unsafe") for r in results):
            summary = score_object(ref, server=server(), settings=settings, job_id=job_id)
        else:
            summary = merge_chunks(ref, [_chunk_result(r) for r in results], settings=settings, job_id=job_id)
    except BatchJobFailed as e:
        record_job(e.summary)
        raise
    record_job(summary)
    return summary.to_dict()


def fail(event: dict[str, Any]) -> dict[str, Any]:
    """The failed summary of a job whose map could not finish (no chunk results to merge)."""
    ref, error = _ref(event), event.get("error") or {}
    target = parse_incoming_key(ref.key)
    bucket = settings.data_bucket or ref.bucket
    cause = str(error.get("Cause", ""))[:MAX_REPORT_CHARS]
    summary = JobSummary(
        job_id=event["job_id"],
        status="failed",
        input_bucket=ref.bucket,
        input_key=ref.key,
        input_version_id=ref.version_id,
        input_etag=ref.etag,
        model_name=target.model,
        model_alias=None if target.version else (target.alias or settings.default_alias),
        model_version=target.version,
        format=target.format,
        rows_read=0,
        rows_scored=0,
        rows_rejected=0,
        reject_threshold=settings.reject_threshold,
        duration_seconds=0.0,
        output_bucket=bucket,
        scored_key=None,
        errors_key=None,
        summary_key=target.summary_key,
        failure_reason="fan_out_failed",
        report=f"{error.get('Error', 'States.Runtime')}: {cause}",
    )
    body = json.dumps(summary.to_dict(), indent=2).encode()
    aws.client("s3").put_object(Bucket=bucket, Key=summary.summary_key, Body=body, ContentType="application/json")
    record_job(summary)
    return summary.to_dict()


ACTIONS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {"chunk": chunk, "merge": merge, "fail": fail}


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict, context: LambdaContext) -> dict:
    logger.append_keys(job_id=event.get("job_id"), action=event.get("action"))
    action = ACTIONS.get(event.get("action", ""))
    if action is None:
        raise ValueError(f"unknown action {event.get('action')!r}; expected one of {sorted(ACTIONS)}")
    return action(event)
