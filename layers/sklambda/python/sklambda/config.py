"""Environment variable names (the only place they are spelled) and the settings read from them.

A missing required value raises ConfigurationError at start; optional values have documented defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from sklambda.errors import ConfigurationError

# Names of environment variables read by the runtime.
MODEL_BUCKET = "SKLAMBDA_MODEL_BUCKET"
SIGNING_KEY_ID = "SKLAMBDA_SIGNING_KEY_ID"
DEFAULT_ALIAS = "SKLAMBDA_DEFAULT_ALIAS"
ALIAS_TTL_SECONDS = "SKLAMBDA_ALIAS_TTL_SECONDS"
MAX_ROWS = "SKLAMBDA_MAX_ROWS"
MAX_BODY_BYTES = "SKLAMBDA_MAX_BODY_BYTES"
MODEL_CACHE_SIZE = "SKLAMBDA_MODEL_CACHE_SIZE"
PRELOAD_MODELS = "SKLAMBDA_PRELOAD_MODELS"
# Set only by the local stack (boto3 reads it natively); never set in the cloud.
AWS_ENDPOINT_URL = "AWS_ENDPOINT_URL"

DEFAULTS = {
    DEFAULT_ALIAS: "production",
    ALIAS_TTL_SECONDS: "60",
    MAX_ROWS: "1000",
    MAX_BODY_BYTES: str(1024 * 1024),
    MODEL_CACHE_SIZE: "4",
    PRELOAD_MODELS: "",
}


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"required environment variable {name} is not set")
    return value


def _number(env: Mapping[str, str], name: str, kind: type, minimum: float) -> int | float:
    raw = env.get(name, DEFAULTS[name]).strip() or DEFAULTS[name]
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigurationError(f"environment variable {name}={raw!r} is not a valid {kind.__name__}") from None
    if value < minimum:
        raise ConfigurationError(f"environment variable {name}={raw!r} must be at least {minimum}")
    return value


@dataclass(frozen=True)
class ServingSettings:
    """What the predict function needs; read once per container."""

    model_bucket: str
    signing_key_id: str
    default_alias: str = "production"
    alias_ttl_seconds: float = 60.0
    max_rows: int = 1000
    max_body_bytes: int = 1024 * 1024
    model_cache_size: int = 4
    preload_models: tuple[str, ...] = ()
    max_explain_rows: int = 100

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServingSettings:
        env = os.environ if env is None else env
        preload = env.get(PRELOAD_MODELS, DEFAULTS[PRELOAD_MODELS])
        return cls(
            model_bucket=_required(env, MODEL_BUCKET),
            signing_key_id=_required(env, SIGNING_KEY_ID),
            default_alias=env.get(DEFAULT_ALIAS, "").strip() or DEFAULTS[DEFAULT_ALIAS],
            alias_ttl_seconds=float(_number(env, ALIAS_TTL_SECONDS, float, 0)),
            max_rows=int(_number(env, MAX_ROWS, int, 1)),
            max_body_bytes=int(_number(env, MAX_BODY_BYTES, int, 1)),
            model_cache_size=int(_number(env, MODEL_CACHE_SIZE, int, 1)),
            preload_models=tuple(n.strip() for n in preload.split(",") if n.strip()),
            max_explain_rows=int(_number(env, MAX_EXPLAIN_ROWS, int, 1)),
        )


# ?explain=true costs up to ~20 ms per row (a 100-tree forest): fewer rows per request keep it inside API
# Gateway's 29 s. Added after the serving settings so the names above stay untouched.
MAX_EXPLAIN_ROWS = "SKLAMBDA_MAX_EXPLAIN_ROWS"
DEFAULTS[MAX_EXPLAIN_ROWS] = "100"


# Batch scoring of files uploaded to S3 (sklambda.batch). Added after the serving settings so the names above
# stay untouched; the defaults join the same DEFAULTS table.
BATCH_DATA_BUCKET = "SKLAMBDA_BATCH_DATA_BUCKET"
BATCH_CHUNK_ROWS = "SKLAMBDA_BATCH_CHUNK_ROWS"
BATCH_MAX_LINE_BYTES = "SKLAMBDA_BATCH_MAX_LINE_BYTES"
BATCH_REJECT_THRESHOLD = "SKLAMBDA_BATCH_REJECT_THRESHOLD"
BATCH_PART_BYTES = "SKLAMBDA_BATCH_PART_BYTES"
BATCH_CHUNK_BYTES = "SKLAMBDA_BATCH_CHUNK_BYTES"

DEFAULTS.update(
    {
        BATCH_DATA_BUCKET: "",
        BATCH_CHUNK_ROWS: "50000",
        BATCH_MAX_LINE_BYTES: str(1024 * 1024),
        BATCH_REJECT_THRESHOLD: "0.10",
        BATCH_PART_BYTES: str(8 * 1024 * 1024),
        BATCH_CHUNK_BYTES: str(256 * 1024 * 1024),
    }
)
# S3 multipart uploads: every part but the last must be at least 5 MiB.
MIN_PART_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class BatchSettings:
    """What the batch engine needs; read once per container.

    data_bucket: where scored/, errors/ and tmp/ go; None means the bucket the input came from.
    chunk_rows: rows validated and scored together (bounds memory, not output).
    max_line_bytes: a row longer than this is rejected without being read into memory beyond it.
    reject_threshold: a job whose share of rejected rows is above this fails (a model card tag
        `batch_reject_threshold` overrides it per model).
    part_bytes: size of the multipart-upload parts written (at least 5 MiB).
    chunk_bytes: target size of the byte ranges plan_chunks cuts a large uncompressed file into.
    """

    data_bucket: str | None = None
    default_alias: str = "production"
    chunk_rows: int = 50_000
    max_line_bytes: int = 1024 * 1024
    reject_threshold: float = 0.10
    part_bytes: int = 8 * 1024 * 1024
    chunk_bytes: int = 256 * 1024 * 1024
    max_raw_bytes: int = 10 * 1024

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BatchSettings:
        env = os.environ if env is None else env
        threshold = float(_number(env, BATCH_REJECT_THRESHOLD, float, 0))
        if threshold > 1:
            raise ConfigurationError(f"environment variable {BATCH_REJECT_THRESHOLD}={threshold} must be at most 1")
        return cls(
            data_bucket=env.get(BATCH_DATA_BUCKET, "").strip() or None,
            default_alias=env.get(DEFAULT_ALIAS, "").strip() or DEFAULTS[DEFAULT_ALIAS],
            chunk_rows=int(_number(env, BATCH_CHUNK_ROWS, int, 1)),
            max_line_bytes=int(_number(env, BATCH_MAX_LINE_BYTES, int, 1024)),
            reject_threshold=threshold,
            part_bytes=int(_number(env, BATCH_PART_BYTES, int, MIN_PART_BYTES)),
            chunk_bytes=int(_number(env, BATCH_CHUNK_BYTES, int, MIN_PART_BYTES)),
        )


# Read only by the batch handlers (fan-out and idempotency are AWS plumbing, not scoring).
BATCH_FANOUT_BYTES = "SKLAMBDA_BATCH_FANOUT_BYTES"
BATCH_FANOUT_MAX_CONCURRENCY = "SKLAMBDA_BATCH_FANOUT_MAX_CONCURRENCY"
BATCH_IDEMPOTENCY_TABLE = "SKLAMBDA_BATCH_IDEMPOTENCY_TABLE"
BATCH_STATE_MACHINE_ARN = "SKLAMBDA_BATCH_STATE_MACHINE_ARN"
DEFAULTS.update({BATCH_FANOUT_BYTES: str(256 * 1024 * 1024), BATCH_FANOUT_MAX_CONCURRENCY: "20"})


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
        return cls(
            idempotency_table=_required(env, BATCH_IDEMPOTENCY_TABLE),
            state_machine_arn=_required(env, BATCH_STATE_MACHINE_ARN),
            threshold_bytes=int(_number(env, BATCH_FANOUT_BYTES, int, 1)),
            max_concurrency=int(_number(env, BATCH_FANOUT_MAX_CONCURRENCY, int, 1)),
        )


# Prediction capture (monitoring.capture). Capture is on when the wrapped pseudonymization key is given (a capture
# that could write raw identifiers is never started) and the sample rate is above 0. Records are written to the
# function's log as JSON lines; a CloudWatch Logs subscription filter sends them to the capture Firehose stream.
CAPTURE_SAMPLE_RATE = "SKLAMBDA_CAPTURE_SAMPLE_RATE"
PSEUDONYM_KEY_CIPHERTEXT = "SKLAMBDA_PSEUDONYM_KEY_CIPHERTEXT"
# Batch scoring captures a sample of rows (not of jobs): this share of each job's scored rows, at most this many.
BATCH_CAPTURE_SAMPLE_RATE = "SKLAMBDA_BATCH_CAPTURE_SAMPLE_RATE"
BATCH_CAPTURE_MAX_ROWS = "SKLAMBDA_BATCH_CAPTURE_MAX_ROWS"
DEFAULTS.update({CAPTURE_SAMPLE_RATE: "1.0", BATCH_CAPTURE_SAMPLE_RATE: "0.01", BATCH_CAPTURE_MAX_ROWS: "10000"})
# The KMS encryption context the pseudonymization data key is wrapped under; the key policy and the function's IAM
# policy allow kms:Decrypt on the DataKey outside S3 only with this context.
PSEUDONYM_KEY_CONTEXT = {"sklambda:purpose": "pseudonymization"}
# Where Firehose delivers captured predictions (in the data bucket): capture/model=<name>/dt=<yyyy-MM-dd>/...
CAPTURE_PREFIX = "capture/"


@dataclass(frozen=True)
class CaptureSettings:
    """Prediction capture; read once per container. `key_ciphertext` None means capture is off.

    sample_rate: share of requests (predict) or rows (batch) captured. max_rows: at most this many rows per call
    (per batch job), None for no limit.
    """

    sample_rate: float = 1.0
    key_ciphertext: str | None = None
    max_rows: int | None = None

    @property
    def enabled(self) -> bool:
        return self.key_ciphertext is not None and self.sample_rate > 0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CaptureSettings:
        """The predict function's capture: a share of requests, every row of a sampled request."""
        env = os.environ if env is None else env
        return cls(sample_rate=_rate(env, CAPTURE_SAMPLE_RATE), key_ciphertext=_ciphertext(env))

    @classmethod
    def batch_from_env(cls, env: Mapping[str, str] | None = None) -> CaptureSettings:
        """Batch scoring's capture: a share of each job's rows, capped."""
        env = os.environ if env is None else env
        return cls(
            sample_rate=_rate(env, BATCH_CAPTURE_SAMPLE_RATE),
            key_ciphertext=_ciphertext(env),
            max_rows=int(_number(env, BATCH_CAPTURE_MAX_ROWS, int, 0)),
        )


