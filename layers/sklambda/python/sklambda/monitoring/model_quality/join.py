"""Join ground-truth labels with captured predictions by prediction id (`inference_id`, as capture and the API say).

labels:      one row per labeled prediction: ``inference_id``, ``label``, optionally ``time`` (when it arrived).
predictions: captured rows: ``inference_id``, ``prediction``, optionally ``probability`` (of the card's positive class),
             ``time`` (when it was served) and ``version`` (the model version that served it).

A label joins the prediction with the same id. An id captured twice (a retried request) keeps its latest
capture; an id labeled twice keeps its latest label (labels are corrected by sending them again). The join rate
is the share of (deduplicated) labels that found their prediction: a low rate means labels for predictions the
capture never saw (sampled out, other days' windows, wrong ids).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

ID = "inference_id"
LABEL, PREDICTION, PROBABILITY, TIME, VERSION = "label", "prediction", "probability", "time", "version"
LABEL_TIME, PREDICTION_TIME = "label_time", "prediction_time"


@dataclass(frozen=True)
class JoinResult:
    """The labeled predictions of a window and how the join went.

    frame: one row per joined id with ``inference_id``, ``label``, ``prediction``, and ``probability``, ``version``,
    ``prediction_time``, ``label_time`` when the inputs had them. labels: distinct labeled ids. predictions:
    captured rows. duplicate_labels / duplicate_predictions: rows dropped as repeats of an id (for predictions,
    counted among the labeled ids only: the others are never looked at).
    """

    frame: pd.DataFrame
    labels: int
    predictions: int
    duplicate_labels: int
    duplicate_predictions: int

    @property
    def matched(self) -> int:
        """Labels that found their prediction."""
        return len(self.frame)

    @property
    def join_rate(self) -> float:
        """matched / labels (0.0 when there is no label)."""
        return self.matched / self.labels if self.labels else 0.0

    def summary(self) -> dict[str, float | int]:
        """Counts and rate, JSON-ready."""
        return {
            "labels": self.labels,
            "predictions": self.predictions,
            "matched": self.matched,
            "join_rate": self.join_rate,
            "duplicate_labels": self.duplicate_labels,
            "duplicate_predictions": self.duplicate_predictions,
        }


def _latest(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per id: the one with the latest time, or the last one without a time column."""
    if TIME in frame.columns:
        frame = frame.sort_values(TIME, kind="stable")
    return frame.drop_duplicates(ID, keep="last")


def join_labels(labels: pd.DataFrame, predictions: pd.DataFrame) -> JoinResult:
    """Inner-join ``labels`` with ``predictions`` on ``inference_id`` (module docstring for the columns and duplicates).

    Raises ValueError when a required column (labels: inference_id, label; predictions: inference_id, prediction)
    is missing.
    """
    for name, frame, needed in (("labels", labels, (ID, LABEL)), ("predictions", predictions, (ID, PREDICTION))):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} lack column(s) {missing}; they have {list(frame.columns)}")
    lab = labels[[c for c in (ID, LABEL, TIME) if c in labels.columns]]
    pred = predictions[[c for c in (ID, PREDICTION, PROBABILITY, TIME, VERSION) if c in predictions.columns]]
    lab_unique = lab if lab[ID].is_unique else _latest(lab)
    # Keep only the captures of labeled ids first: with ~10 % of predictions labeled, deduplicating and merging
    # the rest would be most of the work.
    pred = pred[pred[ID].isin(lab_unique[ID])]
    pred_unique = pred if pred[ID].is_unique else _latest(pred)
    lab_unique = lab_unique.rename(columns={TIME: LABEL_TIME})
    pred_unique = pred_unique.rename(columns={TIME: PREDICTION_TIME})
    frame = lab_unique.merge(pred_unique, on=ID, how="inner", validate="one_to_one")
    return JoinResult(
        frame=frame.reset_index(drop=True),
        labels=len(lab_unique),
        predictions=len(predictions),
        duplicate_labels=len(lab) - len(lab_unique),
        duplicate_predictions=len(pred) - len(pred_unique),
    )
