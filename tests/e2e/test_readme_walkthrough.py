"""The README's walkthrough ("Run it locally"), command by command, as printed, against a fresh `make local`.

The project runs from a folder that links the checkout's template, code, Makefile and venv, so `make local` there
writes its own `.sklambda/local.json` and the sample files, not the checkout's; free ports come from the
SKLAMBDA_LOCAL_*_PORT variables, so the README's `make local` needs no edit either.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import boto3
import pytest

from tests.support import ROOT

pytestmark = pytest.mark.e2e

MARKER = "<!-- walkthrough:"
PROJECT_PARTS = ("template.yaml", "functions", "layers", "events", "Makefile", "pyproject.toml", ".venv")


def walkthrough_commands(readme: str) -> list[str]:
    """The commands of the fenced block after the walkthrough marker: one per logical line (backslash continuations
    and newlines inside single quotes joined, as bash reads them), comment-only lines dropped."""
    block = readme[readme.index(MARKER) :]
    body = block[block.index("```bash\n") + len("```bash\n") :]
    body = body[: body.index("\n```")]
    commands: list[str] = []
    current = ""
    for line in body.splitlines():
        current = f"{current}\n{line}" if current else line
        if current.endswith("\\") or inside_quotes(current):
            continue
        if current.strip() and not current.lstrip().startswith("#"):
            commands.append(current)
        current = ""
    assert not current, f"unterminated command in the walkthrough: {current!r}"
    return commands


def inside_quotes(text: str) -> bool:
    """Whether `text` ends inside a quoted string, as bash reads it: quotes in a comment (`#` at a word's start, outside
    quotes, to the end of its line) do not count."""
    quote = None
    previous = " "
    in_comment = False
    for char in text:
        if in_comment:
            in_comment = char != "\n"
        elif quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and previous.isspace():
            in_comment = True
        previous = char
    return quote is not None


def run_in_one_shell(commands: list[str], cwd: Path, env: dict[str, str]) -> list[tuple[str, int, str]]:
    """Run `commands` in order in one bash (so `eval` carries over), stopping at the first failure; return
    (command, exit status, stdout) for each one that ran, and the shell's stderr in the last item's place on failure."""
    script = ["set -o pipefail"]
    for i, command in enumerate(commands):
        script += [
            f"printf '\\n@@@start {i}\\n'",
            command,
            "rc=$?",
            f"printf '\\n@@@end {i} %d\\n' $rc",
            "[ $rc = 0 ] || exit 1",
        ]
    shell = subprocess.run(
        ["bash", "-c", "\n".join(script)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    results = []
    for i, command in enumerate(commands):
        found = re.search(rf"\n@@@start {i}\n(.*)\n@@@end {i} (\d+)\n", shell.stdout, re.S)
        if found is None:
            break
        results.append((command, int(found.group(2)), found.group(1)))
    if not results or results[-1][1] != 0 or len(results) < len(commands):
        pytest.fail(f"walkthrough stopped at command {len(results)}:\n{shell.stdout[-3000:]}\n{shell.stderr[-3000:]}")
    return results


def output_of(results: list[tuple[str, int, str]], startswith: str) -> str:
    return next(out for command, _, out in results if command.startswith(startswith))


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("make") is None, reason="runs curl and make")
def test_the_readme_walkthrough_runs_as_printed_after_make_local(tmp_path):
    # GIVEN a clone-like project folder, a shell with no AWS or sklambda configuration, and `make local` started in it
    # as the README says (only the ports come from the environment)
    project = tmp_path / "clone"
    project.mkdir()
    for part in PROJECT_PARTS:
        (project / part).symlink_to(ROOT / part)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SKLAMBDA_", "MAKE", "MFLAGS"))}
    if os.environ.get("SKLAMBDA_RUNTIME_CACHE"):  # the layer's host copy, built once for the whole suite
        env["SKLAMBDA_RUNTIME_CACHE"] = os.environ["SKLAMBDA_RUNTIME_CACHE"]
    env |= {"SKLAMBDA_LOCAL_AWS_PORT": "0", "SKLAMBDA_LOCAL_API_PORT": "0", "HOME": str(tmp_path)}
    # `make local` would otherwise (re)install the venv first, from the clone: the checkout's own venv, linked here,
    # would then import sklambda from this temporary folder and its scripts would run this folder's python
    stamp = subprocess.run(["make", "-q", ".venv/.installed"], cwd=project, env=env, capture_output=True)
    assert stamp.returncode == 0, ".venv/.installed is missing or older than pyproject.toml: run `make test` once"
    readme = (ROOT / "README.md").read_text()
    assert "make local" in readme[readme.index("## Run it locally") : readme.index(MARKER)]
    details_file = project / ".sklambda" / "local.json"
    with (tmp_path / "make.log").open("w") as log:
        up = subprocess.Popen(
            ["make", "local"], cwd=project, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 180
        while not (details_file.exists() and "sample_model" in details_file.read_text()):
            assert up.poll() is None, (tmp_path / "make.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "make local did not publish the sample"
            time.sleep(0.2)
        details = json.loads(details_file.read_text())
        assert details["sample_model"] == {"name": "penguins", "version": "1", "alias": "production"}
        printed = (tmp_path / "make.log").read_text()
        assert re.search(r"Sample model +penguins version 1 -> production", printed), printed[-2000:]

        # WHEN every command of the walkthrough runs, in order, in one shell
        results = run_in_one_shell(walkthrough_commands(readme), project, env)

        # THEN each did what the README says it does, and so does the curl command `make local` printed
        pasted = subprocess.run(
            ["bash", "-c", printed[printed.rindex('    eval "$(') :].strip()],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert pasted.returncode == 0 and json.loads(pasted.stdout)["decision_threshold"]["positive_class"] == "female"
        tried = printed.split("  Try (in another shell, from this folder):\n", 1)[1].split("\n\n", 1)[0]
        listed = subprocess.run(["bash", "-c", tried], cwd=project, env=env, capture_output=True, text=True, timeout=60)
        assert listed.returncode == 0 and details["model_bucket"] in listed.stdout, listed.stderr
        assert json.loads(output_of(results, 'curl -s "$SKLAMBDA_API_URL/health"'))["status"] == "ok"
        explained = json.loads(output_of(results, "curl -s -X POST"))
        assert explained["model_name"] == "penguins" and explained["model_version"] == "1"
        assert explained["explanations"][0]["attributions"]["body_mass_g"]
        assert details["model_bucket"] in output_of(results, ".venv/bin/aws s3 ls")
        assert "penguins" in output_of(results, ".venv/bin/sklambda models list")
        assert "staging" in output_of(results, ".venv/bin/sklambda publish")
        shown = output_of(results, ".venv/bin/sklambda models show")
        assert "penguins version 2" in shown and "female when P >= 0.593 (costs)" in shown, shown
        for name in ("model.joblib", "train.csv", "holdout.csv"):
            assert (project / ".sklambda" / "sample" / name).is_file()
        # the uploaded file is scored by the stack's batch function (asynchronously: S3 -> SQS -> Lambda)
        s3 = boto3.client(
            "s3",
            endpoint_url=details["aws_endpoint_url"],
            region_name=details["region"],
            aws_access_key_id=details["access_key_id"],
            aws_secret_access_key=details["secret_access_key"],
        )
        summary_key = "scored/penguins/holdout.csv.summary.json"
        deadline = time.monotonic() + 60
        while True:
            try:
                summary = json.loads(s3.get_object(Bucket=details["data_bucket"], Key=summary_key)["Body"].read())
                break
            except s3.exceptions.NoSuchKey:
                assert time.monotonic() < deadline, "the uploaded file was not scored"
                time.sleep(0.5)
        assert summary["rows_scored"] > 0 and summary["rows_rejected"] == 0, summary
        aliases = s3.get_object(Bucket=details["model_bucket"], Key="models/penguins/aliases/production.json")
        assert json.loads(aliases["Body"].read())["version"] == "1"  # promoted to 2, then rolled back
        # the label of the prediction made with its own id is stored, and the quality check reads it (too few to judge)
        labeled = json.loads(output_of(results, 'curl -s -X POST "$SKLAMBDA_API_URL/models/penguins/feedback"'))
        assert labeled["accepted"] == 1 and labeled["stored"] is True, labeled
        checked = output_of(results, ".venv/bin/sklambda local invoke quality-check")
        assert "insufficient_labels" in checked, checked
    finally:
        subprocess.run(
            [str(project / ".venv" / "bin" / "sklambda"), "local", "down"], cwd=project, env=env, capture_output=True
        )
        try:
            up.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()
