"""A readable model card, rendered from the signed card JSON: Markdown, or one self-contained HTML page.

Used by `sklambda models card`, which verifies the card's signature first (or, with --no-verify, has the page
say in its title and first section that it was NOT VERIFIED). Everything shown comes from the card: the
identity and what was checked of its signature, documentation (owner, intended use, limitations), a training
data summary from the baseline (null rates, ranges, top categories: never a value of a pii feature), metrics,
permutation importance as a bar chart, the decision threshold and the data quality warnings. Cards published
before a section existed say so instead of showing it.

Every value is escaped: HTML by `html.escape`, Markdown by turning `&`, `<`, `>` into entities (renderers pass
raw HTML through) and `|` into `\\|` (table cells). The HTML page loads nothing: styles are inline, bars are CSS.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sklambda.registry.card import ModelCard
from sklambda.registry.signing import NOT_VERIFIED, SignatureCheck
from sklambda_infra.modelview import gap_text, no_gap_text, segment_rows

FORMATS = ("markdown", "html")
BAR_WIDTH = 24  # characters of the Markdown importance bar at the largest importance
TOP_CATEGORIES = 3
NOT_RECORDED = "not recorded (this card was published before the section existed)"
UNVERIFIED_WARNING = (
    "The signature of this card was not checked (--no-verify): anyone able to write to the model bucket could "
    "have changed it after publishing. Do not rely on what it says."
)


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Bars:
    """Feature importance: (feature, share of the largest in [0, 1], label)."""

    items: tuple[tuple[str, float, str], ...]


@dataclass(frozen=True)
class Section:
    title: str
    lines: tuple[str, ...] = ()  # paragraphs, each already a sentence
    bullets: tuple[str, ...] = ()
    table: Table | None = None
    bars: Bars | None = None


def render(
    card: ModelCard,
    fmt: str = "markdown",
    *,
    aliases: Mapping[str, str] | None = None,
    verification: SignatureCheck = NOT_VERIFIED,
) -> str:
    """The card as Markdown or HTML. `verification` is what the caller checked (sklambda.registry.signing.read_card); a
    card rendered without a verified check says so in its title and first section."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    title, sections = _sections(card, aliases or {}, verification)
    return render_markdown(title, sections) if fmt == "markdown" else render_html(title, sections)


# --- content ------------------------------------------------------------------------------------------------------


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.4g}"


def _sections(card: ModelCard, aliases: Mapping[str, str], verification: SignatureCheck) -> tuple[str, list[Section]]:
    title = f"Model card: {card.name} version {card.version}"
    warning: list[Section] = []
    if not verification.verified:
        title += " (NOT VERIFIED)"
        warning = [Section("NOT VERIFIED", lines=(UNVERIFIED_WARNING,))]
    return title, [
        *warning,
        _identity(card, aliases, verification),
        _documentation(card),
        _training_data(card),
        _metrics(card),
        _importance(card),
        _decision(card),
        *_segments(card),
        _quality(card),
        _limitations(card),
    ]


def _identity(card: ModelCard, aliases: Mapping[str, str], verification: SignatureCheck) -> Section:
    pointing = sorted(a for a, v in aliases.items() if v == card.version)
    if verification.verified:
        signed = f"verified: {verification.algorithm} with the trusted KMS key {verification.key_id}"
    elif card.signature:
        signed = (
            f"NOT VERIFIED: the card claims {card.signature.algorithm} with KMS key {card.signature.key_id}, "
            "which was not checked"
        )
    else:
        signed = "NO: the card is not signed and the serving functions refuse this version"
    rows = [
        ("Model", card.name),
        ("Version", card.version),
        ("Aliases", ", ".join(pointing) or "none"),
        ("Task", card.task + (f" (classes: {', '.join(map(str, card.classes))})" if card.classes else "")),
        ("Target", card.target or "not recorded"),
        ("Estimator", card.estimator),
        ("scikit-learn", card.sklearn_version),
        ("Created", card.created_at),
        ("Signature", signed),
        ("Artifact", f"{card.artifact.size:,} bytes, sha256 {card.artifact.sha256}"),
    ]
    return Section("Model", table=Table(("Field", "Value"), tuple(rows)))


def _documentation(card: ModelCard) -> Section:
    doc = card.documentation or {}
    return Section(
        "Intended use",
        lines=(
            f"Description: {card.description or 'none given'}",
            f"Intended use: {doc.get('intended_use') or 'not stated'}",
            f"Owner: {doc.get('owner') or 'not stated'}",
        ),
    )


