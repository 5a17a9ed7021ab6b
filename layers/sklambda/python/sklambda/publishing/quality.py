"""Publish-time data quality: what makes a training set unfit to publish from, and what merely deserves a warning.

Domain code: it knows data frames and targets, not CLIs or Lambda events. `check_training_data` runs every
check and collects every problem, so one refused publish names all of them at once.

Refusals (publish stops; `QualityReport.raise_if_refused` raises PublishRejected):
    target              no target given, the target is all null, or it (or the holdout's) has some null values
    rows                no rows, fewer than MIN_TRAINING_ROWS training rows, a row count differing from the
                        target's (training or holdout), an empty holdout, or (classifiers) fewer than
                        MIN_CLASS_ROWS rows of the rarest class
    schema              the input schema cannot be inferred (the message of infer_schema)
    constant_feature    a training column with a single value in every row (all null included)
    missing_feature     a column the model expects (`feature_names_in_`) is not in the training data, or a
                        training column is not in the holdout data (extra holdout columns are refused too)
    column_type         a holdout column whose values are of another type than the training column's (integers
                        0/1 where training had "Yes"/"No", text where it had numbers, fractions where it had only
                        integers, booleans where it had categories, or a mix of types), named with a row
    holdout_overlap     the holdout is mostly copies of training rows: far more of its rows have an identical
                        training row (on the columns the model reads: an unread id would make every row unique)
                        than a random split of this data gives (`overlap_estimate`), unless `allow_holdout_overlap`
    metric_gate         a metric below its minimum (`check_metric_gates`), or a gate on an unknown metric

Warnings (stored in the card's `quality.warnings`, printed by the CLI):
    unused_feature      a column (not pii) the model never reads, optional at inference (added by the publisher,
                        sklambda.publishing.unread)
    holdout_overlap     more holdout rows have an identical training row than a random split gives, but the holdout
                        is not mostly copies (or the refusal was overridden with `allow_holdout_overlap`)
    class_imbalance     the rarest class is less than MIN_CLASS_SHARE of the training rows
    null_rate           a feature is null in more than MAX_NULL_RATE of the training rows
    leakage             one feature on its own almost determines the target: a numeric feature whose rank
                        AUC (binary) or |Pearson correlation| (regression) is at least LEAKAGE_SCORE, or a
                        categorical feature whose categories each hold one class for at least LEAKAGE_SCORE
                        of the rows, getting at least LEAKAGE_GAIN of the non-majority rows right (identifier-like
                        and pii columns are not judged: every id "predicts" its row)

Leakage is measured on the holdout data when given, else on training. Multiclass targets get the categorical
leakage check only.

Holdout overlap. Real data with a few discrete features has natural duplicates: in ISLR's Wage data (3,000 rows, 8
features: year, age and 6 categories), 14-15 % of the holdout rows of a correct random 80/20 split have an identical
training row; without `year`, 51 %. So the overlap is compared with what a random split of *this* data gives: the
share of training rows whose feature values occur again in training, 1 - N1/n (N1 rows whose values occur once in
n). That is Good's (1953) estimate of the coverage, the chance that a new row from the same data has values already
seen (I. J. Good, "The population frequencies of species and the estimation of population parameters", Biometrika
40), and it is the leave-one-out rate of duplicates. Its sampling error is Esty's (1983, "A normal limit law for a
nonparametric estimator of the coverage of a random sample", Annals of Statistics 11): variance
(N1/n + 2 N2/n - (N1/n)^2) / n, N2 the values occurring twice. The observed share of m holdout rows adds the binomial
variance p(1 - p)/m (p pooled over both sets), and z = (observed - expected) / standard error is a one-sided test. On
1,000 random splits of Wage per feature subset and split size (15,000 in all), z had standard deviation 0.96-1.04
and exceeded OVERLAP_Z = 4 once. The estimated share of copied holdout rows, (observed - expected) / (1 - expected),
then decides: a warning above OVERLAP_MIN_COPIED, a refusal from OVERLAP_REFUSE_COPIED (the holdout is mostly copies
of training rows), both only when z > OVERLAP_Z. Where a random split itself repeats OVERLAP_UNTESTABLE or more of
its rows (few distinct feature combinations), a copied holdout is within its sampling error (e.g. expected 98 %, a
copy 100 %, z = 2.4): publish warns that the check cannot tell, whatever the holdout, instead of passing it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from sklambda.errors import FieldError, PublishRejected
from sklambda.registry.card import CLASSIFICATION, REGRESSION
from sklambda.registry.schema import BOOLEAN, CATEGORY, INTEGER, NUMBER, infer_schema, infer_type, value_types

MIN_TRAINING_ROWS = 50  # below this, metrics, baselines and importances are noise
MIN_CLASS_ROWS = 10  # per class, for classifiers
# Holdout overlap (module docstring): one-sided z above which the overlap exceeds what a random split gives, and the
# estimated share of holdout rows copied from training above which that is reported (warning) or refused.
OVERLAP_Z = 4.0
OVERLAP_MIN_COPIED = 0.01
OVERLAP_REFUSE_COPIED = 0.5
# From this expected overlap on, a copied holdout is within a random split's sampling error: warned as untestable.
OVERLAP_UNTESTABLE = 0.5
MIN_CLASS_SHARE = 0.05  # warn when the rarest class is rarer than this
MAX_NULL_RATE = 0.30  # warn when a feature is null more often than this
LEAKAGE_SCORE = 0.99  # single-feature AUC, |correlation| or category purity that looks like leakage
# ... and for categorical purity, the share of the rows outside the majority class it gets right.
LEAKAGE_GAIN = 0.9
# A categorical column with more distinct values than this share of its rows is an identifier, not a feature
# whose categories can "map to one class" in any meaningful way.
MAX_IDENTIFIER_SHARE = 0.5

# Metrics where lower is better: a gate on them is a ceiling, not a floor.
LOWER_IS_BETTER = frozenset({"log_loss", "mae", "rmse"})
ALL_CHECKS = (
    "target",
    "rows",
    "schema",
    "constant_feature",
    "missing_feature",
    "column_type",
    "holdout_overlap",
    "class_imbalance",
    "null_rate",
    "leakage",
    "unused_feature",
)


@dataclass(frozen=True)
class Problem:
    """One finding: which check, which feature (None when it is about the whole data set), what is wrong."""

    check: str
    feature: str | None
    message: str

    def to_dict(self) -> dict:
        """The finding as the card's quality `warnings` hold it: {"check", "feature", "message"}."""
        return {"check": self.check, "feature": self.feature, "message": self.message}

    def __str__(self) -> str:
        where = f" {self.feature!r}" if self.feature is not None else ""
        return f"[{self.check}]{where}: {self.message}"


