"""Where the layer build finds its inputs in the repository, and where it writes its outputs."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
REQUIREMENTS = REPO_ROOT / "layers" / "deps" / "requirements.txt"
# The one place to add packages to the layer (see its header); read by every build alongside REQUIREMENTS.
EXTRA_REQUIREMENTS = REPO_ROOT / "layers" / "deps" / "extra-requirements.txt"
LAYER_REQUIREMENTS = (REQUIREMENTS, EXTRA_REQUIREMENTS)
PYPROJECT = REPO_ROOT / "pyproject.toml"
RUNTIME_LAYER_SRC = REPO_ROOT / "layers" / "sklambda" / "python" / "sklambda"
FUNCTION_SRC = REPO_ROOT / "functions" / "predict"
DEFAULT_OUT = REPO_ROOT / "build" / "layers"
REPORT_NAME = "layer-report.json"
# Host-Python copies of the layer and of the Lambda runtime's own libraries (git-ignored).
LOCAL_CACHE = REPO_ROOT / ".sklambda" / "runtime"


def display_path(path: Path) -> str:
    """``path`` relative to the repository when it is inside it (``build/layers``), else absolute."""
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)
