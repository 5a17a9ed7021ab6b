"""Segments and fairness: a model's metrics per group of a categorical feature, the largest gap between groups and,
for sensitive features, the demographic parity and equal opportunity differences, flagged above a bound.

Pure: arrays in, a SegmentReport out; no AWS, no model. Used at publish (the card's `segments` section, see
sklambda.publishing.publisher) and meant for each quality window once labels are joined to predictions.

Definitions follow fairlearn 0.15 (https://fairlearn.org, `fairlearn.metrics`), which is not a dependency:
- selection rate of a group: the share of its rows predicted as the positive label (`selection_rate`);
- a gap: the largest minus the smallest group value of a metric (`MetricFrame.difference(method="between_groups")`);
- demographic parity difference: the gap of the selection rate (`demographic_parity_difference`);
- equal opportunity difference: the gap of the true positive rate, P(pred = positive | y = positive, group)
  (`equal_opportunity_difference`, the same as `true_positive_rate_difference`).
One departure: groups with fewer than `min_group_rows` rows are reported (size and values) as too small and left
out of every gap, where fairlearn compares every group whatever its size.

The flag rule. A gap is flagged when it exceeds its bound and is supported by the data:
- for a rate (accuracy, recall, selection rate, and so both fairness differences) the lower end of the 95 %
  interval of the difference between the highest and the lowest group must exceed the bound: Newcombe's hybrid
  score interval (Newcombe 1998, method 10) built from each group's Wilson interval. With 30 rows a group's rate
  is uncertain by about +-0.17, so a raw gap of 0.15 is often noise; the interval keeps such false alarms near
  2.5 % per gap while a real gap grows out of it as rows accumulate;
- for ROC AUC, MAE and mean bias, which have no such closed-form interval, the gap itself must exceed the bound
  (both groups having at least `min_group_rows` rows is then the only protection against noise).
A metric without a bound (MAE and mean bias have none by default: their unit is the target's) is never flagged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sklambda.monitoring.model_quality.metrics import roc_auc, wilson

CLASSIFICATION, REGRESSION = "classification", "regression"  # as sklambda.registry.card's (no import: kept pure)
ACCURACY, RECALL, SELECTION_RATE, ROC_AUC = "accuracy", "recall", "selection_rate", "roc_auc"
MAE, MEAN_BIAS = "mae", "mean_bias"
DEMOGRAPHIC_PARITY, EQUAL_OPPORTUNITY = "demographic_parity_difference", "equal_opportunity_difference"
CLASSIFICATION_METRICS = (ACCURACY, RECALL, SELECTION_RATE, ROC_AUC)
REGRESSION_METRICS = (MAE, MEAN_BIAS)
RATES = frozenset({ACCURACY, RECALL, SELECTION_RATE})  # proportions: Wilson intervals, Newcombe for the gap
# The fairness differences are these metrics' gaps, computed on sensitive features only.
FAIRNESS_OF = {DEMOGRAPHIC_PARITY: SELECTION_RATE, EQUAL_OPPORTUNITY: RECALL}
# What a bound can be set for: a metric's gap, or a fairness difference.
BOUND_NAMES = frozenset({*CLASSIFICATION_METRICS, *REGRESSION_METRICS, *FAIRNESS_OF})

# A group with fewer rows is reported with its size and values, never compared nor flagged.
MIN_GROUP_ROWS = 30
# Largest acceptable gap per metric (a difference of rates or AUCs): a common starting point, not a standard.
DEFAULT_BOUNDS: Mapping[str, float] = {
    ACCURACY: 0.1,
    RECALL: 0.1,
    SELECTION_RATE: 0.1,
    ROC_AUC: 0.1,
    DEMOGRAPHIC_PARITY: 0.1,
    EQUAL_OPPORTUNITY: 0.1,
}
CONFIDENCE = 0.95
MISSING_GROUP = None  # the label of rows whose group value is null


@dataclass(frozen=True)
class GroupMetrics:
    """One group of one feature.

    group: its label as text (None for rows where the feature is null). rows: its size. positives: rows whose true
    label is the positive one (binary classification; the denominator of recall). too_small: rows < the minimum,
    so left out of the gaps. metrics: {name: value or None where undefined (recall without positives, AUC with one
    class)}. intervals: {name: (low, high)}, the Wilson 95 % interval of each rate.
    """

    group: str | None
    rows: int
    positives: int | None
    too_small: bool
    metrics: Mapping[str, float | None]
    intervals: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready: intervals as [low, high]."""
        return {
            "group": self.group,
            "rows": self.rows,
            "positives": self.positives,
            "too_small": self.too_small,
            "metrics": dict(self.metrics),
            "intervals": {k: [lo, hi] for k, (lo, hi) in self.intervals.items()},
        }