@dataclass(frozen=True)
class QualityReport:
    """The outcome of the publish-time data-quality checks.

    refusals: findings that stop the publish. warnings: findings recorded in the card's `quality` section and published
        anyway. checks_passed: checks that found nothing. measurements: what a check measured, by check (the holdout
        overlap's `OverlapEstimate.to_dict`). overrides: checks whose refusal the publisher overrode (they warn).
    """

    refusals: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()
    checks_passed: tuple[str, ...] = ()
    measurements: Mapping[str, Any] = field(default_factory=dict)
    overrides: tuple[str, ...] = ()

    @property
    def refused(self) -> bool:
        """Whether any check refused the publish."""
        return bool(self.refusals)

    def merge(self, other: QualityReport) -> QualityReport:
        """Both reports' findings together; a check passes only if neither report has a finding of it."""
        failed = {p.check for p in (*self.refusals, *other.refusals, *self.warnings, *other.warnings)}
        passed = [c for c in dict.fromkeys((*self.checks_passed, *other.checks_passed)) if c not in failed]
        return QualityReport(
            (*self.refusals, *other.refusals),
            (*self.warnings, *other.warnings),
            tuple(passed),
            {**self.measurements, **other.measurements},
            tuple(dict.fromkeys((*self.overrides, *other.overrides))),
        )

    def text(self) -> str:
        """A multi-line report, one line per refusal."""
        n = len(self.refusals)
        lines = [f"publish refused: {n} problem{'s' if n != 1 else ''} with the model or its data"]
        lines += [f"  - {p}" for p in self.refusals]
        return "\n".join(lines)

    def raise_if_refused(self) -> None:
        """Raise PublishRejected (HTTP 422) with the `text` report and one FieldError per refusal (field: its feature);
        return otherwise.
        """
        if self.refusals:
            raise PublishRejected(
                self.text(), errors=[FieldError(f"[{p.check}] {p.message}", field=p.feature) for p in self.refusals]
            )

    def card_section(self) -> dict:
        """The card's `quality` section: {"warnings": [...], "checks_passed": [...]}, plus "measurements" ({check:
        {...}}) and "overrides" ([checks]) when there are any."""
        section: dict[str, Any] = {
            "warnings": [w.to_dict() for w in self.warnings],
            "checks_passed": list(self.checks_passed),
        }
        if self.measurements:
            section["measurements"] = {k: dict(v) for k, v in self.measurements.items()}
        if self.overrides:
            section["overrides"] = list(self.overrides)
        return section


