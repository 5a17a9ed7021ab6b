"""The target runtime that publish checks a model against, on this machine: the host-Python copy of the
dependency layer plus the stand-in for what the Lambda runtime ships (see sklambda_infra.layer).

The CLI, the demo, the benchmarks and the tests call `ensure_runtime_path()` before publishing, so
`sklambda.publish` finds the runtime through SKLAMBDA_RUNTIME_PATH as a notebook user's would.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from sklambda.publishing.parity import ENV_RUNTIME_PATH, Runtime
from sklambda_infra.layer import LAYER_REQUIREMENTS, LayerBuildError, local_env, local_env_built, local_runtime_stand_in


def runtime_paths(log: Callable[[str], None] | None = None, **layer_options) -> list[str]:
    """[layer copy, Lambda runtime stand-in], built once per machine (~15 s with a warm pip cache).
    `layer_options` go to local_env (requirements=..., sklearn=...).

    Raises LayerBuildError when the build fails, or when the layer's requirement files are not there: they are
    part of a sklambda checkout (layers/deps/), not of the installed wheel.
    """
    missing = [str(p) for p in layer_options.get("requirements", LAYER_REQUIREMENTS) if not Path(p).is_file()]
    if missing:
        raise LayerBuildError(
            "publish checks every model against the Lambda layer's packages, pinned in layers/deps/*.txt of a "
            f"sklambda checkout, and there is none here (missing: {', '.join(missing)}). Publish from a clone "
            f"(`pip install -e .` in it), or set {ENV_RUNTIME_PATH} to the layer's host copy and the runtime "
            "stand-in that a clone's `make demo` builds under .sklambda/runtime/ (separated by ':')."
        )
    return [str(local_env(log=log, **layer_options)), str(local_runtime_stand_in(log=log))]


def local_runtime(log: Callable[[str], None] | None = None, **layer_options) -> Runtime:
    """The target runtime for publish on this machine (see runtime_paths)."""
    return Runtime.at(runtime_paths(log, **layer_options))


def runtime_path_ready() -> bool:
    """Whether ensure_runtime_path() returns at once: SKLAMBDA_RUNTIME_PATH is set, or the layer's host copy is in
    the cache (else it builds it, ~15 s, which a command shows as progress). False without the layer's pins."""
    if os.environ.get(ENV_RUNTIME_PATH, "").strip():
        return True
    try:
        return local_env_built()
    except (OSError, ValueError):  # no checkout's layers/deps: runtime_paths says so
        return False


def ensure_runtime_path(log: Callable[[str], None] | None = None) -> str:
    """Set SKLAMBDA_RUNTIME_PATH to the default local runtime unless it is set already; return its value."""
    if not os.environ.get(ENV_RUNTIME_PATH, "").strip():
        os.environ[ENV_RUNTIME_PATH] = os.pathsep.join(runtime_paths(log))
    return os.environ[ENV_RUNTIME_PATH]