@dataclass(frozen=True)
class Gap:
    """The largest difference of one metric between the groups of one feature that are large enough.

    name: the metric, or DEMOGRAPHIC_PARITY / EQUAL_OPPORTUNITY for a sensitive feature's differences.
    gap: highest minus lowest group value (>= 0). highest, lowest: those groups' labels. interval: the 95 % interval
    of that difference (rates only, else None). bound: the largest acceptable gap (None: not checked).
    flagged: see the module's flag rule.
    """

    name: str
    gap: float
    highest: str | None
    lowest: str | None
    interval: tuple[float, float] | None
    bound: float | None
    flagged: bool

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {
            "name": self.name,
            "gap": self.gap,
            "highest": self.highest,
            "lowest": self.lowest,
            "interval": list(self.interval) if self.interval is not None else None,
            "bound": self.bound,
            "flagged": self.flagged,
        }

    def describe(self, feature: str) -> str:
        """One line for people, e.g. "'gender': recall 0.82 for 'f' vs 0.61 for 'm' (gap 0.21 > 0.1)"."""
        interval = f", 95% interval {self.interval[0]:.3f} to {self.interval[1]:.3f}" if self.interval else ""
        return (
            f"{feature!r}: {self.name} gap {self.gap:.3f} between {self.highest!r} and {self.lowest!r}"
            f"{interval}; bound {self.bound}"
        )


@dataclass(frozen=True)
class FeatureReport:
    """One segment feature: its groups (largest first) and the gaps between them."""

    name: str
    sensitive: bool
    groups: tuple[GroupMetrics, ...]
    gaps: tuple[Gap, ...]

    def to_dict(self) -> dict:
        """JSON-ready."""
        return {
            "name": self.name,
            "sensitive": self.sensitive,
            "groups": [g.to_dict() for g in self.groups],
            "gaps": [g.to_dict() for g in self.gaps],
        }


@dataclass(frozen=True)
class SegmentReport:
    """Per-segment metrics of one evaluation set (the holdout at publish, a window's labelled predictions later)."""

    task: str
    rows: int
    positive_label: Any
    min_group_rows: int
    bounds: Mapping[str, float]
    features: tuple[FeatureReport, ...]

    @property
    def flagged(self) -> list[tuple[str, Gap]]:
        """(feature, gap) for every flagged gap."""
        return [(f.name, g) for f in self.features for g in f.gaps if g.flagged]

    def to_dict(self) -> dict:
        """The card's `segments` section (also what a window stores): JSON-ready, no NaN."""
        return {
            "task": self.task,
            "rows": self.rows,
            "positive_label": self.positive_label,
            "min_group_rows": self.min_group_rows,
            "confidence": CONFIDENCE,
            "bounds": dict(self.bounds),
            "features": [f.to_dict() for f in self.features],
            "flagged": [{"feature": name, "name": g.name, "gap": g.gap} for name, g in self.flagged],
        }


