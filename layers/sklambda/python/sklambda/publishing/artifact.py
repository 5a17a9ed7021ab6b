"""What a joblib artifact needs, read from its pickle without running it.

A pickle names every class and function it rebuilds as a global reference (module + qualified name, the
GLOBAL / STACK_GLOBAL opcodes of the pickle protocol, PEP 3154). `scan_artifact` unpickles the bytes with an
unpickler whose `find_class` returns an inert stand-in for every reference except a short list of numpy/joblib
data constructors (needed to step over joblib's out-of-band array buffers), so no user or library code runs.
It collects:

- the global references, grouped by top-level module, to be checked against what the target runtime provides
  (its manifest), what the model ships (`code=`), or neither;
- the scikit-learn version recorded by each estimator: `BaseEstimator.__getstate__` stores `_sklearn_version`
  in every estimator's state (scikit-learn's model persistence docs, "Security & maintainability limitations"),
  and that, not the publisher's installed version, is what the artifact was pickled with.
"""

from __future__ import annotations

import io
import os
import pickle
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from joblib.numpy_pickle import NumpyUnpickler
from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap

from sklambda.runtime_env import RuntimeManifest

# Data constructors run for real during the scan: joblib reads array buffers through them. Nothing else runs.
_REAL = {
    ("joblib.numpy_pickle", "NumpyArrayWrapper"),
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
    ("builtins", "set"),
    ("builtins", "frozenset"),
    ("builtins", "bytearray"),
    ("builtins", "complex"),
    ("builtins", "slice"),
}


class ArtifactUnreadable(ValueError):
    """The bytes are not a joblib/pickle artifact this scanner can read."""


