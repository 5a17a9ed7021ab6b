"""SVG charts over a model's monitoring windows, shared by the drift page (monitoring.drift.page) and the model-quality
page (monitoring.model_quality.page): one chart per quantity, x the window (oldest on the left), a dashed line and
"v<version>" where the model version changes. Inline SVG only: no script, font or image is fetched.

Every text taken from data is HTML-escaped here; callers escape what they add.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Any
from urllib.parse import quote

# x-axis labels of window ends, shortest first: the first that tells the windows apart is used.
AXIS_FORMATS = ("%m-%d", "%m-%d %H:%M", "%m-%d %H:%M:%S")
# Each monitoring page's folder under reports/ (reports/<kind>/<model>/index.html) and its title.
PAGES = {"drift": "Drift monitoring page", "quality": "Model-quality page"}
PAGE_NAME = "index.html"


# The style both monitoring pages share (each adds the classes of its own cards: .feature / .metric and the flag).
PAGE_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1150px}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin:2rem 0 .4rem}h3{font-size:.95rem;margin:0}
.verdict{display:inline-block;padding:.1rem .5rem;border-radius:4px;color:#fff;font-weight:600}
.grid{display:flex;flex-wrap:wrap;gap:1rem}
table{border-collapse:collapse;font-size:.85rem}td.t{white-space:nowrap}
td,th{padding:.2rem .6rem;text-align:left;border-bottom:1px solid #eee}
.key span{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 .8rem;vertical-align:middle}
svg text{font-family:system-ui,sans-serif}
"""


def card_css(card: str, flagged: str) -> str:
    """PAGE_CSS plus a page's chart cards (`.<card>`, red-bordered when `.flagged`) and its flagged text class."""
    return (
        PAGE_CSS
        + f".muted{{color:#666;font-size:.85rem}}.{flagged}{{color:#c0392b;font-weight:600}}\n"
        + f".{card}{{display:flex;flex-direction:column;width:340px;border:1px solid #ddd;border-radius:6px;"
        + "padding:.6rem}\n"
        + f".{card}.flagged{{border-color:#c0392b}}\n"
    )


def page_links(model: str, current: str) -> str:
    """A paragraph linking the model's other monitoring pages (PAGES but `current`), relatively: the pages live in
    sibling folders reports/<kind>/<model>/, so `../../<kind>/<model>/index.html` resolves in the bucket and in a
    download of reports/. A page not written yet (its check never ran) is a dead link until it is."""
    links = [
        f"<a id='{kind}-page' href='{escape(other_page_href(kind, model))}'>{escape(title)}</a>"
        for kind, title in PAGES.items()
        if kind != current
    ]
    return f"<p class='muted' id='related-pages'>Also: {' · '.join(links)}.</p>"


def other_page_href(kind: str, model: str) -> str:
    """The relative link from one of the model's monitoring pages to its `kind` page (PAGES)."""
    return f"../../{kind}/{quote(model, safe='')}/{PAGE_NAME}"


def when(iso: Any) -> str:
    """An ISO 8601 time as "YYYY-MM-DD HH:MM[:SS]" in UTC; the text itself when it does not parse (not escaped)."""
    if not iso:
        return "—"
    try:
        moment = datetime.fromisoformat(str(iso)).astimezone(UTC)
    except ValueError:
        return str(iso)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if moment.second else "%Y-%m-%d %H:%M")


def count_text(v: Any) -> str:
    """An integer with thousands separators, "—" for anything else."""
    return f"{v:,}" if isinstance(v, int) else "—"


def number_text(v: Any) -> str:
    """A number in 3 significant digits (scientific when tiny or huge), "—" when not a finite number."""
    if not isinstance(v, int | float) or isinstance(v, bool) or not math.isfinite(v):
        return "—"
    return f"{v:.3g}" if v == 0 or 1e-3 <= abs(v) < 1e5 else f"{v:.2e}"


