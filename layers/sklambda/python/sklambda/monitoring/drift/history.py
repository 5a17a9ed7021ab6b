"""The drift check's history: one compact entry per checked window, the data of a model's monitoring page.

Each entry is built from a window's JSON report (`summarize`), so a lost history can be rebuilt from the reports.
An entry holds, per window: its bounds, the model version and its baseline's publish time, the verdict, the rows,
one drift score per feature with its threshold, the prediction distribution, and the names of the window's reports.
pii features keep only their null-rate change: no value of theirs is in a report, so none can be in an entry.

Domain only: no S3 (monitoring.drift_check stores the history next to the reports).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from sklambda.monitoring.drift.check import CATEGORICAL, NUMERIC, PII

HISTORY_FORMAT = "sklambda.monitoring.drift-history/v1"
# Quantiles of regression predictions per window: a subset of the baseline's (publishing.baseline.QUANTILES), so each
# window can be drawn against the baseline's own.
PREDICTION_QUANTILES = ("0.05", "0.25", "0.5", "0.75", "0.95")

# The one score a feature's chart plots, by column type: (test in the report, its threshold in DriftConfig, label).
# PSI and Jensen-Shannon distance are the effect sizes whose thresholds flag numeric and categorical features (with
# KS, a category's share and unseen categories: those flag too, and a flagged window is marked whatever the score);
# a pii feature is tested on its null rate only.
SCORES: Mapping[str, tuple[str, str, str]] = {
    NUMERIC: ("psi", "psi_threshold", "PSI"),
    CATEGORICAL: ("js", "js_threshold", "Jensen-Shannon distance"),
    PII: ("null_rate_delta", "null_rate_delta_threshold", "null rate change (absolute)"),
}


def prediction_distribution(
    task: str, predictions: Sequence[Any], baseline: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The distribution of one window's predictions, beside the baseline's, as the report's
    `prediction_distribution`.

    task: the card's task ("classification" or "regression"). predictions: [rows] labels or values. baseline: the
    card's `baseline["predictions"]` (publishing.baseline.prediction_baseline) or None.

    Classifiers: `{"type", "rows", "class_shares": {str(class): share}, "baseline_class_shares"}` over every class
    predicted (classes as the baseline keys them: str(class)). Regressors: `{"type", "rows", "mean", "std",
    "quantiles": {"0.05".."0.95": value}, "baseline": {"mean", "quantiles"}}`; values that are not finite numbers are
    left out, and an empty window has null statistics. Raises nothing on odd values.
    """
    baseline = baseline or {}
    if task != "regression":
        labels = pd.Series(list(predictions), dtype=object).dropna().astype(str)
        shares = labels.value_counts(normalize=True, sort=True)
        return {
            "type": "classification",
            "rows": len(labels),
            "class_shares": {str(k): float(v) for k, v in shares.items()},
            "baseline_class_shares": {str(k): float(v) for k, v in (baseline.get("class_frequencies") or {}).items()},
        }
    values = pd.to_numeric(pd.Series(list(predictions), dtype=object), errors="coerce").to_numpy(dtype="float64")
    values = values[np.isfinite(values)]
    base_q = baseline.get("quantiles") or {}
    out: dict[str, Any] = {
        "type": "regression",
        "rows": len(values),
        "mean": None,
        "std": None,
        "quantiles": {q: None for q in PREDICTION_QUANTILES},
        "baseline": {"mean": baseline.get("mean"), "quantiles": {q: base_q.get(q) for q in PREDICTION_QUANTILES}},
    }
    if len(values):
        with np.errstate(over="ignore", invalid="ignore"):  # near float64's limit the mean is inf: shown as null
            stats = [values.mean(), values.std(), *np.quantile(values, [float(q) for q in PREDICTION_QUANTILES])]
        mean, std, *quantiles = (_finite(v) for v in stats)
        out.update(mean=mean, std=std, quantiles=dict(zip(PREDICTION_QUANTILES, quantiles, strict=True)))
    return out


def summarize(document: Mapping[str, Any], reports: Mapping[str, str], *, window_end: str | None = None) -> dict:
    """The history entry of one window, from its JSON report `document` (as monitoring.drift_check writes it).

    reports: {"json", "html"} → the report files' names, relative to the model's report folder (links of the page).
    window_end: the window's end (ISO 8601) when the document does not state its window (reports written before the
    window was stated; their key names the end). Raises KeyError when the document has no verdict.
    """
    window = dict(document.get("window") or {})
    config = document.get("config") or {}
    features = []
    for column in document.get("features") or []:
        test, threshold, label = SCORES.get(column.get("type"), SCORES[NUMERIC])
        value = (column.get("tests") or {}).get(test)
        features.append(
            {
                "name": column.get("name"),
                "type": column.get("type"),
                "score": label,
                "value": abs(value) if isinstance(value, int | float) and test == "null_rate_delta" else value,
                "threshold": config.get(threshold),
                "drifted": bool(column.get("drifted")),
                "reasons": list(column.get("reasons") or []),
            }
        )
    return {
        "window": {
            "start": window.get("start"),
            "end": window.get("end") or window_end,
            "hours": window.get("hours"),
        },
        "reports": dict(reports),
        "model_version": (document.get("model") or {}).get("version"),
        "baseline_published_at": (document.get("baseline") or {}).get("published_at"),
        "checked_at": document.get("checked_at"),
        "verdict": document["verdict"],
        "model_drifted": bool(document.get("model_drifted")),
        "rows": document.get("rows"),
        "rows_in_window": document.get("rows_in_window"),
        "drifted_features": list(document.get("drifted_features") or []),
        "prediction_drifted": bool(document.get("prediction_drifted")),
        "features": features,
        "predictions": document.get("prediction_distribution") or _older_predictions(document),
    }


def merge(entries: Sequence[Mapping[str, Any]], entry: Mapping[str, Any], limit: int) -> list[dict]:
    """`entries` with `entry` added, ordered by window end, the last `limit` kept (at least 1).

    A window checked again (same end) replaces its earlier entry, as its reports are overwritten. Entries whose end
    cannot be read are dropped.
    """
    end = _end(entry)
    kept = [dict(e) for e in entries if _end(e) is not None and _end(e) != end]
    kept.append(dict(entry))
    kept.sort(key=lambda e: _end(e) or datetime.min)
    return kept[-max(1, limit) :]


def _end(entry: Mapping[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str((entry.get("window") or {}).get("end")))
    except ValueError:
        return None


def _older_predictions(document: Mapping[str, Any]) -> dict[str, Any] | None:
    """The prediction distribution of a report written before `prediction_distribution` existed: the predicted
    classes' shares on the baseline's categories, or a regressor's mean."""
    for column in document.get("predictions") or []:
        current = column.get("current") or {}
        if column.get("name") == "predicted_class" and "frequencies" in current:
            return {"type": "classification", "rows": column.get("rows"), "class_shares": current["frequencies"]}
        if column.get("name") == "prediction":
            return {"type": "regression", "rows": column.get("rows"), "mean": (column.get("tests") or {}).get("mean")}
    return None


def _finite(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None
