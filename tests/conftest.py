"""Fixtures every layer uses: the target runtime, AWS credentials and moto, the churn sample and its models fitted
once per session, and a reset of powertools' metrics around every test; the garbage collector's settings.

Each layer adds its own in its folder's conftest.py (functional: the registry, published versions and the predict
function; e2e: the local stacks). Helpers that are not fixtures live in tests/support.py.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from types import SimpleNamespace

import botocore.loaders
import botocore.session
import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics.provider import cold_start
from moto import mock_aws

from sklambda import aws
from sklambda_infra import sample


def pytest_configure(config: pytest.Config) -> None:
    """Build the layer's host copy once, before pytest-xdist starts its workers (they inherit the variable);
    without it every worker would build the same copy at once on a fresh machine."""
    if not hasattr(config, "workerinput"):
        from sklambda_infra.runtime import ensure_runtime_path

        ensure_runtime_path()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Less time in the garbage collector, which took a fifth of the functional layer's time (22 s of 113 s, serial).
    The tests' process holds ~400,000 long-lived objects (the modules, botocore's service models, pandas and
    scikit-learn) that every full collection walks, and CPython's first threshold of 700 net allocations triggers
    one very often: what exists once the tests are collected is frozen (left out of every later collection), and
    the first threshold is 10,000. Cyclic garbage is still collected, a little later; 10 % less CPU in all."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


@pytest.fixture(scope="session", autouse=True)
def target_runtime() -> str:
    """Publish checks every model in the layer's host copy (built once per machine, cached in .sklambda/)."""
    from sklambda_infra.runtime import ensure_runtime_path

    return ensure_runtime_path()


@pytest.fixture(scope="session", autouse=True)
def botocore_data_read_once() -> Iterator[None]:
    """botocore parses its endpoint, partition and service JSON files anew for every Session, and every test starts
    new ones (moto's mock_aws replaces boto3's default session, sklambda.aws.reset_clients drops its own): ~0.3 s
    of JSON per session. One loader for all sessions reads each file once; botocore already shares one loader's
    data between all the clients of a session, so nothing changes but the time."""
    loaders: dict[str | None, botocore.loaders.Loader] = {}
    create_loader = botocore.session.create_loader

    def shared_loader(search_path_string: str | None = None) -> botocore.loaders.Loader:
        if search_path_string not in loaders:
            loaders[search_path_string] = create_loader(search_path_string)
        return loaders[search_path_string]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.session, "create_loader", shared_loader)
        yield


@pytest.fixture(autouse=True)
def reset_metrics() -> Iterator[None]:
    """powertools keeps metrics, dimensions and the cold-start flag at class and module level, shared by every
    function module imported in this process: each test starts as a new container would, and leaves nothing."""
    metrics = Metrics()
    metrics.clear_metrics()
    metrics.clear_default_dimensions()
    cold_start.is_cold_start = True
    yield
    metrics.clear_metrics()
    metrics.clear_default_dimensions()


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
