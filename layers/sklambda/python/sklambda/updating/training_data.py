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

Rows are conformed to the card's schema types (number and integer as floats, category as text, boolean as bool), so
CSV's guesses (a category of digits read as numbers) do not change what the model is fit on.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from sklambda.monitoring.ground_truth.store import read_labels
from sklambda.monitoring.model_quality.join import ID, LABEL, join_labels
from sklambda.monitoring.windows import Window, read_predictions
from sklambda.registry.card import CLASSIFICATION, ModelCard
from sklambda.registry.schema import BOOLEAN, CATEGORY, is_required

CSV_SUFFIXES = (".csv", ".csv.gz")
JSONL_SUFFIXES = (".jsonl", ".jsonl.gz")
PARQUET_SUFFIXES = (".parquet",)
# Where a training row came from (a column of the assembled frames, dropped before fitting).
SOURCE = "_source"
PREFIX_SOURCE, CAPTURE_SOURCE = "prefix", "capture"


class TrainingDataError(ValueError):
    """The training data cannot be used: the message names the object and the problem (a missing column, an
    unreadable file, too few rows)."""


@dataclass(frozen=True)
class TrainingData:
    """The assembled rows: `train` and `holdout` hold the card's features and the target column (named `target`).

    holdout_source: "recent_labeled" (the most recent labeled captured rows) or "seeded_split" (a seeded split of the
    assembled rows). objects: training-data objects read. captured: labeled captured rows found (used or not).
    notes: why a source was left out (pii, too few labeled rows for a holdout), for the step's outcome.
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
            "notes": list(self.notes),
        }


def _objects(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            if not obj["Key"].endswith("/"):
                yield obj["Key"]


def read_frame(key: str, body: bytes) -> pd.DataFrame:
    """One training-data object as a frame, by its suffix (module docstring). Raises TrainingDataError naming the
    object for a suffix that is not one of them, a file that does not parse, or Parquet without pyarrow."""
    lower = key.lower()
    try:
        if lower.endswith(CSV_SUFFIXES):
            return pd.read_csv(io.BytesIO(body), compression="gzip" if lower.endswith(".gz") else None)
        if lower.endswith(JSONL_SUFFIXES):
            text = gzip.decompress(body) if lower.endswith(".gz") else body
            return pd.read_json(io.BytesIO(text), lines=True, dtype=False)
        if lower.endswith(PARQUET_SUFFIXES):
            try:
                import pyarrow  # noqa: F401  (pandas reads Parquet through it)
            except ImportError:
                raise TrainingDataError(
                    f"{key}: Parquet needs pyarrow, which this runtime does not have: upload CSV or JSON Lines, or "
                    "add pyarrow to the dependency layer"
                ) from None
            return pd.read_parquet(io.BytesIO(body))
    except TrainingDataError:
        raise
    except Exception as e:  # pandas raises ParserError, UnicodeDecodeError, OSError (gzip), ValueError...
        raise TrainingDataError(f"{key}: not readable as {key.rsplit('.', 1)[-1]}: {str(e).splitlines()[0]}") from None
    raise TrainingDataError(
        f"{key}: not a training-data file: use {', '.join(CSV_SUFFIXES + JSONL_SUFFIXES + PARQUET_SUFFIXES)}"
    )


def conform(frame: pd.DataFrame, card: ModelCard) -> pd.DataFrame:
    """The card's feature columns of `frame`, typed as the schema says: category as text (nulls kept), boolean as
    bool, number and integer as floats (a value that is not a number becomes NaN, as scikit-learn's imputers expect).
    Raises TrainingDataError naming the missing columns."""
    names = list(card.input_schema.names)
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise TrainingDataError(f"missing feature column(s) {missing}")
    out = {}
    for spec in card.input_schema.features:
        values = frame[spec.name]
        if spec.type == CATEGORY:
            out[spec.name] = (
                values.astype(object)
                .where(values.notna(), None)
                .map(lambda v: v if v is None or isinstance(v, str) else str(v))
            )
        elif spec.type == BOOLEAN:
            text = values.astype(str).str.lower()
            out[spec.name] = values.where(~text.isin(["true", "false"]), text == "true").astype(bool)
        else:
            out[spec.name] = pd.to_numeric(values, errors="coerce").astype("float64")
    return pd.DataFrame(out, index=frame.index)


def target_values(values: pd.Series, card: ModelCard) -> np.ndarray:
    """Labels as the model's classes (a classifier: matched by their text, as the quality check compares them, so "1"
    is the class 1; a label that is no class stays as it is and the gate will refuse a candidate that learned it) or
    as floats (a regressor)."""
    if card.task != CLASSIFICATION:
        return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    by_text = {str(c): c for c in card.classes or ()}
    return np.array([by_text.get(str(v), v) for v in values], dtype=object)


def read_prefix(s3: Any, bucket: str, prefix: str, card: ModelCard, target: str) -> tuple[pd.DataFrame, list[str]]:
    """Every training-data object under `prefix` as one frame (features conformed, `target`, SOURCE) and the keys
    read. Raises TrainingDataError naming an object that cannot be read or lacks a column."""
    frames, keys = [], []
    for key in _objects(s3, bucket, prefix):
        raw = read_frame(key, s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        if target not in raw.columns:
            raise TrainingDataError(f"{key}: no target column {target!r} (columns: {', '.join(map(str, raw.columns))})")
        try:
            features = conform(raw, card)
        except TrainingDataError as e:
            raise TrainingDataError(f"{key}: {e}") from None
        frames.append(features.assign(**{target: target_values(raw[target], card), SOURCE: PREFIX_SOURCE}))
        keys.append(key)
    if not frames:
        return pd.DataFrame(columns=[*card.input_schema.names, target, SOURCE]), keys
    return pd.concat(frames, ignore_index=True), keys


def read_labeled_captures(
    s3: Any, bucket: str, card: ModelCard, target: str, *, end: datetime, label_days: float, lookback_days: float
) -> pd.DataFrame:
    """The captured rows of `card`'s model (any version) whose labels arrived in the `label_days` days before `end`,
    with those labels as `target` and the prediction time as `time`, oldest first. Predictions are looked for from
    `lookback_days` before the labels' window (labels arrive late), as the model-quality check does."""
    names = list(card.input_schema.names)
    labels = read_labels(s3, bucket, card.name, end - timedelta(days=label_days), end)
    if not len(labels.frame):
        return pd.DataFrame(columns=[*names, target, "time", SOURCE])
    period = Window(end - timedelta(days=label_days + lookback_days), end)
    captured = read_predictions(s3, bucket, card.name, period, labeled=set(labels.frame[ID]), features=names)
    predictions = captured.frame[captured.frame[ID].notna()]
    joined = join_labels(labels.frame[[ID, LABEL]], predictions)
    latest = predictions.sort_values("time", kind="stable").drop_duplicates(ID, keep="last")
    rows = joined.frame[[ID, LABEL]].merge(latest[[ID, "time", *names]], on=ID, how="inner")
    rows = rows.sort_values("time", kind="stable").reset_index(drop=True)
    features = conform(rows, card)
    labels = target_values(rows[LABEL], card)
    return features.assign(**{target: labels, "time": rows["time"].to_numpy(), SOURCE: CAPTURE_SOURCE})


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
    rows (stratified by class for a classifier, `seed` fixed, so a rerun splits the same way). Returns TrainingData;
    raises nothing (too few rows is the caller's rule).
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
    )


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
    """A run file written by frame_to_jsonl, conformed to the card's schema, with `target`."""
    raw = pd.read_json(io.BytesIO(gzip.decompress(body)), lines=True, dtype=False)
    if not len(raw):
        raw = pd.DataFrame(columns=[*card.input_schema.names, target])
    return conform(raw, card).assign(**{target: target_values(raw[target], card)})
