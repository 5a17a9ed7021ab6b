"""The retraining pipeline's data: training rows from the training-data prefix, labeled captured rows of a recent
window, and the holdout the gate compares the champion and the candidate on.

Sources, both in the data bucket:
- `<training-data prefix><model>/...`: CSV (`.csv`, `.csv.gz`), JSON Lines (`.jsonl`, `.jsonl.gz`) or Parquet
  (`.parquet`, read only where pyarrow is installed: the dependency layer does not ship it) objects, each with the
  card's feature columns and its target column (other columns are ignored);
- captured predictions joined with the ground-truth labels that arrived in the window, as the model-quality check
  joins them (monitoring.windows.read_predictions, model_quality.join.join_labels): a labeled capture is a row the
  model was asked to score with its true label. A pii feature is captured as a pseudonym (monitoring.capture), not
  its value: when the model reads one, such rows cannot be training rows and are left out (the outcome says why);
  a pii feature the model never reads (its schema's `required` is False: publish found it dropped, e.g. an id beside
  a ColumnTransformer) keeps its pseudonym in those rows, which changes nothing the model is fit on.

Every row is validated against the champion's input schema as the API validates a request (FeatureSpec.check;
CSV cells parsed as batch scoring parses them, sklambda.batch.parse.parse_column): a row with a value of the wrong type
(text in a number, a fraction in an integer, a null where the champion takes none), or a label that is not one of a
classifier's classes, is left out of training and kept as a RefusedRow (the run writes them to its quarantine file);
a row without a label is left out and counted. Categories the champion never saw are not refused (a new category can
be real) but reported (`unseen_categories`). Accepted rows are typed as the champion's schema says (`typed_frame`), so
publish infers the same types for the retrained version: an integer feature stays integer (int64, or pandas' nullable
Int64 when it has nulls), a number is float64, a category text with the champion's missing marker for nulls.
"""

from __future__ import annotations

import gzip
import io
import json
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from sklambda.batch.parse import parse_column
from sklambda.monitoring.ground_truth.store import read_labels
from sklambda.monitoring.model_quality.join import ID, LABEL, join_labels
from sklambda.monitoring.windows import Window, read_predictions
from sklambda.publishing.quality import row_keys
from sklambda.registry.card import CLASSIFICATION, ModelCard
from sklambda.registry.schema import BOOLEAN, CATEGORY, INTEGER, NUMBER, FeatureSpec, is_required

CSV_SUFFIXES = (".csv", ".csv.gz")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")
PARQUET_SUFFIXES = (".parquet",)
# Where a training row came from (a column of the assembled frames, dropped before fitting).
SOURCE = "_source"
PREFIX_SOURCE, CAPTURE_SOURCE = "prefix", "capture"
# The share of a training-data prefix's rows that may be refused (a value of the wrong type, a label that is no class)
# and left out; above it the assemble step fails (RetrainRequest.max_refused_share, whose default this is).
MAX_REFUSED_SHARE = 0.01
# The object named for a refused captured row (its row is its inference id).
CAPTURES = "labeled captures"


class TrainingDataError(ValueError):
    """The training data cannot be used: the message names the object and the problem (a missing column, an
    unreadable file, too few rows)."""


@dataclass(frozen=True)
class RefusedRow:
    """A training row left out: `object` its training-data object's key (CAPTURES for a labeled captured row), `row`
    its 1-based row in the object (the header not counted; a captured row: its inference id), `raw` its values as read
    ({column: value}; CSV cells as text), `reasons` [(field or None, message)]."""

    object: str
    row: int | str
    raw: Mapping[str, Any]
    reasons: tuple[tuple[str | None, str], ...]

    def to_dict(self) -> dict[str, Any]:
        """One line of the run's quarantine file, in the style of batch's error lines: {"object", "row", "raw",
        "reasons": [{"field", "message"}]}."""
        return {
            "object": self.object,
            "row": self.row,
            "raw": {str(k): _plain(v) for k, v in self.raw.items()},
            "reasons": [{"field": f, "message": m} for f, m in self.reasons],
        }


