"""Performance estimation benchmark: CBPE's estimated accuracy against the realized one on covariate-shifted windows.

    python -m sklambda_infra.bench.estimation [--quick] [--windows 200] [--rows 2000] [--out build/bench]

A seeded binary concept, P(y = 1 | x) = sigmoid(1.5 x0 - x1 - 0.5), fixed in every window (no concept drift).
The model is a strongly regularized logistic regression (C = 0.0005): it ranks rows as the concept does but its
probabilities are squashed towards 0.5, so its raw scores are not calibrated and the calibration map does the work.
The calibration map is fitted on a 5,000-row holdout, as publish does (`card_section`). Each window draws `rows`
rows with x0 shifted by an amount spread evenly over [-1.5, 1.5] (covariate shift: the realized accuracy moves
between about 0.72 and 0.87) and labels from the same concept.

Reported: the share of windows whose estimated accuracy is within 0.02 of the realized one (target >= 90 %), the
same share for the "assume the holdout accuracy" baseline in the same windows, the mean absolute errors, the
share of windows whose realized accuracy falls in the estimate's 95 % interval, and, for contrast, the same share
on windows with concept drift (the x0 coefficient reversed, which CBPE cannot see by design).

Multiclass row, the same protocol: a seeded 3-class concept P(y | x) = softmax(W x + b) (`MULTICLASS_WEIGHTS`,
`MULTICLASS_BIAS`), a multinomial logistic regression with C = 0.01 (under-confident: its largest probability is
~0.04 below its accuracy, so the one-vs-rest maps do the work), maps fitted on a 5,000-row holdout
(`multiclass_card_section`), x0 shifted over [-1.5, 1.5]; concept drift swaps classes 0 and 2's x0 weights.
Also reported: the share within tolerance of the model's own confidence (mean largest probability), uncalibrated.
Writes build/bench/estimation.md and build/bench/estimation.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

from sklambda.monitoring.model_quality.estimation import card_section, estimate, multiclass_card_section
from sklambda_infra.bench.common import BUILD

TOLERANCE = 0.02
TARGET_SHARE = 0.90
SEED = 20261130
TRAINING_ROWS = HOLDOUT_ROWS = 5000
REGULARIZATION = 0.0005  # LogisticRegression's C: under-confident scores that need the calibration map
MAX_SHIFT = 1.5  # x0's covariate shift spans [-MAX_SHIFT, MAX_SHIFT]
THRESHOLD = 0.5
FULL = {"windows": 200, "rows": 2000}
MULTICLASS_WEIGHTS = np.array([[1.5, 0.0], [-1.0, 1.0], [0.0, -1.5]])
MULTICLASS_BIAS = np.array([0.0, 0.2, -0.2])
MULTICLASS_REGULARIZATION = 0.01
QUICK = {"windows": 40, "rows": 2000}


def concept(rng: np.random.Generator, n: int, shift: float = 0.0, drifted: bool = False):
    """n rows (x0 shifted by `shift`) and labels; drifted reverses x0's effect (concept drift)."""
    X = rng.normal(0.0, 1.0, (n, 2))
    X[:, 0] += shift
    logit = (-1.5 if drifted else 1.5) * X[:, 0] - X[:, 1] - 0.5
    return X, rng.random(n) < 1 / (1 + np.exp(-logit))


def three_classes(rng: np.random.Generator, n: int, shift: float = 0.0, drifted: bool = False):
    """n rows (x0 shifted by `shift`) and 3-class labels; drifted swaps classes 0 and 2's x0 weights."""
    X = rng.normal(0.0, 1.0, (n, 2))
    X[:, 0] += shift
    weights = MULTICLASS_WEIGHTS.copy()
    if drifted:
        weights[[0, 2], 0] = weights[[2, 0], 0]
    logits = X @ weights.T + MULTICLASS_BIAS
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return X, np.minimum(np.sum(rng.random((n, 1)) >= np.cumsum(p, axis=1), axis=1), 2)


