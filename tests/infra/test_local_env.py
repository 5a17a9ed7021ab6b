"""The host-Python copy of the dependency layer: the package set local workers and the publish check run on.

Each copy is built once per machine into .sklambda/runtime/ (pip install --no-deps of the layer's pins, ~15 s with a
warm pip cache; PyPI is needed the first time) and reused by every later run, so these tests are fast after the
first. A "worker-style" process is `python -I -S` with sys.path exactly the given folders, as local/worker.py runs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sklambda.runtime_env import MANIFEST_NAME, RuntimeManifest, find_manifest
from sklambda_infra import layer
from sklambda_infra.layer import local as host_copy
from tests import runtimes
from tests.runtimes import LIGHTGBM, OTHER_SKLEARN


@pytest.fixture(scope="session")
def default_copy() -> Path:
    return layer.local_env()


@pytest.fixture(scope="session")
def lightgbm_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return runtimes.lightgbm_copy(tmp_path_factory.mktemp("extras"))


def worker_style(paths: list[Path], code: str) -> dict:
    """Run `code` (which prints one JSON line) under `python -I -S` with sys.path = paths + the standard library."""
    prelude = f"import sys, json; sys.path[:0] = {[str(p) for p in paths]!r}\n"
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", prelude + code],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


IMPORTABLE = """
import importlib.util
names = {names!r}
print(json.dumps({{n: importlib.util.find_spec(n) is not None for n in names}}))
"""


def test_host_copy_holds_exactly_the_layer_pins_with_its_manifest(default_copy: Path) -> None:
    # GIVEN the layer's pins (requirements.txt and extra-requirements.txt)
    pins = layer.read_pins()

    # WHEN the host copy's manifest is read
    manifest = RuntimeManifest.read(default_copy)

    # THEN it lists every pinned distribution at its pinned version, for this interpreter, and nothing else
    assert manifest.packages == {name: pin.version for name, pin in pins.items()}
    assert manifest.platform == "host" and manifest.python == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert {"sklearn", "numpy", "pandas", "aws_lambda_powertools", "pydantic"} <= set(manifest.modules)
    # AND it lives in the cache folder named for the interpreter and the pins
    assert default_copy.name == "python" and default_copy.parent.name.startswith(layer.python_tag() + "-")
    assert find_manifest([str(default_copy)]) == manifest


def test_host_copy_is_reused_without_running_pip(default_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a copy already built, and a pip that would fail if it ran
    def no_pip(cmd):
        raise AssertionError(f"pip ran: {cmd}")

    monkeypatch.setattr(host_copy, "run_pip", no_pip)

    # WHEN the copy is asked for again
    again = layer.local_env()

    # THEN the same folder comes back
    assert again == default_copy


def test_failed_build_leaves_nothing_in_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a pip that fails
    def failing_pip(cmd):
        raise layer.LayerBuildError("pip install failed (1)")

    monkeypatch.setattr(host_copy, "run_pip", failing_pip)

    # WHEN a copy is built into an empty cache
    with pytest.raises(layer.LayerBuildError, match="pip install failed"):
        layer.local_env(cache=tmp_path)

    # THEN no folder, complete or half-built, is left behind to be mistaken for a copy
    assert list(tmp_path.iterdir()) == []


def test_worker_style_process_on_the_copy_sees_no_venv_package(default_copy: Path) -> None:
    # GIVEN packages installed in the venv (the test tooling) but not pinned in the layer
    names = ["sklearn", "pandas", "aws_lambda_powertools", "moto", "yaml", "pytest", "boto3"]

    # WHEN a worker-style process looks for them with only the host copy on its path
    found = worker_style([default_copy], IMPORTABLE.format(names=names))

    # THEN the layer's packages are there and the venv's extras are not (boto3 comes from the runtime stand-in)
    assert found == {
        "sklearn": True,
        "pandas": True,
        "aws_lambda_powertools": True,
        "moto": False,
        "yaml": False,
        "pytest": False,
        "boto3": False,
    }


def test_an_extra_requirement_reaches_the_manifest_and_the_worker(default_copy: Path, lightgbm_copy: Path) -> None:
    # GIVEN the host copy built with an extras file pinning lightgbm
    manifest = RuntimeManifest.read(lightgbm_copy)

    # THEN its manifest lists lightgbm among the packages and the modules, beside the layer's own
    assert manifest.packages["lightgbm"] == LIGHTGBM and "lightgbm" in manifest.modules
    assert manifest.packages["scikit-learn"] == RuntimeManifest.read(default_copy).packages["scikit-learn"]
    assert manifest.fingerprint != RuntimeManifest.read(default_copy).fingerprint

    # WHEN worker-style processes train a lightgbm model on each copy
    code = """
try:
    import lightgbm, numpy as np
except ImportError as e:
    print(json.dumps({"error": str(e)}))
else:
    x = np.random.default_rng(0).normal(size=(200, 3)); y = (x[:, 0] > 0).astype(int)
    model = lightgbm.LGBMClassifier(n_estimators=5, verbose=-1).fit(x, y)
    print(json.dumps({"version": lightgbm.__version__, "accuracy": float((model.predict(x) == y).mean())}))
"""
    with_extra = worker_style([lightgbm_copy], code)
    without = worker_style([default_copy], code)

    # THEN it imports and fits with the extra, and the default layer does not provide it
    assert with_extra["version"] == LIGHTGBM and with_extra["accuracy"] > 0.9
    assert without == {"error": "No module named 'lightgbm'"}


def test_another_supported_scikit_learn_is_one_argument_away() -> None:
    # GIVEN the layer's pins with scikit-learn replaced by another supported release
    assert OTHER_SKLEARN in layer.SUPPORTED_SKLEARN
    copy = runtimes.other_sklearn_copy()

    # WHEN its manifest is read and a worker-style process fits a pipeline on it
    manifest = RuntimeManifest.read(copy)
    code = """
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
model = make_pipeline(StandardScaler(), LogisticRegression()).fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
print(json.dumps({"version": sklearn.__version__, "predicted": model.predict([[0.0], [3.0]]).tolist()}))
"""
    seen = worker_style([copy], code)

    # THEN the manifest and the interpreter agree on that version, and it fits
    assert manifest.packages["scikit-learn"] == OTHER_SKLEARN == seen["version"]
    assert seen["predicted"] == [0, 1]
    assert (copy / MANIFEST_NAME).is_file() and copy != layer.local_env()
