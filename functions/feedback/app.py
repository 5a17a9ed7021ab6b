"""Ground truth in: `POST /models/{name}/feedback` (API Gateway) and label files under feedback/ (S3 -> SQS).

One function, two event sources, one role (read cards and aliases, write ground-truth/ only): `handler` hands an SQS
event (it has `Records`) to the batch processor and anything else to the REST resolver. Domain work (validation,
storage) is sklambda.monitoring.ground_truth.

Route answers: 201 {"model", "version", "accepted", "stored": true, "repeat": false, "key"} when the labels were
stored as new, 200 with "repeat": true when the same labels were already stored today (a retry, or labels sent again
after a correction: stored again with this arrival, so they are the newest); 400 malformed JSON, 404 unknown
model, alias or version (predict's body shape), 413 body or label count over the limits, 422 invalid labels (every
problem, capped, naming row and field).

Files: each SQS message holds an S3 event (or s3:TestEvent, ignored). A FeedbackFileFailed (unknown model, bad
header...) has its failed summary written; the record is reported failed, so SQS retries and, after 5 receives,
moves it to FeedbackDeadLetterQueue (alarmed) where it can be redriven once the model is published. A key that is
not a label file is logged, counted (InvalidObjects) and dropped. Processing a file again stores nothing new
(sklambda.monitoring.ground_truth.files).
"""

from __future__ import annotations

import json
import warnings
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from sklambda import aws, tracing
from sklambda.batch import decode_s3_key
from sklambda.config import FeedbackSettings
from sklambda.errors import PayloadTooLarge, SklambdaError, http_status
from sklambda.monitoring.ground_truth.files import FeedbackFileFailed, FeedbackInputError, store_label_file
from sklambda.monitoring.ground_truth.labels import LabelRulesSource, parse_request
from sklambda.monitoring.ground_truth.store import write_labels
from sklambda.registry.signing import CardVerifier
from sklambda.registry.store import Registry
from sklambda.serving.contracts import FeedbackRequest, FeedbackResponse, decode_body, parse_body, parse_selector

logger = Logger()
tracer = tracing.tracer()
metrics = Metrics()
app = APIGatewayRestResolver()
processor = BatchProcessor(event_type=EventType.SQS)
warnings.filterwarnings("ignore", message="No application metrics to publish")

# Read at import so a missing variable fails the cold start loudly instead of the first request.
settings = FeedbackSettings.from_env()
_rules: LabelRulesSource | None = None


def rules() -> LabelRulesSource:
    """One per container, created on first use (so tests can start moto before it)."""
    global _rules
    if _rules is None:
        _rules = LabelRulesSource(
            Registry(settings.model_bucket),
            CardVerifier(settings.signing_key_id),
            alias_ttl_seconds=settings.alias_ttl_seconds,
        )
    return _rules


# --- the route -----------------------------------------------------------------------------------------------------
@app.post("/models/<name>/feedback")
@tracer.capture_method
def feedback(name: str) -> Response:
    event = app.current_event
    body = parse_body(
        decode_body(event.body, is_base64=event.is_base64_encoded), FeedbackRequest, max_bytes=settings.max_body_bytes
    )
    if len(body.labels) > settings.max_labels:
        raise PayloadTooLarge(f"got {len(body.labels)} labels, the limit is {settings.max_labels}: split the request")
    selector = parse_selector(event.query_string_parameters)
    label_rules = rules().get(name, alias=selector.alias or settings.default_alias, version=selector.version)
    labels = parse_request(body.labels, label_rules, datetime.now(UTC))
    stored = write_labels(aws.client("s3"), settings.monitoring_bucket, name, labels, arrival=datetime.now(UTC))
    metrics.add_dimension(name="model", value=name)
    metrics.add_metric(name="LabelsReceived", unit=MetricUnit.Count, value=len(labels))
    logger.info("labels stored", extra={"model": name, "labels": len(labels), "repeat": not stored.created})
    answer = FeedbackResponse(
        model=name,
        version=label_rules.version,
        accepted=len(labels),
        stored=True,
        repeat=not stored.created,
        key=stored.key,
    ).model_dump()
    return Response(
        status_code=201 if stored.created else 200, content_type=content_types.APPLICATION_JSON, body=answer
    )


def _error(status: int, code: str, message: str, details: list[dict] | None = None) -> Response:
    body = {"error": {"code": code, "message": message, "details": details or []}}
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


@app.exception_handler(SklambdaError)
def domain_error(e: SklambdaError) -> Response:
    status = http_status(e)
    if status < 500:
        logger.info("request refused", extra={"status": status, "reason": e.code, "problems": len(e.errors)})
    else:
        logger.warning("request failed", extra={"status": status, "reason": e.code})
    return _error(status, e.code, e.message, [x.to_dict() for x in e.errors])


@app.not_found
def route_not_found(_: NotFoundError) -> Response:
    return _error(404, "route_not_found", f"no route for {app.current_event.http_method} {app.current_event.path}")


@app.exception_handler(Exception)
def unexpected(e: Exception) -> Response:
    logger.exception("unexpected error")
    return _error(500, "internal", "internal error; the request id is in the response headers and logs")


# --- files ---------------------------------------------------------------------------------------------------------
def _arrival(s3_record: dict[str, Any]) -> datetime:
    """When the file arrived: the event's time (so a redelivery on a later day names the same partition)."""
    stamp = s3_record.get("eventTime")
    try:
        return datetime.fromisoformat(stamp).astimezone(UTC) if stamp else datetime.now(UTC)
    except ValueError:
        return datetime.now(UTC)


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
        obj = s3_record["s3"]["object"]
        key = decode_s3_key(obj["key"])
        logger.append_keys(input_key=key)
        try:
            summary = store_label_file(
                aws.client("s3"),
                s3_record["s3"]["bucket"]["name"],
                key,
                version_id=obj.get("versionId"),
                data_bucket=settings.monitoring_bucket,
                rules=rules(),
                alias=settings.default_alias,
                arrival=_arrival(s3_record),
                chunk_labels=settings.chunk_labels,
                max_line_bytes=settings.max_line_bytes,
            )
        except FeedbackInputError as e:
            metrics.add_metric(name="InvalidObjects", unit=MetricUnit.Count, value=1)
            logger.warning("object is not a label file; skipped", extra={"reason": e.message})
            continue
        except FeedbackFileFailed as e:
            metrics.add_metric(name="FailedLabelFiles", unit=MetricUnit.Count, value=1)
            logger.error("label file failed", extra={"summary": e.summary.to_dict()})
            raise
        metrics.add_metric(name="LabelsReceived", unit=MetricUnit.Count, value=summary.rows_accepted)
        metrics.add_metric(name="LabelsRejected", unit=MetricUnit.Count, value=summary.rows_rejected)
        logger.info("label file stored", extra={"summary": summary.to_dict()})
        outcomes.append({"status": summary.status, "summary_key": summary.summary_key})
    return outcomes


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict, context: LambdaContext) -> dict:
    if "Records" in event:  # SQS: S3 notifications of files under feedback/
        return process_partial_response(
            event=event, record_handler=record_handler, processor=processor, context=context
        )
    return app.resolve(event, context)
