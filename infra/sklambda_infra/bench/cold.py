"""Cold start: a fresh Python process to its first prediction, through the handler vs a bare joblib process.

The registry is a moto server on 127.0.0.1 in this process; each handler process reaches it over HTTP through
AWS_ENDPOINT_URL, exactly as the local stack does. The bare process loads the same artifact bytes from a local
file with joblib and calls predict_proba on one row: the least any Python process can do to answer. The two kinds
of process alternate (ABBA), one of each is run first and discarded (page cache, .pyc files), and the parent
measures each one's wall time from spawn to exit.
"""

from __future__ import annotations

import json
import logging
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sklambda.config import LAMBDA_FUNCTION_NAME
from sklambda_infra.bench import common
from sklambda_infra.bench.stats import Spread, interleaved_order, median, ratio, verdict

TARGET = 1.3

# Both children read the system-wide monotonic clock at their first line and when the prediction is in hand; the
# parent reads it before spawning. Cold start = spawn to prediction. Interpreter exit (module teardown, ~0.2-0.6 s
# here) is reported apart: Lambda keeps the process, so no client ever waits for it.
HANDLER_CHILD = """
import time
t0 = time.monotonic()
import json, os, sys
from types import SimpleNamespace
function_dir, event_path, out_path = sys.argv[1:4]
sys.path.insert(0, function_dir)  # as Lambda puts /var/task first
import app
t1 = time.monotonic()
with open(event_path) as f:
    event = json.load(f)
context = SimpleNamespace(
    function_name="sklambda-predict", function_version="$LATEST", memory_limit_in_mb=1769,
    invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:sklambda-predict",
    aws_request_id="cold-start", get_remaining_time_in_millis=lambda: 30000,
)
profile_out = os.environ.get("SKLAMBDA_BENCH_PROFILE")  # set only for one extra, untimed run
if profile_out:
    import cProfile
    profiler = cProfile.Profile()
    profiler.enable()
response = app.handler(event, context)
t2 = time.monotonic()
if profile_out:
    profiler.disable()
    profiler.dump_stats(profile_out)
sys.stdout.flush()
with open(out_path, "w") as f:
    json.dump({"t0": t0, "done": t2, "status": response["statusCode"],
               "phases": {"import handler module": t1 - t0, "first handler call": t2 - t1}}, f)
"""

BARE_CHILD = """
import time
t0 = time.monotonic()
import json, sys
import joblib
import pandas as pd
artifact, row_path, out_path = sys.argv[1:4]
t1 = time.monotonic()
model = joblib.load(artifact)
t2 = time.monotonic()
with open(row_path) as f:
    row = json.load(f)
proba = model.predict_proba(pd.DataFrame([row]))
t3 = time.monotonic()
with open(out_path, "w") as f:
    json.dump({"t0": t0, "done": t3, "status": 200 if proba.shape == (1, 2) else 500,
               "phases": {"import joblib, pandas": t1 - t0, "joblib.load": t2 - t1, "predict_proba": t3 - t2}}, f)
"""


@dataclass(frozen=True)
class Plan:
    runs: int  # measured runs of each kind, after one discarded run each
    models: tuple[str, ...]


FULL = Plan(runs=9, models=(common.LR, common.FOREST))
QUICK = Plan(runs=3, models=(common.LR,))


