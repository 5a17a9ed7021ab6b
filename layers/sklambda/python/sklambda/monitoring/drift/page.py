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

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any

from sklambda.errors import printable
from sklambda.monitoring.drift.check import DRIFT, INSUFFICIENT_DATA, NO_DRIFT, PII
from sklambda.monitoring.drift.history import PREDICTION_QUANTILES
from sklambda.monitoring.drift.html import duration_text

VERDICT_COLOUR = {DRIFT: "#c0392b", NO_DRIFT: "#27ae60", INSUFFICIENT_DATA: "#95a5a6"}
SCORE_COLOUR, THRESHOLD_COLOUR, LIVE_COLOUR, BASE_COLOUR = "#4c72b0", "#c0392b", "#fc8d62", "#555"
# ColorBrewer Dark2: eight classes told apart, also in greyscale print.
CLASS_COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666")
OTHER_CLASSES = "(other classes)"
# x-axis labels of window ends, shortest first: the first that tells the windows apart is used.
AXIS_FORMATS = ("%m-%d", "%m-%d %H:%M", "%m-%d %H:%M:%S")
CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1150px}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin:2rem 0 .4rem}h3{font-size:.95rem;margin:0}
.verdict{display:inline-block;padding:.1rem .5rem;border-radius:4px;color:#fff;font-weight:600}
.muted{color:#666;font-size:.85rem}.drifted{color:#c0392b;font-weight:600}
.grid{display:flex;flex-wrap:wrap;gap:1rem}
.feature{display:flex;flex-direction:column;width:340px;border:1px solid #ddd;border-radius:6px;padding:.6rem}
.feature.flagged{border-color:#c0392b}
table{border-collapse:collapse;font-size:.85rem}td.t{white-space:nowrap}
td,th{padding:.2rem .6rem;text-align:left;border-bottom:1px solid #eee}
.key span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 .8rem;vertical-align:middle}
svg text{font-family:system-ui,sans-serif}
"""


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
    bucket as in a downloaded copy of the folder. Returns the HTML text (valid UTF-8 whatever the data).
    """
    title = f"Monitoring — {escape(model)}"
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{title}</title><style>{CSS}</style></head><body>",
        f"<h1>{title}</h1>",
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
        f"<p>{len(entries)} window(s) checked (the last {limit:,} are kept), from {escape(_when(first_start))} "
        f"to {escape(_when(latest['window'].get('end')))} UTC; oldest on the left. Each window is [start, end): its "
        "end is not in it. Every run of the drift check rewrites this page.</p>",
        f"<p>Latest window: {_badge(latest['verdict'])} model version {escape(str(latest.get('model_version')))}, "
        f"{_int(latest.get('rows'))} rows compared; "
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
    stamp = f" Written {escape(_when(generated_at))} UTC." if generated_at else ""
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
            f"<tr><td class='t'>{escape(_when(window.get('start')))}</td>"
            f"<td class='t'>{escape(_when(window.get('end')))}</td>"
            f"<td>{escape(duration_text(window.get('hours')))}</td><td>{escape(str(e.get('model_version')))}</td>"
            f"<td>{_int(e.get('rows'))} / {_int(e.get('rows_in_window'))}</td><td>{_badge(e['verdict'])}</td>"
            f"<td>{'<span class=drifted>yes</span>' if e.get('model_drifted') else 'no'}</td>"
            f"<td>{escape(drifted)}</td><td>{links}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _badge(verdict: str) -> str:
    colour = VERDICT_COLOUR.get(verdict, "#333")
    return f"<span class='verdict' style='background:{colour}'>{escape(str(verdict))}</span>"


def _when(iso: Any) -> str:
    """An ISO 8601 time as "YYYY-MM-DD HH:MM[:SS]" in UTC; the text itself when it does not parse (not escaped)."""
    if not iso:
        return "—"
    try:
        moment = datetime.fromisoformat(str(iso)).astimezone(UTC)
    except ValueError:
        return str(iso)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if moment.second else "%Y-%m-%d %H:%M")


def _int(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else "—"


def _num(v: Any) -> str:
    if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
        return "—"
    return f"{v:.3g}" if v == 0 or 1e-3 <= abs(v) < 1e5 else f"{v:.2e}"


# --- charts --------------------------------------------------------------------------------------------------------


class _Plot:
    """One SVG chart over the windows: x is the window's index, y a linear scale from `lo` to `hi`."""

    right, top, bottom = 14, 24, 36

    def __init__(
        self,
        entries: Sequence[Mapping[str, Any]],
        chart_id: str,
        lo: float,
        hi: float,
        *,
        width: int,
        height: int,
        left: int = 58,
    ) -> None:
        self.entries, self.id, self.width, self.height, self.left = entries, chart_id, width, height, left
        if hi <= lo:  # one value (or none): a unit range around it
            lo, hi = (lo - 0.5, lo + 0.5) if lo else (0.0, 1.0)
        # Round bounds on a 1-2-2.5-5 grid, so that the axis reads 0, 0.05, 0.1... rather than 0.0287.
        self.tick = _nice((hi - lo) / 4)
        self.lo, self.hi = math.floor(lo / self.tick) * self.tick, math.ceil(hi / self.tick) * self.tick
        self.step = (width - self.left - self.right) / max(len(entries), 1)
        self.body: list[str] = []

    def x(self, i: int) -> float:
        return self.left + (i + 0.5) * self.step

    def y(self, v: float) -> float:
        v = min(max(v, self.lo), self.hi)
        return self.top + (self.hi - v) / (self.hi - self.lo) * (self.height - self.top - self.bottom)

    def point(self, i: int, v: float, colour: str, tip: str, *, r: float = 3.5, ring: bool = False) -> None:
        """A window's value: a circle of class `point`, with its window end and a tooltip."""
        end = escape(str((self.entries[i].get("window") or {}).get("end")))
        stroke = " stroke='#111' stroke-width='2'" if ring else ""
        self.body.append(
            f"<circle class='point' data-window='{end}' cx='{self.x(i):.1f}' cy='{self.y(v):.1f}' r='{r}' "
            f"fill='{colour}'{stroke}><title>{escape(tip)}</title></circle>"
        )

    def line(self, values: Sequence[float | None], colour: str, *, dash: str = "", width: float = 1.5) -> None:
        """A polyline through the windows' values, broken where a window has none."""
        run: list[str] = []
        for i, v in enumerate([*values, None]):
            if v is not None:
                run.append(f"{self.x(i):.1f},{self.y(v):.1f}")
                continue
            if len(run) > 1:
                extra = f" stroke-dasharray='{dash}'" if dash else ""
                self.body.append(
                    f"<polyline points='{' '.join(run)}' fill='none' stroke='{colour}' stroke-width='{width}'{extra}/>"
                )
            run = []

    def ticks(self, i: int, v: float | None, colour: str, *, dash: str = "4 3", tip: str = "") -> None:
        """A short horizontal dash across window i at v: a per-window reference (threshold, baseline)."""
        if v is None:
            return
        half = self.step * 0.42
        title = f"<title>{escape(tip)}</title>" if tip else ""
        self.body.append(
            f"<line x1='{self.x(i) - half:.1f}' x2='{self.x(i) + half:.1f}' y1='{self.y(v):.1f}' y2='{self.y(v):.1f}' "
            f"stroke='{colour}' stroke-width='1.5' stroke-dasharray='{dash}'>{title}</line>"
        )

    def svg(self, label: str, fmt: Callable[[float], str]) -> str:
        out = [
            f"<svg xmlns='http://www.w3.org/2000/svg' class='chart' id='{escape(self.id)}' width='{self.width}' "
            f"height='{self.height}' viewBox='0 0 {self.width} {self.height}' role='img' aria-label='{escape(label)}'>"
            f"<title>{escape(label)}</title>"
        ]
        bottom, right = self.height - self.bottom, self.width - self.right
        for k in range(round((self.hi - self.lo) / self.tick) + 1):  # gridlines and y labels
            v = self.lo + k * self.tick
            y = self.y(v)
            out.append(f"<line x1='{self.left}' x2='{right}' y1='{y:.1f}' y2='{y:.1f}' stroke='#eee'/>")
            out.append(
                f"<text x='{self.left - 5}' y='{y + 3.5:.1f}' font-size='10' text-anchor='end'>{escape(fmt(v))}</text>"
            )
        out.append(f"<line x1='{self.left}' x2='{right}' y1='{bottom}' y2='{bottom}' stroke='#999'/>")
        labels = _axis_labels(self.entries)
        fits = (right - self.left) // (6 * max(map(len, labels)) + 14)  # ~6 px a character at 10 px
        every = max(1, math.ceil(len(self.entries) / max(1, fits)))
        previous = object()
        for i, e in enumerate(self.entries):
            if i % every == 0:
                out.append(
                    f"<text x='{self.x(i):.1f}' y='{bottom + 14}' font-size='10' text-anchor='middle'>"
                    f"{escape(labels[i])}</text>"
                )
            version = e.get("model_version")
            if version != previous:  # the model version of each run of windows, and where it changes
                edge = self.x(i) - self.step / 2
                if i:
                    out.append(
                        f"<line class='version-change' x1='{edge:.1f}' x2='{edge:.1f}' y1='{self.top - 14}' "
                        f"y2='{bottom}' stroke='#333' stroke-dasharray='5 3'/>"
                    )
                out.append(
                    f"<text class='version' x='{edge + 3:.1f}' y='{self.top - 6}' font-size='10' fill='#333'>"
                    f"v{escape(str(version))}</text>"
                )
                previous = version
        out += self.body
        out.append("</svg>")
        return "".join(out)


def _nice(x: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least `x` (> 0)."""
    power = 10.0 ** math.floor(math.log10(x)) if x > 0 and math.isfinite(x) else 1.0
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= x * (1 - 1e-9))


def _axis_labels(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """Each window's end, short: month-day, with the time of day (to the minute, else the second) when needed to tell
    the windows apart."""
    ends: list[datetime | None] = []
    for e in entries:
        try:
            ends.append(datetime.fromisoformat(str((e.get("window") or {}).get("end"))).astimezone(UTC))
        except ValueError:
            ends.append(None)
    known = [d for d in ends if d]
    # The shortest form that tells the windows apart (on-demand checks minutes or seconds apart need the time).
    fmt = next((f for f in AXIS_FORMATS if len({d.strftime(f) for d in known}) == len(set(known))), AXIS_FORMATS[-1])
    return [d.strftime(fmt) if d else "?" for d in ends]


def _verdict_chart(entries: Sequence[Mapping[str, Any]]) -> str:
    rows = [e.get("rows") if isinstance(e.get("rows"), int) else 0 for e in entries]
    plot = _Plot(entries, "verdicts", 0.0, max([*rows, 1]), width=1000, height=220)
    for i, (e, n) in enumerate(zip(entries, rows, strict=True)):
        colour = VERDICT_COLOUR.get(e["verdict"], "#333")
        w, top = plot.step * 0.5, plot.y(n)
        plot.body.append(
            f"<rect x='{plot.x(i) - w / 2:.1f}' y='{top:.1f}' width='{w:.1f}' height='{plot.y(0) - top:.1f}' "
            f"fill='{colour}' opacity='.55'/>"
        )
        features = ", ".join(map(str, e.get("drifted_features") or [])) or "none"
        tip = (
            f"{_window_text(e)} · v{e.get('model_version')} · {e['verdict']} · {n:,} rows · drifted features: "
            f"{features}" + (" · MODEL DRIFTED" if e.get("model_drifted") else "")
        )
        plot.point(i, n, colour, tip, r=5.5 if e.get("model_drifted") else 4, ring=bool(e.get("model_drifted")))
    key = (
        "".join(f"<span style='background:{c}'></span>{escape(v)}" for v, c in VERDICT_COLOUR.items())
        + " — bar height: rows compared; a ringed point: model drifted (drift in consecutive windows)"
    )
    return plot.svg("Rows compared and verdict per window", lambda v: f"{v:,.0f}") + f"<p class='key muted'>{key}</p>"


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
    plot = _Plot(entries, "predictions", 0.0, 1.0, width=1000, height=260)
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
    plot = _Plot(entries, "predictions", lo - pad, hi + pad, width=1000, height=260)
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
            plot.ticks(i, v, BASE_COLOUR, dash=dash, tip=f"baseline {what}: {_num(v)}")
    medians = [d.get("0.5") for d in q]
    plot.line(medians, "#b5532a")
    plot.line([p.get("mean") for p in preds], "#333", dash="2 2", width=1)
    for i, (m, p) in enumerate(zip(medians, preds, strict=True)):
        if m is not None:
            tip = (
                f"{_window_text(entries[i])} · v{entries[i].get('model_version')} · median {_num(m)}, mean "
                f"{_num(p.get('mean'))}, 5-95%: {_num(q[i].get(low))} to {_num(q[i].get(high))}"
            )
            plot.point(i, m, "#b5532a", tip)
    return (
        plot.svg("Predictions per window: quantiles, median and mean", _num)
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
    plot = _Plot(entries, f"feature-{index}", 0.0, hi, width=340, height=170, left=50)
    for i, t in enumerate(thresholds):
        plot.ticks(i, t, THRESHOLD_COLOUR, tip=f"threshold {_num(t)}")
    plot.line(values, SCORE_COLOUR)
    for i, (c, v) in enumerate(zip(cols, values, strict=True)):
        if v is None:
            continue
        verdict = entries[i]["verdict"]
        colour = THRESHOLD_COLOUR if c["drifted"] else "#bbb" if verdict == INSUFFICIENT_DATA else SCORE_COLOUR
        reasons = "; ".join(map(str, c.get("reasons") or [])) or ("drifted" if c["drifted"] else "not flagged")
        tip = (
            f"{_window_text(entries[i])} · v{entries[i].get('model_version')} · {c.get('score')} {_num(v)} "
            f"(threshold {_num(c.get('threshold'))}) · {reasons}"
        )
        plot.point(i, v, colour, tip, r=4 if c["drifted"] else 3)
    flagged = any(c and c.get("drifted") for c in cols)
    kind = "pii (null rate only)" if latest.get("type") == PII else str(latest.get("type"))
    head = (
        f"<div class='feature{' flagged' if flagged else ''}'><h3>{escape(str(name))}</h3>"
        f"<span class='muted'>{escape(kind)} · {escape(str(latest.get('score')))}</span>"
    )
    return head + plot.svg(f"{name}: {latest.get('score')} per window", _num) + "</div>"


def _window_text(entry: Mapping[str, Any]) -> str:
    window = entry.get("window") or {}
    return f"{_when(window.get('start'))} to {_when(window.get('end'))} UTC"
