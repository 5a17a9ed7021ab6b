"""What the benchmarks share: the repo's paths, fitted sample models, events, and the handler import."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
EVENTS = ROOT / "events"
PREDICT_APP = ROOT / "functions" / "predict" / "app.py"
BUILD = ROOT / "build" / "bench"

TRAINING_ROWS = 20_000
FOREST_TREES = 100
LR, FOREST = "churn-lr", "churn-forest"
BUCKET = "sklambda-bench-models"

# moto accepts any credentials; these keep boto3 from looking for real ones.
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def log(message: str) -> None:
    """Progress goes to stderr: stdout is sunk while the handler runs."""
    print(message, file=sys.stderr, flush=True)


# What serves the published models in a benchmark (sklambda.config.SERVING_RUNTIME): the default, the compiled
# evaluator (versions publish compiled), or scikit-learn (the CompiledServing=Disabled deployment).
COMPILED_PATH, SKLEARN_PATH = "compiled", "scikit-learn"
PATHS = (SKLEARN_PATH, COMPILED_PATH)


def function_env(bucket: str, signing_key_id: str, path: str = COMPILED_PATH) -> dict[str, str]:
    """The predict function's configuration, as in tests/conftest.py and template.yaml; `path`: what serves a version
    published with a compiled artifact (COMPILED_PATH, the template's default, or SKLEARN_PATH)."""
    return {
        "SKLAMBDA_MODEL_BUCKET": bucket,
        "SKLAMBDA_SIGNING_KEY_ID": signing_key_id,
        "SKLAMBDA_SERVING_RUNTIME": path,
        "POWERTOOLS_SERVICE_NAME": "sklambda",
        "POWERTOOLS_METRICS_NAMESPACE": "sklambda",
        "POWERTOOLS_TRACE_DISABLED": "true",
    }


@contextmanager
def environ(values: Mapping[str, str], remove: tuple[str, ...] = ()) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in (*values, *remove)}
    os.environ.update(values)
    for k in remove:
        os.environ.pop(k, None)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class Models:
    """The two pipelines of the benchmarks, fitted once per run on the same churn data."""

    X: Any
    y: Any
    X_holdout: Any
    y_holdout: Any
    fitted: dict[str, Any]


def fit_models(rows: int = TRAINING_ROWS, trees: int = FOREST_TREES) -> Models:
    from sklambda_infra import sample

    X, y = sample.churn_data(rows)
    X_train, y_train, X_holdout, y_holdout = sample.split(X, y)
    fitted = {
        LR: sample.logistic_pipeline().fit(X_train, y_train),
        FOREST: sample.forest_pipeline(trees).fit(X_train, y_train),
    }
    return Models(X_train, y_train, X_holdout, y_holdout, fitted)


def publish_models(models: Models, bucket: str, signing_key_id: str) -> dict[str, Any]:
    """Publish every model behind the production alias; returns the signed cards by name."""
    from sklambda.publishing import publish
    from sklambda.registry.signing import CardSigner
    from sklambda.registry.store import Registry
    from sklambda_infra import sample

    registry, signer = Registry(bucket), CardSigner(signing_key_id)
    return {
        name: publish(
            model,
            models.X,
            models.y,
            name=name,
            registry=registry,
            signer=signer,
            alias="production",
            pii=sample.PII,
            X_holdout=models.X_holdout,
            y_holdout=models.y_holdout,
        )
        for name, model in models.fitted.items()
    }


def make_bucket_and_key(bucket: str = BUCKET) -> str:
    """Create the registry bucket and an ECC_NIST_P256 signing key (moto must be active); returns the key ARN."""
    import boto3

    boto3.client("s3").create_bucket(Bucket=bucket)
    kms = boto3.client("kms")
    return kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["Arn"]


def one_row() -> dict[str, Any]:
    """The first row of events/predict.json: what a single-row client sends."""
    return json.loads(json.loads((EVENTS / "predict.json").read_text())["body"])["instances"][0]


def predict_event(model_name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """events/predict.json aimed at `model_name` with `rows` as its instances."""
    event = copy.deepcopy(json.loads((EVENTS / "predict.json").read_text()))
    path = f"/models/{model_name}/predict"
    event["path"] = path
    event["pathParameters"] = {"name": model_name}
    event["requestContext"]["path"] = f"/{event['requestContext']['stage']}{path}"
    event["body"] = json.dumps({"instances": rows})
    return event


def lambda_context() -> SimpleNamespace:
    return SimpleNamespace(
        function_name="sklambda-predict",
        function_version="$LATEST",
        memory_limit_in_mb=1769,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:sklambda-predict",
        aws_request_id="5f1c1b8e-0c1a-4f5e-9d7c-0123456789ab",
        get_remaining_time_in_millis=lambda: 30_000,
    )


def import_predict_app() -> ModuleType:
    """A fresh import of the predict function, as a new Lambda container does (and as tests/conftest.py does)."""
    spec = importlib.util.spec_from_file_location("predict_app", PREDICT_APP)
    module = importlib.util.module_from_spec(spec)
    sys.modules["predict_app"] = module
    spec.loader.exec_module(module)
    return module


@contextmanager
def stdout_sunk() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null.

    The handler still formats and writes its EMF metrics and JSON logs (Lambda pays for that too); only the
    terminal's cost of showing them is removed. dup2 on the descriptor catches every writer, including the
    logging handler that captured sys.stdout when the module was imported.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def cumulative_seconds(stats: dict, path: str, func: str) -> float | None:
    """Cumulative time of `func` defined in a file ending with `path`, from pstats.Stats(...).stats.

    When several functions match (nested decorators share a name), the largest is the outermost.
    """
    matches = [v[3] for (file, _line, name), v in stats.items() if name == func and file.endswith(path)]
    return max(matches) if matches else None
