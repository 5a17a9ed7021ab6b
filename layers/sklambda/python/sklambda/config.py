"""Environment variable names (the only place they are spelled) and one settings class per function.

Each Lambda function reads one class once, at import, so a missing or malformed value fails the cold start with
ConfigurationError naming the variable instead of failing the first request:

    predict                         PredictSettings       (functions/predict/app.py)
    batch scoring, SQS side         BatchScoreSettings    (functions/batch_score/app.py)
    batch scoring, fan-out chunks   BatchChunkSettings    (functions/batch_score/fanout.py)
    scheduled drift check           DriftCheckSettings    (functions/drift_check/app.py)
    ground truth (route and files)  FeedbackSettings      (functions/feedback/app.py)
    scheduled model-quality check   QualityCheckSettings  (functions/quality_check/app.py)
    canary rollback, shadow reports RolloutCheckSettings  (functions/rollout_check/app.py)
    retraining steps but training   RetrainSettings       (functions/retrain/app.py)
    retraining's training step      TrainSettings         (functions/retrain/train.py)

A field declared with `setting(NAME, default)` is read from the variable NAME; its default is the field's default
and nowhere else (a variable that is unset, empty or blank takes it), and a field declared without a default is
required. A field whose type is itself a settings class (a part: the batch engine's `BatchSettings`, capture's
`CaptureSettings`, fan-out's `FanOutSettings`) is read by that class from the same environment. Values are
validated where they are read from the environment; building a class directly (tests, benchmarks) checks nothing.
template.yaml sets these variables per function; tests/infra/test_template.py checks that every variable it sets
is read here, that every required one is set, and that its defaults are these.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from sklambda.errors import ConfigurationError

# --- names of the environment variables the runtime reads ----------------------------------------------------------
# Where the model registry lives and which KMS key its cards must be signed with (every function that loads models).
MODEL_BUCKET = "SKLAMBDA_MODEL_BUCKET"
SIGNING_KEY_ID = "SKLAMBDA_SIGNING_KEY_ID"
DEFAULT_ALIAS = "SKLAMBDA_DEFAULT_ALIAS"
# The model server: how long an alias → version answer is trusted, how many loaded models a container keeps.
ALIAS_TTL_SECONDS = "SKLAMBDA_ALIAS_TTL_SECONDS"
MODEL_CACHE_SIZE = "SKLAMBDA_MODEL_CACHE_SIZE"
# The predict API's limits, and the models it loads before SnapStart's snapshot.
MAX_ROWS = "SKLAMBDA_MAX_ROWS"
MAX_BODY_BYTES = "SKLAMBDA_MAX_BODY_BYTES"
MAX_EXPLAIN_ROWS = "SKLAMBDA_MAX_EXPLAIN_ROWS"
PRELOAD_MODELS = "SKLAMBDA_PRELOAD_MODELS"
# What serves a version published with a compiled artifact: SERVING_COMPILED (the compiled evaluator, the default) or
# SERVING_SCIKIT_LEARN (always the unpickled estimator: the CompiledServing stack parameter, for an operator who wants
# the scikit-learn path back without republishing).
SERVING_RUNTIME = "SKLAMBDA_SERVING_RUNTIME"
SERVING_COMPILED, SERVING_SCIKIT_LEARN = "compiled", "scikit-learn"
# Set only by the local stack (boto3 reads it natively); never set in the cloud.
AWS_ENDPOINT_URL = "AWS_ENDPOINT_URL"
# Set by Lambda itself (and by the local stack): the predict function pauses the garbage collector for its cold start
# only there (sklambda.coldstart).
LAMBDA_FUNCTION_NAME = "AWS_LAMBDA_FUNCTION_NAME"
# Publisher side only: the target runtime's packages (os.pathsep-separated folders) the parity gate scores in.
RUNTIME_PATH = "SKLAMBDA_RUNTIME_PATH"
# Publisher side only: "false" publishes without trying the compiled evaluator (publish's `compile` default).
COMPILE = "SKLAMBDA_COMPILE"
# powertools' own variable, which sklambda reads too: when it is true the functions create no powertools Tracer and
# never import the X-Ray SDK (sklambda.tracing). template.yaml sets it from the Tracing parameter.
TRACE_DISABLED = "POWERTOOLS_TRACE_DISABLED"

# Batch scoring of files uploaded to S3 (sklambda.batch): the engine's settings.
BATCH_DATA_BUCKET = "SKLAMBDA_BATCH_DATA_BUCKET"
BATCH_CHUNK_ROWS = "SKLAMBDA_BATCH_CHUNK_ROWS"
BATCH_MAX_LINE_BYTES = "SKLAMBDA_BATCH_MAX_LINE_BYTES"
BATCH_REJECT_THRESHOLD = "SKLAMBDA_BATCH_REJECT_THRESHOLD"
BATCH_PART_BYTES = "SKLAMBDA_BATCH_PART_BYTES"
BATCH_CHUNK_BYTES = "SKLAMBDA_BATCH_CHUNK_BYTES"
# Read only by the SQS batch handler (fan-out and idempotency are AWS plumbing, not scoring).
BATCH_FANOUT_BYTES = "SKLAMBDA_BATCH_FANOUT_BYTES"
BATCH_FANOUT_MAX_CONCURRENCY = "SKLAMBDA_BATCH_FANOUT_MAX_CONCURRENCY"
BATCH_IDEMPOTENCY_TABLE = "SKLAMBDA_BATCH_IDEMPOTENCY_TABLE"
BATCH_STATE_MACHINE_ARN = "SKLAMBDA_BATCH_STATE_MACHINE_ARN"

# Prediction capture (monitoring.capture). Capture is on when the wrapped pseudonymization key is given (a capture
# that could write raw identifiers is never started) and the sample rate is above 0. Records are written to the
# function's log as JSON lines; a CloudWatch Logs subscription filter sends them to the capture Firehose stream.
CAPTURE_SAMPLE_RATE = "SKLAMBDA_CAPTURE_SAMPLE_RATE"
PSEUDONYM_KEY_CIPHERTEXT = "SKLAMBDA_PSEUDONYM_KEY_CIPHERTEXT"
# Batch scoring captures a sample of rows (not of jobs): this share of each job's scored rows, at most this many.
BATCH_CAPTURE_SAMPLE_RATE = "SKLAMBDA_BATCH_CAPTURE_SAMPLE_RATE"
BATCH_CAPTURE_MAX_ROWS = "SKLAMBDA_BATCH_CAPTURE_MAX_ROWS"

# The scheduled drift check (sklambda.monitoring.drift_check): where captures and reports live, where alerts go.
MONITORING_BUCKET = "SKLAMBDA_MONITORING_BUCKET"
DRIFT_WINDOW_HOURS = "SKLAMBDA_DRIFT_WINDOW_HOURS"
DRIFT_EVENT_BUS = "SKLAMBDA_DRIFT_EVENT_BUS"
DRIFT_MAX_ROWS = "SKLAMBDA_DRIFT_MAX_ROWS"
DRIFT_HISTORY_WINDOWS = "SKLAMBDA_DRIFT_HISTORY_WINDOWS"

# Ground truth in (sklambda.monitoring.ground_truth.labels): labels per POST /models/{name}/feedback request, and
# labels per stored object when a feedback/ file is split.
FEEDBACK_MAX_LABELS = "SKLAMBDA_FEEDBACK_MAX_LABELS"
FEEDBACK_CHUNK_LABELS = "SKLAMBDA_FEEDBACK_CHUNK_LABELS"

# The scheduled model-quality check (sklambda.monitoring.quality_check): labels joined with captured predictions.
QUALITY_WINDOW_HOURS = "SKLAMBDA_QUALITY_WINDOW_HOURS"
QUALITY_LOOKBACK_DAYS = "SKLAMBDA_QUALITY_LOOKBACK_DAYS"
QUALITY_MIN_LABELED_ROWS = "SKLAMBDA_QUALITY_MIN_LABELED_ROWS"
QUALITY_CONSECUTIVE_WINDOWS = "SKLAMBDA_QUALITY_CONSECUTIVE_WINDOWS"
QUALITY_EVENT_BUS = "SKLAMBDA_QUALITY_EVENT_BUS"
QUALITY_HISTORY_WINDOWS = "SKLAMBDA_QUALITY_HISTORY_WINDOWS"

# The rollout check (sklambda.updating.rollout_check): canary verdicts and automatic rollback, shadow comparisons.
ROLLOUT_EVENT_BUS = "SKLAMBDA_ROLLOUT_EVENT_BUS"
SHADOW_WINDOW_HOURS = "SKLAMBDA_SHADOW_WINDOW_HOURS"
SHADOW_MAX_ROWS = "SKLAMBDA_SHADOW_MAX_ROWS"

# The retraining pipeline (sklambda.updating.retraining): where training-data files are (`<prefix><model>/` in the
# data bucket), which labeled captured rows join them, how many rows a run needs, where its events and approval
# messages go.
RETRAIN_TRAINING_DATA_PREFIX = "SKLAMBDA_RETRAIN_TRAINING_DATA_PREFIX"
RETRAIN_LABEL_DAYS = "SKLAMBDA_RETRAIN_LABEL_DAYS"
RETRAIN_LOOKBACK_DAYS = "SKLAMBDA_RETRAIN_LOOKBACK_DAYS"
RETRAIN_MIN_TRAINING_ROWS = "SKLAMBDA_RETRAIN_MIN_TRAINING_ROWS"
RETRAIN_HOLDOUT_FRACTION = "SKLAMBDA_RETRAIN_HOLDOUT_FRACTION"
RETRAIN_EVENT_BUS = "SKLAMBDA_RETRAIN_EVENT_BUS"
RETRAIN_APPROVAL_TOPIC_ARN = "SKLAMBDA_RETRAIN_APPROVAL_TOPIC_ARN"
# How a run started by a DriftDetected or PerformanceDegraded event rolls out (canary, shadow or none) and whether it
# waits for an approval (true or false) before promoting.
RETRAIN_AUTO_ROLLOUT = "SKLAMBDA_RETRAIN_AUTO_ROLLOUT"
RETRAIN_AUTO_APPROVAL = "SKLAMBDA_RETRAIN_AUTO_APPROVAL"
# Read by the CLI only (`sklambda retrain`): the RetrainStateMachineArn output of a deployed stack.
RETRAIN_STATE_MACHINE_ARN = "SKLAMBDA_RETRAIN_STATE_MACHINE_ARN"

# --- constants that are not settings -------------------------------------------------------------------------------
# S3 multipart uploads: every part but the last must be at least 5 MiB (Amazon S3 User Guide, "Multipart upload
# limits").
MIN_PART_BYTES = 5 * 1024 * 1024
# The KMS encryption context the pseudonymization data key is wrapped under; the key policy and the function's IAM
# policy allow kms:Decrypt on the DataKey outside S3 only with this context.
PSEUDONYM_KEY_CONTEXT = {"sklambda:purpose": "pseudonymization"}
# Where Firehose delivers captured predictions (in the data bucket): capture/model=<name>/dt=<yyyy-MM-dd>/...
CAPTURE_PREFIX = "capture/"
# Where ground-truth labels are stored (in the data bucket): ground-truth/model=<name>/dt=<arrival yyyy-mm-dd>/...
GROUND_TRUTH_PREFIX = "ground-truth/"
# Where the retraining pipeline keeps each run's records, files and report (in the data bucket):
# retraining/<model>/<run id>/... (sklambda.updating.retraining)
RETRAINING_PREFIX = "retraining/"
# Where label files are uploaded (in the data bucket): feedback/<model>/<relative path>.{csv,jsonl}[.gz]
FEEDBACK_PREFIX = "feedback/"


# --- reading -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Variable:
    """How one field is read: the variable's name and the bounds its value must keep (inclusive, `above` not)."""

    name: str
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None

    def read(self, env: Mapping[str, str], kind: Any, default: Any) -> Any:
        raw = env.get(self.name, "").strip()
        if not raw:
            if default is dataclasses.MISSING:
                raise ConfigurationError(f"required environment variable {self.name} is not set")
            return default
        value = self._parse(raw, kind)
        for bound, broken, words in (
            (self.minimum, lambda b: value < b, "at least"),
            (self.maximum, lambda b: value > b, "at most"),
            (self.above, lambda b: value <= b, "above"),
        ):
            if bound is not None and broken(bound):
                raise ConfigurationError(f"environment variable {self.name}={raw!r} must be {words} {bound}")
        return value

    def _parse(self, raw: str, kind: Any) -> Any:
        if typing.get_origin(kind) is tuple:  # tuple[str, ...]: a comma-separated list, blanks dropped
            return tuple(item.strip() for item in raw.split(",") if item.strip())
        # `X | None` is read as X (None is only ever a default).
        (kind,) = [k for k in typing.get_args(kind) if k is not type(None)] or [kind]
        if kind is str:
            return raw
        try:
            return kind(raw)
        except ValueError:
            raise ConfigurationError(
                f"environment variable {self.name}={raw!r} is not a valid {kind.__name__}"
            ) from None