class _Collector:
    def __init__(self) -> None:
        self.refusals: list[Problem] = []
        self.warnings: list[Problem] = []
        self.run: list[str] = []
        self.measurements: dict[str, Any] = {}
        self.overrides: list[str] = []

    def ran(self, check: str) -> None:
        self.run.append(check)

    def refuse(self, check: str, message: str, feature: str | None = None) -> None:
        self.refusals.append(Problem(check, feature, message))

    def warn(self, check: str, message: str, feature: str | None = None) -> None:
        self.warnings.append(Problem(check, feature, message))

    def report(self) -> QualityReport:
        failed = {p.check for p in (*self.refusals, *self.warnings)}
        passed = tuple(c for c in dict.fromkeys(self.run) if c not in failed)
        return QualityReport(
            tuple(self.refusals), tuple(self.warnings), passed, dict(self.measurements), tuple(self.overrides)
        )


def check_training_data(
    X: Any,
    y: Any,
    *,
    task: str,
    X_holdout: Any = None,
    y_holdout: Any = None,
    pii: Iterable[str] = (),
    nullable: Iterable[str] = (),
    categorical: Iterable[str] = (),
    model_features: Sequence[str] | None = None,
    allow_holdout_overlap: bool = False,
    unread: Iterable[str] = (),
) -> QualityReport:
    """Run every data check and return all refusals and warnings (never raises for bad data).

    X, X_holdout: DataFrames of feature columns; y, y_holdout: the targets, one value per row. task: CLASSIFICATION or
    REGRESSION. pii, nullable, categorical: column names, as for infer_schema. model_features: the columns the
    model was fitted on. allow_holdout_overlap: a holdout overlap that would be refused is a warning instead, and
    the report's `overrides` says so. unread: columns the model never reads (sklambda.publishing.unread), left out of
    the holdout overlap's comparison: an id column the model never reads makes every row unique and would hide a
    holdout row copied from training (the model sees the copy as the same row).
    """
    found = _Collector()
    pii = {str(p) for p in pii}
    frame = X if isinstance(X, pd.DataFrame) else None
    target = _target(found, y, len(X) if hasattr(X, "__len__") else None)
    _schema(found, X, pii, nullable, categorical)
    if frame is not None:
        _rows(found, frame, target, task)
        _holdout_rows(found, X_holdout, y_holdout)
        _constant(found, frame)
        _missing(found, frame, X_holdout, model_features)
        _column_types(found, frame, X_holdout)
        _overlap(found, frame, X_holdout, allow_holdout_overlap, {str(c) for c in unread})
        _null_rate(found, frame)
    if target is not None and task == CLASSIFICATION:
        _imbalance(found, target)
    if frame is not None and target is not None and len(frame) == len(target) and not found.refusals:
        hold_target = _series(y_holdout)
        use_holdout = (
            isinstance(X_holdout, pd.DataFrame)
            and hold_target is not None
            and len(X_holdout) == len(hold_target)
            and hold_target.notna().all()
        )
        data, labels = (X_holdout, hold_target) if use_holdout else (frame, target)
        _leakage(found, data, labels, task, pii)
    return found.report()


