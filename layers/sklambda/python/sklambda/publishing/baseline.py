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
# The tails the drift check tests: the share of values below the 1st and above the 99th percentile.
TAIL_QUANTILES = (0.01, 0.99)
# The multivariate drift test's Spearman matrix: at most this many numeric features (the first in schema order) and
# training rows (a seeded sample: the matrix's noise at 50,000 rows is already ~0.005).
DEPENDENCE_MAX_FEATURES = 30
DEPENDENCE_MAX_ROWS = 50_000


def numeric_summary(values: pd.Series | np.ndarray) -> dict[str, Any]:
    """Baseline statistics of a numeric column: count, null_rate, mean, std (population), min, max, the QUANTILES, a
    histogram on up to MAX_BINS quantile bins (edges deduplicated, so ties give fewer bins), and ``tails``: the
    TAIL_QUANTILES' values and how many training values lie strictly beyond each ({"lower": {"edge", "beyond"},
    "upper": {...}}), which the drift check's exceedance tests need (cards published before have none).

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
    # Training values, not interpolations between two: the exceedance test counts what lies beyond an order statistic.
    low, high = np.quantile(present, TAIL_QUANTILES, method="inverted_cdf")
    out.update(
        {
            "mean": float(present.mean()),
            "std": float(present.std()),
            "min": float(present.min()),
            "max": float(present.max()),
            "quantiles": {str(q): float(v) for q, v in zip(QUANTILES, np.quantile(present, QUANTILES), strict=True)},
            "histogram": {"bin_edges": edges.tolist(), "counts": counts.astype(int).tolist()},
            "tails": {
                "lower": {"edge": float(low), "beyond": int((present < low).sum())},
                "upper": {"edge": float(high), "beyond": int((present > high).sum())},
            },
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


def dependence_baseline(X: pd.DataFrame, schema: InputSchema) -> dict[str, Any] | None:
    """The card's baseline `dependence` section: Spearman's correlation matrix of the numeric features, for the drift
    check's multivariate test (a change in how features move together, with every marginal unchanged).

    {"features": [names], "rows": training rows used (complete in every one of them), "spearman": the upper
    triangle row by row, i < j, rounded to 1e-4}. Numeric, non-pii features only, the first DEPENDENCE_MAX_FEATURES in
    schema order; a seeded sample of DEPENDENCE_MAX_ROWS rows. None when fewer than 2 such features or 50 complete rows.
    """
    from sklambda.monitoring.drift.stats import spearman  # one definition of the statistic, live and at publish

    names = [f.name for f in schema.features if not f.pii and f.type not in (CATEGORY, BOOLEAN) and f.name in X]
    names = names[:DEPENDENCE_MAX_FEATURES]
    if len(names) < 2:
        return None
    values = X[names].apply(pd.to_numeric, errors="coerce").to_numpy(dtype="float64")
    values = values[~np.isnan(values).any(axis=1)]
    if len(values) > DEPENDENCE_MAX_ROWS:
        values = values[np.random.default_rng(0).choice(len(values), DEPENDENCE_MAX_ROWS, replace=False)]
    if len(values) < 50:
        return None
    rho = spearman(values)
    upper = rho[np.triu_indices(len(names), k=1)]
    return {"features": names, "rows": len(values), "spearman": [round(float(r), 4) for r in upper]}


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


def card_baseline(
    X: pd.DataFrame,
    schema: InputSchema,
    predictions: np.ndarray | None = None,
    probabilities: np.ndarray | None = None,
    classes: list | None = None,
) -> dict[str, Any]:
    """The card's whole `baseline`, as publish stores it: {"features", "predictions" (when `predictions` are given),
    "dependence" (when `dependence_baseline` has one)}. Arguments as `feature_baseline` and `prediction_baseline`."""
    out: dict[str, Any] = {"features": feature_baseline(X, schema)}
    if predictions is not None:
        out["predictions"] = prediction_baseline(predictions, probabilities, classes)
    dependence = dependence_baseline(X, schema)
    if dependence is not None:
        out["dependence"] = dependence
    return out
