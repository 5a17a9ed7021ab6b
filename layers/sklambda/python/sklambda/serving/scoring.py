"""Scoring rows with a loaded estimator: validation against the card, predictions, probabilities, decisions,
data-quality warnings and (when asked) explanations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from sklambda.errors import ExplanationUnavailable, FieldError, InvalidInput
from sklambda.registry.card import CLASSIFICATION, ModelCard
from sklambda.serving.data_quality import UNSEEN_CATEGORY, DataQualityChecker, DataQualityWarning

# Classifiers whose predict() is not argmax(predict_proba()) (Platt scaling is fitted separately).
_PREDICT_DIFFERS_FROM_PROBA = {"SVC", "NuSVC"}


@dataclass(frozen=True)
class Scored:
    """The answer for a list of rows, one entry per row in each list: predictions (class labels or numbers),
    probabilities keyed by class (classifiers with predict_proba, else None), and the optional parts below."""

    model_name: str
    model_version: str
    predictions: list
    probabilities: list[dict[str, float]] | None
    warnings: list[DataQualityWarning] = field(default_factory=list)  # sklambda.serving.data_quality; never refusals
    decisions: list | None = None  # binary classifiers with a decision threshold in the card
    decision_rule: dict | None = None  # {"positive_class", "threshold"} that made the decisions
    explanations: list[dict] | None = None  # when asked: sklambda.serving.explain, one dict per row


@dataclass(frozen=True)
class ScoredArrays:
    """Scores as arrays, for callers that format many rows at once (batch scoring)."""

    predictions: list
    probabilities: np.ndarray | None  # shape [rows, classes], columns in `Scorer.class_keys` order


def _final_step(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


class Scorer:
    """One loaded model with its card: validates rows against the card's schema and scores them.

    Built once per model version per container (serving.server.ModelServer); holds the data-quality checks and,
    once asked for, the explainer.
    """

    def __init__(self, estimator: Any, card: ModelCard) -> None:
        self.estimator = estimator
        self.card = card
        self.schema = card.input_schema
        self._proba = card.task == CLASSIFICATION and hasattr(estimator, "predict_proba")
        self._classes = np.asarray(getattr(estimator, "classes_", card.classes or ()), dtype=object)
        self._class_keys = [str(c) for c in self._classes]
        self._argmax_is_predict = type(_final_step(estimator)).__name__ not in _PREDICT_DIFFERS_FROM_PROBA
        self.data_quality_checker = DataQualityChecker(self.schema)
        self._explainer: Any = None
        self._decision = self._decision_rule(card)

    def _decision_rule(self, card: ModelCard) -> tuple[int, str, Any, Any, float] | None:
        """(positive column, positive key, positive class, negative class, threshold) of a binary classifier."""
        decision = card.decision or {}
        if not self._proba or len(self._classes) != 2 or "threshold" not in decision:
            return None
        keys = self._class_keys
        positive = str(decision.get("positive_class", keys[1]))
        if positive not in keys:
            return None
        i = keys.index(positive)
        return i, positive, _py(self._classes[i]), _py(self._classes[1 - i]), float(decision["threshold"])

    def explainer(self) -> Any:
        """Built on first use (explanations are opt-in); needs the background sample stored in the card."""
        if self._explainer is None:
            if self.card.task == CLASSIFICATION and not self._proba:
                raise ExplanationUnavailable(
                    f"model {self.card.name} version {self.card.version} cannot be explained: explanations "
                    f"attribute the class probabilities and its estimator ({self.card.estimator}) has no predict_proba"
                )
            from sklambda.serving.explain import Explainer  # only containers that explain pay for the import

            try:
                self._explainer = Explainer.from_card(self.estimator, self.card)
            except ValueError as e:
                raise ExplanationUnavailable(
                    f"model {self.card.name} version {self.card.version} cannot be explained: {e}; "
                    "republish it with this version of sklambda to store a background sample"
                ) from None
        return self._explainer

    @property
    def has_probabilities(self) -> bool:
        """A classifier whose estimator has predict_proba: scores come with probabilities."""
        return self._proba

    @property
    def outputs(self) -> list[str]:
        """The outputs this model really gives: `predict`, and `predict_proba` when the estimator has it."""
        return ["predict", "predict_proba"] if self._proba else ["predict"]

    @property
    def can_explain(self) -> bool:
        """Explanations need the card's background sample and, for a classifier, predict_proba."""
        has_background = bool((self.card.explanation or {}).get("background"))
        return has_background and (self.card.task != CLASSIFICATION or self._proba)

    @property
    def classes(self) -> list:
        """The fitted classes (estimator.classes_, else the card's) as Python values; [] for a regressor."""
        return self._classes.tolist()

    @property
    def class_keys(self) -> list[str]:
        """The classes as text, in column order: the keys of `Scored.probabilities` and the proba_<key> columns."""
        return list(self._class_keys)

    def score(self, rows: Sequence[Mapping[str, Any]], *, explain: bool = False) -> Scored:
        """Validate `rows` (JSON-like dicts of feature values) against the card's schema and score them, with the
        data-quality warnings of each row and, with `explain`, one explanation per row (serving/explain.py). A feature
        the model never reads may be left out of a row: the model gets that column's missing marker (InputSchema.frame).

        Raises InvalidInput naming each bad row and field (schema), or each row the model cannot score or scores
        as NaN/infinite; ExplanationUnavailable when `explain` is asked of a model that cannot be explained.
        """
        frame = self.schema.validate(rows)
        scored = self.score_frame(frame)
        warnings = self.data_quality_checker.check_rows(rows)
        if warnings:
            scored = replace(scored, warnings=warnings)
        if explain:
            scored = replace(scored, explanations=self.explainer().explain(frame).rows())
        return scored

    def score_frame(self, X: pd.DataFrame) -> Scored:
        """Score an already validated frame (columns in schema order): predictions, probabilities keyed by class,
        and decisions when the card has a threshold. Raises InvalidInput as score_arrays."""
        arrays = self.score_arrays(X)
        probabilities = None
        if arrays.probabilities is not None:
            keys = self._class_keys
            probabilities = [dict(zip(keys, row, strict=True)) for row in arrays.probabilities.tolist()]
        scored = Scored(self.card.name, self.card.version, arrays.predictions, probabilities)
        if self._decision is not None and arrays.probabilities is not None:
            scored = replace(scored, decisions=self.decide(arrays.probabilities), decision_rule=self.decision_rule)
        return scored

    @property
    def decision_rule(self) -> dict | None:
        """{"positive_class", "threshold"} of a binary classifier whose card sets a decision threshold, else None."""
        if self._decision is None:
            return None
        return {"positive_class": self._decision[2], "threshold": self._decision[4]}

    def decide(self, probabilities: np.ndarray) -> list | None:
        """The decided class per row: the positive class when its probability reaches the card's threshold."""
        if self._decision is None:
            return None
        i, _, positive, negative, threshold = self._decision
        return np.where(probabilities[:, i] >= threshold, positive, negative).tolist()

    def score_arrays(self, X: pd.DataFrame) -> ScoredArrays:
        """Predictions (and probabilities) of every row of X. Raises InvalidInput naming each row the model
        cannot score, or whose prediction or probabilities are not finite (never passed on as a result)."""
        try:
            arrays = self._score(X)
        except (ValueError, TypeError, KeyError) as e:
            raise self._explain_failure(X, e) from None
        bad = _non_finite_rows(arrays)
        if bad:
            raise InvalidInput(f"{len(bad)} row(s) could not be scored: {bad[0]}", errors=bad)
        return arrays

    def _score(self, X: pd.DataFrame) -> ScoredArrays:
        if self._proba:
            proba = np.asarray(self.estimator.predict_proba(X), dtype=float)
            # One pass through the pipeline instead of two: predict is argmax of the probabilities here.
            if self._argmax_is_predict:
                predictions = self._classes[proba.argmax(axis=1)].tolist()
            else:
                predictions = np.asarray(self.estimator.predict(X)).tolist()
            return ScoredArrays(predictions, proba)
        return ScoredArrays(np.asarray(self.estimator.predict(X)).tolist(), None)

    def _explain_failure(self, X: pd.DataFrame, error: Exception) -> InvalidInput:
        """The model rejected the batch: find which rows it rejects, so the caller can fix them. A rejected row holding
        a category training did not have is reported on that field (an encoder with handle_unknown="error" refuses
        it, and its own message names a column position, not the feature)."""
        bad: list[FieldError] = []
        for i in range(len(X)):
            try:
                self._score(X.iloc[[i]])
            except (ValueError, TypeError, KeyError) as e:
                unseen = [w for w in self.data_quality_checker.check_frame(X.iloc[[i]]) if w.code == UNSEEN_CATEGORY]
                bad.extend(
                    FieldError(f"the model cannot score this row: {w.message} ({_short(e)})", row=i, field=w.field)
                    for w in unseen
                )
                if not unseen:
                    bad.append(FieldError(f"the model cannot score this row: {_short(e)}", row=i))
        if not bad:
            bad = [FieldError(f"the model cannot score this batch: {_short(error)}")]
        return InvalidInput(f"{len(bad)} row(s) could not be scored: {bad[0]}", errors=bad)


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _short(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _non_finite_rows(arrays: ScoredArrays) -> list[FieldError]:
    """One FieldError per row whose prediction or any probability is NaN or infinite."""
    bad: dict[int, FieldError] = {}
    if arrays.probabilities is not None:
        for i in np.flatnonzero(~np.isfinite(arrays.probabilities).all(axis=1)).tolist():
            values = ", ".join(str(v) for v in arrays.probabilities[i].tolist() if not np.isfinite(v))
            bad[i] = FieldError(f"the model produced a non-finite probability ({values}) for this row", row=i)
    predictions = arrays.predictions
    if predictions and isinstance(predictions[0], float):  # a regressor's (labels come from the fitted classes)
        for i in np.flatnonzero(~np.isfinite(np.asarray(predictions, dtype=float))).tolist():
            message = f"the model produced a non-finite prediction ({predictions[i]}) for this row"
            bad.setdefault(i, FieldError(message, row=i))
    return [bad[i] for i in sorted(bad)]