def setting(name: str, default: Any = dataclasses.MISSING, **bounds: float) -> Any:
    """A settings field read from the environment variable `name` (one of the constants above).

    Without `default` the variable is required. `bounds` are `minimum`/`maximum` (inclusive) and `above`
    (exclusive), checked on the value read; a violation, or a value that does not parse as the field's type (int,
    float, str, `X | None`, or `tuple[str, ...]` written comma-separated), raises ConfigurationError.
    """
    return field(default=default, metadata={"variable": _Variable(name, **bounds)})


def _default_alias() -> Any:
    """The alias a request without `alias` or `version` is served from (README: "Default alias: production")."""
    return setting(DEFAULT_ALIAS, "production")


def _max_body_bytes() -> Any:
    """The API's request body limit in bytes (413 above), shared by the predict and feedback functions."""
    return setting(MAX_BODY_BYTES, 1024 * 1024, minimum=1)


def _alias_ttl_seconds() -> Any:
    """How long an alias -> version answer is reused before the alias is read again."""
    return setting(ALIAS_TTL_SECONDS, 60.0, minimum=0)


class EnvSettings:
    """Base of the settings classes: `from_env` reads the fields declared with `setting` and the parts."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        """Read the settings from `env` (default: `os.environ`).

        Raises ConfigurationError naming the variable when a required one is unset or blank, or a value does not
        parse or is out of bounds. Fields without a variable keep their defaults.
        """
        env = os.environ if env is None else env
        types = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            kind = types[f.name]
            if isinstance(kind, type) and issubclass(kind, EnvSettings):
                values[f.name] = kind.from_env(env)
            elif "variable" in f.metadata:
                values[f.name] = f.metadata["variable"].read(env, kind, f.default)
        return cls(**values)

    @classmethod
    def variables(cls) -> frozenset[str]:
        """The names of every environment variable `from_env` reads, its parts' included."""
        return frozenset(cls._defaults(required=True))

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Each optional variable's name → the value a field takes when the variable is unset (typed, not text)."""
        return cls._defaults(required=False)

    @classmethod
    def _defaults(cls, *, required: bool) -> dict[str, Any]:
        types = typing.get_type_hints(cls)
        found: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            kind = types[f.name]
            if isinstance(kind, type) and issubclass(kind, EnvSettings):
                found.update(kind._defaults(required=required))
            elif "variable" in f.metadata and (required or f.default is not dataclasses.MISSING):
                found[f.metadata["variable"].name] = f.default
        return found


