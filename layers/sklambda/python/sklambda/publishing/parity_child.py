"""The parity gate's process in the target runtime: a small fork server.

Started by `sklambda.publishing.parity` as `python -I -S -B -c <boot> PATH...`, so `sys.path` is exactly the given
folders (the sklambda package, the dependency layer's host copy, the stand-in for what the Lambda runtime ships)
plus the standard library: nothing from the publisher's site-packages. It imports the layer's packages once, then
forks one child per job, so every artifact is unpickled in a process that has loaded no other model and no user
code, at the cost of a fork instead of an interpreter start.

Protocol, one JSON object per line on the original stdin/stdout (the jobs' own output goes to stderr):
    server -> parent  {"ready": true, "manifest": {...} | null, "python": "3.11.7"}
    parent -> server  {"id": n, "job": "/path/job.json"}
    server -> parent  {"id": n, "exit": code}          the child wrote its answer to job["result"]
A job file: {"card": card dict, "artifact": path, "code": {path: text} | null, "payloads": {route: text},
"result": path, "timeout_s": int, "compiled": path (optional)}. The answer: {"routes": {route: {"predictions": [...],
"probabilities": [[...]] | null} | {"error": str, "errors": [field errors]}}, "load_error": str | null, "compiled":
{"routes": {...}, "load_error": str | null} (when the job has a compiled artifact: its REST and v2 answers, scored by
the compiled evaluator as the predict function scores it)}.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from typing import Any

REST, V2, CSV_ROUTE, JSONL_ROUTE = "rest", "v2", "batch_csv", "batch_jsonl"


def _preload() -> None:
    # What a predict or batch container imports at its cold start, so that forked jobs start warm.
    import joblib  # noqa: F401
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import sklearn.compose
    import sklearn.ensemble
    import sklearn.impute
    import sklearn.linear_model
    import sklearn.pipeline
    import sklearn.preprocessing  # noqa: F401

    import sklambda.batch.engine
    import sklambda.serving.contracts
    import sklambda.serving.oip
    import sklambda.serving.server  # noqa: F401


def _error(e: BaseException) -> dict[str, Any]:
    from sklambda.errors import SklambdaError

    if isinstance(e, SklambdaError):
        return {"error": e.message, "errors": [x.to_dict() for x in e.errors]}
    return {"error": f"{type(e).__name__}: {e}", "errors": [], "traceback": traceback.format_exc(limit=8)}


def _rest(scorer: Any, text: str) -> dict[str, Any]:
    from sklambda.serving.contracts import PredictRequest, PredictResponse, parse_body

    body = parse_body(text, PredictRequest, max_bytes=len(text.encode()) + 1)
    scored = scorer.score(body.instances)
    answer = PredictResponse.from_scored(scored, [f"parity-{i}" for i in range(len(body.instances))]).model_dump()
    keys = scorer.class_keys
    proba = answer["probabilities"]
    return {
        "predictions": answer["predictions"],
        "probabilities": [[p[k] for k in keys] for p in proba] if proba is not None else None,
    }


def _v2(scorer: Any, card: Any, text: str) -> dict[str, Any]:
    from sklambda.serving import oip
    from sklambda.serving.contracts import InferRequest, parse_body

    request = parse_body(text, InferRequest, max_bytes=len(text.encode()) + 1)
    answer = oip.encode(scorer.score(oip.decode(request, card)), card, request)
    outputs = {o["name"]: o for o in answer["outputs"]}
    proba = outputs.get("predict_proba")
    if proba is not None:
        width = proba["shape"][1]
        data = proba["data"]
        rows = [data[i * width : (i + 1) * width] for i in range(proba["shape"][0])]
    else:
        rows = None
    return {"predictions": outputs["predict"]["data"], "probabilities": rows}


def _batch(loaded: Any, data: str, fmt: str) -> dict[str, Any]:
    import csv
    import io

    from sklambda.batch.engine import output_columns, score_file

    scored, errors = score_file(loaded, data.encode(), fmt)
    if errors:
        return {"error": "rows were rejected by the batch reader", "errors": [], "rejected": errors.decode()[:4000]}
    columns = output_columns(loaded)
    probas = [c for c in columns if c.startswith("proba_")]
    if fmt == "csv":
        records = list(csv.DictReader(io.StringIO(scored.decode())))
        predictions: list[Any] = [r["prediction"] for r in records]
        probabilities = [[float(r[c]) for c in probas] for r in records] if probas else None
    else:
        records = [json.loads(line) for line in scored.decode().splitlines() if line.strip()]
        predictions = [r["prediction"] for r in records]
        probabilities = [[float(r[c]) for c in probas] for r in records] if probas else None
    return {"predictions": predictions, "probabilities": probabilities, "text": fmt == "csv"}


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Load the artifact as the runtime does and answer each payload through its route's decoder."""
    from sklambda.registry.card import ModelCard
    from sklambda.serving.scoring import Scorer
    from sklambda.serving.server import LoadedModel, unpickle

    card = ModelCard.from_dict(job["card"])
    with open(job["artifact"], "rb") as f:
        blob = f.read()
    code = {p: t.encode() for p, t in job["code"].items()} if job.get("code") else None
    try:
        estimator = unpickle(card, blob, code)
        scorer = Scorer(estimator, card)
    except BaseException as e:  # what the runtime would meet at its first request
        return {"load_error": f"{type(e).__name__}: {e}", "routes": {}}
    loaded = LoadedModel(card, scorer, 0.0)
    answer: dict[str, Any] = {"load_error": None, "routes": _routes(job, loaded)}
    if job.get("compiled"):
        answer["compiled"] = _compiled(job, card, estimator)
    return answer


