"""Routing a request's rows between an alias's stable version and its canary version, and merging the answers.

An alias with a canary (sklambda.registry.store.Canary) answers each *caller* with one version, sticky: the caller key
of a row is the value of the canary's `key` feature in that row (its JSON text; a string as is), or, when the canary
has no key or the row has no value for it (missing or null), the row's inference id (sklambda.serving.ids). The key is
hashed by `Canary.takes`, the one routing rule. Rows are grouped by version, each group is scored by its own verified
model, and the answers are merged back in row order (`merge`), so a request whose rows belong to several callers can
be answered by both versions at once.

Nothing here runs for an alias without a canary: the predict route scores the stable version directly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sklambda.errors import FieldError, InvalidInput
from sklambda.registry.store import AliasRecord
from sklambda.serving.data_quality import DataQualityWarning
from sklambda.serving.scoring import Scored


def caller_key(row: Any, key: str | None, inference_id: str) -> str:
    """The caller key of one row: the JSON text of `row[key]` (a string as is, so "C17" and not '"C17"'), else
    `inference_id` (no key, a row that is not an object, or a missing or null value)."""
    if key is not None and isinstance(row, Mapping):
        value = row.get(key)
        if value is not None:
            return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return inference_id


def route_rows(record: AliasRecord, rows: Sequence[Any], inference_ids: Sequence[str]) -> list[str]:
    """The version answering each row (same length and order as `rows`): `record.route` of each row's caller key.

    `inference_ids` holds one id per row (the rows' prediction ids). Without a canary every row gets the stable version.
    """
    canary = record.canary
    if canary is None:
        return [record.version] * len(rows)
    key = canary.key
    return [record.route(caller_key(row, key, i)) for row, i in zip(rows, inference_ids, strict=True)]


@dataclass(frozen=True)
class Group:
    """The rows of one request answered by one version: `rows` are their indices in the request, ascending."""

    version: str
    rows: list[int]


def group_rows(versions: Sequence[str]) -> list[Group]:
    """The rows of each version (`versions`: one per row, as route_rows gives), versions in order of first row."""
    groups: dict[str, list[int]] = {}
    for i, version in enumerate(versions):
        groups.setdefault(version, []).append(i)
    return [Group(v, rows) for v, rows in groups.items()]


def in_request(failures: Sequence[tuple[InvalidInput, Group]]) -> InvalidInput:
    """One InvalidInput for the request from the InvalidInput of each group that failed, their rows numbered back in
    the request (a group's errors name rows of the group), ordered by row; the message as InputSchema.validate's."""
    errors = sorted(
        (FieldError(e.message, group.rows[e.row] if e.row is not None else None, e.field)
         for error, group in failures for e in error.errors),
        key=lambda e: -1 if e.row is None else e.row,
    )  # fmt: skip
    shown = "; ".join(str(e) for e in errors[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return InvalidInput(f"{len(errors)} problem(s) in the input: {shown}{more}", errors=errors)


@dataclass(frozen=True)
class Routed:
    """The merged answer of a request whose rows were routed, every list one entry per row in request order.

    versions: the version that answered each row. predictions: each row's. probabilities: {class: probability} per
    row (None for a row whose version gives none), None when no version gave any. warnings: data-quality warnings,
    `row` in the request's numbering. decisions: per row (None for a row whose version has no decision rule), None
    when no version has one. decision_rules: {version: its rule or None} of every version that answered.
    explanations: per row, None when not asked.
    """

    model_name: str
    versions: list[str]
    predictions: list
    probabilities: list[dict[str, float] | None] | None
    warnings: list[DataQualityWarning]
    decisions: list | None
    decision_rules: dict[str, dict | None]
    explanations: list[dict] | None

    @property
    def model_version(self) -> str | None:
        """The version that answered every row, None when the rows were answered by several versions."""
        answering = set(self.versions)
        return next(iter(answering)) if len(answering) == 1 else None


def merge(model_name: str, n: int, parts: Sequence[tuple[Group, Scored]]) -> Routed:
    """The answers of each group (`parts`, the Scored of Scorer.score on the group's rows) as one answer for the
    request's `n` rows, in row order. Raises ValueError when the groups do not cover each of the n rows once."""
    versions: list[str | None] = [None] * n
    predictions: list = [None] * n
    probabilities: list = [None] * n
    decisions: list = [None] * n
    explanations: list = [None] * n
    warnings: list[DataQualityWarning] = []
    rules: dict[str, dict | None] = {}
    for group, scored in parts:
        rules[group.version] = scored.decision_rule
        for j, i in enumerate(group.rows):
            if versions[i] is not None:
                raise ValueError(f"row {i} is in two groups")
            versions[i] = group.version
            predictions[i] = scored.predictions[j]
            if scored.probabilities is not None:
                probabilities[i] = scored.probabilities[j]
            if scored.decisions is not None:
                decisions[i] = scored.decisions[j]
            if scored.explanations is not None:
                explanations[i] = scored.explanations[j]
        warnings.extend(replace(w, row=group.rows[w.row]) for w in scored.warnings)
    if any(v is None for v in versions):
        raise ValueError("some rows are in no group")
    warnings.sort(key=lambda w: w.row)  # stable: a row's warnings keep their order
    return Routed(
        model_name,
        versions,  # type: ignore[arg-type]  # every entry set: checked above
        predictions,
        probabilities if any(s.probabilities is not None for _, s in parts) else None,
        warnings,
        decisions if any(s.decisions is not None for _, s in parts) else None,
        rules,
        explanations if any(s.explanations is not None for _, s in parts) else None,
    )