@dataclass
class ColdResult:
    model: str
    artifact_bytes: int
    handler_s: list[float]
    bare_s: list[float]
    handler_median_s: float
    bare_median_s: float
    ratio: float
    pair_ratios: Spread
    target: float
    verdict: str
    handler_phases: dict[str, float] = field(default_factory=dict)
    bare_phases: dict[str, float] = field(default_factory=dict)
    imports: dict[str, dict[str, float]] = field(default_factory=dict)
    first_call: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def run(plan: Plan = FULL, models: common.Models | None = None) -> list[ColdResult]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request otherwise

    from sklambda import aws

    models = models or common.fit_models()
    models = replace(models, fitted={k: v for k, v in models.fitted.items() if k in plan.models})
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = {"AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    try:
        with common.environ({**common.FAKE_AWS, **endpoint}, remove=("AWS_PROFILE",)):
            aws.reset_clients()
            key = common.make_bucket_and_key()
            cards = common.publish_models(models, common.BUCKET, key)
            # AWS_LAMBDA_FUNCTION_NAME as Lambda sets it: the handler pauses its garbage collector for the cold start
            # only in Lambda (sklambda.coldstart). The bare process reads neither it nor the function's variables.
            # The scikit-learn path: its cold start is this section's target (the compiled path's: bench/compiled.py).
            function = common.function_env(common.BUCKET, key, common.SKLEARN_PATH)
            env = {**os.environ, **function, LAMBDA_FUNCTION_NAME: "sklambda-predict"}
            with tempfile.TemporaryDirectory(prefix="sklambda-cold-") as tmp:
                return [_bench_model(name, cards[name], env, Path(tmp), plan) for name in models.fitted]
    finally:
        aws.reset_clients()
        server.stop()


def _bench_model(name: str, card: Any, env: dict[str, str], tmp: Path, plan: Plan) -> ColdResult:
    from sklambda.registry.store import Registry

    artifact = tmp / f"{name}.joblib"
    artifact.write_bytes(Registry(common.BUCKET).fetch_artifact(card))
    row = tmp / "row.json"
    row.write_text(json.dumps(common.one_row()))
    event = tmp / f"{name}-event.json"
    event.write_text(json.dumps(common.predict_event(name, [common.one_row()])))
    commands = {
        "subject": [sys.executable, "-c", HANDLER_CHILD, str(common.PREDICT_APP.parent), str(event)],
        "baseline": [sys.executable, "-c", BARE_CHILD, str(artifact), str(row)],
    }
    out = tmp / "child.json"
    common.log(f"cold: {name}: {plan.runs} runs of each process after one discarded run each")
    for arm in ("subject", "baseline"):  # discarded: warms the page cache and writes .pyc files
        _spawn(commands[arm], out, env)
    times: dict[str, list[float]] = defaultdict(list)
    phases: dict[str, list[dict[str, float]]] = defaultdict(list)
    pair_ratios = []
    for order in interleaved_order(plan.runs):
        this_round = {}
        for arm in order:
            wall, parts = _spawn(commands[arm], out, env)
            times[arm].append(wall)
            phases[arm].append(parts)
            this_round[arm] = wall
        pair_ratios.append(ratio(this_round["subject"], this_round["baseline"]))
    handler_median, bare_median = median(times["subject"]), median(times["baseline"])
    r = ratio(handler_median, bare_median)
    result = ColdResult(
        model=name,
        artifact_bytes=artifact.stat().st_size,
        handler_s=times["subject"],
        bare_s=times["baseline"],
        handler_median_s=handler_median,
        bare_median_s=bare_median,
        ratio=r,
        pair_ratios=Spread.of(pair_ratios),
        target=TARGET,
        verdict=verdict(r, TARGET),
        handler_phases=_median_phases(phases["subject"]),
        bare_phases=_median_phases(phases["baseline"]),
        imports={
            "handler": import_profile(commands["subject"], out, env),
            "bare": import_profile(commands["baseline"], out, env),
        },
        first_call=first_call_profile(commands["subject"], out, env, tmp / "first-call.prof"),
    )
    common.log(
        f"cold: {name}: handler {handler_median:.3f} s, bare {bare_median:.3f} s, ratio {r:.2f}x "
        f"(target {TARGET}x) {result.verdict}"
    )
    return result


def _spawn(command: list[str], out: Path, env: dict[str, str], *, extra: tuple[str, ...] = ()) -> tuple[float, dict]:
    """Run one child to completion; returns spawn-to-prediction seconds and its phases (start, own phases, exit)."""
    out.unlink(missing_ok=True)
    argv = [command[0], *extra, *command[1:], str(out)]
    spawned = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    exited = time.monotonic()
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"cold-start child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    child = json.loads(out.read_text())
    if child["status"] != 200:
        raise RuntimeError(f"cold-start child answered {child['status']}:\n{proc.stdout[-3000:]}")
    parts = {"interpreter start": child["t0"] - spawned, **child["phases"]}
    loaded = _model_load_seconds(proc.stdout)
    if loaded is not None:
        parts["  of which model fetch, verify, joblib.load"] = loaded
    parts["interpreter exit (not in the cold start)"] = exited - child["done"]
    parts["_stderr"] = proc.stderr  # for -X importtime; dropped by _median_phases
    return child["done"] - spawned, parts


def _model_load_seconds(stdout: str) -> float | None:
    """The handler logs 'model loaded' with the seconds load_verified took (card, KMS verify, S3 get, unpickle)."""
    for line in stdout.splitlines():
        if '"model loaded"' in line:
            try:
                return float(json.loads(line)["seconds"])
            except (ValueError, KeyError):
                return None
    return None


def _median_phases(runs: list[dict]) -> dict[str, float]:
    keys = [k for k in runs[0] if not k.startswith("_")]
    return {k: median([r[k] for r in runs if k in r]) for k in keys}


def import_profile(command: list[str], out: Path, env: dict[str, str], top: int = 12) -> dict[str, float]:
    """One extra, untimed run under `python -X importtime`: import seconds by top-level package (self times)."""
    _, parts = _spawn(command, out, env, extra=("-X", "importtime"))
    return summarize_importtime(parts["_stderr"], top=top)


def summarize_importtime(stderr: str, top: int = 12) -> dict[str, float]:
    """Sum `-X importtime` self times by top-level package; the rest folded into 'other'. Values in seconds."""
    totals: dict[str, float] = defaultdict(float)
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        fields = line.removeprefix("import time:").split("|")
        if len(fields) != 3 or not fields[0].strip().isdigit():
            continue
        totals[fields[2].strip().split(".")[0]] += int(fields[0]) / 1e6
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])
    out = dict(ranked[:top])
    rest = sum(v for _, v in ranked[top:])
    if rest:
        out["other"] = rest
    out["total"] = sum(totals.values())
    return out


