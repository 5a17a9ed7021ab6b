"""User code shipped with a model: the modules its pickle refers to (custom transformers, FunctionTransformer
functions), stored next to the artifact, their sha256 in the signed card.

A pickle stores a class or function by reference (module + name, the pickle documentation's "What can be pickled"):
unpickling imports the module. The runtime therefore writes a version's verified files to a folder of its own and
makes them importable only while that version is unpickled: the module objects the estimator refers to stay alive
through its classes and functions, and `sys.modules` is restored afterwards, so two models shipping different
versions of `feature_utils` load side by side in one container, each with its own. A shipped module that imports
its own siblings lazily at prediction time is not supported (the parity gate at publish refuses such a model,
because its child process loads the model the same way).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

# Files a model may ship: Python sources only (no compiled extensions: those belong in the dependency layer).
CODE_SUFFIX = ".py"
MAX_CODE_FILES = 200
MAX_CODE_BYTES = 5 * 1024 * 1024
_SKIP_DIRS = frozenset({"__pycache__", ".git", ".ipynb_checkpoints"})
ENV_CODE_ROOT = "SKLAMBDA_CODE_DIR"  # where a container writes shipped code; default: the temp dir (/tmp on Lambda)


class CodeProblem(ValueError):
    """The code given to ship with a model cannot be shipped (missing, not Python, too large, a reserved name)."""


@dataclass(frozen=True)
class CodeFile:
    """One shipped file: `path` is POSIX and relative to the folder put on sys.path (e.g. "mypkg/utils.py")."""

    path: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        """One entry of the card's code `files` list."""
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


def top_level_module(path: str) -> str:
    """The importable top-level name a shipped path provides: "mypkg/utils.py" → "mypkg", "feature_utils.py" →
    "feature_utils".
    """
    first = PurePosixPath(path).parts[0]
    return first.removesuffix(CODE_SUFFIX)


def collect(paths: Iterable[str | os.PathLike[str]]) -> dict[str, bytes]:
    """Read the files to ship: each entry is a module file (`feature_utils.py`) or a package folder (`mypkg/`,
    every .py below it). Returns {relative POSIX path: bytes}; a module keeps its file name, a package its folder
    name. Raises CodeProblem naming the entry."""
    files: dict[str, bytes] = {}
    for entry in paths:
        p = Path(entry)
        if p.is_file():
            if p.suffix != CODE_SUFFIX:
                raise CodeProblem(f"code entry {str(entry)!r} is not a Python file (.py)")
            files[p.name] = p.read_bytes()
        elif p.is_dir():
            found = [
                f
                for f in sorted(p.rglob(f"*{CODE_SUFFIX}"))
                if not _SKIP_DIRS.intersection(f.relative_to(p).parts[:-1])
            ]
            if not (p / "__init__.py").is_file():
                raise CodeProblem(f"code entry {str(entry)!r} is a folder without __init__.py: ship a package")
            for f in found:
                files[(PurePosixPath(p.resolve().name) / f.relative_to(p).as_posix()).as_posix()] = f.read_bytes()
        else:
            raise CodeProblem(f"code entry {str(entry)!r} does not exist")
    if len(files) > MAX_CODE_FILES or sum(map(len, files.values())) > MAX_CODE_BYTES:
        raise CodeProblem(
            f"the code to ship has {len(files)} files and {sum(map(len, files.values()))} bytes; the limits are "
            f"{MAX_CODE_FILES} files and {MAX_CODE_BYTES} bytes (large dependencies belong in the layer)"
        )
    return files


def describe(files: Mapping[str, bytes]) -> dict[str, Any]:
    """The card's `code` section: {"files": [{"path", "sha256", "size"}], "modules": [top-level names]}."""
    entries = [CodeFile(path, hashlib.sha256(data).hexdigest(), len(data)) for path, data in sorted(files.items())]
    return {"files": [e.to_dict() for e in entries], "modules": sorted({top_level_module(p) for p in files})}


def verify(section: Mapping[str, Any], files: Mapping[str, bytes]) -> list[str]:
    """Problems between the card's `code` section and the fetched files (empty when every file matches)."""
    problems = []
    for entry in section.get("files", ()):
        data = files.get(entry["path"])
        if data is None:
            problems.append(f"{entry['path']} is missing")
        elif len(data) != entry["size"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            problems.append(f"{entry['path']} does not match the signed sha256")
    return problems


def _safe_relative(path: str) -> PurePosixPath:
    rel = PurePosixPath(path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise CodeProblem(f"code path {path!r} is not a relative path inside the model's folder")
    return rel


def materialize(files: Mapping[str, bytes], *, label: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Write `files` to a folder of their own (`<root>/<label>-<digest>`), reused when it already holds them.

    `root`: SKLAMBDA_CODE_DIR, else the system temp folder (/tmp, the only writable place on Lambda).
    """
    digest = hashlib.sha256(b"".join(p.encode() + b"\0" + files[p] for p in sorted(files))).hexdigest()[:16]
    base = Path(root or os.environ.get(ENV_CODE_ROOT) or Path(tempfile.gettempdir()) / "sklambda-code")
    folder = base / f"{label}-{digest}"
    if folder.is_dir():
        return folder
    staging = Path(tempfile.mkdtemp(prefix=f".{label}-", dir=_mkdirs(base)))
    for path, data in files.items():
        target = staging / _safe_relative(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    with contextlib.suppress(OSError):  # another process won the race with the same files
        staging.rename(folder)
    return folder


def _mkdirs(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def importable(folder: Path | None, modules: Iterable[str]) -> Iterator[None]:
    """Make `modules` (top-level names) import from `folder` inside the block, and only there.

    Entries of `sys.modules` for those names (and their submodules) are set aside before and put back after,
    so another model's modules of the same name are neither used nor replaced.
    """
    names = tuple(modules)
    if folder is None or not names:
        yield
        return

    def owned(key: str) -> bool:
        return any(key == n or key.startswith(n + ".") for n in names)

    saved = {k: sys.modules.pop(k) for k in list(sys.modules) if owned(k)}
    entry = str(folder)
    sys.path.insert(0, entry)
    importlib.invalidate_caches()
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)
        for k in [k for k in sys.modules if owned(k)]:
            del sys.modules[k]
        sys.modules.update(saved)
