"""`sklambda.publish` from a script or notebook finds a running local stack by itself, as the CLI does."""

from __future__ import annotations

import json
import os
import urllib.request

import pytest

import sklambda
from sklambda import aws, config, connection
from sklambda_infra import sample

pytestmark = pytest.mark.e2e

# Everything a user's shell might not have: the registry variables, the AWS SDK's, the parity gate's runtime.
UNSET = (
    config.MODEL_BUCKET,
    config.SIGNING_KEY_ID,
    config.AWS_ENDPOINT_URL,
    config.RUNTIME_PATH,
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_PROFILE",
)


def test_publish_with_no_configuration_reaches_the_running_local_stack(project_stack, churn, monkeypatch, tmp_path):
    # GIVEN a shell with nothing configured, in a checkout whose local stack runs (its details file, as `local up`
    # writes it, with this process as the stack's owner)
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    details = {**project_stack.details, "pid": os.getpid()}
    assert details["runtime_path"], "the stack's details say where publish's parity gate finds the runtime"
    (tmp_path / "template.yaml").write_text("Resources: {}\n")
    (tmp_path / ".sklambda").mkdir()
    (tmp_path / ".sklambda" / "local.json").write_text(json.dumps(details))
    monkeypatch.delenv(connection.ENV_LOCAL_FILE, raising=False)
    monkeypatch.chdir(tmp_path)
    aws.reset_clients()
    X, y = churn.X.iloc[:600], churn.y.iloc[:600]
    model = sample.logistic_pipeline().fit(X, y)
    try:
        # WHEN the README's one-line publish runs, with no registry, signer, runtime or credentials given
        card = sklambda.publish(model, X, y, name="found-by-api", pii=list(sample.PII), alias="production")
    finally:
        aws.reset_clients()
    # THEN the version is in the stack's registry and its API serves it
    request = urllib.request.Request(
        f"{details['api_url']}/models/found-by-api", headers={"x-api-key": details["api_key"]}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        served = json.load(response)
    assert served["model"]["version"] == card.version == "1"
    assert served["aliases"]["production"] == "1"
