"""Plain-text views of the registry for `sklambda models list` and `sklambda models show`.

Sections of aligned "label: value" lines and tables with a header row, in plain characters (no escape codes, no
box drawing), so the output reads the same in a terminal, a log and an email. Machine output is `--json`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sklambda.registry.card import ModelCard
from sklambda.registry.schema import FeatureSpec, is_required
from sklambda.registry.signing import SignatureCheck

MAX_CATEGORIES_SHOWN = 6  # the rest are counted ("+14 more")
TOP_IMPORTANCE = 5
LABEL_WIDTH = 14


def text_table(header: Sequence[str], rows: Iterable[Sequence[Any]], indent: str = "  ") -> str:
    """A table with a header row, its columns padded to their widest cell; the last column is not padded."""
    cells = [[str(c) for c in header], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [indent + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines)


def aliases_text(aliases: Mapping[str, str]) -> str:
    """The aliases as "production -> 2, staging -> 3", or "none"."""
    return ", ".join(f"{a} -> {v}" for a, v in sorted(aliases.items())) or "none"


def models_table(models: Mapping[str, tuple[Sequence[str], Mapping[str, str]]]) -> str:
    """`models list`: one row per model, {name: (versions, {alias: version})}."""
    if not models:
        return "no models published yet"
    rows = [
        (name, len(versions), versions[-1] if versions else "-", aliases_text(aliases))
        for name, (versions, aliases) in sorted(models.items())
    ]
    return text_table(("MODEL", "VERSIONS", "LATEST", "ALIASES"), rows, indent="")


def _field(label: str, value: Any) -> str:
    return f"  {(label + ':').ljust(LABEL_WIDTH)}{value}"


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def _values(f: FeatureSpec) -> str:
    """What the card records of a feature's training values: a range, categories, or why nothing."""
    if f.pii:
        return "(pii: values not recorded)"
    if f.minimum is not None and f.maximum is not None:
        return f"{f.minimum:g} .. {f.maximum:g}"
    if f.categories:
        shown = ", ".join(f.categories[:MAX_CATEGORIES_SHOWN])
        more = len(f.categories) - MAX_CATEGORIES_SHOWN
        return f"{shown}{f', +{more} more' if more > 0 else ''}"
    if f.type == "category":
        return "(too many categories to list)"
    return "-"


def _null(f: FeatureSpec) -> str:
    if f.nullable:
        return "yes"
    return "warn" if f.accepts_null else "no"


def schema_table(features: Sequence[FeatureSpec]) -> str:
    """The input schema: feature, type, null (yes | warn | no), required (no: the model never reads it), training
    range or categories, pii."""
    rows = [
        (f.name, f.type, _null(f), "yes" if is_required(f) else "no", _values(f), "yes" if f.pii else "")
        for f in features
    ]
    return text_table(("FEATURE", "TYPE", "NULL", "REQUIRED", "RANGE / CATEGORIES", "PII"), rows)


def gap_text(gap: Mapping[str, Any]) -> str:
    """One gap of a `segments` section for people: the groups, the bound and why it is or is not FLAGGED (a gap is
    flagged only when its 95 % interval lies above the bound: sklambda.monitoring.model_quality.fairness)."""
    text = f"{gap['name']} gap {gap['gap']:.3f} ({gap['highest']} vs {gap['lowest']}"
    interval = gap.get("interval")
    if interval:
        text += f", 95% interval {interval[0]:.3f} to {interval[1]:.3f}"
    if gap["bound"] is None:
        return text + "; no bound)"
    text += f"; bound {gap['bound']:g})"
    if gap["flagged"]:
        return text + "  FLAGGED"
    if gap["gap"] > gap["bound"]:
        return text + "  not flagged: the interval reaches below the bound (the groups are too small to tell)"
    return text


