"""Fixtures of the end-to-end layer: the local stacks that its tests share.

`project_stack` runs the project's template.yaml (churn published to production), `fixture_stack` the fixture
template in tests/fixtures/local_stack (stdlib-only functions that start in milliseconds). Each starts when a test
first asks for it and stops after the last test of this folder: package scope, so it is gone before other layers
start moto mocks in this process (a running stack shares moto's state with them). A test that uses one is e2e,
and under pytest-xdist (`--dist loadgroup`) its tests form one xdist group, run by one worker: each shared stack
starts once per run. A test that keeps a stack of its own says why beside it.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from sklambda import aws, config
from sklambda_infra.local import LocalStack
from tests.support import CHUNK_BYTES, FANOUT_BYTES, FIXTURES, ROOT, Log, point_at_stack, publish_to_stack

# Shared stack fixture -> its xdist group.
SHARED_STACKS = {"project_stack": "project-stack", "fixture_stack": "fixture-stack"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Before `-m` selects and xdist groups: a test that uses a shared stack is e2e and in that stack's group."""
    for item in items:
        for fixture, group in SHARED_STACKS.items():
            if fixture in item.fixturenames:
                item.add_marker(pytest.mark.e2e)
                item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="package")
def project_stack_log() -> Log:
    return Log()


@pytest.fixture(scope="package")
def project_stack(project_stack_log: Log, churn: SimpleNamespace, logistic_model) -> Iterator[LocalStack]:
    """template.yaml on free ports, churn (the logistic pipeline) published and promoted to production.

    Its batch settings let a 7 MB file fan out into two chunks (test_batch_local); the template's defaults
    otherwise.
    """
    parameters = {"FanOutThresholdBytes": FANOUT_BYTES, "BatchChunkBytes": CHUNK_BYTES}
    with LocalStack(
        ROOT, stack_name="project-e2e", aws_port=0, api_port=0, parameters=parameters, log=project_stack_log
    ) as stack:
        with pytest.MonkeyPatch.context() as patch:
            point_at_stack(stack, patch)
            publish_to_stack(stack, churn, logistic_model)
        aws.reset_clients()
        yield stack


@pytest.fixture
def fresh_predict_container(project_stack: LocalStack) -> LocalStack:
    """The shared stack whose predict function starts a new container on the next request: one that has cached
    no alias yet, so a test that moves `production` is served the new version at once, not after the alias TTL."""
    project_stack.runners["PredictFunction"].recycle()
    return project_stack


@pytest.fixture
def nothing_captured(project_stack: LocalStack) -> LocalStack:
    """The shared stack with nothing under capture/: what earlier tests' predictions were captured is delivered
    (the log forwarder flushed) and deleted, so a test counts only what it captures itself."""
    project_stack.forwarder.flush()
    s3 = project_stack.client("s3")
    for capture in project_stack.details["captures"]:
        listing = s3.list_objects_v2(Bucket=capture["bucket"], Prefix=config.CAPTURE_PREFIX).get("Contents", [])
        for item in listing:
            s3.delete_object(Bucket=capture["bucket"], Key=item["Key"])
    return project_stack


@pytest.fixture(scope="package")
def fixture_stack_log() -> Log:
    return Log()


@pytest.fixture(scope="package")
def fixture_stack(fixture_stack_log: Log) -> Iterator[LocalStack]:
    """tests/fixtures/local_stack/template.yaml on free ports, with its parameters' defaults."""
    with LocalStack(FIXTURES / "local_stack", aws_port=0, api_port=0, log=fixture_stack_log) as stack:
        yield stack
