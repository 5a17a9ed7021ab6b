"""Shared fixtures: moto-backed registry, small models fitted per session, API Gateway events from events/."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from sklambda import aws
from sklambda.publishing import publish
from sklambda.registry.card import ModelCard
from sklambda.registry.signing import CardSigner, CardVerifier
from sklambda.registry.store import Registry
from sklambda_infra import sample

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
PREDICT_APP = ROOT / "functions" / "predict" / "app.py"


@pytest.fixture(scope="session", autouse=True)
def target_runtime() -> str:
    """Publish checks every model in the layer's host copy (built once per machine, cached in .sklambda/)."""
    from sklambda_infra.runtime import ensure_runtime_path

    return ensure_runtime_path()


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def mocked_aws(aws_credentials: None) -> Iterator[None]:
    with mock_aws():
        aws.reset_clients()
        yield
    aws.reset_clients()


@dataclass(frozen=True)
class RegistryEnv:
    bucket: str
    signing_key_id: str
    registry: Registry
    signer: CardSigner
    verifier: CardVerifier

    def s3(self):
        return boto3.client("s3")


def make_signing_key() -> str:
    kms = boto3.client("kms")
    return kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["Arn"]


@pytest.fixture
def registry_env(mocked_aws: None) -> RegistryEnv:
    bucket = "sklambda-models-test"
    boto3.client("s3").create_bucket(Bucket=bucket)
    key = make_signing_key()
    return RegistryEnv(bucket, key, Registry(bucket), CardSigner(key), CardVerifier(key))


@pytest.fixture(scope="session")
def churn() -> SimpleNamespace:
    X, y = sample.churn_data(2000, seed=1)
    X_train, y_train, X_holdout, y_holdout = sample.split(X, y)
    return SimpleNamespace(X=X_train, y=y_train, X_holdout=X_holdout, y_holdout=y_holdout)


@pytest.fixture(scope="session")
def logistic_model(churn: SimpleNamespace):
    return sample.logistic_pipeline().fit(churn.X, churn.y)


@pytest.fixture(scope="session")
def forest_model(churn: SimpleNamespace):
    return sample.forest_pipeline(n_estimators=10).fit(churn.X, churn.y)


def publish_churn(env: RegistryEnv, churn: SimpleNamespace, model, **kwargs) -> ModelCard:
    options = {"name": "churn", "alias": "production", "pii": sample.PII, **kwargs}
    return publish(
        model,
        churn.X,
        churn.y,
        registry=env.registry,
        signer=env.signer,
        X_holdout=churn.X_holdout,
        y_holdout=churn.y_holdout,
        **options,
    )


@pytest.fixture
def published(registry_env: RegistryEnv, churn: SimpleNamespace, logistic_model) -> ModelCard:
    return publish_churn(registry_env, churn, logistic_model)


def load_event(name: str, *, body: object = ..., raw_body: str | None = None, query: dict | None = None) -> dict:
    """An API Gateway REST event from events/, optionally with another body or query string."""
    event = copy.deepcopy(json.loads((EVENTS / name).read_text()))
    if body is not ...:
        event["body"] = json.dumps(body)
    if raw_body is not None:
        event["body"] = raw_body
    if query is not None:
        event["queryStringParameters"] = query
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()}
    return event


def event_body(name: str) -> dict:
    return json.loads(load_event(name)["body"])


def import_predict_app() -> ModuleType:
    """A fresh import of the predict function, as a new Lambda container would do."""
    spec = importlib.util.spec_from_file_location("predict_app", PREDICT_APP)
    module = importlib.util.module_from_spec(spec)
    sys.modules["predict_app"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def function_env(registry_env: RegistryEnv, monkeypatch: pytest.MonkeyPatch) -> RegistryEnv:
    monkeypatch.setenv("SKLAMBDA_MODEL_BUCKET", registry_env.bucket)
    monkeypatch.setenv("SKLAMBDA_SIGNING_KEY_ID", registry_env.signing_key_id)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "sklambda")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "sklambda")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    return registry_env


@pytest.fixture
def predict_app(function_env: RegistryEnv) -> Iterator[ModuleType]:
    module = import_predict_app()
    yield module
    module.metrics.clear_metrics()


@pytest.fixture
def lambda_context() -> SimpleNamespace:
    return SimpleNamespace(
        function_name="sklambda-predict",
        function_version="$LATEST",
        memory_limit_in_mb=1769,
        invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:sklambda-predict",
        aws_request_id="5f1c1b8e-0c1a-4f5e-9d7c-0123456789ab",
        get_remaining_time_in_millis=lambda: 30_000,
    )


def call(app: ModuleType, event: dict, context) -> tuple[int, dict]:
    response = app.handler(event, context)
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else {}


def write_capture(s3, bucket: str, model, X, *, at, name: str = "churn", version: str = "1", part: str = "part-0"):
    """Captured records of `name` under capture/model=<name>/dt=<day>/, as Firehose partitions them."""
    from sklambda.monitoring.capture import Pseudonymizer, build_records
    from sklambda.monitoring.windows import capture_prefix
    from sklambda.registry.schema import to_records

    proba = model.predict_proba(X)
    records = build_records(
        model=name,
        version=version,
        request_id="req",
        rows=to_records(X),
        predictions=model.classes_[proba.argmax(axis=1)].tolist(),
        probabilities=[dict(zip(map(str, model.classes_), p, strict=True)) for p in proba.tolist()],
        feature_names=list(X.columns),
        pii=sample.PII,
        pseudonymizer=Pseudonymizer(b"k" * 32),
        now=at,
    )
    key = capture_prefix(name, at.date()) + part
    s3.put_object(Bucket=bucket, Key=key, Body="".join(r.to_json_line() for r in records).encode())


def point_at_stack(stack, patch: pytest.MonkeyPatch) -> None:
    """Make this process's boto3 clients talk to a running local stack."""
    details = stack.details
    for name, value in {
        "AWS_ENDPOINT_URL": stack.aws_endpoint_url,
        "AWS_ACCESS_KEY_ID": details["access_key_id"],
        "AWS_SECRET_ACCESS_KEY": details["secret_access_key"],
        "AWS_DEFAULT_REGION": details["region"],
    }.items():
        patch.setenv(name, value)
    aws.reset_clients()


def publish_to_stack(stack, churn: SimpleNamespace, model) -> ModelCard:
    """Publish the churn model into a running local stack's registry, promoted to production."""
    details = stack.details
    return publish(
        model,
        churn.X,
        churn.y,
        name="churn",
        alias="production",
        pii=sample.PII,
        registry=Registry(details["model_bucket"]),
        signer=CardSigner(details["signing_key_id"]),
    )


@pytest.fixture
def files(tmp_path, churn, logistic_model) -> dict:
    """The churn model as a joblib file and its training and holdout data as CSVs (target `churned`), for the CLI."""
    import joblib

    model = tmp_path / "model.joblib"
    joblib.dump(logistic_model, model)
    train = tmp_path / "train.csv"
    churn.X.assign(churned=churn.y).to_csv(train, index=False)
    holdout = tmp_path / "holdout.csv"
    churn.X_holdout.assign(churned=churn.y_holdout).to_csv(holdout, index=False)
    return {"model": str(model), "train": str(train), "holdout": str(holdout), "dir": tmp_path}
