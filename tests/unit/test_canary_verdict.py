"""The automatic rollback rule (sklambda.updating.rollout): canary against stable on errors, latency and quality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sklambda.monitoring.model_quality.metrics import Estimate
from sklambda.updating.rollout import (
    COLLECTING,
    ERROR_RATE,
    HEALTHY,
    LATENCY,
    ROLLED_BACK,
    LabeledQuality,
    RolloutBounds,
    evaluate_canary,
    farrington_manning,
    rollout_bounds_from,
    shift_interval,
    spent_alpha,
)


def requests(rng: np.random.Generator, version: str, n: int, error_rate: float, p50_ms: float) -> pd.DataFrame:
    """`n` requests answered by `version`: errors at `error_rate`, log-normal latencies with median `p50_ms`."""
    failed = rng.random(n) < error_rate
    latency = p50_ms * np.exp(rng.normal(0, 0.3, n))
    return pd.DataFrame(
        {
            "request_id": [f"{version}-{i}" for i in range(n)],
            "version": version,
            "outcome": np.where(failed, "error", "ok"),
            "latency_ms": np.where(failed, np.nan, latency),
        }
    )


def traffic(seed: int, *, stable=(1000, 0.01, 20.0), canary=(250, 0.01, 20.0)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.concat([requests(rng, "3", *stable), requests(rng, "4", *canary)], ignore_index=True)


def test_a_clearly_broken_canary_rolls_back_on_few_requests_before_min_requests():
    # GIVEN a canary failing a third of its 30 requests, the stable version 1 % of 300
    frame = traffic(1, stable=(300, 0.01, 20.0), canary=(30, 0.33, 20.0))
    # WHEN it is evaluated with the default bounds (200 requests per version to be called healthy)
    verdict = evaluate_canary(frame, stable="3", canary="4")
    # THEN it is rolled back at once, the reason naming the error rate, its figures, interval and bound
    assert verdict.status == ROLLED_BACK
    (reason,) = verdict.reasons
    assert reason["metric"] == ERROR_RATE and reason["test"] == "farrington_manning"
    assert reason["interval"][0] > reason["bound"] == 0.01
    assert reason["p_adjusted"] <= 0.05 and "error rate" in reason["text"]
    assert (verdict.canary.requests, verdict.stable.requests) == (30, 300)
    assert verdict.to_dict()["min_requests_met"] is False
    # AND it was so at a level far below alpha: an early check spends little of it (O'Brien-Fleming-type)
    assert verdict.level < 1e-5 and spent_alpha(0.05, 1.0) == pytest.approx(0.05)


def test_an_early_check_does_not_roll_back_what_a_full_one_would():
    # GIVEN a canary with 5 errors in 40 requests against 3 in 360: beyond the bound, not overwhelmingly so
    frame = pd.DataFrame(
        {
            "version": ["3"] * 360 + ["4"] * 40,
            "outcome": ["error"] * 3 + ["ok"] * 357 + ["error"] * 5 + ["ok"] * 35,
            "latency_ms": 20.0,
        }
    )
    # WHEN it is checked after 40 of the 200 requests it needs, and with 40 as its min_requests
    early = evaluate_canary(frame, stable="3", canary="4")
    full = evaluate_canary(frame, stable="3", canary="4", bounds=RolloutBounds(min_requests=40))
    # THEN the early check, at the spending function's level for 20 % of the information, keeps collecting
    assert early.status == COLLECTING and early.level == pytest.approx(spent_alpha(0.05, 0.2))
    # AND the same data at full information roll it back
    assert full.status == ROLLED_BACK and full.level == pytest.approx(0.05)


def test_an_equal_canary_stays_healthy_in_at_least_95_percent_of_200_seeded_trials():
    # GIVEN 200 trials where the canary is the stable version's twin (same error rate and latency)
    statuses = [evaluate_canary(traffic(seed), stable="3", canary="4").status for seed in range(200)]
    # THEN nearly all are healthy (the rest may only be a false rollback, never collecting: both have enough requests)
    assert statuses.count(HEALTHY) >= 190, statuses.count(ROLLED_BACK)
    assert set(statuses) <= {HEALTHY, ROLLED_BACK}


def test_a_canary_twice_as_slow_rolls_back_and_one_within_the_ratio_does_not():
    # GIVEN a canary at 2x the stable version's p50, another at 1.2x (bound 1.5)
    slow = evaluate_canary(traffic(2, canary=(250, 0.01, 40.0)), stable="3", canary="4")
    fine = evaluate_canary(traffic(2, canary=(250, 0.01, 24.0)), stable="3", canary="4")
    # THEN the slow one is rolled back for its latency, with the ratio's interval above the bound
    assert slow.status == ROLLED_BACK and [r["metric"] for r in slow.reasons] == [LATENCY]
    ratio = slow.reasons[0]
    assert ratio["difference"] == pytest.approx(2.0, rel=0.15) and ratio["interval"][0] > 1.5
    # AND the other is healthy, its ratio reported with an interval around 1.2
    assert fine.status == HEALTHY
    (latency,) = [c for c in fine.comparisons if c.metric == LATENCY]
    assert latency.interval[0] < 1.2 < latency.interval[1]


def test_a_quality_drop_beyond_the_bound_rolls_back_once_labels_exist():
    # GIVEN equal errors and latency, but ROC AUC 0.80 on the canary's 400 labeled rows against 0.86 on 1500
    quality = LabeledQuality(
        "roc_auc",
        {"3": Estimate(0.86, 0.84, 0.88, 0.01, "delong"), "4": Estimate(0.80, 0.776, 0.824, 0.012, "delong")},
        {"3": 1500, "4": 400},
    )
    verdict = evaluate_canary(traffic(3), stable="3", canary="4", quality=quality)
    # THEN the canary is rolled back for its quality drop (0.06 > 0.02, unpaired Wald test)
    assert verdict.status == ROLLED_BACK
    (reason,) = verdict.reasons
    assert (reason["metric"], reason["test"]) == ("roc_auc", "wald_z")
    assert reason["difference"] == pytest.approx(0.06)
    assert verdict.canary.labeled_rows == 400


def test_a_canary_without_enough_requests_and_no_violation_is_collecting():
    # GIVEN 50 canary requests as good as the stable version's
    verdict = evaluate_canary(traffic(4, canary=(50, 0.0, 20.0)), stable="3", canary="4")
    # THEN it is collecting, saying how many requests are needed
    assert verdict.status == COLLECTING
    assert "200 per version" in verdict.reasons[0]["text"]
    # AND the quality comparison says why it was not made
    (quality,) = [c for c in verdict.comparisons if c.test == "wald_z"]
    assert not quality.available and "no labels" in quality.text


def test_rollout_bounds_take_the_given_values_over_the_defaults_and_name_unknown_keys():
    bounds = rollout_bounds_from({"max_latency_ratio": 2, "min_requests": "50"})
    assert (bounds.max_latency_ratio, bounds.min_requests, bounds.alpha) == (2.0, 50, 0.05)
    assert rollout_bounds_from(None) == RolloutBounds()
    with pytest.raises(ValueError, match="max_error_rate"):
        rollout_bounds_from({"max_error_rate": 0.1})
    with pytest.raises(ValueError, match="at least 1"):
        rollout_bounds_from({"max_latency_ratio": 0.5})


def test_farrington_manning_is_centred_on_the_margin():
    # GIVEN large samples whose difference is exactly the margin, below it, and above it
    at = farrington_manning(600, 10_000, 500, 10_000, 0.01)
    below = farrington_manning(500, 10_000, 500, 10_000, 0.01)
    above = farrington_manning(900, 10_000, 500, 10_000, 0.01)
    # THEN the p-value is about one half at the margin, large below it, tiny above it
    assert at == pytest.approx(0.5, abs=0.01)
    assert below > 0.99 and above < 1e-6


def test_the_shift_interval_is_the_order_statistics_of_the_pairwise_differences():
    # GIVEN two small samples, and every pairwise difference
    rng = np.random.default_rng(5)
    x, y = rng.normal(1, 1, 23), rng.normal(0, 1, 31)
    differences = np.sort((x[:, None] - y[None, :]).ravel())
    # WHEN the interval is found by bisection on counts
    low, high = shift_interval(x, y)
    # THEN it equals the order statistics k and mn + 1 - k (normal approximation's k)
    m, n = len(x), len(y)
    k = int(np.floor(m * n / 2 - 1.959964 * np.sqrt(m * n * (m + n + 1) / 12)))
    assert low == pytest.approx(differences[k - 1], abs=1e-9)
    assert high == pytest.approx(differences[m * n - k], abs=1e-9)
