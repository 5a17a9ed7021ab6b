"""Explanations over HTTP on the local stack (curl when the machine has it), as a user would ask for them."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request

import pytest

from sklambda import aws
from tests.support import event_body, point_at_stack, publish_to_stack


def post(url: str, key: str, body: dict) -> dict:
    data = json.dumps(body)
    curl = shutil.which("curl")
    if curl:
        out = subprocess.run(
            [curl, "-s", "-X", "POST", url, "-H", f"x-api-key: {key}", "-H", "content-type: application/json",
             "-d", "@-"],
            input=data, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        return json.loads(out.stdout)
    request = urllib.request.Request(
        url, data=data.encode(), headers={"x-api-key": key, "content-type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


@pytest.mark.e2e
def test_explain_true_over_the_local_api_returns_attributions_that_add_up(
    fresh_predict_container, churn, forest_model, monkeypatch
):
    stack = fresh_predict_container
    # GIVEN a forest published to the local stack's registry and promoted to production
    point_at_stack(stack, monkeypatch)
    card = publish_to_stack(stack, churn, forest_model)
    # WHEN the sample rows are posted with ?explain=true
    answer = post(
        f"{stack.api_url}/models/churn/predict?explain=true", stack.details["api_key"], event_body("predict.json")
    )
    # THEN the forest just published answers, and every row's base value plus its attributions equals each class
    # probability
    assert answer["model_version"] == card.version
    assert len(answer["explanations"]) == len(answer["probabilities"]) == 2
    for why, probabilities in zip(answer["explanations"], answer["probabilities"], strict=True):
        assert list(why["attributions"]) == list(card.input_schema.names)
        for cls, p in probabilities.items():
            total = why["base_value"][cls] + sum(a[cls] for a in why["attributions"].values())
            assert total == pytest.approx(p, abs=1e-6)
    aws.reset_clients()
