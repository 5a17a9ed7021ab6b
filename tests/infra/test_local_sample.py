"""`sklambda local up`'s sample model when it cannot be published: the stack keeps running, with one line saying why.

The sample published into a running stack is tested end to end in tests/e2e/test_local_sample.py.
"""

from __future__ import annotations

import pytest

from sklambda.errors import PublishRejected
from sklambda_infra import penguins, runtime
from sklambda_infra.local.cli import publish_sample
from tests.support import Log


class FakeStack:
    """What publish_sample uses of a LocalStack: its details, add_details and client."""

    def __init__(self, details: dict) -> None:
        self.details = details
        self.added: dict = {}

    def add_details(self, **fields) -> None:
        self.added.update(fields)

    def client(self, service: str):
        raise AssertionError(f"no {service} call expected")


def test_a_sample_refused_at_publish_is_one_line_and_nothing_is_recorded(monkeypatch: pytest.MonkeyPatch, capsys):
    # GIVEN a stack with a registry, and a sample that publish refuses
    stack = FakeStack({"model_bucket": "models", "signing_key_id": "key"})
    monkeypatch.setattr(runtime, "ensure_runtime_path", lambda log=None: "runtime")

    def refused(*args, **kwargs):
        raise PublishRejected("[parity] served probabilities differ")

    monkeypatch.setattr(penguins, "publish_sample", refused)
    # WHEN `local up` publishes the sample
    result = publish_sample(stack, Log())
    # THEN it says why in one line on stderr, prints no curl command and records no sample
    out, err = capsys.readouterr()
    assert result is None and stack.added == {} and "curl" not in out
    assert err.strip().splitlines() == [
        "sklambda local up: the sample model was not published: [parity] served probabilities differ"
    ]


def test_a_template_without_a_model_registry_gets_no_sample(capsys):
    # GIVEN a stack whose template has no model bucket or signing key
    stack, log = FakeStack({"model_bucket": None, "signing_key_id": None}), Log()
    # WHEN `local up` would publish the sample THEN it logs that there is none, and publishes nothing
    assert publish_sample(stack, log) is None
    assert stack.added == {} and any("no sample model" in line for line in log)
    assert capsys.readouterr().out == ""
