"""Automatic canary rollback benchmark: is an equal canary left alone, and is a failing one caught?

    python -m sklambda_infra.bench.rollout [--quick] [--out build/bench]

Each seeded trial draws the requests of a stable version and of a canary (sklambda.updating.rollout.evaluate_canary,
default RolloutBounds: error rate +1 point, p50 ratio 1.5, one-sided 5 %, Holm): the stable version answers
STABLE_SHARE of the traffic, errors are Bernoulli, latencies log-normal (median 20 ms, sigma 0.3). Rates:
- false rollbacks of an equal canary at CANARY_REQUESTS requests, checked once, and checked LOOKS times as its
  requests arrive (every CANARY_REQUESTS / LOOKS requests: the scheduled check every few minutes), rolled back at any;
- detection of a canary with 3x the stable version's error rate at CANARY_REQUESTS requests, for base error rates
  BASE_RATES (the issue's "3x errors at 200 requests": with a 1 % base rate, 6 errors in 200 against 2 expected).
Writes build/bench/rollout.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from sklambda.updating.rollout import ROLLED_BACK, RolloutBounds, evaluate_canary

BUILD = Path("build/bench")
CANARY_REQUESTS = 200
STABLE_SHARE = 0.9  # a 10 % canary: the stable version has 9 requests for each of the canary's
LOOKS = 10
BASE_RATES = (0.01, 0.05)
FALSE_TARGET = 0.05
FULL, QUICK = 1000, 100


def log(message: str) -> None:
    print(f"[rollout] {message}", file=sys.stderr, flush=True)


def _requests(rng: np.random.Generator, version: str, n: int, error_rate: float) -> pd.DataFrame:
    failed = rng.random(n) < error_rate
    latency = 20.0 * np.exp(rng.normal(0, 0.3, n))
    outcome = np.where(failed, "error", "ok")
    return pd.DataFrame({"version": version, "outcome": outcome, "latency_ms": np.where(failed, np.nan, latency)})


def _traffic(rng: np.random.Generator, canary_requests: int, stable_rate: float, canary_rate: float) -> pd.DataFrame:
    stable = round(canary_requests * STABLE_SHARE / (1 - STABLE_SHARE))
    return pd.concat(
        [_requests(rng, "1", stable, stable_rate), _requests(rng, "2", canary_requests, canary_rate)], ignore_index=True
    )


def rolled_back(frame: pd.DataFrame) -> bool:
    return evaluate_canary(frame, stable="1", canary="2").status == ROLLED_BACK


def trials(count: int, seed: int, stable_rate: float, canary_rate: float, looks: int = 1) -> float:
    """Share of `count` trials rolled back at any of `looks` checks (the last at CANARY_REQUESTS canary requests)."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(count):
        frame = _traffic(rng, CANARY_REQUESTS, stable_rate, canary_rate)
        stable, canary = frame[frame["version"] == "1"], frame[frame["version"] == "2"]
        for k in range(1, looks + 1):  # the first k/looks of each version's requests: what a check then sees
            seen = pd.concat([stable.iloc[: len(stable) * k // looks], canary.iloc[: len(canary) * k // looks]])
            if rolled_back(seen):
                hits += 1
                break
    return hits / count


def run(quick: bool = False) -> dict:
    count = QUICK if quick else FULL
    out: dict = {
        "quick": quick,
        "trials": count,
        "canary_requests": CANARY_REQUESTS,
        "looks": LOOKS,
        "bounds": RolloutBounds().to_dict(),
        "rates": {},
    }
    for i, base in enumerate(BASE_RATES):
        once = trials(count, 10 * i + 1, base, base)
        repeated = trials(count, 10 * i + 2, base, base, looks=LOOKS)
        detected = trials(count, 10 * i + 3, base, 3 * base)
        log(f"base {base:.0%}: equal rolled back {once:.1%} once, {repeated:.1%} over {LOOKS} looks; 3x {detected:.1%}")
        out["rates"][f"{base:g}"] = {"equal_once": once, "equal_repeated": repeated, "triple_detected": detected}
    return out


def summary_rows(result: dict) -> list[list[str]]:
    """[benchmark, measured, target, verdict] rows for BENCHMARKS.md's summary."""
    rows = []
    n, trials_n = result["canary_requests"], result["trials"]
    for base, r in result["rates"].items():
        where = f"base error rate {float(base):.0%}, {n} canary requests, {trials_n:,} seeded trials"
        rows += [
            [
                f"rollout: an equal canary is rolled back ({where}, checked once)",
                f"{r['equal_once']:.1%}",
                f"<= {FALSE_TARGET:.0%}",
                "PASS" if r["equal_once"] <= FALSE_TARGET else "MISS",
            ],
            [
                f"rollout: an equal canary is rolled back at any of {result['looks']} checks ({where})",
                f"{r['equal_repeated']:.1%}",
                f"<= {FALSE_TARGET:.0%}",
                "PASS" if r["equal_repeated"] <= FALSE_TARGET else "MISS",
            ],
            [
                f"rollout: a canary with 3x errors is rolled back ({where})",
                f"{r['triple_detected']:.1%}",
                "reported",
                "—",
            ],
        ]
    return rows


def markdown(result: dict) -> str:
    """The benchmark's report."""
    b = result["bounds"]
    lines = [
        "# Automatic canary rollback benchmark",
        "",
        f"A 10 % canary; bounds: error rate +{b['max_error_rate_increase']}, p50 ratio {b['max_latency_ratio']}, "
        f"one-sided alpha {b['alpha']} (Holm across error rate and latency; no labels)."
        + (" Quick run." if result["quick"] else ""),
        "",
        "| base error rate | equal canary, checked once | equal canary, any of the checks | canary with 3x errors |",
        "|---|---:|---:|---:|",
    ]
    for base, r in result["rates"].items():
        lines.append(
            f"| {float(base):.0%} | {r['equal_once']:.1%} | {r['equal_repeated']:.1%} | {r['triple_detected']:.1%} |"
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
    (args.out / "rollout.json").write_text(json.dumps(result, indent=2, allow_nan=False))
    (args.out / "rollout.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
