"""Build, slim, measure and verify the Lambda dependency layer.

    python -m sklambda_infra.layer [--out build/layers] [--python-version 3.12] [--arch x86_64]
                                   [--platform TAG ...] [--verify | --no-verify]
    python -m sklambda_infra.layer --deps-only --target DIR      # what layers/deps/Makefile runs in `sam build`
    python -m sklambda_infra.layer --local                        # the host-Python copy: prints its python/ folder
    (every form takes [--requirements FILE ...] [--sklearn VERSION])

The full build installs layers/deps/requirements.txt and extra-requirements.txt for the Lambda runtime
(manylinux wheels, CPython 3.12),
removes what the runtime already provides (boto3 and friends: shipping our own would shadow them), slims the
tree (tests, caches, stubs, build sources, debug symbols), copies the runtime layer and the function code beside
it, measures everything against Lambda's 250 MiB unzipped limit and writes ``<out>/layer-report.json``.
``--verify`` then proves, under a real Python 3.12 that sees nothing but the layer and a boto3-only stand-in for
the runtime's own libraries, that every module which imported before slimming still imports, and that
scikit-learn pipelines fit, round-trip through joblib and predict.

Every build writes the runtime manifest (``sklambda-runtime.json``: packages, modules, fingerprint) into the
layer's ``python/`` folder. ``--local`` (``local_env()``) installs the same pins for this machine's interpreter into
``.sklambda/runtime/<py-tag>-<sha12 of the pins>/python``: the local stack's workers and the publish-time parity
gate run on it, so a package missing from the layer is missing there too.

Standard library only: the SAM makefile builder may run this file with whatever python3 is on PATH, and the
verifying Python 3.12 runs it as a script (``_probe``) with no site-packages at all.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

REPO_ROOT = Path(__file__).resolve().parents[2]
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

# Environment variables this tool reads (besides SKLAMBDA_PY312 in find_python); an argument wins over each.
SKLEARN_ENV = "SKLAMBDA_SKLEARN"  # build with this scikit-learn instead of requirements.txt's pin
CACHE_ENV = "SKLAMBDA_RUNTIME_CACHE"  # where host copies are kept instead of LOCAL_CACHE (shared by worktrees)

SKLEARN = "scikit-learn"
# scikit-learn releases checked to import and fit pipelines with the layer's numpy 2.4.6, scipy 1.17.1 and pandas
# 3.1.1 on CPython 3.11 and 3.12 (manylinux_2_27/_2_28 wheels exist for both). 1.8.0 is the only 1.8.x release.
SUPPORTED_SKLEARN = ("1.8.0", "1.9.0", "1.9.1")

# Lambda refuses a function whose code plus layers unzip to more than this ("must be smaller than 262144000
# bytes"): 250 MiB. Our own budget leaves room for the models' growth and a second layer.
LAMBDA_UNZIPPED_LIMIT = 262_144_000
TARGET_UNZIPPED = 200 * 1024 * 1024
# A zip larger than this cannot be uploaded to Lambda directly, only through S3 (as `sam deploy` does).
LAMBDA_DIRECT_UPLOAD_ZIP = 50 * 1024 * 1024

DEFAULT_PYTHON_VERSION = "3.12"
DEFAULT_ARCH = "x86_64"
# python3.12 runs on Amazon Linux 2023 (glibc 2.34). numpy 2.4 / scipy 1.17 / scikit-learn 1.9 publish cp312
# wheels only as manylinux_2_27/_2_28, so `--platform manylinux2014_x86_64` alone finds no numpy at all.
LAMBDA_GLIBC = (2, 34)
OLDEST_MANYLINUX = 17

# Distributions the Lambda Python runtime already ships. A copy in a layer comes first on sys.path and would
# shadow the runtime's boto3/botocore, so they are pulled by pip (powertools -> jmespath, aws-xray-sdk ->
# botocore -> urllib3) and then removed.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3")
# What stands in for the runtime's libraries on the host: those, plus what botocore needs that the layer also has.
RUNTIME_STAND_IN = (*RUNTIME_PROVIDED, "python-dateutil", "six")

# Never removed, whatever a rule says: runtime code of the layer's packages that only looks like test code.
KEEP = ("numpy/testing", "pandas/_testing", "sklearn/utils/_testing.py", "scipy/_lib/_testutils.py")

TEST_DIRS = frozenset({"tests", "test"})
CACHE_DIRS = frozenset({"__pycache__"})
# Docs and examples folders that are not importable packages (no __init__.py), e.g. numpy/random/_examples.
DOC_DIRS = frozenset({"doc", "docs", "example", "examples", "_examples"})
# Type stubs and build inputs: never read when the code runs.
SOURCE_SUFFIXES = frozenset(
    {".pyi", ".pyx", ".pxd", ".pxi", ".tp", ".c", ".cc", ".cpp", ".cxx", ".h", ".hh", ".hpp", ".f", ".f90", ".a"}
)
SOURCE_NAMES = frozenset({"meson.build"})

# Slimming categories, in report order.
RUNTIME = "runtime_provided"
TESTS = "tests"
CACHES = "caches"
SOURCES = "stubs_and_sources"
DOCS = "docs_examples"
SCRIPTS = "scripts"
CATEGORIES = (RUNTIME, TESTS, CACHES, SOURCES, DOCS, SCRIPTS)

MIB = 1024 * 1024


# --------------------------------------------------------------------------------------------------------------
# Requirements


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


class LayerBuildError(RuntimeError):
    """A layer build failed: pip failed, installed something unpinned, or the result does not import and fit."""


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
    import tomllib  # only the full build and the tests read pyproject; the SAM build does not

    with path.open("rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    return {pin.name: pin for pin in map(parse_requirement, deps)}


# --------------------------------------------------------------------------------------------------------------
# Installing


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
    _run_pip(cmd)


def _run_pip(cmd: Sequence[str]) -> None:
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


# --------------------------------------------------------------------------------------------------------------
# Slimming


@dataclass
class SlimResult:
    removed_bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    removed_files: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    removed_paths: dict[str, list[str]] = field(default_factory=lambda: {c: [] for c in CATEGORIES})
    runtime_provided: list[str] = field(default_factory=list)  # "botocore 1.44.8": what pip pulled and we removed


def plan_slim(root: Path) -> list[tuple[Path, str]]:
    """What slimming removes from an installed tree, as (path, category): folders whole, files one by one."""
    plan: list[tuple[Path, str]] = []
    runtime_tops = set(RUNTIME_PROVIDED)  # their import names are their distribution names
    for dist in installed_dists(root).values():
        if dist.name in RUNTIME_PROVIDED:
            runtime_tops |= dist.top_level
    for entry in sorted(root.iterdir()):
        stem = entry.name.split("-")[0] if entry.name.endswith(".dist-info") else entry.name
        if entry.name in runtime_tops or canonical(stem) in RUNTIME_PROVIDED or _is_py_module_of(entry, runtime_tops):
            plan.append((entry, RUNTIME))
        elif entry.is_dir() and entry.name == "bin":
            plan.append((entry, SCRIPTS))  # console scripts (f2py, jp.py): nothing runs them in Lambda
        elif entry.is_dir() and entry.name in CACHE_DIRS:
            plan.append((entry, CACHES))
        elif entry.is_dir() and entry.name.endswith("-stubs"):
            plan.append((entry, SOURCES))
        elif entry.is_dir():
            plan.extend(_plan_package(entry))
        elif _is_source(entry):
            plan.append((entry, SOURCES))
    return plan


def _is_py_module_of(entry: Path, tops: set[str]) -> bool:
    return entry.suffix == ".py" and entry.stem in tops


def _plan_package(package: Path) -> Iterator[tuple[Path, str]]:
    for dirpath, dirnames, filenames in os.walk(package):
        here = Path(dirpath)
        for name in sorted(dirnames):
            sub = here / name
            category = None
            if name in TEST_DIRS:
                category = TESTS
            elif name in CACHE_DIRS:
                category = CACHES
            elif name in DOC_DIRS and not (sub / "__init__.py").exists():
                category = DOCS
            if category:
                dirnames.remove(name)  # removed whole: no need to look inside
                yield sub, category
        for name in sorted(filenames):
            path = here / name
            if _is_source(path):
                yield path, SOURCES
            elif name.endswith(".pyc"):
                yield path, CACHES


def _is_source(path: Path) -> bool:
    return path.suffix in SOURCE_SUFFIXES or path.name in SOURCE_NAMES


def slim(root: Path) -> SlimResult:
    """Remove runtime-provided packages, tests, caches, stubs, build sources, docs and scripts from ``root``.

    Refuses (before deleting anything) if a rule would touch a KEEP path such as numpy/testing.
    """
    result = SlimResult()
    dists = installed_dists(root)
    result.runtime_provided = sorted(f"{d.name} {d.version}" for d in dists.values() if d.name in RUNTIME_PROVIDED)
    plan = plan_slim(root)
    keep = [root / k for k in KEEP]
    for path, _ in plan:
        for kept in keep:
            if kept == path or path in kept.parents:
                raise RuntimeError(f"slimming would remove {kept.relative_to(root)}, which the runtime needs")
    for path, category in plan:
        if not path.exists() and not path.is_symlink():
            continue
        size, files = tree_size(path)
        result.removed_bytes[category] += size
        result.removed_files[category] += files
        result.removed_paths[category].append(path.relative_to(root).as_posix())
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    _remove_empty_dirs(root)
    return result


def _remove_empty_dirs(root: Path) -> None:
    for dirpath, _dirnames, _filenames in os.walk(root, topdown=False):
        path = Path(dirpath)
        if path != root and not any(path.iterdir()):
            path.rmdir()


@dataclass(frozen=True)
class StripResult:
    saved_bytes: int
    files: int
    skipped: str | None = None  # why nothing was stripped


def strip_targets(root: Path) -> list[Path]:
    """The shared objects to strip: all of them except the auditwheel-vendored ones (``numpy.libs/`` and co).

    auditwheel rewrites those with patchelf, and stripping them afterwards corrupts them: numpy then fails with
    "libscipy_openblas64_...so: ELF load command address/offset not page-aligned" (seen with numpy 2.4.6).
    """
    return sorted(
        p
        for p in root.rglob("*.so*")
        if p.is_file()
        and not p.is_symlink()
        and _is_shared_object(p)
        and not p.relative_to(root).parts[0].endswith(".libs")
    )


def strip_binaries(root: Path) -> StripResult:
    """``strip --strip-unneeded`` the strip_targets; skipped, with the reason, where binutils is missing."""
    strip = shutil.which("strip")
    if strip is None:
        return StripResult(0, 0, "`strip` not found (binutils): shared objects keep their symbols")
    targets = strip_targets(root)
    before = sum(p.stat().st_size for p in targets)
    for start in range(0, len(targets), 100):
        batch = [str(p) for p in targets[start : start + 100]]
        proc = subprocess.run([strip, "--strip-unneeded", *batch], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"strip failed: {proc.stderr.strip()}")
    after = sum(p.stat().st_size for p in targets)
    return StripResult(before - after, len(targets))


def _is_shared_object(path: Path) -> bool:
    return path.suffix == ".so" or ".so." in path.name


# --------------------------------------------------------------------------------------------------------------
# Measuring


def tree_size(path: Path) -> tuple[int, int]:
    """Unzipped bytes and file count, as Lambda counts them (the sum of the files' sizes)."""
    if not path.exists() and not path.is_symlink():
        return 0, 0
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size, 1
    total = files = 0
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in filenames:
            total += os.lstat(os.path.join(dirpath, name)).st_size
            files += 1
    return total, files


def package_sizes(root: Path, dists: Mapping[str, Dist]) -> dict[str, int]:
    """Bytes per distribution (``numpy`` counts numpy/, numpy.libs/ and its dist-info); others by entry name."""
    owner = {top: name for name, dist in dists.items() for top in dist.top_level}
    sizes: dict[str, int] = {}
    for entry in root.iterdir():
        key = owner.get(entry.name, entry.name)
        sizes[key] = sizes.get(key, 0) + tree_size(entry)[0]
    return sizes


def zip_tree(src: Path, dest: Path) -> int:
    """Zip the contents of ``src`` (deflate, as ``sam package`` does); returns the archive's size."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        if src.exists():
            for dirpath, dirnames, filenames in os.walk(src):
                dirnames.sort()
                for name in sorted(filenames):
                    path = Path(dirpath) / name
                    zf.write(path, path.relative_to(src).as_posix())
    return dest.stat().st_size


def copy_code(src: Path, dest: Path) -> bool:
    """Copy our own code as it would be deployed (no caches, no tests); False when ``src`` does not exist yet."""
    if dest.exists():
        shutil.rmtree(dest)
    if not src.is_dir():
        dest.mkdir(parents=True)
        return False
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "tests", ".pytest_cache"))
    return True


# --------------------------------------------------------------------------------------------------------------
# The runtime manifest


def runtime_env() -> ModuleType:
    """``sklambda.runtime_env`` (stdlib only): imported when sklambda is installed, else loaded from its file, since
    ``sam build`` runs this tool with a bare python3."""
    try:
        from sklambda import runtime_env as module
    except ImportError:
        name = "sklambda_runtime_env"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, RUNTIME_LAYER_SRC / "runtime_env.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses looks the module up while building the class
        spec.loader.exec_module(module)
    return module


_NOT_MODULES = (".dist-info", ".data", ".libs", "-stubs")


def layer_modules(root: Path) -> list[str]:
    """Top-level import names present in an installed tree.

    Packages (folders with ``__init__.py``, or namespace folders a distribution installed code into, per its RECORD),
    ``*.py`` modules and extension modules (``name.cpython-312-x86_64-linux-gnu.so``, ``name.abi3.so``); not
    ``*.dist-info``, vendored ``*.libs``, stubs, ``bin/`` or caches.
    """
    namespace_tops = {
        top for dist in installed_dists(root).values() for top in dist.top_level if not top.endswith(_NOT_MODULES)
    }
    names: set[str] = set()
    for entry in root.iterdir():
        if entry.is_dir():
            if entry.name.endswith(_NOT_MODULES) or entry.name in CACHE_DIRS or not entry.name.isidentifier():
                continue
            if (entry / "__init__.py").exists() or (entry.name in namespace_tops and any(entry.rglob("*.py"))):
                names.add(entry.name)
        elif entry.suffix == ".py" or _is_shared_object(entry):
            stem = entry.name.split(".", 1)[0]
            if stem.isidentifier():
                names.add(stem)
    return sorted(names)


def write_manifest(root: Path, platform_tag: str, python_version: str) -> Path:
    """Write ``sklambda-runtime.json`` into a layer's ``python/`` folder ``root``; returns its path.

    ``packages`` are the distributions installed in ``root`` (their dist-info), less the runtime-provided ones;
    ``modules`` come from layer_modules; ``platform_tag`` is the wheels' manylinux tag or ``"host"``;
    ``python_version`` is major.minor.
    """
    packages = {name: dist.version for name, dist in installed_dists(root).items() if name not in RUNTIME_PROVIDED}
    manifest = runtime_env().RuntimeManifest(
        python=python_version, platform=platform_tag, packages=packages, modules=tuple(layer_modules(root))
    )
    return manifest.write(root)


def manifest_path(folder: Path) -> Path:
    """Where a layer's ``python/`` folder keeps its manifest (read it with ``RuntimeManifest.read(folder)``)."""
    return folder / runtime_env().MANIFEST_NAME


# --------------------------------------------------------------------------------------------------------------
# The host-Python copy of the layer, and of the Lambda runtime's own libraries

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
    key = f"{python_tag(python)}-{hashlib.sha256(chr(10).join(lines).encode()).hexdigest()[:12]}"
    final = local_cache(cache) / key
    folder = final / "python"
    if (folder / runtime_env().MANIFEST_NAME).is_file():
        return folder
    if log:
        log(f"building the host-Python copy of the dependency layer in {_display_path(final)} (once; ~15 s)")
    t0 = time.perf_counter()

    def install(target: Path) -> None:
        _host_pip_install(python, target, ["--no-deps", *lines])
        problems = check_pins(installed_dists(target), pins)
        if problems:
            raise LayerBuildError("the host copy does not match the pins:\n  " + "\n  ".join(problems))
        expected = pins[SKLEARN].version if SKLEARN in pins else None
        probe = _run_probe(
            python, ["fit", "--path", str(target), *(["--expect-sklearn", expected] if expected else [])]
        )
        if not probe.get("ok"):
            detail = probe.get("error") or json.dumps(probe.get("checks"))
            raise LayerBuildError(f"the host copy in {target} does not import and fit: {detail}")
        write_manifest(target, "host", _python_version(python))

    _build_atomically(final, install)
    if log:
        log(f"host-Python copy of the dependency layer built in {time.perf_counter() - t0:.0f} s: {folder}")
    return folder


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
        spec = next((d for d in _raw_dependencies() if canonical(re.split(r"[\[<>=!~ ]", d)[0]) == "boto3"), "boto3")
        args, no_deps = [spec], []
    key = f"{python_tag(python)}-lambda-runtime-{hashlib.sha256(chr(10).join(args).encode()).hexdigest()[:12]}"
    final = local_cache(cache) / key
    folder = final / "python"
    if (final / ".complete").is_file():
        return folder
    if log:
        log(f"installing boto3 for this Python as the Lambda runtime's stand-in in {_display_path(final)} (once)")

    def install(target: Path) -> None:
        _host_pip_install(python, target, [*no_deps, *args])
        (target.parent / ".complete").write_text("\n".join(args) + "\n")

    _build_atomically(final, install)
    return folder


def _host_pip_install(python: str, target: Path, args: Sequence[str]) -> None:
    _run_pip(
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


# --------------------------------------------------------------------------------------------------------------
# Verifying under the Lambda Python version


def find_python(version: str = DEFAULT_PYTHON_VERSION) -> str | None:
    """The interpreter to verify with: $SKLAMBDA_PY312, then python3.12 on PATH, then pyenv's versions."""
    env_name = f"SKLAMBDA_PY{version.replace('.', '')}"
    pyenv_root = os.environ.get("PYENV_ROOT", str(Path.home() / ".pyenv"))
    found = glob.glob(os.path.join(pyenv_root, "versions", f"{version}.*", "bin", f"python{version}"))
    found.sort(key=lambda p: [int(x) if x.isdigit() else 0 for x in Path(p).parts[-3].split(".")], reverse=True)
    for candidate in (os.environ.get(env_name), shutil.which(f"python{version}"), *found):
        if not candidate:
            continue
        try:
            proc = subprocess.run(
                [candidate, "-I", "-c", "import sys; print('%d.%d' % sys.version_info[:2]); print(sys.executable)"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except OSError:
            continue
        lines = proc.stdout.split()
        if proc.returncode == 0 and len(lines) == 2 and lines[0] == version:
            return lines[1]  # the real executable, not a pyenv shim
    return None


def runtime_stand_in(out: Path, python_version: str, platforms: Sequence[str]) -> Path:
    """A folder with only boto3 and what it pulls, standing in for the libraries the Lambda runtime provides."""
    spec = "boto3"
    if PYPROJECT.exists():
        spec = next((d for d in _raw_dependencies() if canonical(re.split(r"[\[<>=!~ ]", d)[0]) == "boto3"), spec)
    folder = out / ".lambda-runtime" / f"python{python_version}"
    stamp = folder / ".installed"
    wanted = json.dumps({"spec": spec, "platforms": list(platforms)})
    if not (stamp.exists() and stamp.read_text() == wanted):
        pip_install([spec], folder, python_version, platforms)
        stamp.write_text(wanted)
    return folder


def _raw_dependencies() -> list[str]:
    import tomllib

    with PYPROJECT.open("rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def layer_packages(root: Path) -> list[str]:
    """Top-level importable names in an installed tree, without the runtime-provided ones."""
    names = set()
    for entry in root.iterdir():
        if entry.is_dir() and (entry / "__init__.py").exists():
            names.add(entry.name)
        elif entry.suffix == ".py":
            names.add(entry.stem)
    return sorted(n for n in names if canonical(n) not in RUNTIME_PROVIDED and n not in RUNTIME_PROVIDED)


def _run_probe(python: str, args: Sequence[str], timeout: int = 900) -> dict:
    """Run this file as a script under ``python -I -S -B``: no site-packages, no PYTHON* variables, no .pyc.

    -I ignores PYTHONPATH, so the layer's folders are passed as arguments and put on sys.path by the probe.
    """
    with tempfile.TemporaryDirectory(prefix="sklambda-probe-") as tmp:
        result_file = Path(tmp) / "result.json"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": tmp,
            "LANG": "C.UTF-8",
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_SERVICE_NAME": "sklambda-layer-verify",
            "POWERTOOLS_METRICS_NAMESPACE": "sklambda",
        }
        cmd = [python, "-I", "-S", "-B", str(Path(__file__).resolve()), "_probe", *args, "--result", str(result_file)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, env=env, timeout=timeout, check=False)
        if not result_file.exists():
            tail = (proc.stdout + proc.stderr)[-4000:]
            return {"ok": False, "error": f"probe exited {proc.returncode} without a result:\n{tail}"}
        return json.loads(result_file.read_text())


def _reference_model(tmp: Path) -> dict | None:
    """Fit and pickle a pipeline with *this* interpreter's scikit-learn (the publisher's side), if it has one."""
    try:
        import joblib
        import sklearn
    except ImportError:
        return None
    x, y = demo_data(400, seed=7)
    model = demo_pipelines()["logistic_regression"].fit(x, y)
    path = tmp / "reference.joblib"
    joblib.dump(model, path)
    proba = model.predict_proba(x.head(20)).tolist()
    return {
        "path": str(path),
        "proba": proba,
        "python": ".".join(map(str, sys.version_info[:3])),
        "sklearn": sklearn.__version__,
    }


def verify(
    python: str,
    deps: Path,
    runtime_layer: Path,
    stand_in: Path,
    baseline: Mapping[str, object] | None,
    packages: Sequence[str],
) -> dict:
    """Smoke-test the slimmed layer and re-import every module that imported before slimming."""
    with tempfile.TemporaryDirectory(prefix="sklambda-verify-") as tmp:
        reference = _reference_model(Path(tmp))
        smoke_args = ["smoke", "--path", str(deps), "--path", str(runtime_layer), "--path", str(stand_in)]
        smoke_args += ["--runtime-path", str(stand_in), "--layer-path", str(deps)]
        if reference:
            (Path(tmp) / "reference.json").write_text(json.dumps(reference))
            smoke_args += ["--reference", str(Path(tmp) / "reference.json")]
        smoke = _run_probe(python, smoke_args)
    walk_args = ["walk", "--path", str(deps), "--path", str(runtime_layer), "--path", str(stand_in)]
    walk = _run_probe(python, [*walk_args, *_flags(packages)])
    result: dict = {"interpreter": python, "smoke": smoke, "walk": _walk_summary(walk, baseline)}
    result["ok"] = bool(smoke.get("ok")) and bool(result["walk"]["ok"])
    if reference:
        result["reference_model"] = {k: v for k, v in reference.items() if k in ("python", "sklearn")}
    return result


def _walk_summary(walk: Mapping, baseline: Mapping | None) -> dict:
    """Slimming broke a module when it imported before slimming and fails after (same interpreter, same path)."""
    if "imported" not in walk or baseline is None or "imported" not in baseline:
        errors = [r.get("error", "") for r in (walk, baseline or {"error": "no baseline"}) if "imported" not in r]
        return {"ok": False, "error": "module walk failed: " + " | ".join(errors)}
    before, after = set(baseline["imported"]), set(walk["imported"])
    failed: Mapping[str, str] = walk["failed"]
    broken = sorted(m for m in before - after if m in failed)
    return {
        "ok": not broken,
        "modules_imported_before_slimming": len(before),
        "modules_imported": len(after),
        "modules_failed": len(failed),
        "removed_modules": len(before - after - set(failed)),
        "broken_by_slimming": {m: failed[m] for m in broken},
        # Failing before and after slimming alike: optional extras nobody installs (pyarrow, pytest, jinja2...).
        "optional_missing": walk.get("missing_counts", {}),
        "seconds": walk["seconds"],
    }


# --------------------------------------------------------------------------------------------------------------
# The probe: runs inside the verifying interpreter (python3.12 -I -S -B layer.py _probe ...)


def demo_data(n: int, seed: int):
    """A small mixed-type classification table; numpy's generator gives the same rows on every Python."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(float),
            "income": np.round(rng.lognormal(10.5, 0.5, n), 2),
            "plan": rng.choice(["basic", "plus", "pro"], n),
            "region": rng.choice(["eu", "us", "apac"], n),
        }
    )
    logit = 0.04 * (x["age"] - 45) + 1.2 * (x["plan"] == "pro") - 0.6 * (x["region"] == "apac")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y


def demo_pipelines() -> dict:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def pre() -> ColumnTransformer:
        return ColumnTransformer(
            [
                ("num", StandardScaler(), ["age", "income"]),
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan", "region"]),
            ]
        )

    return {
        "logistic_regression": Pipeline([("pre", pre()), ("model", LogisticRegression(max_iter=1000))]),
        "random_forest": Pipeline([("pre", pre()), ("model", RandomForestClassifier(n_estimators=50, random_state=0))]),
    }


def _probe_smoke(ns: argparse.Namespace) -> dict:
    import importlib
    import pkgutil

    started = time.perf_counter()
    import joblib
    import numpy as np
    import pandas as pd
    import pydantic
    import scipy
    import sklearn

    imported_at = time.perf_counter()
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_xray_sdk.core import xray_recorder  # the tracer's SDK, on the runtime's botocore

    powertools_at = time.perf_counter()
    import boto3
    import botocore
    import threadpoolctl

    result: dict = {"python": ".".join(map(str, sys.version_info[:3]))}
    result["import_seconds"] = {
        "numpy+scipy+pandas+sklearn+joblib+pydantic": round(imported_at - started, 3),
        "powertools+xray": round(powertools_at - imported_at, 3),
    }
    result["versions"] = {
        m.__name__: m.__version__ for m in (sklearn, scipy, np, pd, joblib, pydantic, boto3, botocore, threadpoolctl)
    }
    checks: dict[str, bool] = {}
    # boto3/botocore must come from the runtime stand-in, never from the layer.
    runtime_path = Path(ns.runtime_path).resolve()
    checks["boto3_from_runtime"] = all(
        Path(m.__file__).resolve().is_relative_to(runtime_path) for m in (boto3, botocore)
    )
    checks["layer_has_no_runtime_libs"] = not any(
        (Path(ns.layer_path) / n).exists() for n in (*RUNTIME_PROVIDED, *(f"{n}.py" for n in RUNTIME_PROVIDED))
    )
    result["thread_pools"] = [
        {k: info.get(k) for k in ("internal_api", "version", "num_threads", "filepath")}
        for info in threadpoolctl.threadpool_info()
    ]
    checks["native_libs_loaded"] = bool(result["thread_pools"])  # OpenBLAS (numpy's, scipy's), OpenMP

    # Powertools as the handler uses it.
    Logger(service="verify")
    metrics = Metrics(namespace="sklambda", service="verify")
    metrics.add_metric(name="Verified", unit=MetricUnit.Count, value=1)
    checks["metrics_emf"] = "_aws" in metrics.serialize_metric_set()
    Tracer(service="verify")
    checks["xray_recorder"] = xray_recorder is not None
    app = APIGatewayRestResolver(enable_validation=True)

    @app.get("/ping")
    def ping() -> dict:
        return {"ok": True}

    response = app.resolve(_rest_event("/ping"), None)
    checks["rest_resolver"] = response["statusCode"] == 200 and json.loads(response["body"]) == {"ok": True}

    # Every module of our runtime layer imports.
    import sklambda

    ours = [m.name for m in pkgutil.walk_packages(sklambda.__path__, "sklambda.")]
    for name in ours:
        importlib.import_module(name)
    result["sklambda_modules"] = ours
    checks["sklambda_modules"] = bool(ours)

    # Fit, round-trip and predict inside this interpreter.
    x, y = demo_data(600, seed=0)
    models = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, pipeline in demo_pipelines().items():
            t0 = time.perf_counter()
            pipeline.fit(x, y)
            fit_s = time.perf_counter() - t0
            path = Path(tmp) / f"{name}.joblib"
            joblib.dump(pipeline, path)
            loaded = joblib.load(path)
            t0 = time.perf_counter()
            proba = loaded.predict_proba(x.head(1))
            predict_ms = (time.perf_counter() - t0) * 1000
            same = bool(np.array_equal(loaded.predict_proba(x), pipeline.predict_proba(x)))
            models[name] = {
                "train_accuracy": round(float((loaded.predict(x) == y).mean()), 4),
                "proba_first_row": [round(float(p), 6) for p in proba[0]],
                "fit_seconds": round(fit_s, 3),
                "predict_one_row_ms": round(predict_ms, 2),
                "artifact_bytes": path.stat().st_size,
                "roundtrip_identical": same,
            }
            checks[f"{name}_roundtrip"] = same
    result["models"] = models

    if ns.reference:
        # A model pickled by the publisher's interpreter (the project venv) loads and agrees here.
        ref = json.loads(Path(ns.reference).read_text())
        model = joblib.load(ref["path"])
        x_ref, _ = demo_data(400, seed=7)
        diff = float(np.abs(model.predict_proba(x_ref.head(20)) - np.asarray(ref["proba"])).max())
        result["reference_model"] = {"pickled_by_python": ref["python"], "max_abs_proba_diff": diff}
        checks["reference_model_agrees"] = diff < 1e-9
    result["checks"] = checks
    result["ok"] = all(checks.values())
    return result


def _rest_event(path: str) -> dict:
    return {
        "resource": path,
        "path": path,
        "httpMethod": "GET",
        "headers": {"Accept": "application/json"},
        "multiValueHeaders": {"Accept": ["application/json"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": "GET",
            "path": f"/test{path}",
            "stage": "test",
            "requestId": "verify",
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": None,
        "isBase64Encoded": False,
    }


def _probe_walk(ns: argparse.Namespace) -> dict:
    """Import every module of the given packages; report what imported and what failed (and why)."""
    import contextlib
    import importlib
    import io
    import pkgutil

    started = time.perf_counter()
    imported: list[str] = []
    failed: dict[str, str] = {}
    missing: dict[str, int] = {}

    def attempt(name: str) -> object | None:
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                module = importlib.import_module(name)
        except BaseException as exc:  # a module may raise anything, SystemExit included
            if isinstance(exc, KeyboardInterrupt):
                raise
            failed[name] = f"{type(exc).__name__}: {exc}"[:300]
            if isinstance(exc, ModuleNotFoundError) and exc.name:
                top = exc.name.split(".")[0]
                missing[top] = missing.get(top, 0) + 1
            return None
        imported.append(name)
        return module

    for package in ns.package:
        module = attempt(package)
        for info in pkgutil.walk_packages(getattr(module, "__path__", []), f"{package}.", onerror=lambda _: None):
            parts = info.name.split(".")
            if parts[-1] == "__main__" or TEST_DIRS & set(parts):
                continue  # __main__ runs a program; tests are removed on purpose
            attempt(info.name)
    return {
        "ok": True,
        "packages": list(ns.package),
        "imported": sorted(imported),
        "failed": failed,
        "missing_counts": dict(sorted(missing.items(), key=lambda kv: -kv[1])),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _probe_fit(ns: argparse.Namespace) -> dict:
    """The host copy's check: the numeric stack imports from the given path alone, and pipelines fit and round-trip."""
    import joblib
    import numpy as np
    import pandas as pd
    import scipy
    import sklearn

    versions = {m.__name__: m.__version__ for m in (sklearn, scipy, np, pd, joblib)}
    checks = {"sklearn_version": ns.expect_sklearn in (None, sklearn.__version__)}
    x, y = demo_data(300, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        for name, pipeline in demo_pipelines().items():
            pipeline.fit(x, y)
            path = Path(tmp) / f"{name}.joblib"
            joblib.dump(pipeline, path)
            checks[f"{name}_roundtrip"] = bool(
                np.array_equal(joblib.load(path).predict_proba(x), pipeline.predict_proba(x))
            )
    return {"ok": all(checks.values()), "versions": versions, "checks": checks}


def _probe_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="layer.py _probe")
    parser.add_argument("mode", choices=("smoke", "walk", "fit"))
    parser.add_argument("--path", action="append", default=[])
    parser.add_argument("--package", action="append", default=[])
    parser.add_argument("--runtime-path")
    parser.add_argument("--layer-path")
    parser.add_argument("--reference")
    parser.add_argument("--expect-sklearn")
    parser.add_argument("--result", required=True)
    ns = parser.parse_args(argv)
    sys.path[:0] = ns.path
    sys.dont_write_bytecode = True
    try:
        result = {"smoke": _probe_smoke, "walk": _probe_walk, "fit": _probe_fit}[ns.mode](ns)
    except Exception as exc:
        import traceback

        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
    Path(ns.result).write_text(json.dumps(result, indent=1, default=str))
    return 0 if result.get("ok") else 1


# --------------------------------------------------------------------------------------------------------------
# The build


@dataclass
class Options:
    out: Path = DEFAULT_OUT
    python_version: str = DEFAULT_PYTHON_VERSION
    platforms: Sequence[str] = field(default_factory=lambda: lambda_platforms(DEFAULT_ARCH))
    requirements: Sequence[Path] = LAYER_REQUIREMENTS
    verify: bool | None = None  # None: verify when a matching interpreter is found
    sklearn: str | None = None  # replaces requirements.txt's scikit-learn pin (see sklearn_choice)


def install_and_slim(target: Path, opts: Options) -> dict:
    """Install the pinned requirements into ``target`` and check them against the pins (slimmed by finish_slim).

    Shared by the full build and by the SAM makefile build (``--deps-only``), so both produce the same layer.
    Raises LayerBuildError when pip fails or installs a distribution that no requirements file pins exactly.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    pins = read_pins(opts.requirements, opts.sklearn)
    pip_install(pin_arguments(pins), target, opts.python_version, opts.platforms)
    timings["install_seconds"] = round(time.perf_counter() - t0, 1)
    dists = installed_dists(target)
    problems = check_pins(dists, pins)
    if problems:
        raise LayerBuildError("the layer does not match its requirements:\n  " + "\n  ".join(problems))
    before_bytes, before_files = tree_size(target)
    before_packages = package_sizes(target, dists)
    return {
        "dists": dists,
        "before": {"bytes": before_bytes, "files": before_files, "packages": before_packages},
        "timings": timings,
        "platform": opts.platforms[0],  # the manifest's: the newest manylinux tag the runtime loads
        "python_version": opts.python_version,
    }


def finish_slim(target: Path, state: dict) -> dict:
    t0 = time.perf_counter()
    slimmed = slim(target)
    stripped = strip_binaries(target)
    state["timings"]["slim_seconds"] = round(time.perf_counter() - t0, 1)
    after_bytes, after_files = tree_size(target)
    state.update(slimmed=slimmed, stripped=stripped, after={"bytes": after_bytes, "files": after_files})
    state["after"]["packages"] = package_sizes(target, state["dists"])
    state["manifest"] = write_manifest(target, state["platform"], state["python_version"])
    return state


def build(opts: Options) -> tuple[dict, int]:
    """The full build: layer, runtime layer and function measured, zipped, verified; returns (report, exit code)."""
    out = opts.out.resolve()
    deps_root, runtime_root, function_root = out / "deps", out / "runtime", out / "function"
    deps = deps_root / "python"
    state = install_and_slim(deps, opts)

    python = find_python(opts.python_version) if opts.verify is not False else None
    if python and not any(platform.machine() in p for p in opts.platforms):
        print(f"WARNING: cannot verify {opts.platforms[0]} wheels on a {platform.machine()} machine")
        python = None
    verifying = python is not None
    baseline = None
    packages = layer_packages(deps)
    if verifying:
        t0 = time.perf_counter()
        stand_in = runtime_stand_in(out, opts.python_version, opts.platforms)
        # What imports before slimming, so that slimming is judged against the same interpreter and path.
        baseline = _run_probe(python, ["walk", "--path", str(deps), "--path", str(stand_in), *_flags(packages)])
        state["timings"]["baseline_walk_seconds"] = round(time.perf_counter() - t0, 1)
    finish_slim(deps, state)

    copy_code(RUNTIME_LAYER_SRC, runtime_root / "python" / "sklambda")
    function_present = copy_code(FUNCTION_SRC, function_root)

    t0 = time.perf_counter()
    zips = out / "zips"
    zipped = {
        "deps": zip_tree(deps_root, zips / "deps-layer.zip"),
        "runtime": zip_tree(runtime_root, zips / "runtime-layer.zip"),
        "function": zip_tree(function_root, zips / "function.zip"),
    }
    state["timings"]["zip_seconds"] = round(time.perf_counter() - t0, 1)

    verification = None
    if verifying:
        t0 = time.perf_counter()
        verification = verify(python, deps, runtime_root / "python", stand_in, baseline, packages)
        state["timings"]["verify_seconds"] = round(time.perf_counter() - t0, 1)

    report = make_report(opts, state, out, zipped, function_present, verification)
    (out / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    print(render(report))

    code = 0
    where = f"SKLAMBDA_PY{opts.python_version.replace('.', '')}, python{opts.python_version} on PATH, pyenv"
    if opts.verify and not verifying:
        print(f"\nERROR: --verify needs Python {opts.python_version} and none was found ({where})")
        code = 1
    elif not verifying and opts.verify is None:
        print(f"\nWARNING: not verified: no Python {opts.python_version} found ({where})")
    if verification and not verification["ok"]:
        code = 1
    if not report["total"]["within_lambda_limit"]:
        code = 1
    return report, code


def _flags(packages: Iterable[str]) -> list[str]:
    return [a for p in packages for a in ("--package", p)]


def make_report(
    opts: Options, state: dict, out: Path, zipped: Mapping[str, int], function_present: bool, verification: dict | None
) -> dict:
    slimmed: SlimResult = state["slimmed"]
    stripped: StripResult = state["stripped"]
    dists: Mapping[str, Dist] = state["dists"]
    runtime_bytes, runtime_files = tree_size(out / "runtime")
    function_bytes, function_files = tree_size(out / "function")
    deps_after = state["after"]["bytes"]
    total = deps_after + runtime_bytes + function_bytes
    before_pk, after_pk = state["before"]["packages"], state["after"]["packages"]
    packages = [
        {
            "name": name,
            "version": dists[name].version if name in dists else None,
            "before_bytes": before_pk.get(name, 0),
            "after_bytes": after_pk.get(name, 0),
        }
        for name in sorted(set(before_pk) | set(after_pk), key=lambda n: (-after_pk.get(n, 0), n))
    ]
    return {
        "schema_version": 1,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python_version": opts.python_version,
        "platforms": list(opts.platforms),
        "requirements": " + ".join(_display_path(Path(r)) for r in opts.requirements),
        "scikit_learn": dists[SKLEARN].version if SKLEARN in dists else None,
        "manifest": _display_path(state["manifest"]),
        "out": _display_path(out),
        "deps_layer": {
            "before_slim_bytes": state["before"]["bytes"],
            "before_slim_files": state["before"]["files"],
            "after_slim_bytes": deps_after,
            "after_slim_files": state["after"]["files"],
            "zipped_bytes": zipped["deps"],
            "zip_needs_s3_upload": zipped["deps"] > LAMBDA_DIRECT_UPLOAD_ZIP,
            "removed_bytes": {**slimmed.removed_bytes, "strip": stripped.saved_bytes},
            "removed_files": slimmed.removed_files,
            "removed_dirs_sample": {c: paths[:12] for c, paths in slimmed.removed_paths.items()},
            "runtime_provided_removed": slimmed.runtime_provided,
            "stripped_files": stripped.files,
            "strip_skipped": stripped.skipped,
        },
        "packages": packages,
        "runtime_layer": {"bytes": runtime_bytes, "files": runtime_files, "zipped_bytes": zipped["runtime"]},
        "function": {
            "path": _display_path(FUNCTION_SRC),
            "present": function_present,
            "bytes": function_bytes,
            "files": function_files,
            "zipped_bytes": zipped["function"],
        },
        "total": {
            "unzipped_bytes": total,
            "zipped_bytes": sum(zipped.values()),
            "lambda_limit_bytes": LAMBDA_UNZIPPED_LIMIT,
            "target_bytes": TARGET_UNZIPPED,
            "headroom_to_limit_bytes": LAMBDA_UNZIPPED_LIMIT - total,
            "headroom_to_target_bytes": TARGET_UNZIPPED - total,
            "within_lambda_limit": total < LAMBDA_UNZIPPED_LIMIT,
            "within_target": total <= TARGET_UNZIPPED,
        },
        "timings": state["timings"],
        "verification_status": "not_run" if verification is None else ("ok" if verification["ok"] else "failed"),
        "verification": verification,
    }


def _display_path(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def mib(n: int) -> str:
    """Sizes as Lambda counts them: its "250 MB" limit is 262,144,000 bytes, i.e. MiB."""
    return f"{n / MIB:.1f} MiB" if abs(n) >= MIB // 10 or n == 0 else f"{n / 1024:.0f} KiB"


def render(report: Mapping) -> str:
    """The human-readable table printed after a build."""
    deps, total = report["deps_layer"], report["total"]
    removed = deps["removed_bytes"]
    labels = {
        RUNTIME: "runtime-provided: " + ", ".join(x.split()[0] for x in deps["runtime_provided_removed"]),
        TESTS: "tests/ and test/ folders",
        CACHES: "__pycache__ / .pyc",
        SOURCES: "type stubs, Cython/C sources, headers",
        DOCS: "docs and examples",
        SCRIPTS: "bin/ console scripts",
        "strip": f"debug symbols ({deps['stripped_files']} .so stripped)",
    }
    if deps["strip_skipped"]:
        labels["strip"] = f"debug symbols: SKIPPED, {deps['strip_skipped']}"
    lines = [
        f"Lambda bundle, python{report['python_version']} ({report['platforms'][0]} .. {report['platforms'][-1]})",
        "",
        f"  {'':50}{'unzipped':>13}{'zipped':>13}",
        f"  {'deps layer as pip installed it':50}{mib(deps['before_slim_bytes']):>13}",
    ]
    lines += [f"    - {labels[k]:48}{mib(-v):>13}" for k, v in removed.items() if v]
    lines += [
        f"  {'deps layer, slimmed':50}{mib(deps['after_slim_bytes']):>13}{mib(deps['zipped_bytes']):>13}",
        f"  {'runtime layer (sklambda)':50}{mib(report['runtime_layer']['bytes']):>13}"
        f"{mib(report['runtime_layer']['zipped_bytes']):>13}",
        f"  {'function code (' + report['function']['path'] + ')':50}{mib(report['function']['bytes']):>13}"
        f"{mib(report['function']['zipped_bytes']):>13}"
        + ("" if report["function"]["present"] else "   (not written yet)"),
        f"  {'TOTAL deployed bundle':50}{mib(total['unzipped_bytes']):>13}{mib(total['zipped_bytes']):>13}",
        "",
        f"  Lambda limit {total['lambda_limit_bytes'] / MIB:.0f} MiB: "
        + ("OK" if total["within_lambda_limit"] else "OVER")
        + f", {total['unzipped_bytes'] / total['lambda_limit_bytes']:.0%} used, headroom "
        + f"{total['headroom_to_limit_bytes'] / MIB:.1f} MiB",
        f"  Our target  {total['target_bytes'] / MIB:.0f} MiB: "
        + ("OK" if total["within_target"] else "OVER")
        + f", headroom {total['headroom_to_target_bytes'] / MIB:.1f} MiB",
        f"  Zipped deps layer {deps['zipped_bytes'] / MIB:.1f} MiB: "
        + (
            f"over the {LAMBDA_DIRECT_UPLOAD_ZIP / MIB:.0f} MiB direct-upload limit: deploy via S3 (sam deploy does)"
            if deps["zip_needs_s3_upload"]
            else "can be uploaded directly"
        ),
        "",
        f"  {'top packages':50}{'before':>13}{'after':>13}",
    ]
    for pkg in report["packages"][:10]:
        label = f"{pkg['name']} {pkg['version'] or ''}".strip()
        lines.append(f"  {label:50}{mib(pkg['before_bytes']):>13}{mib(pkg['after_bytes']):>13}")
    lines.append("")
    lines.append("  timings: " + ", ".join(f"{k.removesuffix('_seconds')} {v}s" for k, v in report["timings"].items()))
    lines += render_verification(report.get("verification"))
    return "\n".join(lines)


def render_verification(verification: Mapping | None) -> list[str]:
    if verification is None:
        return ["", "  verification: not run"]
    smoke, walk = verification["smoke"], verification["walk"]
    lines = ["", f"  verification under {verification['interpreter']}: " + ("OK" if verification["ok"] else "FAILED")]
    if "error" in smoke:
        lines.append(f"    smoke test error: {smoke['error']}")
        lines.append(smoke.get("traceback", ""))
    else:
        lines.append(
            "    python " + smoke["python"] + "; " + ", ".join(f"{k} {v}" for k, v in smoke["versions"].items())
        )
        lines.append("    import seconds: " + ", ".join(f"{k} {v}" for k, v in smoke["import_seconds"].items()))
        pools = ", ".join(
            f"{b['internal_api']} {b['version'] or ''} ({b['num_threads']} threads)" for b in smoke["thread_pools"]
        )
        lines.append(f"    native thread pools loaded (threadpoolctl): {pools}")
        lines.append(f"    sklambda modules imported: {len(smoke['sklambda_modules'])}")
        for name, m in smoke["models"].items():
            lines.append(
                f"    {name}: train accuracy {m['train_accuracy']}, predict_proba(row 0) {m['proba_first_row']}, "
                f"fit {m['fit_seconds']}s, predict 1 row {m['predict_one_row_ms']} ms, "
                f"joblib {m['artifact_bytes']} B, round-trip identical {m['roundtrip_identical']}"
            )
        if "reference_model" in smoke:
            ref = smoke["reference_model"]
            lines.append(
                f"    model pickled by Python {ref['pickled_by_python']} loads here: max |proba diff| "
                f"{ref['max_abs_proba_diff']:.2e}"
            )
        failed = [k for k, v in smoke["checks"].items() if not v]
        lines.append(
            f"    checks: {len(smoke['checks']) - len(failed)}/{len(smoke['checks'])} passed"
            + (f"; FAILED: {', '.join(failed)}" if failed else "")
        )
    if "error" in walk:
        lines.append(f"    module walk error: {walk['error']}")
    else:
        before = walk.get("modules_imported_before_slimming", "?")
        lines.append(
            f"    module walk: {walk['modules_imported']} modules import after slimming ({before} before; "
            f"{walk.get('removed_modules', 0)} removed on purpose), {walk['seconds']}s; "
            f"broken by slimming: {len(walk['broken_by_slimming'])}"
        )
        for name, err in list(walk["broken_by_slimming"].items())[:20]:
            lines.append(f"      BROKEN {name}: {err}")
        optional = ", ".join(f"{k} ({v})" for k, v in list(walk["optional_missing"].items())[:8])
        lines.append(f"    failing both before and after (optional extras not installed): {optional}")
    return lines


def deps_only(target: Path, opts: Options) -> int:
    """The SAM makefile build: the same install and slimming, straight into ``$(ARTIFACTS_DIR)/python``."""
    state = finish_slim(target, install_and_slim(target, opts))
    removed = {**state["slimmed"].removed_bytes, "strip": state["stripped"].saved_bytes}
    after = state["after"]["bytes"]
    print(
        f"dependency layer in {target}: {state['before']['bytes'] / MIB:.1f} MiB as installed, "
        f"{after / MIB:.1f} MiB slimmed ("
        + ", ".join(f"{k} -{v / MIB:.1f}" for k, v in removed.items() if v)
        + f"); manifest {state['manifest'].name}"
    )
    if state["stripped"].skipped:
        print(f"WARNING: {state['stripped'].skipped}")
    if after >= LAMBDA_UNZIPPED_LIMIT:
        print(
            f"ERROR: the dependency layer alone is over Lambda's {LAMBDA_UNZIPPED_LIMIT / MIB:.0f} MiB unzipped limit"
        )
        return 1
    return 0


def read_report(out: Path = DEFAULT_OUT) -> dict:
    """The last build's report, for the benchmark script."""
    return json.loads((out / REPORT_NAME).read_text())


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_probe"]:
        return _probe_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m sklambda_infra.layer", description=__doc__.split("\n\n")[2])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="build folder (default: build/layers)")
    parser.add_argument("--python-version", default=DEFAULT_PYTHON_VERSION, help="Lambda runtime Python (3.12)")
    parser.add_argument("--arch", default=DEFAULT_ARCH, choices=("x86_64", "aarch64"), help="Lambda architecture")
    parser.add_argument(
        "--platform", action="append", help="pip platform tag (repeatable); default: manylinux_2_34 .. 2014 of --arch"
    )
    parser.add_argument(
        "--requirements",
        type=Path,
        action="append",
        help="requirements file (repeatable); default: layers/deps/requirements.txt and extra-requirements.txt",
    )
    parser.add_argument(
        "--sklearn",
        help=f"build with this scikit-learn instead of requirements.txt's pin (default ${SKLEARN_ENV}); "
        f"supported: {', '.join(SUPPORTED_SKLEARN)}",
    )
    parser.add_argument("--local", action="store_true", help="build (once) the host-Python copy; print its folder")
    parser.add_argument(
        "--verify",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="verify under Python 3.12 (default: when one is found; --verify fails if none is)",
    )
    parser.add_argument("--deps-only", action="store_true", help="only install and slim (the SAM makefile build)")
    parser.add_argument("--target", type=Path, help="with --deps-only: the layer's python/ folder")
    ns = parser.parse_args(argv)
    requirements = tuple(ns.requirements or LAYER_REQUIREMENTS)
    try:
        sklearn_choice(ns.sklearn)
        if ns.local:
            print(local_env(requirements, sklearn=ns.sklearn, log=lambda line: print(line, file=sys.stderr)))
            return 0
        opts = Options(
            out=ns.out,
            python_version=ns.python_version,
            platforms=ns.platform or lambda_platforms(ns.arch),
            requirements=requirements,
            verify=ns.verify,
            sklearn=ns.sklearn,
        )
        if ns.deps_only:
            return deps_only((ns.target or ns.out / "deps" / "python").resolve(), opts)
        if ns.target:
            parser.error("--target goes with --deps-only")
        return build(opts)[1]
    except (LayerBuildError, ValueError, FileNotFoundError) as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
