"""The peers the compiled path is measured against: onnxruntime (skl2onnx) and MLServer's scikit-learn runtime.

- onnxruntime: the fitted pipeline converted by skl2onnx, one input per column (numbers as [n, 1] float tensors,
  categories as [n, 1] string tensors, which is how skl2onnx converts a ColumnTransformer fed a DataFrame), the
  classifier's ZipMap off so the probabilities are one [n, classes] tensor. float32 is skl2onnx's default; the
  float64 variant declares DoubleTensorType inputs, and is reported as whatever stage it fails at.
- MLServer: `mlserver_sklearn.SKLearnModel` in process, in a venv of its own under build/bench (mlserver pins its own
  web stack, which has no place in the dev extra), with the project's scikit-learn pins so the same joblib artifact
  loads. Its child process measures it against predict_proba of the estimator it loaded, interleaved, and returns
  the raw samples; if the venv cannot be built, the result says why.
- the size of a function that serves with onnxruntime: onnxruntime and its declared dependencies installed for the
  Lambda runtime by the layer tooling (manylinux wheels for Python 3.12), measured with its size code.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklambda_infra.bench import common

FLOAT32, FLOAT64 = "float32", "float64"
PEERS = common.BUILD / "peers"
MLSERVER_VENV = common.BUILD / "mlserver-venv"
# Pinned here, the one place: mlserver's runtime for scikit-learn and the server it plugs into.
MLSERVER_REQUIREMENTS = ("mlserver==1.7.1", "mlserver-sklearn==1.7.1")
# The project's pins the MLServer venv must share so that the benchmark's joblib artifact unpickles there as here.
SHARED_PINS = ("scikit-learn", "scipy", "numpy", "pandas", "joblib")
MLSERVER_INSTALL_TIMEOUT_S = 900


# --- onnxruntime ---------------------------------------------------------------------------------------------------


@dataclass
class OnnxArm:
    """A pipeline converted by skl2onnx and loaded by onnxruntime, or the reason it could not be."""

    dtype: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    model_bytes: bytes | None = None
    session: Any = None
    failure: str = ""  # "<stage>: <error>" when not usable

    @property
    def usable(self) -> bool:
        return self.session is not None

    def feeds(self, frame: Any) -> dict[str, Any]:
        """One input per column: numbers as [n, 1] arrays of this arm's dtype (NaN for missing), categories as
        [n, 1] object arrays of str."""
        import numpy as np

        dtype = np.float32 if self.dtype == FLOAT32 else np.float64
        out = {c: frame[c].to_numpy(dtype=dtype, na_value=np.nan).reshape(-1, 1) for c in self.numeric}
        out |= {c: frame[c].astype(object).to_numpy().reshape(-1, 1) for c in self.categorical}
        return out

    def run(self, feeds: dict[str, Any]) -> tuple[Any, Any]:
        """(labels [n], probabilities [n, classes] as float64) of `InferenceSession.run`."""
        import numpy as np

        labels, proba = self.session.run(None, feeds)
        return labels, np.asarray(proba, dtype=np.float64)


def convert(pipeline: Any, numeric: Sequence[str], categorical: Sequence[str], dtype: str) -> OnnxArm:
    """Convert a fitted pipeline with skl2onnx and load it in onnxruntime; never raises (the arm says what failed).

    skl2onnx: `convert_sklearn(model, initial_types=..., options={id(classifier): {"zipmap": False}})`; onnxruntime:
    `InferenceSession(bytes, providers=["CPUExecutionProvider"])`.
    """
    arm = OnnxArm(dtype, tuple(numeric), tuple(categorical))
    try:
        import onnxruntime
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType
    except ImportError as e:
        arm.failure = f"not installed: {e} (pip install -e '.[dev]')"
        return arm
    tensor = FloatTensorType if dtype == FLOAT32 else DoubleTensorType
    types = [(c, tensor([None, 1])) for c in numeric] + [(c, StringTensorType([None, 1])) for c in categorical]
    try:
        model = convert_sklearn(pipeline, initial_types=types, options={id(pipeline.steps[-1][1]): {"zipmap": False}})
        arm.model_bytes = model.SerializeToString()
    except Exception as e:  # any converter error is a finding, not a crash of the benchmark
        arm.failure = f"skl2onnx cannot convert it: {type(e).__name__}: {_first_line(e)}"
        return arm
    try:
        options = onnxruntime.SessionOptions()
        # One thread, as Lambda at 1,024 MB has less than one vCPU; also keeps the arm from using the other core.
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        arm.session = onnxruntime.InferenceSession(arm.model_bytes, options, providers=["CPUExecutionProvider"])
    except Exception as e:
        arm.failure = f"converts, but onnxruntime cannot load it: {type(e).__name__}: {_first_line(e)}"
    return arm


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[0][:300]


# A bare onnxruntime process: the least a Python process serving the converted model does to answer one row.
ONNX_CHILD = """
import time
t0 = time.monotonic()
import json, sys
import numpy as np
import onnxruntime
model_path, row_path, columns_path, out_path = sys.argv[1:5]
t1 = time.monotonic()
options = onnxruntime.SessionOptions()
options.intra_op_num_threads = options.inter_op_num_threads = 1
session = onnxruntime.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])
t2 = time.monotonic()
with open(row_path) as f:
    row = json.load(f)
