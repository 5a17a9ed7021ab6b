"""`sklambda local up` publishes the sample model (Palmer penguins) and prints a curl command that predicts with it.

The stack runs as `make local` runs it (its own process, the project's template.yaml), in a folder of its own that
links the project's template, functions and layers, so its `.sklambda/local.json` is not the checkout's.
`--no-sample` is covered by tests/e2e/test_local_stack.py (the fixture template would get the sample otherwise).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.support import ROOT

PROJECT_PARTS = ("template.yaml", "functions", "layers", "events")


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("curl") is None, reason="runs the printed curl command")
def test_local_up_publishes_the_sample_to_production_and_its_printed_curl_predicts(tmp_path):
    # GIVEN a project folder with the project's template and code, and a shell environment without any AWS or
    # sklambda configuration
    project = tmp_path / "project"
    project.mkdir()
    for part in PROJECT_PARTS:
        (project / part).symlink_to(ROOT / part)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SKLAMBDA_"))}
    if os.environ.get("SKLAMBDA_RUNTIME_CACHE"):  # the layer's host copy built elsewhere, as the other tests reuse it
        clean["SKLAMBDA_RUNTIME_CACHE"] = os.environ["SKLAMBDA_RUNTIME_CACHE"]
    out_file, err_file = tmp_path / "up.out", tmp_path / "up.err"

    # WHEN `sklambda local up` starts there, as `make local` runs it
    with out_file.open("w") as out, err_file.open("w") as err:
        up = subprocess.Popen(
            [sys.executable, "-m", "sklambda_infra.cli", "local", "up", "--aws-port", "0", "--api-port", "0"],
            cwd=project,
            env=clean,
            stdout=out,
            stderr=err,
            text=True,
        )
    try:
        deadline = time.monotonic() + 120
        while "-d '" not in out_file.read_text():
            assert up.poll() is None, out_file.read_text()[-2000:] + err_file.read_text()[-3000:]
            assert time.monotonic() < deadline, "the sample's curl command was not printed"
            time.sleep(0.2)
        printed = out_file.read_text()

        # THEN it names the sample model, promoted to production, in its output and in .sklambda/local.json
        assert re.search(r"Sample model +penguins version 1 -> production", printed), printed[-2000:]
        details = json.loads((project / ".sklambda" / "local.json").read_text())
        assert details["sample_model"] == {"name": "penguins", "version": "1", "alias": "production"}

        # WHEN a shell pastes the printed commands (eval of `local env`, then curl), from the project folder
        commands = printed[printed.index('    eval "$(') :].strip()
        shell = subprocess.run(
            ["bash", "-c", commands], cwd=project, env=clean, capture_output=True, text=True, timeout=60
        )

        # THEN the API answers with the sample's prediction, probabilities and cost-chosen decision
        assert shell.returncode == 0, shell.stderr
        answer = json.loads(shell.stdout)
        assert answer["model_name"] == "penguins" and answer["model_version"] == "1"
        assert answer["predictions"][0] in ("female", "male") and set(answer["probabilities"][0]) == {"female", "male"}
        assert answer["decision_threshold"]["positive_class"] == "female" and len(answer["decisions"]) == 1
    finally:
        up.send_signal(signal.SIGTERM)
        up.wait(timeout=30)
    assert up.returncode == 0, err_file.read_text()[-3000:]
