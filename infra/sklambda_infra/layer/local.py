"""The host-Python copy of the layer, and of the Lambda runtime's own libraries (``--local``).

The local stack's workers and the publish-time parity gate run on these folders, so a package missing from the layer
is missing there too. Both are built once into the cache (``.sklambda/runtime`` or $SKLAMBDA_RUNTIME_CACHE, shared by
worktrees) under a key made of the interpreter's tag and the pins' hash, and renamed into place when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from .install import LayerBuildError, check_pins, installed_dists, run_pip
from .manifest import runtime_env, write_manifest
from .paths import LAYER_REQUIREMENTS, LOCAL_CACHE, display_path
from .requirements import RUNTIME_STAND_IN, SKLEARN, boto3_requirement, pin_arguments, read_pins
from .verification import run_probe

# Environment variable read by local_cache; an argument wins over it.
CACHE_ENV = "SKLAMBDA_RUNTIME_CACHE"  # where host copies are kept instead of LOCAL_CACHE (shared by worktrees)

Log = Callable[[str], None]
# Wheels only, as in the Lambda build (no compiler runs); .pyc compiled for the host, so workers start warm.
HOST_PIP = ("--only-binary=:all:",)


def local_cache(cache: str | Path | None = None) -> Path:
    """Where host copies live: ``cache``, else $SKLAMBDA_RUNTIME_CACHE, else ``.sklambda/runtime`` in the repo."""
    return Path(cache or os.environ.get(CACHE_ENV) or LOCAL_CACHE).resolve()


def python_tag(python: str = sys.executable) -> str:
    """``cp311`` for a CPython 3.11 interpreter. Raises LayerBuildError when ``python`` does not run."""
    if Path(python) == Path(sys.executable):
        info = (sys.implementation.name, *sys.version_info[:2])
    else:
        code = "import sys; print(sys.implementation.name, *sys.version_info[:2])"
        proc = subprocess.run([python, "-I", "-c", code], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise LayerBuildError(f"cannot run {python}: {proc.stderr.strip()}")
        info = tuple(proc.stdout.split())
    name, major, minor = info
    return f"{'cp' if name == 'cpython' else name}{major}{minor}"


def local_env(
    requirements: Sequence[str | Path] = LAYER_REQUIREMENTS,
    python: str = sys.executable,
    sklearn: str | None = None,
    *,
    cache: str | Path | None = None,
    log: Log | None = None,
) -> Path:
    """The host-Python copy of the dependency layer: the ``python/`` folder to put on a worker's sys.path.

    Installs the exact pins of ``requirements`` (the layer's own files by default; they pin every transitive
    distribution, so ``pip install --no-deps``) as wheels for the interpreter ``python`` (pip's cache is reused),
    checks under ``python -I -S`` with nothing but that folder on sys.path that scikit-learn pipelines fit and
    round-trip, writes the runtime manifest (platform ``"host"``) and renames the finished folder into
    ``<cache>/<py-tag>-<sha12 of the pins>/python`` (cache: see local_cache). Built once: a folder already there is
    returned at once, without pip. ``sklearn`` replaces the scikit-learn pin (see sklearn_choice); ``log`` hears
    about a build (~15 s with a warm pip cache), not about reuse.

    Raises FileNotFoundError / ValueError from read_pins, LayerBuildError when pip fails, when it installs versions
    other than the pins, or when the copy does not import and fit.
    """
    pins = read_pins(requirements, sklearn)
    lines = pin_arguments(pins)
    final = _env_folder(lines, python, cache)
    folder = final / "python"
    if (folder / runtime_env().MANIFEST_NAME).is_file():
        return folder
    if log:
        log(f"building the host-Python copy of the dependency layer in {display_path(final)} (once; ~15 s)")
    t0 = time.perf_counter()

    def install(target: Path) -> None:
        _host_pip_install(python, target, ["--no-deps", *lines])
        problems = check_pins(installed_dists(target), pins)
        if problems:
            raise LayerBuildError("the host copy does not match the pins:\n  " + "\n  ".join(problems))
        expected = pins[SKLEARN].version if SKLEARN in pins else None
        probe = run_probe(python, ["fit", "--path", str(target), *(["--expect-sklearn", expected] if expected else [])])
        if not probe.get("ok"):
            detail = probe.get("error") or json.dumps(probe.get("checks"))
            raise LayerBuildError(f"the host copy in {target} does not import and fit: {detail}")
        write_manifest(target, "host", _python_version(python))

    _build_atomically(final, install)
    if log:
        log(f"host-Python copy of the dependency layer built in {time.perf_counter() - t0:.0f} s: {folder}")
    return folder


def _env_folder(pin_lines: Sequence[str], python: str, cache: str | Path | None) -> Path:
    """``<cache>/<py-tag>-<sha12 of the pins>``: where the host copy of these pins is built."""
    digest = hashlib.sha256(chr(10).join(pin_lines).encode()).hexdigest()[:12]
    return local_cache(cache) / f"{python_tag(python)}-{digest}"


def local_env_built(
    requirements: Sequence[str | Path] = LAYER_REQUIREMENTS,
    python: str = sys.executable,
    sklearn: str | None = None,
    *,
    cache: str | Path | None = None,
) -> bool:
    """Whether local_env would return at once (the copy is in the cache) rather than build it; no pip runs.

    Raises what read_pins raises (FileNotFoundError, ValueError)."""
    folder = _env_folder(pin_arguments(read_pins(requirements, sklearn)), python, cache) / "python"
    return (folder / runtime_env().MANIFEST_NAME).is_file()


def local_runtime_stand_in(
    python: str = sys.executable, *, cache: str | Path | None = None, log: Log | None = None
) -> Path:
    """What the Lambda Python runtime ships (boto3, botocore, s3transfer, jmespath, urllib3 and their python-dateutil
    and six), installed for the interpreter ``python``: the folder a local worker puts after its layers.

    The versions are those installed beside ``python`` when it is this interpreter (offline with a warm pip cache),
    else pip resolves pyproject's boto3 requirement. Built once into ``<cache>/<py-tag>-lambda-runtime-<sha12>/python``.
    Raises LayerBuildError when pip fails.
    """
    versions = _installed_versions(RUNTIME_STAND_IN) if Path(python) == Path(sys.executable) else {}
    if {"boto3", "botocore"} <= set(versions):
        args, no_deps = [f"{name}=={versions[name]}" for name in sorted(versions)], ["--no-deps"]
    else:
        args, no_deps = [boto3_requirement()], []
    key = f"{python_tag(python)}-lambda-runtime-{hashlib.sha256(chr(10).join(args).encode()).hexdigest()[:12]}"
    final = local_cache(cache) / key
    folder = final / "python"
    if (final / ".complete").is_file():
        return folder
    if log:
        log(f"installing boto3 for this Python as the Lambda runtime's stand-in in {display_path(final)} (once)")

    def install(target: Path) -> None:
        _host_pip_install(python, target, [*no_deps, *args])
        (target.parent / ".complete").write_text("\n".join(args) + "\n")

    _build_atomically(final, install)
    return folder


def _host_pip_install(python: str, target: Path, args: Sequence[str]) -> None:
    run_pip(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *HOST_PIP,
            "--target",
            str(target),
            *args,
        ]
    )


def _installed_versions(names: Iterable[str]) -> dict[str, str]:
    from importlib import metadata

    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _build_atomically(final: Path, install: Callable[[Path], None]) -> None:
    """Run ``install(<tmp>/python)`` in a scratch folder beside ``final`` and rename it into place; the folder is
    never seen half-built. When another process finished first, its copy is kept."""
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    try:
        (scratch / "python").mkdir()
        install(scratch / "python")
        try:
            scratch.rename(final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)


def _python_version(python: str) -> str:
    """major.minor of ``python`` (e.g. ``3.11``)."""
    tag = python_tag(python)
    digits = tag.lstrip("abcdefghijklmnopqrstuvwxyz")
    return f"{digits[0]}.{digits[1:]}"