def segment_report(
    y_true: Any,
    y_pred: Any,
    proba: Any,
    groups: Mapping[str, Any],
    sensitive: Iterable[str] = (),
    *,
    task: str = CLASSIFICATION,
    positive_label: Any = None,
    metrics: Iterable[str] | None = None,
    bounds: Mapping[str, float] | None = None,
    min_group_rows: int = MIN_GROUP_ROWS,
) -> SegmentReport:
    """Metrics per group of each feature in `groups`, the largest gap of each, fairness differences for `sensitive`.

    y_true, y_pred: [rows], labels (classification) or numbers (regression). proba: [rows] probability of
    `positive_label` (binary classification; None: no ROC AUC). groups: {feature name: [rows] of its values}
    (categorical; nulls form one group labelled None). sensitive: names in `groups` whose demographic parity and
    equal opportunity differences are reported (binary classification only: both need a positive label).
    task: CLASSIFICATION or REGRESSION. positive_label: the positive class of a binary classifier; None for
    multiclass, where only accuracy is computed. metrics: a subset of CLASSIFICATION_METRICS or
    REGRESSION_METRICS (default: all of the task's). bounds: {metric or fairness difference: largest acceptable
    gap}, replacing DEFAULT_BOUNDS entry by entry. min_group_rows: smaller groups are too small (module docstring).

    Raises ValueError for arrays of different lengths, an unknown task or metric, a sensitive name not in
    `groups`, or a bound for an unknown metric or that is not a finite number >= 0.
    """
    if task not in (CLASSIFICATION, REGRESSION):
        raise ValueError(f"task must be {CLASSIFICATION!r} or {REGRESSION!r}, got {task!r}")
    y_true, y_pred = _array(y_true), _array(y_pred)
    n = len(y_true)
    p = None if proba is None else np.asarray(proba, dtype=float).reshape(-1)
    columns = {str(k): _array(v) for k, v in groups.items()}
    for what, arr in [("y_pred", y_pred), ("proba", p), *((f"groups[{k!r}]", v) for k, v in columns.items())]:
        if arr is not None and len(arr) != n:
            raise ValueError(f"{what} has {len(arr)} rows where y_true has {n}")
    sensitive = {str(s) for s in sensitive}
    if unknown := sorted(sensitive - set(columns)):
        raise ValueError(f"sensitive features {unknown} are not among the groups {sorted(columns)}")
    chosen = _metrics(task, positive_label, p, metrics)
    if unknown_bounds := sorted(set(bounds or {}) - BOUND_NAMES):
        raise ValueError(f"bounds for unknown metrics {unknown_bounds}; choose from {sorted(BOUND_NAMES)}")
    merged = {**DEFAULT_BOUNDS, **(bounds or {})}
    for name, bound in merged.items():
        if isinstance(bound, bool) or not isinstance(bound, int | float) or not math.isfinite(bound) or bound < 0:
            raise ValueError(f"the bound for {name!r} must be a finite number >= 0, got {bound!r}")
    binary = task == CLASSIFICATION and positive_label is not None
    features = []
    for name, values in columns.items():
        members = _group_rows(values)
        per_group = tuple(
            _group(label, rows, y_true, y_pred, p, chosen, positive_label, min_group_rows) for label, rows in members
        )
        gaps = [_gap(m, per_group, merged.get(m)) for m in chosen]
        if name in sensitive and binary:
            for fairness, metric in FAIRNESS_OF.items():
                gaps.append(_gap(metric, per_group, merged.get(fairness), named=fairness))
        features.append(FeatureReport(name, name in sensitive, per_group, tuple(g for g in gaps if g is not None)))
    return SegmentReport(
        task=task,
        rows=n,
        positive_label=_plain(positive_label),
        min_group_rows=min_group_rows,
        bounds=merged,
        features=tuple(features),
    )


def wilson_interval(successes: int, trials: int) -> tuple[float, float]:
    """The Wilson score interval of a proportion at CONFIDENCE (metrics.wilson), (low, high); (0, 1) for 0 trials."""
    if trials == 0:
        return 0.0, 1.0
    estimate = wilson(successes, trials, CONFIDENCE)
    return estimate.lower, estimate.upper


