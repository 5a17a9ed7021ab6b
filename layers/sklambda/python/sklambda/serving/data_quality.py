"""Data quality at inference: values the model was not trained on are scored but flagged.

Three checks per row and feature, against the training profile in the card's schema:
- `out_of_range`: a number below the training minimum or above the training maximum;
- `unseen_category`: a category the training data did not have (when the card lists the categories);
- `unexpected_null`: a null where training had none (accepted only when publish proved the model scores it:
  `FeatureSpec.accepts_null`, see `probe_null_tolerance`).
pii features carry no range or category list, so they are never flagged (their values are not in the card).
Flags never change a prediction; callers return them per row and count them in metrics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from sklambda.registry.schema import CATEGORY, INTEGER, NUMBER, InputSchema, to_records

OUT_OF_RANGE, UNSEEN_CATEGORY, UNEXPECTED_NULL = "out_of_range", "unseen_category", "unexpected_null"
FLAG_CODES = (OUT_OF_RANGE, UNSEEN_CATEGORY, UNEXPECTED_NULL)


@dataclass(frozen=True)
class Flag:
    row: int
    field: str
    code: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "code": self.code, "message": self.message}


def _fmt(v: float) -> str:
    return f"{v:g}"


@dataclass(frozen=True)
class _Check:
    field: str
    code: str
    minimum: float | None = None
    maximum: float | None = None
    known: frozenset[str] | None = None

    def bad(self, v: Any) -> bool:
        """The scalar test, for request rows (a few rows: a Python loop beats building arrays)."""
        if self.code == UNEXPECTED_NULL:
            return v is None or (isinstance(v, float) and v != v)
        if v is None or (isinstance(v, float) and v != v):
            return False
        if self.code == OUT_OF_RANGE:
            return v < self.minimum or v > self.maximum  # type: ignore[operator]
        return v not in self.known  # type: ignore[operator]

    def bad_array(self, a: np.ndarray) -> np.ndarray:
        """The vectorized test, for batch frames."""
        if self.code == UNEXPECTED_NULL:
            return np.asarray(pd.isna(a), dtype=bool)
        if self.code == OUT_OF_RANGE:
            a = a.astype(float, copy=False)
            with np.errstate(invalid="ignore"):
                return (a < self.minimum) | (a > self.maximum)
        present = ~np.asarray(pd.isna(a), dtype=bool)
        return present & ~pd.Series(a, dtype=object).isin(self.known).to_numpy()

    def message(self, v: Any) -> str:
        if self.code == OUT_OF_RANGE:
            return f"{_fmt(float(v))} is outside the training range [{_fmt(self.minimum)}, {_fmt(self.maximum)}]"
        if self.code == UNSEEN_CATEGORY:
            shown = v if len(str(v)) <= 40 else str(v)[:37] + "..."
            return f"category {shown!r} was not seen in training ({len(self.known or ())} known categories)"
        return "is null; training had no nulls here"


class Flagger:
    """Built once per loaded model: the per-feature checks, compiled from the schema."""

    def __init__(self, schema: InputSchema) -> None:
        self._checks: list[_Check] = []
        for spec in schema.features:
            if spec.type in (NUMBER, INTEGER) and spec.minimum is not None and spec.maximum is not None:
                self._checks.append(_Check(spec.name, OUT_OF_RANGE, minimum=spec.minimum, maximum=spec.maximum))
            if spec.type == CATEGORY and spec.categories is not None:
                self._checks.append(_Check(spec.name, UNSEEN_CATEGORY, known=frozenset(spec.categories)))
            if spec.accepts_null and not spec.nullable:
                self._checks.append(_Check(spec.name, UNEXPECTED_NULL))

    def flag_rows(self, rows: Sequence[Mapping[str, Any]]) -> list[Flag]:
        """Flags of validated request rows, ordered by row then by schema order."""
        return [
            Flag(i, c.field, c.code, c.message(row[c.field]))
            for i, row in enumerate(rows)
            for c in self._checks
            if c.bad(row[c.field])
        ]

    def count(self, frame: pd.DataFrame) -> dict[str, int]:
        """Flags per code of a frame, without building each flag."""
        out: Counter[str] = Counter()
        for c in self._checks:
            n = int(np.count_nonzero(c.bad_array(frame[c.field].to_numpy())))
            if n:
                out[c.code] += n
        return dict(out)

    def flag(self, frame: pd.DataFrame) -> list[Flag]:
        """Flags of a validated frame (batch), ordered by row then by schema order."""
        found: list[tuple[int, int, Flag]] = []
        for order, c in enumerate(self._checks):
            values = frame[c.field].to_numpy()
            found.extend((int(i), order, Flag(int(i), c.field, c.code, c.message(values[i])))
                         for i in np.flatnonzero(c.bad_array(values)))  # fmt: skip
        return [f for _, _, f in sorted(found, key=lambda t: (t[0], t[1]))]


def counts(flags: list[Flag]) -> dict[str, int]:
    """Flags per code (for metrics)."""
    return dict(Counter(f.code for f in flags))


def probe_null_tolerance(model: Any, X: pd.DataFrame, schema: InputSchema, rows: int = 5) -> InputSchema:
    """Mark each feature without nulls in training whose null the model still scores (an imputer), by scoring
    a few training rows with that feature set to null. Features the model cannot score null stay refused."""
    sample = X.head(rows)
    features = []
    for spec in schema.features:
        accepts = False
        if not spec.nullable:
            trial = replace(spec, accepts_null=True)
            probe = InputSchema(tuple(trial if f.name == spec.name else f for f in schema.features))
            records = to_records(sample)
            for r in records:
                r[spec.name] = None
            try:
                out = model.predict(probe.frame(records))
                accepts = len(out) == len(records)
            except Exception:  # the model cannot score a null here: requests with one stay refused
                accepts = False
        features.append(replace(spec, accepts_null=accepts))
    return InputSchema(tuple(features))