def _rate(env: Mapping[str, str], name: str) -> float:
    rate = float(_number(env, name, float, 0))
    if rate > 1:
        raise ConfigurationError(f"environment variable {name}={rate} must be at most 1")
    return rate


def _ciphertext(env: Mapping[str, str]) -> str | None:
    return env.get(PSEUDONYM_KEY_CIPHERTEXT, "").strip() or None


# The scheduled drift check (sklambda.monitoring.drift_check). The registry settings (MODEL_BUCKET, SIGNING_KEY_ID,
# DEFAULT_ALIAS) are shared with serving; these name where captures and reports live and where alerts go.
MONITORING_BUCKET = "SKLAMBDA_MONITORING_BUCKET"
DRIFT_WINDOW_HOURS = "SKLAMBDA_DRIFT_WINDOW_HOURS"
DRIFT_EVENT_BUS = "SKLAMBDA_DRIFT_EVENT_BUS"
# Above this many captured rows in a window, a uniform sample of this size is decoded and compared (decoding JSON
# is most of a large check's time; 50,000 rows estimate every statistic far more finely than the thresholds).
DRIFT_MAX_ROWS = "SKLAMBDA_DRIFT_MAX_ROWS"
DEFAULTS.update({DRIFT_WINDOW_HOURS: "24", DRIFT_EVENT_BUS: "default", DRIFT_MAX_ROWS: "50000"})