# --- parts ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class RegistrySettings(EnvSettings):
    """Where the registry is (an S3 bucket name) and the KMS key id or ARN whose signatures its cards must carry."""

    model_bucket: str = setting(MODEL_BUCKET)
    signing_key_id: str = setting(SIGNING_KEY_ID)


@dataclass(frozen=True, kw_only=True)
class ModelServerSettings(RegistrySettings):
    """The registry plus a ModelServer's caches.

    alias_ttl_seconds: how long an alias → version answer is reused before the alias is read again (so a promote or
        rollback reaches running containers within it).
    model_cache_size: verified, loaded models kept per container (least recently used evicted).
    """

    alias_ttl_seconds: float = _alias_ttl_seconds()
    model_cache_size: int = setting(MODEL_CACHE_SIZE, 4, minimum=1)


@dataclass(frozen=True, kw_only=True)
class CaptureSettings(EnvSettings):
    """Prediction capture by the predict function. `key_ciphertext` None means capture is off.

    sample_rate: share of requests captured (every row of a sampled request), 0 to 1.
    key_ciphertext: the pseudonymization data key wrapped by KMS (base64), as the template passes it.
    max_rows: at most this many rows per call; None for no limit.
    """

    sample_rate: float = setting(CAPTURE_SAMPLE_RATE, 1.0, minimum=0, maximum=1)
    key_ciphertext: str | None = setting(PSEUDONYM_KEY_CIPHERTEXT, None)
    max_rows: int | None = None

    @property
    def enabled(self) -> bool:
        """True when there is a key to pseudonymize with and a share above 0 to capture."""
        return self.key_ciphertext is not None and self.sample_rate > 0


