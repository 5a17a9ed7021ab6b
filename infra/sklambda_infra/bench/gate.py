"""Champion/challenger gate benchmark: is the truly better model chosen, and is an equal champion kept?

    python -m sklambda_infra.bench.gate [--quick] [--out build/bench]

Population: x ~ N(0, 1), y ~ Bernoulli(sigmoid(2x)); a model sees x through Gaussian error, part shared by both
versions and part its own (POPULATIONS: a refit of the same pipeline, whose scores correlate ~0.91 with the
champion's, and another model family with own errors only, ~0.5). The better challenger's errors are scaled down by
bisection on 1,000,000 rows until its population ROC AUC is GAP higher. Each seeded trial draws ROWS labeled rows and
both models' scores on them and runs the default gate (sklambda.updating.gate.GateConfig: ROC AUC, paired DeLong,
margin 0.01, min gain 0.005, one-sided 5 %). Rates: "right" = the better challenger replaces the champion;
"wrong" = an equally good challenger (same errors, independent draws) replaces it. Writes build/bench/gate.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from sklambda.updating.gate import REPLACE, GateConfig, compare_versions

BUILD = Path("build/bench")
ROWS = 5_000
GAP = 0.02
CALIBRATION_ROWS = 1_000_000
RIGHT_TARGET, WRONG_TARGET = 0.95, 0.05
FULL, QUICK = 1000, 100
# A model's score is x + shared * u + own * v: u is error both versions make (same features, same pipeline refit),
# v each version's own. (shared, own) of the champion per population; a challenger scales both by k.
POPULATIONS = {
    "refit": (0.8, 0.4),  # a retrained pipeline: scores correlate ~0.91 with the champion's
    "independent": (0.0, 1.0),  # another model family, own errors only: scores correlate ~0.5
}


def log(message: str) -> None:
    print(f"[gate] {message}", file=sys.stderr, flush=True)


def _draw(n: int, rng: np.random.Generator, noise: tuple[float, float], k: float) -> tuple[np.ndarray, ...]:
    shared, own = noise
    x = rng.normal(size=n)
    y = rng.random(n) < 1 / (1 + np.exp(-2 * x))
    u = rng.normal(size=n)
    champion = x + shared * u + own * rng.normal(size=n)
    challenger = x + k * shared * u + k * own * rng.normal(size=n)
    return y, champion, challenger


def _aucs(noise: tuple[float, float], k: float) -> tuple[float, float]:
    y, a, b = _draw(CALIBRATION_ROWS, np.random.default_rng(12345), noise, k)
    return float(roc_auc_score(y, a)), float(roc_auc_score(y, b))


def better_scale(noise: tuple[float, float], gap: float = GAP) -> tuple[float, float, float]:
    """(k, champion AUC, challenger AUC): the challenger's error scale that makes it `gap` better in population."""
    lo, hi = 0.0, 1.0
    for _ in range(20):
        mid = (lo + hi) / 2
        a, b = _aucs(noise, mid)
        if b - a > gap:
            lo = mid
        else:
            hi = mid
    return (lo, *_aucs(noise, lo))


def trials(noise: tuple[float, float], k: float, count: int, seed: int) -> dict:
    """Decisions of `count` seeded trials of the champion against a challenger of error scale `k`."""
    rng = np.random.default_rng(seed)
    decisions: dict[str, int] = {}
    for _ in range(count):
        d = compare_versions(*_draw(ROWS, rng, noise, k), config=GateConfig()).decision
        decisions[d] = decisions.get(d, 0) + 1
    return {"trials": count, "decisions": decisions, "replaced": decisions.get(REPLACE, 0) / count}


def run(quick: bool = False) -> dict:
    """Both rates for each population (QUICK or FULL trial counts)."""
    count = QUICK if quick else FULL
    out: dict = {"quick": quick, "rows": ROWS, "config": GateConfig().__dict__, "populations": {}}
    for i, (name, noise) in enumerate(POPULATIONS.items()):
        k, champion_auc, challenger_auc = better_scale(noise)
        better = trials(noise, k, count, seed=10 * i + 1)
        equal = trials(noise, 1.0, count, seed=10 * i + 2)
        log(f"{name}: better replaced {better['replaced']:.1%}, equal replaced {equal['replaced']:.1%}")
        out["populations"][name] = {
            "shared_noise": noise[0],
            "own_noise": noise[1],
            "champion_auc": champion_auc,
            "challenger_auc": challenger_auc,
            "better": better,
            "equal": equal,
            "meets_right_target": better["replaced"] >= RIGHT_TARGET,
            "meets_wrong_target": equal["replaced"] <= WRONG_TARGET,
        }
    return out


def summary_rows(result: dict) -> list[list[str]]:
    """[benchmark, measured, target, verdict] rows for BENCHMARKS.md's summary: both rates of each population."""
    rows = []
    for name, p in result["populations"].items():
        gap = p["challenger_auc"] - p["champion_auc"]
        n = f"{name} models, {result['rows']:,} labeled rows, {p['better']['trials']:,} seeded trials"
        rows += [
            [
                f"gate: a challenger {gap:.3f} ROC AUC better replaces the champion ({n})",
                f"{p['better']['replaced']:.1%}",
                f">= {RIGHT_TARGET:.0%}",
                "PASS" if p["meets_right_target"] else "MISS",
            ],
            [
                f"gate: an equally good challenger replaces the champion ({n})",
                f"{p['equal']['replaced']:.1%}",
                f"<= {WRONG_TARGET:.0%}",
                "PASS" if p["meets_wrong_target"] else "MISS",
            ],
        ]
    return rows


def markdown(result: dict) -> str:
    """The benchmark's report."""
    c = result["config"]
    lines = [
        "# Champion/challenger gate benchmark",
        "",
        f"{result['rows']:,} labeled rows a trial; gate on {c['metric']} (paired DeLong), margin {c['margin']}, "
        f"min gain {c['min_gain']}, one-sided alpha {c['alpha']}." + (" Quick run." if result["quick"] else ""),
        "A score is x + shared·u + own·v (u: error both versions make, v: each one's own); the better challenger "
        "scales both down until its population ROC AUC is 0.02 higher.",
        "",
        "| population | shared, own error | ROC AUC champion -> better challenger | challenger | trials | decisions |",
        "|---|---|---|---|---:|---|",
    ]
    for name, p in result["populations"].items():
        for kind in ("better", "equal"):
            r = p[kind]
            shown = ", ".join(f"{k} {v}" for k, v in sorted(r["decisions"].items()))
            lines.append(
                f"| {name} | {p['shared_noise']}, {p['own_noise']} | {p['champion_auc']:.4f} -> "
                f"{p['challenger_auc']:.4f} | {kind} | {r['trials']:,} | {shown} |"
            )
    lines += ["", "| benchmark | measured | target | verdict |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in summary_rows(result)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer trials (a smoke run)")
    parser.add_argument("--out", type=Path, default=BUILD)
    args = parser.parse_args(argv)
    result = run(quick=args.quick)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gate.json").write_text(json.dumps(result, indent=2, allow_nan=False))
    (args.out / "gate.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