class Plot:
    """One SVG chart over the windows: x is the window's index, y a linear scale from `lo` to `hi`.

    entries: the windows, oldest first, each a mapping with "window": {"end": ISO 8601} and "model_version".
    chart_id: the svg's id. width, height, left: the chart's size and left margin in px.
    """

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
        self.tick = nice_step((hi - lo) / 4)
        self.lo, self.hi = math.floor(lo / self.tick) * self.tick, math.ceil(hi / self.tick) * self.tick
        self.step = (width - self.left - self.right) / max(len(entries), 1)
        self.body: list[str] = []

    def x(self, i: int) -> float:
        """The x of window i's centre (px)."""
        return self.left + (i + 0.5) * self.step

    def y(self, v: float) -> float:
        """The y of value v (px), clamped to the chart's range."""
        v = min(max(v, self.lo), self.hi)
        return self.top + (self.hi - v) / (self.hi - self.lo) * (self.height - self.top - self.bottom)

    def point(
        self,
        i: int,
        v: float,
        colour: str,
        tip: str,
        *,
        r: float = 3.5,
        ring: bool = False,
        dx: float = 0.0,
        series: str | None = None,
    ) -> None:
        """A window's value: a circle of class `point`, with its window end, a tooltip, and `data-series` when given.
        dx shifts it sideways within the window's slot (px), to set two series side by side."""
        end = escape(str((self.entries[i].get("window") or {}).get("end")))
        stroke = " stroke='#111' stroke-width='2'" if ring else ""
        tag = f" data-series='{escape(series)}'" if series else ""
        self.body.append(
            f"<circle class='point' data-window='{end}'{tag} cx='{self.x(i) + dx:.1f}' cy='{self.y(v):.1f}' r='{r}' "
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

    def interval(
        self, i: int, lower: float | None, upper: float | None, colour: str, tip: str = "", *, dx: float = 0.0
    ) -> None:
        """A vertical bar across window i from `lower` to `upper` (a confidence interval), capped at both ends; dx as
        `point`'s."""
        if lower is None or upper is None:
            return
        x, y0, y1, cap = self.x(i) + dx, self.y(lower), self.y(upper), min(4.0, self.step * 0.2)
        title = f"<title>{escape(tip)}</title>" if tip else ""
        self.body.append(
            f"<path class='interval' d='M{x:.1f},{y0:.1f}V{y1:.1f}M{x - cap:.1f},{y0:.1f}H{x + cap:.1f}"
            f"M{x - cap:.1f},{y1:.1f}H{x + cap:.1f}' stroke='{colour}' stroke-width='1.2' fill='none'>{title}</path>"
        )

    def svg(self, label: str, fmt: Callable[[float], str]) -> str:
        """The chart: gridlines, y labels in `fmt`, window-end x labels, version marks, then what was drawn."""
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
        labels = axis_labels(self.entries)
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


def verdict_chart(
    entries: Sequence[Mapping[str, Any]],
    rows: Sequence[int],
    colours: Mapping[str, str],
    tip: Callable[[Mapping[str, Any], int], str],
    alarmed: Callable[[Mapping[str, Any]], bool],
    title: str,
    key: str,
) -> str:
    """One bar per window, as tall as its `rows` and coloured by its verdict (`colours`), with a point carrying the
    window's `tip` (ringed where `alarmed`: the consecutive-window rule fired); `title` above and `key` below."""
    plot = Plot(entries, "verdicts", 0.0, max([*rows, 1]), width=1000, height=220)
    for i, (e, n) in enumerate(zip(entries, rows, strict=True)):
        colour = colours.get(e["verdict"], "#333")
        w, top = plot.step * 0.5, plot.y(n)
        plot.body.append(
            f"<rect x='{plot.x(i) - w / 2:.1f}' y='{top:.1f}' width='{w:.1f}' height='{plot.y(0) - top:.1f}' "
            f"fill='{colour}' opacity='.55'/>"
        )
        ring = alarmed(e)
        plot.point(i, n, colour, tip(e, n), r=5.5 if ring else 4, ring=ring)
    return plot.svg(title, lambda v: f"{v:,.0f}") + f"<p class='key muted'>{key}</p>"


def nice_step(x: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten that is at least `x` (> 0)."""
    power = 10.0 ** math.floor(math.log10(x)) if x > 0 and math.isfinite(x) else 1.0
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= x * (1 - 1e-9))


def axis_labels(entries: Sequence[Mapping[str, Any]]) -> list[str]:
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