def run_multiclass(windows: int, rows: int, seed: int = SEED) -> dict:
    """The multiclass row's numbers (see the module docstring)."""
    rng = np.random.default_rng([seed, 3])
    model = LogisticRegression(C=MULTICLASS_REGULARIZATION).fit(*three_classes(rng, TRAINING_ROWS))
    X_holdout, y_holdout = three_classes(rng, HOLDOUT_ROWS)
    section = multiclass_card_section(model.predict_proba(X_holdout), y_holdout)
    holdout_accuracy = section["holdout"]["accuracy"]

    def errors(drifted: bool) -> dict[str, np.ndarray]:
        out: dict[str, list] = {"est": [], "base": [], "raw": [], "covered": [], "realized": []}
        for shift in np.linspace(-MAX_SHIFT, MAX_SHIFT, windows):
            X, y = three_classes(rng, rows, shift, drifted)
            proba = model.predict_proba(X)
            actual = float(np.mean(proba.argmax(axis=1) == y))
            e = estimate(section, proba)
            out["est"].append(abs(e.accuracy - actual))
            out["base"].append(abs(holdout_accuracy - actual))
            out["raw"].append(abs(float(proba.max(axis=1).mean()) - actual))
            out["covered"].append(e.accuracy_interval[0] <= actual <= e.accuracy_interval[1])
            out["realized"].append(actual)
        return {k: np.array(v) for k, v in out.items()}

    shifted, drifted = errors(drifted=False), errors(drifted=True)
    share = float(np.mean(shifted["est"] <= TOLERANCE))
    return {
        "classes": 3,
        "windows": windows,
        "rows": rows,
        "tolerance": TOLERANCE,
        "target_share": TARGET_SHARE,
        "holdout_accuracy": holdout_accuracy,
        "realized_range": [float(shifted["realized"].min()), float(shifted["realized"].max())],
        "cbpe_share_within": share,
        "baseline_share_within": float(np.mean(shifted["base"] <= TOLERANCE)),
        "raw_confidence_share_within": float(np.mean(shifted["raw"] <= TOLERANCE)),
        "cbpe_mean_abs_error": float(shifted["est"].mean()),
        "baseline_mean_abs_error": float(shifted["base"].mean()),
        "raw_confidence_mean_abs_error": float(shifted["raw"].mean()),
        "interval_coverage": float(shifted["covered"].mean()),
        "concept_drift_cbpe_share_within": float(np.mean(drifted["est"] <= TOLERANCE)),
        "concept_drift_baseline_share_within": float(np.mean(drifted["base"] <= TOLERANCE)),
        "meets_target": share >= TARGET_SHARE,
    }