@dataclass(frozen=True, kw_only=True)
class BatchCaptureSettings(CaptureSettings):
    """Batch scoring's capture: `sample_rate` is the share of each job's scored rows (not of jobs), at most
    `max_rows` rows per job."""

    sample_rate: float = setting(BATCH_CAPTURE_SAMPLE_RATE, 0.01, minimum=0, maximum=1)
    max_rows: int | None = setting(BATCH_CAPTURE_MAX_ROWS, 10_000, minimum=0)


@dataclass(frozen=True, kw_only=True)
class BatchSettings(EnvSettings):
    """What the batch engine needs.

    data_bucket: where scored/, errors/ and tmp/ go; None means the bucket the input came from.
    default_alias: the alias a file is scored with when its key names no version.
    chunk_rows: rows validated and scored together (bounds memory, not output).
    max_line_bytes: a row longer than this (bytes) is rejected without being read into memory beyond it.
    reject_threshold: a job whose share of rejected rows is above this (0 to 1) fails (a model card tag
        `batch_reject_threshold` overrides it per model).
    part_bytes: size of the multipart-upload parts written (at least 5 MiB, S3's minimum part size).
    chunk_bytes: target size of the byte ranges plan_chunks cuts a large uncompressed file into.
    max_raw_bytes: at most this much of a rejected row's text is kept in the errors file.
    """

    data_bucket: str | None = setting(BATCH_DATA_BUCKET, None)
    default_alias: str = _default_alias()
    chunk_rows: int = setting(BATCH_CHUNK_ROWS, 50_000, minimum=1)
    max_line_bytes: int = setting(BATCH_MAX_LINE_BYTES, 1024 * 1024, minimum=1024)
    reject_threshold: float = setting(BATCH_REJECT_THRESHOLD, 0.10, minimum=0, maximum=1)
    part_bytes: int = setting(BATCH_PART_BYTES, 8 * 1024 * 1024, minimum=MIN_PART_BYTES)
    chunk_bytes: int = setting(BATCH_CHUNK_BYTES, 256 * 1024 * 1024, minimum=MIN_PART_BYTES)
    max_raw_bytes: int = 10 * 1024


