"""Drift check: compare recent captured predictions with each production model's baseline, alert on drift.

Two events (both in events/):
- the EventBridge scheduled event of DriftCheckFunction's Schedule: every model that has the default alias;
- an on-demand invocation `{"model": "churn", "window_hours": 24, "end": "<iso>"}` (window_hours and end
  optional): that model only. It is validated here, at the edge; a bad one returns an `invalid_request` result.

Per model, monitoring.drift_check.run_drift_check reads the window from capture/, keeps the consecutive-window state
and writes reports/drift/<model>/<window end>.json|.html and the model's monitoring page
reports/drift/<model>/index.html (its last SKLAMBDA_DRIFT_HISTORY_WINDOWS windows). This handler emits its EMF
metrics (namespace from POWERTOOLS_METRICS_NAMESPACE, dimensions model and version: DriftedFeatures, RowsInWindow,
DriftVerdict, ModelDrifted) and, when the model is drifted (a shift that persisted over consecutive windows), puts a
`DriftDetected` event (source sklambda.monitoring) on the configured bus. A model that cannot be checked (unknown,
refused card...) is logged and counted (DriftCheckFailed) and does not stop the others.

Settings: sklambda.config.DriftCheckSettings.
"""

from __future__ import annotations

import warnings
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from sklambda import aws, tracing
from sklambda.config import DriftCheckSettings
from sklambda.errors import SklambdaError
from sklambda.monitoring.drift_check import DriftCheckResult, run_drift_check, window_bounds
from sklambda.monitoring.requests import OnDemandCheck, models_with_alias
from sklambda.monitoring.windows import Window
from sklambda.registry.signing import CardVerifier
from sklambda.registry.store import Registry

logger = Logger()
tracer = tracing.tracer()
metrics = Metrics()
# Every metric here is emitted with its own dimensions (per model), none on the handler's batch: powertools would
# warn at each invocation that the batch is empty.
warnings.filterwarnings("ignore", message="No application metrics to publish")

EVENT_SOURCE = "sklambda.monitoring"
EVENT_DETAIL_TYPE = "DriftDetected"

# Read at import so a missing variable fails the cold start loudly instead of the first check.
settings = DriftCheckSettings.from_env()
_registry: Registry | None = None


def registry() -> Registry:
    """One per container, created on first use (so tests can start moto before it)."""
    global _registry
    if _registry is None:
        _registry = Registry(settings.model_bucket)
    return _registry


class DriftCheckRequest(OnDemandCheck):
    """An on-demand check of one model (model, window_hours, end)."""


def is_scheduled(event: Any) -> bool:
    return isinstance(event, dict) and event.get("source") == "aws.events" and "detail-type" in event


def models_with_default_alias() -> list[str]:
    """Every model with the default alias (a model whose aliases cannot be read is listed, and logged)."""
    return models_with_alias(
        registry(), settings.default_alias, lambda name: logger.exception("aliases not readable", extra={"model": name})
    )


def report_urls(result: DriftCheckResult) -> dict[str, str]:
    return {kind: f"s3://{settings.monitoring_bucket}/{key}" for kind, key in result.report_keys.items()}


def record_check(result: DriftCheckResult) -> None:
    """The check's metrics, with their own dimension set (model, version), flushed at once."""
    check_metrics = EphemeralMetrics()
    check_metrics.add_dimension(name="model", value=result.model)
    check_metrics.add_dimension(name="version", value=result.version)
    check_metrics.add_metric(name="DriftedFeatures", unit=MetricUnit.Count, value=len(result.report.drifted_features))
    check_metrics.add_metric(name="RowsInWindow", unit=MetricUnit.Count, value=result.report.rows)
    check_metrics.add_metric(
        name="DriftVerdict", unit=MetricUnit.Count, value=1 if result.report.verdict == "drift" else 0
    )
    check_metrics.add_metric(name="ModelDrifted", unit=MetricUnit.Count, value=1 if result.model_drifted else 0)
    check_metrics.add_metric(name="QuarantinedRecords", unit=MetricUnit.Count, value=result.quarantined_records)
    check_metrics.flush_metrics()


