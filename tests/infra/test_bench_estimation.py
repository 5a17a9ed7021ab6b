"""The estimation benchmark: a seeded run that meets its target and beats its baseline, and its report rows."""

from __future__ import annotations

from sklambda_infra.bench import __main__ as bench_main
from sklambda_infra.bench import estimation, report


def test_a_small_seeded_run_beats_the_holdout_accuracy_baseline_and_is_reported():
    # GIVEN the benchmark on 20 covariate-shifted windows
    result = estimation.run(windows=20, rows=2000)
    # THEN CBPE is within tolerance more often than assuming the holdout accuracy, and fails under concept drift
    assert result["cbpe_share_within"] > result["baseline_share_within"]
    assert result["cbpe_mean_abs_error"] < result["baseline_mean_abs_error"]
    assert result["concept_drift_cbpe_share_within"] < result["cbpe_share_within"]
    # AND BENCHMARKS.md gets its summary row and section
    rows = report.summary_rows({"estimation": result})
    assert len(rows) == 1 and rows[0][3] == ("PASS" if result["meets_target"] else "MISS")
    assert "holdout-accuracy baseline" in estimation.markdown(result)
    assert "estimation" in bench_main.KINDS
