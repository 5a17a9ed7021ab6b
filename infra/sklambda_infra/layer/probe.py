"""The probe: checks that run *inside* an interpreter that sees nothing but a layer.

    python3.12 -I -S -B probe.py {smoke|walk|fit} --path DIR ... --result FILE

It is run as a script by path (verification.run_probe), never imported there: ``-I -S`` leaves no site-packages, no
PYTHON* variables and not even this file's folder on sys.path, so it imports only the standard library and what the
``--path`` folders hold, and knows nothing of the tooling (what to look for comes in as arguments). ``smoke`` imports
the numeric stack and powertools, runs the resolver and fits, round-trips and predicts scikit-learn pipelines;
``walk`` imports every module of the given packages; ``fit`` is the host copy's shorter check. The result is JSON
written to ``--result``; the exit code is 0 when ``ok``.

demo_data and demo_pipelines are imported by the host side too (verification's reference model).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


def demo_data(n: int, seed: int):
    """A small mixed-type classification table; numpy's generator gives the same rows on every Python."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(float),
            "income": np.round(rng.lognormal(10.5, 0.5, n), 2),
            "plan": rng.choice(["basic", "plus", "pro"], n),
            "region": rng.choice(["eu", "us", "apac"], n),
        }
    )
    logit = 0.04 * (x["age"] - 45) + 1.2 * (x["plan"] == "pro") - 0.6 * (x["region"] == "apac")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return x, y


