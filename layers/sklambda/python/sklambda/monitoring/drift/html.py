"""A drift report as one self-contained HTML page: inline CSS and SVG, no scripts, no external assets."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any

from sklambda.errors import printable
from sklambda.monitoring.drift.check import DRIFT, INSUFFICIENT_DATA, OTHER, ColumnDrift, DriftReport

BASE_COLOUR, LIVE_COLOUR = "#8da0cb", "#fc8d62"
VERDICT_COLOUR = {DRIFT: "#c0392b", INSUFFICIENT_DATA: "#7f8c8d"}
CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1100px}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin:0 0 .3rem}
.verdict{display:inline-block;padding:.2rem .6rem;border-radius:4px;color:#fff;font-weight:600}
.col{border:1px solid #ddd;border-radius:6px;padding:1rem;margin:1rem 0}
.col.drifted{border-color:#c0392b;border-width:2px}
table{border-collapse:collapse;font-size:.85rem}td,th{padding:.15rem .6rem;text-align:left;border-bottom:1px solid #eee}
.reasons{color:#c0392b}.muted{color:#777;font-size:.85rem}
.flex{display:flex;gap:1.5rem;flex-wrap:wrap;align-items:flex-start}
.key span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 .8rem;vertical-align:middle}
"""


def render_html(
    report: DriftReport,
    baseline: Mapping[str, Any],
    *,
    quarantined: Mapping[str, int] | None = None,
    window: Mapping[str, Any] | None = None,
    reference: Mapping[str, Any] | None = None,
    page_href: str | None = None,
) -> str:
    """The report as a page a person can read: its window and baseline, the verdict, then per feature the two
    distributions and the scores.

    quarantined: the window's records left out, counted by reason. window: the JSON report's `window` ({"start",
    "end" (ISO 8601 UTC, end exclusive), "hours", "rows_in_window", "rows_compared"}). reference: the JSON report's
    `baseline` ({"model", "version", "published_at"}): the version whose training data is the reference. page_href:
    the link to the model's monitoring page (relative: it sits beside the report).

    Every value shown is HTML-escaped, and the page is always valid UTF-8 text: a string that UTF-8 cannot encode
    (a lone surrogate in a category name) is written as its escape (\\ud800), so data never fails the report."""
    model = report.model
    title = f"Drift report{' — ' + escape(model.get('name', '')) if model.get('name') else ''}"
    if model.get("version"):
        title += f" v{escape(str(model['version']))}"
    colour = VERDICT_COLOUR.get(report.verdict, "#27ae60")
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{title}</title><style>{CSS}</style></head><body>",
        f"<h1>{title}</h1>",
        *_context(window, reference, page_href),
        f"<p><span class='verdict' style='background:{colour}'>{escape(report.verdict)}</span> "
        f"{report.rows:,} rows in the window; {report.tests_in_family} columns (each one's tests combined), "
        f"{escape(report.config.correction)}-adjusted at alpha={report.config.alpha}; "
        f"minimum {report.config.min_rows:,} rows.</p>",
        "<p>Drifted features: "
        + (escape(", ".join(report.drifted_features)) if report.drifted_features else "none")
        + f". Prediction drift: {'yes' if report.prediction_drifted else 'no'}. "
        f"Multivariate drift: {'yes' if report.multivariate_drifted else 'no'}.</p>",
        "<p class='key'>Bars:<span style='background:" + BASE_COLOUR + "'></span>baseline (training)"
        "<span style='background:" + LIVE_COLOUR + "'></span>this window</p>",
    ]
    if quarantined:
        total = sum(quarantined.values())
        listed = "".join(f"<li>{escape(str(reason))}: {count:,}</li>" for reason, count in quarantined.items())
        parts.append(f"<p class='reasons'>{total:,} record(s) quarantined (not compared):</p><ul>{listed}</ul>")
    feature_base = baseline.get("features", {})
    for col in report.features:
        parts.append(_column(col, feature_base.get(col.name, {})))
    pred_base = baseline.get("predictions") or {}
    if report.predictions:
        parts.append("<h1>Predictions</h1>")
    for col in report.predictions:
        if col.name == "predicted_class":
            base = {"frequencies": pred_base.get("class_frequencies", {})}
        elif col.name.startswith("probability["):
            base = (pred_base.get("probability") or {}).get(col.name[len("probability[") : -1], {})
        else:
            base = pred_base
        parts.append(_column(col, base))
    if report.multivariate:
        parts.append("<h1>Across features</h1>")
    for col in report.multivariate:
        parts.append(_column(col, {}))
    parts.append("</body></html>")
    return printable("\n".join(parts))


def _context(window: Mapping[str, Any] | None, reference: Mapping[str, Any] | None, page_href: str | None) -> list[str]:
    out = []
    if window:
        estimated = " (estimated from a sample)" if window.get("rows_in_window_estimated") else ""
        out.append(
            f"<p id='window'>Window: <b>{escape(str(window.get('start')))}</b> to "
            f"<b>{escape(str(window.get('end')))}</b> (UTC; the end is not in it), "
            f"{escape(duration_text(window.get('hours')))}: "
            f"{_count(window.get('rows_in_window'))} captured rows in the window{estimated}, "
            f"{_count(window.get('rows_compared'))} compared.</p>"
        )
    if reference:
        out.append(
            f"<p id='baseline'>Compared with the baseline of {escape(str(reference.get('model')))} version "
            f"<b>{escape(str(reference.get('version')))}</b>, published {escape(str(reference.get('published_at')))} "
            "(statistics of its training data, stored in its signed card).</p>"
        )
    if page_href:
        out.append(
            f"<p><a id='monitoring-page' href='{escape(page_href)}'>Monitoring page</a>: this model's recent windows "
            "as charts (drift scores, predictions, verdicts).</p>"
        )
    return out