@dataclass(frozen=True)
class DriftCheckSettings:
    """What the drift check function needs; read once per container.

    monitoring_bucket: the data bucket holding capture/ (read) and reports/drift/ (written).
    window_hours: length of the window of captured predictions each check compares with the baseline.
    event_bus: name or ARN of the EventBridge bus a DriftDetected event is put on.
    """

    model_bucket: str
    signing_key_id: str
    monitoring_bucket: str
    default_alias: str = "production"
    window_hours: float = 24.0
    event_bus: str = "default"
    max_rows: int = 50_000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DriftCheckSettings:
        env = os.environ if env is None else env
        hours = float(_number(env, DRIFT_WINDOW_HOURS, float, 0))
        if hours <= 0:
            raise ConfigurationError(f"environment variable {DRIFT_WINDOW_HOURS}={hours} must be above 0")
        return cls(
            model_bucket=_required(env, MODEL_BUCKET),
            signing_key_id=_required(env, SIGNING_KEY_ID),
            monitoring_bucket=_required(env, MONITORING_BUCKET),
            default_alias=env.get(DEFAULT_ALIAS, "").strip() or DEFAULTS[DEFAULT_ALIAS],
            window_hours=hours,
            event_bus=env.get(DRIFT_EVENT_BUS, "").strip() or DEFAULTS[DRIFT_EVENT_BUS],
            max_rows=int(_number(env, DRIFT_MAX_ROWS, int, 1)),
        )
