"""``python -m sklambda_infra.layer``: the command line of the layer build (see the package's docstring)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from sklambda_infra.progress import Progress

from .builder import build, deps_only
from .install import DEFAULT_ARCH, DEFAULT_PYTHON_VERSION, LayerBuildError, lambda_platforms
from .local import local_env, local_env_built
from .options import Options
from .paths import DEFAULT_OUT, LAYER_REQUIREMENTS
from .requirements import SKLEARN_ENV, SUPPORTED_SKLEARN, sklearn_choice

DESCRIPTION = (
    "Install layers/deps/requirements.txt and extra-requirements.txt as manylinux wheels for the Lambda runtime, "
    "remove what the runtime already provides, slim the tree, copy the runtime layer and the function beside it, "
    "measure everything against Lambda's 250 MiB unzipped limit and write <out>/layer-report.json; --verify then "
    "proves under a real Python 3.12 that every module still imports and scikit-learn pipelines fit and predict."
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the build the arguments ask for (full, ``--deps-only`` or ``--local``); returns the exit code: 0 when
    built (and verified, when asked), 1 when pip, the pins, the verification or Lambda's size limit failed."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m sklambda_infra.layer", description=DESCRIPTION)
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
            if local_env_built(requirements, sklearn=ns.sklearn):
                print(local_env(requirements, sklearn=ns.sklearn))
                return 0
            with Progress("layer").stage("building the host-Python copy of the dependency layer (once, ~15 s)"):
                folder = local_env(requirements, sklearn=ns.sklearn)
            print(folder)
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
