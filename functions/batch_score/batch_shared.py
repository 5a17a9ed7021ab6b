"""What the two batch handlers share: the model server and the capturer (one each per container), job metrics.

Settings: each handler module reads its function's class at import (sklambda.config.BatchScoreSettings for the SQS
handler, BatchChunkSettings for the fan-out tasks) and passes it to `configure`; nothing here reads the environment.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from sklambda.batch import SUCCEEDED, SUPERSEDED, JobSummary
from sklambda.config import BatchChunkSettings
from sklambda.monitoring.capture import Capturer, JobCapture
from sklambda.registry.signing import CardVerifier
from sklambda.registry.store import Registry
from sklambda.serving.server import ModelServer

logger = Logger()
_settings: BatchChunkSettings | None = None
_server: ModelServer | None = None
capturer: Capturer | None = None
_NOT_CONFIGURED = "batch_shared.configure(settings) was not called by the handler module"


def configure(settings: BatchChunkSettings) -> None:
    """Use the function's settings (each handler module calls this once, at import): capture (off without the
    pseudonymization key) is set up now, the model server on first use."""
    global _settings, _server, capturer
    _settings, _server, capturer = settings, None, Capturer(settings.capture)


def server() -> ModelServer:
    """One per container, created on first use (so tests can start moto before it)."""
    global _server
    if _server is None:
        if _settings is None:
            raise RuntimeError(_NOT_CONFIGURED)
        _server = ModelServer(
            Registry(_settings.model_bucket),
            CardVerifier(_settings.signing_key_id),
            alias_ttl_seconds=_settings.alias_ttl_seconds,
            cache_size=_settings.model_cache_size,
        )
    return _server


def record_job(summary: JobSummary) -> None:
    """The job's metrics (EMF, dimensions model and version) and one log line with its outcome: RowsScored...
    for a succeeded job, FailedJobs for a failed or crashed one, SupersededJobs for a superseded one."""
    metrics = EphemeralMetrics()  # its own dimension set per job, flushed at once
    metrics.add_dimension(name="model", value=summary.model_name)
    metrics.add_dimension(name="version", value=summary.model_version or "unknown")
    metrics.add_metric(name="RowsRejected", unit=MetricUnit.Count, value=summary.rows_rejected)
    # Per check in the summary; one total here (EphemeralMetrics shares one dimension set per flush).
    metrics.add_metric(
        name="DataQualityWarnings", unit=MetricUnit.Count, value=sum(summary.data_quality_warnings.values())
    )
    if summary.status == SUCCEEDED:
        metrics.add_metric(name="RowsScored", unit=MetricUnit.Count, value=summary.rows_scored)
        metrics.add_metric(name="RowsPerSecond", unit=MetricUnit.CountPerSecond, value=summary.rows_per_second)
        metrics.add_metric(name="JobDuration", unit=MetricUnit.Seconds, value=summary.duration_seconds)
    elif summary.status == SUPERSEDED:
        metrics.add_metric(name="SupersededJobs", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="FailedJobs", unit=MetricUnit.Count, value=1)
    metrics.flush_metrics()
    extra = {
        "status": summary.status,
        "model": summary.model_name,
        "model_version": summary.model_version,
        "rows_read": summary.rows_read,
        "rows_scored": summary.rows_scored,
        "rows_rejected": summary.rows_rejected,
        "chunks": summary.chunks,
        "seconds": round(summary.duration_seconds, 3),
        "summary_key": summary.summary_key,
    }
    if summary.status == SUCCEEDED:
        logger.info("batch job scored", extra=extra)
    elif summary.status == SUPERSEDED:
        logger.warning(
            "batch job superseded: a newer upload of the key is already published; nothing was published",
            extra={**extra, "sequencer": summary.input_sequencer, "superseded_by": summary.superseded_by},
        )
    else:
        logger.warning("batch job failed", extra={**extra, "reason": summary.failure_reason, "report": summary.report})


def job_capture(job_id: str) -> JobCapture | None:
    """The observer that captures a sample of this job's scored rows, or None when capture is off."""
    if capturer is None:
        raise RuntimeError(_NOT_CONFIGURED)
    return JobCapture(capturer, job_id) if capturer.enabled else None


def record_capture(capture: JobCapture | None) -> None:
    """CapturedRecords / CaptureFailures of one job or chunk (a capture failure never fails the job)."""
    if capture is None or not capture.outcome.sampled:
        return
    metrics = EphemeralMetrics()
    metrics.add_dimension(name="model", value=capture.model or "unknown")
    metrics.add_dimension(name="version", value=capture.version or "unknown")
    metrics.add_metric(name="CapturedRecords", unit=MetricUnit.Count, value=capture.outcome.sent)
    if capture.outcome.failed:
        metrics.add_metric(name="CaptureFailures", unit=MetricUnit.Count, value=capture.outcome.failed)
        logger.warning(
            "capture failed", extra={"records": capture.outcome.failed, "errors": capture.outcome.errors[:3]}
        )
    metrics.flush_metrics()
