"""The compiled serving path against predict_proba, the scikit-learn path and the peers, in one run.

Each demo pipeline (fitted as warm.py fits them) is published twice to a moto server on 127.0.0.1 (as cold.py does):
under its own name by `sklambda.publish` as it is (a compilable pipeline gets a card section `compiled`, which the
predict handler serves with sklambda's numpy evaluator), and as `<name>-sklearn` with compiling turned off
(`SKLAMBDA_COMPILE`), which the handler serves with scikit-learn. Then, per pipeline:
1. warm: one process, the handler imported fresh with the function's environment (moto reached over HTTP; after the
   first call the handler only re-resolves the alias every 60 s). Arms: predict_proba on a one-row DataFrame built
   once (the baseline), the handler on the compiled path, the handler on the scikit-learn path, onnxruntime's
   `InferenceSession.run` on one row (float32, and float64 where it runs). The arms alternate in blocks, forward on
   even rounds and reversed on odd ones (ABC CBA), so each arm's average position is the same. MLServer's
   SKLearnModel runs in a process of its own venv (peers.py), against predict_proba in that process.
2. agreement on unseen rows (`sample.churn_data(rows, seed=AGREEMENT_SEED)`): what the handler returns on each path,
   and onnxruntime's outputs, against the user's fitted estimator (max |difference| in probability; class flips:
   rows whose predicted class differs from `estimator.predict`).
3. cold start: whole processes from spawn to prediction in hand, with cold.py's children and `_spawn`: the bare
   joblib process (the baseline), the handler on each path, and a bare onnxruntime process, in rotating order.
4. bundle: the function + layers each path needs, against Lambda's 250 MiB.
5. billed duration per request at LAMBDA_MEMORY_MB, from the warm p50s and the cold starts.
"""

from __future__ import annotations

import gc
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from sklambda.config import LAMBDA_FUNCTION_NAME
from sklambda_infra.bench import bundle as bundle_bench
from sklambda_infra.bench import cold, common, peers
from sklambda_infra.bench.stats import MISS, PASS, Spread, median, percentile, ratio, verdict
from sklambda_infra.bench.tables import spread, table
from sklambda_infra.bench.warm import LABELS, Latency, arm_orders, measure_arms

# Arms, one name each everywhere (results, tables, summary).
RAW = "predict_proba"
COMPILED = "handler, compiled path"
SKLEARN = "handler, scikit-learn path"
ONNX = {peers.FLOAT32: "onnxruntime, float32", peers.FLOAT64: "onnxruntime, float64"}
MLSERVER = "MLServer SKLearnModel"
BARE = "bare joblib process"
BARE_ONNX = "bare onnxruntime process"
SKLEARN_SUFFIX = "-sklearn"

# Targets (issue 15): warm p50 through the handler on the compiled path / predict_proba; agreement with the user's
# estimator on unseen rows; cold start of each path / the bare joblib process.
WARM_TARGET = 0.25
AGREEMENT_TARGET = 1e-6
COLD_TARGETS = {SKLEARN: 1.3, COMPILED: 0.5}
AGREEMENT_SEED = 20261130  # not the training data's seed (0)
# Packages the compiled path must not import (issue 15: "without importing scikit-learn, scipy or pandas").
HEAVY = ("sklearn", "scipy", "pandas")
LARGEST_IMPORTS = 5  # the compiled handler's largest imports by top-level package, where its import phase goes

# Billing (AWS Lambda pricing, us-east-1, x86, first tier of 6 billion GB-seconds a month; looked up on PRICE_DATE):
# duration is rounded up to 1 ms, and since 1 August 2025 the INIT phase of on-demand ZIP functions is billed too.
LAMBDA_MEMORY_MB = 1024
ONE_VCPU_MB = 1769  # "At 1,769 MB, a function has the equivalent of one vCPU" (Lambda docs, Memory and computing power)
PRICE_PER_GB_SECOND = 0.0000166667
PRICE_PER_MILLION_REQUESTS = 0.20
PRICE_DATE = "2026-11-30"


@dataclass(frozen=True)
class Plan:
    rounds: int
    block: int
    warmup: int
    cold_runs: int  # measured runs of each process, after one discarded run each
    agreement_rows: int


# The run stays under ~4 minutes on 2 shared cores: cold starts are most of it (4 kinds of process per round).
FULL = Plan(rounds=40, block=30, warmup=50, cold_runs=6, agreement_rows=10_000)
QUICK = Plan(rounds=6, block=20, warmup=10, cold_runs=2, agreement_rows=2_000)


def billed_ms(one_core_ms: float, memory_mb: int = LAMBDA_MEMORY_MB) -> int:
    """Billed duration (ms) of work that takes `one_core_ms` on one core, run at `memory_mb`.

    Lambda gives a function CPU in proportion to its memory, one vCPU at ONE_VCPU_MB, and rounds the duration up to
    1 ms. Assumes CPU-bound work that scales linearly with the CPU share (waits on the network do not).
    """
    scaled = one_core_ms * ONE_VCPU_MB / memory_mb if memory_mb < ONE_VCPU_MB else one_core_ms
    return max(1, math.ceil(round(scaled, 9)))


