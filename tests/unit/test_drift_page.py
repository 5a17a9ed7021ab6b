"""A model's monitoring page and its history (monitoring.drift.history, monitoring.drift.page), and the window a drift
report states: rendered from drift reports of small synthetic windows, read back with an HTML parser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from sklambda.monitoring import charts
from sklambda.monitoring.drift import (
    DRIFT,
    INSUFFICIENT_DATA,
    NO_DRIFT,
    DriftConfig,
    check_drift,
    merge,
    prediction_distribution,
    render_html,
    render_page,
    summarize,
)
from sklambda.monitoring.drift.html import duration_text
from sklambda.publishing.baseline import feature_baseline, prediction_baseline
from sklambda.registry.schema import infer_schema
from tests.support import PAGE_TAGS, HtmlPage

END = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
CLASSES = ["no", "yes"]


class Data:
    """A classifier's baseline on three features (an id marked pii, a number, a category) and windows drawn like it."""

    def __init__(self) -> None:
        self.X = self.draw(4000, seed=0)
        self.schema = infer_schema(self.X, pii=["customer_id"])
        self.baseline = {
            "features": feature_baseline(self.X, self.schema),
            "predictions": prediction_baseline(self.predict(self.X), None, CLASSES),
        }

    @staticmethod
    def draw(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        return pd.DataFrame(
            {
                "customer_id": [f"C{seed:03d}{i:06d}" for i in range(n)],
                "income": rng.normal(50 + shift, 10, n),
                "plan": rng.choice(["basic", "premium"], n, p=[0.7, 0.3]),
            }
        )

    @staticmethod
    def predict(X: pd.DataFrame) -> np.ndarray:
        return np.where(X["income"] > 60, "yes", "no")

    def entry(self, day: int, *, version: str = "1", shift: float = 0.0, rows: int = 1000, name: str = "churn"):
        """The history entry of the window ending `day` days after END, from its drift report as the check writes
        it."""
        X = self.draw(rows, seed=day + 10, shift=shift)
        predictions = self.predict(X)
        report = check_drift(
            self.baseline, self.schema, X, predictions=predictions, model={"name": name, "version": version}
        )
        end = END + timedelta(days=day)
        distribution = prediction_distribution("classification", predictions, self.baseline["predictions"])
        document = {
            "window": {"start": (end - timedelta(hours=24)).isoformat(), "end": end.isoformat(), "hours": 24.0},
            "baseline": {"model": name, "version": version, "published_at": "2026-10-01T00:00:00+00:00"},
            **report.to_dict(),
            "rows_in_window": rows,
            "model_drifted": report.verdict == DRIFT and shift > 0,
            "prediction_distribution": distribution,
        }
        stamp = end.strftime("%Y-%m-%dT%H-%M-%SZ")
        return summarize(document, {"json": f"{stamp}.json", "html": f"{stamp}.html"})


@pytest.fixture(scope="module")
def data() -> Data:
    return Data()


def history(*entries) -> list[dict]:
    out: list[dict] = []
    for e in entries:
        out = merge(out, e, limit=30)
    return out


def test_the_page_charts_each_window_verdict_prediction_shares_and_feature_scores_with_thresholds(data):
    # GIVEN three daily windows: two like the training data, then one where income moved up by a standard deviation
    entries = history(data.entry(0), data.entry(1), data.entry(2, shift=10.0))
    # WHEN the page is rendered
    page = HtmlPage(render_page("churn", entries, limit=30, location="s3://data/reports/drift/churn/"))
    # THEN it has one chart for the verdicts, one for the predictions and one per feature, in schema order
    assert page.charts == ["verdicts", "predictions", "feature-0", "feature-1", "feature-2"]
    assert [e["verdict"] for e in entries] == [NO_DRIFT, NO_DRIFT, DRIFT]
    # AND every chart has one point per window (per class for the predictions), each tagged with its window's end
    ends = [e["window"]["end"] for e in entries]
    for chart in ("verdicts", "feature-0", "feature-1", "feature-2"):
        assert [p["data-window"] for p in page.points[chart]] == ends, chart
    assert sorted(p["data-window"] for p in page.points["predictions"]) == sorted(ends * len(CLASSES))
    # AND the verdict points are coloured by verdict, the drifted feature's point red, its threshold drawn per window
    assert [p["fill"] for p in page.points["verdicts"]] == ["#27ae60", "#27ae60", "#c0392b"]
    income = entries[-1]["features"][1]
    assert (income["name"], income["score"], income["threshold"], income["drifted"]) == ("income", "PSI", 0.1, True)
    assert [p["fill"] for p in page.points["feature-1"]][-1] == "#c0392b"
    assert "PSI" in " ".join(page.text) and "Jensen-Shannon distance" in " ".join(page.text)
    # AND the table links each window's reports, relatively (they sit beside the page)
    stamps = ["2026-11-27T06-00-00Z", "2026-11-28T06-00-00Z", "2026-11-29T06-00-00Z"]
    reports = [link for link in page.links() if not link.startswith("../")]
    assert sorted(reports) == sorted(f"{s}.{kind}" for s in stamps for kind in ("html", "json"))
    assert "s3://data/reports/drift/churn/index.html" in " ".join(page.text)
    # AND it links the model's quality page, in its sibling folder reports/quality/churn/
    assert page.attrs("a", id="quality-page")[0]["href"] == "../../quality/churn/index.html"


def test_the_page_fetches_and_runs_nothing(data):
    # GIVEN a page of two windows
    text = render_page("churn", history(data.entry(0), data.entry(1)), limit=30)
    # THEN it has only text, layout and inline SVG elements: no script, stylesheet link, image, frame or font
    assert {tag for tag, _ in HtmlPage(text).tags} <= PAGE_TAGS
    assert "<script" not in text and "url(" not in text and "@import" not in text


def test_names_from_the_data_are_escaped_everywhere(data):
    # GIVEN a window whose model, feature, class, version and reasons are HTML
    hostile = "<script>alert(1)</script>"
    entry = data.entry(0, shift=10.0)
    entry["model_version"] = f"1{hostile}"
    entry["features"][1] |= {"name": "'\"><img src=x onerror=alert(1)>", "reasons": [hostile]}
    entry["predictions"]["class_shares"] = {hostile: 0.5, "<b>yes</b>": 0.5}
    entry["drifted_features"] = [hostile]
    # WHEN rendered under a model name that is HTML too
    text = render_page(f"m{hostile}", [entry], limit=30, location=f"s3://b/{hostile}/")
    page = HtmlPage(text)
    # THEN no tag or attribute came from the data: every name is shown as text
    assert {tag for tag, _ in page.tags} <= PAGE_TAGS
    assert not [a for _, a in page.tags if "onerror" in a or "src" in a]
    assert "<script>" not in text and "<img" not in text and "<b>yes</b>" not in text
    shown = "".join(page.text)
    assert f"Monitoring — m{hostile}" in shown and "<b>yes</b>" in shown and "onerror=alert(1)>" in shown


def test_an_empty_history_says_no_window_was_checked():
    # WHEN a page is rendered without any window
    page = HtmlPage(render_page("churn", [], limit=30))
    # THEN it says so, with no chart
    assert page.charts == [] and "No window has been checked yet" in "".join(page.text)


def test_one_window_is_one_point_per_chart(data):
    # GIVEN a single window of too few rows to judge
    entry = data.entry(0, rows=100)
    # WHEN rendered
    page = HtmlPage(render_page("churn", [entry], limit=30))
    # THEN each chart has its one point, grey where a verdict could not be reached
    assert entry["verdict"] == INSUFFICIENT_DATA
    assert [len(page.points[c]) for c in ("verdicts", "feature-0", "feature-1", "feature-2")] == [1, 1, 1, 1]
    assert page.points["verdicts"][0]["fill"] == "#95a5a6"
    assert len(page.points["predictions"]) == len(CLASSES)


def test_a_version_change_midway_is_marked_on_every_chart_and_in_the_table(data):
    # GIVEN two windows of version 1, then two of version 2
    entries = history(data.entry(0), data.entry(1), data.entry(2, version="2"), data.entry(3, version="2"))
    # WHEN rendered
    text = render_page("churn", entries, limit=30)
    page = HtmlPage(text)
    # THEN every chart has one version-change line, labelled v1 before and v2 after
    for chart in page.charts:
        svg = text.split(f"id='{chart}'")[1].split("</svg>")[0]
        assert svg.count("class='version-change'") == 1, chart
        assert ">v1</text>" in svg and ">v2</text>" in svg
    # AND the table gives each window's version, newest first
    rows = [a for a in page.tags if a[0] == "tr"][1:]
    assert len(rows) == 4
    cells = "".join(page.text)
    assert cells.index("2026-11-30 06:00") < cells.index("2026-11-27 06:00")


def test_pii_features_show_only_their_null_rate_change(data):
    # GIVEN a window of customer ids (a pii feature)
    entry = data.entry(0)
    # WHEN its entry and the page are built
    (customer,) = [f for f in entry["features"] if f["name"] == "customer_id"]
    text = render_page("churn", [entry], limit=30)
    # THEN the pii feature's score is its null-rate change, and no id of the window appears anywhere
    assert (customer["type"], customer["score"]) == ("pii", "null rate change (absolute)")
    assert "C010" not in str(entry) and "C010" not in text
    assert "pii (null rate only)" in text


def test_regression_predictions_are_drawn_as_quantiles_against_the_baseline():
    # GIVEN a regressor's baseline and two windows of predictions, the second moved up
    rng = np.random.default_rng(0)
    base = prediction_baseline(rng.normal(10, 2, 4000), None, None)
    entries = []
    for day, mean in ((0, 10.0), (1, 12.0)):
        dist = prediction_distribution("regression", rng.normal(mean, 2, 3000).tolist(), base)
        end = (END + timedelta(days=day)).isoformat()
        document = {"verdict": NO_DRIFT, "model": {"version": "1"}, "prediction_distribution": dist}
        entries = merge(entries, summarize(document, {}, window_end=end), limit=30)
    # WHEN rendered
    page = HtmlPage(render_page("prices", entries, limit=30))
    # THEN each window's median is a point, the quantiles moved with the predictions, the baseline's are beside them
    medians = [e["predictions"]["quantiles"]["0.5"] for e in entries]
    assert medians == [pytest.approx(10, abs=0.2), pytest.approx(12, abs=0.2)]
    assert entries[0]["predictions"]["baseline"]["quantiles"]["0.5"] == pytest.approx(10, abs=0.2)
    assert len(page.points["predictions"]) == 2
    assert "baseline median" in "".join(page.text)


def test_a_classifier_with_many_classes_shows_the_most_frequent_and_the_rest_together():
    # GIVEN a window predicting twelve classes
    labels = [f"class-{i % 12}" for i in range(1200)] + ["class-0"] * 600
    dist = prediction_distribution("classification", labels, {"class_frequencies": {"class-0": 0.5}})
    entry = summarize({"verdict": NO_DRIFT, "prediction_distribution": dist}, {}, window_end=END.isoformat())
    # WHEN rendered
    page = HtmlPage(render_page("many", [entry], limit=30))
    # THEN eight series are drawn: the seven most frequent classes and the others folded into one
    assert len(page.points["predictions"]) == 8
    assert dist["class_shares"]["class-0"] == pytest.approx(700 / 1800)
    assert "(other classes)" in "".join(page.text)


def test_the_history_orders_windows_by_end_replaces_a_rechecked_window_and_keeps_the_last_n(data):
    # GIVEN windows checked out of order, one of them twice
    first, second, third = data.entry(0), data.entry(1), data.entry(2)
    rechecked = data.entry(1, shift=10.0)
    # WHEN merged with a limit of two
    entries = []
    for e in (third, first, second, rechecked):
        entries = merge(entries, e, limit=2)
    # THEN the two latest windows are kept, in order, the recheck in place of the first check of its window
    assert [e["window"]["end"] for e in entries] == [second["window"]["end"], third["window"]["end"]]
    assert entries[0]["verdict"] == DRIFT


def test_the_html_report_states_its_window_and_baseline_and_links_the_monitoring_page(data):
    # GIVEN a report of one window
    report = check_drift(data.baseline, data.schema, data.draw(800, seed=3), config=DriftConfig())
    window = {"start": "2026-11-26T06:00:00+00:00", "end": "2026-11-27T06:00:00+00:00", "hours": 24.0,
              "rows_in_window": 812, "rows_compared": 800}  # fmt: skip
    reference = {"model": "churn", "version": "3", "published_at": "2026-10-01T12:00:00+00:00"}
    # WHEN it is rendered with its window, the baseline's version and the page's link
    text = render_html(report, data.baseline, window=window, reference=reference, page_href="index.html")
    page = HtmlPage(text)
    # THEN it states both bounds, that the end is excluded, the hours and rows, and the version compared with
    shown = " ".join("".join(page.text).split())
    assert "Window: 2026-11-26T06:00:00+00:00 to 2026-11-27T06:00:00+00:00 (UTC; the end is not in it)" in shown
    assert "24 h: 812 captured rows in the window, 800 compared" in shown
    assert "baseline of churn version 3, published 2026-10-01T12:00:00+00:00" in shown
    assert page.links() == ["index.html"]


@pytest.mark.parametrize(
    ("ends", "labels"),
    [
        (["2026-11-26T06:00:00+00:00", "2026-11-27T06:00:00+00:00"], ["11-26", "11-27"]),
        (["2026-11-27T06:00:00+00:00", "2026-11-27T07:00:00+00:00"], ["11-27 06:00", "11-27 07:00"]),
        (["2026-11-30T14:15:14+00:00", "2026-11-30T14:15:40+00:00"], ["11-30 14:15:14", "11-30 14:15:40"]),
    ],
)
def test_window_labels_are_the_shortest_that_tell_the_windows_apart(ends, labels):
    # GIVEN windows ending on different days, hours of one day, or seconds apart (on-demand checks)
    entries = [{"window": {"end": end}} for end in ends]
    # THEN each x-axis label is distinct, and no longer than it needs to be
    assert charts.axis_labels(entries) == labels


@pytest.mark.parametrize(
    ("hours", "text"), [(24.0, "24 h"), (1.5, "1.5 h"), (0.2, "12 min"), (4.0e-4, "1.44 s"), (None, "?")]
)
def test_a_windows_length_reads_in_hours_minutes_or_seconds_never_in_scientific_notation(hours, text):
    assert duration_text(hours) == text
