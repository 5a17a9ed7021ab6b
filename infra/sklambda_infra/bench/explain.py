"""Explanation benchmark: single-row latency of serving.explain on a 100-tree forest with 20 features, and accuracy.

    python -m sklambda_infra.bench.explain [--quick] [--rounds 40] [--per-round 10] [--out build/bench]

Model: the churn data of sklambda_infra.sample extended to 20 model features (the 10 churn features plus 7 numeric
and 3 categorical ones, some of them informative) and customer_id (pii, dropped by the ColumnTransformer); a
pipeline like `sample.forest_pipeline(100)` (impute + scale numerics, one-hot categoricals, RandomForestClassifier
with 100 trees, max_depth 12) fitted on 16,000 rows. Background: `background_sample` (32 rows) as publish stores
it, read back with `background_frame`.

Latency: `Explainer.explain` on a one-row frame (auto method: tree_exact) against the baseline measured in the same
run, the forest's own `predict_proba` on that one-row frame; the two arms alternate ABBA over rounds, each call on
the next holdout row. Target: p50 <= 25 ms. The model-agnostic sampling path on the same model is timed too.

Accuracy: tree_exact against exact Shapley values by enumeration of all coalitions (shapley_exact, same background)
on the 10-feature churn forest; and the sampling path (antithetic permutations) against tree_exact (exact) on the
20-feature forest, mean and max absolute error over a few rows. Writes build/bench/explain.md and explain.json.

Hook into `make bench`: see `run`, `markdown` and `summary_rows` (the same shape as bench/drift.py's pieces).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sklambda.registry.schema import infer_schema
from sklambda.serving.background import background_frame, background_sample
from sklambda.serving.explain import SHAPLEY_EXACT, SHAPLEY_SAMPLING, Explainer
from sklambda_infra import sample
from sklambda_infra.bench import stats
from sklambda_infra.bench.common import BUILD
from sklambda_infra.bench.drift import machine

EXTRA_NUMERIC = tuple(f"x{i}" for i in range(7))
EXTRA_CATEGORICAL = ("device", "channel", "segment")
NUMERIC = (*sample.NUMERIC, *EXTRA_NUMERIC)
CATEGORICAL = (*sample.CATEGORICAL, *EXTRA_CATEGORICAL)
TRAINING_ROWS, TREES, TARGET_MS = 16_000, 100, 25.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def wide_churn(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """The churn data with 10 more features; x0, x1 and device move the target, the rest is noise."""
    X, y = sample.churn_data(n, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for k, name in enumerate(EXTRA_NUMERIC):
        X[name] = np.round(rng.normal(10 * k, 1 + k, n), 3)
    X["device"] = rng.choice(["ios", "android", "web"], n)
    X["channel"] = rng.choice(["store", "online", "phone", "partner"], n)
    X["segment"] = rng.choice(list("ABCDEF"), n)
    flip = rng.random(n) < 0.15 * ((X["x0"] > 0.5) | (X["device"] == "web")) + 0.1 * (X["x1"] > 11.5)
    y = pd.Series(np.where(flip, np.where(y == "yes", "no", "yes"), y), name=y.name)
    return X, y


def wide_forest(trees: int = TREES, seed: int = 0) -> Pipeline:
    prep = ColumnTransformer(
        [
            (
                "num",
                Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
                list(NUMERIC),
            ),
            ("cat", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL)),
        ],
        remainder="drop",
    )
    model = RandomForestClassifier(n_estimators=trees, max_depth=12, n_jobs=1, random_state=seed)
    return Pipeline([("prep", prep), ("model", model)])


def card_background(X: pd.DataFrame) -> pd.DataFrame:
    schema = infer_schema(X, pii=sample.PII)
    return background_frame(background_sample(X, schema), schema)


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1e3


def _cpu_timed(fn) -> tuple[float, float]:
    """(wall ms, this thread's CPU ms): CPU time is what a call costs when the shared machine is busy."""
    t, c = time.perf_counter(), time.thread_time()
    fn()
    return (time.perf_counter() - t) * 1e3, (time.thread_time() - c) * 1e3


def latency(model, explainer: Explainer, rows: list[pd.DataFrame], rounds: int, per_round: int) -> dict:
    """ABBA rounds of `per_round` explain calls and `per_round` predict_proba calls, each on the next row."""
    for r in rows[:20]:  # warm-up
        explainer.explain(r)
        model.predict_proba(r)
    arms: dict[str, list[float]] = {"subject": [], "baseline": []}
    cpu: dict[str, list[float]] = {"subject": [], "baseline": []}
    ratios = []
    k = 0
    for order in stats.interleaved_order(rounds):
        got: dict[str, list[float]] = {}
        for arm in order:
            fn = explainer.explain if arm == "subject" else model.predict_proba
            batch = [rows[(k + i) % len(rows)] for i in range(per_round)]
            timings = [_cpu_timed(lambda fn=fn, r=r: fn(r)) for r in batch]
            got[arm] = [w for w, _ in timings]
            arms[arm] += got[arm]
            cpu[arm] += [c for _, c in timings]
        ratios.append(stats.ratio(stats.median(got["subject"]), stats.median(got["baseline"])))
        k += per_round
    explain_p50, raw_p50 = stats.median(arms["subject"]), stats.median(arms["baseline"])
    return {
        "samples_per_arm": len(arms["subject"]),
        "explain_ms": {"p50": explain_p50, "p99": stats.percentile(arms["subject"], 99)},
        "predict_proba_ms": {"p50": raw_p50, "p99": stats.percentile(arms["baseline"], 99)},
        "cpu_ms_p50": {"explain": stats.median(cpu["subject"]), "predict_proba": stats.median(cpu["baseline"])},
        "ratio_p50": stats.ratio(explain_p50, raw_p50),
        "per_round_ratio": {
            "median": stats.median(ratios),
            "p25": stats.percentile(ratios, 25),
            "p75": stats.percentile(ratios, 75),
        },
        "target_ms": TARGET_MS,
        "meets_target": explain_p50 <= TARGET_MS,
    }


def _errors(estimate: np.ndarray, reference: np.ndarray) -> dict:
    diff = np.abs(estimate - reference)
    return {
        "mean_abs_error": float(diff.mean()),
        "max_abs_error": float(diff.max()),
        # For scale: the mean absolute exact attribution.
        "mean_abs_attribution": float(np.abs(reference).mean()),
    }


def run(quick: bool = False, rounds: int = 40, per_round: int = 10) -> dict:
    rounds = 6 if quick else rounds
    log(f"fitting a {TREES}-tree forest on {TRAINING_ROWS:,} rows x {len(NUMERIC) + len(CATEGORICAL)} features")
    X, y = wide_churn(TRAINING_ROWS + 2000, seed=0)
    X_train, y_train, X_holdout, _ = sample.split(X, y, holdout=2000 / len(X))
    model = wide_forest().fit(X_train, y_train)
    background = card_background(X_train)
    started = time.perf_counter()
    explainer = Explainer(model, background)
    setup_ms = (time.perf_counter() - started) * 1e3
    rows = [X_holdout.iloc[[i]] for i in range(200)]
    log(f"method {explainer.method}, setup {setup_ms:.0f} ms; timing")
    result: dict = {
        "machine": machine(),
        "model": {
            "features": len(NUMERIC) + len(CATEGORICAL),
            "columns_in_frame": X.shape[1],
            "trees": TREES,
            "nodes": int(sum(e.tree_.node_count for e in model[-1].estimators_)),
            "training_rows": len(X_train),
            "background_rows": len(explainer.background),
        },
        "method": explainer.method,
        "setup_ms": setup_ms,
        "latency": latency(model, explainer, rows, rounds, per_round),
    }
    log(f"latency: {result['latency']['explain_ms']} vs {result['latency']['predict_proba_ms']}")

    # The sampling path on the same model: latency and error against the exact tree values.
    check = pd.concat(rows[: 3 if quick else 10])
    exact = explainer.explain(check).values
    sampling: dict = {}
    for perms in (16, 64):
        sampler = Explainer(model, background, method=SHAPLEY_SAMPLING, n_permutations=perms)
        times = [_timed(lambda r=r, s=sampler: s.explain(r)) for r in rows[: 3 if quick else 10]]
        sampling[str(perms)] = {
            "p50_ms": stats.median(times),
            **_errors(sampler.explain(check).values, exact),
        }
        log(f"sampling {perms} permutations: {sampling[str(perms)]}")
    result["sampling"] = {"rows": len(check), "by_permutations": sampling}

    # The whole 32-row card background instead of the default cap: latency, and how far the capped one is.
    full = Explainer(model, background, max_background=len(background))
    full_times = [_cpu_timed(lambda r=r: full.explain(r)) for r in rows[: 10 if quick else 40]]
    result["full_background"] = {
        "rows": len(full.background),
        "p50_ms": stats.median([w for w, _ in full_times]),
        "cpu_p50_ms": stats.median([c for _, c in full_times]),
        **_errors(exact, full.explain(check).values),
    }
    log(f"full background: {result['full_background']}")

    # tree_exact against brute-force enumeration on the 10-feature churn forest (2^10 coalitions x 32 rows).
    Xc, yc = sample.churn_data(5000, seed=0)
    churn = sample.forest_pipeline(TREES).fit(Xc.iloc[:4000], yc.iloc[:4000])
    churn_bg = card_background(Xc.iloc[:4000])
    churn_rows = Xc.iloc[4000 : 4000 + (2 if quick else 5)]
    tree_values = Explainer(churn, churn_bg).explain(churn_rows).values
    enumerated = Explainer(churn, churn_bg, method=SHAPLEY_EXACT).explain(churn_rows).values
    result["exactness"] = {
        "model": "churn forest, 10 features, 100 trees",
        "rows": len(churn_rows),
        **_errors(tree_values, enumerated),
    }
    log(f"exactness: {result['exactness']}")
    return result


def summary_rows(result: dict) -> list[list[str]]:
    lat = result["latency"]
    return [
        [
            f"explanation p50, {result['model']['trees']}-tree forest, {result['model']['features']} features, one row",
            f"{lat['explain_ms']['p50']:.2f} ms ({lat['ratio_p50']:.2f}x predict_proba)",
            f"<= {lat['target_ms']:.0f} ms",
            "PASS" if lat["meets_target"] else "MISS",
        ]
    ]


def markdown(result: dict) -> str:
    m, lat, s, e = result["model"], result["latency"], result["sampling"], result["exactness"]
    rr, cpu, fb = lat["per_round_ratio"], lat["cpu_ms_p50"], result["full_background"]
    lines = [
        "# Explanation benchmark",
        "",
        f"Machine: {result['machine']['platform']}, {result['machine']['cpus']} CPUs, Python "
        f"{result['machine']['python']}, numpy {result['machine']['numpy']}, pandas {result['machine']['pandas']}.",
        "",
        "## Single-row latency",
        "",
        f"RandomForestClassifier pipeline, {m['trees']} trees ({m['nodes']:,} nodes), {m['features']} model features "
        f"(+ customer_id, dropped), fitted on {m['training_rows']:,} rows; background {m['background_rows']} rows "
        f"from `background_sample`. Method: `{result['method']}` (Explainer setup {result['setup_ms']:.0f} ms, once "
        f"per model). {lat['samples_per_arm']} calls per arm, ABBA rounds, each call on the next holdout row.",
        "",
        "| measure | explain | predict_proba (baseline) | ratio |",
        "|---|---:|---:|---:|",
        f"| p50 | {lat['explain_ms']['p50']:.2f} ms | {lat['predict_proba_ms']['p50']:.2f} ms | "
        f"{lat['ratio_p50']:.2f}x |",
        f"| p99 | {lat['explain_ms']['p99']:.2f} ms | {lat['predict_proba_ms']['p99']:.2f} ms | "
        f"{lat['explain_ms']['p99'] / lat['predict_proba_ms']['p99']:.2f}x |",
        f"| per-round p50 ratio, median (IQR) | | | {rr['median']:.2f}x ({rr['p25']:.2f}-{rr['p75']:.2f}) |",
        f"| CPU time of the calling thread, p50 | {cpu['explain']:.2f} ms | {cpu['predict_proba']:.2f} ms | "
        f"{cpu['explain'] / cpu['predict_proba']:.2f}x |",
        "",
        f"Target: explain p50 <= {lat['target_ms']:.0f} ms: {'met' if lat['meets_target'] else 'MISSED'}. "
        "CPU time is shown because the machine is shared: wall time grows with other load, CPU time much less.",
        "",
        f"With the whole {fb['rows']}-row card background instead of the default cap of {m['background_rows']}: "
        f"p50 {fb['p50_ms']:.1f} ms (CPU {fb['cpu_p50_ms']:.1f} ms); attributions against the capped background "
        f"differ by {fb['mean_abs_error']:.4f} on average, {fb['max_abs_error']:.4f} at most (mean |attribution| "
        f"{fb['mean_abs_attribution']:.4f}): the background sample, not the method, is the approximation.",
        "",
        "## Accuracy",
        "",
        f"tree_exact against exact Shapley values by enumerating all coalitions ({e['model']}, {e['rows']} rows, "
        f"same background): mean absolute difference {e['mean_abs_error']:.1e}, max {e['max_abs_error']:.1e} "
        f"(mean |attribution| {e['mean_abs_attribution']:.4f}).",
        "",
        f"The model-agnostic sampling path (antithetic permutations, seeded) on the 20-feature forest, against "
        f"tree_exact, over {s['rows']} rows and both classes:",
        "",
        "| permutations | p50 latency | mean abs error | max abs error | mean abs exact attribution |",
        "|---:|---:|---:|---:|---:|",
    ]
    for perms, r in s["by_permutations"].items():
        lines.append(
            f"| {perms} | {r['p50_ms']:.1f} ms | {r['mean_abs_error']:.4f} | {r['max_abs_error']:.4f} | "
            f"{r['mean_abs_attribution']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and rows (a smoke run)")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--out", type=Path, default=BUILD)
    args = parser.parse_args(argv)
    result = run(args.quick, args.rounds, args.per_round)
    text = markdown(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "explain.json").write_text(json.dumps(result, indent=2, allow_nan=False))
    (args.out / "explain.md").write_text(text)
    print(text)
    return {**result, "markdown": text}


if __name__ == "__main__":
    main()
