"""The champion/challenger gate (sklambda.updating.gate): a paired test of two versions on the same labeled rows."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from sklambda.monitoring.model_quality.metrics import roc_auc
from sklambda.updating.gate import KEEP_CHAMPION, REJECT, REPLACE, GateConfig, compare_versions, gate_config_from


def scores(n: int, champion_noise: float, challenger_noise: float, seed: int):
    """Labels from a latent x, and two models that see x through their own noise (less noise = better)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    y = rng.random(n) < 1 / (1 + np.exp(-2 * x))
    return y, x + rng.normal(scale=champion_noise, size=n), x + rng.normal(scale=challenger_noise, size=n)


def test_a_clearly_better_challenger_replaces_the_champion_and_the_aucs_are_sklearns():
    # GIVEN a challenger that sees the signal with much less noise, on 5,000 labeled rows
    y, a, b = scores(5000, 1.0, 0.3, seed=1)
    # WHEN the gate compares them on ROC AUC
    result = compare_versions(y, a, b)
    # THEN each AUC is scikit-learn's, the gain is their difference, and the challenger replaces the champion
    assert result.champion == pytest.approx(roc_auc_score(y, a))
    assert result.challenger == pytest.approx(roc_auc_score(y, b))
    assert result.gain == pytest.approx(result.challenger - result.champion)
    assert (result.method, result.decision, result.non_inferior, result.better) == (
        "paired_delong",
        REPLACE,
        True,
        True,
    )


def test_the_paired_delong_error_matches_a_paired_bootstrap_and_is_smaller_than_unpaired():
    # GIVEN two correlated models on the same 2,000 rows
    y, a, b = scores(2000, 0.6, 0.5, seed=2)
    result = compare_versions(y, a, b)
    # WHEN the difference is bootstrapped by resampling rows (both models on the same resamples)
    rng = np.random.default_rng(0)
    diffs = []
    for _ in range(250):
        rows = rng.integers(0, len(y), len(y))
        diffs.append(roc_auc_score(y[rows], b[rows]) - roc_auc_score(y[rows], a[rows]))
    # THEN DeLong's paired standard error agrees with it within 15 %, and is well below the unpaired one (the two
    # AUCs' own DeLong errors combined as if independent)
    assert result.se == pytest.approx(np.std(diffs, ddof=1), rel=0.15)
    assert result.se < 0.8 * np.hypot(roc_auc(y, a).se, roc_auc(y, b).se)


def test_an_equal_challenger_keeps_the_champion_and_a_much_worse_one_is_rejected():
    # GIVEN the same model twice (up to tiny noise), and a much worse challenger
    y, a, same = scores(3000, 0.5, 0.5, seed=3)
    _, _, worse = scores(3000, 0.5, 3.0, seed=3)
    # THEN the first is non-inferior but not better, the second possibly worse by more than the margin
    assert compare_versions(y, a, a + 1e-9 * same).decision == KEEP_CHAMPION
    rejected = compare_versions(y, a, worse)
    assert rejected.decision == REJECT and "may be worse" in rejected.reason


@pytest.mark.parametrize("metric", ["accuracy", "balanced_accuracy", "log_loss", "brier"])
def test_the_bootstrap_metrics_see_the_better_classifier(metric):
    # GIVEN probabilities of a better and a worse model (and their labels at 0.5)
    y, a, b = scores(4000, 1.0, 0.2, seed=4)
    pa, pb = 1 / (1 + np.exp(-2 * a)), 1 / (1 + np.exp(-2 * b))
    if metric in ("accuracy", "balanced_accuracy"):
        pa, pb = pa >= 0.5, pb >= 0.5
    # WHEN gated on the metric
    result = compare_versions(y, pa, pb, config=GateConfig(metric=metric, resamples=500))
    # THEN the gain is positive (lower is better for log loss and Brier: the gain is champion - challenger)
    assert result.method == "paired_bootstrap" and result.gain > 0 and result.decision == REPLACE


def test_a_regression_gate_compares_errors():
    rng = np.random.default_rng(5)
    y = rng.normal(size=3000)
    good, poor = y + rng.normal(scale=0.3, size=3000), y + rng.normal(scale=0.6, size=3000)
    for metric in ("mae", "rmse", "r2"):
        assert compare_versions(y, poor, good, config=GateConfig(metric=metric, resamples=300)).decision == REPLACE
        assert compare_versions(y, good, poor, config=GateConfig(metric=metric, resamples=300)).decision == REJECT


def test_bad_inputs_and_settings_are_refused_with_the_reason():
    y, a, b = scores(100, 1.0, 1.0, seed=6)
    with pytest.raises(ValueError, match="one length"):
        compare_versions(y, a[:50], b)
    with pytest.raises(ValueError, match="one class"):
        compare_versions(np.ones(100, dtype=bool), a, b)
    with pytest.raises(ValueError, match="unknown gate metric"):
        GateConfig(metric="auc")
    with pytest.raises(ValueError, match="unknown gate setting"):
        gate_config_from({"margn": 0.1})
    assert gate_config_from({"margin": 0.02}).margin == 0.02
