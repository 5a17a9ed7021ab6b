"""The functions' X-Ray tracer: powertools' Tracer when tracing is on, a stand-in that does nothing when it is off.

powertools' `Tracer` imports the AWS X-Ray SDK (aws_xray_sdk, ~0.25 s of a cold start, BENCHMARKS.md "Cold start")
even when POWERTOOLS_TRACE_DISABLED turns it off. The template sets that variable from its `Tracing` parameter, and a
function whose tracing is off gets `NoTracer` instead, so it never imports the SDK. Each function creates its tracer
once, at import: `tracer = tracing.tracer()`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from sklambda.config import TRACE_DISABLED

# powertools' reading of a boolean variable (aws_lambda_powertools.shared.functions.strtobool, after distutils).
_TRUE = frozenset(("1", "y", "yes", "t", "true", "on"))


class NoTracer:
    """What a function uses of powertools' Tracer, doing nothing: `capture_lambda_handler` and `capture_method`, bare
    (`@tracer.capture_method`) or called (`@tracer.capture_method(capture_response=False)`), return the function
    unchanged."""

    def capture_lambda_handler(self, lambda_handler: Callable | None = None, **options: Any) -> Any:
        """`lambda_handler` unchanged (or, called without it, a decorator that returns its function unchanged)."""
        return _unchanged(lambda_handler)

    def capture_method(self, method: Callable | None = None, **options: Any) -> Any:
        """`method` unchanged (or, called without it, a decorator that returns its function unchanged)."""
        return _unchanged(method)

    def put_annotation(self, key: str, value: Any) -> None:
        """Record nothing."""

    def put_metadata(self, key: str, value: Any, namespace: str | None = None) -> None:
        """Record nothing."""


def _unchanged(function: Callable | None) -> Any:
    return function if function is not None else (lambda f: f)


def enabled(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the function traces: False when POWERTOOLS_TRACE_DISABLED holds a true value (powertools' spelling:
    1, y, yes, t, true, on; any case), True otherwise (powertools' Tracer then decides, e.g. it also stays off
    outside Lambda)."""
    return env.get(TRACE_DISABLED, "").strip().lower() not in _TRUE


def tracer(env: Mapping[str, str] = os.environ) -> Any:
    """The function's tracer: powertools' `Tracer()` (service from POWERTOOLS_SERVICE_NAME) when `enabled`, else a
    NoTracer. Call it once per container, at import."""
    if not enabled(env):
        return NoTracer()
    from aws_lambda_powertools import Tracer  # imports aws_xray_sdk: only when tracing is on

    return Tracer()
