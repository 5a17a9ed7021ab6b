"""Slimming an installed layer: what the Lambda runtime already provides, tests, caches, stubs, build sources, docs
and scripts are removed, and shared objects stripped of their debug symbols.

A rule never removes a KEEP path (runtime code that only looks like test code); ``--verify`` proves the result by
re-importing, under Python 3.12, every module that imported before slimming (see verify).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .install import installed_dists
from .measure import tree_size
from .requirements import RUNTIME_PROVIDED, canonical

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
        and is_shared_object(p)
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


def is_shared_object(path: Path) -> bool:
    """An ELF shared object by its name: ``x.so`` or a versioned ``libx.so.1.2``."""
    return path.suffix == ".so" or ".so." in path.name
