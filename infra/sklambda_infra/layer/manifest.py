"""The runtime manifest (``sklambda-runtime.json``) every build writes into a layer's ``python/`` folder.

It lists the layer's distributions with their versions and its top-level modules; its fingerprint tells whether two
layers serve a pickle the same way. The format is ``sklambda.runtime_env.RuntimeManifest``, shared with the function
(``GET /health``) and the publish-time parity gate.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from .install import installed_dists
from .paths import RUNTIME_LAYER_SRC
from .requirements import RUNTIME_PROVIDED
from .slimming import CACHE_DIRS, is_shared_object


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
        elif entry.suffix == ".py" or is_shared_object(entry):
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