def _series(y: Any) -> pd.Series | None:
    if y is None:
        return None
    return y.reset_index(drop=True) if isinstance(y, pd.Series) else pd.Series(np.asarray(y, dtype=object))


def _target(found: _Collector, y: Any, rows: int | None) -> pd.Series | None:
    found.ran("target")
    if y is None:
        found.refuse("target", "no target values given")
        return None
    target = _series(y)
    nulls = int(target.isna().sum())
    if len(target) and nulls == len(target):
        found.refuse("target", f"the target is null in all {len(target)} rows")
        return None
    if nulls:
        found.refuse("target", f"the target is null in {nulls} of {len(target)} rows: drop or label them")
        return None
    return target


def _schema(found: _Collector, X: Any, pii: set[str], nullable: Iterable[str], categorical: Iterable[str]) -> None:
    found.ran("schema")
    try:
        infer_schema(X, pii=pii, nullable=nullable, categorical=categorical)
    except PublishRejected as e:
        found.refuse("schema", f"the input schema cannot be inferred: {e.message}")


def _rows(found: _Collector, X: pd.DataFrame, target: pd.Series | None, task: str) -> None:
    found.ran("rows")
    if len(X) == 0:
        found.refuse("rows", "the training data is empty")
        return
    if target is not None and len(target) != len(X):
        found.refuse("rows", f"the training data has {len(X)} rows but the target has {len(target)}")
        return
    if len(X) < MIN_TRAINING_ROWS:
        found.refuse("rows", f"the training data has {len(X)} rows; at least {MIN_TRAINING_ROWS} are needed")
    if target is not None and task == CLASSIFICATION:
        counts = target.astype(str).value_counts()
        rare = counts[counts < MIN_CLASS_ROWS]
        if len(rare):
            listed = ", ".join(f"{k!r} ({v})" for k, v in rare.items())
            found.refuse("rows", f"fewer than {MIN_CLASS_ROWS} training rows of class(es) {listed}")


def _holdout_rows(found: _Collector, X_holdout: Any, y_holdout: Any) -> None:
    if not isinstance(X_holdout, pd.DataFrame) or y_holdout is None:
        return
    target = _series(y_holdout)
    if len(X_holdout) == 0:
        found.refuse("rows", "the holdout data is empty")
    elif len(target) != len(X_holdout):
        found.refuse("rows", f"the holdout data has {len(X_holdout)} rows but its target has {len(target)}")
    elif target.isna().any():
        found.refuse("target", f"the holdout target is null in {int(target.isna().sum())} of {len(target)} rows")


def _constant(found: _Collector, X: pd.DataFrame) -> None:
    found.ran("constant_feature")
    if len(X) < 2:  # one row is "constant" everywhere; the rows check already refuses it
        return
    for col in X.columns:
        s = X[col]
        if s.isna().all():
            found.refuse("constant_feature", f"is null in all {len(s)} training rows", str(col))
        elif s.nunique(dropna=False) == 1:
            found.refuse("constant_feature", f"has the same value in all {len(s)} training rows", str(col))


def _missing(found: _Collector, X: pd.DataFrame, X_holdout: Any, model_features: Sequence[str] | None) -> None:
    found.ran("missing_feature")
    have = {str(c) for c in X.columns}
    for name in model_features or ():
        if str(name) not in have:
            found.refuse("missing_feature", "the model expects it but the training data has no such column", str(name))
    if isinstance(X_holdout, pd.DataFrame):
        hold = {str(c) for c in X_holdout.columns}
        for col in X.columns:
            if str(col) not in hold:
                found.refuse("missing_feature", "is in the training data but not in the holdout data", str(col))
        for col in X_holdout.columns:
            if str(col) not in have:
                found.refuse("missing_feature", "is in the holdout data but not in the training data", str(col))


def row_keys(X: pd.DataFrame, columns: Sequence[Any], numeric: Iterable[Any]) -> np.ndarray:
    """One 64-bit hash per row of its values in `columns` ([rows] uint64): the `numeric` columns as float64 (so 3 and
    3.0 are one value), other values as text, nulls as one marker. Rows with the same key have the same values."""
    numeric = set(numeric)
    parts = {}
    for c in columns:
        s = X[c]
        if c in numeric:
            parts[c] = pd.to_numeric(s, errors="coerce").astype("float64")
        else:
            parts[c] = s.astype(object).where(s.notna(), None).astype(str)
    return pd.util.hash_pandas_object(pd.DataFrame(parts, index=X.index), index=False).to_numpy()


