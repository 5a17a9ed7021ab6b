"""A model's quality page and one window's quality report, each one self-contained HTML file: inline CSS and SVG
(monitoring.charts, shared with the drift page), no script, font, stylesheet or image fetched, so they read the same
from the bucket, from a downloaded folder, or offline. Every text taken from data is HTML-escaped; a string UTF-8
cannot encode is written as its escape (errors.printable).

The page, oldest window on the left, a dashed line and "v<version>" where the model version changes:
- verdict per window: the labeled rows, coloured by verdict (grey: too few labels, never shown as degraded), the
  windows where the model was declared degraded ringed;
- one chart per metric: the realized value with its confidence interval, the estimated value (CBPE, before labels)
  with its interval, and the card's holdout value as a dashed reference per window;
- one chart per segment feature: the main metric (history.SEGMENT_METRIC) of each group.

Domain only: the page's entries come from model_quality.history, the report from monitoring.quality_check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from sklambda.errors import printable
from sklambda.monitoring.charts import Plot, card_css, count_text, number_text, page_links, verdict_chart, when
from sklambda.monitoring.drift.html import duration_text
from sklambda.monitoring.drift.page import CLASS_COLOURS
from sklambda.monitoring.model_quality.degradation import DEGRADED, INSUFFICIENT_LABELS, NO_REFERENCE, OK

INSUFFICIENT_ROWS = "insufficient_rows"  # quality_check's estimated verdict for too few served predictions
VERDICT_COLOUR = {DEGRADED: "#c0392b", OK: "#27ae60", INSUFFICIENT_LABELS: "#95a5a6", INSUFFICIENT_ROWS: "#95a5a6"}
REALIZED_COLOUR, ESTIMATED_COLOUR, REFERENCE_COLOUR = "#4c72b0", "#dd8452", "#555"
# How the page names each metric (model_quality.metrics' names are the JSON's).
LABELS = {
    "accuracy": "Accuracy",
    "balanced_accuracy": "Balanced accuracy",
    "precision": "Precision (positive class)",
    "recall": "Recall (positive class)",
    "f1": "F1 (positive class)",
    "roc_auc": "ROC AUC",
    "log_loss": "Log loss",
    "brier": "Brier score",
    "ece": "Expected calibration error",
    "cost_per_row": "Business cost per row",
    "mae": "MAE",
    "rmse": "RMSE",
    "r2": "R²",
    "mean_bias": "Mean bias (prediction - truth)",
}
CSS = card_css("metric", "degraded")


def _head(title: str) -> list[str]:
    return [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{title}</title><style>{CSS}</style></head><body>",
        f"<h1>{title}</h1>",
    ]


def _badge(verdict: Any) -> str:
    colour = VERDICT_COLOUR.get(str(verdict), "#333")
    return f"<span class='verdict' style='background:{colour}'>{escape(str(verdict))}</span>"


def _verdict_text(verdict: Any, rows: Any, min_rows: Any) -> str:
    if verdict == INSUFFICIENT_LABELS:
        return (
            f"too few labels: {count_text(rows)} labeled rows, at least {count_text(min_rows)} are needed to judge "
            "(not a degradation)"
        )
    return f"{count_text(rows)} labeled rows"


# --- one window's report -------------------------------------------------------------------------------------------


def render_report(document: Mapping[str, Any]) -> str:
    """One window's quality report (the JSON report `document` of monitoring.quality_check) as a page a person can
    read: the window, the verdict, each realized metric against its holdout value, the estimated metrics, the join,
    the versions and the segments. Returns the HTML text (valid UTF-8 whatever the data)."""
    model = document.get("model") or {}
    title = f"Model quality — {escape(str(model.get('name')))} v{escape(str(model.get('version')))}"
    window = document.get("window") or {}
    realized = document.get("realized") or {}
    join = document.get("join") or {}
    min_rows = (realized.get("config") or {}).get("min_labeled_rows")
    parts = _head(title)
    parts.append(
        f"<p id='window'>Labels that arrived from <b>{escape(str(window.get('start')))}</b> to "
        f"<b>{escape(str(window.get('end')))}</b> (UTC; the end is not in it), "
        f"{escape(duration_text(window.get('hours')))}, joined with the predictions captured since "
        f"{escape(str(window.get('predictions_from')))} "
        f"({escape(number_text(window.get('lookback_days')))} days of lookback).</p>"
    )
    parts.append(
        f"<p id='verdict'>{_badge(document.get('verdict'))} "
        f"{escape(_verdict_text(document.get('verdict'), document.get('labeled_rows'), min_rows))}; "
        + (
            "<span class='degraded'>model degraded</span> (degraded in consecutive windows)"
            if document.get("model_degraded")
            else "model not degraded"
        )
        + ".</p>"
    )
    parts.append(
        f"<p id='join'>{count_text(join.get('labels'))} labels, {count_text(join.get('matched'))} joined with their "
        f"prediction (join rate {_percent(join.get('join_rate'))}); by version: "
        + escape(", ".join(f"v{v}: {n:,}" for v, n in (join.get("by_version") or {}).items()) or "none")
        + ".</p>"
    )
    parts.append(
        "<p><a id='monitoring-page' href='index.html'>Quality page</a>: this model's recent windows as charts. "
        f"<a id='drift-page' href='{escape(str((document.get('drift_page') or {}).get('href')))}'>Drift page</a>.</p>"
    )
    parts += ["<h2>Realized metrics</h2>", _metric_table(realized.get("metrics") or [], reference="holdout")]
    estimated = document.get("estimated") or {}
    parts.append("<h2>Estimated metrics (CBPE, before labels)</h2>")
    if estimated.get("available"):
        parts.append(
            f"<p>{_badge(estimated.get('verdict'))} on {count_text(estimated.get('rows'))} predictions served in the "
            "window" + ("; <span class='degraded'>estimated drop in consecutive windows</span>" if estimated.get(
                "estimated_degraded") else "") + ".</p>"
        )  # fmt: skip
        parts.append(_metric_table(estimated.get("metrics") or [], reference="holdout"))
    else:
        parts.append(f"<p class='muted'>Not available: {escape(str(estimated.get('reason')))}.</p>")
    beside = document.get("estimated_vs_realized")
    if beside:
        rows = "".join(
            f"<tr><td>{escape(LABELS.get(name, name))}</td><td>{number_text(v.get('estimated'))}</td>"
            f"<td>{number_text(v.get('realized'))}</td></tr>"
            for name, v in beside.items()
        )
        parts.append(
            "<h3>Estimated beside realized, on the labeled rows</h3>"
            f"<table id='beside'><tr><th>metric</th><th>estimated</th><th>realized</th></tr>{rows}</table>"
        )
    versions = document.get("versions") or []
    if len(versions) > 1:
        parts.append("<h2>Per version</h2>")
        for v in versions:
            parts.append(f"<h3>v{escape(str(v.get('version')))}: {count_text(v.get('labeled_rows'))} labeled rows</h3>")
            metrics = [{"name": n, **m} for n, m in (v.get("metrics") or {}).items()]
            parts.append(_metric_table(metrics, reference=None))
    parts += ["<h2>Segments</h2>", _segments(document.get("segments"))]
    parts.append("</body></html>")
    return printable("\n".join(parts))


def _percent(v: Any) -> str:
    return f"{v:.1%}" if isinstance(v, int | float) and not isinstance(v, bool) else "—"


def _metric_table(metrics: Sequence[Mapping[str, Any]], *, reference: str | None) -> str:
    head = "<tr><th>metric</th><th>value</th><th>95% interval</th>"
    if reference:
        head += f"<th>{reference}</th><th>drop</th><th>tolerance</th><th>p</th><th>verdict</th>"
    rows = [f"<table class='metrics'>{head}</tr>"]
    for m in metrics:
        name = str(m.get("name"))
        row = (
            f"<tr><td>{escape(LABELS.get(name, name))}</td><td>{number_text(m.get('value'))}</td>"
            f"<td>{number_text(m.get('lower'))} to {number_text(m.get('upper'))}</td>"
        )
        if reference:
            verdict = m.get("verdict")
            row += (
                f"<td>{number_text(m.get('reference'))}</td><td>{number_text(m.get('drop'))}</td>"
                f"<td>{number_text(m.get('tolerance'))}</td><td>{number_text(m.get('p_adjusted'))}</td>"
                f"<td>{_badge(verdict) if verdict != NO_REFERENCE else 'no holdout value'}</td>"
            )
        rows.append(row + "</tr>")
    rows.append("</table>")
    return "".join(rows)


def _segments(section: Mapping[str, Any] | None) -> str:
    if not section:
        return "<p class='muted'>No segment: the card names no segment feature, or no row was labeled.</p>"
    out = []
    for feature in section.get("features") or []:
        sensitive = " (sensitive)" if feature.get("sensitive") else ""
        out.append(f"<h3>{escape(str(feature.get('name')))}{sensitive}</h3>")
        names = sorted({k for g in feature.get("groups") or [] for k in (g.get("metrics") or {})})
        rows = [
            "<table class='segment'><tr><th>group</th><th>rows</th>"
            + "".join(f"<th>{escape(n)}</th>" for n in names)
            + "</tr>"
        ]
        for g in feature.get("groups") or []:
            small = " <span class='muted'>(too small)</span>" if g.get("too_small") else ""
            rows.append(
                f"<tr><td>{escape(str(g.get('group')))}{small}</td><td>{count_text(g.get('rows'))}</td>"
                + "".join(f"<td>{number_text((g.get('metrics') or {}).get(n))}</td>" for n in names)
                + "</tr>"
            )
        rows.append("</table>")
        gaps = [
            f"<li{' class=degraded' if gap.get('flagged') else ''}>{escape(str(gap.get('name')))}: gap "
            f"{number_text(gap.get('gap'))} between {escape(str(gap.get('highest')))} and "
            f"{escape(str(gap.get('lowest')))}{_interval_text(gap)}; bound {number_text(gap.get('bound'))}"
            f"{_flag_text(gap)}</li>"
            for gap in feature.get("gaps") or []
        ]
        if not gaps:  # fairness leaves out groups under its minimum: with fewer than two left there is no gap
            small = section.get("min_group_rows")
            gaps = [f"<li class='muted'>no gap: fewer than 2 groups of at least {count_text(small)} labeled rows</li>"]
        out.append("".join(rows) + f"<ul>{''.join(gaps)}</ul>")
    return "".join(out)


def _interval_text(gap: dict) -> str:
    interval = gap.get("interval")
    return f" (95% interval {number_text(interval[0])} to {number_text(interval[1])})" if interval else ""


def _flag_text(gap: dict) -> str:
    """Flagged, or why a gap above its bound is not (fairness's rule: the whole interval must lie above it)."""
    if gap.get("flagged"):
        return " — flagged"
    bound, value = gap.get("bound"), gap.get("gap")
    if bound is not None and value is not None and value > bound:
        return " — not flagged: its interval reaches below the bound (too few rows to tell)"
    return ""


# --- the page over the last windows --------------------------------------------------------------------------------


def render_page(
    model: str,
    entries: Sequence[Mapping[str, Any]],
    *,
    limit: int,
    location: str = "",
    generated_at: str | None = None,
) -> str:
    """The quality page of `model` from its history `entries` (model_quality.history.summarize's, oldest first).

    limit: how many windows the history keeps. location: where the page and its reports live (shown). generated_at:
    ISO 8601 time of the run that wrote it. Links to the reports are relative (beside the page), and so is the link to
    the model's drift page (charts.page_links). Returns the HTML text (valid UTF-8 whatever the data).
    """
    title = f"Model quality — {escape(model)}"
    parts = [*_head(title), page_links(model, "quality")]
    if not entries:
        parts.append("<p>No window has been checked yet: the quality check writes this page after each run.</p>")
    else:
        latest = entries[-1]
        parts.append(
            f"<p>{len(entries)} window(s) checked (the last {limit:,} are kept), to "
            f"{escape(when(latest['window'].get('end')))} UTC; oldest on the left. Latest: {_badge(latest['verdict'])} "
            f"v{escape(str(latest.get('model_version')))}, "
            f"{escape(_verdict_text(latest['verdict'], latest.get('labeled_rows'), None).split(',')[0])}; "
            + ("<span class='degraded'>model degraded</span>" if latest.get("model_degraded") else "model not degraded")
            + ".</p>"
        )
        where = f"{escape(location)}{'index.html'}" if location else "index.html"
        stamp = f" Written {escape(when(generated_at))} UTC." if generated_at else ""
        parts.append(f"<p class='muted'>This page: {where}. The reports it links are beside it.{stamp}</p>")
        parts += ["<h2>Verdict per window</h2>", _verdict_chart(entries)]
        parts += ["<h2>Metrics</h2>", _metric_charts(entries)]
        parts += ["<h2>Segments</h2>", _segment_charts(entries)]
        parts += ["<h2>Windows</h2>", _table(entries)]
    parts.append("</body></html>")
    return printable("\n".join(parts))


def _window_text(entry: Mapping[str, Any]) -> str:
    window = entry.get("window") or {}
    return f"{when(window.get('start'))} to {when(window.get('end'))} UTC"


def _verdict_chart(entries: Sequence[Mapping[str, Any]]) -> str:
    def tip(e: Mapping[str, Any], n: int) -> str:
        degraded = ", ".join(map(str, e.get("degraded_metrics") or [])) or "none"
        return (
            f"{_window_text(e)} · v{e.get('model_version')} · {e['verdict']} · {n:,} labeled rows · join rate "
            f"{_percent(e.get('join_rate'))} · degraded metrics: {degraded}"
            + (" · MODEL DEGRADED" if e.get("model_degraded") else "")
        )

    key = (
        "".join(f"<span style='background:{c}'></span>{escape(v)}" for v, c in list(VERDICT_COLOUR.items())[:3])
        + " — bar height: labeled rows; grey: too few labels to judge (never degraded); a ringed point: model degraded"
        " (degraded in consecutive windows)"
    )
    rows = [e.get("labeled_rows") if isinstance(e.get("labeled_rows"), int) else 0 for e in entries]
    return verdict_chart(
        entries, rows, VERDICT_COLOUR, tip, lambda e: bool(e.get("model_degraded")),
        "Labeled rows and verdict per window", key,
    )  # fmt: skip


def _metric_charts(entries: Sequence[Mapping[str, Any]]) -> str:
    names: list[str] = []
    for e in reversed(entries):
        for name in [*(e.get("metrics") or {}), *(e.get("estimated") or {})]:
            if name not in names:
                names.append(name)
    if not names:
        return "<p class='muted'>No metric was computed.</p>"
    key = (
        f"<p class='key muted'><span style='background:{REALIZED_COLOUR}'></span>realized (labels), with its 95% "
        f"interval<span style='background:{ESTIMATED_COLOUR}'></span>estimated (CBPE, before labels), with its "
        "interval — dashes: the card's holdout value; red points: windows where the metric degraded; grey points: "
        "too few labels (or served predictions) to judge, never a degradation; no point: undefined (e.g. one class)."
        "</p>"
    )
    charts = "".join(_metric_chart(entries, n, k) for k, n in enumerate(names))
    return key + "<div class='grid'>" + charts + "</div>"


def _metric_chart(entries: Sequence[Mapping[str, Any]], name: str, index: int) -> str:
    real = [(e.get("metrics") or {}).get(name) or {} for e in entries]
    est = [(e.get("estimated") or {}).get(name) or {} for e in entries]
    values = [
        v
        for d in (*real, *est)
        for v in (d.get("value"), d.get("lower"), d.get("upper"), d.get("reference"))
        if isinstance(v, int | float)
    ]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    pad = (hi - lo) * 0.08 or 0.05
    plot = Plot(entries, f"metric-{index}", lo - pad, hi + pad, width=340, height=180, left=50)
    for i, (r, s) in enumerate(zip(real, est, strict=True)):
        ref = r.get("reference") if r.get("reference") is not None else s.get("reference")
        plot.ticks(i, ref, REFERENCE_COLOUR, tip=f"holdout {number_text(ref)}")
        shift = plot.step * 0.12
        for d, colour, what, dx in (
            (r, REALIZED_COLOUR, "realized", -shift),
            (s, ESTIMATED_COLOUR, "estimated", shift),
        ):
            if not isinstance(d.get("value"), int | float):
                continue
            tip = (
                f"{_window_text(entries[i])} · v{entries[i].get('model_version')} · {what} {number_text(d['value'])} "
                f"({number_text(d.get('lower'))} to {number_text(d.get('upper'))}) · {d.get('verdict')}"
            )
            # The two series are drawn side by side within the window's slot so their intervals do not overlap.
            plot.interval(i, d.get("lower"), d.get("upper"), colour, tip, dx=dx)
            verdict = d.get("verdict")
            fill = VERDICT_COLOUR[verdict] if verdict in (DEGRADED, INSUFFICIENT_LABELS, INSUFFICIENT_ROWS) else colour
            plot.point(i, d["value"], fill, tip, dx=dx, series=what)
    plot.line([_value(d) for d in real], REALIZED_COLOUR)
    plot.line([_value(d) for d in est], ESTIMATED_COLOUR, dash="3 2")
    flagged = any(d.get("verdict") == DEGRADED for d in real)
    label = LABELS.get(name, name)
    return (
        f"<div class='metric{' flagged' if flagged else ''}'><h3>{escape(label)}</h3>"
        + plot.svg(f"{label} per window", number_text)
        + "</div>"
    )


def _value(d: Mapping[str, Any]) -> float | None:
    v = d.get("value")
    return v if isinstance(v, int | float) and not isinstance(v, bool) else None


def _segment_charts(entries: Sequence[Mapping[str, Any]]) -> str:
    features: list[str] = []
    for e in reversed(entries):
        for f in e.get("segments") or {}:
            if f not in features:
                features.append(f)
    if not features:
        return "<p class='muted'>No segment: the card names no segment feature, or no window had labeled rows.</p>"
    return "<div class='grid'>" + "".join(_segment_chart(entries, f, k) for k, f in enumerate(features)) + "</div>"


def _segment_chart(entries: Sequence[Mapping[str, Any]], feature: str, index: int) -> str:
    per = [(e.get("segments") or {}).get(feature) or {} for e in entries]
    metric = next((p.get("metric") for p in reversed(per) if p.get("metric")), "accuracy")
    groups: list[str] = []
    for p in reversed(per):
        for g in p.get("groups") or {}:
            if g not in groups:
                groups.append(g)
    values = [v for p in per for v in (p.get("groups") or {}).values() if isinstance(v, int | float)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    pad = (hi - lo) * 0.08 or 0.05
    plot = Plot(entries, f"segment-{index}", lo - pad, hi + pad, width=340, height=180, left=50)
    for g, colour in zip(groups, CLASS_COLOURS, strict=False):
        series = [(p.get("groups") or {}).get(g) for p in per]
        plot.line([v if isinstance(v, int | float) else None for v in series], colour)
        for i, v in enumerate(series):
            if isinstance(v, int | float):
                plot.point(i, v, colour, f"{_window_text(entries[i])} · {feature}={g}: {metric} {number_text(v)}")
    flagged = any(p.get("flagged") for p in per)
    key = " ".join(
        f"<span style='background:{c}'></span>{escape(g)}" for g, c in zip(groups, CLASS_COLOURS, strict=False)
    )
    return (
        f"<div class='metric{' flagged' if flagged else ''}'><h3>{escape(feature)}: {escape(metric)} per group</h3>"
        + plot.svg(f"{feature}: {metric} per group", number_text)
        + f"<p class='key muted'>{key}</p></div>"
    )


def _table(entries: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        "<table id='windows'><tr><th>window start (UTC)</th><th>end (UTC, exclusive)</th><th>model version</th>"
        "<th>labeled rows</th><th>join rate</th><th>verdict</th><th>model degraded</th><th>estimated</th>"
        "<th>report</th></tr>"
    ]
    for e in reversed(entries):
        window, reports = e.get("window") or {}, e.get("reports") or {}
        links = " · ".join(
            f"<a href='{escape(str(reports[kind]))}'>{kind.upper()}</a>" for kind in ("html", "json") if kind in reports
        )
        rows.append(
            f"<tr><td class='t'>{escape(when(window.get('start')))}</td><td class='t'>{escape(when(window.get('end')))}"
            f"</td><td>{escape(str(e.get('model_version')))}</td><td>{count_text(e.get('labeled_rows'))}</td>"
            f"<td>{_percent(e.get('join_rate'))}</td><td>{_badge(e['verdict'])}</td>"
            f"<td>{'<span class=degraded>yes</span>' if e.get('model_degraded') else 'no'}</td>"
            f"<td>{_badge(e.get('estimated_verdict')) if e.get('estimated_verdict') else '—'}</td><td>{links}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)