def newcombe_interval(p1: float, ci1: tuple[float, float], p2: float, ci2: tuple[float, float]) -> tuple[float, float]:
    """The hybrid score interval of p1 - p2 from each proportion's Wilson interval (Newcombe 1998, method 10)."""
    (l1, u1), (l2, u2) = ci1, ci2
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def _array(values: Any) -> np.ndarray:
    return np.asarray(values.to_numpy() if isinstance(values, pd.Series | pd.Index) else values, dtype=object).reshape(
        -1
    )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _metrics(task: str, positive_label: Any, proba: np.ndarray | None, metrics: Iterable[str] | None) -> list[str]:
    allowed = CLASSIFICATION_METRICS if task == CLASSIFICATION else REGRESSION_METRICS
    asked = list(metrics) if metrics is not None else list(allowed)
    if unknown := [m for m in asked if m not in allowed]:
        raise ValueError(f"unknown {task} metrics {unknown}; choose from {list(allowed)}")
    if task == CLASSIFICATION and positive_label is None:  # multiclass: recall, selection rate, AUC need a positive
        asked = [m for m in asked if m == ACCURACY]
    if proba is None:
        asked = [m for m in asked if m != ROC_AUC]
    return asked


def _label(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return MISSING_GROUP
    return str(_plain(value))


def _group_rows(values: np.ndarray) -> list[tuple[str | None, np.ndarray]]:
    """(label, row indices) per group, largest first, then by label."""
    labels = np.array([_label(v) for v in values], dtype=object)
    out = [(lab, np.flatnonzero(labels == lab)) for lab in dict.fromkeys(labels.tolist())]
    return sorted(out, key=lambda item: (-len(item[1]), item[0] is None, str(item[0])))


def _group(
    label: str | None,
    rows: np.ndarray,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    proba: np.ndarray | None,
    chosen: list[str],
    positive: Any,
    min_rows: int,
) -> GroupMetrics:
    yt, yp = y_true[rows], y_pred[rows]
    n = len(rows)
    values: dict[str, float | None] = {}
    intervals: dict[str, tuple[float, float]] = {}
    positives = None
    if positive is not None:
        is_pos, said_pos = _equals(yt, positive), _equals(yp, positive)
        positives = int(is_pos.sum())
    for m in chosen:
        if m == ACCURACY:
            hits = int(np.sum(_equals_pairwise(yt, yp)))
            values[m], intervals[m] = hits / n, wilson_interval(hits, n)
        elif m == SELECTION_RATE:
            chosen_rows = int(said_pos.sum())
            values[m], intervals[m] = chosen_rows / n, wilson_interval(chosen_rows, n)
        elif m == RECALL:
            found = int((is_pos & said_pos).sum())
            values[m] = found / positives if positives else None
            if positives:
                intervals[m] = wilson_interval(found, positives)
        elif m == ROC_AUC:
            values[m] = roc_auc(is_pos, proba[rows]).value if 0 < positives < n else None
        elif m == MAE:
            values[m] = float(np.mean(np.abs(yp.astype(float) - yt.astype(float))))
        elif m == MEAN_BIAS:  # predicted minus true: > 0 over-predicts
            values[m] = float(np.mean(yp.astype(float) - yt.astype(float)))
    return GroupMetrics(label, n, positives, n < min_rows, values, intervals)


def _equals(values: np.ndarray, label: Any) -> np.ndarray:
    return np.array([_plain(v) == label or str(_plain(v)) == str(label) for v in values], dtype=bool)


def _equals_pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([_plain(x) == _plain(y) for x, y in zip(a, b, strict=True)], dtype=bool)


def _gap(metric: str, groups: tuple[GroupMetrics, ...], bound: float | None, named: str | None = None) -> Gap | None:
    """The gap of `metric` between the large-enough groups where it is defined; None with fewer than two."""
    usable = [g for g in groups if not g.too_small and g.metrics.get(metric) is not None]
    if len(usable) < 2:
        return None
    high = max(usable, key=lambda g: g.metrics[metric])
    low = min(usable, key=lambda g: g.metrics[metric])
    gap = float(high.metrics[metric] - low.metrics[metric])
    interval = None
    if metric in RATES:
        interval = newcombe_interval(
            high.metrics[metric], high.intervals[metric], low.metrics[metric], low.intervals[metric]
        )
    if bound is None:
        flagged = False
    elif interval is not None:
        flagged = gap > bound and interval[0] > bound
    else:
        flagged = gap > bound
    return Gap(named or metric, gap, high.group, low.group, interval, bound, flagged)
