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
    # AND so does the multiclass row, which also beats the model's own uncalibrated confidence
    multi = result["multiclass"]
    assert multi["cbpe_share_within"] > multi["baseline_share_within"]
    assert multi["cbpe_mean_abs_error"] < min(multi["baseline_mean_abs_error"], multi["raw_confidence_mean_abs_error"])
    assert multi["concept_drift_cbpe_share_within"] < multi["cbpe_share_within"]
    # AND BENCHMARKS.md gets a summary row for each and their sections
    rows = report.summary_rows({"estimation": result})
    assert len(rows) == 2 and rows[0][3] == ("PASS" if result["meets_target"] else "MISS")
    assert rows[1][0].startswith("multiclass") and rows[1][3] == ("PASS" if multi["meets_target"] else "MISS")
    assert "holdout-accuracy baseline" in estimation.markdown(result)
    assert "one-vs-rest maps" in estimation.markdown(result)
    assert "estimation" in bench_main.KINDS
