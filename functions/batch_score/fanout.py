"""Batch scoring, Step Functions side: the tasks of BatchFanOutStateMachine, one handler dispatching on `action`.

    {"action": "chunk", "job_id", "object", "chunk": {"start", "end"}, "chunk_index"}  -> ChunkResult as a dict
    {"action": "merge", "job_id", "object", "results": [...]}                          -> JobSummary as a dict
    {"action": "fail",  "job_id", "object", "error": {"Error", "Cause"}}              -> failed JobSummary

A chunk that cannot be scored on its own (ChunkingUnsafe: a quoted newline in its range) is returned marked
`chunking_unsafe`, and the merge then scores the whole object in one pass instead. A job that fails for its input
raises BatchJobFailed from the merge (failed summary written): the state machine ends in its Fail state without
retrying. `fail` writes the failed summary when the map itself failed (a chunk kept failing on transient errors).
The object (ObjectRef as a dict) carries the S3 event's sequencer to every task, so the merge (and `fail`) publish
nothing over the outputs of a newer upload of the same key (the job ends "superseded").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from batch_shared import configure, job_capture, record_capture, record_job, server

from sklambda import tracing
from sklambda.batch import (
    BatchJobCrashed,
    BatchJobFailed,
    ByteRange,
    ChunkingUnsafe,
    ChunkResult,
    ObjectRef,
    merge_chunks,
    record_fan_out_failure,
    score_chunk,
    score_object,
)
from sklambda.config import BatchChunkSettings

logger = Logger()
tracer = tracing.tracer()
# Read at import so a missing variable fails the cold start loudly instead of the first task.
function_settings = BatchChunkSettings.from_env()
configure(function_settings)
settings = function_settings.engine


def _ref(event: dict[str, Any]) -> ObjectRef:
    return ObjectRef(**event["object"])


def chunk(event: dict[str, Any]) -> dict[str, Any]:
    """Score one byte range (engine.score_chunk) with capture; returns the ChunkResult as a dict, or
    {"index", "chunking_unsafe": True} when the range holds a quoted line break."""
    index = int(event["chunk_index"])
    capture = job_capture(event["job_id"])
    try:
        result = score_chunk(
            _ref(event),
            ByteRange(**event["chunk"]),
            chunk_index=index,
            server=server(),
            settings=settings,
            job_id=event["job_id"],
            observer=capture,
        )
    except ChunkingUnsafe as e:
        logger.info("chunk cannot be scored alone; the merge scores the whole object", extra={"reason": e.message})
        return {"index": index, "chunking_unsafe": True}
    record_capture(capture)
    logger.info("chunk scored", extra={"chunk": index, "status": result.status, "rows_read": result.rows_read})
    return dataclasses.asdict(result)


def merge(event: dict[str, Any]) -> dict[str, Any]:
    """Merge the chunks' parts (engine.merge_chunks), or score the whole object in one pass when a chunk was
    unsafe; returns the summary as a dict. Raises BatchJobFailed / BatchJobCrashed after recording the job."""
    ref, job_id, results = _ref(event), event["job_id"], event["results"]
    try:
        if any(r.get("chunking_unsafe") for r in results):
            summary = score_object(ref, server=server(), settings=settings, job_id=job_id)
        else:
            summary = merge_chunks(ref, [ChunkResult.from_dict(r) for r in results], settings=settings, job_id=job_id)
    except (BatchJobFailed, BatchJobCrashed) as e:
        record_job(e.summary)
        raise
    record_job(summary)
    return summary.to_dict()


def fail(event: dict[str, Any]) -> dict[str, Any]:
    """The failed summary of a job whose map could not finish (no chunk results to merge)."""
    error = event.get("error") or {}
    summary = record_fan_out_failure(
        _ref(event),
        job_id=event["job_id"],
        error=str(error.get("Error", "States.Runtime")),
        cause=str(error.get("Cause", "")),
        settings=settings,
    )
    record_job(summary)
    return summary.to_dict()


ACTIONS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {"chunk": chunk, "merge": merge, "fail": fail}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict, context: LambdaContext) -> dict:
    """The state machine's task: dispatch on event["action"] (ACTIONS). Raises ValueError for an unknown action."""
    logger.append_keys(job_id=event.get("job_id"), action=event.get("action"))
    action = ACTIONS.get(event.get("action", ""))
    if action is None:
        raise ValueError(f"unknown action {event.get('action')!r}; expected one of {sorted(ACTIONS)}")
    return action(event)
