"""What the predict function's cold start leaves out: the X-Ray SDK when template.yaml's Tracing parameter is off
(its import costs ~0.25 s), and the cyclic garbage collector until the first request is answered (sklambda.coldstart).
"""

from __future__ import annotations

import ast
import gc
import json
import os
import subprocess
import sys

import pytest
from aws_lambda_powertools import Tracer

from sklambda import coldstart, tracing
from sklambda.config import LAMBDA_FUNCTION_NAME, TRACE_DISABLED
from tests.support import PREDICT_APP, ROOT, template_environment

PREDICT_REFS = {"ModelBucket": "sklambda-models-test"}
PREDICT_ATTRIBUTES = {("SigningKey", "Arn"): "arn:aws:kms:us-east-1:123456789012:key/test"}

# A new process imports the handler module as Lambda's init phase does (/var/task first on sys.path), then answers
# one request that needs no AWS call (GET /health).
LAMBDA_CHILD = """
import gc, json, sys
from types import SimpleNamespace
function_dir, event_path = sys.argv[1:3]
sys.path.insert(0, function_dir)
paused = []  # collections once sklambda.coldstart is importable, i.e. after app's first import line
def watch(phase, info):
    if phase == "start" and hasattr(sys.modules.get("sklambda.coldstart"), "pause"):
        paused.append(info["generation"])
gc.callbacks.append(watch)
import app
gc.callbacks.remove(watch)
seen = {"tracer": type(app.tracer).__name__, "xray": "aws_xray_sdk" in sys.modules,
        "collections_in_import": len(paused), "gc_after_import": gc.isenabled()}
with open(event_path) as f:
    event = json.load(f)
context = SimpleNamespace(function_name="sklambda-predict", memory_limit_in_mb=1769, aws_request_id="cold",
                          invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:sklambda-predict")
seen["status"] = app.handler(event, context)["statusCode"]
seen.update(gc_after_first_request=gc.isenabled(), frozen=gc.get_freeze_count())
print(json.dumps(seen))
"""


def predict_environment(**parameters: str) -> dict[str, str]:
    return template_environment("PredictFunction", PREDICT_REFS, PREDICT_ATTRIBUTES, parameters)


@pytest.fixture(scope="module")
def lambda_cold_start() -> dict:
    """What a fresh process saw while importing the predict handler and answering its first request, with the
    environment template.yaml gives the function (default parameters) plus the name Lambda sets."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "SKLAMBDA_", "AWS_LAMBDA"))}
    env = {**inherited, **predict_environment(), LAMBDA_FUNCTION_NAME: "sklambda-predict"}
    child = subprocess.run(
        [sys.executable, "-c", LAMBDA_CHILD, str(PREDICT_APP.parent), str(ROOT / "events" / "health.json")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    return {"env": env, **json.loads(child.stdout.splitlines()[-1])}


def test_with_tracing_off_the_predict_handler_never_imports_the_xray_sdk(lambda_cold_start):
    # GIVEN the template's default Tracing parameter, which turns powertools' tracer off
    assert lambda_cold_start["env"][TRACE_DISABLED] == "true"
    # WHEN a fresh process imports the handler module and answers a request
    # THEN it used the stand-in tracer and aws_xray_sdk never reached sys.modules
    assert lambda_cold_start["status"] == 200
    assert (lambda_cold_start["tracer"], lambda_cold_start["xray"]) == ("NoTracer", False)


def test_in_lambda_the_collector_is_off_until_the_first_request_is_answered(lambda_cold_start):
    # GIVEN a fresh Lambda process of the predict function
    # WHEN it imports the handler module
    # THEN no garbage collection runs once its first line has paused the collector, which stays off
    assert lambda_cold_start["collections_in_import"] == 0
    assert lambda_cold_start["gc_after_import"] is False
    # WHEN it has answered its first request, THEN the collector is back on, the cold start's objects frozen
    assert lambda_cold_start["status"] == 200
    assert lambda_cold_start["gc_after_first_request"] is True
    assert lambda_cold_start["frozen"] > 10_000


def test_outside_lambda_the_collector_is_left_alone():
    # GIVEN a process that is not a Lambda function (a test importing a handler)
    frozen = gc.get_freeze_count()
    # WHEN the cold start pause is asked for
    paused = coldstart.pause({})
    # THEN nothing changes, and resuming does nothing either
    assert paused is False and gc.isenabled()
    coldstart.resume()
    assert gc.isenabled() and gc.get_freeze_count() == frozen


def test_resume_freezes_the_live_objects_and_turns_the_collector_back_on():
    # GIVEN the collector paused as in a Lambda cold start
    before = gc.get_freeze_count()
    assert coldstart.pause({LAMBDA_FUNCTION_NAME: "sklambda-predict"}) is True
    try:
        assert not gc.isenabled()
        # WHEN the first request is answered (twice: resume is called after every request)
        coldstart.resume()
        frozen = gc.get_freeze_count()
        coldstart.resume()
        # THEN the objects alive then are frozen and the collector runs again
        assert gc.isenabled() and frozen > before
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()  # hand this test process's objects back to the collector
        gc.enable()


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
