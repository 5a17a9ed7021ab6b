"""The build itself: install and slim (shared by the full build and ``sam build``), then for the full build the
runtime layer and function copied beside it, everything zipped, verified and reported."""

from __future__ import annotations

import json
import platform
import shutil
import time
from pathlib import Path

from sklambda_infra.progress import Progress

from .install import LayerBuildError, check_pins, installed_dists, pip_install
from .manifest import write_manifest
from .measure import LAMBDA_UNZIPPED_LIMIT, MIB, package_sizes, tree_size, zip_tree
from .options import Options
from .paths import FUNCTION_SRC, REPORT_NAME, RUNTIME_LAYER_SRC
from .report import make_report, render
from .requirements import pin_arguments, read_pins
from .slimming import slim, strip_binaries
from .verification import find_python, layer_packages, run_probe, runtime_stand_in, verify, walk_args


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
    """Slim and strip ``target``, measure it again and write its manifest; adds ``slimmed``, ``stripped``, ``after``
    and ``manifest`` to ``state`` (install_and_slim's) and returns it."""
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
    """The full build: layer, runtime layer and function measured, zipped, verified; returns (report, exit code).
    Its steps are shown on stderr as they run (sklambda_infra.progress); the report goes to stdout."""
    out = opts.out.resolve()
    deps_root, runtime_root, function_root = out / "deps", out / "runtime", out / "function"
    deps = deps_root / "python"
    progress = Progress("layer")
    with progress.stage(f"installing the pinned wheels for python{opts.python_version} {opts.platforms[0]}"):
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
        with progress.stage(f"importing every module under {python} before slimming"):
            stand_in = runtime_stand_in(out, opts.python_version, opts.platforms)
            # What imports before slimming, so that slimming is judged against the same interpreter and path.
            baseline = run_probe(python, walk_args([deps, stand_in], packages))
        state["timings"]["baseline_walk_seconds"] = round(time.perf_counter() - t0, 1)
    with progress.stage("slimming and stripping"):
        finish_slim(deps, state)

    copy_code(RUNTIME_LAYER_SRC, runtime_root / "python" / "sklambda")
    function_present = copy_code(FUNCTION_SRC, function_root)

    t0 = time.perf_counter()
    zips = out / "zips"
    with progress.stage("zipping the layers and the function"):
        zipped = {
            "deps": zip_tree(deps_root, zips / "deps-layer.zip"),
            "runtime": zip_tree(runtime_root, zips / "runtime-layer.zip"),
            "function": zip_tree(function_root, zips / "function.zip"),
        }
    state["timings"]["zip_seconds"] = round(time.perf_counter() - t0, 1)

    verification = None
    if verifying:
        t0 = time.perf_counter()
        with progress.stage(f"verifying that every module imports and pipelines fit under {python}"):
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


def copy_code(src: Path, dest: Path) -> bool:
    """Copy our own code as it would be deployed (no caches, no tests); False when ``src`` does not exist yet."""
    if dest.exists():
        shutil.rmtree(dest)
    if not src.is_dir():
        dest.mkdir(parents=True)
        return False
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "tests", ".pytest_cache"))
    return True


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
