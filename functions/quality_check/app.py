"""Model-quality check: join the labels that arrived with the predictions they refer to, compare each production
model's realized and estimated performance with its card, alert on a degradation.

Two events (both in events/):
- the EventBridge scheduled event of QualityCheckFunction's Schedule: every model that has the default alias;
- an on-demand invocation `{"model": "churn", "alias": "production", "window_hours": 24, "end": "<iso>"}` (all but
  model optional): that model only. It is validated here, at the edge; a bad one returns an `invalid_request` result.

Per model, monitoring.quality_check.run_quality_check reads the labels (ground-truth/) and captured predictions
(capture/), keeps the consecutive-window states and writes reports/quality/<model>/<window end>.json|.html and the
model's quality page reports/quality/<model>/index.html. This handler emits its EMF metrics (namespace from
POWERTOOLS_METRICS_NAMESPACE, dimensions model and version: LabeledRows, JoinRate, QualityVerdict, ModelDegraded,
EstimatedDegraded, SegmentGapsFlagged, and each realized and estimated metric as Realized<Name> / Estimated<Name>, e.g.
RealizedRocAuc) and, when the model is degraded (a significant drop beyond tolerance in consecutive windows), puts a
`PerformanceDegraded` event (source sklambda.monitoring) on the configured bus. A significant estimated drop over
consecutive windows is the EstimatedDegraded metric (alarmed in template.yaml): labels have not confirmed it yet. A
model that cannot be checked is logged and counted (QualityCheckFailed) and does not stop the others.

Settings: sklambda.config.QualityCheckSettings.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field, ValidationError

from sklambda import aws, tracing
from sklambda.config import QualityCheckSettings
from sklambda.errors import SklambdaError
from sklambda.monitoring.drift_check import window_bounds
from sklambda.monitoring.model_quality.degradation import DEGRADED, DegradationConfig
from sklambda.monitoring.quality_check import QualityCheckResult, run_quality_check
from sklambda.monitoring.requests import OnDemandCheck, models_with_alias
from sklambda.monitoring.windows import Window
from sklambda.registry.signing import CardVerifier
from sklambda.registry.store import Registry

logger = Logger()
tracer = tracing.tracer()
metrics = Metrics()
# Every metric here is emitted with its own dimensions (per model), none on the handler's batch.
warnings.filterwarnings("ignore", message="No application metrics to publish")

EVENT_SOURCE = "sklambda.monitoring"
EVENT_DETAIL_TYPE = "PerformanceDegraded"

# Read at import so a missing variable fails the cold start loudly instead of the first check.
settings = QualityCheckSettings.from_env()
_registry: Registry | None = None


def registry() -> Registry:
    """One per container, created on first use (so tests can start moto before it)."""
    global _registry
    if _registry is None:
        _registry = Registry(settings.model_bucket)
    return _registry


def degradation_config() -> DegradationConfig:
    """The degradation rule with the function's minimum labeled rows and consecutive windows, where set."""
    changes = {"min_labeled_rows": settings.min_labeled_rows, "consecutive_windows": settings.consecutive_windows}
    return DegradationConfig.from_dict({k: v for k, v in changes.items() if v is not None})


class QualityCheckRequest(OnDemandCheck):
    """An on-demand check of one model (model, window_hours, end), of the version `alias` points at (default: the
    function's default alias)."""

    alias: str | None = Field(default=None, min_length=1, max_length=128)


def is_scheduled(event: Any) -> bool:
    return isinstance(event, dict) and event.get("source") == "aws.events" and "detail-type" in event


def models_with_default_alias() -> list[str]:
    """Every model with the default alias (a model whose aliases cannot be read is listed, and logged)."""
    return models_with_alias(
        registry(), settings.default_alias, lambda name: logger.exception("aliases not readable", extra={"model": name})
    )


def report_urls(result: QualityCheckResult) -> dict[str, str]:
    return {kind: f"s3://{settings.monitoring_bucket}/{key}" for kind, key in result.report_keys.items()}


def metric_name(prefix: str, name: str) -> str:
    """Realized/Estimated + the metric in CamelCase: roc_auc -> RealizedRocAuc."""
    return prefix + "".join(part.capitalize() for part in name.split("_"))