@dataclass(frozen=True, kw_only=True)
class FanOutSettings(EnvSettings):
    """How the SQS batch handler hands a large file to the fan-out state machine.

    idempotency_table: the DynamoDB table powertools idempotency records jobs in.
    state_machine_arn: the Step Functions state machine started per large file.
    threshold_bytes: a file above this size (bytes) fans out; smaller ones are scored in one pass.
    max_concurrency: chunks scored at once (the Distributed Map's MaxConcurrency).
    """

    idempotency_table: str = setting(BATCH_IDEMPOTENCY_TABLE)
    state_machine_arn: str = setting(BATCH_STATE_MACHINE_ARN)
    threshold_bytes: int = setting(BATCH_FANOUT_BYTES, 256 * 1024 * 1024, minimum=1)
    max_concurrency: int = setting(BATCH_FANOUT_MAX_CONCURRENCY, 20, minimum=1)


# --- one class per function ----------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class PredictSettings(ModelServerSettings):
    """The predict function's settings (functions/predict/app.py).

    default_alias: the alias served when a request names neither alias nor version.
    max_rows: rows per request (413 above). max_body_bytes: request body size in bytes (413 above).
    max_explain_rows: rows per request with explain=true; an explanation costs up to ~20 ms per row (a 100-tree
        forest, BENCHMARKS.md), so fewer rows keep a request inside API Gateway's 29 s integration timeout.
    preload_models: models loaded (default alias) before SnapStart's snapshot, so restored containers start warm.
    serving_runtime: SERVING_COMPILED (versions with a compiled artifact are served by the compiled evaluator) or
        SERVING_SCIKIT_LEARN (every version by its unpickled estimator); anything else fails the cold start.
    capture: the share of requests captured for monitoring.
    """

    default_alias: str = _default_alias()
    max_rows: int = setting(MAX_ROWS, 1000, minimum=1)
    max_body_bytes: int = _max_body_bytes()
    max_explain_rows: int = setting(MAX_EXPLAIN_ROWS, 100, minimum=1)
    preload_models: tuple[str, ...] = setting(PRELOAD_MODELS, ())
    serving_runtime: str = setting(SERVING_RUNTIME, SERVING_COMPILED)
    capture: CaptureSettings = field(default_factory=CaptureSettings)

    def __post_init__(self) -> None:
        if self.serving_runtime not in (SERVING_COMPILED, SERVING_SCIKIT_LEARN):
            raise ConfigurationError(
                f"environment variable {SERVING_RUNTIME}={self.serving_runtime!r} must be "
                f"{SERVING_COMPILED!r} or {SERVING_SCIKIT_LEARN!r}"
            )