@dataclass(frozen=True)
class OverlapEstimate:
    """How many holdout rows have an identical training row, against what a random split of the data gives.

    holdout_rows: m. shared_rows: holdout rows with a training row of identical feature values. observed: shared / m.
    expected: Good's coverage estimate from the training rows, 1 - N1/n (module docstring). standard_error: of
    observed - expected (Esty's variance plus the binomial one). z: (observed - expected) / standard_error, 0 when
    the error is 0. copied: (observed - expected) / (1 - expected), floored at 0: the estimated share of holdout rows
    copied from training.
    """

    holdout_rows: int
    shared_rows: int
    observed: float
    expected: float
    standard_error: float
    z: float
    copied: float

    def to_dict(self) -> dict:
        """The card's `quality.measurements.holdout_overlap`: the fields, rates rounded to 6 places."""
        return {
            "holdout_rows": self.holdout_rows,
            "shared_rows": self.shared_rows,
            "observed_rate": round(self.observed, 6),
            "expected_rate": round(self.expected, 6),
            "standard_error": round(self.standard_error, 6),
            "z": round(self.z, 3),
            "copied_share": round(self.copied, 6),
            "method": "good_turing_coverage",
        }


def overlap_estimate(training_keys: np.ndarray, holdout_keys: np.ndarray) -> OverlapEstimate:
    """Compare the holdout rows having an identical training row with a random split's expectation.

    training_keys, holdout_keys: one hashable value per row standing for its feature values ([n] and [m], n, m > 0).
    Returns the OverlapEstimate (module docstring: Good's coverage 1 - N1/n, Esty's variance, a one-sided z).
    """
    values, counts = np.unique(training_keys, return_counts=True)
    n, m = len(training_keys), len(holdout_keys)
    singles, pairs = int((counts == 1).sum()), int((counts == 2).sum())
    shared = int(np.isin(holdout_keys, values).sum())
    expected = 1.0 - singles / n
    observed = shared / m
    esty = max(singles / n + 2 * pairs / n - (singles / n) ** 2, 0.0) / n
    pooled = (shared + expected * n) / (m + n)
    error = float(np.sqrt(pooled * (1 - pooled) / m + esty))
    z = (observed - expected) / error if error > 0 else 0.0
    copied = max(observed - expected, 0.0) / (1 - expected) if expected < 1 else 0.0
    return OverlapEstimate(m, shared, observed, expected, error, float(z), float(copied))


def _overlap(found: _Collector, X: pd.DataFrame, X_holdout: Any, allowed: bool, unread: set[str]) -> None:
    if not isinstance(X_holdout, pd.DataFrame) or not len(X_holdout) or not len(X):
        return
    found.ran("holdout_overlap")
    held = set(X_holdout.columns)
    common = [c for c in X.columns if c in held and str(c) not in unread]
    if not common:
        return
    numeric = {c for c in common if infer_type(X[c]) in (INTEGER, NUMBER)}
    est = overlap_estimate(row_keys(X, common, numeric), row_keys(X_holdout, common, numeric))
    left_out = [str(c) for c in X.columns if str(c) in unread]
    found.measurements["holdout_overlap"] = {**est.to_dict(), **({"columns_left_out": left_out} if left_out else {})}
    if est.expected >= OVERLAP_UNTESTABLE:
        # Few distinct feature combinations: most rows of any split repeat a training row, so a holdout copied from
        # training is within the sampling error of a random split; say the check cannot tell rather than pass it.
        found.warn(
            "holdout_overlap",
            f"{est.shared_rows} of {est.holdout_rows} holdout rows ({est.observed:.1%}) have an identical training "
            f"row and a random split of this data gives {est.expected:.1%}: with so few distinct feature "
            "combinations a holdout copied from training would look the same, so this check cannot tell; make sure "
            "the holdout was split off before training",
        )
        return
    if est.z <= OVERLAP_Z or est.copied <= OVERLAP_MIN_COPIED:
        return
    facts = (
        f"{est.shared_rows} of {est.holdout_rows} holdout rows ({est.observed:.1%}) have an identical training row, "
        f"where a random split of this data gives {est.expected:.1%} (estimated from the training rows' own "
        f"duplicates; z = {est.z:.1f}): about {est.copied:.0%} of the holdout looks copied from training"
    )
    if est.copied < OVERLAP_REFUSE_COPIED:
        found.warn("holdout_overlap", f"{facts}, so the holdout metrics may be optimistic")
    elif allowed:
        found.overrides.append("holdout_overlap")  # only a refusal overridden is recorded as one
        found.warn("holdout_overlap", f"{facts}; published anyway (allow_holdout_overlap)")
    else:
        found.refuse(
            "holdout_overlap",
            f"{facts}, so the holdout metrics would be optimistic. Split the data again (rows of one entity on one "
            f"side), or, if these rows are genuine repeats, publish with allow_holdout_overlap=True (CLI: "
            f"--allow-holdout-overlap)",
        )