# The handler's first call, by the functions that make up its stages: (label, file suffix, function). They overlap:
# the first S3 read and the KMS check each include creating their client. cProfile sees the request's thread only:
# the artifact's GET runs in another one while KMS checks the card, and what it adds is the wait for its result.
FIRST_CALL_STAGES = (
    ("whole first handler call", "logging/logger.py", "decorate"),
    ("  ModelServer.get: resolve the alias, fetch, verify and load", "sklambda/serving/server.py", "get"),
    ("    boto3 client creation (S3, KMS; service models parsed from JSON)", "sklambda/aws.py", "client"),
    ("    S3 reads in the request's thread: alias, card", "sklambda/registry/store.py", "_get"),
    ("    KMS Verify of the card's signature", "sklambda/registry/signing.py", "verify"),
    ("    wait for the artifact's GET (run in a thread during KMS Verify)", "sklambda/registry/store.py", "result"),
    ("    joblib.load (imports the estimator's scikit-learn modules)", "joblib/numpy_pickle.py", "load"),
    ("  Scorer.score: validate, DataFrame, predict_proba", "sklambda/serving/scoring.py", "score"),
)


def first_call_profile(command: list[str], out: Path, env: dict[str, str], prof: Path, runs: int = 3) -> list[dict]:
    """Extra, untimed handler runs with the first call under cProfile: median seconds per stage over `runs` (one
    profiled run is noisy; the profiler also inflates Python-heavy stages, so read these as proportions)."""
    per_run = []
    for _ in range(runs):
        _spawn(command, out, {**env, "SKLAMBDA_BENCH_PROFILE": str(prof)})
        per_run.append(pstats.Stats(str(prof)).stats)
    rows = []
    for label, path, func in FIRST_CALL_STAGES:
        seconds = [s for s in (common.cumulative_seconds(stats, path, func) for stats in per_run) if s is not None]
        if seconds:
            rows.append({"stage": label, "seconds": median(seconds)})
    return rows
