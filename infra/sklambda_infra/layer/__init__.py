"""Build, slim, measure and verify the Lambda dependency layer.

    python -m sklambda_infra.layer [--out build/layers] [--python-version 3.12] [--arch x86_64]
                                   [--platform TAG ...] [--verify | --no-verify]
    python -m sklambda_infra.layer --deps-only --target DIR      # what layers/deps/Makefile runs in `sam build`
    python -m sklambda_infra.layer --local                        # the host-Python copy: prints its python/ folder
    (every form takes [--requirements FILE ...] [--sklearn VERSION])

The full build installs layers/deps/requirements.txt and extra-requirements.txt for the Lambda runtime
(manylinux wheels, CPython 3.12), removes what the runtime already provides (boto3 and friends: shipping our own
would shadow them), slims the tree (tests, caches, stubs, build sources, debug symbols), copies the runtime layer and
the function code beside it, measures everything against Lambda's 250 MiB unzipped limit and writes
``<out>/layer-report.json``. ``--verify`` then proves, under a real Python 3.12 that sees nothing but the layer and a
boto3-only stand-in for the runtime's own libraries, that every module which imported before slimming still
imports, and that scikit-learn pipelines fit, round-trip through joblib and predict.

Every build writes the runtime manifest (``sklambda-runtime.json``: packages, modules, fingerprint) into the
layer's ``python/`` folder. ``--local`` (``local_env()``) installs the same pins for this machine's interpreter into
``.sklambda/runtime/<py-tag>-<sha12 of the pins>/python``: the local stack's workers and the publish-time parity
gate run on it, so a package missing from the layer is missing there too.

One job per module, each importing only those before it:
    paths         where the inputs and outputs are
    requirements  the pins: parsed, merged, the scikit-learn choice
    install       pip install --target for the Lambda platform; what got installed, checked against the pins
    measure       unzipped and zipped sizes as Lambda counts them, and its limits
    slimming      what slimming and strip remove
    manifest      sklambda-runtime.json
    probe         the checks run inside the verifying interpreter (a script: standard library only)
    verification  the verifying interpreter, the runtime's stand-in, running the probe
    local         the host-Python copies (--local) the local stack and the parity gate use
    options, report, builder, cli  the build, its report and its command line

Standard library only: the SAM makefile builder may run this package with whatever python3 is on PATH, and the
verifying Python 3.12 runs probe.py as a script with no site-packages at all.
"""

from .builder import build, copy_code, deps_only, finish_slim, install_and_slim
from .install import (
    DEFAULT_ARCH,
    DEFAULT_PYTHON_VERSION,
    Dist,
    LayerBuildError,
    check_pins,
    installed_dists,
    lambda_platforms,
    pip_install,
)
from .local import CACHE_ENV, local_cache, local_env, local_env_built, local_runtime_stand_in, python_tag
from .manifest import layer_modules, manifest_path, runtime_env, write_manifest
from .measure import LAMBDA_UNZIPPED_LIMIT, MIB, TARGET_UNZIPPED, mib, package_sizes, tree_size, zip_tree
from .options import Options
from .paths import (
    DEFAULT_OUT,
    EXTRA_REQUIREMENTS,
    FUNCTION_SRC,
    LAYER_REQUIREMENTS,
    LOCAL_CACHE,
    PYPROJECT,
    REPO_ROOT,
    REPORT_NAME,
    REQUIREMENTS,
    RUNTIME_LAYER_SRC,
)
from .report import make_report, read_report, render
from .requirements import (
    RUNTIME_PROVIDED,
    RUNTIME_STAND_IN,
    SKLEARN,
    SKLEARN_ENV,
    SUPPORTED_SKLEARN,
    Pin,
    canonical,
    parse_requirement,
    parse_requirements,
    pin_arguments,
    pyproject_dependencies,
    read_pins,
    sklearn_choice,
)
from .slimming import (
    CACHES,
    CATEGORIES,
    DOCS,
    KEEP,
    RUNTIME,
    SCRIPTS,
    SOURCES,
    TESTS,
    SlimResult,
    StripResult,
    plan_slim,
    slim,
    strip_binaries,
    strip_targets,
)
from .verification import find_python, layer_packages, runtime_stand_in, verify

__all__ = [
    "CACHES",
    "CACHE_ENV",
    "CATEGORIES",
    "DEFAULT_ARCH",
    "DEFAULT_OUT",
    "DEFAULT_PYTHON_VERSION",
    "DOCS",
    "EXTRA_REQUIREMENTS",
    "FUNCTION_SRC",
    "KEEP",
    "LAMBDA_UNZIPPED_LIMIT",
    "LAYER_REQUIREMENTS",
    "LOCAL_CACHE",
    "MIB",
    "PYPROJECT",
    "REPORT_NAME",
    "REPO_ROOT",
    "REQUIREMENTS",
    "RUNTIME",
    "RUNTIME_LAYER_SRC",
    "RUNTIME_PROVIDED",
    "RUNTIME_STAND_IN",
    "SCRIPTS",
    "SKLEARN",
    "SKLEARN_ENV",
    "SOURCES",
    "SUPPORTED_SKLEARN",
    "TARGET_UNZIPPED",
    "TESTS",
    "Dist",
    "LayerBuildError",
    "Options",
    "Pin",
    "SlimResult",
    "StripResult",
    "build",
    "canonical",
    "check_pins",
    "copy_code",
    "deps_only",
    "find_python",
    "finish_slim",
    "install_and_slim",
    "installed_dists",
    "lambda_platforms",
    "layer_modules",
    "layer_packages",
    "local_cache",
    "local_env",
    "local_env_built",
    "local_runtime_stand_in",
    "make_report",
    "manifest_path",
    "mib",
    "package_sizes",
    "parse_requirement",
    "parse_requirements",
    "pin_arguments",
    "pip_install",
    "plan_slim",
    "pyproject_dependencies",
    "python_tag",
    "read_pins",
    "read_report",
    "render",
    "runtime_env",
    "runtime_stand_in",
    "sklearn_choice",
    "slim",
    "strip_binaries",
    "strip_targets",
    "tree_size",
    "verify",
    "write_manifest",
    "zip_tree",
]
