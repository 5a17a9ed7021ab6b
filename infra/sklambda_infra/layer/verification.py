"""Verifying a slimmed layer under the Lambda Python version (``--verify``).

A real Python 3.12 sees nothing but the layer, our runtime layer and a boto3-only stand-in for the runtime's own
libraries (probe.py under ``-I -S -B``). It must import every module that imported before slimming, pass the smoke
test (powertools, the REST resolver, pipelines that fit, round-trip and predict) and load a model pickled by this
interpreter with the same probabilities.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from . import probe
from .install import DEFAULT_PYTHON_VERSION, pip_install
from .requirements import RUNTIME_PROVIDED, boto3_requirement, canonical
from .slimming import TEST_DIRS

PROBE = Path(probe.__file__).resolve()


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
    """A folder with only boto3 and what it pulls, standing in for the libraries the Lambda runtime provides.

    Installed for the Lambda interpreter and platforms into ``<out>/.lambda-runtime/python<version>``, once per
    pyproject boto3 requirement and platform list. Raises LayerBuildError when pip fails.
    """
    spec = boto3_requirement()
    folder = out / ".lambda-runtime" / f"python{python_version}"
    stamp = folder / ".installed"
    wanted = json.dumps({"spec": spec, "platforms": list(platforms)})
    if not (stamp.exists() and stamp.read_text() == wanted):
        pip_install([spec], folder, python_version, platforms)
        stamp.write_text(wanted)
    return folder


def layer_packages(root: Path) -> list[str]:
    """Top-level importable names in an installed tree, without the runtime-provided ones."""
    names = set()
    for entry in root.iterdir():
        if entry.is_dir() and (entry / "__init__.py").exists():
            names.add(entry.name)
        elif entry.suffix == ".py":
            names.add(entry.stem)
    return sorted(n for n in names if canonical(n) not in RUNTIME_PROVIDED and n not in RUNTIME_PROVIDED)


def walk_args(paths: Iterable[Path], packages: Iterable[str]) -> list[str]:
    """The probe's ``walk`` arguments: import every module of ``packages`` from ``paths``, tests skipped (slimming
    removes them on purpose)."""
    args = ["walk"]
    args += [a for p in paths for a in ("--path", str(p))]
    args += [a for p in packages for a in ("--package", p)]
    args += [a for d in sorted(TEST_DIRS) for a in ("--skip-folder", d)]
    return args


def run_probe(python: str, args: Sequence[str], timeout: int = 900) -> dict:
    """Run probe.py as a script under ``python -I -S -B``: no site-packages, no PYTHON* variables, no .pyc.

    -I ignores PYTHONPATH, so the layer's folders are passed as arguments and put on sys.path by the probe.
    Returns the probe's JSON result, or ``{"ok": False, "error": ...}`` with the output's tail when it wrote none.
    Raises subprocess.TimeoutExpired after ``timeout`` seconds.
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
        cmd = [python, "-I", "-S", "-B", str(PROBE), *args, "--result", str(result_file)]
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
    x, y = probe.demo_data(400, seed=7)
    model = probe.demo_pipelines()["logistic_regression"].fit(x, y)
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
    """Smoke-test the slimmed layer and re-import every module that imported before slimming.

    ``deps`` is the slimmed layer's ``python/`` folder, ``runtime_layer`` our own layer's, ``stand_in`` the
    runtime_stand_in folder; ``baseline`` is the probe's walk of ``packages`` before slimming. Returns
    ``{"interpreter", "smoke", "walk", "ok"[, "reference_model"]}``; ``ok`` is False when the smoke test fails or a
    module that imported before slimming no longer does.
    """
    with tempfile.TemporaryDirectory(prefix="sklambda-verify-") as tmp:
        reference = _reference_model(Path(tmp))
        smoke_args = ["smoke", "--path", str(deps), "--path", str(runtime_layer), "--path", str(stand_in)]
        smoke_args += ["--runtime-path", str(stand_in), "--layer-path", str(deps)]
        if reference:
            (Path(tmp) / "reference.json").write_text(json.dumps(reference))
            smoke_args += ["--reference", str(Path(tmp) / "reference.json")]
        smoke_args += [a for n in RUNTIME_PROVIDED for a in ("--runtime-lib", n)]
        smoke = run_probe(python, smoke_args)
    walk = run_probe(python, walk_args([deps, runtime_layer, stand_in], packages))
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
