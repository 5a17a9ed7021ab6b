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
        )