@dataclass(frozen=True, kw_only=True)
class BatchChunkSettings(ModelServerSettings):
    """The fan-out task function's settings (functions/batch_score/fanout.py): the model server, the batch engine
    and batch capture."""

    engine: BatchSettings = field(default_factory=BatchSettings)
    capture: BatchCaptureSettings = field(default_factory=BatchCaptureSettings)


@dataclass(frozen=True, kw_only=True)
class BatchScoreSettings(BatchChunkSettings):
    """The SQS batch function's settings (functions/batch_score/app.py): the chunk function's plus fan-out."""

    fan_out: FanOutSettings


@dataclass(frozen=True, kw_only=True)
class DriftCheckSettings(RegistrySettings):
    """The drift check function's settings (functions/drift_check/app.py).

    monitoring_bucket: the data bucket holding capture/ (read) and reports/drift/ (written).
    default_alias: the alias whose version a scheduled check compares.
    window_hours: length of the window of captured predictions each check compares with the baseline (above 0).
    event_bus: name or ARN of the EventBridge bus a DriftDetected event is put on.
    max_rows: above this many captured rows in a window, a uniform sample of this size is decoded and compared
        (decoding JSON is most of a large check's time; 50,000 rows estimate every statistic far more finely than
        the thresholds need).
    history_windows: how many of a model's latest windows its monitoring page shows (and its history keeps): 30
        daily windows are a month, at 2-3 KB of history per window for a model of a dozen features.
    """

    monitoring_bucket: str = setting(MONITORING_BUCKET)
    default_alias: str = _default_alias()
    window_hours: float = setting(DRIFT_WINDOW_HOURS, 24.0, above=0)
    event_bus: str = setting(DRIFT_EVENT_BUS, "default")
    max_rows: int = setting(DRIFT_MAX_ROWS, 50_000, minimum=1)
    history_windows: int = setting(DRIFT_HISTORY_WINDOWS, 30, minimum=1, maximum=1000)