def _count(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else "—"


def _column(col: ColumnDrift, base: Mapping[str, Any]) -> str:
    cls = "col drifted" if col.drifted else "col"
    status = "drifted" if col.drifted else "no drift"
    head = f"<div class='{cls}'><h2>{escape(col.name)} <span class='muted'>({escape(col.kind)}, {status})</span></h2>"
    reasons = "".join(f"<li>{escape(r)}</li>" for r in col.reasons)
    chart = _chart(col, base)
    rows = []
    for key, value in col.tests.items():
        rows.append(f"<tr><td>{escape(key)}</td><td>{escape(_fmt(value))}</td></tr>")
    for key, value in col.p_values.items():
        rows.append(
            f"<tr><td>p[{escape(key)}]</td><td>{escape(_fmt(value))} "
            f"<span class='muted'>adjusted {escape(_fmt(col.p_adjusted.get(key)))}</span></td></tr>"
        )
    rows.append(
        f"<tr><td>p[combined]</td><td>{escape(_fmt(col.p_combined))} "
        f"<span class='muted'>adjusted {escape(_fmt(col.p_combined_adjusted))}</span></td></tr>"
    )
    table = f"<table><tr><th>score</th><th>value</th></tr>{''.join(rows)}</table>"
    if col.notes:
        table += "".join(f"<p class='muted'>{escape(n)}</p>" for n in col.notes)
    unseen = (col.current or {}).get("unseen_examples")
    if unseen:
        table += f"<p class='muted'>Most frequent unseen categories: {escape(', '.join(map(str, unseen)))}</p>"
    return (
        f"{head}{'<ul class=reasons>' + reasons + '</ul>' if reasons else ''}"
        f"<div class='flex'>{chart}{table}</div></div>"
    )


def _chart(col: ColumnDrift, base: Mapping[str, Any]) -> str:
    current = col.current or {}
    if "histogram" in current and base.get("histogram"):
        edges = base["histogram"]["bin_edges"]
        counts = base["histogram"]["counts"]
        total = sum(counts) or 1
        live_total = sum(current["histogram"]) or 1
        labels = [f"{_short(edges[i])} to {_short(edges[i + 1])}" for i in range(len(counts))]
        return _bars(labels, [c / total for c in counts], [c / live_total for c in current["histogram"]])
    if "pairs" in current:
        head = "<tr><th>pair</th><th>baseline</th><th>window</th><th>p</th></tr>"
        body = "".join(
            f"<tr><td>{escape(' ~ '.join(map(str, p['features'])))}</td><td>{_fmt(p['baseline'])}</td>"
            f"<td>{_fmt(p['current'])}</td><td>{_fmt(p['p_value'])}</td></tr>"
            for p in current["pairs"]
        )
        return f"<table><caption>Spearman correlations, most significant pairs</caption>{head}{body}</table>"
    if "frequencies" in current:
        freqs = base.get("frequencies", {})
        other = max(0.0, 1.0 - sum(freqs.values())) if "other_share" not in base else base["other_share"]
        labels = [*freqs, OTHER]
        live = current["frequencies"]
        return _bars(labels, [*freqs.values(), other], [live.get(c, 0.0) for c in labels])
    if col.kind == "multivariate":
        return "<p class='muted'>No pairs compared.</p>"
    return "<p class='muted'>No distribution shown: pii feature (null rate only) or no values.</p>"


def _bars(labels: list[str], base: list[float], live: list[float]) -> str:
    """Horizontal grouped bars, one group per bin/category: baseline share over live share."""
    top = max([*base, *live, 1e-9])
    row_h, label_w, bar_w = 26, 150, 260
    height = row_h * len(labels) + 10
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{label_w + bar_w + 60}' height='{height}' role='img'>"]
    for i, (label, b, v) in enumerate(zip(labels, base, live, strict=True)):
        y = 5 + i * row_h
        text = escape(label if len(label) <= 22 else label[:21] + "…")
        out.append(f"<text x='{label_w - 6}' y='{y + 15}' font-size='11' text-anchor='end'>{text}</text>")
        for j, (share, colour) in enumerate(((b, BASE_COLOUR), (v, LIVE_COLOUR))):
            w = bar_w * share / top
            out.append(
                f"<rect x='{label_w}' y='{y + j * 11}' width='{w:.1f}' height='10' fill='{colour}'>"
                f"<title>{'baseline' if j == 0 else 'window'} {share:.1%}</title></rect>"
            )
            out.append(f"<text x='{label_w + w + 4:.1f}' y='{y + j * 11 + 9}' font-size='9'>{share:.1%}</text>")
    out.append("</svg>")
    return "".join(out)


def _short(x: float) -> str:
    return f"{x:.3g}"


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return str(v)


def duration_text(hours: Any) -> str:
    """A window's length for a person: "24 h", "1.5 h", "12 min", "1.4 s" ("?" when not a number)."""
    if not isinstance(hours, int | float) or isinstance(hours, bool) or hours != hours:
        return "?"
    if hours >= 1:
        return f"{hours:.3g} h"
    if hours * 60 >= 1:
        return f"{hours * 60:.3g} min"
    return f"{hours * 3600:.3g} s"
