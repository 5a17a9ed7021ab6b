"""Drift between two DataFrames, for notebooks: the scheduled drift check's report without a card or a bucket.

    from sklambda.drift import compare
    report = compare(training_frame, last_week, prediction="predicted")
    report.verdict, report.drifted_features, report.to_dict()   # the scheduled check's verdict and JSON

Domain only: no S3, no Lambda.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sklambda.monitoring.drift import DriftConfig, DriftReport, check_drift
from sklambda.publishing.baseline import card_baseline
from sklambda.registry.schema import InputSchema, infer_schema

__all__ = ["compare"]


def compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    prediction: str | None = None,
    probabilities: Sequence[str] | None = None,
    target: str | None = None,
    schema: InputSchema | None = None,
    pii: Sequence[str] = (),
    config: DriftConfig | None = None,
) -> DriftReport:
    """Compare ``current`` with ``reference`` as the scheduled drift check compares a window with a card's baseline.

    reference, current: one row per example, the same feature columns (``current`` may lack some: they are listed in
        the report's ``missing_features``). The baseline is built from ``reference`` exactly as publish builds a
        card's (``publishing.baseline.card_baseline``), then ``check_drift`` runs on ``current``: same tests, family,
        thresholds and DriftReport (``report.to_dict()`` is the scheduled check's JSON minus its window and card
        fields).
    prediction: the column holding the model's predictions in both frames (compared as prediction drift, not as a
        feature): predicted classes, or values when the column is float (a regressor's). probabilities: with
        classes, the columns holding each class's probability, in class order (named by class after "proba_"/
        "probability_" prefixes are stripped), compared as the scheduled check compares them. target: a label column
        to leave out (label drift is not part of the check). schema: the features and their types; inferred from
        ``reference`` by ``infer_schema`` (with ``pii`` columns' values never read) when not given. pii: identifier
        columns (one value per row, e.g. a customer id): compared by null rate only, as publish does; left as a
        category, such a column drifts on every window (its values are all new).
    config: thresholds (DriftConfig); the defaults otherwise. A ``current`` with fewer than ``config.min_rows``
        rows (500 by default) is ``insufficient_data``: lower it (``DriftConfig(min_rows=100)``) to judge small
        frames, with less power.

    Raises ValueError when ``reference`` is empty or a named column is absent from either frame, and KeyError when
    ``reference`` lacks a feature of ``schema``.
    """
    if len(reference) == 0:
        raise ValueError("reference has no rows: there is nothing to compare with")
    extra = [c for c in (prediction, target, *(probabilities or ())) if c is not None]
    for name in extra:
        if name != target and (name not in reference.columns or name not in current.columns):
            raise ValueError(f"column {name!r} is not in both reference and current")
    features = [c for c in reference.columns if c not in extra]
    X = reference[features]
    schema = schema or infer_schema(X, pii=list(pii))
    preds_ref = preds_cur = proba_ref = proba_cur = classes = None
    if prediction is not None:
        preds_ref, preds_cur = reference[prediction].to_numpy(), current[prediction].to_numpy()
        if not pd.api.types.is_float_dtype(reference[prediction]):
            classes = [_class_name(c) for c in probabilities] if probabilities else sorted(map(str, set(preds_ref)))
            preds_ref, preds_cur = preds_ref.astype(str), preds_cur.astype(str)
            if probabilities:
                proba_ref = reference[list(probabilities)].to_numpy(dtype="float64")
                proba_cur = current[list(probabilities)].to_numpy(dtype="float64")
    baseline = card_baseline(X, schema, preds_ref, proba_ref, classes)
    window = current[[c for c in features if c in current.columns]]
    return check_drift(
        baseline,
        schema,
        window,
        predictions=None if preds_cur is None else np.asarray(preds_cur),
        probabilities=proba_cur,
        config=config,
    )


def _class_name(column: str) -> str:
    for prefix in ("probability_", "proba_"):
        if column.startswith(prefix):
            return column[len(prefix) :]
    return column
