"""Retraining pipeline: every step of RetrainStateMachine but training (functions/retrain/train.py trains), dispatched
on the event's `step`. Domain code: sklambda.updating.retraining (the steps, their records, resume and the report).

Events (the state machine's Task payloads; samples in events/retrain_*.json):
    {"step": "prepare", "input": <execution input>, "execution": <execution name>}  -> the RetrainRequest (an input
        that is a DriftDetected / PerformanceDegraded event takes the stack's automatic rollout and approval)
    {"step": "assemble" | "rollout" | "recall_approval", "run": <request>}
    {"step": "gate" | "promote", "run": <request>, "steps": {<step>: <outcome>}}
    {"step": "watch", "run": <request>, "check": <the rollout check's answer>, "previous": <last watch result>}
    {"step": "approval", "run": <request>, "steps": {...}, "task_token": <$$.Task.Token>}
    {"step": "report", "state": <the state machine's data>, "execution": <execution name>}
A step that fails raises its StepFailed subclass (GateFailed, CanaryRolledBack...): Step Functions sees the class name
as the error and the state machine's Catch routes it to the report step.

Settings: sklambda.config.RetrainSettings.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from sklambda import aws, tracing
from sklambda.config import RetrainSettings
from sklambda.errors import MalformedRequest
from sklambda.registry.signing import CardVerifier
from sklambda.registry.store import Registry
from sklambda.updating.retraining import (
    EVENT_SOURCE,
    Retraining,
    RetrainRequest,
    StepFailed,
    parse_request,
)

logger = Logger()
tracer = tracing.tracer()

# Read at import so a missing variable fails the cold start loudly instead of the first run.
settings = RetrainSettings.from_env()
_pipeline: Retraining | None = None


def put_event(detail_type: str, detail: dict[str, Any]) -> str:
    """Put one event (source sklambda.updating) on the configured bus; returns its id."""
    return aws.put_event(settings.event_bus, EVENT_SOURCE, detail_type, detail)


def notify(subject: str, message: str) -> None:
    """Publish the approval message to the approval topic."""
    aws.client("sns").publish(TopicArn=settings.approval_topic_arn, Subject=subject, Message=message)


def pipeline() -> Retraining:
    """One per container, created on first use (so tests can start moto before it)."""
    global _pipeline
    if _pipeline is None:
        _pipeline = Retraining(
            registry=Registry(settings.model_bucket),
            verifier=CardVerifier(settings.signing_key_id),
            s3=aws.client("s3"),
            data_bucket=settings.data_bucket,
            training_prefix=settings.training_data_prefix,
            label_days=settings.label_days,
            lookback_days=settings.lookback_days,
            min_training_rows=settings.min_training_rows,
            holdout_fraction=settings.holdout_fraction,
            put_event=put_event,
            notify=notify,
        )
    return _pipeline


def automatic() -> dict[str, Any]:
    """The request fields of a run started by a monitoring event (the stack's choice, RetrainSettings)."""
    return {"rollout": settings.auto_rollout, "approval": settings.auto_approval}


def _run(event: dict) -> RetrainRequest:
    return RetrainRequest.model_validate(event["run"])


ROUTES: dict[str, Callable[[dict], Any]] = {
    "prepare": lambda e: parse_request(
        e.get("input"), str(e.get("execution") or ""), automatic=automatic()
    ).model_dump(),
    "assemble": lambda e: pipeline().assemble(_run(e)),
    "gate": lambda e: pipeline().gate(_run(e), e["steps"]["assemble"], e["steps"]["train"]),
    "rollout": lambda e: pipeline().rollout(_run(e), e["steps"]["train"]),
    "watch": lambda e: pipeline().watch(_run(e), e.get("check"), e.get("previous")),
    "recall_approval": lambda e: pipeline().recall_approval(_run(e)),
    "approval": lambda e: pipeline().request_approval(_run(e), e["steps"], str(e["task_token"])),
    "promote": lambda e: pipeline().promote(_run(e), e["steps"]["train"], e["steps"]["rollout"]),
    "report": lambda e: pipeline().report(e.get("state") or {}, str(e.get("execution") or "")),
}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict, context: LambdaContext) -> Any:
    step = event.get("step") if isinstance(event, dict) else None
    route = ROUTES.get(str(step))
    if route is None:
        raise MalformedRequest(
            f"unknown retraining step {step!r}; steps: {', '.join(ROUTES)} (train: the train function)"
        )
    logger.append_keys(
        step=step, model=(event.get("run") or {}).get("model"), run_id=(event.get("run") or {}).get("run_id")
    )
    try:
        result = route(event)
    except StepFailed as e:
        # An expected end of the run (the state machine's Catch reports it): one warning line with the reason. Raised
        # again so Step Functions sees its class name as the error, with its traceback cut to this frame: the runtime
        # logs a raised error's stack, which for an expected failure is only the handler's few frames.
        logger.warning("retraining step ended the run", extra={"error": type(e).__name__, "reason": e.message})
        raise e.with_traceback(None) from None
    logger.info("retraining step done", extra={"result": result if step != "prepare" else None})
    return result
