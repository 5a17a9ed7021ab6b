"""Installing the pins: ``pip install --target`` of manylinux wheels for the Lambda runtime, and what got installed.

pip is told the runtime's interpreter and platform (``--python-version``, ``--platform``, ``--only-binary``), so no
container is needed and nothing is compiled. What pip installed is read back from the ``*.dist-info`` folders and
checked against the pins.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .requirements import RUNTIME_PROVIDED, Pin, canonical

DEFAULT_PYTHON_VERSION = "3.12"
DEFAULT_ARCH = "x86_64"
# python3.12 runs on Amazon Linux 2023 (glibc 2.34). numpy 2.4 / scipy 1.17 / scikit-learn 1.9 publish cp312
# wheels only as manylinux_2_27/_2_28, so `--platform manylinux2014_x86_64` alone finds no numpy at all.
LAMBDA_GLIBC = (2, 34)
OLDEST_MANYLINUX = 17


class LayerBuildError(RuntimeError):
    """A layer build failed: pip failed, installed something unpinned, or the result does not import and fit."""


def lambda_platforms(arch: str = DEFAULT_ARCH, glibc: tuple[int, int] = LAMBDA_GLIBC) -> list[str]:
    """Every manylinux tag the Lambda runtime can load, newest first (pip prefers the earlier ones)."""
    major, minor = glibc
    tags = [f"manylinux_{major}_{m}_{arch}" for m in range(minor, OLDEST_MANYLINUX - 1, -1)]
    return [*tags, f"manylinux2014_{arch}"]  # pip widens manylinux2014 to manylinux2010 and manylinux1


def pip_install(requirements: Sequence[str], target: Path, python_version: str, platforms: Sequence[str]) -> None:
    """``pip install --target`` wheels for the Lambda runtime; pip's download cache is reused between runs.

    ``requirements`` are pip arguments: ``["-r", "requirements.txt"]`` or ``["boto3>=1.40,<2"]``.
    """
    _clear_target(target)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-compile",  # .pyc for the building interpreter would be useless, and is deleted anyway
        "--target",
        str(target),
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--only-binary=:all:",
        *(f"--platform={p}" for p in platforms),
        *requirements,
    ]
    run_pip(cmd)


def run_pip(cmd: Sequence[str]) -> None:
    """Run a pip command line; on failure echo pip's output to stderr and raise LayerBuildError."""
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise LayerBuildError(f"pip install failed ({proc.returncode}): {' '.join(cmd)}")


def _clear_target(target: Path) -> None:
    """Empty a previous build; refuse to wipe a directory that is not one (a mistyped --target)."""
    if target.exists():
        entries = list(target.iterdir())
        if entries and not any(e.name.endswith(".dist-info") for e in entries):
            raise LayerBuildError(f"refusing to empty {target}: it is not empty and holds no installed distribution")
        shutil.rmtree(target)
    target.mkdir(parents=True)


@dataclass(frozen=True)
class Dist:
    name: str  # canonical
    version: str
    dist_info: str  # folder name
    top_level: frozenset[str]  # first path parts it installed (``numpy``, ``numpy.libs``, ``six.py``...)


def installed_dists(root: Path) -> dict[str, Dist]:
    dists: dict[str, Dist] = {}
    for info in sorted(root.glob("*.dist-info")):
        meta = _metadata(info / "METADATA")
        name = canonical(meta.get("Name", info.name.split("-")[0]))
        tops = {info.name}
        record = info / "RECORD"
        if record.exists():
            for line in record.read_text(encoding="utf-8").splitlines():
                first = line.split(",", 1)[0].split("/", 1)[0]
                if first and first != ".." and not first.endswith(".dist-info"):
                    tops.add(first)
        dists[name] = Dist(name, meta.get("Version", "?"), info.name, frozenset(tops))
    return dists


def _metadata(path: Path) -> dict[str, str]:
    fields: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line.strip():
                break  # headers end at the first blank line; the long description follows
            key, sep, value = line.partition(": ")
            if sep and key not in fields:
                fields[key] = value.strip()
    return fields


def check_pins(dists: Mapping[str, Dist], pins: Mapping[str, Pin]) -> list[str]:
    """What makes the installed layer differ from its pins (pip pulled something unpinned, say)."""
    problems = [f"{n} is provided by the Lambda runtime and must not be pinned" for n in pins if n in RUNTIME_PROVIDED]
    for name, dist in sorted(dists.items()):
        if name in RUNTIME_PROVIDED:
            continue
        pin = pins.get(name)
        if pin is None or pin.version is None:
            problems.append(
                f"{name}=={dist.version} was installed but is not pinned with == in requirements.txt or "
                "extra-requirements.txt"
            )
        elif pin.version != dist.version:
            problems.append(f"{name}: the requirements pin {pin.version} but pip installed {dist.version}")
    return problems
