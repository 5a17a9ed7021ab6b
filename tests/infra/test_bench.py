"""The benchmark's pure helpers: statistics, parsing and the markdown report, and the wiring of a quick run
(no timing asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sklambda_infra.bench import __main__ as bench_main
from sklambda_infra.bench import bundle, cold, report
from sklambda_infra.bench.stats import MISS, PASS, Spread, interleaved_order, median, percentile, ratio, verdict


def test_percentile_interpolates_between_closest_ranks_like_numpy():
    # GIVEN an unsorted sample
    sample = [4.0, 1.0, 3.0, 2.0]
    # THEN the ends, the median and an interpolated percentile match numpy's default method
    assert percentile(sample, 0) == 1.0
    assert percentile(sample, 100) == 4.0
    assert median(sample) == 2.5
    assert percentile(sample, 99) == pytest.approx(3.97)
    assert percentile([7.0], 99) == 7.0


@pytest.mark.parametrize(("sample", "q"), [([], 50), ([1.0], -1), ([1.0], 101)])
def test_percentile_refuses_an_empty_sample_or_a_q_out_of_range(sample, q):
    with pytest.raises(ValueError):
        percentile(sample, q)


def test_ratio_and_verdict_treat_smaller_as_better_and_the_target_as_inclusive():
    assert ratio(3.0, 2.0) == 1.5
    assert verdict(1.5, 1.5) == PASS
    assert verdict(1.51, 1.5) == MISS
    with pytest.raises(ValueError):
        ratio(1.0, 0.0)


def test_spread_reports_median_and_quartiles():
    s = Spread.of([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (s.median, s.p25, s.p75, s.n) == (3.0, 2.0, 4.0, 5)
    assert str(s) == "3.00x (IQR 2.00-4.00, n=5)"


def test_interleaved_order_alternates_which_arm_goes_first():
    assert interleaved_order(4) == [
        ("subject", "baseline"),
        ("baseline", "subject"),
        ("subject", "baseline"),
        ("baseline", "subject"),
    ]


def test_importtime_self_times_are_summed_per_top_level_package():
    # GIVEN `python -X importtime` output with nested modules of two packages
    stderr = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:      1000 |       1000 |     numpy.core",
            "import time:      2000 |       3000 |   numpy",
            "import time:      5000 |       5000 |   pandas",
            "some other line",
        ]
    )
    # WHEN summarised
    out = cold.summarize_importtime(stderr, top=1)
    # THEN self times add up by the first dotted name, the tail folds into 'other', in seconds
    assert out == {"pandas": 0.005, "other": 0.003, "total": 0.008}


def test_model_load_seconds_come_from_the_handlers_model_loaded_log_line():
    stdout = '{"_aws": {}}\n{"level":"INFO","message":"model loaded","seconds":0.25}\n'
    assert cold._model_load_seconds(stdout) == 0.25
    assert cold._model_load_seconds("nothing logged") is None


def test_table_escapes_pipes_and_right_aligns_number_columns():
    text = report.table(["name", "ms"], [["a|b", 1.5]], right=(1,))
    assert text.splitlines() == ["| name | ms |", "| --- | ---: |", "| a\\|b | 1.5 |"]


def test_sizes_switch_to_kib_under_one_mib():
    assert report.mib(3 * 1024 * 1024) == "3.0 MiB"
    assert report.mib(10 * 1024) == "10 KiB"
    assert report.mib(None) == "n/a"


LAYER_REPORT = {
    "python_version": "3.12",
    "requirements": "layers/deps/requirements.txt",
    "deps_layer": {"before_slim_bytes": 300 * 2**20, "after_slim_bytes": 190 * 2**20, "zipped_bytes": 60 * 2**20},
    "runtime_layer": {"bytes": 64 * 1024, "zipped_bytes": 20 * 1024},
    "function": {"bytes": 9 * 1024, "zipped_bytes": 3 * 1024, "present": True},
    "total": {
        "unzipped_bytes": 210 * 2**20,
        "zipped_bytes": 61 * 2**20,
        "lambda_limit_bytes": 262_144_000,
        "target_bytes": 200 * 2**20,
    },
    "packages": [{"name": "scipy", "version": "1.17.1", "before_bytes": 100 * 2**20, "after_bytes": 80 * 2**20}],
}


def fake_results(*, bundle_result: dict) -> dict:
    latency = {"p50_ms": 2.0, "p99_ms": 4.0, "mean_ms": 2.5, "n": 10}
    spread = {"median": 1.2, "p25": 1.1, "p75": 1.3, "n": 4}
    return {
        "machine": {
            "date": "2026-01-01T00:00:00+00:00",
            "cpu": "Test CPU",
            "cores": 2,
            "usable_cores": 2,
            "memory_gib": 4.0,
            "os": "Linux",
            "python": "CPython 3.11.7",
            "libraries": {"numpy": "2.4.6"},
            "thread_env": {"OPENBLAS_NUM_THREADS": "unset"},
            "blas": [],
            "load_average_start": "0.1 0.1 0.1",
        },
        "quick": True,
        "only": [],
        "elapsed_s": 12.0,
        "load_average_end": "0.2 0.2 0.2",
        "warm": [
            {
                "model": "churn-lr",
                "label": "logistic regression pipeline",
                "handler": latency,
                "raw": latency,
                "ratio_p50": 1.6,
                "ratio_p99": 1.0,
                "block_ratios": spread,
                "target": 1.5,
                "verdict": MISS,
                "plan": {"rounds": 2, "block": 5, "warmup": 1, "profile_calls": 3},
                "stages": [{"stage": "  nested stage", "ms_per_call": 1.0, "share": 0.5}],
                "hotspots": [{"function": "f.py:1(f)", "own_ms_per_call": 0.1, "share": 0.05, "calls_per_request": 2}],
            },
        ],
        "frame": {"rows": 1, "current": latency, "previous": latency, "ratio_p50": 1.0},
        "cold": [
            {
                "model": "churn-lr",
                "artifact_bytes": 5000,
                "handler_s": [1.5, 1.4],
                "bare_s": [1.0, 1.0],
                "handler_median_s": 1.45,
                "bare_median_s": 1.0,
                "ratio": 1.45,
                "pair_ratios": spread,
                "target": 1.3,
                "verdict": MISS,
                "handler_phases": {"import handler module": 1.0},
                "bare_phases": {"joblib.load": 0.6},
                "imports": {
                    "handler": {"scipy": 0.4, "other": 0.1, "total": 0.5},
                    "bare": {"scipy": 0.5, "total": 0.5},
                },
            },
        ],
        "bundle": bundle_result,
    }


def test_report_has_a_summary_row_per_target_and_shows_misses_with_their_hotspots():
    # GIVEN results with a missed warm target and a measured bundle
    results = fake_results(
        bundle_result={
            "measured": True,
            "report": LAYER_REPORT,
            "report_path": "r.json",
            "build_seconds": 10.0,
            "build_exit_code": 0,
        }
    )
    # WHEN rendered
    text = report.render(results)
    # THEN the summary names each target with its verdict, the hotspots of the miss are listed,
    # and the bundle is checked against both the Lambda limit and our target
    warm = "warm p50, logistic regression pipeline, scikit-learn path: handler / predict_proba"
    assert f"| {warm} | 1.60x | <= 1.5x | MISS |" in text
    assert (
        "| cold start, churn-lr, scikit-learn path (section 2): handler / bare joblib | 1.45x | <= 1.3x | MISS |"
        in text
    )
    assert "f.py:1(f)" in text
    assert "| bundle, unzipped total vs Lambda limit | 210.0 MiB | < 250.0 MiB | PASS |" in text
    assert "| bundle, unzipped total vs our target | 210.0 MiB | <= 200.0 MiB | MISS |" in text
    assert "Test CPU" in text and "OPENBLAS_NUM_THREADS=unset" in text
    assert "TODO" not in text


def test_an_unmeasured_bundle_leaves_a_marked_todo_with_the_reason():
    results = fake_results(bundle_result={"measured": False, "reason": "no layer build yet"})
    text = report.render(results)
    assert "**TODO: the bundle was not measured in this run.**" in text
    assert "no layer build yet" in text
    assert "| bundle size | not measured (TODO) |" in text


def test_bundle_sizes_are_read_from_the_layer_report(tmp_path: Path):
    # GIVEN a layer report on disk
    path = tmp_path / "layer-report.json"
    path.write_text(json.dumps(LAYER_REPORT))
    # WHEN the benchmark reads it instead of building
    result = bundle.run(report=path)
    # THEN it is a measurement with the report's sizes
    assert result.measured
    assert bundle.sizes(result.report)["total"] == 210 * 2**20


def test_an_unreadable_layer_report_is_not_a_measurement(tmp_path: Path):
    path = tmp_path / "layer-report.json"
    path.write_text("{}")
    result = bundle.run(report=path)
    assert not result.measured and "cannot read the layer report" in result.reason


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], bench_main.DEFAULT_OUT),
        (["--quick"], bench_main.PARTIAL_OUT),
        (["--only", "warm"], bench_main.PARTIAL_OUT),
        (["--quick", "--out", "x.md"], Path("x.md")),
    ],
)
def test_only_a_full_run_rewrites_benchmarks_md(argv, expected):
    assert bench_main.output_path(bench_main.parse_args(argv)) == expected


def test_a_missed_cold_start_target_says_where_the_time_goes():
    # GIVEN a cold-start result whose handler imports the X-Ray SDK and spends time in its first call
    results = fake_results(bundle_result={"measured": False, "reason": "-"})
    results["cold"][0]["handler_phases"] = {"import handler module": 1.1, "first handler call": 0.3}
    results["cold"][0]["bare_phases"] = {"import joblib, pandas": 0.2, "joblib.load": 0.7, "predict_proba": 0.02}
    results["cold"][0]["imports"]["handler"]["aws_xray_sdk"] = 0.16
    # WHEN rendered
    text = report.render(results)
    # THEN the gap is split into the import phase and the first call, naming the largest import difference
    assert "Target missed for churn-lr" in text
    assert "+0.200 s; the largest differences by `-X importtime`: aws_xray_sdk +0.160 s" in text
    assert "first call takes 0.300 s against 0.020 s" in text


def test_the_bundle_is_a_todo_when_the_layer_build_does_not_exist(monkeypatch: pytest.MonkeyPatch):
    # GIVEN no sklambda_infra.layer module
    monkeypatch.setattr(bundle.importlib.util, "find_spec", lambda name: None)
    # WHEN the bundle benchmark runs
    result = bundle.run()
    # THEN it is skipped with a reason instead of failing
    assert not result.measured and "does not exist yet" in result.reason


def test_only_takes_several_benchmarks_at_once_or_repeated():
    both = bench_main.parse_args(["--quick", "--only", "drift", "explain"]).only
    assert (
        both == bench_main.parse_args(["--quick", "--only", "drift", "--only", "explain"]).only == ["drift", "explain"]
    )
    assert "explain" in bench_main.KINDS


def _timing(median: float) -> dict:
    return {"median": median, "best": median, "all": [median]}


def fake_drift(*, sampled_s: float, full_s: float, agree: bool = True) -> dict:
    def measured(max_rows, seconds, rows):
        return {
            "max_rows": max_rows,
            "seconds": _timing(seconds),
            "meets_target": seconds <= 2.5,
            "rss_before_mb": 400.0,
            "peak_rss_mb": 900.0,
            "peak_rss_increase_mb": 500.0,
            "rows_compared": rows,
            "verdict": "no_drift",
            "drifted_features": [],
        }

    clean = {"verdict": "no_drift", "drifted_features": []}
    shifted = {"verdict": "drift", "drifted_features": ["x03"]}
    return {
        "machine": {"python": "3.11.7", "platform": "Linux", "cpus": 2, "numpy": "2", "pandas": "3"},
        "speed": {
            "rows": 1_000_000,
            "features": 20,
            "plus": "predicted class and 2 class probabilities",
            "repeats": 5,
            "check_seconds": _timing(1.2),
            "floor_seconds": _timing(0.6),
            "ratio_to_floor": 2.0,
            "target_seconds": 2.5,
            "meets_target": True,
            "peak_alloc_mb": 300.0,
            "frame_mb": 400.0,
            "verdict_on_same_distribution": "no_drift",
        },
        "end_to_end": {
            "rows": 1_000_000,
            "features": 20,
            "objects": 20,
            "lines_per_object": 50_000,
            "uncompressed_mb": 500.0,
            "compressed_mb": 100.0,
            "setup_seconds": 60.0,
            "repeats": 3,
            "default_max_rows": 200_000,
            "target_seconds": 2.5,
            "lambda_memory_mb": 1769,
            "sampled": measured(200_000, sampled_s, 200_000),
            "full": measured(None, full_s, 1_000_000),
            "shift": "x03 +12 (baseline std 20.0)",
            "agreement": {
                "clean": {"sampled": clean, "full": clean, "same": True},
                "shifted": {"sampled": shifted if agree else clean, "full": shifted, "same": agree},
            },
            "verdicts_agree": agree,
        },
        "rates": {
            "clean": {
                "100": {"windows": 1, "drifted_min_rows_100": 0, "drifted_default": 0, "insufficient_default": 1}
            },
            "false_alarm_rate_min_rows_100": 0.0,
            "false_alarm_rate_default": 0.0,
            "clean_windows": 1,
            "detection": {
                "x": {"1000": {"window_rate": 1.0, "model_rate_2_in_a_row": 1.0}}
                | {"5000": {"window_rate": 1.0, "model_rate_2_in_a_row": 1.0}}
            },
        },
    }


def test_the_drift_section_reports_the_end_to_end_check_sampled_and_in_full():
    # GIVEN drift results where the sampled default meets 2.5 s and decoding every row does not
    results = fake_results(bundle_result={"measured": False, "reason": "-"})
    results["drift"] = fake_drift(sampled_s=2.1, full_s=24.0)
    # WHEN rendered
    text = report.render(results)
    # THEN the summary has a row for each mode with its verdict, the agreement, and the in-memory check
    assert (
        "| drift check end to end (S3 -> read_capture + check_card), 1,000,000 captured rows x 20 features, "
        "sampled to 200,000 (default) (median) | 2.10 s | <= 2.5 s | PASS |"
    ) in text
    assert "decoding all 1,000,000 rows (median) | 24.00 s | <= 2.5 s | MISS |" in text
    assert (
        "| drift verdict, sampled window = full window (clean day and one shifted feature) | same | same | PASS |"
        in text
    )
    assert (
        "| drift check in memory (check_drift on a ready frame), 1,000,000 rows x 20 features (median) | 1.20 s |"
        in text
    )
    # AND the drift section is numbered and shows both modes and both days
    assert "## 5. Drift check benchmark" in text and "### End to end: captured lines in S3 to a verdict" in text
    assert "| sampled to 200,000 rows (the default) | 200,000 | 2.10 s |" in text
    assert "| shifted: x03 +12 (baseline std 20.0) | drift (x03) | drift (x03) | yes |" in text


def test_a_sampled_verdict_that_differs_from_the_full_one_is_a_miss():
    results = fake_results(bundle_result={"measured": False, "reason": "-"})
    results["drift"] = fake_drift(sampled_s=2.1, full_s=24.0, agree=False)
    text = report.render(results)
    assert (
        "| drift verdict, sampled window = full window (clean day and one shifted feature) | differs | same | MISS |"
        in text
    )
    assert "| no_drift | drift (x03) | NO |" in text


def test_a_quick_explain_run_lands_in_the_report_as_section_7_with_its_summary_row(tmp_path, monkeypatch):
    # GIVEN the explanation benchmark hooked into the bench (quick, and its latency loop cut to two rounds of two calls
    # an arm: this test checks where its results land, not what they are)
    from sklambda_infra.bench import explain

    latency = explain.latency
    monkeypatch.setattr(
        explain, "latency", lambda model, explainer, rows, *_: latency(model, explainer, rows[:4], 2, 2)
    )
    monkeypatch.setattr(bench_main, "RESULTS", tmp_path / "results.json")
    out = tmp_path / "BENCHMARKS.md"
    # WHEN only it runs
    assert bench_main.main(["--quick", "--only", "explain", "--out", str(out)]) == 0
    # THEN the report has its section and a summary row naming the target, and the raw results hold it
    text = out.read_text()
    assert "## 7. Explanation benchmark" in text and "### Single-row latency" in text
    assert "| explanation p50, 100-tree forest, 20 features, one row |" in text and "| <= 25 ms |" in text
    assert "--quick --only explain" in text
    assert json.loads((tmp_path / "results.json").read_text())["explain"]["method"] == "tree_exact"


def test_every_benchmark_reads_the_repository_files_and_writes_under_build_bench() -> None:
    # GIVEN the benchmarks that live in sklambda_infra/bench/ and read the repository's own files
    from cfnlint.decode import cfn_yaml

    from sklambda_infra.bench import batch, common, drift, explain

    template = cfn_yaml.load(str(common.ROOT / "template.yaml"))["Resources"]

    # WHEN they look for them
    # THEN they find the batch function and its event, and the drift function's memory as the template states it
    assert (batch.BATCH_FUNCTION / "app.py").is_file() and (common.ROOT / "events" / "batch_sqs_event.json").is_file()
    assert drift._lambda_memory_mb() == template["DriftCheckFunction"]["Properties"]["MemorySize"]
    # AND each writes its own report into the repository's build/bench folder
    assert batch.BUILD == drift.BUILD == explain.BUILD == common.ROOT / "build" / "bench"


def test_the_canary_section_and_its_summary_rows_follow_the_measured_ratio_of_each_path():
    # GIVEN canary results whose p50 ratio is over the 1.02 target on the compiled path and under it on scikit-learn's
    from sklambda_infra.bench import canary, report

    over = {"p50_ms_plain": 1.0, "p50_ms_canary": 1.05, "p90_ms_plain": 1.2, "p90_ms_canary": 1.3,
            "ratio_p50": 1.05, "ratio_per_round": "1.05x", "canary_share": 0.1, "verdict": "MISS"}  # fmt: skip
    under = {**over, "p50_ms_canary": 1.01, "ratio_p50": 1.01, "ratio_per_round": "1.01x", "verdict": "PASS"}
    results = {"rounds": 2, "block": 5, "weight": 10.0, "requests": 100,
               "paths": {"scikit-learn": under, "compiled": over},
               "routing": {"rows": 10, "us_per_row": 1.1, "canary_share": 0.1}}  # fmt: skip
    # THEN a summary row per path states the measure, the target and the verdict, and the section shows both arms
    assert canary.summary_rows(results) == [
        ["canary routing overhead, warm p50, scikit-learn path (10 % canary vs plain alias)", "1.010x", "<= 1.02x",
         "PASS"],
        ["canary routing overhead, warm p50, compiled path (10 % canary vs plain alias)", "1.050x", "<= 1.02x",
         "MISS"],
    ]  # fmt: skip
    section = report._demote(canary.markdown(results), "14. ")
    assert section.startswith("## 14. Canary routing overhead")
    assert "| compiled | 1.000 | 1.050 | 1.050 | 1.05x | 1.200 / 1.300 | 10% | MISS |" in section
    assert "| scikit-learn | 1.000 | 1.010 | 1.010 | 1.01x | 1.200 / 1.300 | 10% | PASS |" in section


def test_the_retraining_section_judges_every_run_against_the_target():
    # GIVEN three runs, the first with the workers' cold starts over the 60 s target
    from sklambda_infra.bench import report, retrain

    rounds = [{"wall_s": w, "steps": {"train": 1.0}, "gate": "replace", "candidate": "2"} for w in (61.0, 2.0, 3.0)]
    results = {"train_rows": 10, "captured_rows": 5, "rounds": rounds, "wall_s_median": 3.0, "baseline_s": [1.0],
               "baseline_s_median": 1.0, "ratio": 3.0, "steps_median": {"train": 1.0},
               "verdict": retrain.verdict([r["wall_s"] for r in rounds])}  # fmt: skip
    # THEN one slow run is a miss, shown with the cold run apart from the warm ones
    assert results["verdict"] == "MISS" and retrain.verdict([2.0, 3.0]) == "PASS"
    [row] = retrain.summary_rows(results)
    assert row[1:] == ["61.0 s (first run: the workers' cold starts), then 2.5 s", "<= 60 s", "MISS"]
    section = report._demote(retrain.markdown(results), "15. ")
    assert section.startswith("## 15. Retraining end to end")
    assert "| 3.00 | 61.00, 2.00, 3.00 | 1.00 | 3.0x |" in section
