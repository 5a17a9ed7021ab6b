"""What the two batch handlers share: their own settings, the model server (one per container), job metrics.

The engine's settings (data bucket, reject threshold, chunk sizes) are sklambda.config.BatchSettings; the names
below are read only by these handlers (fan-out and idempotency are AWS plumbing, not scoring).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from sklambda.batch import JobSummary
from sklambda.config import ServingSettings
from sklambda.errors import ConfigurationError
from sklambda.registry import Registry
from sklambda.serving import ModelServer
from sklambda.signing import CardVerifier

# Names of the environment variables only the batch handlers read.
FANOUT_BYTES = "SKLAMBDA_BATCH_FANOUT_BYTES"
FANOUT_MAX_CONCURRENCY = "SKLAMBDA_BATCH_FANOUT_MAX_CONCURRENCY"
IDEMPOTENCY_TABLE = "SKLAMBDA_BATCH_IDEMPOTENCY_TABLE"
STATE_MACHINE_ARN = "SKLAMBDA_BATCH_STATE_MACHINE_ARN"
DEFAULTS = {FANOUT_BYTES: str(256 * 1024 * 1024), FANOUT_MAX_CONCURRENCY: "20"}

logger = Logger()
_server: ModelServer | None = None


@dataclass(frozen=True)
class FanOutSettings:
    """What the SQS handler needs besides BatchSettings; read once per container."""

    idempotency_table: str
    state_machine_arn: str
    threshold_bytes: int = 256 * 1024 * 1024
    max_concurrency: int = 20

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> FanOutSettings:
        env = os.environ if env is None else env
        values = {}
        for name in (IDEMPOTENCY_TABLE, STATE_MACHINE_ARN):
            values[name] = env.get(name, "").strip()
            if not values[name]:
                raise ConfigurationError(f"required environment variable {name} is not set")
        numbers = {}
        for name in (FANOUT_BYTES, FANOUT_MAX_CONCURRENCY):
            raw = env.get(name, "").strip() or DEFAULTS[name]
            try:
                numbers[name] = int(raw)
            except ValueError:
                raise ConfigurationError(f"environment variable {name}={raw!r} is not a valid int") from None
            if numbers[name] < 1:
                raise ConfigurationError(f"environment variable {name}={raw!r} must be at least 1")
        return cls(
            idempotency_table=values[IDEMPOTENCY_TABLE],
            state_machine_arn=values[STATE_MACHINE_ARN],
            threshold_bytes=numbers[FANOUT_BYTES],
            max_concurrency=numbers[FANOUT_MAX_CONCURRENCY],
        )


def server() -> ModelServer:
    """One per container, created on first use (so tests can start moto before it)."""
    global _server
    if _server is None:
        settings = ServingSettings.from_env()
        _server = ModelServer(
            Registry(settings.model_bucket),
            CardVerifier(settings.signing_key_id),
            alias_ttl_seconds=settings.alias_ttl_seconds,
            cache_size=settings.model_cache_size,
        )
    return _server


def record_job(summary: JobSummary) -> None:
    """The job's metrics (EMF, dimensions model and version) and one log line with its outcome."""
    metrics = EphemeralMetrics()  # its own dimension set per job, flushed at once
    metrics.add_dimension(name="model", value=summary.model_name)
    metrics.add_dimension(name="version", value=summary.model_version or "unknown")
    metrics.add_metric(name="RowsRejected", unit=MetricUnit.Count, value=summary.rows_rejected)
    if summary.status == "succeeded":
        metrics.add_metric(name="RowsScored", unit=MetricUnit.Count, value=summary.rows_scored)
        metrics.add_metric(name="RowsPerSecond", unit=MetricUnit.CountPerSecond, value=summary.rows_per_second)
        metrics.add_metric(name="JobDuration", unit=MetricUnit.Seconds, value=summary.duration_seconds)
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
    if summary.status == "succeeded":
        logger.info("batch job scored", extra=extra)
    else:
        logger.warning("batch job failed", extra={**extra, "reason": summary.failure_reason, "report": summary.report})
