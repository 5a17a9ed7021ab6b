"""A model's monitoring page: its last drift-check windows as charts and a table, in one self-contained HTML file.

Inline CSS and SVG drawn here; no script, font, stylesheet or image is fetched, so the page reads the same opened from
the bucket, from a downloaded folder, or offline. Every text taken from data (model, feature, class and version names,
reasons) is HTML-escaped; a string UTF-8 cannot encode is written as its escape (errors.printable).

Charts, oldest window on the left, a dashed line and "v<version>" where the model version changes:
- verdict per window: the rows compared, coloured by verdict, the windows where the model was declared drifted ringed;
- prediction distribution: each class's share (classifiers) or the quantiles and mean (regressors), with the
  baseline's as dashes;
- one chart per feature: its drift score (history.SCORES) against its threshold; flagged windows in red.

Domain only: the entries come from monitoring.drift.history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from sklambda.errors import printable
from sklambda.monitoring.charts import Plot, card_css, count_text, number_text, page_links, verdict_chart, when
from sklambda.monitoring.drift.check import DRIFT, INSUFFICIENT_DATA, NO_DRIFT, PII
from sklambda.monitoring.drift.history import PREDICTION_QUANTILES
from sklambda.monitoring.drift.html import duration_text

VERDICT_COLOUR = {DRIFT: "#c0392b", NO_DRIFT: "#27ae60", INSUFFICIENT_DATA: "#95a5a6"}
SCORE_COLOUR, THRESHOLD_COLOUR, LIVE_COLOUR, BASE_COLOUR = "#4c72b0", "#c0392b", "#fc8d62", "#555"
# ColorBrewer Dark2: eight classes told apart, also in greyscale print.
CLASS_COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666")
OTHER_CLASSES = "(other classes)"
CSS = card_css("feature", "drifted")


def render_page(
    model: str,
    entries: Sequence[Mapping[str, Any]],
    *,
    limit: int,
    location: str = "",
    generated_at: str | None = None,
) -> str:
    """The monitoring page of `model` from its history `entries` (history.summarize's, oldest first).

    limit: how many windows the history keeps (said on the page). location: where the page and its reports live
    (e.g. "s3://bucket/reports/drift/churn/"), shown to the reader. generated_at: ISO 8601 time of the run that wrote
    it. Links to the reports are relative (the names in each entry's `reports`): they resolve beside the page, in the
    bucket as in a downloaded copy of the folder; so is the link to the model's quality page (charts.page_links).
    Returns the HTML text (valid UTF-8 whatever the data).
    """
    title = f"Monitoring — {escape(model)}"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{title}</title><style>{CSS}</style></head><body>",
        f"<h1>{title}</h1>",
        page_links(model, "drift"),
    ]
    if not entries:
        parts.append("<p>No window has been checked yet: the drift check writes this page after each run.</p>")
    else:
        parts += _summary(entries, limit, location, generated_at)
        parts += ["<h2>Verdict per window</h2>", _verdict_chart(entries)]
        parts += ["<h2>Prediction distribution</h2>", _prediction_chart(entries)]
        parts += ["<h2>Feature drift scores</h2>", _feature_charts(entries)]
        parts += ["<h2>Windows</h2>", _table(entries)]
    parts.append("</body></html>")
    return printable("\n".join(parts))


# --- text ----------------------------------------------------------------------------------------------------------


def _summary(entries: Sequence[Mapping[str, Any]], limit: int, location: str, generated_at: str | None) -> list[str]:
    latest = entries[-1]
    first_start = entries[0]["window"].get("start") or entries[0]["window"].get("end")
    out = [
        f"<p>{len(entries)} window(s) checked (the last {limit:,} are kept), from {escape(when(first_start))} "
        f"to {escape(when(latest['window'].get('end')))} UTC; oldest on the left. Each window is [start, end): its "
        "end is not in it. Every run of the drift check rewrites this page.</p>",
        f"<p>Latest window: {_badge(latest['verdict'])} model version {escape(str(latest.get('model_version')))}, "
        f"{count_text(latest.get('rows'))} rows compared; "
        + (
            "<span class='drifted'>model drifted</span> (drift in consecutive windows)"
            if latest.get("model_drifted")
            else "model not drifted"
        )
        + (
            f"; drifted features: {escape(', '.join(map(str, latest['drifted_features'])))}"
            if latest.get("drifted_features")
            else ""
        )
        + ".</p>",
    ]
    where = f"{escape(location)}index.html" if location else "index.html"
    stamp = f" Written {escape(when(generated_at))} UTC." if generated_at else ""
    out.append(
        f"<p class='muted'>This page: {where}. The reports it links are beside it (relative links): they open from "
        f"the bucket, or from a local copy of the folder.{stamp}</p>"
    )
    return out


def _table(entries: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        "<table id='windows'><tr><th>window start (UTC)</th><th>end (UTC, exclusive)</th><th>length</th>"
        "<th>model version</th><th>rows compared / in window</th><th>verdict</th><th>model drifted</th>"
        "<th>drifted features</th><th>report</th></tr>"
    ]
    for e in reversed(entries):  # newest first
        window, reports = e.get("window") or {}, e.get("reports") or {}
        links = " · ".join(
            f"<a href='{escape(str(reports[kind]))}'>{kind.upper()}</a>" for kind in ("html", "json") if kind in reports
        )
        drifted = ", ".join(map(str, e.get("drifted_features") or [])) or "—"
        if e.get("prediction_drifted"):
            drifted += " (and predictions)"
        rows.append(
            f"<tr><td class='t'>{escape(when(window.get('start')))}</td>"
            f"<td class='t'>{escape(when(window.get('end')))}</td>"
            f"<td>{escape(duration_text(window.get('hours')))}</td><td>{escape(str(e.get('model_version')))}</td>"
            f"<td>{count_text(e.get('rows'))} / {count_text(e.get('rows_in_window'))}</td>"
            f"<td>{_badge(e['verdict'])}</td>"
            f"<td>{'<span class=drifted>yes</span>' if e.get('model_drifted') else 'no'}</td>"
            f"<td>{escape(drifted)}</td><td>{links}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _badge(verdict: str) -> str:
    colour = VERDICT_COLOUR.get(verdict, "#333")
    return f"<span class='verdict' style='background:{colour}'>{escape(str(verdict))}</span>"


# --- charts --------------------------------------------------------------------------------------------------------


def _verdict_chart(entries: Sequence[Mapping[str, Any]]) -> str:
    def tip(e: Mapping[str, Any], n: int) -> str:
        features = ", ".join(map(str, e.get("drifted_features") or [])) or "none"
        return (
            f"{_window_text(e)} · v{e.get('model_version')} · {e['verdict']} · {n:,} rows · drifted features: "
            f"{features}" + (" · MODEL DRIFTED" if e.get("model_drifted") else "")
        )

    key = (
        "".join(f"<span style='background:{c}'></span>{escape(v)}" for v, c in VERDICT_COLOUR.items())
        + " — bar height: rows compared; a ringed point: model drifted (drift in consecutive windows)"
    )
    rows = [e.get("rows") if isinstance(e.get("rows"), int) else 0 for e in entries]
    return verdict_chart(
        entries, rows, VERDICT_COLOUR, tip, lambda e: bool(e.get("model_drifted")),
        "Rows compared and verdict per window", key,
    )  # fmt: skip


def _prediction_chart(entries: Sequence[Mapping[str, Any]]) -> str:
    kinds = {(e.get("predictions") or {}).get("type") for e in entries} - {None}
    if not kinds:
        return "<p class='muted'>No predictions in these windows.</p>"
    if "regression" in kinds:
        return _regression_chart(entries)
    return _class_chart(entries)


def _class_chart(entries: Sequence[Mapping[str, Any]]) -> str:
    shares = [dict((e.get("predictions") or {}).get("class_shares") or {}) for e in entries]
    bases = [dict((e.get("predictions") or {}).get("baseline_class_shares") or {}) for e in entries]
    totals: dict[str, float] = {}
    for s in shares:
        for c, v in s.items():
            totals[c] = totals.get(c, 0.0) + (v or 0.0)
    classes = sorted(totals, key=lambda c: -totals[c])
    if len(classes) > len(CLASS_COLOURS):  # the most frequent classes each, the rest together
        shown, folded = classes[: len(CLASS_COLOURS) - 1], set(classes[len(CLASS_COLOURS) - 1 :])
        for group in (*shares, *bases):
            group[OTHER_CLASSES] = sum(v for c, v in group.items() if c in folded) if group else None
        classes = [*shown, OTHER_CLASSES]
    plot = Plot(entries, "predictions", 0.0, 1.0, width=1000, height=260)
    for c, colour in zip(classes, CLASS_COLOURS, strict=False):
        series = [s.get(c) if s else None for s in shares]
        for i, base in enumerate(bases):
            if isinstance(base.get(c), int | float):
                plot.ticks(i, base[c], colour, tip=f"baseline share of {c}: {base[c]:.1%}")
        plot.line(series, colour)
        for i, v in enumerate(series):
            if v is not None:
                plot.point(i, v, colour, f"{_window_text(entries[i])} · v{entries[i].get('model_version')} · "
                           f"{c}: {v:.1%} of predictions")  # fmt: skip
    pairs = zip(classes, CLASS_COLOURS, strict=False)
    key = "".join(f"<span style='background:{c}'></span>{escape(name)}" for name, c in pairs)
    return (
        plot.svg("Share of each predicted class per window", lambda v: f"{v:.0%}")
        + f"<p class='key muted'>{key} — dashes: the class's share on the baseline (training) data</p>"
    )


def _regression_chart(entries: Sequence[Mapping[str, Any]]) -> str:
    preds = [e.get("predictions") or {} for e in entries]
    q = [p.get("quantiles") or {} for p in preds]
    bq = [(p.get("baseline") or {}).get("quantiles") or {} for p in preds]
    values = [v for d in (*q, *bq) for v in d.values() if isinstance(v, int | float)]
    values += [p.get("mean") for p in preds if isinstance(p.get("mean"), int | float)]
    if not values:
        return "<p class='muted'>No predictions in these windows.</p>"
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
    plot = Plot(entries, "predictions", lo - pad, hi + pad, width=1000, height=260)
    low, high = PREDICTION_QUANTILES[0], PREDICTION_QUANTILES[-1]
    for i, d in enumerate(q):
        w = plot.step * 0.5
        for (a, b), opacity in (((low, high), ".25"), (("0.25", "0.75"), ".5")):
            if isinstance(d.get(a), int | float) and isinstance(d.get(b), int | float):
                top, bottom = plot.y(d[b]), plot.y(d[a])
                plot.body.append(
                    f"<rect x='{plot.x(i) - w / 2:.1f}' y='{top:.1f}' width='{w:.1f}' height='{bottom - top:.1f}' "
                    f"fill='{LIVE_COLOUR}' opacity='{opacity}'/>"
                )
        for quantile, dash, what in (
            ("0.5", "4 3", "median"),
            (low, "1 3", "5th percentile"),
            (high, "1 3", "95th percentile"),
        ):
            v = bq[i].get(quantile)
            plot.ticks(i, v, BASE_COLOUR, dash=dash, tip=f"baseline {what}: {number_text(v)}")
    medians = [d.get("0.5") for d in q]
    plot.line(medians, "#b5532a")
    plot.line([p.get("mean") for p in preds], "#333", dash="2 2", width=1)
    for i, (m, p) in enumerate(zip(medians, preds, strict=True)):
        if m is not None:
            tip = (
                f"{_window_text(entries[i])} · v{entries[i].get('model_version')} · median {number_text(m)}, mean "
                f"{number_text(p.get('mean'))}, 5-95%: {number_text(q[i].get(low))} to {number_text(q[i].get(high))}"
            )
            plot.point(i, m, "#b5532a", tip)
    return (
        plot.svg("Predictions per window: quantiles, median and mean", number_text)
        + "<p class='key muted'>Bars: 5th-95th and 25th-75th percentiles of the window's predictions; points: median; "
        "dotted line: mean. Dashes: the baseline's median, dots: its 5th and 95th percentiles.</p>"
    )


def _feature_charts(entries: Sequence[Mapping[str, Any]]) -> str:
    names: list[str] = []
    for e in reversed(entries):  # the latest window's order (the schema's), then features only older ones had
        for f in e.get("features") or []:
            if f.get("name") not in names:
                names.append(f.get("name"))
    if not names:
        return "<p class='muted'>No feature was compared.</p>"
    key = (
        "<p class='muted'>One chart per feature: its drift score per window; dashes: the threshold; red points: "
        "windows where the feature was flagged (by any of its tests, with a significant adjusted p-value), grey: "
        "windows with too few rows to judge. pii features are tested on their null rate only: no value of theirs is "
        "kept.</p>"
    )
    return key + "<div class='grid'>" + "".join(_feature_chart(entries, n, k) for k, n in enumerate(names)) + "</div>"


def _feature_chart(entries: Sequence[Mapping[str, Any]], name: str, index: int) -> str:
    cols = [next((f for f in e.get("features") or [] if f.get("name") == name), None) for e in entries]
    known = [c for c in cols if c]
    latest = known[-1]
    values = [c.get("value") if c and isinstance(c.get("value"), int | float) else None for c in cols]
    thresholds = [c.get("threshold") if c and isinstance(c.get("threshold"), int | float) else None for c in cols]
    hi = max([v for v in (*values, *thresholds) if v is not None] or [0.0]) * 1.15 or 1.0
    plot = Plot(entries, f"feature-{index}", 0.0, hi, width=340, height=170, left=50)
    for i, t in enumerate(thresholds):
        plot.ticks(i, t, THRESHOLD_COLOUR, tip=f"threshold {number_text(t)}")
    plot.line(values, SCORE_COLOUR)
    for i, (c, v) in enumerate(zip(cols, values, strict=True)):
        if v is None:
            continue
        verdict = entries[i]["verdict"]
        colour = THRESHOLD_COLOUR if c["drifted"] else "#bbb" if verdict == INSUFFICIENT_DATA else SCORE_COLOUR
        reasons = "; ".join(map(str, c.get("reasons") or [])) or ("drifted" if c["drifted"] else "not flagged")
        tip = (
            f"{_window_text(entries[i])} · v{entries[i].get('model_version')} · {c.get('score')} {number_text(v)} "
            f"(threshold {number_text(c.get('threshold'))}) · {reasons}"
        )
        plot.point(i, v, colour, tip, r=4 if c["drifted"] else 3)
    flagged = any(c and c.get("drifted") for c in cols)
    kind = "pii (null rate only)" if latest.get("type") == PII else str(latest.get("type"))
    head = (
        f"<div class='feature{' flagged' if flagged else ''}'><h3>{escape(str(name))}</h3>"
        f"<span class='muted'>{escape(kind)} · {escape(str(latest.get('score')))}</span>"
    )
    return head + plot.svg(f"{name}: {latest.get('score')} per window", number_text) + "</div>"


def _window_text(entry: Mapping[str, Any]) -> str:
    window = entry.get("window") or {}
    return f"{when(window.get('start'))} to {when(window.get('end'))} UTC"