@dataclass(frozen=True)
class ReadRows:
    """Rows read and validated: `frame` the accepted ones (typed_frame's features, the target, SOURCE; captures also
    `time`), `refused` the rows left out for a value the schema refuses, `unlabeled` rows left out without a label,
    `read` every row read, `objects` the keys read, `kept` which rows read are in `frame` (one object's rows only)."""

    frame: pd.DataFrame
    refused: list[RefusedRow]
    unlabeled: int
    read: int
    objects: list[str] = field(default_factory=list)
    kept: np.ndarray | None = None


@dataclass(frozen=True)
class TrainingData:
    """The assembled rows: `train` and `holdout` hold the card's features and the target column (named `target`).

    holdout_source: "recent_labeled" (the most recent labeled captured rows) or "seeded_split" (a seeded split of the
    assembled rows). objects: training-data objects read. captured: labeled captured rows found (used or not).
    holdout_copies: prefix rows left out of training because they equal a holdout row (`assemble`).
    notes: why a source or rows were left out (pii, too few labeled rows for a holdout, copies of holdout rows), for
    the step's outcome.
    """

    train: pd.DataFrame
    holdout: pd.DataFrame
    target: str
    holdout_source: str
    objects: list[str]
    prefix_rows: int
    captured: int
    captured_used: int
    notes: list[str] = field(default_factory=list)
    holdout_copies: int = 0

    def summary(self) -> dict[str, Any]:
        """JSON-ready counts for the assemble step's outcome."""
        return {
            "training_rows": len(self.train),
            "holdout_rows": len(self.holdout),
            "holdout_source": self.holdout_source,
            "prefix_objects": len(self.objects),
            "prefix_rows": self.prefix_rows,
            "labeled_captured_rows": self.captured,
            "labeled_captured_rows_used": self.captured_used,
            "holdout_copies_left_out": self.holdout_copies,
            "notes": list(self.notes),
        }


