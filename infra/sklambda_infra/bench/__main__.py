"""python -m sklambda_infra.bench [--quick] [--only KIND ...] [--out PATH]

KIND: warm, cold, bundle, batch, drift, capture, explain, parity, load, estimation, model_quality, gate, rollout,
canary, retrain, compiled.

[--layer-report PATH] reads an existing layer build instead of building one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sklambda_infra.bench import (
    batch,
    bundle,
    canary,
    capture,
    cold,
    common,
    compiled,
    drift,
    estimation,
    explain,
    gate,
    load,
    machine,
    model_quality,
    parity,
    report,
    retrain,
    rollout,
    warm,
)
from sklambda_infra.runtime import ensure_runtime_path

KINDS = (
    "warm",
    "cold",
    "bundle",
    "batch",
    "drift",
    "capture",
    "explain",
    "parity",
    "load",
    "estimation",
    "model_quality",
    "gate",
    "rollout",
    "canary",
    "retrain",
    "compiled",
)
DEFAULT_OUT = common.ROOT / "BENCHMARKS.md"
PARTIAL_OUT = common.BUILD / "BENCHMARKS.md"
RESULTS = common.BUILD / "results.json"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m sklambda_infra.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples (a smoke run, not for BENCHMARKS.md)")
    parser.add_argument(
        "--only", action="extend", nargs="+", choices=KINDS, help="run only these benchmarks (repeatable)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help=f"markdown report (default: {DEFAULT_OUT.name} for a full run, build/bench/BENCHMARKS.md otherwise)",
    )
    parser.add_argument("--layer-report", type=Path, help="read this layer-report.json instead of building the layers")
    parser.add_argument("--verify-layer", action="store_true", help="let the layer build verify under Python 3.12")
    return parser.parse_args(argv)


def output_path(ns: argparse.Namespace) -> Path:
    """A full run rewrites BENCHMARKS.md; a quick or partial one must not replace it by accident."""
    if ns.out is not None:
        return ns.out
    return PARTIAL_OUT if ns.quick or ns.only else DEFAULT_OUT


def main(argv: Sequence[str] | None = None) -> int:
    ns = parse_args(argv)
    kinds = tuple(k for k in KINDS if not ns.only or k in ns.only)
    ensure_runtime_path(lambda line: print(line, file=sys.stderr))  # every benchmark that publishes needs it
    started = time.perf_counter()
    results: dict = {"machine": machine.describe(), "quick": ns.quick, "only": ns.only or []}
    models = common.fit_models() if {"warm", "cold", "compiled"} & set(kinds) else None
    if "warm" in kinds:
        plan = warm.QUICK if ns.quick else warm.FULL
        results["warm"] = [r.to_dict() for r in warm.run(plan, models)]
        results["frame"] = warm.frame_comparison(plan).to_dict()
    if "cold" in kinds:
        results["cold"] = [r.to_dict() for r in cold.run(cold.QUICK if ns.quick else cold.FULL, models)]
    if "bundle" in kinds:
        results["bundle"] = bundle.run(report=ns.layer_report, verify=ns.verify_layer).to_dict()
    if "batch" in kinds:
        rows, memory_rows = (200_000, [200_000]) if ns.quick else (1_000_000, [1_000_000, 5_000_000])
        results["batch"] = batch.run(rows, memory_rows, repeats=1 if ns.quick else 3)
    if "drift" in kinds:
        checked = {"machine": drift.machine()}
        checked["speed"] = drift.speed(200_000 if ns.quick else 1_000_000, 2 if ns.quick else 5)
        # End to end from S3: quick samples 20,000 of 100,000 lines so the sampled path still runs.
        checked["end_to_end"] = (
            drift.end_to_end(100_000, 1, max_rows=20_000) if ns.quick else drift.end_to_end(1_000_000, 3)
        )
        checked["rates"] = drift.rates(*((100, 10) if ns.quick else (800, 50)))
        checked["targets"] = drift.targets(0.1 if ns.quick else 1.0)
        results["drift"] = checked
    if "model_quality" in kinds:
        results["model_quality"] = model_quality.run(quick=ns.quick)
    if "capture" in kinds:
        capture_models = common.fit_models(rows=5000, trees=50)
        results["capture"] = capture.run(10 if ns.quick else 40, 25, 1, capture_models)
    if "explain" in kinds:
        results["explain"] = explain.run(quick=ns.quick)
    if "parity" in kinds:
        results["parity"] = parity.run(rounds=1 if ns.quick else 3)
    if "load" in kinds:
        results["load"] = load.run(requests=500 if ns.quick else load.REQUESTS)
    if "estimation" in kinds:
        plan = estimation.QUICK if ns.quick else estimation.FULL
        results["estimation"] = estimation.run(plan["windows"], plan["rows"])
    if "gate" in kinds:
        results["gate"] = gate.run(quick=ns.quick)
    if "rollout" in kinds:
        results["rollout"] = rollout.run(quick=ns.quick)
    if "canary" in kinds:
        results["canary"] = canary.run(40 if ns.quick else 300, 5)
    if "retrain" in kinds:
        results["retrain"] = retrain.run(2 if ns.quick else 3)
    if "compiled" in kinds:
        results["compiled"] = compiled.run(
            compiled.QUICK if ns.quick else compiled.FULL,
            models,
            layer_report=ns.layer_report,
            bundle=results.get("bundle"),
        )
    results["load_average_end"] = machine.load_average()
    results["elapsed_s"] = time.perf_counter() - started

    out = output_path(ns)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.render(results))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1, default=str) + "\n")
    print(report.table(["benchmark", "measured", "target", "verdict"], report.summary_rows(results)))
    print(f"\nwrote {out} and {RESULTS} in {results['elapsed_s']:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
