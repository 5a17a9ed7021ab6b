"""Segments at publish: check the columns named with `segments=` / `sensitive=` and compute the card's `segments`
section on the evaluation split (holdout, else training) with sklambda.monitoring.model_quality.fairness.

A pii column is refused as a segment or sensitive feature: the section stores each group's label, so the raw
values of a pii column would be written to the card (pseudonymized labels would be unreadable to a reviewer and
could be reversed by anyone holding the salt and a guess). Use a coarser, non-pii column (an age band, a region).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from sklambda.monitoring.model_quality.fairness import BOUND_NAMES, CLASSIFICATION, REGRESSION, segment_report
from sklambda.publishing.quality import Problem
from sklambda.registry.schema import BOOLEAN, CATEGORY, InputSchema

# More distinct values than this and a column is not a segment (an identifier, a free-text field).
MAX_SEGMENT_GROUPS = 50
CHECK = "segments"


def check_fairness_bounds(bounds: Mapping[str, float] | None) -> list[Problem]:
    """One refusal (check "segments") per bound named for no metric or difference (fairness.BOUND_NAMES), or not a
    number >= 0: refused before any metric is computed."""
    problems = []
    for name, value in (bounds or {}).items():
        if name not in BOUND_NAMES:
            known = ", ".join(sorted(BOUND_NAMES))
            problems.append(Problem(CHECK, name, f"a fairness bound for {name!r}, which is no metric: one of {known}"))
        elif isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            message = f"the fairness bound of {name!r} must be a number >= 0, got {value!r}"
            problems.append(Problem(CHECK, name, message))
    return problems


def check_segment_columns(
    X: pd.DataFrame,
    X_holdout: pd.DataFrame | None,
    schema: InputSchema,
    segments: Iterable[str],
    sensitive: Iterable[str],
) -> list[Problem]:
    """One refusal (check "segments") per named column that is not in the training data or the holdout, not a
    category or boolean in the schema (pass `categorical=[...]` to make an integer column one), marked pii, or with
    more than MAX_SEGMENT_GROUPS distinct values."""
    problems = []
    for name in dict.fromkeys([*segments, *sensitive]):
        role = "sensitive feature" if name in set(sensitive) else "segment"
        if name not in X.columns:
            problems.append(Problem(CHECK, name, f"the {role} {name!r} is not a column of the training data"))
            continue
        if X_holdout is not None and name not in X_holdout.columns:
            problems.append(Problem(CHECK, name, f"the {role} {name!r} is not a column of the holdout"))
            continue
        spec = schema.feature(name)
        if spec.pii:
            problems.append(
                Problem(
                    CHECK,
                    name,
                    f"the {role} {name!r} is pii: its group labels would put raw personal values in the card; "
                    f"segment by a coarser column that is not pii",
                )
            )
        elif spec.type not in (CATEGORY, BOOLEAN):
            problems.append(
                Problem(
                    CHECK,
                    name,
                    f"the {role} {name!r} is {spec.type}, not categorical: segments are groups of a category or "
                    f"boolean column (pass it in categorical= / --categorical if its values are codes)",
                )
            )
        elif (distinct := X[name].nunique(dropna=True)) > MAX_SEGMENT_GROUPS:
            problems.append(
                Problem(
                    CHECK,
                    name,
                    f"the {role} {name!r} has {distinct} distinct values, more than {MAX_SEGMENT_GROUPS} groups",
                )
            )
    return problems


def segments_section(
    model: Any,
    task: str,
    X_eval: pd.DataFrame,
    y_eval: pd.Series,
    split: str,
    segments: Iterable[str],
    sensitive: Iterable[str],
    *,
    positive: Any = None,
    threshold: float | None = None,
    bounds: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The card's `segments` section: SegmentReport.to_dict() plus "split".

    positive: the positive class of a binary classifier (None: the second of `classes_` for two classes, no
    positive label beyond). threshold: the card's decision threshold; when given, a row is predicted positive at
    P(positive) >= threshold (what the API's `decision` says), else the model's `predict` is used.
    """
    sensitive = list(sensitive)
    names = list(dict.fromkeys([*segments, *sensitive]))
    groups = {n: X_eval[n].to_numpy(dtype=object) for n in names}
    pred = np.asarray(model.predict(X_eval), dtype=object)
    proba = None
    if task == CLASSIFICATION:
        classes = [c.item() if isinstance(c, np.generic) else c for c in model.classes_]
        if positive is None and len(classes) == 2:
            positive = classes[1]
        if positive is not None and hasattr(model, "predict_proba"):
            proba = np.asarray(model.predict_proba(X_eval))[:, classes.index(positive)]
            if threshold is not None:
                negative = next(c for c in classes if c != positive)
                pred = np.where(proba >= threshold, positive, negative).astype(object)
    report = segment_report(
        y_eval.to_numpy(dtype=object),
        pred,
        proba,
        groups,
        sensitive,
        task=task if task in (CLASSIFICATION, REGRESSION) else CLASSIFICATION,
        positive_label=positive,
        bounds=bounds,
    )
    return {"split": split, **report.to_dict()}


def flagged_warnings(section: Mapping[str, Any]) -> list[Problem]:
    """One warning (check "segments") per flagged gap of a `segments` section."""
    out = []
    for f in section.get("features", []):
        for g in f["gaps"]:
            if g["flagged"]:
                interval = g["interval"]
                shown = f", 95% interval {interval[0]:.3f} to {interval[1]:.3f}" if interval else ""
                out.append(
                    Problem(
                        CHECK,
                        f["name"],
                        f"{g['name']} differs by {g['gap']:.3f} between {g['highest']!r} and {g['lowest']!r}"
                        f"{shown}, above the bound {g['bound']}",
                    )
                )
    return out
