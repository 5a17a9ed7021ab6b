"""A Lambda function's imports with CPython's cyclic garbage collector paused.

Importing the predict function allocates hundreds of thousands of objects that live as long as the container: the
modules of scipy, scikit-learn, pandas, pydantic and botocore. The collector traces all of them again and again while
they pile up, which took about a fifth of the predict function's cold start on the bench machine (BENCHMARKS.md "Cold
start"), and what it finds is almost nothing: ~1,100 unreachable objects of ~0.35 MB (mostly functions and classes;
reference counting frees everything that is not in a cycle whether the collector runs or not).

The predict function calls `pause()` before its imports and `resume()` at the end of its module. `resume()` moves
every object alive then into the permanent generation (`gc.freeze()`: never traced again, so later collections,
from the first request on, trace only what requests allocate) and turns the collector back on. The cost is that the
cyclic garbage of the imports is never freed; requests' garbage is collected as usual. It is the sequence Python's
gc documentation gives for a server that forks its workers (`gc.disable()` early, `gc.freeze()` once the long-lived
objects exist, then `gc.enable()`), used here to spare the collector rather than copy-on-write pages.

Only in Lambda (AWS_LAMBDA_FUNCTION_NAME set, as Lambda and the local stack set it): a test process that imports a
handler keeps its collector and its objects as they were.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Mapping

from sklambda.config import LAMBDA_FUNCTION_NAME

_paused = False


def pause(env: Mapping[str, str] = os.environ) -> bool:
    """Turn the cyclic garbage collector off for a function's imports when running in Lambda; returns whether it did
    (False outside Lambda, or when the collector was already off: then `resume` leaves it as it was)."""
    global _paused
    if not env.get(LAMBDA_FUNCTION_NAME) or not gc.isenabled():
        return False
    gc.disable()
    _paused = True
    return True


def resume() -> None:
    """End the pause: freeze every live object into the permanent generation and turn the collector back on. Does
    nothing unless `pause` turned it off."""
    global _paused
    if not _paused:
        return
    _paused = False
    gc.freeze()
    gc.enable()
