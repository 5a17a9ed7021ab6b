"""Shared fixtures: moto-backed registry, small models fitted per session, the predict function's module.

Helpers that are not fixtures live in tests/support.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType, SimpleNamespace

import boto3
import pytest
from moto import mock_aws

from sklambda import aws
from sklambda.registry.card import ModelCard
from sklambda.registry.signing import CardSigner, CardVerifier
from sklambda.registry.store import Registry
from sklambda_infra import sample
from tests.support import RegistryEnv, import_predict_app, make_signing_key, publish_churn


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


@pytest.fixture
def published(registry_env: RegistryEnv, churn: SimpleNamespace, logistic_model) -> ModelCard:
    return publish_churn(registry_env, churn, logistic_model)


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
