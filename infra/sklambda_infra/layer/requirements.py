"""The layer's pins: requirements files parsed, merged and checked, and the scikit-learn version chosen.

Every distribution of the layer, transitive ones included, is pinned with ``==`` in layers/deps/requirements.txt
(or extra-requirements.txt, the one place to add packages), so a build installs them with no resolution of its own.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .paths import LAYER_REQUIREMENTS, PYPROJECT

# Environment variable read by sklearn_choice; an argument wins over it.
SKLEARN_ENV = "SKLAMBDA_SKLEARN"  # build with this scikit-learn instead of requirements.txt's pin

SKLEARN = "scikit-learn"
# scikit-learn releases checked to import and fit pipelines with the layer's numpy 2.4.6, scipy 1.17.1 and pandas
# 3.1.1 on CPython 3.11 and 3.12 (manylinux_2_27/_2_28 wheels exist for both). 1.8.0 is the only 1.8.x release.
SUPPORTED_SKLEARN = ("1.8.0", "1.9.0", "1.9.1")

# Distributions the Lambda Python runtime already ships. A copy in a layer comes first on sys.path and would
# shadow the runtime's boto3/botocore, so they are pulled by pip (powertools -> jmespath, aws-xray-sdk ->
# botocore -> urllib3) and then removed.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3")
# What stands in for the runtime's libraries on the host: those, plus what botocore needs that the layer also has.
RUNTIME_STAND_IN = (*RUNTIME_PROVIDED, "python-dateutil", "six")


@dataclass(frozen=True)
class Pin:
    """One requirement line: ``name[extras]spec``; ``version`` is set when the spec is an exact ``==`` pin."""

    name: str
    extras: frozenset[str]
    spec: str

    def __str__(self) -> str:
        extras = f"[{','.join(sorted(self.extras))}]" if self.extras else ""
        return f"{self.name}{extras}{self.spec}"

    @property
    def version(self) -> str | None:
        if self.spec.startswith("==") and "," not in self.spec and "*" not in self.spec:
            return self.spec[2:]
        return None


_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?\s*([^;]*?)\s*$")


def canonical(name: str) -> str:
    """PEP 503 name: ``Python_Dateutil`` and ``python-dateutil`` are the same distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirement(line: str) -> Pin:
    if ";" in line:
        raise ValueError(f"environment markers are not supported in the layer pins: {line!r}")
    match = _REQUIREMENT.match(line)
    if not match:
        raise ValueError(f"not a requirement: {line!r}")
    name, extras, spec = match.groups()
    extra_set = frozenset(e.strip().lower() for e in (extras or "").split(",") if e.strip())
    return Pin(canonical(name), extra_set, re.sub(r"\s+", "", spec))


def parse_requirements(text: str) -> dict[str, Pin]:
    """Requirements-file pins by canonical name; comments and blank lines are skipped, options refused."""
    pins: dict[str, Pin] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-"):
            raise ValueError(f"pip options do not belong in the layer pins: {raw!r}")
        pin = parse_requirement(line)
        if pin.name in pins:
            raise ValueError(f"{pin.name} is pinned twice")
        pins[pin.name] = pin
    return pins


def read_pins(requirements: Sequence[str | Path] = LAYER_REQUIREMENTS, sklearn: str | None = None) -> dict[str, Pin]:
    """The layer's pins by canonical name, from its requirements files merged in order.

    ``sklearn`` (default: $SKLAMBDA_SKLEARN, else the files' pin) replaces scikit-learn's pin; see sklearn_choice.
    Raises FileNotFoundError for a missing file, ValueError for a package pinned twice (in one file or across two),
    a line that is not a plain requirement, or an unsupported ``sklearn``.
    """
    pins: dict[str, Pin] = {}
    for path in requirements:
        for name, pin in parse_requirements(Path(path).read_text()).items():
            if name in pins:
                raise ValueError(f"{name} is pinned twice: again in {path}")
            pins[name] = pin
    version = sklearn_choice(sklearn)
    if version is not None:
        if SKLEARN not in pins:
            raise ValueError(f"--sklearn {version}: the requirements do not pin {SKLEARN}")
        pins[SKLEARN] = Pin(SKLEARN, pins[SKLEARN].extras, f"=={version}")
    return pins


def sklearn_choice(sklearn: str | None = None) -> str | None:
    """The scikit-learn version asked for: ``sklearn``, else $SKLAMBDA_SKLEARN, else None (keep the pin).

    Raises ValueError when it is not one of SUPPORTED_SKLEARN.
    """
    version = sklearn or os.environ.get(SKLEARN_ENV) or None
    if version is not None and version not in SUPPORTED_SKLEARN:
        raise ValueError(
            f"scikit-learn {version} is not a supported layer build; supported: {', '.join(SUPPORTED_SKLEARN)}"
        )
    return version


def pin_arguments(pins: Mapping[str, Pin]) -> list[str]:
    """The pins as pip arguments (``name[extras]==version``), in a stable order."""
    return [str(pins[name]) for name in sorted(pins)]


def pyproject_dependencies(path: Path = PYPROJECT) -> dict[str, Pin]:
    """pyproject.toml's ``[project].dependencies`` by canonical name (the layer must pin each identically)."""
    return {pin.name: pin for pin in map(parse_requirement, _raw_dependencies(path))}


def boto3_requirement(path: Path = PYPROJECT) -> str:
    """pyproject's requirement on boto3 (``boto3>=1.40,<2``), the runtime stand-in's version range; ``boto3``
    when pyproject.toml is absent or does not name it."""
    if not path.exists():
        return "boto3"
    return next((d for d in _raw_dependencies(path) if canonical(re.split(r"[\[<>=!~ ]", d)[0]) == "boto3"), "boto3")


def _raw_dependencies(path: Path) -> list[str]:
    import tomllib  # only the full build and the tests read pyproject; the SAM build does not

    with path.open("rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])
