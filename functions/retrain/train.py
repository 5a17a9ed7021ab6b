"""Retraining pipeline: the training step of RetrainStateMachine, in a function of its own because its role is the
only one of the stack allowed kms:Sign on the signing key (template.yaml, RetrainTrainFunction). It refits a clone of
the champion's estimator on the run's training rows and publishes it through sklambda.publishing.publisher.publish
(quality gate, parity gate in this function's own runtime, signing); memory and timeout are template parameters.

Event: {"step": "train", "run": <RetrainRequest>, "steps": {"assemble": <its outcome>}}. A refusal raises
PublishRefused (the state machine's Catch reports it). Settings: sklambda.config.TrainSettings.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from sklambda import aws, tracing
from sklambda.config import TrainSettings
from sklambda.errors import MalformedRequest
from sklambda.publishing.parity import Runtime
from sklambda.registry.signing import CardSigner, CardVerifier
from sklambda.registry.store import Registry
from sklambda.updating.retraining import Retraining, RetrainRequest, StepFailed

logger = Logger()
tracer = tracing.tracer()

settings = TrainSettings.from_env()
_pipeline: Retraining | None = None


def pipeline() -> Retraining:
    """One per container, created on first use (so tests can start moto before it)."""
    global _pipeline
    if _pipeline is None:
        _pipeline = Retraining(
            registry=Registry(settings.model_bucket),
            verifier=CardVerifier(settings.signing_key_id),
            s3=aws.client("s3"),
            data_bucket=settings.data_bucket,
            signer=CardSigner(settings.signing_key_id),
            runtime=Runtime.at(settings.runtime_path.split(os.pathsep)),
        )
    return _pipeline


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def handler(event: dict, context: LambdaContext) -> Any:
    if not isinstance(event, dict) or event.get("step") != "train":
        raise MalformedRequest("the train function runs the train step only: {'step': 'train', 'run', 'steps'}")
    request = RetrainRequest.model_validate(event["run"])
    logger.append_keys(step="train", model=request.model, run_id=request.run_id)
    try:
        outcome = pipeline().train(request, event["steps"]["assemble"])
    except StepFailed as e:
        # An expected end of the run (the state machine's Catch reports it): one warning line with the reason. Raised
        # again so Step Functions sees its class name as the error, with its traceback cut to this frame: the runtime
        # logs a raised error's stack, which for an expected failure is only the handler's few frames.
        logger.warning("retraining step ended the run", extra={"error": type(e).__name__, "reason": e.message})
        raise e.with_traceback(None) from None
    logger.info("retraining step done", extra={"result": outcome})
    return outcome
