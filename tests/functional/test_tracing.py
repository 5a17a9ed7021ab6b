"""X-Ray tracing follows template.yaml's Tracing parameter; with tracing off no function imports the X-Ray SDK, which
costs ~0.25 s of every cold start (BENCHMARKS.md "Cold start")."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys

from aws_lambda_powertools import Tracer

from sklambda import tracing
from sklambda.config import TRACE_DISABLED
from tests.support import PREDICT_APP, ROOT, template_environment

PREDICT_REFS = {"ModelBucket": "sklambda-models-test"}
PREDICT_ATTRIBUTES = {("SigningKey", "Arn"): "arn:aws:kms:us-east-1:123456789012:key/test"}

# A new process imports the handler module as Lambda's init phase does (/var/task first on sys.path).
IMPORT_CHILD = """
import json, sys
sys.path.insert(0, sys.argv[1])
import app
print(json.dumps({"tracer": type(app.tracer).__name__, "xray": "aws_xray_sdk" in sys.modules}))
"""


def predict_environment(**parameters: str) -> dict[str, str]:
    return template_environment("PredictFunction", PREDICT_REFS, PREDICT_ATTRIBUTES, parameters)


def test_with_tracing_off_the_predict_handler_never_imports_the_xray_sdk():
    # GIVEN the predict function's environment as template.yaml sets it with the default Tracing parameter
    env = predict_environment()
    assert env[TRACE_DISABLED] == "true"
    # WHEN a fresh process imports the handler module
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "SKLAMBDA_"))}
    child = subprocess.run(
        [sys.executable, "-c", IMPORT_CHILD, str(PREDICT_APP.parent)],
        env={**inherited, **env},
        capture_output=True,
        text=True,
        check=False,
    )
    # THEN it imported, with the stand-in tracer and without aws_xray_sdk in sys.modules
    assert child.returncode == 0, child.stderr[-2000:]
    assert json.loads(child.stdout.splitlines()[-1]) == {"tracer": "NoTracer", "xray": False}


def test_with_tracing_active_the_functions_get_powertools_tracer():
    # GIVEN the environment of a stack deployed with Tracing=Active
    env = predict_environment(Tracing="Active")
    # WHEN a function creates its tracer
    tracer = tracing.tracer(env)
    # THEN tracing is on and the tracer is powertools' own
    assert env[TRACE_DISABLED] == "false"
    assert tracing.enabled(env)
    assert isinstance(tracer, Tracer)


def test_tracing_is_off_for_every_true_spelling_powertools_accepts():
    for value in ("true", "TRUE", "1", "yes", "on", " t "):
        assert not tracing.enabled({TRACE_DISABLED: value}), value
    for value in ("false", "0", "no", ""):
        assert tracing.enabled({TRACE_DISABLED: value}), value
    assert tracing.enabled({})


def test_the_stand_in_tracer_leaves_decorated_functions_unchanged():
    # GIVEN the tracer of a function whose tracing is off
    tracer = tracing.tracer({TRACE_DISABLED: "true"})

    def handler(event, context):
        return {"event": event}

    # WHEN it decorates functions, bare or with powertools' options
    # THEN each function comes back as it was, and annotations are accepted and dropped
    assert tracer.capture_lambda_handler(handler) is handler
    assert tracer.capture_lambda_handler(capture_response=False)(handler) is handler
    assert tracer.capture_method(handler) is handler
    assert tracer.capture_method(capture_response=False, capture_error=False)(handler) is handler
    tracer.put_annotation("model", "churn")
    tracer.put_metadata("rows", 3)


def test_no_function_creates_powertools_tracer_itself():
    # GIVEN every Lambda function module
    modules = sorted((ROOT / "functions").rglob("*.py"))
    assert modules
    for path in modules:
        tree = ast.parse(path.read_text(), filename=str(path))
        # THEN none imports powertools' Tracer (sklambda.tracing decides whether to)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aws_lambda_powertools"):
                assert "Tracer" not in {alias.name for alias in node.names}, path
