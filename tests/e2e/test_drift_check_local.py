"""`sklambda local invoke drift-check`: the drift check function run against the local stack's resources, and the
monitoring page it writes, rendered by a headless browser where one is installed."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest

from sklambda_infra import cli, sample
from sklambda_infra.local import cli as local_cli
from tests.support import HtmlPage, point_at_stack, publish_to_stack, write_capture

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
def test_local_invoke_runs_the_drift_check_against_the_running_stack(
    nothing_captured, churn, logistic_model, monkeypatch, capsys
):
    stack = nothing_captured
    details = stack.details
    point_at_stack(stack, monkeypatch)
    # GIVEN churn in production and an hour-old capture of 800 rows in the stack's data bucket
    card = publish_to_stack(stack, churn, logistic_model)
    data_bucket = details["buckets"]["DataBucket"]
    s3 = boto3.client("s3", endpoint_url=stack.aws_endpoint_url)
    write_capture(
        s3,
        data_bucket,
        logistic_model,
        sample.churn_data(800, seed=31)[0],
        at=datetime.now(UTC) - timedelta(hours=1),
        version=card.version,
    )
    # WHEN `sklambda local invoke drift-check` runs (this stack's details stand for .sklambda/local.json)
    monkeypatch.setattr(local_cli, "read_details", lambda root: details)
    capsys.readouterr()
    code = cli.main(["local", "invoke", "drift-check", "--project-root", str(ROOT), "--model", "churn"])
    # THEN it prints the check of churn over the last day, whose report is in the stack's data bucket
    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary
    (result,) = summary["results"]
    assert (result["model"], result["rows"], result["status"]) == ("churn", 800, "checked")
    s3.head_object(Bucket=data_bucket, Key=result["reports"]["json"])
    # AND an unknown model is a failed result and a non-zero exit, not a crash
    code = cli.main(["local", "invoke", "drift-check", "--project-root", str(ROOT), "--model", "nosuchmodel"])
    assert code == 1
    assert json.loads(capsys.readouterr().out)["results"][0]["error"]["code"] == "model_not_found"
    # AND without --model it checks every model with the default alias, as the schedule does, whatever their names
    publish_to_stack(stack, churn, logistic_model, name="retention")
    code = cli.main(["local", "invoke", "drift-check", "--project-root", str(ROOT)])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0, summary
    assert {"churn", "retention"} <= {r["model"] for r in summary["results"]}
    assert "nosuchmodel" not in {r["model"] for r in summary["results"]}


CHROMIUM = Path("/usr/bin/chromium")


def render_headless(page: Path, profile: Path) -> subprocess.CompletedProcess:
    """The DOM Chromium builds from `page` (a file), headless, offline, with a throwaway profile."""
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr",
         f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip


@pytest.mark.e2e
def test_drift_checks_over_three_windows_write_a_monitoring_page_that_a_browser_renders(
    nothing_captured, churn, logistic_model, monkeypatch, tmp_path
):
    stack = nothing_captured
    details = stack.details
    point_at_stack(stack, monkeypatch)
    # GIVEN a model of its own in production, and 800 captured rows in each of three consecutive hours, the last with
    # dearer plans
    card = publish_to_stack(stack, churn, logistic_model, name="monitored")
    data_bucket = details["buckets"]["DataBucket"]
    s3 = boto3.client("s3", endpoint_url=stack.aws_endpoint_url)
    end = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
    ends = [end + timedelta(hours=h) for h in range(3)]
    for h, window_end in enumerate(ends):
        X = sample.churn_data(800, seed=70 + h)[0]
        if h == 2:
            X["monthly_charges"] = X["monthly_charges"] + 15
        write_capture(s3, data_bucket, logistic_model, X, name="monitored", version=card.version,
                      at=window_end - timedelta(minutes=30), part=f"hour-{h}")  # fmt: skip
    # WHEN the stack's drift check function checks each hour (its warm worker, as the stack's scheduler runs it;
    # `sklambda local invoke drift-check` starts a new one, see the test above)
    for window_end in ends:
        event = {"model": "monitored", "window_hours": 1, "end": window_end.isoformat()}
        (result,) = stack.runners["DriftCheckFunction"].invoke(event).result["results"]
        assert result["status"] == "checked", result
    # THEN the model's folder in the data bucket holds the page and every report it links (downloaded here as a user
    # would: `aws s3 cp --recursive s3://<bucket>/reports/drift/monitored/ .`)
    assert result["reports"]["page"] == "reports/drift/monitored/index.html"
    assert result["window"]["end_exclusive"] and result["window"]["hours"] == 1.0
    folder = tmp_path / "monitored"
    folder.mkdir()
    for item in s3.list_objects_v2(Bucket=data_bucket, Prefix="reports/drift/monitored/")["Contents"]:
        name = item["Key"].rsplit("/", 1)[1]
        (folder / name).write_bytes(s3.get_object(Bucket=data_bucket, Key=item["Key"])["Body"].read())
    text = (folder / "index.html").read_text()
    page = HtmlPage(text)
    reports = [link for link in page.links() if not link.startswith("../")]  # not the quality page's folder
    assert len(reports) == 6 and all((folder / link).is_file() for link in reports)
    assert [p["data-window"] for p in page.points["verdicts"]] == [e.isoformat() for e in ends]
    assert all("index.html" in HtmlPage((folder / link).read_text()).links() for link in reports if ".html" in link)
    # AND a real browser, where one is installed, renders its charts: every SVG chart and each window's points
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed (apt-get install chromium): the page was checked as text only")
    rendered = render_headless(folder / "index.html", tmp_path / "profile")
    dom = HtmlPage(rendered.stdout)
    assert dom.charts == page.charts and len(dom.charts) == 2 + len(card.input_schema.required_names)
    for chart in dom.charts:
        assert {p["data-window"] for p in dom.points[chart]} == {e.isoformat() for e in ends}, chart
    assert [p["fill"] for p in dom.points["verdicts"]][-1] == "#c0392b"  # the dearer hour drifted
    assert "<script" not in rendered.stdout and "Uncaught" not in rendered.stderr
