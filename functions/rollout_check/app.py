"""Rollout check: evaluate every canary (automatic rollback) and compare every shadow.

Two events (both in events/):
- the EventBridge scheduled event of RolloutCheckFunction's schedule: every alias of every model that has a canary or
  a shadow;
- an on-demand invocation `{"model": "churn", "alias": "production"}` (alias optional: the default alias), e.g. from
  the retraining pipeline's canary-wait loop. It answers that alias's result (updating.rollout_check's shape, with
  `event_id` and `report_urls`): `status` is collecting | healthy | rolled_back | no_canary, `verdict` the
  CanaryVerdict. A request it cannot read answers {"status": "invalid_request", "error": {...}}; an alias that cannot
  be checked {"status": "failed", "error": {"code", "message"}}.

On a rolled_back verdict, updating.rollout_check drops the canary (only if the alias is still as evaluated) and this
handler puts a `CanaryRolledBack` event (source sklambda.monitoring; detail: model, alias, versions, reasons, report)
on the configured bus. EMF metrics (namespace from POWERTOOLS_METRICS_NAMESPACE), per version (dimensions model,
version): RolloutRequests, RolloutErrorRate, RolloutLatencyP50; per model: CanaryRolledBack (1 on a rollback, else
0), ShadowAgreement and ShadowLatencyRatio, RolloutCheckFailed.

Settings: sklambda.config.RolloutCheckSettings.
"""

from __future__ import annotations

import functools
import warnings
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sklambda import aws, tracing
from sklambda.config import RolloutCheckSettings
from sklambda.errors import SklambdaError
from sklambda.registry.signing import CardVerifier
from sklambda.registry.store import AliasRecord, Registry
from sklambda.serving.server import LoadedModel, load_verified
from sklambda.updating.rollout import ROLLED_BACK, CanaryVerdict
from sklambda.updating.rollout_check import aliases_in_rollout, check_alias

logger = Logger()
tracer = tracing.tracer()
metrics = Metrics()
warnings.filterwarnings("ignore", message="No application metrics to publish")

EVENT_SOURCE = "sklambda.monitoring"
EVENT_DETAIL_TYPE = "CanaryRolledBack"

# Read at import so a missing variable fails the cold start loudly instead of the first check.
settings = RolloutCheckSettings.from_env()
_registry: Registry | None = None


def registry() -> Registry:
    """One per container, created on first use (so tests can start moto before it)."""
    global _registry
    if _registry is None:
        _registry = Registry(settings.model_bucket)
    return _registry


@functools.lru_cache(maxsize=4)
def loaded(name: str, version: str) -> LoadedModel:
    """A verified version, kept per container: versions are immutable, and a shadow is replayed at every check."""
    return load_verified(registry(), CardVerifier(settings.signing_key_id), name, version)


class RolloutCheckRequest(BaseModel):
    """An on-demand check of one alias. Unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=128)
    alias: str | None = Field(default=None, min_length=1, max_length=128)


def is_scheduled(event: Any) -> bool:
    return isinstance(event, dict) and event.get("source") == "aws.events" and "detail-type" in event


def record_metrics(answer: dict[str, Any], verdict: CanaryVerdict | None) -> None:
    """Per version: requests, error rate (%), p50 latency (ms); per model: CanaryRolledBack and the shadow's figures."""
    model = answer["model"]
    if verdict is not None:
        for figures in (verdict.stable, verdict.canary):
            per_version = EphemeralMetrics()
            per_version.add_dimension(name="model", value=model)
            per_version.add_dimension(name="version", value=figures.version)
            per_version.add_metric(name="RolloutRequests", unit=MetricUnit.Count, value=figures.requests)
            if figures.requests:
                rate = 100 * figures.errors / figures.requests
                per_version.add_metric(name="RolloutErrorRate", unit=MetricUnit.Percent, value=rate)
            if figures.latency_p50_ms is not None:
                p50 = figures.latency_p50_ms
                per_version.add_metric(name="RolloutLatencyP50", unit=MetricUnit.Milliseconds, value=p50)
            per_version.flush_metrics()
    per_model = EphemeralMetrics()
    per_model.add_dimension(name="model", value=model)
    if verdict is not None:
        rolled_back = int(verdict.status == ROLLED_BACK and bool((answer["rollback"] or {}).get("applied")))
        per_model.add_metric(name="CanaryRolledBack", unit=MetricUnit.Count, value=rolled_back)
    shadow = answer.get("shadow") or {}
    if shadow.get("status") == "compared" and shadow.get("agreement"):
        per_model.add_metric(name="ShadowAgreement", unit=MetricUnit.Percent, value=100 * shadow["agreement"]["rate"])
        per_model.add_metric(name="ShadowLatencyRatio", unit=MetricUnit.NoUnit, value=shadow["latency"]["ratio"])
    if verdict is not None or shadow:
        per_model.flush_metrics()