def segment_rows(feature: Mapping[str, Any]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """(header, rows) of one segment feature's groups: rows and each metric, "small" for groups left out of gaps."""
    metrics = list(dict.fromkeys(m for g in feature["groups"] for m in g["metrics"]))
    rows = [
        (g["group"] if g["group"] is not None else "(null)", str(g["rows"]), *(
            "-" if g["metrics"].get(m) is None else f"{g['metrics'][m]:.3f}" for m in metrics
        ), "small" if g["too_small"] else "")
        for g in feature["groups"]
    ]  # fmt: skip
    return ("group", "rows", *metrics, "note"), rows


def no_gap_text(section: Mapping[str, Any]) -> str:
    """Why a segment feature has no gap line."""
    return f"no gap: fewer than 2 groups of at least {section['min_group_rows']} rows"


def segments_text(section: Mapping[str, Any]) -> list[str]:
    """The card's `segments`: per feature, a table of its groups (rows and each metric; "small" groups are left out
    of the gaps), then its gaps with their bounds, FLAGGED where the rule of
    sklambda.monitoring.model_quality.fairness holds, and why not where a gap above its bound is not."""
    lines = [f"segments ({section['split']} split, groups under {section['min_group_rows']} rows are too small)"]
    for f in section["features"]:
        header, rows = segment_rows(f)
        title = f"{f['name']}{' (sensitive)' if f['sensitive'] else ''}"
        lines.append(text_table((title.upper(), *(h.upper() for h in header[1:])), rows))
        lines += [f"    {gap_text(gap)}" for gap in f["gaps"]] or [f"    {no_gap_text(section)}"]
    return lines


def rollout_lines(records: Sequence[Any]) -> list[str]:
    """The canary and shadow of each alias record (sklambda.registry.store.AliasRecord) that has one, as card_text's
    "label: value" lines: canary version, weight, key, since when and its rollback bounds; shadow version and since."""
    lines = []
    for r in sorted(records, key=lambda r: r.alias):
        if r.canary is not None:
            c = r.canary
            key = f"key {c.key}" if c.key else "key: each row's inference_id"
            bounds = ", ".join(f"{k}={v:g}" for k, v in sorted(c.bounds.items())) or "the defaults"
            share = f"{r.alias}: version {c.version} takes {c.weight:g} % of the callers ({key}; stable {r.version})"
            lines.append(_field("canary", f"{share} since {c.started_at}; rollback bounds: {bounds}"))
        if r.shadow is not None:
            lines.append(_field("shadow", f"{r.alias}: version {r.shadow.version} since {r.shadow.started_at}"))
    return lines


def compiled_text(card: ModelCard) -> str:
    """What serves `card`'s version in the predict function, in one line, as its card says: the compiled evaluator
    (sklambda.compiled) and its agreement with the estimator on the parity gate's rows, or scikit-learn and why (the
    card's `compiled`). A stack deployed with CompiledServing=Disabled serves every version with scikit-learn: the card
    cannot know it, so the line says so."""
    section = card.compiled
    if section is None:
        return "scikit-learn (published without trying the compiled evaluator)"
    if section.get("used"):
        agreement = section["agreement"]
        return (
            f"the compiled evaluator ({len(section['steps'])} steps, {section['artifact']['size']:,} bytes, sha256 "
            f"{section['artifact']['sha256'][:12]}), agreeing with the estimator on {agreement['rows']} rows to "
            f"{agreement['max_abs_difference']:.1e}, {agreement['class_flips']} class flips (scikit-learn in a stack "
            "deployed with CompiledServing=Disabled)"
        )
    return f"scikit-learn; not compiled: {section['reason']}"


def card_text(
    card: ModelCard, check: SignatureCheck, aliases: Mapping[str, str], unverified: str, rollouts: Sequence[Any] = ()
) -> str:
    """`models show`: identity, signature, aliases (and their canaries and shadows, `rollouts`: AliasRecords), metrics,
    the schema as a table, importance, decision, warnings.

    `unverified`: the warning printed first when the signature was not checked (--no-verify).
    """
    lines: list[str] = []
    if not check.verified:
        lines += [f"NOT VERIFIED: {unverified}", ""]
    lines.append(f"{card.name} version {card.version} ({card.task})")
    if card.description:
        lines.append(_field("description", card.description))
    lines.append(_field("created", card.created_at))
    lines.append(_field("estimator", card.estimator))
    if card.target:
        lines.append(_field("target", card.target))
    if card.classes:
        lines.append(_field("classes", ", ".join(map(str, card.classes))))
    lines.append(_field("scikit-learn", card.sklearn_version))
    lines.append(_field("artifact", f"{card.artifact.size:,} bytes, sha256 {card.artifact.sha256}"))
    lines.append(_field("served by", compiled_text(card)))
    if check.verified:
        lines.append(_field("signature", f"verified, {check.algorithm} with the trusted key {check.key_id}"))
    else:
        claimed = f"the card claims {card.signature.algorithm}" if card.signature else "the card is not signed"
        lines.append(_field("signature", f"NOT VERIFIED ({claimed})"))
    lines.append(_field("aliases", aliases_text(aliases)))
    lines += rollout_lines(rollouts)
    pointing = sorted(a for a, v in aliases.items() if v == card.version)
    if pointing:
        lines.append(_field("this version", f"is {', '.join(pointing)}"))
    if card.decision:
        d = card.decision
        lines.append(_field("decision", f"{d['positive_class']} when P >= {d['threshold']:.3f} ({d['source']})"))
    explained = "yes" if (card.explanation or {}).get("background") else "no (republish to add)"
    lines.append(_field("explanations", explained))
    documentation = card.documentation or {}
    if documentation.get("owner"):
        lines.append(_field("owner", documentation["owner"]))
    if documentation.get("intended_use"):
        lines.append(_field("intended use", documentation["intended_use"]))
    for limitation in documentation.get("limitations") or ():
        lines.append(_field("limitation", limitation))

    metrics = dict(card.metrics)
    scores = [(k, _number(v)) for k, v in metrics.items() if k not in ("split", "rows", "training_rows")]
    trained = f"; trained on {metrics['training_rows']:,} rows" if "training_rows" in metrics else ""
    rows = f", {metrics['rows']:,} rows" if "rows" in metrics else ""
    lines += ["", f"metrics ({metrics.get('split', 'unknown split')}{rows}{trained})"]
    lines.append(text_table(("METRIC", "VALUE"), scores))

    features = card.input_schema.features
    lines += ["", f"input schema ({len(features)} features)", schema_table(features)]
    if any(f.accepts_null and not f.nullable for f in features):
        lines.append("  NULL warn: a null is scored with a data-quality warning (publish proved the model imputes it)")
    if not all(is_required(f) for f in features):
        lines.append("  REQUIRED no: the model never reads it; a request may leave it out")

    if card.importance:
        imp = card.importance
        lines += ["", f"importance ({imp['scoring']} drop when shuffled, {imp['split']} split, top {TOP_IMPORTANCE})"]
        ranked = imp["features"][:TOP_IMPORTANCE]
        lines.append(text_table(("FEATURE", "MEAN", "STD"), [(f["name"], f"{f['mean']:+.4f}", f"{f['std']:.4f}")
                                                             for f in ranked]))  # fmt: skip
    if card.segments:
        lines += ["", *segments_text(card.segments)]
    warnings = (card.quality or {}).get("warnings", [])
    if warnings:
        lines += ["", "data quality warnings"]
        lines += [f"  [{w['check']}] {w.get('feature') or ''}{': ' if w.get('feature') else ''}{w['message']}"
                  for w in warnings]  # fmt: skip
    return "\n".join(lines)
