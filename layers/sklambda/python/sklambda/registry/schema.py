"""The input schema of a model: inferred from training data at publish, enforced on every request."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sklambda.errors import FieldError, InvalidInput, PublishRejected, is_unicode, printable

NUMBER, INTEGER, CATEGORY, BOOLEAN = "number", "integer", "category", "boolean"
FEATURE_TYPES = (NUMBER, INTEGER, CATEGORY, BOOLEAN)
# Beyond this many distinct values a categorical column is almost certainly an identifier or free text;
# the card keeps no category list for it (so requests are not checked against one).
MAX_CATEGORIES = 200
# How a null of a category column reaches the model: as the missing marker the training data had, so an imputer
# fitted with missing_values=np.nan (scikit-learn's default) sees a NaN and not a None it would take for a category.
MISSING_NAN, MISSING_NONE, MISSING_NA = "nan", "none", "pd.NA"
MISSING_MARKERS = (MISSING_NAN, MISSING_NONE, MISSING_NA)
# What a request's numbers must fit in: integer features go to the model as int64, numbers as float64.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FLOAT64_MAX = sys.float_info.max

if TYPE_CHECKING:  # pandas is imported where a DataFrame is built: a compiled model's container never imports it
    import pandas as pd


@dataclass(frozen=True)
class FeatureSpec:
    """One input feature of a model card's schema.

    type: one of FEATURE_TYPES ("number", "integer", "category", "boolean").
    nullable: training data had nulls here (or publish was told to allow them).
    pii: personal data: the card keeps no range or categories for it, capture pseudonymizes it, data-quality checks skip
        it.
    minimum, maximum: the training range of a numeric feature (None for pii or all-null columns).
    categories: the training categories of a category feature; None when there were more than MAX_CATEGORIES (an
        identifier or free text) or for pii.
    required: False for a column the model never reads (publish found it dropped, e.g. by a ColumnTransformer with
        remainder="drop", and proved the answers unchanged without it): requests may omit it or send null, and it
        reaches the model as its missing marker. `is_required` is the one test of it.
    """

    name: str
    type: str
    nullable: bool = False
    pii: bool = False
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] | None = None
    # Training had no null here, but publish proved the model scores one (an imputer): a null is scored and
    # scored with a data-quality warning instead of refused (sklambda.serving.data_quality).
    accepts_null: bool = False
    # Category columns: the marker nulls had in training (MISSING_*). None on cards published before it was
    # recorded: nulls then stay None, as those versions were served.
    missing: str | None = None
    required: bool = True

    def to_dict(self) -> dict:
        """The feature as the card's JSON stores it (optional keys only when set, so older signed cards keep their
        canonical bytes).
        """
        out = {
            "name": self.name,
            "type": self.type,
            "nullable": self.nullable,
            "pii": self.pii,
            "minimum": self.minimum,
            "maximum": self.maximum,
            "categories": list(self.categories) if self.categories is not None else None,
        }
        if self.accepts_null:  # only when set: cards signed before the field existed keep their canonical form
            out["accepts_null"] = True
        if self.missing is not None:
            out["missing"] = self.missing
        if not self.required:  # only when not: older cards keep their canonical form
            out["required"] = False
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureSpec:
        """A feature from the card's JSON. Raises ValueError for an unknown type, KeyError without a name."""
        if d.get("type") not in FEATURE_TYPES:
            raise ValueError(f"feature {d.get('name')!r} has unknown type {d.get('type')!r}")
        cats = d.get("categories")
        return cls(
            name=str(d["name"]),
            type=d["type"],
            nullable=bool(d.get("nullable", False)),
            pii=bool(d.get("pii", False)),
            minimum=d.get("minimum"),
            maximum=d.get("maximum"),
            categories=tuple(cats) if cats is not None else None,
            accepts_null=bool(d.get("accepts_null", False)),
            missing=d.get("missing") if d.get("missing") in MISSING_MARKERS else None,
            required=d.get("required", True) is not False,
        )

    @property
    def missing_value(self) -> Any:
        """What a null of this feature is in the frame the model scores (numeric columns: always NaN)."""
        if self.missing == MISSING_NA:
            import pandas as pd

            return pd.NA
        return np.nan if self.missing == MISSING_NAN else None

    @property
    def null_allowed(self) -> bool:
        """Whether a request may send null: the feature is nullable, publish proved the model scores a null, or the
        model never reads it."""
        return self.nullable or self.accepts_null or not self.required

    def check(self, value: Any) -> str | None:
        """Return a message saying what is wrong with `value` for this feature, or None if it is fine."""
        if value is None:
            return None if self.null_allowed else "is null but the feature is not nullable"
        if self.type in (NUMBER, INTEGER):
            if isinstance(value, bool) or not isinstance(value, int | float):
                return f"expected {_article(self.type)}, got {_describe(value)}"
            if isinstance(value, float) and not math.isfinite(value):
                return f"expected a finite {self.type}, got {value}"
            if self.type == INTEGER:
                if isinstance(value, float) and not value.is_integer():
                    return f"expected an integer, got {value}"
                if not INT64_MIN <= value <= INT64_MAX:
                    return f"expected an integer within the 64-bit range (±{INT64_MAX}), got {_describe(value)}"
            elif isinstance(value, int) and not -FLOAT64_MAX <= value <= FLOAT64_MAX:
                return f"expected a number within the 64-bit float range (±{FLOAT64_MAX:.4g}), got {_describe(value)}"
            return None
        if self.type == BOOLEAN:
            return None if isinstance(value, bool) else f"expected true or false, got {_describe(value)}"
        if not isinstance(value, str):
            return f"expected a string category, got {_describe(value)}"
        if not is_unicode(value):
            return f"expected a category as valid Unicode text, got {_describe(value)}, which holds a lone surrogate"
        return None

    @property
    def dtype(self) -> str:
        """The pandas dtype of the column the model receives (a nullable integer feature is float64, as in training)."""
        if self.type == NUMBER or (self.type == INTEGER and self.null_allowed):
            return "float64"
        if self.type == INTEGER:
            return "int64"
        if self.type == BOOLEAN and not self.null_allowed:
            return "bool"
        return "object"