def publish_rolled_back(answer: dict[str, Any]) -> str:
    """Put one CanaryRolledBack event on the bus; returns its event id."""
    verdict = answer["verdict"]
    detail = {
        "model": answer["model"],
        "alias": answer["alias"],
        "versions": {"stable": answer["stable_version"], "canary": answer["canary_version"]},
        "reasons": verdict["reasons"],
        "report": answer["report"],
        "report_urls": answer["report_urls"],
    }
    return aws.put_event(settings.event_bus, EVENT_SOURCE, EVENT_DETAIL_TYPE, detail)


def _failed(model: str, alias: str, code: str, message: str) -> dict[str, Any]:
    failure = EphemeralMetrics()
    failure.add_dimension(name="model", value=model)
    failure.add_metric(name="RolloutCheckFailed", unit=MetricUnit.Count, value=1)
    failure.flush_metrics()
    return {"model": model, "alias": alias, "status": "failed", "error": {"code": code, "message": message}}


@tracer.capture_method
def check(record: AliasRecord, now: datetime) -> dict[str, Any]:
    """One alias's answer; a failure is an answer too, never an exception."""
    log = {"model": record.name, "alias": record.alias}
    try:
        answer, verdict = check_alias(
            registry(),
            record,
            s3=aws.client("s3"),
            data_bucket=settings.monitoring_bucket,
            verifier=CardVerifier(settings.signing_key_id),
            load=loaded,
            shadow_window_hours=settings.shadow_window_hours,
            shadow_max_rows=settings.shadow_max_rows,
            now=now,
        )
    except SklambdaError as e:
        logger.error("rollout check failed", extra={**log, "code": e.code, "reason": e.message})
        return _failed(record.name, record.alias, e.code, e.message)
    except ValueError as e:  # what the alias record holds cannot be checked (its bounds, its start time)
        logger.error("rollout check failed", extra={**log, "reason": str(e)})
        return _failed(record.name, record.alias, "invalid_rollout", str(e))
    except Exception as e:  # an AWS or data error on one alias must not hide the others' checks
        logger.exception("rollout check failed unexpectedly", extra=log)
        return _failed(record.name, record.alias, "internal", f"{type(e).__name__}: {e}")
    bucket = settings.monitoring_bucket
    answer["report_urls"] = {k: f"s3://{bucket}/{v}" for k, v in (answer["report"] or {}).items()}
    answer["event_id"] = None
    try:
        record_metrics(answer, verdict)
    except Exception:  # the verdict and rollback stand: a metric that cannot be emitted must not undo them
        logger.exception("rollout check metrics not emitted", extra=log)
    if answer["status"] == ROLLED_BACK and (answer["rollback"] or {}).get("applied"):
        try:
            answer["event_id"] = publish_rolled_back(answer)
        except Exception:
            logger.exception("CanaryRolledBack event not delivered", extra=log)
            metrics.add_metric(name="RolloutEventFailed", unit=MetricUnit.Count, value=1)
        reasons = [r["text"] for r in answer["verdict"]["reasons"]]
        logger.warning("canary rolled back", extra={**log, "reasons": reasons})
    else:
        logger.info("rollout checked", extra={**log, "status": answer["status"]})
    return answer


def run(event: Any, now: datetime) -> dict[str, Any]:
    if is_scheduled(event):

        def unreadable(name: str, error: Exception) -> None:
            logger.error("aliases not readable", extra={"model": name, "reason": f"{type(error).__name__}: {error}"})

        results = [check(record, now) for record in aliases_in_rollout(registry(), unreadable)]
        failed = sum(r["status"] == "failed" for r in results)
        return {
            "status": "failed" if failed and failed == len(results) else "ok",
            "checked": len(results) - failed,
            "failed": failed,
            "rolled_back": [f"{r['model']}/{r['alias']}" for r in results if r["status"] == ROLLED_BACK],
            "results": results,
        }
    try:
        request = RolloutCheckRequest.model_validate(event)
    except ValidationError as e:
        errors = [{"field": ".".join(map(str, err["loc"])) or None, "message": err["msg"]} for err in e.errors()]
        logger.warning("invalid rollout check request", extra={"errors": errors})
        return {"status": "invalid_request", "error": {"code": "malformed_request", "errors": errors}}
    alias = request.alias or settings.default_alias
    try:
        record = registry().get_alias(request.model, alias)
    except SklambdaError as e:
        return _failed(request.model, alias, e.code, e.message)
    return check(record, now)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(raise_on_empty_metrics=False)
def handler(event: dict, context: LambdaContext) -> dict:
    return run(event, datetime.now(UTC))