def _feature_summary(spec: Any, stats: Mapping[str, Any]) -> str:
    if spec.pii:
        return "personal data: no values recorded"
    if "frequencies" in stats:
        freq = list(stats["frequencies"].items())
        top = ", ".join(f"{k} {v:.0%}" for k, v in freq[:TOP_CATEGORIES])
        more = stats.get("distinct", len(freq)) - min(len(freq), TOP_CATEGORIES)
        return top + (f", +{more} more" if more > 0 else "") if top else "no values"
    if "min" in stats:
        median = stats.get("quantiles", {}).get("0.5")
        text = f"{_num(stats['min'])} to {_num(stats['max'])}"
        return text + (f", median {_num(median)}" if median is not None else "")
    if spec.minimum is not None:
        return f"{_num(spec.minimum)} to {_num(spec.maximum)}"
    return "no values"


def _training_data(card: ModelCard) -> Section:
    stats = (card.baseline or {}).get("features", {})
    rows = []
    for spec in card.input_schema.features:
        s = stats.get(spec.name, {})
        null = f"{s['null_rate']:.1%}" if "null_rate" in s else "?"
        kind = spec.type + (", pii" if spec.pii else "") + (", nullable" if spec.nullable else "")
        kind += "" if spec.required else ", not read by the model (optional)"
        rows.append((spec.name, kind, null, _feature_summary(spec, s)))
    training_rows = card.metrics.get("training_rows")
    lines = (
        f"{_num(training_rows) if training_rows is not None else 'An unknown number of'} training rows, "
        f"{len(card.input_schema.features)} input features.",
    )
    return Section(
        "Training data",
        lines=lines,
        table=Table(("Feature", "Type", "Null rate", "Range or top categories"), tuple(rows)),
    )


def _metrics(card: ModelCard) -> Section:
    m = card.metrics
    rows = tuple((k, _num(v)) for k, v in m.items() if isinstance(v, float))
    split = m.get("split", "unknown")
    note = f"Measured on the {split} data ({_num(m.get('rows', '?'))} rows)."
    if split == "training":
        note += " Training metrics are optimistic: publish with a holdout set for honest ones."
    return Section("Metrics", lines=(note,), table=Table(("Metric", "Value"), rows))


def _importance(card: ModelCard) -> Section:
    imp = card.importance
    if not imp:
        return Section("Feature importance", lines=(NOT_RECORDED,))
    features = imp.get("features", [])
    top = max((f["mean"] for f in features), default=0.0)
    items = tuple(
        (f["name"], max(f["mean"], 0.0) / top if top > 0 else 0.0, f"{f['mean']:+.4f} ± {f['std']:.4f}")
        for f in features
    )
    note = (
        f"Permutation importance: the mean drop in {imp.get('scoring')} when one input is shuffled "
        f"({imp.get('n_repeats')} repeats on {_num(imp.get('rows'))} {imp.get('split')} rows). "
        "Zero or negative: the model does not rely on it."
    )
    return Section("Feature importance", lines=(note,), bars=Bars(items))


def _segments(card: ModelCard) -> list[Section]:
    """One section per segment feature (publish --segment / --sensitive): its groups' metrics and its gaps."""
    section = card.segments
    if not section:
        return []
    out = []
    for f in section["features"]:
        header, rows = segment_rows(f)
        sensitive = " (sensitive: demographic parity and equal opportunity differences too)" if f["sensitive"] else ""
        note = (
            f"Metrics per group of {f['name']!r} on the {section['split']} split{sensitive}; "
            f"groups under {section['min_group_rows']} rows are too small to compare."
        )
        gaps = tuple(gap_text(g) for g in f["gaps"]) or (no_gap_text(section),)
        title = f"Segments: {f['name']}"
        out.append(Section(title, lines=(note,), bullets=gaps, table=Table(tuple(header), tuple(rows))))
    return out


def _decision(card: ModelCard) -> Section:
    d = card.decision
    if not d:
        text = (
            NOT_RECORDED
            if card.documentation is None  # every card published since these sections exist has documentation
            else "No decision threshold: the model is not a binary classifier with probabilities."
        )
        return Section("Decision threshold", lines=(text,))
    source = {"default": "the default", "user": "set by the publisher", "costs": "chosen to minimize error costs"}
    lines = [
        f"Positive class {d.get('positive_class')!s} when its probability is at least {_num(d.get('threshold'))} "
        f"({source.get(d.get('source'), d.get('source'))})."
    ]
    costs = d.get("costs")
    if costs:
        lines.append(
            f"Costs: a false positive costs {_num(costs['false_positive'])}, a false negative "
            f"{_num(costs['false_negative'])}."
        )
    for split in ("holdout", "training"):
        if f"{split}_expected_cost" in d:
            lines.append(
                f"Expected cost per row on the {split} data at this threshold: {d[f'{split}_expected_cost']:.4g}."
            )
    return Section("Decision threshold", lines=tuple(lines))


