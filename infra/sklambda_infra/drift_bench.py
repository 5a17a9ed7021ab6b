"""Drift check benchmark: speed and memory on 1,000,000 rows x 20 features, false-alarm and detection rates.

    python -m sklambda_infra.drift_bench [--rows 1000000] [--repeats 5] [--clean-windows 1000] [--shift-windows 50]

Speed: a 20-feature frame (14 numeric, 6 categorical, as batch_bench) plus predicted class and probabilities;
the baseline is computed by sklambda.baseline from a 50,000-row sample of the same generator, as publish does.
Reported: median and best of ``--repeats`` runs of ``check_drift``, the ratio to a floor (the counting any
drift check must do: ``np.histogram`` per numeric column on the baseline edges, ``value_counts`` per categorical
one), and the peak memory the check allocates (tracemalloc, over the frame it is given).

Rates: the churn model of sklambda_infra.sample, its baseline from 4,000 training rows; clean windows from
the same generator (sizes 100 to 50,000, min_rows lowered to 100 so that none is "insufficient"), and the
single-feature shifts of tests/test_drift.py on 1,000- and 5,000-row windows, per window and with the
default 2-in-a-row rule. Writes build/bench/drift.md and build/bench/drift.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from sklambda.baseline import feature_baseline, prediction_baseline
from sklambda.drift import DRIFT, DriftConfig, check_drift, update_state
from sklambda.schema import infer_schema
from sklambda_infra import sample

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / "bench"
NUMERIC = [f"x{i:02d}" for i in range(14)]
CATEGORICAL = [f"c{i}" for i in range(6)]
LEVELS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
TARGET_SECONDS = 2.5
CLEAN_SIZES = (100, 300, 1000, 3000, 5000, 10000, 20000, 50000)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- speed ----------------------------------------------------------------------------------------------------


def wide_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {name: np.round(rng.normal(50, 20, n), 3) for name in NUMERIC}
    for name in CATEGORICAL:
        data[name] = rng.choice(LEVELS, n)
    X = pd.DataFrame(data)
    p = 1 / (1 + np.exp(-(X["x00"].to_numpy() - 50) / 20))
    return X, np.where(p > 0.5, "yes", "no"), np.column_stack([1 - p, p])


def floor_check(X: pd.DataFrame, baseline: dict) -> None:
    for name in NUMERIC:
        np.histogram(X[name].dropna().to_numpy(), bins=baseline["features"][name]["histogram"]["bin_edges"])
    for name in CATEGORICAL:
        X[name].value_counts()


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def speed(rows: int, repeats: int) -> dict:
    train, pred_t, proba_t = wide_frame(50_000, 0)
    schema = infer_schema(train)
    baseline = {
        "features": feature_baseline(train, schema),
        "predictions": prediction_baseline(pred_t, proba_t, ["no", "yes"]),
    }
    log(f"generating {rows:,} rows")
    X, pred, proba = wide_frame(rows, 1)

    def run():
        return check_drift(baseline, schema, X, predictions=pred, probabilities=proba)

    check = timed(run, repeats)
    floor = timed(lambda: floor_check(X, baseline), repeats)
    tracemalloc.start()
    report = run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    median = statistics.median(check)
    return {
        "rows": rows,
        "features": len(NUMERIC) + len(CATEGORICAL),
        "plus": "predicted class and 2 class probabilities",
        "repeats": repeats,
        "check_seconds": {"median": median, "best": min(check), "all": check},
        "floor_seconds": {"median": statistics.median(floor), "best": min(floor)},
        "ratio_to_floor": median / statistics.median(floor),
        "target_seconds": TARGET_SECONDS,
        "meets_target": median <= TARGET_SECONDS,
        "peak_alloc_mb": peak / 2**20,
        "frame_mb": X.memory_usage(deep=True).sum() / 2**20,
        "verdict_on_same_distribution": report.verdict,
    }


# --- rates ----------------------------------------------------------------------------------------------------


class Churn:
    def __init__(self) -> None:
        X, y = sample.churn_data(5000, seed=0)
        X, y, _, _ = sample.split(X, y)
        self.schema = infer_schema(X, pii=sample.PII)
        self.model = sample.logistic_pipeline().fit(X, y)
        self.classes = [str(c) for c in self.model.classes_]
        self.baseline = {
            "features": feature_baseline(X, self.schema),
            "predictions": prediction_baseline(self.model.predict(X), self.model.predict_proba(X), self.classes),
        }

    def check(self, w: pd.DataFrame, logit_shift: float = 0.0, config: DriftConfig | None = None):
        proba = self.model.predict_proba(w)
        if logit_shift:
            p = np.clip(proba[:, 1], 1e-9, 1 - 1e-9)
            p = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + logit_shift)))
            proba = np.column_stack([1 - p, p])
        pred = np.asarray(self.classes)[proba.argmax(axis=1)]
        return check_drift(self.baseline, self.schema, w, predictions=pred, probabilities=proba, config=config)


def _shift_numeric(name: str):
    def change(w, rng, base):
        w[name] = w[name] + 0.25 * base["features"][name]["std"]
        return w

    return change


def _plan(w, rng, base):
    basic = np.flatnonzero(w["plan"].to_numpy() == "basic")
    w.loc[rng.choice(basic, int(0.05 * len(w)), replace=False), "plan"] = "premium"
    return w


def _unseen(w, rng, base):
    w.loc[rng.choice(len(w), int(0.02 * len(w)), replace=False), "region"] = "atlantis"
    return w


def _nulls(w, rng, base):
    w["tenure_months"] = w["tenure_months"].astype("float64")
    w.loc[rng.choice(len(w), int(0.05 * len(w)), replace=False), "tenure_months"] = np.nan
    return w


SHIFTS = {
    "age mean +0.25 std": ("age", _shift_numeric("age"), 0.0),
    "monthly_charges mean +0.25 std": ("monthly_charges", _shift_numeric("monthly_charges"), 0.0),
    "plan share: 5 points basic -> premium": ("plan", _plan, 0.0),
    "region: 2% unseen categories": ("region", _unseen, 0.0),
    "tenure_months nulls 0% -> 5%": ("tenure_months", _nulls, 0.0),
    "predictions: log-odds +0.4": (None, lambda w, rng, base: w, 0.4),
}


def rates(clean_windows: int, shift_windows: int) -> dict:
    churn = Churn()
    per_size = max(1, clean_windows // len(CLEAN_SIZES))
    low = DriftConfig(min_rows=100)
    clean: dict[str, dict] = {}
    for n in CLEAN_SIZES:
        seeds = range(n * 7, n * 7 + per_size)
        verdicts = [churn.check(sample.churn_data(n, seed=1_000_000 + s)[0], config=low) for s in seeds]
        default = [churn.check(sample.churn_data(n, seed=2_000_000 + s)[0]) for s in seeds]
        clean[str(n)] = {
            "windows": per_size,
            "drifted_min_rows_100": sum(r.verdict == DRIFT for r in verdicts),
            "drifted_default": sum(r.verdict == DRIFT for r in default),
            "insufficient_default": sum(r.verdict == "insufficient_data" for r in default),
        }
        log(f"clean {n}: {clean[str(n)]}")
    total = per_size * len(CLEAN_SIZES)
    detection: dict[str, dict] = {}
    for label, (feature, change, logit) in SHIFTS.items():
        detection[label] = {}
        for n in (1000, 5000):
            rng = np.random.default_rng(3)
            reports = [
                churn.check(change(sample.churn_data(n, seed=3_000_000 + i)[0], rng, churn.baseline), logit)
                for i in range(shift_windows)
            ]
            hit = [(feature in r.drifted_features) if feature else r.prediction_drifted for r in reports]
            state, model_hits = None, []
            for r in reports:
                state, drifted = update_state(state, r)
                model_hits.append(drifted)
            detection[label][str(n)] = {
                "windows": shift_windows,
                "window_rate": float(np.mean(hit)),
                "model_rate_2_in_a_row": float(np.mean(model_hits[1:])),
            }
        log(f"{label}: {detection[label]}")
    return {
        "clean": clean,
        "false_alarm_rate_min_rows_100": sum(c["drifted_min_rows_100"] for c in clean.values()) / total,
        "false_alarm_rate_default": sum(c["drifted_default"] for c in clean.values()) / total,
        "clean_windows": total,
        "detection": detection,
    }


# --- report -----------------------------------------------------------------------------------------------------


def machine() -> dict:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }


def markdown(result: dict) -> str:
    s, r = result["speed"], result["rates"]
    lines = [
        "# Drift check benchmark",
        "",
        f"Machine: {result['machine']['platform']}, {result['machine']['cpus']} CPUs, Python "
        f"{result['machine']['python']}, numpy {result['machine']['numpy']}, pandas {result['machine']['pandas']}.",
        "",
        "## Speed and memory",
        "",
        f"{s['rows']:,} rows x {s['features']} features ({s['plus']}), {s['repeats']} runs after a warm-up.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| check_drift, median | {s['check_seconds']['median']:.3f} s |",
        f"| check_drift, best | {s['check_seconds']['best']:.3f} s |",
        f"| target | {s['target_seconds']} s ({'met' if s['meets_target'] else 'MISSED'}) |",
        f"| floor (histogram + value_counts only), median | {s['floor_seconds']['median']:.3f} s |",
        f"| ratio check / floor | {s['ratio_to_floor']:.2f} |",
        f"| peak memory allocated by the check (tracemalloc) | {s['peak_alloc_mb']:.0f} MB |",
        f"| the frame itself (deep) | {s['frame_mb']:.0f} MB |",
        "",
        "## False alarms on clean windows",
        "",
        f"{r['clean_windows']} clean windows for each setting. Drifted windows: "
        f"{r['false_alarm_rate_min_rows_100']:.2%} with min_rows=100, {r['false_alarm_rate_default']:.2%} with the "
        "defaults (windows under 500 rows are insufficient_data there).",
        "",
        "| rows | windows | drifted (min_rows=100) | drifted (defaults) | insufficient (defaults) |",
        "|---|---|---|---|---|",
    ]
    for n, c in r["clean"].items():
        lines.append(
            f"| {int(n):,} | {c['windows']} | {c['drifted_min_rows_100']} | {c['drifted_default']} | "
            f"{c['insufficient_default']} |"
        )
    lines += [
        "",
        "## Detection of single changes",
        "",
        "Share of windows where the changed feature (or the predictions) is flagged, and share of windows from the "
        "second on where the model is declared drifted (2 drifted windows in a row).",
        "",
        "| change | 1,000 rows: window | model | 5,000 rows: window | model |",
        "|---|---|---|---|---|",
    ]
    for label, d in r["detection"].items():
        a, b = d["1000"], d["5000"]
        lines.append(
            f"| {label} | {a['window_rate']:.0%} | {a['model_rate_2_in_a_row']:.0%} | {b['window_rate']:.0%} | "
            f"{b['model_rate_2_in_a_row']:.0%} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clean-windows", type=int, default=800)
    parser.add_argument("--shift-windows", type=int, default=50)
    parser.add_argument("--out", type=Path, default=BUILD)
    args = parser.parse_args(argv)
    result = {"machine": machine(), "speed": speed(args.rows, args.repeats)}
    log(f"speed: {result['speed']['check_seconds']}")
    result["rates"] = rates(args.clean_windows, args.shift_windows)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "drift.json").write_text(json.dumps(result, indent=2, allow_nan=False))
    (args.out / "drift.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
