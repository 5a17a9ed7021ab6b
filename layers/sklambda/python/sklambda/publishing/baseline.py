"""Baseline statistics stored in the card, for drift checks against live data later.

No raw values of `pii` features are kept: only their null rate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sklambda.registry.schema import BOOLEAN, CATEGORY, InputSchema

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
MAX_BINS = 10
TOP_CATEGORIES = 100


def numeric_summary(values: pd.Series | np.ndarray) -> dict[str, Any]:
    """Baseline statistics of a numeric column: count, null_rate, mean, std (population), min, max, the QUANTILES, and a
    histogram on up to MAX_BINS quantile bins (edges deduplicated, so ties give fewer bins).

    Only count and null_rate when every value is null. Quantile bins hold roughly equal mass, which keeps PSI stable
    (monitoring.drift compares live counts on these edges).
    """
    s = pd.Series(values, dtype="float64")
    present = s.dropna().to_numpy()
    out: dict[str, Any] = {"count": len(s), "null_rate": float(s.isna().mean()) if len(s) else 0.0}
    if not len(present):
        return out
    # Quantile bin edges: roughly equal mass per bin, which is what PSI needs to be stable.
    edges = np.unique(np.quantile(present, np.linspace(0, 1, MAX_BINS + 1)))
    if len(edges) < 2:
        edges = np.array([present[0], present[0]])
    counts, _ = np.histogram(present, bins=edges)
    out.update(
        {
            "mean": float(present.mean()),
            "std": float(present.std()),
            "min": float(present.min()),
            "max": float(present.max()),
            "quantiles": {str(q): float(v) for q, v in zip(QUANTILES, np.quantile(present, QUANTILES), strict=True)},
            "histogram": {"bin_edges": edges.tolist(), "counts": counts.astype(int).tolist()},
        }
    )
    return out


def categorical_summary(values: pd.Series) -> dict[str, Any]:
    """Baseline statistics of a categorical column (values compared as strings): count, null_rate, distinct, the shares
    of the TOP_CATEGORIES most frequent categories, and other_share, the rest.
    """
    s = pd.Series(values, dtype=object)
    present = s.dropna().astype(str)
    freq = present.value_counts(normalize=True)
    top = freq.head(TOP_CATEGORIES)
    return {
        "count": len(s),
        "null_rate": float(s.isna().mean()) if len(s) else 0.0,
        "distinct": int(present.nunique()),
        "frequencies": {str(k): float(v) for k, v in top.items()},
        "other_share": float(max(0.0, 1.0 - top.sum())) if len(freq) else 0.0,
    }


def feature_baseline(X: pd.DataFrame, schema: InputSchema) -> dict[str, Any]:
    """The card's baseline `features` section: {feature: summary} for every schema feature of `X`.

    pii features keep only count and null_rate (no values); category and boolean features get `categorical_summary`
    (booleans as "true"/"false"), numeric ones `numeric_summary`. Raises KeyError when `X` lacks a schema feature.
    """
    out: dict[str, Any] = {}
    for spec in schema.features:
        col = X[spec.name]
        if spec.pii:
            out[spec.name] = {"count": len(col), "null_rate": float(col.isna().mean()), "pii": True}
        elif spec.type in (CATEGORY, BOOLEAN):
            out[spec.name] = categorical_summary(
                col.map(lambda v: v if pd.isna(v) else str(v).lower() if isinstance(v, bool | np.bool_) else v)
            )
        else:
            out[spec.name] = numeric_summary(col)
    return out


def prediction_baseline(predictions: np.ndarray, probabilities: np.ndarray | None, classes: list | None) -> dict:
    """The card's baseline `predictions` section.

    Regressors (classes None): the numeric summary of the predictions. Classifiers: the frequencies of the predicted
    classes and, with `probabilities` ([rows, classes] in `classes` order), a numeric summary per class probability.
    """
    if classes is None:
        return {"type": "regression", **numeric_summary(predictions)}
    out: dict[str, Any] = {
        "type": "classification",
        "class_frequencies": categorical_summary(pd.Series(predictions).astype(str))["frequencies"],
    }
    if probabilities is not None:
        out["probability"] = {str(c): numeric_summary(probabilities[:, i]) for i, c in enumerate(classes)}
    return out