def _quality(card: ModelCard) -> Section:
    q = card.quality
    if q is None:
        return Section("Data quality", lines=(NOT_RECORDED,))
    warnings = tuple(
        f"[{w['check']}]" + (f" {w['feature']}" if w.get("feature") else "") + f": {w['message']}"
        for w in q.get("warnings", [])
    )
    passed = ", ".join(q.get("checks_passed", [])) or "none"
    lines = (("No warnings." if not warnings else f"{len(warnings)} warning(s) at publish:"),)
    return Section("Data quality", lines=(*lines,), bullets=(*warnings, f"Checks passed: {passed}"))


def _limitations(card: ModelCard) -> Section:
    doc = card.documentation or {}
    given = tuple(doc.get("limitations", []))
    derived: list[str] = []
    pii = list(card.input_schema.pii_features)
    if pii:
        derived.append(
            f"Personal data features ({', '.join(pii)}) are represented by a stand-in value in the explanation "
            "background, so explanations give them no attribution beyond it."
        )
    if card.metrics.get("split") == "training":
        derived.append("No holdout set was given: the metrics are measured on the training data.")
    if card.documentation is None:
        derived.append("This card predates documented limitations.")
    if not given and not derived:
        return Section("Known limitations", lines=("None stated.",))
    return Section("Known limitations", bullets=(*given, *derived))


# --- Markdown -----------------------------------------------------------------------------------------------------


def _md(text: Any) -> str:
    s = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return s.replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _md_table(table: Table) -> list[str]:
    out = ["| " + " | ".join(_md(h) for h in table.header) + " |", "|" + "---|" * len(table.header)]
    out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in table.rows]
    return out


def render_markdown(title: str, sections: Sequence[Section]) -> str:
    out = [f"# {_md(title)}", ""]
    for s in sections:
        out += [f"## {_md(s.title)}", ""]
        for line in s.lines:
            out += [_md(line), ""]
        if s.bullets:
            out += [f"- {_md(b)}" for b in s.bullets] + [""]
        if s.table:
            out += [*_md_table(s.table), ""]
        if s.bars:
            rows = tuple((name, "█" * round(share * BAR_WIDTH) or "·", label) for name, share, label in s.bars.items)
            out += [*_md_table(Table(("Feature", "Importance", "Score drop"), rows)), ""]
    return "\n".join(out).rstrip() + "\n"


# --- HTML ---------------------------------------------------------------------------------------------------------

_STYLE = """
body{font:15px/1.5 system-ui,-apple-system,Segoe UI,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em;border-bottom:2px solid #333}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%}td,th{padding:.3em .6em;border-bottom:1px solid #eee;text-align:left;
vertical-align:top}th{background:#f6f6f6}.bar{background:#eef;width:100%;height:1em;position:relative}
.bar span{display:block;height:100%;background:#4a6fd1}td.name{white-space:nowrap}td.num{white-space:nowrap;
font-family:ui-monospace,monospace}li{margin:.2em 0}
"""


def _h(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _html_table(table: Table) -> list[str]:
    out = ["<table>", "<tr>" + "".join(f"<th>{_h(h)}</th>" for h in table.header) + "</tr>"]
    out += ["<tr>" + "".join(f"<td>{_h(c)}</td>" for c in row) + "</tr>" for row in table.rows]
    return [*out, "</table>"]


def render_html(title: str, sections: Sequence[Section]) -> str:
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_h(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head><body>",
        f"<h1>{_h(title)}</h1>",
    ]
    for s in sections:
        out.append(f"<section><h2>{_h(s.title)}</h2>")
        out += [f"<p>{_h(line)}</p>" for line in s.lines]
        if s.bullets:
            out += ["<ul>", *(f"<li>{_h(b)}</li>" for b in s.bullets), "</ul>"]
        if s.table:
            out += _html_table(s.table)
        if s.bars:
            out += ["<table>", "<tr><th>Feature</th><th>Importance</th><th>Score drop</th></tr>"]
            for name, share, label in s.bars.items:
                width = f"{100 * share:.1f}%"
                out.append(
                    f'<tr><td class="name">{_h(name)}</td><td><div class="bar" title="{_h(label)}">'
                    f'<span style="width:{width}"></span></div></td><td class="num">{_h(label)}</td></tr>'
                )
            out.append("</table>")
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
