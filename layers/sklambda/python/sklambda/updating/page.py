"""The canary verdict and the shadow comparison as self-contained HTML pages: the monitoring pages' shared style
(monitoring.charts.card_css), inline SVG only, no script, font or image fetched. Every text taken from data is
HTML-escaped; a string UTF-8 cannot encode is written as its escape (errors.printable).

Each comparison with an interval is drawn as one bar: the interval, the point, and the bound as a dashed line, so
"the whole interval is past the bound" can be seen at a glance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from sklambda.errors import printable
from sklambda.monitoring.charts import card_css, count_text, number_text, when

CSS = card_css("comparison", "violated")
STATUS_COLOUR = {
    "rolled_back": "#c0392b",
    "healthy": "#27ae60",
    "collecting": "#95a5a6",
}
# A shadow's quality verdict by its level (shadow.VERDICTS): not shown non-inferior is a warning, not an alarm.
LEVEL_COLOUR = {"better": "#27ae60", "neutral": "#95a5a6", "warning": "#e67e22", "worse": "#c0392b"}


def _head(title: str) -> list[str]:
    return [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{title}</title><style>{CSS}</style></head><body>",
        f"<h1>{title}</h1>",
    ]


def _badge(text: Any, colour: str | None = None) -> str:
    colour = colour or STATUS_COLOUR.get(str(text), "#333")
    return f"<span class='verdict' style='background:{colour}'>{escape(str(text))}</span>"


def _percent(v: Any) -> str:
    return "—" if not isinstance(v, int | float) else f"{100 * v:.2f} %"


def interval_bar(point: Any, interval: Sequence[Any] | None, bound: Any, *, chart_id: str, label: str) -> str:
    """An SVG bar from the interval's low to high end, a dot at `point`, a dashed line at `bound` (any may be None)."""
    values = [v for v in (point, bound, *(interval or ())) if isinstance(v, int | float)]
    if not values:
        return ""
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.1 or abs(hi) * 0.1 or 1.0
    lo, hi = lo - pad, hi + pad
    width, height, left, right = 320, 46, 10, 10

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * (width - left - right)

    out = [
        f"<svg xmlns='http://www.w3.org/2000/svg' class='chart' id='{escape(chart_id)}' width='{width}' "
        f"height='{height}' viewBox='0 0 {width} {height}' role='img' aria-label='{escape(label)}'>"
        f"<title>{escape(label)}</title>"
    ]
    if interval and all(isinstance(v, int | float) for v in interval):
        out.append(
            f"<line class='interval' x1='{x(interval[0]):.1f}' x2='{x(interval[1]):.1f}' y1='20' y2='20' "
            "stroke='#4c72b0' stroke-width='6'/>"
        )
    if isinstance(point, int | float):
        out.append(f"<circle class='point' cx='{x(point):.1f}' cy='20' r='5' fill='#111'/>")
    if isinstance(bound, int | float):
        out.append(
            f"<line class='bound' x1='{x(bound):.1f}' x2='{x(bound):.1f}' y1='4' y2='36' stroke='#c0392b' "
            f"stroke-dasharray='4 3'/><text x='{x(bound) + 3:.1f}' y='44' font-size='10'>bound "
            f"{escape(number_text(bound))}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def render_canary_report(document: Mapping[str, Any]) -> str:
    """A canary verdict (rollout.CanaryVerdict.to_dict, with what the check did: `rollback`, `event_id`) as a page."""
    model, alias = str(document.get("model")), str(document.get("alias"))
    stable, canary = document.get("stable") or {}, document.get("canary") or {}
    title = f"Canary — {escape(model)} {escape(alias)}: v{escape(str(canary.get('version')))}"
    parts = _head(title)
    parts.append(
        f"<p id='status'>{_badge(document.get('status'))} canary v{escape(str(canary.get('version')))} at "
        f"{escape(number_text(document.get('weight')))} % against stable v{escape(str(stable.get('version')))}, "
        f"since {escape(when(document.get('started_at')))} (checked {escape(when(document.get('evaluated_at')))}).</p>"
    )
    rollback = document.get("rollback")
    if rollback:
        parts.append(f"<p id='rollback'>Rollback: {escape(str(rollback.get('message')))}</p>")
    reasons = document.get("reasons") or []
    if reasons:
        parts.append("<ul id='reasons'>" + "".join(f"<li>{escape(str(r.get('text')))}</li>" for r in reasons) + "</ul>")
    rows = "".join(
        f"<tr><td>{escape(label)}</td><td>{cell(stable)}</td><td>{cell(canary)}</td></tr>"
        for label, cell in (
            ("version", lambda v: escape(str(v.get("version")))),
            ("requests", lambda v: count_text(v.get("requests"))),
            ("errors", lambda v: count_text(v.get("errors"))),
            ("error rate", lambda v: _percent(v.get("error_rate"))),
            ("p50 latency (ms)", lambda v: number_text(v.get("latency_p50_ms"))),
            ("labeled rows", lambda v: count_text(v.get("labeled_rows"))),
        )
    )
    parts.append(f"<table id='versions'><tr><th></th><th>stable</th><th>canary</th></tr>{rows}</table>")
    parts.append("<h2>Comparisons</h2><div class='grid'>")
    for i, c in enumerate(document.get("comparisons") or []):
        flagged = " flagged" if c.get("violated") else ""
        parts.append(f"<div class='comparison{flagged}' id='comparison-{i}'><h3>{escape(str(c.get('metric')))}</h3>")
        if c.get("available"):
            interval = c.get("interval") or [None, None]
            parts.append(
                interval_bar(
                    c.get("difference"),
                    interval,
                    c.get("bound"),
                    chart_id=f"bar-{i}",
                    label=f"{c.get('metric')}: canary against stable, 95 % interval and bound",
                )
            )
            parts.append(
                f"<p class='muted'>{escape(str(c.get('test')))}: difference {escape(number_text(c.get('difference')))} "
                f"(95 % interval {escape(number_text(interval[0]))} to {escape(number_text(interval[1]))}), bound "
                f"{escape(number_text(c.get('bound')))}; one-sided p {escape(number_text(c.get('p_value')))}, "
                f"Holm-adjusted {escape(number_text(c.get('p_adjusted')))}"
                + ("; <span class='violated'>violated</span>" if c.get("violated") else "")
                + "</p>"
            )
        else:
            parts.append(f"<p class='muted'>Not compared: {escape(str(c.get('text')))}.</p>")
        parts.append("</div>")
    parts.append("</div>")
    bounds = document.get("bounds") or {}
    parts.append(
        "<p class='muted' id='bounds'>Bounds: "
        + escape(", ".join(f"{k} {number_text(v) if not isinstance(v, int) else v}" for k, v in bounds.items()))
        + ".</p></body></html>"
    )
    return printable("\n".join(parts))


def render_shadow_report(document: Mapping[str, Any]) -> str:
    """A shadow comparison (shadow.run_shadow's document) as a page."""
    model, alias = str(document.get("model")), str(document.get("alias"))
    title = (
        f"Shadow — {escape(model)} {escape(alias)}: v{escape(str(document.get('shadow_version')))} against "
        f"v{escape(str(document.get('stable_version')))}"
    )
    parts = _head(title)
    window = document.get("window") or {}
    parts.append(
        f"<p id='window'>Requests the alias answered from {escape(when(window.get('start')))} to "
        f"{escape(when(window.get('end')))} (UTC), replayed on both versions.</p>"
    )
    quality = document.get("quality") or {}
    if quality.get("available"):
        badge = _badge(quality.get("verdict"), LEVEL_COLOUR.get(str(quality.get("level"))))
        parts.append(f"<p id='verdict'>{badge} {escape(str(document.get('summary')))}.</p>")
    else:
        parts.append(f"<p id='verdict'>{escape(str(document.get('summary')))}.</p>")
    replayed = document.get("replay") or {}
    fidelity = document.get("fidelity") or {}
    parts.append(
        f"<p id='replay'>{count_text(replayed.get('rows_replayed'))} of {count_text(replayed.get('rows_captured'))} "
        f"captured rows replayed" + (" (a sample)" if replayed.get("sampled") else "") + "; replay fidelity: "
        f"{count_text(fidelity.get('matching'))} of {count_text(fidelity.get('rows'))} rows the stable version "
        f"answered give its captured prediction again ({_percent(fidelity.get('share'))}).</p>"
    )
    if fidelity.get("note"):
        parts.append(f"<p id='pii' class='violated'>{escape(str(fidelity['note']))}.</p>")
    parts.append("<div class='grid'>")
    agreement = document.get("agreement")
    if agreement:
        parts.append(
            "<div class='comparison' id='agreement'><h3>Agreement</h3>"
            + interval_bar(
                agreement.get("rate"),
                agreement.get("interval"),
                None,
                chart_id="bar-agreement",
                label="agreement rate and its Wilson interval",
            )
            + f"<p class='muted'>{_percent(agreement.get('rate'))} ({escape(str(agreement.get('definition')))}), "
            f"interval {_percent((agreement.get('interval') or [None])[0])} to "
            f"{_percent((agreement.get('interval') or [None, None])[1])}</p></div>"
        )
    if quality.get("available"):
        parts.append(
            f"<div class='comparison' id='quality'><h3>{escape(str(quality.get('metric')))}</h3>"
            + interval_bar(
                quality.get("gain"),
                quality.get("interval"),
                # The non-inferiority bound the verdict is judged against (the gate's -margin), not 0.
                -quality["margin"] if isinstance(quality.get("margin"), int | float) else None,
                chart_id="bar-quality",
                label="the shadow's gain over the stable version, and its interval",
            )
            + f"<p class='muted'>stable {escape(number_text(quality.get('stable')))}, shadow "
            f"{escape(number_text(quality.get('shadow')))} on {count_text(quality.get('labeled_rows'))} labeled rows; "
            f"gain {escape(number_text(quality.get('gain')))}, one-sided lower bound "
            f"{escape(number_text(quality.get('gain_lower')))}: {escape(str(quality.get('verdict')))}</p></div>"
        )
    latency = document.get("latency")
    if latency:
        parts.append(
            "<div class='comparison' id='latency'><h3>Latency per row</h3>"
            + interval_bar(
                latency.get("ratio"),
                latency.get("ratio_range"),
                1.0,
                chart_id="bar-latency",
                label="shadow / stable scoring time, and its range over the chunks",
            )
            + f"<p class='muted'>stable {escape(number_text(latency.get('stable_ms_per_row')))} ms, shadow "
            f"{escape(number_text(latency.get('shadow_ms_per_row')))} ms per row: ratio "
            f"{escape(number_text(latency.get('ratio')))} (range over {count_text(latency.get('chunks'))} chunks)</p>"
            "</div>"
        )
    parts.append("</div>")
    distribution = document.get("distribution") or {}
    if distribution.get("kind") == "class_shares":
        rows = "".join(
            f"<tr><td>{escape(str(c.get('class')))}</td><td>{_percent(c.get('stable'))}</td>"
            f"<td>{_percent(c.get('shadow'))}</td><td>{_percent(c.get('difference'))}</td>"
            f"<td>{_percent((c.get('interval') or [None])[0])} to {_percent((c.get('interval') or [None, None])[1])}"
            "</td></tr>"
            for c in distribution.get("classes") or []
        )
        parts.append(
            "<h2>Predicted class shares</h2><table id='distribution'><tr><th>class</th><th>stable</th><th>shadow</th>"
            f"<th>difference</th><th>95 % interval</th></tr>{rows}</table>"
        )
    elif distribution:
        low, high = distribution.get("interval") or [None, None]
        statistic, p_value = number_text(distribution.get("statistic")), number_text(distribution.get("p_value"))
        mean = number_text(distribution.get("mean_difference"))
        parts.append(
            f"<h2>Prediction distribution</h2><p id='distribution'>Kolmogorov-Smirnov statistic {escape(statistic)} "
            f"(p {escape(p_value)}); mean difference {escape(mean)} (95 % interval {escape(number_text(low))} to "
            f"{escape(number_text(high))}).</p>"
        )
    parts.append("</body></html>")
    return printable("\n".join(parts))
