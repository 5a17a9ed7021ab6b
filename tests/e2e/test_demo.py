"""`make demo` stays true: the demo runs end to end on the local stack and shows each step's outcome."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import ROOT


@pytest.mark.e2e
def test_demo_runs_end_to_end_on_the_local_stack():
    # GIVEN a clean environment (no AWS credentials or endpoint of the caller's); the demo starts a stack of its own,
    # in its own process, as `make demo` does: it counts versions from 1 and shortens the alias TTL
    env = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT), "LANG": "C.UTF-8"}
    if os.environ.get("SKLAMBDA_RUNTIME_CACHE"):  # a layer copy built elsewhere: reuse it as the other tests do
        env["SKLAMBDA_RUNTIME_CACHE"] = os.environ["SKLAMBDA_RUNTIME_CACHE"]
    # WHEN the demo runs as `make demo` runs it
    result = subprocess.run(
        [sys.executable, "-m", "sklambda_infra.demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240
    )
    # THEN it exits 0 after predicting, refusing the unauthenticated and malformed calls, following the alias,
    # refusing the tampered artifact, scoring an uploaded file with its bad rows quarantined, and shutting down
    out = result.stdout
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "answered by churn version 1" in out
    assert "no key      -> 403" in out
    assert "bad row     -> 422" in out and "row 0, region: missing feature" in out
    assert "now answered by version 2" in out and "after `sklambda rollback churn`: answered by version 1" in out
    assert "503: artifact of model 'churn' version '3' does not match the signed sha256" in out
    assert "production (version 1) is unaffected: 200" in out
    assert "succeeded: 4000 rows read, 3996 scored, 4 rejected" in out
    assert "line 11: age: expected an integer, got string 'forty'" in out
    assert "unshifted                      4000 rows: no_drift" in out
    assert "4000 rows: drift; drifted features: monthly_charges" in out
    # explanations add up over the local API, unusual values are warned about, bad data is refused, the card renders
    assert "= P(churn)" in out and "(linear_exact)" in out
    assert "unseen_category: category 'platinum' was not seen in training" in out
    assert "[constant_feature] 'region'" in out and "[holdout_overlap]" in out
    assert "decision threshold" in out and "chosen from costs" in out
    assert "## Feature importance" in out
    assert "Shutting down" in out
