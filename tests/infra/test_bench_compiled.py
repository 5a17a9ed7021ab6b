"""The compiled-path benchmark's pure parts: arm order, billing arithmetic, the card's section, and its report from
fake results (no timing asserted)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

from sklambda_infra.bench import compiled, report
from sklambda_infra.bench.compiled import BARE, BARE_ONNX, COMPILED, MLSERVER, ONNX, RAW, SKLEARN
from sklambda_infra.bench.peers import FLOAT32, FLOAT64

MIB = 2**20


def test_arms_alternate_forward_and_reversed_so_none_is_always_first():
    assert compiled.arm_orders(["a", "b", "c"], 3) == [("a", "b", "c"), ("c", "b", "a"), ("a", "b", "c")]
    # AND with two arms it is the ABBA order of the other benchmarks
    assert compiled.arm_orders(["subject", "baseline"], 2) == [("subject", "baseline"), ("baseline", "subject")]


def test_measure_arms_takes_a_block_of_every_arm_each_round_and_a_ratio_per_round_to_the_baseline():
    # GIVEN three arms that count their calls
    calls = {"base": 0, "x": 0, "y": 0}

    def counter(arm):
        def call():
            calls[arm] += 1

        return call

    plan = compiled.Plan(rounds=4, block=3, warmup=0, cold_runs=1, agreement_rows=1)
    # WHEN measured
    samples, per_round = compiled.measure_arms({arm: counter(arm) for arm in calls}, "base", plan)
    # THEN each arm ran rounds x block times, with one sample per call, and each non-baseline arm has a ratio a round
    assert calls == {"base": 12, "x": 12, "y": 12}
    assert {arm: len(s) for arm, s in samples.items()} == {"base": 12, "x": 12, "y": 12}
    assert set(per_round) == {"x", "y"} and all(len(r) == 4 for r in per_round.values())


def test_block_ratios_pair_each_rounds_blocks_of_the_two_arms():
    # GIVEN two rounds of blocks of 3 samples: the subject twice the baseline, then equal
    subject, baseline = [2, 2, 2, 5, 5, 5], [1, 1, 1, 5, 5, 5]
    # THEN there is one p50 ratio per round, and an incomplete block is left out
    assert compiled.block_ratios(subject, baseline, 3) == [2.0, 1.0]
    assert compiled.block_ratios([*subject, 9], [*baseline, 9], 3) == [2.0, 1.0]


@pytest.mark.parametrize(
    ("one_core_ms", "billed"),
    [
        (0.013, 1),  # Lambda bills at least 1 ms
        (2.427, 5),  # 2.427 x 1769/1024 = 4.19 -> rounded up
        (1024 / 1769, 1),  # exactly 1 ms at 1,024 MB: no spurious rounding up
        (1000.0, 1728),  # 1,727.5 ms -> 1,728
    ],
)
def test_billed_duration_scales_one_core_time_by_the_cpu_share_and_rounds_up_to_1_ms(one_core_ms, billed):
    assert compiled.billed_ms(one_core_ms) == billed


def test_billed_duration_at_one_vcpu_or_more_is_the_one_core_time():
    assert compiled.billed_ms(10.2, memory_mb=1769) == 11
    assert compiled.billed_ms(10.2, memory_mb=3008) == 11


def test_cost_per_million_is_gb_seconds_at_the_listed_price_plus_the_request_charge():
    # GIVEN 1,000 ms at 1,024 MB: one GB-second per request
    # THEN a million of them cost a million GB-seconds and a million requests
    assert compiled.cost_per_million(1000) == pytest.approx(1e6 * compiled.PRICE_PER_GB_SECOND + 0.20)
    assert compiled.cost_per_million(1000, memory_mb=512) == pytest.approx(0.5e6 * compiled.PRICE_PER_GB_SECOND + 0.20)


@dataclass
class _Section:
    key: str
    sha256: str


@pytest.mark.parametrize(
    ("card", "expected"),
    [
        (SimpleNamespace(compiled=None), None),
        (SimpleNamespace(), None),
        (SimpleNamespace(compiled={"key": "k", "sha256": "s"}), {"key": "k", "sha256": "s"}),
        (SimpleNamespace(compiled=_Section("k", "s")), {"key": "k", "sha256": "s"}),
        ({"compiled": {"key": "k"}}, {"key": "k"}),
    ],
)
def test_the_cards_compiled_section_is_read_as_a_dict_whatever_its_shape(card, expected):
    assert compiled.compiled_section(card) == expected


def test_only_a_section_that_says_used_means_the_compiled_path_serves_the_version():
    assert compiled.compiled_used({"used": True, "artifact": {}})
    assert not compiled.compiled_used({"used": False, "reason": "HistGradientBoostingClassifier has no evaluator"})
    assert not compiled.compiled_used(None)
    assert compiled.describe_section({"used": False, "reason": "no evaluator"}) == "not used: no evaluator"


def test_compiling_off_sets_the_configs_variable_for_the_publish_only(monkeypatch):
    # GIVEN a config that names the compile switch
    monkeypatch.delenv("SKLAMBDA_TEST_COMPILE", raising=False)
    config = SimpleNamespace(COMPILE="SKLAMBDA_TEST_COMPILE")
    # WHEN publishing with compiling off
    with compiled.compiling_off(config) as switch:
        inside = os.environ.get("SKLAMBDA_TEST_COMPILE")
    # THEN the variable is set inside, and gone after
    assert inside == "false" and switch == "SKLAMBDA_TEST_COMPILE=false"
    assert "SKLAMBDA_TEST_COMPILE" not in os.environ
    # AND a sklambda without the switch is said to have no compiled path
    with compiled.compiling_off(SimpleNamespace()) as switch:
        assert "no compiled path" in switch


def _latency(p50: float) -> dict:
    return {"p50_ms": p50, "p99_ms": p50 * 2, "mean_ms": p50, "n": 10}


def _spread(median: float) -> dict:
    return {"median": median, "p25": median, "p75": median, "n": 2}


def _cold(arm: str, seconds: float, ratio: float, **extra) -> dict:
    return {"seconds": [seconds], "median_s": seconds, "ratio": ratio, "phases": {"import": seconds}} | extra


def fake_results(*, compiled_ratio: float = 0.2, compiled_diff: float = 1e-9, compiled_cold: float = 0.4) -> dict:
    """One model whose compiled path was measured; float64 onnxruntime and MLServer could not be."""
    warm = {
        RAW: {"latency": _latency(2.0), "ratio_p50": 1.0},
        COMPILED: {"latency": _latency(2.0 * compiled_ratio), "ratio_p50": compiled_ratio,
                   "round_ratios": _spread(compiled_ratio), "target": 0.25,
                   "verdict": "PASS" if compiled_ratio <= 0.25 else "MISS"},
        SKLEARN: {"latency": _latency(2.4), "ratio_p50": 1.2, "round_ratios": _spread(1.2)},
        ONNX[FLOAT32]: {"latency": _latency(0.01), "ratio_p50": 0.005, "round_ratios": _spread(0.005)},
    }  # fmt: skip
    ok = compiled_diff <= 1e-6
    agreement = {
        "rows": 10_000,
        "seed": 1,
        COMPILED: {
            "max_abs_diff": compiled_diff,
            "mean_abs_diff": 0.0,
            "flips": 0,
            "verdict": "PASS" if ok else "MISS",
        },
        SKLEARN: {"max_abs_diff": 0.0, "mean_abs_diff": 0.0, "flips": 0},
        ONNX[FLOAT32]: {"max_abs_diff": 0.024, "mean_abs_diff": 1e-4, "flips": 3},
    }
    cold = {
        "runs": 2,
        "arms": {
            BARE: _cold(BARE, 1.0, 1.0),
            SKLEARN: _cold(SKLEARN, 1.4, 1.4, pair_ratios=_spread(1.4), target=1.3, verdict="MISS"),
            COMPILED: _cold(COMPILED, compiled_cold, compiled_cold, pair_ratios=_spread(compiled_cold), target=0.5,
                            verdict="PASS" if compiled_cold <= 0.5 else "MISS"),
            BARE_ONNX: _cold(BARE_ONNX, 0.1, 0.1, pair_ratios=_spread(0.1)),
        },
        "compiled_imports": {"sklearn": 0.0, "scipy": 0.0, "pandas": 0.0, "total": 0.2,
                             "largest": {"aws_xray_sdk": 0.1}},
    }  # fmt: skip
    model = {
        "label": "logistic regression pipeline",
        "compiled_card": {
            "used": True,
            "format": "sklambda.compiled/v1",
            "artifact": {"key": "models/churn-lr/1/compiled", "sha256": "ab12", "size": 4000},
            "agreement": {"rows": 500, "max_abs_difference": 2e-16, "class_flips": 0, "tolerance": 1e-6},
        },
        "unavailable": {ONNX[FLOAT64]: "converts, but onnxruntime cannot load it: no float64 Imputer"},
        "warm": warm,
        "agreement": agreement,
        "mlserver": {"measured": False, "reason": "pip install failed: a conflict"},
        "cold": cold,
    }
    results = {
        "plan": {"rounds": 2, "block": 5, "warmup": 1, "cold_runs": 2, "agreement_rows": 10_000},
        "compile_switch": "SKLAMBDA_COMPILE=false",
        "models": {"churn-lr": model},
        "bundle": {
            "layer": {"measured": True, "reason": "", "total": 192 * MIB, "limit": 262_144_000},
            "evaluator_bytes": 20 * 1024,
            "layer_packages": ["numpy", "scipy"],
            "onnxruntime": {"measured": True, "requirements": ["onnxruntime==1", "numpy==2"], "python_version": "3.12",
                            "total_bytes": 117 * MIB, "files": 10,
                            "packages": {"onnxruntime": 62 * MIB, "numpy": 54 * MIB, "protobuf": 1 * MIB}},
        },
    }  # fmt: skip
    results["billing"] = compiled.billing(results)
    return results


def test_the_summary_judges_each_target_and_reports_the_peers():
    # GIVEN a measured compiled path that meets its warm and agreement targets, a scikit-learn path that misses 1.3x
    rows = compiled.summary_rows(fake_results())
    by_measure = {r[0]: r[1:] for r in rows}
    # THEN each target has its row and verdict, and the peers are reported without one
    lr = "logistic regression pipeline"
    assert by_measure[f"compiled path, warm p50, {lr}: handler / predict_proba"] == ["0.200x", "<= 0.25x", "PASS"]
    assert by_measure[f"compiled path, agreement on 10,000 unseen rows, {lr}: max |Δp|, class flips"] == [
        "1.0e-09, 0",
        "<= 1e-06, 0",
        "PASS",
    ]
    assert by_measure["cold start, churn-lr, handler, scikit-learn path: handler / bare joblib"] == [
        "1.40x",
        "<= 1.3x",
        "MISS",
    ]
    assert by_measure["cold start, churn-lr, handler, compiled path: handler / bare joblib"][2] == "PASS"
    assert by_measure[f"peer, warm p50, {lr}: onnxruntime, float32 / predict_proba"] == ["0.005x", "reported", "—"]
    assert by_measure["peer, cold start, churn-lr: bare onnxruntime process / bare joblib"][0] == "0.10x"


def test_a_compiled_path_that_disagrees_or_is_slow_is_a_miss():
    rows = compiled.summary_rows(fake_results(compiled_ratio=0.3, compiled_diff=2e-6, compiled_cold=0.6))
    verdicts = {r[0]: r[3] for r in rows if "compiled path" in r[0] and not r[0].startswith("bundle")}
    assert set(verdicts.values()) == {"MISS"} and len(verdicts) == 3


def test_the_bundle_of_both_runtimes_adds_only_what_the_layer_lacks():
    # GIVEN a 192 MiB bundle whose layer has numpy, and onnxruntime's install of 62 + 54 + 1 MiB
    rows = {r["path"]: r["bytes"] for r in compiled.bundle_rows(fake_results()["bundle"])}
    # THEN the compiled path needs today's bundle, and both runtimes together add onnxruntime and protobuf only
    assert rows["scikit-learn path"] == rows["compiled path"] == 192 * MIB
    assert rows["onnxruntime alone"] == 117 * MIB
    assert rows["both runtimes in one function"] == (192 + 62 + 1) * MIB
    summary = {r[0]: r[1:] for r in compiled.summary_rows(fake_results())}
    assert summary["bundle, both runtimes in one function, unzipped"] == ["255.0 MiB", "< 250.0 MiB", "MISS"]


def test_the_section_says_what_could_not_be_measured_and_why():
    # GIVEN results where float64 onnxruntime and MLServer could not run
    text = report._demote(compiled.markdown(fake_results()), "16. ")
    # THEN the section is numbered, names each arm, and says why the missing ones are missing
    assert text.startswith("## 16. Compiled serving path and its peers")
    assert "not measured: converts, but onnxruntime cannot load it: no float64 Imputer" in text
    assert f"| {MLSERVER} |" in text and "not measured: pip install failed: a conflict" in text
    imports = "imports none of scikit-learn, scipy, pandas (`-X importtime`, one extra run; all imports 0.200 s, "
    assert imports + "aws_xray_sdk 0.100 s)" in text
    assert "artifact `models/churn-lr/1/compiled` (sha256 ab12..., 4,000 bytes)" in text
    assert "max |Δp| 2.0e-16, 0 class flips" in text
    # AND the billing table shows the scaled, rounded-up duration of each path (2.4 ms x 1769/1024 -> 5 ms)
    assert "| churn-lr | warm | handler, scikit-learn path | 2.400 ms | 5 ms |" in text
    assert "as looked up on 2026-11-30" in text


def test_the_compiled_kind_lands_in_benchmarks_md_as_section_16_with_its_summary_rows():
    # GIVEN a run's results with the compiled kind among the others
    from sklambda_infra.bench import __main__ as bench_main
    from tests.infra.test_bench import fake_results as run_results

    results = run_results(bundle_result={"measured": False, "reason": "-"}) | {"compiled": fake_results()}
    # WHEN rendered
    text = report.render(results)
    # THEN it is a kind of its own, its section follows the others, and its targets are in the summary table
    assert "compiled" in bench_main.KINDS
    assert "## 16. Compiled serving path and its peers" in text
    assert (
        "| compiled path, warm p50, logistic regression pipeline: handler / predict_proba | 0.200x | <= 0.25x | PASS |"
        in text
    )