@dataclass(frozen=True, kw_only=True)
class FeedbackSettings(RegistrySettings):
    """The feedback function's settings (functions/feedback/app.py): the route POST /models/{name}/feedback and the
    label files uploaded under feedback/.

    monitoring_bucket: the data bucket labels are stored in (ground-truth/, sklambda.monitoring.ground_truth.store).
    default_alias: the alias whose card (its `task` and `classes`) labels are checked against when the request names
        neither alias nor version, as the predict route does.
    alias_ttl_seconds: how long an alias -> version answer is reused.
    max_labels: labels per request (413 above); a file has no such limit (it is stored in chunks).
    max_body_bytes: request body size in bytes (413 above).
    chunk_labels: labels per stored object when a file is split (bounds the memory a file holds at once).
    max_line_bytes: a file row longer than this is rejected without being read whole (a label row is short).
    """

    monitoring_bucket: str = setting(MONITORING_BUCKET)
    default_alias: str = _default_alias()
    alias_ttl_seconds: float = _alias_ttl_seconds()
    max_labels: int = setting(FEEDBACK_MAX_LABELS, 10_000, minimum=1)
    max_body_bytes: int = _max_body_bytes()
    chunk_labels: int = setting(FEEDBACK_CHUNK_LABELS, 100_000, minimum=1)
    max_line_bytes: int = 64 * 1024


@dataclass(frozen=True, kw_only=True)
class QualityCheckSettings(RegistrySettings):
    """The model-quality check function's settings (functions/quality_check/app.py).

    monitoring_bucket: the data bucket holding capture/ and ground-truth/ (read) and reports/quality/ (written).
    default_alias: the alias whose version a scheduled check checks.
    window_hours: each check takes the labels that arrived in the last `window_hours` hours (above 0).
    lookback_days: how far before the window the predictions those labels refer to are looked for (labels arrive
        late: a label arriving today for a prediction served 10 days ago joins only with a lookback of 10 days or
        more). Every captured object of those days is read, so the check's time grows with it.
    min_labeled_rows: below this many labeled rows a window is insufficient_labels, never degraded; None takes the
        degradation rule's own default (model_quality.degradation.DegradationConfig).
    consecutive_windows: degraded windows in a row before the model is declared degraded; None as above.
    event_bus: name or ARN of the EventBridge bus a PerformanceDegraded event is put on.
    history_windows: how many of a model's latest windows its quality page shows (and its history keeps).
    """

    monitoring_bucket: str = setting(MONITORING_BUCKET)
    default_alias: str = _default_alias()
    window_hours: float = setting(QUALITY_WINDOW_HOURS, 24.0, above=0)
    lookback_days: float = setting(QUALITY_LOOKBACK_DAYS, 14.0, minimum=0, maximum=366)
    min_labeled_rows: int | None = setting(QUALITY_MIN_LABELED_ROWS, None, minimum=1)
    consecutive_windows: int | None = setting(QUALITY_CONSECUTIVE_WINDOWS, None, minimum=1)
    event_bus: str = setting(QUALITY_EVENT_BUS, "default")
    history_windows: int = setting(QUALITY_HISTORY_WINDOWS, 30, minimum=1, maximum=1000)


