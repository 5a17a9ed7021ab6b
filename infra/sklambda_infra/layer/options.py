"""What a layer build is asked for: output folder, Lambda Python version and platforms, requirements, verification."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .install import DEFAULT_ARCH, DEFAULT_PYTHON_VERSION, lambda_platforms
from .paths import DEFAULT_OUT, LAYER_REQUIREMENTS


@dataclass
class Options:
    """A build's options; the defaults build for python3.12 on x86_64 from the layer's two requirements files."""

    out: Path = DEFAULT_OUT
    python_version: str = DEFAULT_PYTHON_VERSION
    platforms: Sequence[str] = field(default_factory=lambda: lambda_platforms(DEFAULT_ARCH))
    requirements: Sequence[Path] = LAYER_REQUIREMENTS
    verify: bool | None = None  # None: verify when a matching interpreter is found
    sklearn: str | None = None  # replaces requirements.txt's scikit-learn pin (see sklearn_choice)
