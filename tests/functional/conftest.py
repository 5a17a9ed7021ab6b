"""Fixtures of the functional layer: a moto-backed registry per test, churn version 1 published in it, the
functions' environment and context, and the churn model as files for the CLI."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType, SimpleNamespace

import boto3
import pytest

from sklambda.registry.card import ModelCard
from sklambda.registry.signing import CardSigner, CardVerifier
from sklambda.registry.store import Registry
from sklambda.serving.server import ModelServer
from tests.support import (
    BATCH_DATA_BUCKET,
    BuiltVersion,
    RegistryEnv,
    build_churn,
    import_predict_app,
    make_signing_key,
    publish_churn,
    store_built,
)


@pytest.fixture
def registry_env(mocked_aws: None) -> RegistryEnv:
    bucket = "sklambda-models-test"
    boto3.client("s3").create_bucket(Bucket=bucket)
    key = make_signing_key()
    return RegistryEnv(bucket, key, Registry(bucket), CardSigner(key), CardVerifier(key))


@pytest.fixture(scope="session")
def churn_build(churn: SimpleNamespace, target_runtime: str) -> Callable[..., BuiltVersion]:
    """What publish_churn(env, churn, model, name=..., version=..., **options) builds, each model and options built
    once per session: nothing in a build depends on the registry or the signing key, which are new in every test
    (store_built signs and stores it as publish() does), and the name and version only label it
    (BuiltVersion.relabelled). For tests that are not about publishing; one that changes how publish() builds (a
    patched publisher) publishes for itself."""
    builds: dict[tuple, BuiltVersion] = {}

    def build(model, *, name: str = "churn", version: str = "1", **options) -> BuiltVersion:
        key = (id(model), repr(sorted(options.items())))
        if key not in builds:
            builds[key] = build_churn(churn, model, **options)
        return builds[key].relabelled(name, version)

    return build


@pytest.fixture(scope="session")
def churn_v1(churn_build: Callable[..., BuiltVersion], logistic_model) -> BuiltVersion:
    """Version 1 of churn (the logistic pipeline) as publish_churn builds it: schema, metrics, baseline,
    importance and the parity gate's run in the target runtime."""
    return churn_build(logistic_model)


@pytest.fixture
def published(request: pytest.FixtureRequest, registry_env: RegistryEnv, churn, logistic_model) -> ModelCard:
    """churn version 1 (logistic) in this test's registry, signed with its key and promoted to production.

    Most tests only need it there: they get the session's build, signed and stored as publish() does. Modules
    about publishing itself (marked `publishing`) run publish() from the start, gate included, in every test.
    """
    if request.node.get_closest_marker("publishing"):
        return publish_churn(registry_env, churn, logistic_model)
    return store_built(registry_env, request.getfixturevalue("churn_v1"), alias="production")


@pytest.fixture
def function_env(registry_env: RegistryEnv, monkeypatch: pytest.MonkeyPatch) -> RegistryEnv:
    monkeypatch.setenv("SKLAMBDA_MODEL_BUCKET", registry_env.bucket)
    monkeypatch.setenv("SKLAMBDA_SIGNING_KEY_ID", registry_env.signing_key_id)
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "sklambda")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "sklambda")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    return registry_env


@pytest.fixture
def predict_app(function_env: RegistryEnv) -> ModuleType:
    return import_predict_app()


@pytest.fixture
def lambda_context() -> SimpleNamespace:
    """The predict function's Lambda context, the same one the benchmarks pass."""
    from sklambda_infra.bench.common import lambda_context

    return lambda_context()


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


@pytest.fixture
def server(registry_env, published) -> ModelServer:
    """A model server over the registry holding the published churn model, with the batch data bucket created."""
    registry_env.s3().create_bucket(Bucket=BATCH_DATA_BUCKET)
    return ModelServer(registry_env.registry, registry_env.verifier)


@pytest.fixture
def s3(registry_env):
    return registry_env.s3()
