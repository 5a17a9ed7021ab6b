"""What a runtime provides: the manifest that the dependency-layer build writes beside the packages it installs.

The layer build (`python -m sklambda_infra.layer`, `sam build`, and the host-Python copy of the layer that the local
stack and the publish-time parity gate run on) writes `MANIFEST_NAME` at the root of the layer's `python/` folder:

    {"format": "sklambda.runtime/v1",
     "python": "3.12",                       # major.minor the packages were built for
     "platform": "manylinux_2_28_x86_64",    # or "host" for a copy built for this machine's interpreter
     "packages": {"scikit-learn": "1.9.1", ...},   # every distribution in the layer: PEP 503 name -> version
     "modules": ["numpy", "sklearn", ...],          # top-level import names the layer provides
     "runtime_provided": ["boto3", "botocore", ...],  # import names the Lambda runtime itself ships
     "fingerprint": "<sha256>"}                      # of the canonical JSON of `packages`

A runtime finds its own manifest on `sys.path` (Lambda puts layers under /opt/python); publish reads the target's
from the folder the parity gate runs in. Two runtimes with the same fingerprint serve a pickle the same way.
Standard library only: this module is imported by the parity gate's child process before anything else.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MANIFEST_NAME = "sklambda-runtime.json"
MANIFEST_FORMAT = "sklambda.runtime/v1"
# The Lambda Python runtime ships these (and the layer build removes its own copies so they are not shadowed).
LAMBDA_RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil", "six")


def fingerprint(packages: Mapping[str, str]) -> str:
    """sha256 of the sorted `name==version` lines: equal for two layers holding the same distributions."""
    text = "\n".join(f"{name}=={packages[name]}" for name in sorted(packages))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class RuntimeManifest:
    """The package set of one runtime (a Lambda layer build or its host-Python copy)."""

    python: str
    platform: str
    packages: Mapping[str, str]
    modules: tuple[str, ...]
    runtime_provided: tuple[str, ...] = LAMBDA_RUNTIME_PROVIDED

    @property
    def fingerprint(self) -> str:
        """sha256 of the package set (see `fingerprint`): equal fingerprints unpickle a model the same way."""
        return fingerprint(self.packages)

    @property
    def sklearn_version(self) -> str | None:
        """The runtime's scikit-learn version, or None when it has none."""
        return self.packages.get("scikit-learn")

    def provides(self, module: str) -> bool:
        """True when the top-level import `module` comes with this runtime (standard library, layer, Lambda)."""
        top = module.partition(".")[0]
        return (
            top in sys.stdlib_module_names
            or top in self.modules
            or top in self.runtime_provided
            or top
            in (
                "builtins",
                "__builtin__",
                "copy_reg",
            )
        )

    def to_dict(self) -> dict[str, Any]:
        """The manifest as `sklambda-runtime.json` stores it, fingerprint included."""
        return {
            "format": MANIFEST_FORMAT,
            "python": self.python,
            "platform": self.platform,
            "packages": dict(sorted(self.packages.items())),
            "modules": sorted(self.modules),
            "runtime_provided": sorted(self.runtime_provided),
            "fingerprint": self.fingerprint,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RuntimeManifest:
        """Raises ValueError for a manifest of another format."""
        if d.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"unsupported runtime manifest format {d.get('format')!r}, expected {MANIFEST_FORMAT!r}")
        return cls(
            python=str(d["python"]),
            platform=str(d["platform"]),
            packages={str(k): str(v) for k, v in d["packages"].items()},
            modules=tuple(d.get("modules", ())),
            runtime_provided=tuple(d.get("runtime_provided", LAMBDA_RUNTIME_PROVIDED)),
        )

    @classmethod
    def read(cls, folder: str | Path) -> RuntimeManifest:
        """The manifest in `folder` (a layer's python/ folder). Raises FileNotFoundError or ValueError."""
        return cls.from_dict(json.loads((Path(folder) / MANIFEST_NAME).read_text()))

    def write(self, folder: str | Path) -> Path:
        """Write the manifest into `folder` as MANIFEST_NAME; return its path."""
        path = Path(folder) / MANIFEST_NAME
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path


def find_manifest(paths: Iterable[str] | None = None) -> RuntimeManifest | None:
    """This process's runtime manifest: the first `MANIFEST_NAME` on `paths` (default sys.path), or None when the
    process does not run on a built layer (a developer's venv)."""
    for entry in sys.path if paths is None else paths:
        candidate = Path(entry or ".") / MANIFEST_NAME
        if candidate.is_file():
            try:
                return RuntimeManifest.read(candidate.parent)
            except (OSError, ValueError, KeyError):
                return None
    return None