def _describe(value: Any) -> str:
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {printable(shown)!r}"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int) and not -FLOAT64_MAX <= value <= FLOAT64_MAX:
        return f"an integer of {int(abs(value).bit_length() * math.log10(2)) + 1} digits"  # str() has a digit limit
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"{type(value).__name__} {value!r}"


@dataclass(frozen=True)
class InputSchema:
    """The features a model takes, in training column order."""

    features: tuple[FeatureSpec, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Feature names in training column order."""
        return tuple(f.name for f in self.features)

    @property
    def pii_features(self) -> tuple[str, ...]:
        """Names of the features marked pii."""
        return tuple(f.name for f in self.features if f.pii)

    @property
    def required_names(self) -> tuple[str, ...]:
        """Names of the features every row must have (`is_required`), in training column order."""
        return tuple(f.name for f in self.features if is_required(f))

    @property
    def optional_names(self) -> tuple[str, ...]:
        """Names of the features the model never reads: a row may omit them (`is_required`)."""
        return tuple(f.name for f in self.features if not is_required(f))

    def feature(self, name: str) -> FeatureSpec:
        """The feature called `name`; KeyError if there is none."""
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict:
        """The schema as the card's JSON stores it: {"features": [...]}."""
        return {"features": [f.to_dict() for f in self.features]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> InputSchema:
        """A schema from the card's JSON (ValueError/KeyError on a malformed feature)."""
        return cls(tuple(FeatureSpec.from_dict(f) for f in d["features"]))

    def validate(self, rows: Sequence[Any]) -> pd.DataFrame:
        """Check every row against the schema and return the DataFrame the model scores (see `frame`).

        rows: a sequence of JSON objects, {feature name: value}; a feature the model never reads (`is_required` False)
            may be left out. Every problem is collected, so the caller learns about every bad field in one answer: an
            unknown feature, a missing required one, a value of the wrong type, a null where none
            is allowed, NaN or an infinity, a number beyond float64 or an integer feature beyond int64, a category that
            is not valid Unicode.

        Raises InvalidInput (HTTP 422) with one FieldError (row index, field, message) per problem, or for no rows at
        all.
        """
        self._check(rows)
        return self.frame(rows)

    def _check(self, rows: Sequence[Any]) -> None:
        errors: list[FieldError] = []
        if not rows:
            raise InvalidInput("no instances given: send at least one row", errors=[FieldError("empty")])
        known = set(self.names)
        for i, row in enumerate(rows):
            if not isinstance(row, Mapping):
                errors.append(FieldError(f"expected an object of feature values, got {_describe(row)}", row=i))
                continue
            for name in row:
                if name not in known:
                    errors.append(FieldError("unknown feature", row=i, field=printable(str(name))))
            for spec in self.features:
                if spec.name not in row:
                    if spec.required:
                        errors.append(FieldError("missing feature", row=i, field=spec.name))
                    continue
                problem = spec.check(row[spec.name])
                if problem:
                    errors.append(FieldError(problem, row=i, field=spec.name))
        if errors:
            shown = "; ".join(str(e) for e in errors[:3])
            more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
            raise InvalidInput(f"{len(errors)} problem(s) in the input: {shown}{more}", errors=errors)

    def validate_columns(self, rows: Sequence[Any]) -> dict[str, np.ndarray]:
        """Check every row as `validate` does and return the validated columns (see `columns`) instead of a DataFrame:
        what a compiled model (sklambda.compiled) scores, without importing pandas.

        Raises InvalidInput as `validate`.
        """
        self._check(rows)
        return self.columns(rows)

    def columns(self, rows: Iterable[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """Rows already validated by `validate` as one 1-D numpy array per feature, in training order: float64 (nulls
        as NaN), int64 or bool as `FeatureSpec.dtype` says, object for categories (a null as the category's training
        missing marker). An optional feature a row leaves out is a null there. `pd.DataFrame(columns)` (object columns
        as object Series) is the frame `frame` gives; numpy only.
        """
        rows = rows if isinstance(rows, Sequence) else list(rows)
        return {
            f.name: _column(f, [r[f.name] for r in rows] if f.required else [r.get(f.name) for r in rows])
            for f in self.features
        }

    def frame(self, rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
        """Rows already validated by `validate` as the DataFrame the model scores: one column per feature in training
        order, each of `FeatureSpec.dtype`, a RangeIndex of len(rows); nulls as NaN, or as the category's training
        missing marker. An optional feature a row leaves out is a null there.
        """
        # Hot path: one DataFrame per request. A dict of one pd.Series per column cost ~0.6 ms for one row
        # (pandas builds, aligns and reindexes every Series); numpy arrays on one shared RangeIndex give the
        # same frame (columns, dtypes, values, block layout) in ~0.2 ms. See infra/sklambda_infra/bench.
        return self.frame_of(self.columns(rows))

    def frame_of(self, columns: Mapping[str, np.ndarray]) -> pd.DataFrame:
        """The DataFrame of validated columns (`columns`' output): the frame `frame` gives for the same rows."""
        import pandas as pd

        index = pd.RangeIndex(len(next(iter(columns.values()))) if columns else 0)
        # Object columns go in as Series: pandas 3 would infer its "str" dtype from a bare object array.
        data = {
            name: pd.Series(array, index=index, dtype=object, copy=False) if array.dtype == object else array
            for name, array in columns.items()
        }
        return pd.DataFrame(data, index=index)


def _column(spec: FeatureSpec, values: list[Any]) -> np.ndarray:
    """One validated column as pd.Series(values, dtype=spec.dtype).to_numpy() would hold it (nulls as NaN outside
    categories), built with numpy alone.

    An int64 column whose values numpy does not infer as int64 (an integer-valued float such as 3.0, which
    validation accepts) is converted value by value with int(): exact, where a float64 array would round integers
    beyond 2**53.
    """
    dtype = spec.dtype
    if spec.type != CATEGORY:
        values = [v if v is not None else np.nan for v in values]
    if dtype == "float64":
        return np.array(values, dtype=np.float64)
    if dtype == "int64":
        inferred = np.array(values)
        return inferred if inferred.dtype == np.int64 else np.array([int(v) for v in values], dtype=np.int64)
    if dtype == "bool":
        return np.array(values, dtype=bool)
    array = np.empty(len(values), dtype=object)
    array[:] = values
    if spec.missing is not None and spec.null_allowed:
        marker = spec.missing_value
        for i, v in enumerate(values):
            if v is None:
                array[i] = marker
    return array


def is_required(spec: FeatureSpec) -> bool:
    """Whether every row must carry this feature (a request, a batch file's header, an Open Inference Protocol input):
    False only for a column publish found the model never reads (`FeatureSpec.required`)."""
    return spec.required


def schema_changes(old: InputSchema, new: InputSchema, *, old_name: str = "old", new_name: str = "new") -> list[str]:
    """What makes rows shaped for one schema refused by the other (`validate`), one message each; empty when they are
    compatible: a feature `new` requires (`is_required`) that `old` does not take (rows shaped for `old` lack it:
    "missing feature"), a feature `old` requires that `new` does not take (rows shaped for `old` carry it: "unknown
    feature"), and a feature both take whose type differs. `old_name` and `new_name` name the versions in the
    messages (e.g. "version 3")."""
    changes = []
    old_names, new_names = set(old.names), set(new.names)
    for f in new.features:
        if is_required(f) and f.name not in old_names:
            changes.append(f"{new_name} requires {f.name!r} ({f.type}), which {old_name} does not take")
    for f in old.features:
        if is_required(f) and f.name not in new_names:
            changes.append(f"{old_name} requires {f.name!r} ({f.type}), which {new_name} does not take")
    for f in old.features:
        if f.name in new_names and (other := new.feature(f.name)).type != f.type:
            changes.append(f"{f.name!r} is {_article(f.type)} in {old_name}, {_article(other.type)} in {new_name}")
    return changes


def to_records(X: pd.DataFrame) -> list[dict]:
    """Rows as a JSON client would send them (NaN → null, numpy scalars → Python)."""
    frame = X.astype(object).where(X.notna(), None)
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in frame.to_dict("records")]


def infer_schema(
    X: pd.DataFrame,
    *,
    pii: Iterable[str] = (),
    nullable: Iterable[str] = (),
    categorical: Iterable[str] = (),
) -> InputSchema:
    """Infer each column's type, range, categories and nullability from training data."""
    import pandas as pd

    if not isinstance(X, pd.DataFrame):
        raise PublishRejected("a schema cannot be inferred from an array without column names: pass a pandas DataFrame")
    pii, nullable, categorical = set(pii), set(nullable), set(categorical)
    for label, given in (("pii", pii), ("nullable", nullable), ("categorical", categorical)):
        unknown = sorted(given - set(map(str, X.columns)))
        if unknown:
            raise PublishRejected(f"{label} names column(s) not in the training data: {', '.join(unknown)}")
    features = []
    for col in X.columns:
        name = str(col)
        s = X[col]
        has_null = bool(s.isna().any())
        kind = infer_type(s, forced_category=name in categorical)
        if kind is None:
            mixed = value_types(s)
            why = f": it mixes {mixed}" if mixed else ""
            raise PublishRejected(f"cannot infer a feature type for column {name!r} (dtype {s.dtype}){why}")
        minimum = maximum = None
        categories = None
        present = s.dropna()
        # Ranges and category lists of pii columns would put personal data into the card: keep none.
        if kind in (NUMBER, INTEGER) and len(present) and name not in pii:
            minimum, maximum = float(present.min()), float(present.max())
        if kind == CATEGORY:
            values = sorted({str(v) for v in present.unique()})
            categories = tuple(values) if len(values) <= MAX_CATEGORIES and name not in pii else None
        features.append(
            FeatureSpec(
                name=name,
                type=kind,
                nullable=has_null or name in nullable,
                pii=name in pii,
                minimum=minimum,
                maximum=maximum,
                categories=categories,
                missing=missing_marker(s) if kind == CATEGORY else None,
            )
        )
    return InputSchema(tuple(features))


def missing_marker(s: pd.Series) -> str:
    """The missing marker of a training column: the most common null value in it, else what pandas' dtype uses
    (NaN for numpy-backed and pandas 3 "str" columns, pd.NA for the "string" dtype), NaN for object columns, as
    pandas' readers (read_csv, read_parquet) produce."""
    import pandas as pd

    nulls = s[s.isna()]
    if len(nulls):
        counts = {MISSING_NAN: 0, MISSING_NONE: 0, MISSING_NA: 0}
        for v in nulls:
            counts[MISSING_NONE if v is None else MISSING_NA if v is pd.NA else MISSING_NAN] += 1
        return max(counts, key=lambda k: counts[k])
    na = getattr(s.dtype, "na_value", np.nan)
    return MISSING_NA if na is pd.NA else MISSING_NAN


def infer_type(s: pd.Series, *, forced_category: bool = False) -> str | None:
    """The feature type (FEATURE_TYPES) of a column from its dtype, and for object columns from its values (all
    booleans: boolean; all strings: category); None when no type fits (an object column mixing value types)."""
    import pandas as pd

    if forced_category:
        return CATEGORY
    if pd.api.types.is_bool_dtype(s):
        return BOOLEAN
    if pd.api.types.is_integer_dtype(s):
        return INTEGER
    if pd.api.types.is_float_dtype(s):
        return NUMBER
    if pd.api.types.is_string_dtype(s) or isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(s):
        present = s.dropna()
        if len(present) and all(isinstance(v, bool | np.bool_) for v in present):
            return BOOLEAN
        if len(present) and not all(isinstance(v, str) for v in present):
            return None
        return CATEGORY
    return None


def value_types(s: pd.Series, shown: int = 3) -> str:
    """The Python value types of a column's non-null values with the first row (position) holding each, e.g.
    "str (row 0: 'x') and int (row 1: 1)"; "" when they are all of one type."""
    import pandas as pd

    first: dict[str, tuple[int, Any]] = {}
    for i, v in enumerate(s.tolist()):
        if v is None or (isinstance(v, float) and v != v) or v is pd.NA:
            continue
        first.setdefault(type(v).__name__, (i, v))
        if len(first) > shown:
            break
    if len(first) < 2:
        return ""
    parts = [f"{t} (row {i}: {_describe_short(v)})" for t, (i, v) in list(first.items())[:shown]]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _describe_short(v: Any) -> str:
    text = repr(v.item() if isinstance(v, np.generic) else v)
    return text if len(text) <= 40 else text[:37] + "..."


def _article(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"