def _objects(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith("/"):
                yield obj["Key"]


def _plain(value: Any) -> Any:
    """A JSON-ready value: numpy scalars as Python, NaN and pandas' NA as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is pd.NA or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value


def _is_null(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


def read_rows(key: str, body: bytes, card: ModelCard, target: str) -> ReadRows:
    """One training-data object's rows, validated against the card's schema (module docstring), by its suffix: CSV
    cells as text, JSON Lines objects and Parquet rows as typed values. Raises TrainingDataError naming the object for
    a suffix that is not one of them, a file that does not parse, Parquet without pyarrow, or a missing feature or
    target column (every row would lack it)."""
    lower = key.lower()
    try:
        if lower.endswith(CSV_SUFFIXES):
            raw = pd.read_csv(
                io.BytesIO(body), compression="gzip" if lower.endswith(".gz") else None, dtype=str,
                keep_default_na=False,
            )  # fmt: skip
            return _validate_columns(key, raw, card, target)
        if lower.endswith(JSONL_SUFFIXES):
            text = gzip.decompress(body) if lower.endswith(".gz") else body
            return _validate_records(key, _json_lines(text), card, target, PREFIX_SOURCE)
        if lower.endswith(PARQUET_SUFFIXES):
            try:
                import pyarrow  # noqa: F401  (pandas reads Parquet through it)
            except ImportError:
                raise TrainingDataError(
                    f"{key}: Parquet needs pyarrow, which this runtime does not have: upload CSV or JSON Lines, or "
                    "add pyarrow to the dependency layer"
                ) from None
            raw = pd.read_parquet(io.BytesIO(body))
            _check_columns(key, [str(c) for c in raw.columns], card, target)
            records = raw.astype(object).where(raw.notna(), None).to_dict("records")
            return _validate_records(key, records, card, target, PREFIX_SOURCE)
    except TrainingDataError:
        raise
    except Exception as e:  # pandas raises ParserError, UnicodeDecodeError, OSError (gzip), ValueError...
        raise TrainingDataError(f"{key}: not readable as {key.rsplit('.', 1)[-1]}: {str(e).splitlines()[0]}") from None
    raise TrainingDataError(
        f"{key}: not a training-data file: use {', '.join(CSV_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES)}"
    )


def _json_lines(text: bytes) -> list[Any]:
    """Each non-blank line decoded; a line that is not JSON is kept as an _Unreadable (refused as its row)."""
    out: list[Any] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except ValueError as e:
            out.append(_Unreadable(line.decode("utf-8", "replace")[:200], f"not valid JSON: {e}"))
    return out


@dataclass(frozen=True)
class _Unreadable:
    text: str
    why: str


def _check_columns(key: str, columns: Sequence[str], card: ModelCard, target: str) -> None:
    if target not in columns:
        raise TrainingDataError(f"{key}: no target column {target!r} (columns: {', '.join(map(str, columns))})")
    missing = [f.name for f in card.input_schema.features if is_required(f) and f.name not in columns]
    if missing:
        raise TrainingDataError(f"{key}: missing feature column(s) {missing}")


def _validate_columns(key: str, raw: pd.DataFrame, card: ModelCard, target: str) -> ReadRows:
    """A CSV object's cells (text) parsed per feature as batch scoring parses them."""
    columns = [str(c) for c in raw.columns]
    _check_columns(key, columns, card, target)
    n = len(raw)
    reasons: dict[int, list[tuple[str | None, str]]] = {}
    values: dict[str, Sequence[Any]] = {}
    for spec in card.input_schema.features:
        if spec.name not in columns:  # a feature the model never reads: null
            values[spec.name] = [None] * n
            continue
        parsed, problems = parse_column(spec, raw[spec.name].to_numpy(dtype=object))
        values[spec.name] = parsed.tolist()
        for j, message in problems:
            reasons.setdefault(j, []).append((spec.name, message))
    cells = raw[target].to_numpy(dtype=object).tolist()
    labels = [None if c == "" else c for c in cells]
    return _finish(key, n, values, labels, reasons, lambda j: raw.iloc[j].to_dict(), card, target, PREFIX_SOURCE)


def _validate_records(key: str, records: Sequence[Any], card: ModelCard, target: str, source: str) -> ReadRows:
    """Rows as JSON values (JSON Lines, Parquet, captures) checked with FeatureSpec.check, as the API checks them."""
    n = len(records)
    reasons: dict[int, list[tuple[str | None, str]]] = {}
    specs = card.input_schema.features
    values: dict[str, list[Any]] = {spec.name: [None] * n for spec in specs}
    labels: list[Any] = [None] * n
    for j, row in enumerate(records):
        if isinstance(row, _Unreadable):
            reasons[j] = [(None, row.why)]
            continue
        if not isinstance(row, Mapping):
            reasons[j] = [(None, "expected a JSON object of feature values")]
            continue
        for spec in specs:
            if spec.name not in row:
                if is_required(spec):
                    reasons.setdefault(j, []).append((spec.name, "missing feature"))
                continue
            value = _plain(row[spec.name])
            problem = spec.check(value)
            if problem:
                reasons.setdefault(j, []).append((spec.name, problem))
            else:
                values[spec.name][j] = value
        labels[j] = _plain(row.get(target))

    def raw(j: int) -> dict[str, Any]:
        row = records[j]
        return dict(row) if isinstance(row, Mapping) else {"line": getattr(row, "text", repr(row))}

    return _finish(key, n, values, labels, reasons, raw, card, target, source)


def _label_text(value: Any) -> str:
    """A label as text, as the quality check compares labels with classes: 1.0 is "1"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _label(value: Any, card: ModelCard, classes: Mapping[str, Any]) -> tuple[Any, str | None]:
    """(the label as the model's class or a float, None) or (None, why it is refused)."""
    if card.task == CLASSIFICATION:
        text = _label_text(value)
        if text in classes:
            return classes[text], None
        return None, f"label {value!r} is not one of the champion's classes {list(classes)}"
    if isinstance(value, bool):
        return None, f"expected a number as the target, got {value!r}"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None, f"expected a number as the target, got {value!r}"
    if not math.isfinite(number):
        return None, f"expected a finite number as the target, got {value!r}"
    return number, None


def _finish(
    key: str,
    n: int,
    values: Mapping[str, Sequence[Any]],
    labels: Sequence[Any],
    reasons: dict[int, list[tuple[str | None, str]]],
    raw: Any,
    card: ModelCard,
    target: str,
    source: str,
) -> ReadRows:
    """The accepted rows as typed_frame with the target and SOURCE; the refused ones as RefusedRows."""
    classes = {_label_text(c): c for c in card.classes or ()}
    unlabeled = np.zeros(n, dtype=bool)
    y: list[Any] = [None] * n
    for j, value in enumerate(labels):
        if _is_null(value) or (isinstance(value, str) and not value.strip()):
            unlabeled[j] = True
            continue
        y[j], problem = _label(value, card, classes)
        if problem:
            reasons.setdefault(j, []).append((target, problem))
    refused = np.zeros(n, dtype=bool)
    refused[list(reasons)] = True
    keep = ~refused & ~unlabeled
    rows = [RefusedRow(key, j + 1, raw(j), tuple(reasons[j])) for j in sorted(reasons)]
    kept = {name: [v for v, k in zip(column, keep, strict=True) if k] for name, column in values.items()}
    frame = typed_frame(kept, card)
    labels_kept = [v for v, k in zip(y, keep, strict=True) if k]
    frame[target] = np.array(labels_kept, dtype=object if card.task == CLASSIFICATION else float)
    frame[SOURCE] = source
    return ReadRows(frame, rows, int((unlabeled & ~refused).sum()), n, [key], keep)


def typed_frame(values: Mapping[str, Sequence[Any]], card: ModelCard) -> pd.DataFrame:
    """Validated feature values ({name: values}, nulls as None or NaN) as the frame a retrained model is fit on, typed
    so that publish infers the champion's schema types (registry.schema.infer_type): integer as int64 (pandas'
    nullable Int64 when it has nulls), number as float64, boolean as bool (an object column with NaN for nulls),
    category as text with the champion's missing marker (FeatureSpec.missing_value) for nulls."""
    columns = {}
    for spec in card.input_schema.features:
        column = list(values[spec.name])
        columns[spec.name] = _typed(spec, column)
    return pd.DataFrame(columns, index=pd.RangeIndex(len(next(iter(columns.values()), ()))))


def _typed(spec: FeatureSpec, column: list[Any]) -> Any:
    nulls = [_is_null(v) for v in column]
    if spec.type == NUMBER:
        return np.array([np.nan if null else float(v) for v, null in zip(column, nulls, strict=True)], dtype=float)
    if spec.type == INTEGER:
        ints = pd.array([None if null else int(v) for v, null in zip(column, nulls, strict=True)], dtype="Int64")
        return ints if any(nulls) else ints.to_numpy(dtype="int64")
    if spec.type == BOOLEAN:
        if not any(nulls):
            return np.array(column, dtype=bool)
        out = np.empty(len(column), dtype=object)
        out[:] = [np.nan if null else bool(v) for v, null in zip(column, nulls, strict=True)]
        return pd.Series(out, dtype=object)
    marker = spec.missing_value if spec.missing is not None else None
    out = np.empty(len(column), dtype=object)
    out[:] = [marker if null else v for v, null in zip(column, nulls, strict=True)]
    return pd.Series(out, dtype=object)


def read_prefix(s3: Any, bucket: str, prefix: str, card: ModelCard, target: str) -> ReadRows:
    """Every training-data object under `prefix`, validated (read_rows), as one ReadRows. Raises TrainingDataError
    naming an object that cannot be read or lacks a column."""
    parts = [read_rows(key, s3.get_object(Bucket=bucket, Key=key)["Body"].read(), card, target)
             for key in _objects(s3, bucket, prefix)]  # fmt: skip
    if not parts:
        return ReadRows(_validate_records("", [], card, target, PREFIX_SOURCE).frame, [], 0, 0, [])
    return ReadRows(
        pd.concat([p.frame for p in parts], ignore_index=True),
        [r for p in parts for r in p.refused],
        sum(p.unlabeled for p in parts),
        sum(p.read for p in parts),
        [k for p in parts for k in p.objects],
    )


def read_labeled_captures(
    s3: Any, bucket: str, card: ModelCard, target: str, *, end: datetime, label_days: float, lookback_days: float
) -> ReadRows:
    """The captured rows of `card`'s model (any version) whose labels arrived in the `label_days` days before `end`,
    with those labels as `target` and the prediction time as `time`, oldest first, validated as the prefix's rows are
    (a row captured by a version whose schema differed can be refused: its object is CAPTURES, its row the inference
    id). Predictions are looked for from `lookback_days` before the labels' window (labels arrive late), as the
    model-quality check does."""
    names = list(card.input_schema.names)
    labels = read_labels(s3, bucket, card.name, end - timedelta(days=label_days), end)
    if not len(labels.frame):
        empty = _validate_records(CAPTURES, [], card, target, CAPTURE_SOURCE)
        return ReadRows(empty.frame.assign(time=pd.Series([], dtype=object)), [], 0, 0)
    period = Window(end - timedelta(days=label_days + lookback_days), end)
    captured = read_predictions(s3, bucket, card.name, period, labeled=set(labels.frame[ID]), features=names)
    predictions = captured.frame[captured.frame[ID].notna()]
    joined = join_labels(labels.frame[[ID, LABEL]], predictions)
    latest = predictions.sort_values("time", kind="stable").drop_duplicates(ID, keep="last")
    rows = joined.frame[[ID, LABEL]].merge(latest[[ID, "time", *names]], on=ID, how="inner")
    rows = rows.sort_values("time", kind="stable").reset_index(drop=True)
    records = [{**{n: r[n] for n in names}, target: r[LABEL]} for r in rows.to_dict("records")]
    read = _validate_records(CAPTURES, records, card, target, CAPTURE_SOURCE)
    ids = rows[ID].tolist()
    refused = [RefusedRow(r.object, ids[int(r.row) - 1], r.raw, r.reasons) for r in read.refused]
    frame = read.frame.assign(time=rows["time"][read.kept].to_numpy())
    return ReadRows(frame, refused, read.unlabeled, read.read)


def unseen_categories(frame: pd.DataFrame, card: ModelCard) -> dict[str, dict[str, int]]:
    """{feature: {value: rows}} of the category values in `frame` the champion's card does not list (its training
    categories), per category feature that has a list (not pii, not an identifier), most frequent first."""
    out: dict[str, dict[str, int]] = {}
    for spec in card.input_schema.features:
        if spec.type != CATEGORY or spec.categories is None or spec.pii or spec.name not in frame.columns:
            continue
        known = set(spec.categories)
        values = [v for v in frame[spec.name].tolist() if isinstance(v, str) and v not in known]
        if values:
            out[spec.name] = dict(Counter(values).most_common())
    return out


def unseen_notes(unseen: Mapping[str, Mapping[str, int]], card: ModelCard, rows: int) -> list[str]:
    """One note per feature of `unseen_categories`: the values, their counts, and the champion's categories."""
    notes = []
    for name, counts in unseen.items():
        total = sum(counts.values())
        shown = ", ".join(f"{v!r} ({c})" for v, c in list(counts.items())[:10])
        more = f" and {len(counts) - 10} more" if len(counts) > 10 else ""
        known = ", ".join(repr(c) for c in card.input_schema.feature(name).categories or ())
        notes.append(
            f"{name}: {total} of {rows} row(s) hold categories the champion never saw: {shown}{more} (its "
            f"categories: {known}); they train as they are: check they are not another encoding of known ones"
        )
    return notes


def refused_summary(refused: Sequence[RefusedRow], card: ModelCard, target: str) -> str:
    """Per field, how many rows were refused and an example (the object, row and message); for the target of a
    classifier, the labels that are no class with their counts, and the classes."""
    by_field: dict[str | None, list[tuple[RefusedRow, str]]] = {}
    for row in refused:
        for name, message in row.reasons:
            by_field.setdefault(name, []).append((row, message))
    parts = []
    for name, found in by_field.items():
        if name == target and card.task == CLASSIFICATION:
            labels = Counter(_label_text(r.raw.get(target)) for r, _ in found)
            shown = ", ".join(f"{v!r} ({c})" for v, c in labels.most_common(10))
            classes = ", ".join(repr(_label_text(c)) for c in card.classes or ())
            parts.append(f"target {target!r}: {len(found)} row(s) with labels that are not the champion's classes: "
                         f"{shown} (its classes: {classes})")  # fmt: skip
            continue
        row, message = found[0]
        where = f"{row.object.rsplit('/', 1)[-1]} row {row.row}"
        parts.append(f"{name or 'row'}: {len(found)} row(s), e.g. {where}: {message}")
    return "; ".join(parts)


def _classes_complete(y: pd.Series, card: ModelCard) -> bool:
    """Whether a holdout of labels `y` can gate a classifier: every class of the card in it (ROC AUC needs both)."""
    if card.task != CLASSIFICATION:
        return True
    present = {str(v) for v in y}
    return all(str(c) in present for c in card.classes or ())


def assemble(
    prefix_rows: pd.DataFrame,
    captured: pd.DataFrame,
    card: ModelCard,
    target: str,
    *,
    objects: Sequence[str] = (),
    holdout_fraction: float = 0.2,
    min_holdout_rows: int = 50,
    seed: int = 0,
) -> TrainingData:
    """Training rows and the gate's holdout from the prefix's rows and the labeled captured rows (oldest first).

    pii: a card whose model reads a pii feature leaves the captured rows out (module docstring). Holdout: the most
    recent `holdout_fraction` of the labeled captured rows when that is at least `min_holdout_rows` rows holding every
    class (a recent labeled holdout shows how each version does on today's data); otherwise a seeded split of all the
    rows (stratified by class for a classifier, `seed` fixed, so a rerun splits the same way). Prefix rows equal to a
    holdout row are then left out of training (`_drop_holdout_copies`). `prefix_rows` and `captured` are validated,
    typed rows (read_prefix, read_labeled_captures: typed_frame's features, the target, SOURCE). Returns
    TrainingData; raises nothing (too few rows is the caller's rule).
    """
    notes: list[str] = []
    names = list(card.input_schema.names)
    # Only a pii feature the model reads makes a captured row unusable: an unread one's pseudonym is never seen.
    pii = [f.name for f in card.input_schema.features if f.pii and is_required(f)]
    usable = captured
    if pii and len(captured):
        notes.append(
            f"{len(captured)} labeled captured row(s) left out: the model's pii feature(s) {pii} are captured as "
            "pseudonyms, not values, so those rows cannot be training rows; the training-data prefix alone is used"
        )
        usable = captured.iloc[0:0]
    columns = [*names, target, SOURCE]
    recent = usable.iloc[len(usable) - int(len(usable) * holdout_fraction) :] if len(usable) else usable
    if len(recent) >= min_holdout_rows and _classes_complete(recent[target], card):
        holdout = recent[columns]
        train = pd.concat([prefix_rows[columns], usable.iloc[: len(usable) - len(recent)][columns]], ignore_index=True)
        source = "recent_labeled"
    else:
        if len(usable) and not pii:
            notes.append(
                f"{len(recent)} recent labeled row(s) are too few for the gate's holdout (at least {min_holdout_rows} "
                "holding every class): a seeded split of all the rows is the holdout"
            )
        rows = pd.concat([prefix_rows[columns], usable[columns]], ignore_index=True)
        train, holdout = _seeded_split(rows, target, card, holdout_fraction, seed)
        source = "seeded_split"
    train, copies, note = _drop_holdout_copies(train, holdout, card, target)
    notes += [note] if note else []
    return TrainingData(
        train.reset_index(drop=True),
        holdout.reset_index(drop=True),
        target,
        source,
        list(objects),
        len(prefix_rows),
        len(captured),
        0 if pii else len(usable),
        notes,
        copies,
    )


def _drop_holdout_copies(
    train: pd.DataFrame, holdout: pd.DataFrame, card: ModelCard, target: str
) -> tuple[pd.DataFrame, int, str | None]:
    """(train without the prefix rows that equal a holdout row, how many, a note or None).

    Rows are compared on the features the model reads (`is_required`: an id it never reads, such as a pii id captured
    as a pseudonym, would make every row unique and hide a copy) and the target, as publish's holdout-overlap check
    compares them (sklambda.publishing.quality.row_keys). Every such prefix row is dropped: a statistical test of the
    overlap (publish's) cannot be used here, since copies of labeled captured rows in the prefix also duplicate the
    captured training rows and make the copies look like natural repeats. On data with few distinct values, natural
    repeats of holdout rows are dropped too: the note gives the count.
    """
    read = [f.name for f in card.input_schema.features if is_required(f)]
    if not len(train) or not len(holdout) or not read:
        return train, 0, None
    numeric = [f.name for f in card.input_schema.features if is_required(f) and f.type in (NUMBER, INTEGER)]
    hold_keys = row_keys(holdout, [*read, target], numeric)
    copies = np.isin(row_keys(train, [*read, target], numeric), hold_keys) & (train[SOURCE] == PREFIX_SOURCE).to_numpy()
    dropped = int(copies.sum())
    if not dropped:
        return train, 0, None
    note = (
        f"{dropped} training-data row(s) equal a holdout row on the features the model reads and the target and "
        "were left out of training, so the gate does not score the candidate on rows it was fit on"
    )
    return train[~copies], dropped, note


def _seeded_split(
    rows: pd.DataFrame, target: str, card: ModelCard, fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout): `fraction` of the rows drawn with `seed`, per class for a classifier (each class keeps its
    share, so the holdout holds every class the rows do)."""
    rng = np.random.default_rng(seed)
    if card.task == CLASSIFICATION:
        labels = rows[target].astype(str)
        groups = [np.flatnonzero((labels == c).to_numpy()) for c in sorted(labels.unique())]
    else:
        groups = [np.arange(len(rows))]
    chosen = [g[rng.permutation(len(g))[: round(len(g) * fraction)]] for g in groups]
    picked = np.zeros(len(rows), dtype=bool)
    for index in chosen:
        picked[index] = True
    return rows[~picked], rows[picked]


def frame_to_jsonl(frame: pd.DataFrame) -> bytes:
    """A frame as gzip JSON Lines (types kept: numbers, text, booleans, nulls), how the run's files are stored."""
    return gzip.compress(frame.to_json(orient="records", lines=True, date_format="iso").encode(), mtime=0)


def jsonl_to_frame(body: bytes, card: ModelCard, target: str) -> pd.DataFrame:
    """A run file written by frame_to_jsonl as typed_frame's features with `target` (its rows were validated when
    assembled; a row that no longer passes raises TrainingDataError)."""
    read = _validate_records("run file", _json_lines(gzip.decompress(body)), card, target, PREFIX_SOURCE)
    if read.refused or read.unlabeled:
        problem = refused_summary(read.refused, card, target) or f"{read.unlabeled} row(s) without a label"
        raise TrainingDataError(f"the run's file does not match the champion's schema: {problem}")
    return read.frame.drop(columns=[SOURCE])