def run(windows: int, rows: int, seed: int = SEED) -> dict:
    """The benchmark's numbers (see the module docstring): the binary ones, the multiclass ones under "multiclass"."""
    rng = np.random.default_rng(seed)
    model = LogisticRegression(C=REGULARIZATION).fit(*concept(rng, TRAINING_ROWS))
    X_holdout, y_holdout = concept(rng, HOLDOUT_ROWS)
    section = card_section(model.predict_proba(X_holdout), y_holdout, positive_index=1, threshold=THRESHOLD)
    holdout_accuracy = section["holdout"]["accuracy"]

    def errors(drifted: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        est, base, covered, realized = [], [], [], []
        for shift in np.linspace(-MAX_SHIFT, MAX_SHIFT, windows):
            X, y = concept(rng, rows, shift, drifted)
            proba = model.predict_proba(X)
            actual = float(np.mean((proba[:, 1] >= THRESHOLD) == y))
            e = estimate(section, proba)
            est.append(abs(e.accuracy - actual))
            base.append(abs(holdout_accuracy - actual))
            covered.append(e.accuracy_interval[0] <= actual <= e.accuracy_interval[1])
            realized.append(actual)
        return np.array(est), np.array(base), np.array(covered), np.array(realized)

    est, base, covered, realized = errors(drifted=False)
    drift_est, drift_base, _, _ = errors(drifted=True)
    share = float(np.mean(est <= TOLERANCE))
    return {
        "windows": windows,
        "rows": rows,
        "tolerance": TOLERANCE,
        "target_share": TARGET_SHARE,
        "holdout_accuracy": holdout_accuracy,
        "realized_range": [float(realized.min()), float(realized.max())],
        "cbpe_share_within": share,
        "baseline_share_within": float(np.mean(base <= TOLERANCE)),
        "cbpe_mean_abs_error": float(est.mean()),
        "baseline_mean_abs_error": float(base.mean()),
        "interval_coverage": float(covered.mean()),
        "concept_drift_cbpe_share_within": float(np.mean(drift_est <= TOLERANCE)),
        "concept_drift_baseline_share_within": float(np.mean(drift_base <= TOLERANCE)),
        "meets_target": share >= TARGET_SHARE,
        "multiclass": run_multiclass(windows, rows, seed),
    }


def summary_rows(result: dict) -> list[list[str]]:
    """BENCHMARKS.md summary rows: CBPE's share within tolerance against the target, with the baseline's."""
    rows = [
        [
            f"estimated accuracy within {result['tolerance']} of realized, {result['windows']} covariate-shifted "
            f"windows of {result['rows']:,} rows (holdout-accuracy baseline: {result['baseline_share_within']:.0%})",
            f"{result['cbpe_share_within']:.0%}",
            f">= {result['target_share']:.0%}",
            "PASS" if result["meets_target"] else "MISS",
        ]
    ]
    multi = result.get("multiclass")
    if multi is not None:
        rows.append(
            [
                f"multiclass ({multi['classes']} classes) estimated accuracy within {multi['tolerance']} of realized, "
                f"{multi['windows']} covariate-shifted windows of {multi['rows']:,} rows (holdout-accuracy baseline: "
                f"{multi['baseline_share_within']:.0%})",
                f"{multi['cbpe_share_within']:.0%}",
                f">= {multi['target_share']:.0%}",
                "PASS" if multi["meets_target"] else "MISS",
            ]
        )
    return rows


def markdown(result: dict) -> str:
    """The benchmark's section of BENCHMARKS.md."""
    r = result
    lo, hi = r["realized_range"]
    return "\n".join(
        [
            "# Performance estimation before labels (CBPE)",
            "",
            f"{r['windows']} seeded windows of {r['rows']:,} rows, x0 shifted over [-{MAX_SHIFT}, {MAX_SHIFT}], no "
            f"concept drift; realized accuracy {lo:.3f}-{hi:.3f}, holdout accuracy {r['holdout_accuracy']:.3f}.",
            "",
            "| | CBPE estimate | holdout-accuracy baseline |",
            "|---|---:|---:|",
            f"| windows within {r['tolerance']} of realized accuracy | {r['cbpe_share_within']:.1%} | "
            f"{r['baseline_share_within']:.1%} |",
            f"| mean absolute error | {r['cbpe_mean_abs_error']:.4f} | {r['baseline_mean_abs_error']:.4f} |",
            f"| with concept drift (x0 reversed): within {r['tolerance']} | "
            f"{r['concept_drift_cbpe_share_within']:.1%} | "
            f"{r['concept_drift_baseline_share_within']:.1%} |",
            "",
            f"Realized accuracy inside the estimate's 95 % interval: {r['interval_coverage']:.1%} of windows. "
            "Under concept drift CBPE is expected to fail: it assumes P(y | score) does not change.",
            "",
            *(_multiclass_markdown(r["multiclass"]) if r.get("multiclass") else []),
        ]
    )


def _multiclass_markdown(m: dict) -> list[str]:
    lo, hi = m["realized_range"]
    return [
        f"Multiclass ({m['classes']} classes, one-vs-rest maps): {m['windows']} seeded windows of {m['rows']:,} rows, "
        f"x0 shifted over [-{MAX_SHIFT}, {MAX_SHIFT}]; realized accuracy {lo:.3f}-{hi:.3f}, holdout accuracy "
        f"{m['holdout_accuracy']:.3f}.",
        "",
        "| | CBPE estimate | holdout-accuracy baseline | model's own confidence |",
        "|---|---:|---:|---:|",
        f"| windows within {m['tolerance']} of realized accuracy | {m['cbpe_share_within']:.1%} | "
        f"{m['baseline_share_within']:.1%} | {m['raw_confidence_share_within']:.1%} |",
        f"| mean absolute error | {m['cbpe_mean_abs_error']:.4f} | {m['baseline_mean_abs_error']:.4f} | "
        f"{m['raw_confidence_mean_abs_error']:.4f} |",
        f"| with concept drift (classes 0 and 2 swap x0): within {m['tolerance']} | "
        f"{m['concept_drift_cbpe_share_within']:.1%} | {m['concept_drift_baseline_share_within']:.1%} | |",
        "",
        f"Realized accuracy inside the estimate's 95 % interval: {m['interval_coverage']:.1%} of windows.",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK['windows']} windows instead of {FULL['windows']}")
    parser.add_argument("--windows", type=int)
    parser.add_argument("--rows", type=int)
    parser.add_argument("--out", type=Path, default=BUILD)
    args = parser.parse_args(argv)
    plan = dict(QUICK if args.quick else FULL)
    plan.update({k: v for k, v in (("windows", args.windows), ("rows", args.rows)) if v is not None})
    result = run(plan["windows"], plan["rows"])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "estimation.json").write_text(json.dumps(result, indent=2, allow_nan=False))
    (args.out / "estimation.md").write_text(markdown(result))
    print(markdown(result), file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
