"""sklambda.config: one settings class per function, its field defaults the only defaults, bad values refused."""

from __future__ import annotations

import pytest

from sklambda import config
from sklambda.config import (
    BatchCaptureSettings,
    BatchChunkSettings,
    BatchScoreSettings,
    BatchSettings,
    CaptureSettings,
    DriftCheckSettings,
    FanOutSettings,
    PredictSettings,
)
from sklambda.errors import ConfigurationError

FUNCTIONS = (PredictSettings, BatchScoreSettings, BatchChunkSettings, DriftCheckSettings)


def required(settings: type[config.EnvSettings]) -> dict[str, str]:
    """A value for each variable `settings` cannot do without."""
    return {name: f"value-of-{name}" for name in settings.variables() - settings.defaults().keys()}


@pytest.mark.parametrize("settings", FUNCTIONS, ids=lambda s: s.__name__)
def test_an_environment_with_only_the_required_variables_gives_the_field_defaults(settings) -> None:
    # GIVEN only the required variables
    env = required(settings)
    # WHEN the function's settings are read
    read = settings.from_env(env)
    # THEN every other field is its dataclass default: built directly with the same required values, it is equal
    direct = {f: getattr(read, f) for f in ("model_bucket", "signing_key_id", "monitoring_bucket") if hasattr(read, f)}
    if settings is BatchScoreSettings:
        direct["fan_out"] = FanOutSettings(
            idempotency_table=env[config.BATCH_IDEMPOTENCY_TABLE], state_machine_arn=env[config.BATCH_STATE_MACHINE_ARN]
        )
    assert read == settings(**direct)
    # AND blank values count as unset
    assert settings.from_env({**env, **{name: "  " for name in settings.defaults()}}) == read


@pytest.mark.parametrize("settings", FUNCTIONS, ids=lambda s: s.__name__)
def test_each_missing_required_variable_fails_naming_it(settings) -> None:
    env = required(settings)
    assert env, "every function needs at least the registry"
    for name in env:
        with pytest.raises(ConfigurationError, match=f"required environment variable {name} is not set"):
            settings.from_env({other: value for other, value in env.items() if other != name})


def test_each_function_reads_its_own_variables() -> None:
    # THEN the predict function reads the API's limits and its capture rate, the batch functions the engine's and
    # batch capture's settings, and only the SQS one the fan-out settings
    assert {config.MAX_ROWS, config.MAX_BODY_BYTES, config.CAPTURE_SAMPLE_RATE} <= PredictSettings.variables()
    assert config.BATCH_CHUNK_ROWS not in PredictSettings.variables()
    for batch in (BatchScoreSettings, BatchChunkSettings):
        assert {config.BATCH_CHUNK_ROWS, config.BATCH_CAPTURE_SAMPLE_RATE} <= batch.variables()
        assert not {config.MAX_ROWS, config.CAPTURE_SAMPLE_RATE} & batch.variables()
    fan_out = {config.BATCH_IDEMPOTENCY_TABLE, config.BATCH_STATE_MACHINE_ARN}
    assert fan_out <= BatchScoreSettings.variables() and not fan_out & BatchChunkSettings.variables()
    assert config.MONITORING_BUCKET in DriftCheckSettings.variables()


def test_values_are_parsed_as_the_fields_types() -> None:
    env = {
        **required(PredictSettings),
        config.ALIAS_TTL_SECONDS: "2.5",
        config.MAX_ROWS: " 10 ",
        config.PRELOAD_MODELS: "churn, fraud,,",
        config.PSEUDONYM_KEY_CIPHERTEXT: "abc=",
    }
    settings = PredictSettings.from_env(env)
    assert (settings.alias_ttl_seconds, settings.max_rows) == (2.5, 10)
    assert settings.preload_models == ("churn", "fraud")
    assert settings.capture == CaptureSettings(key_ciphertext="abc=") and settings.capture.enabled
    batch = BatchSettings.from_env({config.BATCH_DATA_BUCKET: "data", config.BATCH_REJECT_THRESHOLD: "0.25"})
    assert (batch.data_bucket, batch.reject_threshold) == ("data", 0.25)


def test_the_same_capture_class_reads_the_batch_variables_in_batch_functions() -> None:
    env = {config.CAPTURE_SAMPLE_RATE: "0.5", config.BATCH_CAPTURE_SAMPLE_RATE: "0.2"}
    assert CaptureSettings.from_env(env).sample_rate == 0.5 and CaptureSettings.from_env(env).max_rows is None
    batch = BatchCaptureSettings.from_env({**env, config.BATCH_CAPTURE_MAX_ROWS: "7"})
    assert (batch.sample_rate, batch.max_rows) == (0.2, 7)
    assert isinstance(batch, CaptureSettings)


@pytest.mark.parametrize(
    ("settings", "name", "raw", "message"),
    [
        (PredictSettings, config.MAX_ROWS, "many", "is not a valid int"),
        (PredictSettings, config.MAX_ROWS, "1.5", "is not a valid int"),
        (PredictSettings, config.MAX_ROWS, "0", "must be at least 1"),
        (PredictSettings, config.ALIAS_TTL_SECONDS, "-1", "must be at least 0"),
        (PredictSettings, config.CAPTURE_SAMPLE_RATE, "1.5", "must be at most 1"),
        (BatchChunkSettings, config.BATCH_REJECT_THRESHOLD, "1.01", "must be at most 1"),
        (BatchChunkSettings, config.BATCH_PART_BYTES, str(config.MIN_PART_BYTES - 1), "must be at least"),
        (BatchChunkSettings, config.BATCH_MAX_LINE_BYTES, "1023", "must be at least 1024"),
        (BatchChunkSettings, config.BATCH_CAPTURE_MAX_ROWS, "-1", "must be at least 0"),
        (BatchScoreSettings, config.BATCH_FANOUT_MAX_CONCURRENCY, "0", "must be at least 1"),
        (DriftCheckSettings, config.DRIFT_WINDOW_HOURS, "0", "must be above 0"),
    ],
)
def test_a_value_that_does_not_parse_or_is_out_of_bounds_fails_naming_the_variable(settings, name, raw, message):
    with pytest.raises(ConfigurationError, match=f"environment variable {name}={raw!r} {message}"):
        settings.from_env({**required(settings), name: raw})
