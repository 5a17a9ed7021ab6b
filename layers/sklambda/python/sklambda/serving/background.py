"""The background sample stored in a model card: the reference rows explanations are measured against.

It is a small random sample of training rows, as JSON records. Values of `pii` features must never reach the
card, so in the sample they are replaced by one stand-in per feature (the most common training value would be
personal data too): the string "redacted" for text, the training median for numbers, False for booleans.
A model that really uses a pii feature therefore gets no attribution for it beyond that stand-in: the
explanation says so (`card.explanation["pii_replaced"]`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from sklambda.registry.schema import BOOLEAN, CATEGORY, INTEGER, InputSchema, to_records

DEFAULT_SIZE = 32
REDACTED = "redacted"


def _stand_in(spec_type: str, column: pd.Series) -> Any:
    if spec_type == CATEGORY:
        return REDACTED
    if spec_type == BOOLEAN:
        return False
    median = pd.to_numeric(column, errors="coerce").median()
    if pd.isna(median):
        return 0 if spec_type == INTEGER else 0.0
    return round(float(median)) if spec_type == INTEGER else float(median)


def background_sample(X: pd.DataFrame, schema: InputSchema, *, size: int = DEFAULT_SIZE, seed: int = 0) -> list[dict]:
    """Up to `size` training rows (seeded, so a republish of the same data gives the same sample) as records
    that pass `schema.validate`, with pii values replaced."""
    if size < 1:
        raise ValueError("the background sample needs at least one row")
    rows = X.sample(n=min(size, len(X)), random_state=seed) if len(X) > size else X
    records = to_records(rows[list(schema.names)])
    for spec in schema.features:
        if spec.pii:
            stand_in = _stand_in(spec.type, X[spec.name])
            for r in records:
                r[spec.name] = stand_in
    return records


def background_frame(records: Sequence[dict], schema: InputSchema) -> pd.DataFrame:
    """The stored sample as the frame the model sees (validated like a request)."""
    return schema.validate(list(records))
