"""The gate benchmark runs and reports both rates for each population (a small run: the real one is make bench)."""

from __future__ import annotations

import json

from sklambda_infra.bench import gate


def test_a_small_gate_run_reports_both_rates_of_each_population(monkeypatch, tmp_path):
    # GIVEN a small calibration sample (the bisection's AUCs are then rougher, which this test does not judge)
    monkeypatch.setattr(gate, "CALIBRATION_ROWS", 20_000)
    # WHEN a quick run writes its report
    assert gate.main(["--quick", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "gate.md").read_text()
    # THEN each population has its better and equal rows, and the summary names both rates against their targets
    for name in gate.POPULATIONS:
        assert f"| {name} |" in text
    result = json.loads((tmp_path / "gate.json").read_text())
    rows = gate.summary_rows(result)
    assert len(rows) == 2 * len(gate.POPULATIONS) and {r[2] for r in rows} == {">= 95%", "<= 5%"}
    # AND a refit challenger that is truly better replaces the champion in most quick trials
    assert result["populations"]["refit"]["better"]["replaced"] >= 0.9
