"""The running API against its own OpenAPI description: schemathesis on the local stack.

schemathesis reads a document the API serves (GET /openapi.json, GET /models/churn/openapi.json), generates requests
that the document calls valid (bodies, path and query parameters), sends them through the local gateway with the
stack's API key and checks every answer: no server error (5xx), a status the document lists, the content type and
the body schema it gives for that status. Generation is derandomized (the same requests every run) and bounded per
operation, so a run is repeatable and takes seconds.
"""

from __future__ import annotations

import json
import urllib.request
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from sklambda_infra.local import LocalStack

# Requests per operation and document: 12 operations x 2 documents x 12 take about 15 s on 2 cores.
MAX_EXAMPLES = 12
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MODEL = "churn"  # published to production by the project_stack fixture


def fetch(url: str, key: str) -> dict:
    request = urllib.request.Request(url, headers={"x-api-key": key})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def fuzz(stack: LocalStack, document: dict) -> dict[str, Counter]:
    """Run every operation of `document` (`fuzz_operation`); returns the statuses answered, by operation
    ("POST /models/{name}/predict")."""
    schema = schemathesis.openapi.from_dict(document)
    return {op.label: fuzz_operation(stack, op) for op in (result.ok() for result in schema.get_all_operations())}


def fuzz_operation(stack: LocalStack, operation: schemathesis.APIOperation) -> Counter:
    """Send MAX_EXAMPLES generated requests to `operation` with the stack's API key, `name` set to MODEL (a random
    name would only ever be a 404), and run CHECKS on each answer; raises the first failing check with the request
    that failed. Returns how many answers had each status."""
    key = stack.details["api_key"]
    statuses: Counter = Counter()
    fixed = {"name": MODEL} if "{name}" in operation.path else None

    @given(case=operation.as_strategy(path_parameters=fixed))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        response = case.call_and_validate(base_url=stack.api_url, headers={"x-api-key": key}, checks=CHECKS, timeout=30)
        statuses[response.status_code] += 1

    run()
    return statuses


@pytest.mark.e2e
def test_schemathesis_finds_no_server_error_and_every_answer_as_described(project_stack: LocalStack):
    # GIVEN the project stack with churn in production, and the two documents it serves
    stack = project_stack
    key = stack.details["api_key"]
    general = fetch(f"{stack.api_url}/openapi.json", key)
    model = fetch(f"{stack.api_url}/models/{MODEL}/openapi.json", key)
    assert general["servers"] == model["servers"] == [{"url": stack.api_url}]
    operations = {f"{method.upper()} {path}" for path, item in general["paths"].items() for method in item}
    # WHEN schemathesis sends the requests each document describes (fuzz raises on the first failed check)
    for document in (general, model):
        answered = fuzz(stack, document)
        # THEN no check failed, and every documented operation was called
        assert set(answered) == operations
    # AND rows made from the model's own document are scored, not refused
    assert answered["POST /models/{name}/predict"][200] > 0, answered