def demo_pipelines() -> dict:
    """Two scikit-learn pipelines (scaling + one-hot, then a logistic regression or a 50-tree forest) for demo_data."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def pre() -> ColumnTransformer:
        return ColumnTransformer(
            [
                ("num", StandardScaler(), ["age", "income"]),
                ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan", "region"]),
            ]
        )

    return {
        "logistic_regression": Pipeline([("pre", pre()), ("model", LogisticRegression(max_iter=1000))]),
        "random_forest": Pipeline([("pre", pre()), ("model", RandomForestClassifier(n_estimators=50, random_state=0))]),
    }


def _probe_smoke(ns: argparse.Namespace) -> dict:
    import importlib
    import pkgutil

    started = time.perf_counter()
    import joblib
    import numpy as np
    import pandas as pd
    import pydantic
    import scipy
    import sklearn

    imported_at = time.perf_counter()
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.event_handler import APIGatewayRestResolver
    from aws_lambda_powertools.metrics import MetricUnit
    from aws_xray_sdk.core import xray_recorder  # the tracer's SDK, on the runtime's botocore

    powertools_at = time.perf_counter()
    import boto3
    import botocore
    import threadpoolctl

    result: dict = {"python": ".".join(map(str, sys.version_info[:3]))}
    result["import_seconds"] = {
        "numpy+scipy+pandas+sklearn+joblib+pydantic": round(imported_at - started, 3),
        "powertools+xray": round(powertools_at - imported_at, 3),
    }
    result["versions"] = {
        m.__name__: m.__version__ for m in (sklearn, scipy, np, pd, joblib, pydantic, boto3, botocore, threadpoolctl)
    }
    checks: dict[str, bool] = {}
    # boto3/botocore must come from the runtime stand-in, never from the layer.
    runtime_path = Path(ns.runtime_path).resolve()
    checks["boto3_from_runtime"] = all(
        Path(m.__file__).resolve().is_relative_to(runtime_path) for m in (boto3, botocore)
    )
    checks["layer_has_no_runtime_libs"] = not any(
        (Path(ns.layer_path) / n).exists() for n in (*ns.runtime_lib, *(f"{n}.py" for n in ns.runtime_lib))
    )
    result["thread_pools"] = [
        {k: info.get(k) for k in ("internal_api", "version", "num_threads", "filepath")}
        for info in threadpoolctl.threadpool_info()
    ]
    checks["native_libs_loaded"] = bool(result["thread_pools"])  # OpenBLAS (numpy's, scipy's), OpenMP

    # Powertools as the handler uses it.
    Logger(service="verify")
    metrics = Metrics(namespace="sklambda", service="verify")
    metrics.add_metric(name="Verified", unit=MetricUnit.Count, value=1)
    checks["metrics_emf"] = "_aws" in metrics.serialize_metric_set()
    Tracer(service="verify")
    checks["xray_recorder"] = xray_recorder is not None
    app = APIGatewayRestResolver(enable_validation=True)

    @app.get("/ping")
    def ping() -> dict:
        return {"ok": True}

    response = app.resolve(_rest_event("/ping"), None)
    checks["rest_resolver"] = response["statusCode"] == 200 and json.loads(response["body"]) == {"ok": True}

    # Every module of our runtime layer imports.
    import sklambda

    ours = [m.name for m in pkgutil.walk_packages(sklambda.__path__, "sklambda.")]
    for name in ours:
        importlib.import_module(name)
    result["sklambda_modules"] = ours
    checks["sklambda_modules"] = bool(ours)

    # Fit, round-trip and predict inside this interpreter.
    x, y = demo_data(600, seed=0)
    models = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, pipeline in demo_pipelines().items():
            t0 = time.perf_counter()
            pipeline.fit(x, y)
            fit_s = time.perf_counter() - t0
            path = Path(tmp) / f"{name}.joblib"
            joblib.dump(pipeline, path)
            loaded = joblib.load(path)
            t0 = time.perf_counter()
            proba = loaded.predict_proba(x.head(1))
            predict_ms = (time.perf_counter() - t0) * 1000
            same = bool(np.array_equal(loaded.predict_proba(x), pipeline.predict_proba(x)))
            models[name] = {
                "train_accuracy": round(float((loaded.predict(x) == y).mean()), 4),
                "proba_first_row": [round(float(p), 6) for p in proba[0]],
                "fit_seconds": round(fit_s, 3),
                "predict_one_row_ms": round(predict_ms, 2),
                "artifact_bytes": path.stat().st_size,
                "roundtrip_identical": same,
            }
            checks[f"{name}_roundtrip"] = same
    result["models"] = models

    if ns.reference:
        # A model pickled by the publisher's interpreter (the project venv) loads and agrees here.
        ref = json.loads(Path(ns.reference).read_text())
        model = joblib.load(ref["path"])
        x_ref, _ = demo_data(400, seed=7)
        diff = float(np.abs(model.predict_proba(x_ref.head(20)) - np.asarray(ref["proba"])).max())
        result["reference_model"] = {"pickled_by_python": ref["python"], "max_abs_proba_diff": diff}
        checks["reference_model_agrees"] = diff < 1e-9
    result["checks"] = checks
    result["ok"] = all(checks.values())
    return result


def _rest_event(path: str) -> dict:
    return {
        "resource": path,
        "path": path,
        "httpMethod": "GET",
        "headers": {"Accept": "application/json"},
        "multiValueHeaders": {"Accept": ["application/json"]},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
            "httpMethod": "GET",
            "path": f"/test{path}",
            "stage": "test",
            "requestId": "verify",
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": None,
        "isBase64Encoded": False,
    }


def _probe_walk(ns: argparse.Namespace) -> dict:
    """Import every module of the given packages; report what imported and what failed (and why)."""
    import contextlib
    import importlib
    import io
    import pkgutil

    started = time.perf_counter()
    imported: list[str] = []
    failed: dict[str, str] = {}
    missing: dict[str, int] = {}

    def attempt(name: str) -> object | None:
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                module = importlib.import_module(name)
        except BaseException as exc:  # a module may raise anything, SystemExit included
            if isinstance(exc, KeyboardInterrupt):
                raise
            failed[name] = f"{type(exc).__name__}: {exc}"[:300]
            if isinstance(exc, ModuleNotFoundError) and exc.name:
                top = exc.name.split(".")[0]
                missing[top] = missing.get(top, 0) + 1
            return None
        imported.append(name)
        return module

    for package in ns.package:
        module = attempt(package)
        for info in pkgutil.walk_packages(getattr(module, "__path__", []), f"{package}.", onerror=lambda _: None):
            parts = info.name.split(".")
            if parts[-1] == "__main__" or set(ns.skip_folder) & set(parts):
                continue  # __main__ runs a program; tests are removed on purpose
            attempt(info.name)
    return {
        "ok": True,
        "packages": list(ns.package),
        "imported": sorted(imported),
        "failed": failed,
        "missing_counts": dict(sorted(missing.items(), key=lambda kv: -kv[1])),
        "seconds": round(time.perf_counter() - started, 2),
    }


def _probe_fit(ns: argparse.Namespace) -> dict:
    """The host copy's check: the numeric stack imports from the given path alone, and pipelines fit and round-trip."""
    import joblib
    import numpy as np
    import pandas as pd
    import scipy
    import sklearn

    versions = {m.__name__: m.__version__ for m in (sklearn, scipy, np, pd, joblib)}
    checks = {"sklearn_version": ns.expect_sklearn in (None, sklearn.__version__)}
    x, y = demo_data(300, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        for name, pipeline in demo_pipelines().items():
            pipeline.fit(x, y)
            path = Path(tmp) / f"{name}.joblib"
            joblib.dump(pipeline, path)
            checks[f"{name}_roundtrip"] = bool(
                np.array_equal(joblib.load(path).predict_proba(x), pipeline.predict_proba(x))
            )
    return {"ok": all(checks.values()), "versions": versions, "checks": checks}


def main(argv: Sequence[str]) -> int:
    """Run one check with the ``--path`` folders first on sys.path; write its JSON result; 0 when it passed."""
    parser = argparse.ArgumentParser(prog="probe.py")
    parser.add_argument("mode", choices=("smoke", "walk", "fit"))
    parser.add_argument("--path", action="append", default=[])
    parser.add_argument("--package", action="append", default=[], help="walk: import every module of it")
    parser.add_argument("--skip-folder", action="append", default=[], help="walk: skip modules in such folders")
    parser.add_argument("--runtime-lib", action="append", default=[], help="smoke: must not be in --layer-path")
    parser.add_argument("--runtime-path")
    parser.add_argument("--layer-path")
    parser.add_argument("--reference")
    parser.add_argument("--expect-sklearn")
    parser.add_argument("--result", required=True)
    ns = parser.parse_args(argv)
    sys.path[:0] = ns.path
    sys.dont_write_bytecode = True
    try:
        result = {"smoke": _probe_smoke, "walk": _probe_walk, "fit": _probe_fit}[ns.mode](ns)
    except Exception as exc:
        import traceback

        result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
    Path(ns.result).write_text(json.dumps(result, indent=1, default=str))
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
