"""Data-quality warnings at inference: values unlike the training data are scored, each with a warning.

Three checks per row and feature, against the training profile in the card's schema (registry/schema.py, inferred
at publish); a warning's `code` names its check:
- `out_of_range`: a number below the training minimum or above the training maximum;
- `unseen_category`: a category the training data did not have (when the card lists the categories);
- `unexpected_null`: a null where training had none (accepted only when publish proved the model scores it:
  `FeatureSpec.accepts_null`, see `probe_null_tolerance`).
pii features carry no range or category list, so they are never checked (their values are not in the card); nor
are features the model never reads (`is_required` False), which a row may leave out.
A warning never changes a prediction: the API returns them per row (`warnings`), the batch summary counts them per
check (`data_quality_warnings`), and both count them in the `DataQualityWarnings` metric.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from sklambda.registry.schema import CATEGORY, INTEGER, NUMBER, InputSchema, is_required, to_records

if TYPE_CHECKING:  # batch frames only: the request path (check_rows) never imports pandas
    import pandas as pd

OUT_OF_RANGE, UNSEEN_CATEGORY, UNEXPECTED_NULL = "out_of_range", "unseen_category", "unexpected_null"
WARNING_CODES = (OUT_OF_RANGE, UNSEEN_CATEGORY, UNEXPECTED_NULL)


@dataclass(frozen=True)
class DataQualityWarning:
    """One value unlike the training data: `row` (0-based index in the request or frame), `field` (the feature),
    `code` (one of WARNING_CODES) and a message for people."""

    row: int
    field: str
    code: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """{"row", "field", "code", "message"}: one item of the API's `warnings`."""
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
        import pandas as pd

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


class DataQualityChecker:
    """The per-feature checks of one model, compiled once from its card's schema (Scorer builds one per model)."""

    def __init__(self, schema: InputSchema) -> None:
        self._checks: list[_Check] = []
        for spec in schema.features:
            if not is_required(spec):  # the model never reads it: how its values compare with training is moot
                continue
            if spec.type in (NUMBER, INTEGER) and spec.minimum is not None and spec.maximum is not None:
                self._checks.append(_Check(spec.name, OUT_OF_RANGE, minimum=spec.minimum, maximum=spec.maximum))
            if spec.type == CATEGORY and spec.categories is not None:
                self._checks.append(_Check(spec.name, UNSEEN_CATEGORY, known=frozenset(spec.categories)))
            if spec.accepts_null and not spec.nullable:
                self._checks.append(_Check(spec.name, UNEXPECTED_NULL))

    def check_rows(self, rows: Sequence[Mapping[str, Any]]) -> list[DataQualityWarning]:
        """The warnings of validated request rows (every feature present), ordered by row then by schema order."""
        return [
            DataQualityWarning(i, c.field, c.code, c.message(row[c.field]))
            for i, row in enumerate(rows)
            for c in self._checks
            if c.bad(row[c.field])
        ]

    def count(self, frame: pd.DataFrame) -> dict[str, int]:
        """Warnings per code of a validated frame (batch: one column per feature), without building each warning;
        codes without a warning are left out."""
        out: Counter[str] = Counter()
        for c in self._checks:
            n = int(np.count_nonzero(c.bad_array(frame[c.field].to_numpy())))
            if n:
                out[c.code] += n
        return dict(out)

    def check_frame(self, frame: pd.DataFrame | Mapping[str, np.ndarray]) -> list[DataQualityWarning]:
        """The warnings of a validated frame (or of {feature: numpy column}, the compiled path's rows), ordered by row
        then by schema order (as check_rows)."""
        found: list[tuple[int, int, DataQualityWarning]] = []
        for order, c in enumerate(self._checks):
            values = np.asarray(frame[c.field])
            found.extend((int(i), order, DataQualityWarning(int(i), c.field, c.code, c.message(values[i])))
                         for i in np.flatnonzero(c.bad_array(values)))  # fmt: skip
        return [f for _, _, f in sorted(found, key=lambda t: (t[0], t[1]))]


def counts(warnings: list[DataQualityWarning]) -> dict[str, int]:
    """Warnings per code (the `check` dimension of the DataQualityWarnings metric)."""
    return dict(Counter(w.code for w in warnings))


def probe_null_tolerance(model: Any, X: pd.DataFrame, schema: InputSchema, rows: int = 5) -> InputSchema:
    """The schema with `accepts_null` set on each feature without nulls in training whose null the model still
    scores (an imputer), found by scoring `rows` training rows of X with that feature set to null.

    Features the model cannot score null (any exception) stay refused; at inference a null in an accepting feature
    is scored with an unexpected_null warning. Called by publish; raises nothing.
    """
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