def _compiled(job: dict[str, Any], card: Any, estimator: Any) -> dict[str, Any]:
    """The REST and v2 answers of the compiled artifact, scored by the compiled evaluator."""
    from sklambda.compiled.evaluate import CompiledModel
    from sklambda.compiled.program import CompiledProgram
    from sklambda.serving.scoring import Scorer
    from sklambda.serving.server import LoadedModel

    with open(job["compiled"], "rb") as f:
        blob = f.read()
    try:
        scorer = Scorer.from_compiled(CompiledModel(CompiledProgram.from_bytes(blob)), card, lambda: estimator)
    except Exception as e:
        return {"load_error": f"{type(e).__name__}: {e}", "routes": {}}
    payloads = {r: p for r, p in job["payloads"].items() if r in (REST, V2)}
    return {"load_error": None, "routes": _routes({"payloads": payloads}, LoadedModel(card, scorer, 0.0))}


def _routes(job: dict[str, Any], loaded: Any) -> dict[str, Any]:
    """Each payload of the job answered through its route's decoder by `loaded`."""
    card, scorer = loaded.card, loaded.scorer
    routes: dict[str, Any] = {}
    for route, payload in job["payloads"].items():
        try:
            if route == REST:
                routes[route] = _rest(scorer, payload)
            elif route == V2:
                routes[route] = _v2(scorer, card, payload)
            elif route == CSV_ROUTE:
                routes[route] = _batch(loaded, payload, "csv")
            elif route == JSONL_ROUTE:
                routes[route] = _batch(loaded, payload, "jsonl")
        except Exception as e:
            routes[route] = _error(e)
    return routes


def _child(job_path: str) -> int:
    with open(job_path) as f:
        job = json.load(f)
    signal.alarm(int(job.get("timeout_s", 120)))
    try:
        answer = run_job(job)
    except BaseException as e:
        answer = {"load_error": f"{type(e).__name__}: {e}", "routes": {}, "traceback": traceback.format_exc()}
    with open(job["result"], "w") as f:
        json.dump(answer, f, allow_nan=True, default=str)
    return 0


def main() -> int:
    """Run the fork server (protocol in the module docstring) until stdin closes; return the process exit code (1 when
    the runtime's packages cannot be imported).
    """
    proto_in = os.fdopen(os.dup(0), "r", encoding="utf-8")
    proto_out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # the jobs' prints go to stderr, never into the protocol
    try:
        _preload()
        from sklambda.runtime_env import find_manifest

        manifest = find_manifest()
        hello = {"ready": True, "manifest": manifest.to_dict() if manifest else None, "python": sys.version.split()[0]}
    except BaseException as e:
        hello = {"ready": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    proto_out.write(json.dumps(hello) + "\n")
    proto_out.flush()
    if not hello["ready"]:
        return 1
    for line in proto_in:
        request = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _child(request["job"])
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        proto_out.write(json.dumps({"id": request["id"], "exit": os.waitstatus_to_exitcode(status)}) + "\n")
        proto_out.flush()
    return 0