def record_check(result: QualityCheckResult, summary: dict[str, Any]) -> None:
    """The check's metrics, with their own dimension set (model, version), flushed at once. Undefined metrics (too
    few labels, one class) are left out rather than sent as 0."""
    check_metrics = EphemeralMetrics()
    check_metrics.add_dimension(name="model", value=result.model)
    check_metrics.add_dimension(name="version", value=result.version)
    check_metrics.add_metric(name="LabeledRows", unit=MetricUnit.Count, value=summary["labeled_rows"])
    if result.document["join"]["labels"]:
        check_metrics.add_metric(name="JoinRate", unit=MetricUnit.Percent, value=100 * summary["join_rate"])
    check_metrics.add_metric(name="QualityVerdict", unit=MetricUnit.Count, value=int(result.verdict == DEGRADED))
    check_metrics.add_metric(name="ModelDegraded", unit=MetricUnit.Count, value=int(result.model_degraded))
    check_metrics.add_metric(name="EstimatedDegraded", unit=MetricUnit.Count, value=int(result.estimated_degraded))
    check_metrics.add_metric(name="SegmentGapsFlagged", unit=MetricUnit.Count, value=len(summary["segments_flagged"]))
    for prefix, section in (("Realized", summary["metrics"]), ("Estimated", summary["estimated_metrics"])):
        for name, values in section.items():
            if values["value"] is not None:
                check_metrics.add_metric(name=metric_name(prefix, name), unit=MetricUnit.NoUnit, value=values["value"])
    check_metrics.flush_metrics()


def publish_degraded(detail: dict[str, Any]) -> str:
    """Put one PerformanceDegraded event on the bus; returns its event id."""
    return aws.put_event(settings.event_bus, EVENT_SOURCE, EVENT_DETAIL_TYPE, detail)


def _failed(model: str, code: str, message: str) -> dict[str, Any]:
    failure_metrics = EphemeralMetrics()
    failure_metrics.add_dimension(name="model", value=model)
    failure_metrics.add_metric(name="QualityCheckFailed", unit=MetricUnit.Count, value=1)
    failure_metrics.flush_metrics()
    return {"model": model, "status": "failed", "error": {"code": code, "message": message}}


@tracer.capture_method
def check_model(model: str, window: Window, alias: str) -> dict[str, Any]:
    """One model's check as a summary entry; a failure is an entry too, never an exception."""
    try:
        result = run_quality_check(
            model,
            registry=registry(),
            data_bucket=settings.monitoring_bucket,
            window=window,
            alias=alias,
            verifier=CardVerifier(settings.signing_key_id),
            lookback_days=settings.lookback_days,
            config=degradation_config(),
            history_windows=settings.history_windows,
        )
    except SklambdaError as e:
        logger.error("quality check failed", extra={"model": model, "code": e.code, "reason": e.message})
        return _failed(model, e.code, e.message)
    except Exception as e:  # an AWS or data error on one model must not hide the others' checks
        logger.exception("quality check failed unexpectedly", extra={"model": model})
        return _failed(model, "internal", f"{type(e).__name__}: {e}")
    summary = {**result.to_dict(), "status": "checked", "report_urls": report_urls(result)}
    log = {"model": model, "version": result.version, "verdict": result.verdict, "labeled": summary["labeled_rows"]}
    try:
        record_check(result, summary)
    except Exception:  # the reports are written: a metric that cannot be emitted must not turn the check into a failure
        logger.exception("quality check metrics not emitted", extra=log)
    if result.page_error:
        logger.warning("quality page not updated", extra={**log, "reason": result.page_error})
    if result.model_degraded:
        try:
            summary["event_id"] = publish_degraded(summary)
        except Exception:
            logger.exception("PerformanceDegraded event not delivered", extra=log)
            metrics.add_metric(name="QualityEventFailed", unit=MetricUnit.Count, value=1)
            summary["event_id"] = None
        logger.warning("model degraded", extra={**log, "degraded_metrics": summary["degraded_metrics"]})
    else:
        logger.info("quality checked", extra=log)
    return summary


def run(event: Any, now: datetime) -> dict[str, Any]:
    if is_scheduled(event):
        models, alias = models_with_default_alias(), settings.default_alias
        window = Window.ending(now, settings.window_hours)
    else:
        try:
            request = QualityCheckRequest.model_validate(event)
        except ValidationError as e:
            errors = [
                # pydantic prefixes a validator's own message with "Value error, ": the message is ours, keep it plain
                {"field": ".".join(map(str, err["loc"])) or None, "message": err["msg"].removeprefix("Value error, ")}
                for err in e.errors()
            ]
            logger.warning("invalid quality check request", extra={"errors": errors})
            return {"status": "invalid_request", "error": {"code": "malformed_request", "errors": errors}}
        models, window = [request.model], request.window(now, settings.window_hours)
        alias = request.alias or settings.default_alias
    results = [check_model(model, window, alias) for model in models]
    failed = sum(r["status"] == "failed" for r in results)
    return {
        "status": "failed" if failed and failed == len(results) else "ok",
        "window": window_bounds(window),
        "checked": len(results) - failed,
        "failed": failed,
        "degraded": [r["model"] for r in results if r.get("model_degraded")],
        "results": results,
    }


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(raise_on_empty_metrics=False)
def handler(event: dict, context: LambdaContext) -> dict:
    return run(event, datetime.now(UTC))
