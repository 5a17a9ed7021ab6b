"""`make demo` stays true: the demo runs end to end on the local stack and shows each step's outcome."""

from __future__ import annotations

import os
import re
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
    # THEN it exits 0 after training on the real penguins, predicting, refusing the unauthenticated and malformed
    # calls, following the alias, refusing the tampered artifact, scoring an uploaded file with its bad rows
    # quarantined, and shutting down
    out = result.stdout
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "333 adult penguins" in out and "individual_id is PII" in out and "nulls: delta_15n" in out
    assert "answered by penguins version 1" in out
    assert "no key      -> 403" in out
    assert "bad row     -> 422" in out and "row 0, island: missing feature" in out
    assert "row 0, body_mass_g: expected an integer, got string 'heavy'" in out
    assert "now answered by version 2" in out and "after `sklambda rollback penguins`: answered by version 1" in out
    assert "503: compiled artifact of model 'penguins' version '3' does not match the signed sha256" in out
    assert "served by the compiled evaluator" in out and "0 class flips" in out
    assert "served by scikit-learn; not compiled: " in out
    assert "production (version 1) is unaffected: 200" in out
    assert "succeeded: 4000 rows read, 3996 scored, 4 rejected" in out
    assert "line 11: body_mass_g: expected an integer, got string 'heavy'" in out
    assert "line 21: flipper_length_mm: expected an integer, got 190.5" in out
    assert "drawn with replacement from the 333 real birds" in out
    # the drift check: traffic resampled from every island is like the training data, one island's is not
    assert re.search(r"all islands +4000 rows: no_drift; drifted features: none", out)
    biscoe = re.search(r"Biscoe only +4000 rows: drift; drifted features: (.*)", out)
    assert biscoe and {"island", "species", "body_mass_g"} <= set(biscoe.group(1).split(", "))
    assert re.search(r"window \d\d:\d\d:\d\d-\d\d:\d\d:\d\d UTC; report: s3://", out)
    page = re.search(r"downloaded with their reports, to open in a browser: (\S+)", out)
    assert page and "reports/drift/penguins/index.html" in out
    html = (ROOT / page.group(1)).read_text()
    links = set(re.findall(r"href=[\"']([^\"'#]+\.html)[\"']", html))
    reports = {x for x in links if not x.startswith("../")}
    # the drift step's two windows and the two concept-drift windows, one report each: consecutive windows never
    # share a report; and the page links the quality page, beside it in the download
    windows = re.findall(r"window (\d\d:\d\d:\d\d)-(\d\d:\d\d:\d\d) UTC", out)
    assert len(windows) == 2 and windows[0][1] == windows[1][0] and len(reports) == 4
    folder = (ROOT / page.group(1)).parent
    assert "<svg" in html and all(folder.joinpath(x).is_file() for x in links)
    assert "../../quality/penguins/index.html" in links
    # ground truth and model quality: labels in through the API and a file (a bad class quarantined); a normal week
    # is ok; a covariate shift lowers the estimate before labels; a concept drift leaves the drift check quiet, is
    # degraded twice, names the island behind it and raises PerformanceDegraded
    assert "POST /models/penguins/feedback: 201, 300 labels" in out
    assert "302 rows, 301 stored (one for an id never served: it joins nothing), 1 rejected" in out
    assert "label: 'unicorn' is not a class of this model" in out
    assert re.search(r"a normal week +quality: ok \(600 labeled, join rate 99\.8%\)", out)
    shifted = r"mid-weight birds +quality: insufficient_labels .* estimated 0\.\d+ .* estimate degraded"
    assert re.search(shifted, out) and "degraded (estimated): accuracy" in out
    assert out.count("drift check, same window: no_drift") == 2
    concept = re.findall(r"Dream's new team, \d of 2 +quality: degraded \(600 labeled.*accuracy realized (0\.\d+)", out)
    assert len(concept) == 2 and all(float(a) < 0.85 for a in concept)
    dream = re.findall(r"accuracy per island \(gap flagged\): .*Dream (0\.\d+)", out)
    assert dream and all(float(a) < 0.7 for a in dream)
    alarm = r"model degraded \(2 windows in a row, pooled drop confirmed\): PerformanceDegraded event \S{8}"
    assert re.search(alarm, out)
    # explanations add up over the local API, unusual values are warned about, bad data is refused, the card renders
    assert "= P(female)" in out and "(linear_exact)" in out
    assert "unseen_category: category 'Deception' was not seen in training" in out
    assert "body_mass_g: out_of_range: 12000" in out and "flipper_length_mm: unexpected_null" in out
    assert "[constant_feature] 'island'" in out and "[holdout_overlap]" in out
    assert re.search(r"decision threshold 0\.\d+ on P\(female\), chosen from costs FP=3", out)
    # code shipped with a model is served as in memory; a notebook tweak the shipped file lacks is refused
    assert "ships ['feature_utils.py']" in out and "max difference 0.0e+00" in out
    assert "[parity] served probabilities differ" in out
    assert "versions of penguins-capped: ['1'] (nothing stored)" in out
    assert "## Feature importance" in out
    # safe updates on churn: a concept drift degrades it twice; PerformanceDegraded starts RetrainStateMachine, whose
    # candidate is refit on the prefix and the labeled captures, passes the gate, serves a sticky 10 % canary the
    # rollout check finds healthy, is approved and promoted; then a worse canary is rolled back with its reason
    churn = re.findall(r"competitor, week \d +quality: degraded \(600 labeled.*accuracy realized (0\.\d+)", out)
    assert len(churn) == 2 and all(float(a) < 0.8 for a in churn)
    assert len(re.findall(alarm, out)) == 2
    assert re.search(r"run \S+ started by the event", out)
    assert re.search(r"assemble: \d+ training rows \(2400 from the prefix, 1200 labeled captures\)", out)
    assert "published as v2 through publish's quality and parity gates" in out
    assert re.search(r"gate: +replace: roc_auc: challenger 0\.\d+ vs champion 0\.\d+", out)
    assert "canary:   v2 takes 10 % of the callers, sticky per caller" in out
    shares = re.search(r"350 requests of 12 customers: v1 (\d+) rows \(\d+%\), v2 (\d+) rows", out)
    assert shares and 0.05 < int(shares.group(2)) / 4200 < 0.15
    assert re.search(r"rollout check \(RolloutCheckFunction, round \d+\): healthy: v1 \d+ requests", out)
    assert "churn: run" in out and " approved" in out
    assert re.search(r"run succeeded in \d+\.\d s: production -> v2 \(events ModelPromoted, RetrainingSucceeded\)", out)
    assert "production -> 2, canary 3 takes 30 % of the callers" in out
    assert re.search(r"roc_auc 0\.\d+ on the canary vs 0\.\d+: drop .* more than the bound 0\.02", out)
    assert re.search(
        r"rolled back: production is v2 for everyone, the canary is gone; CanaryRolledBack event \S{8}", out
    )
    assert re.search(r"v3: a careless candidate, .* its card says ROC AUC 0\.\d+", out)
    assert "the next answer: v2" in out
    assert "Shutting down" in out
    assert "\x1b" not in out, "a piped demo log has no terminal escape codes"
