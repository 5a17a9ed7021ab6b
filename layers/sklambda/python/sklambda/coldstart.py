"""A Lambda cold start with CPython's cyclic garbage collector paused.

A cold start allocates hundreds of thousands of objects that live as long as the container: the modules of scipy,
scikit-learn, pandas, pydantic and botocore, botocore's service models, the unpickled model. The collector traces all
of them again and again while they pile up, which took about a fifth of the predict function's cold start on the
bench machine (BENCHMARKS.md "Cold start"), and what it finds is almost nothing: after the predict function's imports,
~1,100 unreachable objects of ~0.35 MB (mostly functions and classes; reference counting frees everything that is not
in a cycle whether the collector runs or not).

The predict function calls `pause()` before its imports and `resume()` when its first request is answered: its first
request is part of the cold start, since it imports scikit-learn while loading the model. `resume()` moves every object
alive then into the permanent generation (`gc.freeze()`: never traced again, so later collections trace only what
later requests allocate) and turns the collector back on. The cost: the cyclic garbage of the imports and of that first
request (at most what one request allocates, e.g. an error's traceback and the frames it holds) is never freed. It is
the sequence Python's gc documentation gives for a server that forks its workers (`gc.disable()` early, `gc.freeze()`
once the long-lived objects exist, then `gc.enable()`), used here to spare the collector rather than copy-on-write
pages.

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
    """Turn the cyclic garbage collector off for the cold start when running in Lambda; returns whether it did (False
    outside Lambda, or when the collector was already off: then `resume` leaves it as it was)."""
    global _paused
    if not env.get(LAMBDA_FUNCTION_NAME) or not gc.isenabled():
        return False
    gc.disable()
    _paused = True
    return True


def resume() -> None:
    """End the cold start: freeze every live object into the permanent generation and turn the collector back on.
    Does nothing unless `pause` turned it off (cheap to call after every request)."""
    global _paused
    if not _paused:
        return
    _paused = False
    gc.freeze()
    gc.enable()