with open(columns_path) as f:
    columns = json.load(f)
feeds = {c: np.array([[np.nan if row[c] is None else row[c]]], dtype=np.float32) for c in columns["numeric"]}
feeds |= {c: np.array([[row[c]]], dtype=object) for c in columns["categorical"]}
labels, proba = session.run(None, feeds)
t3 = time.monotonic()
with open(out_path, "w") as f:
    json.dump({"t0": t0, "done": t3, "status": 200 if proba.shape == (1, 2) else 500,
               "phases": {"import onnxruntime, numpy": t1 - t0, "InferenceSession": t2 - t1, "run": t3 - t2}}, f)
"""


def onnx_child_command(arm: OnnxArm, row: dict, tmp: Path, name: str) -> list[str]:
    """The argv (without the output path, which cold.py's `_spawn` appends) of a bare onnxruntime process."""
    model, row_path, columns = tmp / f"{name}.onnx", tmp / f"{name}-row.json", tmp / f"{name}-columns.json"
    model.write_bytes(arm.model_bytes)
    row_path.write_text(json.dumps(row))
    columns.write_text(json.dumps({"numeric": arm.numeric, "categorical": arm.categorical}))
    return [sys.executable, "-c", ONNX_CHILD, str(model), str(row_path), str(columns)]


def onnx_bundle(python_version: str = "3.12") -> dict[str, Any]:
    """What a function serving with onnxruntime installs: onnxruntime (this venv's version) with its declared
    dependencies, as manylinux wheels for the Lambda runtime (the layer tooling's `pip_install`), bytes per
    distribution by the layer tooling's `package_sizes`. {"measured": False, "reason"} when pip cannot."""
    from sklambda_infra.layer.install import LayerBuildError, installed_dists, lambda_platforms, pip_install
    from sklambda_infra.layer.measure import package_sizes, tree_size

    try:
        version = importlib.metadata.version("onnxruntime")
    except importlib.metadata.PackageNotFoundError:
        return {"measured": False, "reason": "onnxruntime is not installed (pip install -e '.[dev]')"}
    numpy = importlib.metadata.version("numpy")
    target = PEERS / f"onnxruntime-{version}-py{python_version}"
    requirements = [f"onnxruntime=={version}", f"numpy=={numpy}"]
    common.log(f"peers: installing {' '.join(requirements)} for Python {python_version} (manylinux) to measure it")
    try:
        pip_install(requirements, target, python_version, lambda_platforms())
    except LayerBuildError as e:
        return {"measured": False, "reason": str(e)}
    total, files = tree_size(target)
    sizes = package_sizes(target, installed_dists(target))
    packages = {name: sizes.get(name, 0) for name in installed_dists(target)}
    return {
        "measured": True,
        "requirements": requirements,
        "python_version": python_version,
        "total_bytes": total,
        "files": files,
        "packages": dict(sorted(packages.items(), key=lambda kv: -kv[1])),
    }


# --- MLServer --------------------------------------------------------------------------------------------------------

# Runs in the MLServer venv: loads the artifact with SKLearnModel, encodes one request once (PandasCodec, asking for
# predict_proba), then alternates blocks of `SKLearnModel.predict(request)` and the loaded estimator's predict_proba
# on the same one-row DataFrame, ABBA. Writes the raw samples (ns); the parent computes the statistics.
MLSERVER_CHILD = """
import asyncio, json, sys, time
import numpy as np
import pandas as pd
from mlserver.codecs import NumpyCodec, PandasCodec
from mlserver.settings import ModelParameters, ModelSettings
from mlserver.types import RequestOutput
from mlserver_sklearn import SKLearnModel

artifact, row_path, rounds, block, warmup, out_path = sys.argv[1:7]
rounds, block, warmup = int(rounds), int(block), int(warmup)
with open(row_path) as f:
    row = json.load(f)
loop = asyncio.new_event_loop()
runtime = SKLearnModel(ModelSettings(name="m", implementation=SKLearnModel, parameters=ModelParameters(uri=artifact)))
loop.run_until_complete(runtime.load())
frame = pd.DataFrame([row])
# MLServer 1.7.1's PandasCodec has no datatype for pandas 3's str dtype: encode the strings from object columns.
request = PandasCodec.encode_request(frame.astype({c: object for c in frame.columns if frame[c].dtype == "str"}))
request.outputs = [RequestOutput(name="predict_proba")]
estimator = runtime._model

def served():
    return loop.run_until_complete(runtime.predict(request))

def raw():
    return estimator.predict_proba(frame)

got = NumpyCodec.decode_output(served().outputs[0])
if not np.allclose(got, raw(), rtol=0, atol=1e-12):
    raise SystemExit(f"MLServer and predict_proba disagree: {got} vs {raw()}")
for _ in range(warmup):
    served(); raw()
arms = {"subject": [], "baseline": []}
calls = {"subject": served, "baseline": raw}
clock = time.perf_counter_ns
for r in range(rounds):
    for arm in (("subject", "baseline") if r % 2 == 0 else ("baseline", "subject")):
        fn, samples = calls[arm], arms[arm]
        for _ in range(block):
            t0 = clock(); fn(); samples.append(clock() - t0)
import mlserver
with open(out_path, "w") as f:
    json.dump({"mlserver_version": mlserver.__version__, "served_ns": arms["subject"], "raw_ns": arms["baseline"]}, f)
"""


def mlserver_requirements() -> list[str]:
    """MLServer's pins plus the project's for the packages a joblib artifact of the benchmark needs to unpickle."""
    from sklambda_infra.layer.requirements import pyproject_dependencies

    pins = pyproject_dependencies()
    return [*MLSERVER_REQUIREMENTS, *(str(pins[name]) for name in SHARED_PINS)]


def mlserver_python() -> tuple[Path | None, str]:
    """The MLServer venv's python, built once (a stamp names its requirements); (None, why) if pip cannot."""
    requirements = mlserver_requirements()
    python = MLSERVER_VENV / "bin" / "python"
    stamp = MLSERVER_VENV / f".installed-{hashlib.sha256(' '.join(requirements).encode()).hexdigest()[:12]}"
    if stamp.exists():
        return python, ""
    common.log(f"peers: building {MLSERVER_VENV} with {' '.join(requirements)} (once; a minute or two)")
    started = time.perf_counter()
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(MLSERVER_VENV)], check=True, capture_output=True)
        proc = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *requirements],
            capture_output=True,
            text=True,
            timeout=MLSERVER_INSTALL_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"could not create the venv: {type(e).__name__}: {e}"
    if proc.returncode != 0:
        tail = [line for line in (proc.stdout + proc.stderr).splitlines() if "is ignored" not in line][-6:]
        return None, f"pip install {' '.join(requirements)} failed ({proc.returncode}): " + " / ".join(tail)
    for old in MLSERVER_VENV.glob(".installed-*"):
        old.unlink()
    stamp.touch()
    common.log(f"peers: MLServer venv ready in {time.perf_counter() - started:.0f} s")
    return python, ""


def mlserver_warm(artifact: Path, row: dict, rounds: int, block: int, warmup: int, tmp: Path) -> dict[str, Any]:
    """MLServer's SKLearnModel vs predict_proba in one process of the MLServer venv: {"measured": True, "served_ns",
    "raw_ns", "mlserver_version"} or {"measured": False, "reason"}."""
    python, reason = mlserver_python()
    if python is None:
        return {"measured": False, "reason": reason}
    model = tmp / "mlserver" / "model.joblib"  # SKLearnModel finds the artifact by its extension
    model.parent.mkdir(parents=True, exist_ok=True)
    model.write_bytes(artifact.read_bytes())
    row_path, out = tmp / "mlserver" / "row.json", tmp / "mlserver" / "out.json"
    row_path.write_text(json.dumps(row))
    out.unlink(missing_ok=True)
    argv = [
        str(python),
        "-c",
        MLSERVER_CHILD,
        str(model),
        str(row_path),
        str(rounds),
        str(block),
        str(warmup),
        str(out),
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not out.exists():
        tail = " / ".join(proc.stderr.strip().splitlines()[-4:])
        return {"measured": False, "reason": f"the MLServer process failed ({proc.returncode}): {tail}"}
    return {"measured": True, **json.loads(out.read_text())}