class _Stand_in:
    """Inert stand-in for a referenced class or function: accepts any construction, state, items."""

    _sklambda_ref: tuple[str, str] = ("", "")
    _sklambda_scanner: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        type(self)._sklambda_scanner.saw_state(state)

    def append(self, item: Any) -> None:
        pass

    def extend(self, items: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def add(self, item: Any) -> None:
        pass


@dataclass
class ArtifactNeeds:
    """What one artifact references: {top-level module: sorted "module.qualname" references}, and the
    scikit-learn versions its estimators were pickled with (more than one means a mixed artifact)."""

    references: dict[str, list[str]] = field(default_factory=dict)
    sklearn_versions: tuple[str, ...] = ()

    @property
    def modules(self) -> tuple[str, ...]:
        """The top-level modules the artifact's pickle references, sorted."""
        return tuple(sorted(self.references))

    @property
    def sklearn_version(self) -> str | None:
        """The one scikit-learn version its estimators were pickled with; None when none or several were found."""
        return self.sklearn_versions[0] if len(self.sklearn_versions) == 1 else None

    def to_dict(self) -> dict[str, Any]:
        """The card's parity `needs` section: {"modules", "sklearn_versions"}."""
        return {"modules": list(self.modules), "sklearn_versions": list(self.sklearn_versions)}


class _Scanner(NumpyUnpickler):
    def __init__(self, fobj: Any) -> None:
        super().__init__("", fobj, ensure_native_byte_order=True)
        self.refs: dict[str, set[str]] = defaultdict(set)
        self.versions: set[str] = set()
        self._stand_ins: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> Any:
        self.refs[module.partition(".")[0]].add(f"{module}.{name}")
        if (module, name) in _REAL:
            return super().find_class(module, name)
        key = (module, name)
        if key not in self._stand_ins:
            self._stand_ins[key] = type(
                f"StandIn_{name}", (_Stand_in,), {"_sklambda_ref": key, "_sklambda_scanner": self}
            )
        return self._stand_ins[key]

    def saw_state(self, state: Any) -> None:
        # BUILD's state is a dict, or (dict, slots) for objects with __slots__.
        if isinstance(state, tuple) and state and isinstance(state[0], dict):
            state = state[0]
        if isinstance(state, dict):
            version = state.get("_sklearn_version")
            if isinstance(version, str):
                self.versions.add(version)


def scan_artifact(blob: bytes) -> ArtifactNeeds:
    """Read `blob` (joblib.dump output, compressed or not, or a plain pickle) without running any of its code.

    Raises ArtifactUnreadable when it is not a pickle (e.g. a CSV given as the model file) or is truncated.
    """
    try:
        with _validate_fileobject_and_memmap(io.BytesIO(blob), "", None) as (fobj, _):
            if isinstance(fobj, str):
                raise ArtifactUnreadable("a joblib file older than joblib 0.10 (several files) is not supported")
            scanner = _Scanner(fobj)
            scanner.load()
    except ArtifactUnreadable:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise ArtifactUnreadable(_not_a_pickle(blob, e)) from None
    except Exception as e:  # a pickle that the inert stand-ins cannot step through is still unreadable here
        raise ArtifactUnreadable(f"the pickle cannot be read without running it ({type(e).__name__}: {e})") from None
    return ArtifactNeeds(
        references={top: sorted(refs) for top, refs in sorted(scanner.refs.items())},
        sklearn_versions=tuple(sorted(scanner.versions)),
    )


# How files that joblib.dump writes begin: a pickle (protocol 2 and later start with PROTO, 0x80; PEP 307) or one of
# joblib's compressors (joblib.numpy_pickle_utils / compressor magic numbers: zlib, gzip, bz2, xz, lzma, lz4).
_JOBLIB_STARTS = (
    *(b"\x80", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x5d\x00", b"\x04\x22\x4d\x18"),
    *(b"\x78\x01", b"\x78\x5e", b"\x78\x9c", b"\x78\xda"),
)


def _not_a_pickle(blob: bytes, error: Exception) -> str:
    """Why `blob` cannot be read, in the user's terms: empty, text (a CSV given as the model), or damaged."""
    if not blob:
        return "the file is empty"
    if blob.startswith(_JOBLIB_STARTS):
        return f"a damaged or truncated joblib/pickle file ({type(error).__name__}: {error})"
    try:
        head = blob[:200].decode("utf-8")
    except UnicodeDecodeError:
        return "not a joblib or pickle file (its first bytes are neither a pickle nor a compressed joblib file)"
    first = head.splitlines()[0][:60] if head.strip() else ""
    return f"a text file, not a joblib or pickle file (it starts with {first!r})"


@dataclass(frozen=True)
class NeedProblem:
    """One module the artifact needs that the target cannot provide; `check` names the publish check."""

    check: str
    module: str
    references: tuple[str, ...]
    message: str


def check_needs(
    needs: ArtifactNeeds,
    target: RuntimeManifest,
    shipped: Iterable[str] = (),
    installed: Mapping[str, tuple[str, str]] | Callable[[], Mapping[str, tuple[str, str]]] | None = None,
) -> list[NeedProblem]:
    """Each top-level module of `needs` must come with the target runtime or with the model's shipped code.

    `shipped`: top-level module names of the code published with the model. `installed`: {module: (distribution,
    version)} in the publisher's environment, used to say which pin to add to the layer, or a function returning it
    (installed_modules), called only when a module is missing: reading every distribution's metadata takes about
    half a second, and most publishes find every module. A reference to `__main__` (a class or function defined in
    the training script) can never be found by the runtime.
    """
    shipped = set(shipped)
    problems: list[NeedProblem] = []
    for module, refs in needs.references.items():
        shown = ", ".join(refs[:3]) + (f" (and {len(refs) - 3} more)" if len(refs) > 3 else "")
        if module == "__main__":
            names = ", ".join(r.removeprefix("__main__.") for r in refs)
            problems.append(
                NeedProblem(
                    "user_code",
                    module,
                    tuple(refs),
                    f"the model uses {names} defined in the training script (__main__), which no other process "
                    "can import: move it to a module (e.g. my_features.py), import it from there before fitting, "
                    "and publish with code=['my_features.py'] (CLI: --code my_features.py)",
                )
            )
            continue
        if module in shipped or target.provides(module):
            continue
        if callable(installed):
            installed = installed()  # read once, at the first missing module
        if installed and module in installed:
            dist, version = installed[module]
            problems.append(
                NeedProblem(
                    "runtime_packages",
                    module,
                    tuple(refs),
                    f"the model needs the package {dist} (module {module!r}: {shown}), which the target runtime's "
                    f"dependency layer does not have: add '{dist}=={version}' (and its dependencies) to "
                    "layers/deps/extra-requirements.txt, rebuild the layer (make layer; sam build) and publish again",
                )
            )
        else:
            problems.append(
                NeedProblem(
                    "user_code",
                    module,
                    tuple(refs),
                    f"the model needs module {module!r} ({shown}), which is neither in the target runtime nor an "
                    f"installed package: if it is your code, publish with code=['{module}.py' or '{module}/'] "
                    f"(CLI: --code)",
                )
            )
    return problems


def installed_modules() -> dict[str, tuple[str, str]]:
    """{top-level module: (distribution, version)} for the publisher's installed distributions (a copy).

    Scanning every distribution's RECORD costs ~0.3-0.4 s, paid on every publish; the result is kept while no
    directory on sys.path changed (installing or removing a package rewrites its site-packages directory, which
    changes that directory's mtime), so a notebook that pip-installs between two publishes gets a fresh scan.
    """
    key = _path_stamp()
    if _installed_cache.get("key") != key:
        _installed_cache.update(key=key, value=_scan_installed())
    return dict(_installed_cache["value"])


_installed_cache: dict[str, Any] = {}


def _path_stamp() -> tuple[tuple[str, int], ...]:
    stamp = []
    for entry in sys.path:
        try:
            stamp.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            stamp.append((entry, -1))
    return tuple(stamp)


def _scan_installed() -> dict[str, tuple[str, str]]:
    from importlib.metadata import distributions, packages_distributions

    # One pass over the distributions for versions: importlib.metadata.version(name) searches sys.path again per
    # call. The first distribution of a name on sys.path wins, as version() resolves it.
    versions: dict[str, str] = {}
    for dist in distributions():
        try:
            name, number = dist.metadata["Name"], dist.version
        except Exception:  # a broken dist-info must not stop publishing; its modules are then just unknown
            continue
        if name and name not in versions:
            versions[name] = number
    return {m: (d[0], versions[d[0]]) for m, d in packages_distributions().items() if d and d[0] in versions}