_KIND_TEXT = {
    CATEGORY: "text categories",
    INTEGER: "integers",
    NUMBER: "numbers",
    BOOLEAN: "booleans",
}


def _column_types(found: _Collector, X: pd.DataFrame, X_holdout: Any) -> None:
    """Each holdout column's values must be of the training column's type (an integer column may hold integral
    floats, as pandas reads an integer column with a null; a number column may hold integers)."""
    if not isinstance(X_holdout, pd.DataFrame):
        return
    found.ran("column_type")
    for col in X.columns:
        if col not in X_holdout.columns:
            continue
        train, hold = X[col], X_holdout[col].reset_index(drop=True)
        present = hold.notna().to_numpy()
        if not present.any():
            continue
        want, got = infer_type(train), infer_type(hold)
        if want is None:  # the schema check refuses the training column itself
            continue
        if got is None:
            found.refuse(
                "column_type",
                f"the holdout column mixes value types, {value_types(hold)}, where training had "
                f"{_kind_example(train, want)}",
                str(col),
            )
            continue
        if got == want or (want == NUMBER and got == INTEGER):
            continue
        if want == INTEGER and got == NUMBER:
            values = hold.to_numpy(dtype=float, na_value=np.nan)
            fractional = np.flatnonzero(np.isfinite(values) & (values != np.floor(values)))
            if len(fractional):
                i = int(fractional[0])
                found.refuse(
                    "column_type",
                    f"the holdout has fractional values ({len(fractional)} rows, first at holdout row {i}: "
                    f"{float(values[i])!r}) where training had only integers: the API would refuse them; make the "
                    "training column float if fractions are valid",
                    str(col),
                )
            continue
        i = int(np.flatnonzero(present)[0])
        value = hold.iloc[i]
        shown = value.item() if isinstance(value, np.generic) else value
        found.refuse(
            "column_type",
            f"the holdout has {_KIND_TEXT[got]} (first at holdout row {i}: {shown!r}) where training had "
            f"{_kind_example(train, want)}: convert the column to the training type",
            str(col),
        )


def _kind_example(s: pd.Series, kind: str) -> str:
    """The training type in words, with a few of its values for categories: "text categories ('No', 'Yes')"."""
    if kind != CATEGORY:
        return _KIND_TEXT[kind]
    values = sorted({str(v) for v in s.dropna().unique()[:50]})
    shown = ", ".join(repr(v if len(v) <= 20 else v[:17] + "...") for v in values[:3])
    more = ", ..." if len(values) > 3 else ""
    return f"text categories ({shown}{more})"


def _null_rate(found: _Collector, X: pd.DataFrame) -> None:
    found.ran("null_rate")
    if not len(X):
        return
    for col in X.columns:
        rate = float(X[col].isna().mean())
        if MAX_NULL_RATE < rate < 1.0:  # all null is refused as constant
            found.warn("null_rate", f"is null in {rate:.0%} of the training rows (over {MAX_NULL_RATE:.0%})", str(col))