def publish_drift(detail: dict[str, Any]) -> str:
    """Put one DriftDetected event on the bus; returns its event id."""
    return aws.put_event(settings.event_bus, EVENT_SOURCE, EVENT_DETAIL_TYPE, detail)


def _failed(model: str, code: str, message: str) -> dict[str, Any]:
    failure_metrics = EphemeralMetrics()
    failure_metrics.add_dimension(name="model", value=model)
    failure_metrics.add_metric(name="DriftCheckFailed", unit=MetricUnit.Count, value=1)
    failure_metrics.flush_metrics()
    return {"model": model, "status": "failed", "error": {"code": code, "message": message}}


@tracer.capture_method
def check_model(model: str, window: Window) -> dict[str, Any]:
    """One model's check as a summary entry; a failure is an entry too, never an exception."""
    try:
        result = run_drift_check(
            model,
            registry=registry(),
            data_bucket=settings.monitoring_bucket,
            window=window,
            alias=settings.default_alias,
            verifier=CardVerifier(settings.signing_key_id),
            max_rows=settings.max_rows,
            history_windows=settings.history_windows,
        )
    except SklambdaError as e:
        logger.error("drift check failed", extra={"model": model, "code": e.code, "reason": e.message})
        return _failed(model, e.code, e.message)
    except Exception as e:  # an AWS or data error on one model must not hide the others' checks
        logger.exception("drift check failed unexpectedly", extra={"model": model})
        return _failed(model, "internal", f"{type(e).__name__}: {e}")
    summary = {**result.to_dict(), "status": "checked", "report_urls": report_urls(result)}
    log = {"model": model, "version": result.version, "verdict": result.report.verdict, "rows": result.report.rows}
    try:
        record_check(result)
    except Exception:  # the reports are written: a metric that cannot be emitted must not turn the check into a failure
        logger.exception("drift check metrics not emitted", extra=log)
    if result.page_error:  # the reports and verdict stand; only the page is stale
        logger.warning("monitoring page not updated", extra={**log, "reason": result.page_error})
    if result.quarantined_records:
        logger.warning(
            "capture records quarantined",
            extra={**log, "quarantined": result.quarantined_records, "reasons": dict(result.quarantine_reasons)},
        )
    if result.model_drifted:
        try:
            summary["event_id"] = publish_drift(summary)
        except Exception:
            logger.exception("DriftDetected event not delivered", extra=log)
            metrics.add_metric(name="DriftEventFailed", unit=MetricUnit.Count, value=1)
            summary["event_id"] = None
        logger.warning("model drifted", extra={**log, "drifted_features": list(result.report.drifted_features)})
    else:
        logger.info("drift checked", extra=log)
    return summary


def run(event: Any, now: datetime) -> dict[str, Any]:
    if is_scheduled(event):
        models = models_with_default_alias()
        window = Window.ending(now, settings.window_hours)
    else:
        try:
            request = DriftCheckRequest.model_validate(event)
        except ValidationError as e:
            errors = [
                # pydantic prefixes a validator's own message with "Value error, ": the message is ours, keep it plain
                {"field": ".".join(map(str, err["loc"])) or None, "message": err["msg"].removeprefix("Value error, ")}
                for err in e.errors()
            ]
            logger.warning("invalid drift check request", extra={"errors": errors})
            return {"status": "invalid_request", "error": {"code": "malformed_request", "errors": errors}}
        models, window = [request.model], request.window(now, settings.window_hours)
    results = [check_model(model, window) for model in models]
    failed = sum(r["status"] == "failed" for r in results)
    return {
        "status": "failed" if failed and failed == len(results) else "ok",
        "window": window_bounds(window),
        "checked": len(results) - failed,
        "failed": failed,
        "drifted": [r["model"] for r in results if r.get("model_drifted")],
        "results": results,
    }


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(raise_on_empty_metrics=False)
def handler(event: dict, context: LambdaContext) -> dict:
    return run(event, datetime.now(UTC))