def cost_per_million(billed: int, memory_mb: int = LAMBDA_MEMORY_MB) -> float:
    """US dollars for one million requests of `billed` ms each at `memory_mb`: duration (GB-seconds, 1 GB = 1,024 MB)
    plus the request charge; free tier ignored."""
    return 1e6 * billed / 1000 * memory_mb / 1024 * PRICE_PER_GB_SECOND + PRICE_PER_MILLION_REQUESTS


# --- the run -------------------------------------------------------------------------------------------------------


def run(
    plan: Plan = FULL,
    models: common.Models | None = None,
    *,
    layer_report: Path | None = None,
    bundle: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Every measurement of this kind, in one run; `bundle` reuses the bundle kind's result of the same run."""
    import logging

    from moto.server import ThreadedMotoServer

    from sklambda import aws

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    models = models or common.fit_models()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = {"AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    out: dict[str, Any] = {"plan": asdict(plan), "models": {}}
    try:
        with common.environ({**common.FAKE_AWS, **endpoint}, remove=("AWS_PROFILE",)):
            aws.reset_clients()
            key = common.make_bucket_and_key()
            cards, compile_switch = publish_both(models, key)
            out["compile_switch"] = compile_switch
            env = common.function_env(common.BUCKET, key)
            with tempfile.TemporaryDirectory(prefix="sklambda-compiled-") as tmp:
                for name, estimator in models.fitted.items():
                    out["models"][name] = _bench_model(name, estimator, cards, env, Path(tmp), plan)
    finally:
        aws.reset_clients()
        server.stop()
    out["bundle"] = bundle_sizes(bundle if bundle is not None else bundle_bench.run(report=layer_report).to_dict())
    out["billing"] = billing(out)
    return out


def publish_both(models: common.Models, key: str) -> tuple[dict[str, Any], str]:
    """Publish each model as is and, with compiling off, as `<name>-sklearn`; returns the cards by name and how
    compiling was turned off (or why it could not be)."""
    from sklambda import config

    cards = common.publish_models(models, common.BUCKET, key)
    sklearn_only = replace(models, fitted={f"{n}{SKLEARN_SUFFIX}": m for n, m in models.fitted.items()})
    with compiling_off(config) as switch:
        cards |= common.publish_models(sklearn_only, common.BUCKET, key)
    return cards, switch


@contextmanager
def compiling_off(config: Any) -> Iterator[str]:
    """The publish environment with compiling off (`sklambda.config.COMPILE`); says which variable it set."""
    name = getattr(config, "COMPILE", None)
    if name is None:
        yield "this sklambda has no COMPILE setting (no compiled path): both publishes are scikit-learn only"
        return
    with common.environ({name: "false"}):
        yield f"{name}=false"


def compiled_section(card: Any) -> dict[str, Any] | None:
    """The card's `compiled` section as a dict, or None when it has none (a card from before compiling existed).

    sklambda.registry.card: {"used": true, "format", "artifact": {"key", "sha256", "size"}, "steps", "agreement":
    {"rows", "routes", "max_abs_difference", "class_flips", "tolerance"}}, or {"used": false, "reason"}.
    """
    section = getattr(card, "compiled", None)
    if section is None and isinstance(card, Mapping):
        section = card.get("compiled")
    if not section:
        return None
    if isinstance(section, Mapping):
        return dict(section)
    if hasattr(section, "__dataclass_fields__"):
        return asdict(section)
    if hasattr(section, "model_dump"):
        return section.model_dump()
    return {"value": str(section)}


def compiled_used(section: Mapping[str, Any] | None) -> bool:
    """Whether the predict function serves the version with the compiled evaluator (the section says `used`)."""
    return bool(section) and bool(section.get("used", False))


def _tolerance(value: Any) -> str:
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in value.items())
    return str(value)


def describe_section(section: Mapping[str, Any]) -> str:
    """The card's compiled section in one line: artifact key, sha256, size and the publish-time agreement."""
    if not compiled_used(section):
        return f"not used: {section.get('reason', 'no reason given')}"
    artifact, agreement = section.get("artifact") or {}, section.get("agreement") or {}
    parts = [
        f"format {section.get('format', '?')}",
        f"artifact `{artifact.get('key', '?')}` (sha256 {str(artifact.get('sha256', '?'))[:12]}..., "
        f"{artifact.get('size', 0):,} bytes)",
    ]
    if agreement:
        parts.append(
            f"agreement at publish on {agreement.get('rows', '?')} rows: max |Δp| "
            f"{agreement.get('max_abs_difference', float('nan')):.1e}, {agreement.get('class_flips', '?')} class flips "
            f"(tolerance {_tolerance(agreement.get('tolerance'))})"
        )
    return "; ".join(parts)


def _bench_model(name: str, estimator: Any, cards: dict, env: dict[str, str], tmp: Path, plan: Plan) -> dict:
    from sklambda.registry.store import Registry
    from sklambda_infra import sample

    sk_name = f"{name}{SKLEARN_SUFFIX}"
    section = compiled_section(cards[name])
    if compiled_used(compiled_section(cards[sk_name])):
        raise RuntimeError(f"{sk_name} was published with compiling off but its card says the compiled path serves it")
    result: dict[str, Any] = {"label": LABELS.get(name, name), "compiled_card": section, "unavailable": {}}
    if section is None:
        result["unavailable"][COMPILED] = "the card has no `compiled` section: this sklambda has no compiled path"
    elif not compiled_used(section):
        result["unavailable"][COMPILED] = f"publish did not compile it: {section.get('reason', 'no reason given')}"
    compiled = compiled_used(section)
    onnx = {dtype: peers.convert(estimator, sample.NUMERIC, sample.CATEGORICAL, dtype) for dtype in ONNX}
    for dtype, arm in onnx.items():
        if not arm.usable:
            result["unavailable"][ONNX[dtype]] = arm.failure
    result["onnx_bytes"] = onnx[peers.FLOAT32].model_bytes and len(onnx[peers.FLOAT32].model_bytes)
    artifact = tmp / f"{name}.joblib"
    artifact.write_bytes(Registry(common.BUCKET).fetch_artifact(cards[sk_name]))
    result["artifact_bytes"] = artifact.stat().st_size

    with common.environ(env):
        app = common.import_predict_app()
        try:
            result["warm"] = warm(app, name, sk_name, estimator, onnx, compiled, plan)
            result["agreement"] = agreement(app, name, sk_name, estimator, onnx, compiled, plan)
        finally:
            app.metrics.clear_metrics()
    common.log(f"compiled: {name}: MLServer's SKLearnModel in its own venv")
    result["mlserver"] = mlserver(artifact, tmp, plan)
    # As cold.py: AWS_LAMBDA_FUNCTION_NAME as Lambda sets it (the handler's cold-start measures apply only in Lambda).
    cold_env = {**os.environ, **env, LAMBDA_FUNCTION_NAME: "sklambda-predict"}
    result["cold"] = cold_start(name, sk_name, artifact, onnx, compiled, cold_env, tmp, plan)
    return result


def warm(app: Any, name: str, sk_name: str, estimator: Any, onnx: dict, compiled: bool, plan: Plan) -> dict:
    """Warm p50 of each arm and its ratio to predict_proba, interleaved in one process."""
    import numpy as np
    import pandas as pd

    row = common.one_row()
    frame = pd.DataFrame([row])
    context = common.lambda_context()
    expected = estimator.predict_proba(frame)[0]
    events = {SKLEARN: common.predict_event(sk_name, [row])}
    if compiled:
        events[COMPILED] = common.predict_event(name, [row])
    with common.stdout_sunk():
        for arm, event in events.items():  # the first call loads and verifies the model
            response = app.handler(event, context)
            if response["statusCode"] != 200:
                raise RuntimeError(f"the handler answered {response['statusCode']} for {arm}: {response.get('body')}")
            got = json.loads(response["body"])["probabilities"][0]
            got = [got[str(c)] for c in estimator.classes_]
            if not np.allclose(got, expected, rtol=0, atol=AGREEMENT_TARGET):
                raise RuntimeError(f"{arm} disagrees with predict_proba for {name}: {got} vs {expected}")

    calls: dict[str, Callable[[], Any]] = {RAW: lambda: estimator.predict_proba(frame)}
    for arm, event in events.items():
        calls[arm] = lambda event=event: app.handler(event, context)
    for dtype, arm in onnx.items():
        if arm.usable:
            feeds = arm.feeds(frame)
            calls[ONNX[dtype]] = lambda arm=arm, feeds=feeds: arm.session.run(None, feeds)
    common.log(f"compiled: {name}: warm, {len(calls)} arms, {plan.rounds} rounds x {plan.block} calls")
    with common.stdout_sunk():
        for _ in range(plan.warmup):
            for fn in calls.values():
                fn()
        gc.collect()
        samples, per_round = measure_arms(calls, RAW, plan)
    raw = Latency.of(samples[RAW])
    arms = {RAW: {"latency": asdict(raw), "ratio_p50": 1.0}}
    for arm in per_round:
        latency = Latency.of(samples[arm])
        arms[arm] = {
            "latency": asdict(latency),
            "ratio_p50": ratio(latency.p50_ms, raw.p50_ms),
            "round_ratios": asdict(Spread.of(per_round[arm])),
        }
    if COMPILED in arms:
        r = arms[COMPILED]["ratio_p50"]
        arms[COMPILED] |= {"target": WARM_TARGET, "verdict": verdict(r, WARM_TARGET)}
        common.log(f"compiled: {name}: compiled path {r:.3f}x predict_proba (target {WARM_TARGET}x)")
    return arms


def _json_rows(X: Any) -> list[dict[str, Any]]:
    """Rows as a client sends them: Python scalars, missing numbers as null (exact: json round-trips floats)."""
    import pandas as pd

    return [
        {c: (None if pd.isna(v) else (v.item() if hasattr(v, "item") else v)) for c, v in row.items()}
        for row in X.to_dict("records")
    ]


def agreement(app: Any, name: str, sk_name: str, estimator: Any, onnx: dict, compiled: bool, plan: Plan) -> dict:
    """Each arm's max |probability difference| and class flips against the user's estimator on unseen rows."""
    import numpy as np

    from sklambda_infra import sample

    X, _ = sample.churn_data(plan.agreement_rows, seed=AGREEMENT_SEED)
    reference, predicted = estimator.predict_proba(X), np.asarray(estimator.predict(X))
    classes = [str(c) for c in estimator.classes_]
    out: dict[str, Any] = {"rows": len(X), "seed": AGREEMENT_SEED}
    served = {SKLEARN: sk_name, **({COMPILED: name} if compiled else {})}
    rows, chunk = _json_rows(X), app.settings.max_rows
    context = common.lambda_context()
    for arm, model in served.items():
        proba, labels = [], []
        with common.stdout_sunk():
            for start in range(0, len(rows), chunk):
                response = app.handler(common.predict_event(model, rows[start : start + chunk]), context)
                if response["statusCode"] != 200:
                    raise RuntimeError(f"{arm} answered {response['statusCode']}: {response.get('body', '')[:500]}")
                body = json.loads(response["body"])
                proba += [[p[c] for c in classes] for p in body["probabilities"]]
                labels += body["predictions"]
        out[arm] = _compare(np.asarray(proba), np.asarray(labels), reference, predicted)
    for dtype, arm in onnx.items():
        if arm.usable:
            labels, proba = arm.run(arm.feeds(X))
            out[ONNX[dtype]] = _compare(proba, np.asarray(labels), reference, predicted)
    if COMPILED in out:
        ok = out[COMPILED]["max_abs_diff"] <= AGREEMENT_TARGET and out[COMPILED]["flips"] == 0
        out[COMPILED]["verdict"] = PASS if ok else MISS
    return out


def _compare(proba: Any, labels: Any, reference: Any, predicted: Any) -> dict[str, Any]:
    import numpy as np

    diff = np.abs(proba - reference)
    return {
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "flips": int((labels != predicted).sum()),
    }


def mlserver(artifact: Path, tmp: Path, plan: Plan) -> dict[str, Any]:
    """MLServer's SKLearnModel against predict_proba in its own process; p50s and the ratio, or why not."""
    # Half the rounds of the in-process arms: a peer's ratio, in a process that also pays MLServer's imports.
    rounds = max(2, plan.rounds // 2)
    measured = peers.mlserver_warm(artifact, common.one_row(), rounds, plan.block, plan.warmup, tmp)
    if not measured["measured"]:
        return measured
    served_ns, raw_ns = measured.pop("served_ns"), measured.pop("raw_ns")
    served, raw = Latency.of(served_ns), Latency.of(raw_ns)
    return measured | {
        "served": asdict(served),
        "raw": asdict(raw),
        "ratio_p50": ratio(served.p50_ms, raw.p50_ms),
        "round_ratios": asdict(Spread.of(block_ratios(served_ns, raw_ns, plan.block))),
    }


def block_ratios(subject_ns: Sequence[int], baseline_ns: Sequence[int], block: int) -> list[float]:
    """Per-round p50 ratios of two arms whose samples were taken in blocks of `block`, round after round."""
    rounds = min(len(subject_ns), len(baseline_ns)) // block
    return [
        ratio(
            percentile(subject_ns[r * block : (r + 1) * block], 50),
            percentile(baseline_ns[r * block : (r + 1) * block], 50),
        )
        for r in range(rounds)
    ]


def cold_start(
    name: str, sk_name: str, artifact: Path, onnx: dict, compiled: bool, env: dict[str, str], tmp: Path, plan: Plan
) -> dict[str, Any]:
    """Spawn to prediction of each kind of process (cold.py's children and `_spawn`), in rotating order; ratios of
    medians to the bare joblib process, and the compiled handler's imports."""
    row = tmp / "row.json"
    row.write_text(json.dumps(common.one_row()))

    def handler(model: str) -> list[str]:
        event = tmp / f"{model}-event.json"
        event.write_text(json.dumps(common.predict_event(model, [common.one_row()])))
        return [sys.executable, "-c", cold.HANDLER_CHILD, str(common.PREDICT_APP.parent), str(event)]

    commands = {BARE: [sys.executable, "-c", cold.BARE_CHILD, str(artifact), str(row)], SKLEARN: handler(sk_name)}
    if compiled:
        commands[COMPILED] = handler(name)
    if onnx[peers.FLOAT32].usable:
        commands[BARE_ONNX] = peers.onnx_child_command(onnx[peers.FLOAT32], common.one_row(), tmp, name)
    out = tmp / "child.json"
    common.log(f"compiled: {name}: cold, {len(commands)} kinds of process x {plan.cold_runs} runs after one discarded")
    for command in commands.values():
        cold._spawn(command, out, env)
    times: dict[str, list[float]] = {arm: [] for arm in commands}
    phases: dict[str, list[dict]] = {arm: [] for arm in commands}
    per_round: dict[str, list[float]] = {arm: [] for arm in commands if arm != BARE}
    for order in arm_orders(list(commands), plan.cold_runs):
        this_round = {}
        for arm in order:
            wall, parts = cold._spawn(commands[arm], out, env)
            times[arm].append(wall)
            phases[arm].append(parts)
            this_round[arm] = wall
        for arm in per_round:
            per_round[arm].append(ratio(this_round[arm], this_round[BARE]))
    bare = median(times[BARE])
    result: dict[str, Any] = {"runs": plan.cold_runs, "arms": {}}
    for arm in commands:
        m = median(times[arm])
        entry = {
            "seconds": times[arm],
            "median_s": m,
            "ratio": ratio(m, bare),
            "phases": cold._median_phases(phases[arm]),
        }
        if arm in per_round:
            entry["pair_ratios"] = asdict(Spread.of(per_round[arm]))
        if arm in COLD_TARGETS:
            entry |= {"target": COLD_TARGETS[arm], "verdict": verdict(entry["ratio"], COLD_TARGETS[arm])}
        result["arms"][arm] = entry
    if compiled:
        imports = cold.import_profile(commands[COMPILED], out, env, top=10_000)
        largest = [(p, t) for p, t in imports.items() if p not in ("other", "total")][:LARGEST_IMPORTS]
        result["compiled_imports"] = {p: imports.get(p, 0.0) for p in HEAVY} | {
            "total": imports.get("total", 0.0),
            "largest": dict(largest),
        }
    summary = ", ".join(f"{arm} {e['median_s']:.3f} s ({e['ratio']:.2f}x)" for arm, e in result["arms"].items())
    common.log(f"compiled: {name}: cold {summary}")
    return result


# --- bundle and billing --------------------------------------------------------------------------------------------


def bundle_sizes(layer: Mapping[str, Any]) -> dict[str, Any]:
    """The function + layers each path needs, in bytes, from the layer build's report and an onnxruntime install."""
    from sklambda_infra.layer.measure import tree_size

    out: dict[str, Any] = {"layer": {"measured": layer["measured"], "reason": layer.get("reason", "")}}
    evaluator = common.ROOT / "layers" / "sklambda" / "python" / "sklambda" / "compiled"
    out["evaluator_bytes"] = tree_size(evaluator)[0] if evaluator.exists() else None
    if layer["measured"]:
        s = bundle_bench.sizes(layer["report"])
        out["layer"] |= {"total": s["total"], "limit": s["limit"], "report_path": layer.get("report_path", "")}
        out["layer_packages"] = sorted(p["name"] for p in layer["report"].get("packages") or ())
    out["onnxruntime"] = peers.onnx_bundle()
    return out


def billing(results: Mapping[str, Any]) -> dict[str, Any]:
    """Billed ms and US$ per million requests at LAMBDA_MEMORY_MB per path: warm (p50) and cold (spawn to
    prediction: init + first request)."""
    out: dict[str, Any] = {
        "memory_mb": LAMBDA_MEMORY_MB,
        "one_vcpu_mb": ONE_VCPU_MB,
        "price_per_gb_second": PRICE_PER_GB_SECOND,
        "price_per_million_requests": PRICE_PER_MILLION_REQUESTS,
        "price_date": PRICE_DATE,
        "models": {},
    }
    for name, m in results["models"].items():
        rows = []
        warm_ms = {arm: a["latency"]["p50_ms"] for arm, a in m["warm"].items()}
        if m["mlserver"].get("measured"):
            warm_ms[MLSERVER] = m["mlserver"]["served"]["p50_ms"]
        cold_ms = {arm: a["median_s"] * 1000 for arm, a in m["cold"]["arms"].items()}
        for phase, measured in (("warm", warm_ms), ("cold", cold_ms)):
            for arm, ms in measured.items():
                billed = billed_ms(ms)
                rows.append(
                    {
                        "phase": phase,
                        "arm": arm,
                        "measured_ms": ms,
                        "billed_ms": billed,
                        "usd_per_million": cost_per_million(billed),
                    }
                )
        out["models"][name] = rows
    return out


# --- the report ----------------------------------------------------------------------------------------------------

WARM_ARMS = (RAW, COMPILED, SKLEARN, ONNX[peers.FLOAT32], ONNX[peers.FLOAT64])
COLD_ARMS = (BARE, SKLEARN, COMPILED, BARE_ONNX)
LIMIT = 262_144_000  # Lambda: function + layers, unzipped (bytes)


def _ms(value: float) -> str:
    return f"{value * 1000:.1f} µs" if value < 0.1 else f"{value:.3f} ms"


def _mib(value: int | None) -> str:
    from sklambda_infra.bench.tables import mib

    return mib(value)


def _table(headers: Sequence[str], rows: list[list[Any]], right: Sequence[int] = ()) -> str:
    return table(headers, rows, right)


def _spread(s: Mapping[str, float]) -> str:
    return spread(s, digits=3)


def markdown(results: Mapping[str, Any]) -> str:
    """The section of BENCHMARKS.md, from `run`'s results."""
    plan = results["plan"]
    parts = [
        "# Compiled serving path and its peers",
        "",
        "Each demo pipeline (fitted on `sample.churn_data(20000)`, 80% training split, as in section 1) is published "
        "twice to a moto server on 127.0.0.1: under its own name by `sklambda.publish` as it is (a compilable pipeline "
        "gets a card section `compiled`, which the predict handler serves with sklambda's numpy evaluator), and as "
        f"`<name>{SKLEARN_SUFFIX}` with compiling off ({results['compile_switch']}), which the handler serves with "
        "scikit-learn. The peers: the same fitted pipeline converted by skl2onnx (one input per column, ZipMap off; "
        "float32 as skl2onnx makes it by default, and a float64 variant with DoubleTensorType inputs) and run by "
        "onnxruntime (one thread), and MLServer's `SKLearnModel` loading the same joblib artifact in a venv of its own "
        "(`build/bench/mlserver-venv`).",
    ]
    for m in results["models"].values():
        if m.get("compiled_card"):
            parts += ["", f"{m['label']}, the card's `compiled` section: {describe_section(m['compiled_card'])}."]
    parts += ["", render_warm(results, plan), "", render_agreement(results), "", render_cold(results)]
    parts += ["", render_bundle(results["bundle"]), "", render_billing(results)]
    return "\n".join(parts)


def render_warm(results: Mapping[str, Any], plan: Mapping[str, Any]) -> str:
    rows = []
    for m in results["models"].values():
        for arm in WARM_ARMS:
            a = m["warm"].get(arm)
            if a is None:
                reason = m["unavailable"].get(arm, "not measured")
                rows.append([m["label"], arm, "", "", "", f"not measured: {reason}", "", ""])
                continue
            lat = a["latency"]
            target = f"<= {a['target']}x" if "target" in a else ""
            spread = _spread(a["round_ratios"]) if "round_ratios" in a else "1 (baseline)"
            rows.append([m["label"], arm, _ms(lat["p50_ms"]), _ms(lat["p99_ms"]), f"{a['ratio_p50']:.3f}x", spread,
                         target, a.get("verdict", "")])  # fmt: skip
        ml = m["mlserver"]
        if ml.get("measured"):
            arm = (
                f"{MLSERVER} (MLServer {ml['mlserver_version']}, own process: predict_proba {_ms(ml['raw']['p50_ms'])})"
            )
            served = ml["served"]
            spread = _spread(ml["round_ratios"]) if "round_ratios" in ml else ""
            rows.append([m["label"], arm, _ms(served["p50_ms"]), _ms(served["p99_ms"]), f"{ml['ratio_p50']:.3f}x",
                         spread, "", ""])  # fmt: skip
        else:
            rows.append([m["label"], MLSERVER, "", "", "", f"not measured: {ml['reason']}", "", ""])
    calls = plan["rounds"] * plan["block"]
    return "\n".join(
        [
            "## Warm single-row latency",
            "",
            "One process; the handler imported fresh with the function's environment gets `events/predict.json` with "
            "a one-row body; predict_proba, onnxruntime's `InferenceSession.run` and MLServer get a one-row input "
            f"built once. After a first call (model load) and {plan['warmup']} warm-up calls of each arm, "
            f"{plan['rounds']} rounds of {plan['block']} calls of each arm alternate (forward, then reversed), so each "
            f"arm has {calls} samples. MLServer runs in its own process, {max(2, plan['rounds'] // 2)} rounds of the "
            "same blocks alternating ABBA with predict_proba of the estimator it loaded; its ratio is to that "
            "baseline (each request is "
            "`SKLearnModel.predict` on an InferenceRequest encoded once by PandasCodec (from object columns: "
            "MLServer 1.7.1 has no datatype for pandas 3's str dtype), run to completion on an "
            "asyncio loop).",
            "",
            _table(
                [
                    "model",
                    "arm",
                    "p50",
                    "p99",
                    "p50 / predict_proba",
                    "per-round p50 ratio, median (IQR)",
                    "target",
                    "verdict",
                ],
                rows,
                right=(2, 3, 4, 5),
            ),
        ]
    )


def render_agreement(results: Mapping[str, Any]) -> str:
    rows, n = [], None
    for m in results["models"].values():
        agreement = m["agreement"]
        n = agreement["rows"]
        for arm in (COMPILED, SKLEARN, ONNX[peers.FLOAT32], ONNX[peers.FLOAT64]):
            a = agreement.get(arm)
            if a is None:
                reason = m["unavailable"].get(arm, "not measured")
                rows.append([m["label"], arm, "", "", f"not measured: {reason}", "", ""])
                continue
            target = f"<= {AGREEMENT_TARGET:g}, 0 flips" if arm == COMPILED else ""
            rows.append([m["label"], arm, f"{a['max_abs_diff']:.2e}", f"{a['mean_abs_diff']:.2e}", a["flips"], target,
                         a.get("verdict", "")])  # fmt: skip
    return "\n".join(
        [
            f"## Agreement on {n:,} unseen rows",
            "",
            f"`sample.churn_data({n}, seed={AGREEMENT_SEED})`, sent through the handler as JSON in requests of the "
            "function's maximum rows (each path: what a client gets back), and to onnxruntime as tensors, against the "
            "user's fitted estimator: max and mean |difference| in probability, and class flips (rows whose predicted "
            "class differs from `estimator.predict`).",
            "",
            _table(
                ["model", "arm", "max \\|Δp\\|", "mean \\|Δp\\|", "class flips", "target", "verdict"],
                rows,
                right=(2, 3, 4),
            ),
        ]
    )


def _phase(arm: str, label: str) -> str:
    """cold.py's phase labels; its model-load phase on the compiled path loads the compiled artifact, not joblib."""
    label = label.strip()
    return label.replace(", joblib.load", ", load") if arm == COMPILED else label


def render_cold(results: Mapping[str, Any]) -> str:
    rows, notes, runs = [], [], None
    for name, m in results["models"].items():
        c = m["cold"]
        runs = c["runs"]
        for arm in COLD_ARMS:
            a = c["arms"].get(arm)
            if a is None:
                reason = m["unavailable"].get(COMPILED if arm == COMPILED else ONNX[peers.FLOAT32], "not measured")
                rows.append([name, arm, "", "", f"not measured: {reason}", "", "", ""])
                continue
            phases = "; ".join(f"{_phase(arm, k)} {v:.3f}" for k, v in a["phases"].items() if "exit" not in k)
            target = f"<= {a['target']}x" if "target" in a else ""
            spread = _spread(a["pair_ratios"]) if "pair_ratios" in a else "1 (baseline)"
            rows.append([name, arm, f"{a['median_s']:.3f} s", f"{a['ratio']:.2f}x", spread, phases, target,
                         a.get("verdict", "")])  # fmt: skip
        imports = c.get("compiled_imports")
        if imports is not None:
            heavy = [f"{p} {imports[p]:.3f} s" for p in HEAVY if imports[p] > 0]
            notes.append(
                f"- {name}: the compiled handler process imports "
                + (", ".join(heavy) if heavy else "none of scikit-learn, scipy, pandas")
                + f" (`-X importtime`, one extra run; all imports {imports['total']:.3f} s"
                + "".join(f", {p} {t:.3f} s" for p, t in (imports.get("largest") or {}).items())
                + ")."
            )
    return "\n".join(
        [
            "## Cold start of each path",
            "",
            "Whole processes from spawn to prediction in hand, with section 2's children (`cold.HANDLER_CHILD`, "
            "`cold.BARE_CHILD`, `cold._spawn`): the bare joblib process is the baseline; the handler processes fetch, "
            "verify and load the model from the moto server over HTTP; the bare onnxruntime process imports "
            "onnxruntime and numpy, loads the float32 .onnx from a local file and runs one row. One discarded run of "
            f"each, then {runs} of each in rotating order (forward, then reversed). Phases are medians in seconds.",
            "",
            _table(
                [
                    "model",
                    "process",
                    "median",
                    "/ bare joblib",
                    "per-round ratio, median (IQR)",
                    "phases (s)",
                    "target",
                    "verdict",
                ],
                rows,
                right=(2, 3, 4),
            ),
            *(["", *notes] if notes else []),
        ]
    )


def bundle_rows(b: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per path: what it needs and its unzipped bytes (None when not measured)."""
    layer, ort = b["layer"], b["onnxruntime"]
    total = layer.get("total") if layer["measured"] else None
    evaluator = "no sklambda/compiled/ in this tree" if b["evaluator_bytes"] is None else _mib(b["evaluator_bytes"])
    rows = [
        {"path": "scikit-learn path", "needs": "today's function: dependency layer + runtime layer + function code",
         "bytes": total},
        {"path": "compiled path", "needs": f"the same function and layers (the evaluator, in the runtime layer: "
         f"{evaluator}; numpy is already in the dependency layer)", "bytes": total},
    ]  # fmt: skip
    if ort["measured"]:
        packages = ", ".join(f"{k} {_mib(v)}" for k, v in ort["packages"].items())
        rows.append({"path": "onnxruntime alone", "needs": f"{' '.join(ort['requirements'])} and their dependencies "
                     f"for Python {ort['python_version']}, as pip installs them (not slimmed): {packages}",
                     "bytes": ort["total_bytes"]})  # fmt: skip
        if total is not None:
            layer_has = set(b.get("layer_packages") or ())
            extra = {k: v for k, v in ort["packages"].items() if k not in layer_has}
            needs = f"today's bundle + what onnxruntime adds that the layer lacks ({', '.join(extra)})"
            rows.append({"path": "both runtimes in one function", "needs": needs, "bytes": total + sum(extra.values())})
    return rows


def render_bundle(b: Mapping[str, Any]) -> str:
    rows = []
    for r in bundle_rows(b):
        if r["bytes"] is None:
            rows.append([r["path"], r["needs"], "not measured", "", "TODO"])
        else:
            rows.append([r["path"], r["needs"], _mib(r["bytes"]), f"{r['bytes'] / LIMIT:.0%}",
                         PASS if r["bytes"] < LIMIT else MISS])  # fmt: skip
    notes = []
    if not b["layer"]["measured"]:
        notes.append(f"The layer was not measured: {b['layer']['reason']}")
    if not b["onnxruntime"]["measured"]:
        notes.append(f"onnxruntime's install was not measured: {b['onnxruntime']['reason']}")
    return "\n".join(
        [
            "## Bundle per path",
            "",
            "Unzipped bytes as Lambda counts them (section 3's layer build; onnxruntime installed for the Lambda "
            "runtime by the layer tooling's `pip_install` and measured with its `package_sizes`), against Lambda's "
            "limit of 262,144,000 bytes (250 MiB) for a function and its layers.",
            "",
            _table(["path", "what it needs", "unzipped", "of 250 MiB", "verdict"], rows, right=(2, 3)),
            *(["", *notes] if notes else []),
        ]
    )


def _duration(ms: float) -> str:
    return f"{ms:,.0f} ms" if ms >= 100 else f"{ms:.3f} ms"


def render_billing(results: Mapping[str, Any]) -> str:
    b = results["billing"]
    rows = []
    for name, model_rows in b["models"].items():
        for r in model_rows:
            rows.append([name, r["phase"], r["arm"], _duration(r["measured_ms"]), f"{r['billed_ms']:,} ms",
                         f"${r['usd_per_million']:,.2f}"])  # fmt: skip
    factor = b["one_vcpu_mb"] / b["memory_mb"]
    return "\n".join(
        [
            f"## Billed duration per request at {b['memory_mb']:,} MB",
            "",
            f"Lambda bills duration rounded up to 1 ms, and gives a function CPU in proportion to its memory, one vCPU "
            f'at {b["one_vcpu_mb"]:,} MB (AWS Lambda docs, "Memory and computing power"). Assumption: the work is '
            f"CPU-bound and single-threaded, so at {b['memory_mb']:,} MB it takes {factor:.3f}x ({b['one_vcpu_mb']:,}/"
            f"{b['memory_mb']:,}) its one-core time measured here; waits on S3 and KMS, which do not slow down with "
            "less CPU, are in the cold figures as moto answers them locally. Warm: the p50 of section "
            '"Warm single-row latency". Cold: spawn to prediction (init + first request; since 1 August 2025 Lambda '
            "bills the INIT phase of on-demand ZIP functions too), assuming init runs at the same CPU share. The "
            "onnxruntime and MLServer rows are the runtime call alone (no API handler, validation, metrics or logs), "
            "and the bare processes have no registry or signature check: floors for such a function, not its cost. "
            f"Price: us-east-1, x86, ${b['price_per_gb_second']:.10f} per GB-second (first 6 billion GB-seconds a "
            f"month) and ${b['price_per_million_requests']:.2f} per million requests, free tier ignored, from AWS "
            f'Lambda\'s pricing page (and the whitepaper "How AWS Pricing Works") as looked up on {b["price_date"]}. '
            "The US$ column is for a million requests that are all warm, or all cold starts.",
            "",
            _table(
                [
                    "model",
                    "phase",
                    "path",
                    "measured (one core)",
                    f"billed at {b['memory_mb']:,} MB",
                    "US$ per million requests",
                ],
                rows,
                right=(3, 4, 5),
            ),
        ]
    )


def summary_rows(results: Mapping[str, Any]) -> list[list[str]]:
    """BENCHMARKS.md's summary rows: the targets of issue 15 with verdicts, the peers as reported figures."""
    rows = []
    for name, m in results["models"].items():
        label = m["label"]
        a = m["warm"].get(COMPILED)
        if a is None:
            rows.append([f"compiled path, warm p50, {label}: handler / predict_proba", "not measured",
                         f"<= {WARM_TARGET}x", "TODO"])  # fmt: skip
        else:
            rows.append([f"compiled path, warm p50, {label}: handler / predict_proba", f"{a['ratio_p50']:.3f}x",
                         f"<= {WARM_TARGET}x", a["verdict"]])  # fmt: skip
        for arm in (ONNX[peers.FLOAT32], ONNX[peers.FLOAT64]):
            if arm in m["warm"]:
                rows.append([f"peer, warm p50, {label}: {arm} / predict_proba", f"{m['warm'][arm]['ratio_p50']:.3f}x",
                             "reported", "—"])  # fmt: skip
        if m["mlserver"].get("measured"):
            rows.append([f"peer, warm p50, {label}: {MLSERVER} / predict_proba", f"{m['mlserver']['ratio_p50']:.2f}x",
                         "reported", "—"])  # fmt: skip
        agreement = m["agreement"]
        n = agreement["rows"]
        c = agreement.get(COMPILED)
        measure = f"compiled path, agreement on {n:,} unseen rows, {label}: max |Δp|, class flips"
        if c is None:
            rows.append([measure, "not measured", f"<= {AGREEMENT_TARGET:g}, 0", "TODO"])
        else:
            rows.append(
                [measure, f"{c['max_abs_diff']:.1e}, {c['flips']}", f"<= {AGREEMENT_TARGET:g}, 0", c["verdict"]]
            )
        for arm in (ONNX[peers.FLOAT32], ONNX[peers.FLOAT64]):
            if arm in agreement:
                o = agreement[arm]
                rows.append([f"peer, agreement on {n:,} unseen rows, {label}: {arm}: max |Δp|, class flips",
                             f"{o['max_abs_diff']:.1e}, {o['flips']}", "reported", "—"])  # fmt: skip
        for arm in (SKLEARN, COMPILED):
            measure = f"cold start, {name}, {arm}: handler / bare joblib"
            e = m["cold"]["arms"].get(arm)
            if e is None:
                rows.append([measure, "not measured", f"<= {COLD_TARGETS[arm]}x", "TODO"])
            else:
                rows.append([measure, f"{e['ratio']:.2f}x", f"<= {e['target']}x", e["verdict"]])
        e = m["cold"]["arms"].get(BARE_ONNX)
        if e is not None:
            rows.append([f"peer, cold start, {name}: {BARE_ONNX} / bare joblib", f"{e['ratio']:.2f}x", "reported", "—"])
    for r in bundle_rows(results["bundle"]):
        measured = "not measured" if r["bytes"] is None else _mib(r["bytes"])
        verdict_ = "TODO" if r["bytes"] is None else (PASS if r["bytes"] < LIMIT else MISS)
        rows.append([f"bundle, {r['path']}, unzipped", measured, "< 250.0 MiB", verdict_])
    return rows