def _imbalance(found: _Collector, target: pd.Series) -> None:
    found.ran("class_imbalance")
    shares = target.astype(str).value_counts(normalize=True)
    if len(shares) > 1 and shares.iloc[-1] < MIN_CLASS_SHARE:
        found.warn(
            "class_imbalance",
            f"class {shares.index[-1]!r} is only {shares.iloc[-1]:.1%} of the training rows (under "
            f"{MIN_CLASS_SHARE:.0%}): accuracy says little, look at balanced accuracy and ROC AUC",
        )


def _leakage(found: _Collector, X: pd.DataFrame, y: pd.Series, task: str, pii: set[str]) -> None:
    found.ran("leakage")
    y = y.reset_index(drop=True)
    X = X.reset_index(drop=True)
    binary = task == CLASSIFICATION and y.astype(str).nunique() == 2
    for col in X.columns:
        name = str(col)
        s = X[col]
        present = s.notna().to_numpy()
        if name in pii or present.sum() < MIN_CLASS_ROWS:
            continue
        numeric = pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
        if numeric and task == REGRESSION:
            values, target = s[present].astype(float), pd.to_numeric(y[present], errors="coerce")
            if values.std() > 0 and target.std() > 0:
                corr = float(np.corrcoef(values, target)[0, 1])
                if np.isfinite(corr) and abs(corr) >= LEAKAGE_SCORE:
                    found.warn(
                        "leakage",
                        f"alone correlates with the target at {corr:+.3f}: check it is known at prediction time",
                        name,
                    )
        elif numeric and binary:
            labels = y[present].astype(str)
            if labels.nunique() == 2:
                positive = labels == sorted(labels.unique())[1]
                auc = rank_auc(positive.to_numpy(), s[present].astype(float).to_numpy())
                auc = max(auc, 1 - auc)
                if auc >= LEAKAGE_SCORE:
                    found.warn(
                        "leakage",
                        f"alone separates the classes with AUC {auc:.3f}: check it is known at prediction time",
                        name,
                    )
        elif not numeric and task == CLASSIFICATION:
            values = s[present].astype(str)
            if values.nunique() < 2 or values.nunique() > MAX_IDENTIFIER_SHARE * len(values):
                continue
            table = pd.crosstab(values, y[present].astype(str).to_numpy())
            total = table.to_numpy().sum()
            purity = float(table.max(axis=1).sum() / total)
            majority = float(table.sum(axis=0).max() / total)
            # With a 99.5% majority class any column is "99% pure": it must also explain the minority rows.
            gain = (purity - majority) / (1 - majority) if majority < 1 else 0.0
            if purity >= LEAKAGE_SCORE and gain >= LEAKAGE_GAIN:
                found.warn(
                    "leakage",
                    f"each of its {values.nunique()} categories holds a single class ({purity:.1%} "
                    "of rows): check it is known at prediction time",
                    name,
                )


def rank_auc(is_positive: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) formula, ties counted half: equal to sklearn's roc_auc_score
    without its input validation, which costs more than the computation on these sizes. NaN with one class."""
    pos = np.asarray(is_positive, dtype=bool)
    n_pos = int(pos.sum())
    n_neg = len(pos) - n_pos
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def check_metric_gates(metrics: Mapping[str, Any], min_metrics: Mapping[str, float] | None) -> QualityReport:
    """Refuse metrics below their gate (above it for error metrics such as mae, rmse and log_loss)."""
    if not min_metrics:
        return QualityReport()
    found = _Collector()
    found.ran("metric_gate")
    available = {k: v for k, v in metrics.items() if isinstance(v, float)}
    split = metrics.get("split", "training")
    for name, gate in min_metrics.items():
        if name not in available:
            found.refuse(
                "metric_gate",
                f"unknown metric {name!r} for this model; available: {', '.join(sorted(available))}",
            )
            continue
        value = available[name]
        if name in LOWER_IS_BETTER and value > gate:
            found.refuse("metric_gate", f"{split} {name} {value:.4f} is above the allowed maximum {gate:g}")
        elif name not in LOWER_IS_BETTER and value < gate:
            found.refuse("metric_gate", f"{split} {name} {value:.4f} is below the required minimum {gate:g}")
    return found.report()
