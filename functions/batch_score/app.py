"""Batch scoring, SQS side: S3 ObjectCreated notifications for incoming/ -> one scoring job per object version.

Each SQS message holds an S3 event (one or more Records) or S3's s3:TestEvent (ignored). Per object:
- exactly once: powertools idempotency keyed on (bucket, key, version id) in IdempotencyTable; a duplicate
  delivery returns the stored outcome without scoring again;
- small file: score_object writes scored/, errors/ and the summary;
- large file (size above SKLAMBDA_BATCH_FANOUT_BYTES): the planned byte ranges go to the fan-out state machine,
  started under the job id as execution name, so a second start of the same job cannot run twice.

Order. A notification delivered late or again for an object version older than the one whose outputs are already
published (S3's sequencer says which) publishes nothing: the job ends "superseded", counted (SupersededJobs) and
logged, its report written beside the newer summary (<scored key>.superseded.json); the message is deleted.

Failures. BatchJobFailed (bad header, too many rejected rows, unknown model...) has already written the failed
summary and errors file; the record is reported failed (batchItemFailures), and since the idempotency record is
deleted on an exception (it is not stored as a result), every redelivery runs the job again: same input, same
report, and a redrive from the dead-letter queue after a fix (e.g. publishing the missing model) really rescores.
After 5 receives the queue's RedrivePolicy moves the message to BatchDeadLetterQueue (alarmed). A key that cannot
be a job at all (BatchInputError: unknown suffix, no model folder) has no report to write: it is logged and
counted (InvalidObjects) and the message is deleted. Any other exception is transient: the engine writes a failed
summary (reason unexpected_error, counts so far) and raises BatchJobCrashed, counted (FailedJobs); the record fails
and SQS redelivers after the visibility timeout (then the dead-letter queue).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from batch_shared import configure, job_capture, record_capture, record_job, server
from botocore.exceptions import ClientError

from sklambda import aws, tracing
from sklambda.batch import (
    BatchInputError,
    BatchJobCrashed,
    BatchJobFailed,
    ByteRange,
    ObjectRef,
    decode_s3_key,
    job_id_for,
    parse_incoming_key,
    plan_chunks,
    score_object,
)
from sklambda.config import BatchScoreSettings

logger = Logger()
tracer = tracing.tracer()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)

# Read at import so a missing variable fails the cold start loudly instead of the first message.
function_settings = BatchScoreSettings.from_env()
configure(function_settings)
settings, fan_out = function_settings.engine, function_settings.fan_out
# A duplicate S3 notification arrives within minutes; a week also covers a redrive of an old success.
idempotency = IdempotencyConfig(
    event_key_jmespath="[bucket, key, version]",
    raise_on_no_idempotency_key=True,
    expires_after_seconds=7 * 24 * 3600,
)
persistence = DynamoDBPersistenceLayer(table_name=fan_out.idempotency_table)


def _job(s3_record: dict[str, Any]) -> dict[str, Any]:
    """The object a notification is about. Keys arrive URL-encoded (spaces as '+')."""
    bucket = s3_record["s3"]["bucket"]["name"]
    obj = s3_record["s3"]["object"]
    key = decode_s3_key(obj["key"])
    # The version id names the upload; without versioning the sequencer does (it orders PUTs of one key).
    version = obj.get("versionId") or obj.get("sequencer") or obj.get("eTag")
    return {
        "bucket": bucket,
        "key": key,
        "version": version,
        "version_id": obj.get("versionId"),
        "etag": obj.get("eTag"),
        "size": obj.get("size"),
        "sequencer": obj.get("sequencer"),  # orders the uploads of this key (a late old one is superseded)
    }


def _start_fan_out(ref: ObjectRef, job_id: str, chunks: list[ByteRange]) -> dict[str, Any]:
    execution_input = {
        "job_id": job_id,
        "object": dataclasses.asdict(ref),
        "chunks": [dataclasses.asdict(c) for c in chunks],
        "max_concurrency": fan_out.max_concurrency,
    }
    try:
        arn = aws.client("stepfunctions").start_execution(
            stateMachineArn=fan_out.state_machine_arn, name=job_id, input=json.dumps(execution_input)
        )["executionArn"]
    except ClientError as e:
        if e.response["Error"]["Code"] != "ExecutionAlreadyExists":
            raise
        # Started by an earlier attempt whose outcome was not stored (e.g. it timed out right after starting).
        arn = f"{fan_out.state_machine_arn.replace(':stateMachine:', ':execution:')}:{job_id}"
        logger.info("fan-out already started", extra={"execution_arn": arn})
    logger.info("large file fanned out", extra={"chunks": len(chunks), "execution_arn": arn, "size": ref.size})
    return {"status": "fanned_out", "job_id": job_id, "execution_arn": arn, "chunks": len(chunks)}


@idempotent_function(data_keyword_argument="job", config=idempotency, persistence_store=persistence)
def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Score one object version, or hand it to the fan-out state machine. Runs once per version."""
    ref = ObjectRef(
        job["bucket"],
        job["key"],
        version_id=job["version_id"],
        etag=job["etag"],
        size=job["size"],
        sequencer=job.get("sequencer"),
    )
    job_id = job_id_for(ref)
    logger.append_keys(job_id=job_id)
    if ref.size is not None and ref.size > fan_out.threshold_bytes:
        chunks = plan_chunks(ref, chunk_bytes=settings.chunk_bytes)
        if len(chunks) > 1:  # a gzip file cannot be split: it is scored in one pass below
            return _start_fan_out(ref, job_id, chunks)
    capture = job_capture(job_id)
    try:
        summary = score_object(ref, server=server(), settings=settings, job_id=job_id, observer=capture)
    except (BatchJobFailed, BatchJobCrashed) as e:
        record_capture(capture)
        record_job(e.summary)
        raise
    record_capture(capture)
    record_job(summary)
    return {"status": summary.status, "job_id": job_id, "summary_key": summary.summary_key}


@tracer.capture_method
def record_handler(record: SQSRecord) -> list[dict[str, Any]]:
    body = json.loads(record.body)
    if body.get("Event") == "s3:TestEvent":
        logger.info("ignored s3:TestEvent", extra={"bucket": body.get("Bucket")})
        return []
    outcomes = []
    for s3_record in body.get("Records", []):
        if not str(s3_record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        job = _job(s3_record)
        logger.remove_keys(["job_id"])
        logger.append_keys(input_key=job["key"], input_version=job["version"])
        try:
            parse_incoming_key(job["key"])
        except BatchInputError as e:
            metrics.add_metric(name="InvalidObjects", unit=MetricUnit.Count, value=1)
            logger.warning("object is not a batch job; skipped", extra={"reason": e.message})
            continue
        outcomes.append(run_job(job=job))
    return outcomes


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict, context: LambdaContext) -> dict:
    # An in-progress record expires with this invocation, so a redelivery after a timeout is not refused.
    idempotency.register_lambda_context(context)
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
