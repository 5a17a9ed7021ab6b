"""Columns the model never reads: found from the fitted pipeline's structure, confirmed by its answers.

A ColumnTransformer passes each transformer only the columns it selects; with `remainder="drop"` (scikit-learn's
default) the columns no transformer selects, and those of a transformer set to "drop", never reach the model.
scikit-learn itself relies on this: `ColumnTransformer.transform` on a DataFrame requires only the columns of
transformers that are not "drop" (sklearn/compose/_column_transformer.py, "check that all names seen in fit are in
transform, unless they were dropped"). `unread_columns` follows that rule through Pipelines (their first step sees the
input), FeatureUnions (every part does) and nested ColumnTransformers (a part that selected several columns by name
sees a DataFrame of them); any other estimator is taken to read every column it is given.

The structure says which columns are dropped; `confirm_unread` then checks the one thing serving will do with them
(score the row with the column null, as its missing marker) gives the same predictions and probabilities as the real
values on training rows. A column is optional at inference only when both agree. No purely behavioural test is used
to find such columns: an estimator that ignored a column on the rows tried (a tree that never split on it there)
could still read it on others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from sklambda.registry.schema import InputSchema, to_records

# Training rows scored with and without the unread columns to confirm they change nothing.
CONFIRM_ROWS = 64


def unread_columns(model: Any, columns: Sequence[str]) -> dict[str, str]:
    """{column: why} for each input column (of `columns`, the training DataFrame's, in order) that the fitted `model`
    never passes on to an estimator, e.g. {"customer_id": "ColumnTransformer 'prep' drops it (remainder='drop')"}.

    Empty when nothing is provably unread (a model whose first step is not a ColumnTransformer, a Pipeline or a
    FeatureUnion reads everything). Raises nothing: a structure it does not understand reads every column.
    """
    try:
        read, why = _reads(model, list(columns), "")
    except Exception:  # a fitted object shaped unlike scikit-learn's: nothing is claimed unread
        return {}
    return {c: why.get(c, "no step of the model reads it") for c in columns if c not in read}


def _reads(est: Any, columns: list[str], where: str) -> tuple[set[str], dict[str, str]]:
    """(the columns of `columns` that `est` can read, why each other one is not read)."""
    if est is None or (isinstance(est, str) and est == "passthrough"):
        return set(columns), {}
    steps = getattr(est, "steps", None)
    if isinstance(steps, list) and steps:  # a Pipeline: only its first real step sees the input columns
        for name, step in steps:
            if step is None or (isinstance(step, str) and step == "passthrough"):
                continue
            return _reads(step, columns, f"{where}{name}.")
        return set(columns), {}
    parts = getattr(est, "transformer_list", None)
    if isinstance(parts, list):  # a FeatureUnion: every part sees every column
        read: set[str] = set()
        why: dict[str, str] = {}
        for name, part in parts:
            if isinstance(part, str) and part == "drop":
                continue
            got, reasons = _reads(part, columns, f"{where}{name}.")
            read |= got
            why.update(reasons)
        return read, why
    if hasattr(est, "transformers_") and hasattr(est, "_transformer_to_input_indices"):
        return _column_transformer_reads(est, columns, where)
    return set(columns), {}


def _column_transformer_reads(ct: Any, columns: list[str], where: str) -> tuple[set[str], dict[str, str]]:
    names_in = [str(c) for c in getattr(ct, "feature_names_in_", ())]
    if names_in != list(columns):  # fitted on other columns (or an array): nothing is claimed
        return set(columns), {}
    label = f"ColumnTransformer {where.rstrip('.')!r}" if where else "the ColumnTransformer"
    fitted = dict((name, trans) for name, trans, _ in ct.transformers_)
    read: set[str] = set()
    why: dict[str, str] = {}
    for name, indices in ct._transformer_to_input_indices.items():
        selected = [names_in[i] for i in indices]
        trans = fitted.get(name, "drop")
        if isinstance(trans, str) and trans == "drop":
            reason = "remainder='drop'" if name == "remainder" else f"its transformer {name!r} is 'drop'"
            for c in selected:
                why.setdefault(c, f"{label} drops it ({reason})")
            continue
        # A nested Pipeline or ColumnTransformer sees a DataFrame of the selected columns (`_column_transformer_reads`
        # checks it was fitted on exactly them); any other transformer reads them all.
        got, reasons = _reads(trans, selected, f"{where}{name}.")
        read |= got
        why.update(reasons)
    return read, why


def confirm_unread(model: Any, X: pd.DataFrame, schema: InputSchema, names: Sequence[str]) -> InputSchema | None:
    """The schema with `required=False` on `names` when scoring up to CONFIRM_ROWS training rows with those columns
    null (as serving builds the frame for rows that leave them out) gives exactly the predictions, and probabilities
    where the model has them, of the real values; None when any answer differs or scoring fails."""
    names = set(names)
    relaxed = InputSchema(tuple(replace(f, required=False) if f.name in names else f for f in schema.features))
    records = to_records(X.head(CONFIRM_ROWS))
    without = [{k: v for k, v in r.items() if k not in names} for r in records]
    try:
        for method in ("predict", "predict_proba"):
            if method == "predict_proba" and not hasattr(model, "predict_proba"):
                continue
            answer = getattr(model, method)
            full = np.asarray(answer(schema.frame(records)))
            left_out = np.asarray(answer(relaxed.frame(without)))
            if full.shape != left_out.shape or not _same(full, left_out):
                return None
    except Exception:  # the model cannot score the rows without them: they are read after all
        return None
    return relaxed


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool((a == b).all())


def encoder_categories(model: Any, columns: Sequence[str]) -> dict[str, tuple[str, np.ndarray]]:
    """{column: (where, categories)} for each input column that a fitted encoder (an estimator with `categories_`, as
    OneHotEncoder and OrdinalEncoder have, one array per input column) receives, following the same structure as
    `unread_columns`; inside a Pipeline, the first step with categories for as many columns as the Pipeline gets.

    For explaining why a model cannot score data: compare a column's values with the categories it was fitted on.
    Raises nothing; empty when nothing is found.
    """
    found: dict[str, tuple[str, np.ndarray]] = {}
    try:
        _encoders(model, list(columns), "", found)
    except Exception:  # a structure it does not understand: nothing found
        return {}
    return found


def _encoders(est: Any, columns: list[str], where: str, found: dict[str, tuple[str, np.ndarray]]) -> None:
    categories = getattr(est, "categories_", None)
    if isinstance(categories, list) and len(categories) == len(columns):
        label = f"{type(est).__name__} {where.rstrip('.')!r}" if where else type(est).__name__
        for c, cats in zip(columns, categories, strict=True):
            found.setdefault(c, (label, np.asarray(cats)))
        return
    steps = getattr(est, "steps", None)
    if isinstance(steps, list):
        for name, step in steps:
            if step is None or isinstance(step, str):
                continue
            before = len(found)
            _encoders(step, columns, f"{where}{name}.", found)
            if len(found) > before or hasattr(step, "transformers_"):
                return
        return
    if hasattr(est, "transformers_") and hasattr(est, "_transformer_to_input_indices"):
        names_in = [str(c) for c in getattr(est, "feature_names_in_", ())]
        if names_in != list(columns):
            return
        fitted = {name: trans for name, trans, _ in est.transformers_}
        for name, indices in est._transformer_to_input_indices.items():
            trans = fitted.get(name, "drop")
            if indices and not isinstance(trans, str):
                _encoders(trans, [names_in[i] for i in indices], f"{where}{name}.", found)
