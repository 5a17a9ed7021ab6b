"""The rollout benchmark runs and reports its rates (a small run: the real one is `--only rollout`)."""

from __future__ import annotations

import json

from sklambda_infra.bench import rollout


def test_a_small_rollout_run_reports_false_rollbacks_and_detection(monkeypatch, tmp_path):
    # GIVEN a run of a few trials
    monkeypatch.setattr(rollout, "QUICK", 8)
    # WHEN it writes its report
    assert rollout.main(["--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "rollout.json").read_text())
    # THEN each base error rate has the three rates, and the summary holds the false rollbacks to their target
    assert set(result["rates"]) == {f"{b:g}" for b in rollout.BASE_RATES}
    rows = rollout.summary_rows(result)
    assert len(rows) == 3 * len(rollout.BASE_RATES) and {r[2] for r in rows} == {"<= 5%", "reported"}
    # AND a canary with 3x a 5 % error rate is caught in most trials at 200 requests
    assert result["rates"]["0.05"]["triple_detected"] >= 0.75
    assert "| 5% |" in (tmp_path / "rollout.md").read_text()