@dataclass(frozen=True, kw_only=True)
class RolloutCheckSettings(RegistrySettings):
    """The rollout check function's settings (functions/rollout_check/app.py).

    monitoring_bucket: the data bucket holding capture/ and ground-truth/ (read) and reports/rollout/, reports/shadow/
        (written).
    default_alias: the alias an on-demand check without `alias` looks at.
    event_bus: name or ARN of the EventBridge bus a CanaryRolledBack event is put on.
    shadow_window_hours: a shadow is compared on the requests of the last `shadow_window_hours` hours (not before it
        started).
    shadow_max_rows: at most this many captured rows are replayed per comparison (a seeded uniform sample beyond):
        both versions score them in the check, so its time grows with it.
    """

    monitoring_bucket: str = setting(MONITORING_BUCKET)
    default_alias: str = _default_alias()
    event_bus: str = setting(ROLLOUT_EVENT_BUS, "default")
    shadow_window_hours: float = setting(SHADOW_WINDOW_HOURS, 24.0, above=0)
    shadow_max_rows: int = setting(SHADOW_MAX_ROWS, 10_000, minimum=1)


@dataclass(frozen=True, kw_only=True)
class TrainSettings(RegistrySettings):
    """The retraining pipeline's training function's settings (functions/retrain/train.py): the only function whose
    role may kms:Sign with the signing key.

    data_bucket: the data bucket holding the run's records and files (retraining/).
    runtime_path: the target runtime's packages the parity gate scores the candidate in (os.pathsep-separated; in
        Lambda the dependency layer, /opt/python, which is the runtime that serves the model).
    """

    data_bucket: str = setting(MONITORING_BUCKET)
    runtime_path: str = setting(RUNTIME_PATH)


@dataclass(frozen=True, kw_only=True)
class RetrainSettings(RegistrySettings):
    """The retraining pipeline's step function's settings (functions/retrain/app.py): every step but training.

    data_bucket: the data bucket: training-data files, capture/ and ground-truth/ (read), retraining/ (written).
    training_data_prefix: training-data files of a model are under `<prefix><model>/` in the data bucket.
    label_days: labeled captured rows are those whose labels arrived in the last `label_days` days (above 0).
    lookback_days: how far before those labels' window their predictions are looked for (labels arrive late).
    min_training_rows: a run with fewer training rows fails its assemble step (at least 2).
    holdout_fraction: the share of the (most recent labeled, else seeded split of the) rows kept for the gate.
    event_bus: name or ARN of the EventBridge bus ModelPromoted and RetrainingSucceeded/Failed events are put on.
    approval_topic_arn: the SNS topic approval requests are published to.
    auto_rollout / auto_approval: the rollout (canary, shadow, none) and approval ("true" or "false") of a run started
        by a monitoring event (checked with the run's request, sklambda.updating.retraining.RetrainRequest).
    """

    data_bucket: str = setting(MONITORING_BUCKET)
    training_data_prefix: str = setting(RETRAIN_TRAINING_DATA_PREFIX, "training-data/")
    label_days: float = setting(RETRAIN_LABEL_DAYS, 30.0, above=0, maximum=366)
    lookback_days: float = setting(RETRAIN_LOOKBACK_DAYS, 14.0, minimum=0, maximum=366)
    min_training_rows: int = setting(RETRAIN_MIN_TRAINING_ROWS, 200, minimum=2)
    holdout_fraction: float = setting(RETRAIN_HOLDOUT_FRACTION, 0.2, above=0, maximum=0.5)
    event_bus: str = setting(RETRAIN_EVENT_BUS, "default")
    approval_topic_arn: str = setting(RETRAIN_APPROVAL_TOPIC_ARN)
    auto_rollout: str = setting(RETRAIN_AUTO_ROLLOUT, "canary")
    auto_approval: str = setting(RETRAIN_AUTO_APPROVAL, "true")
