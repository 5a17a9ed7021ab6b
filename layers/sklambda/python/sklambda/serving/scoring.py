"""Scoring rows with a loaded estimator: validation against the card, predictions, probabilities, decisions,
data-quality warnings and (when asked) explanations.

A Scorer scores with the scikit-learn estimator (rows validated into a pandas DataFrame), or, for a version published
with a compiled artifact, with the compiled evaluator (sklambda.compiled: rows validated into numpy columns). On the
compiled path a request imports neither pandas nor scikit-learn; the estimator is then loaded only when something
needs it (explanations, `score_frame` on a DataFrame stays on the compiled evaluator).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from sklambda.errors import ExplanationUnavailable, FieldError, InvalidInput
from sklambda.registry.card import CLASSIFICATION, ModelCard
from sklambda.serving.data_quality import UNSEEN_CATEGORY, DataQualityChecker, DataQualityWarning

if TYPE_CHECKING:
    import pandas as pd

    from sklambda.compiled.evaluate import CompiledModel

SCIKIT_LEARN, COMPILED = "scikit-learn", "compiled"  # what scores a version: `Scorer.runtime`

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
    # On the compiled path: why the compiled evaluator did not answer and the estimator did (Scorer._score), else None.
    fallback: str | None = None


@dataclass(frozen=True)
class ScoredArrays:
    """Scores as arrays, for callers that format many rows at once (batch scoring)."""

    predictions: list
    probabilities: np.ndarray | None  # shape [rows, classes], columns in `Scorer.class_keys` order
    fallback: str | None = None  # Scored.fallback


def _final_step(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


class Scorer:
    """One loaded model with its card: validates rows against the card's schema and scores them.

    Built once per model version per container (serving.server.ModelServer); holds the data-quality checks and,
    once asked for, the explainer.
    """

    def __init__(self, estimator: Any, card: ModelCard) -> None:
        self._estimator = estimator
        self._load_estimator: Callable[[], Any] | None = None
        self.compiled: CompiledModel | None = None
        self.card = card
        self.schema = card.input_schema
        self._proba = card.task == CLASSIFICATION and hasattr(estimator, "predict_proba")
        self._classes = np.asarray(getattr(estimator, "classes_", card.classes or ()), dtype=object)
        self._init_common(card)
        self._argmax_is_predict = type(_final_step(estimator)).__name__ not in _PREDICT_DIFFERS_FROM_PROBA

    @classmethod
    def from_compiled(cls, compiled: CompiledModel, card: ModelCard, load_estimator: Callable[[], Any]) -> Scorer:
        """A Scorer that scores with the compiled evaluator (sklambda.compiled) of a version whose card has a used
        `compiled` section. `load_estimator()` returns the version's scikit-learn estimator (verified and unpickled),
        called once, only when something needs it (explanations)."""
        self = cls.__new__(cls)
        self._estimator = None
        self._load_estimator = load_estimator
        self.compiled = compiled
        self.card = card
        self.schema = card.input_schema
        self._proba = card.task == CLASSIFICATION and compiled.has_proba
        self._classes = np.asarray(compiled.classes if compiled.classes is not None else (), dtype=object)
        self._init_common(card)
        self._argmax_is_predict = False  # the compiled evaluator gives predict by the model's own rule (_score)
        from sklambda.compiled.evaluate import InvalidModelInput, UnknownCategory

        self._refusals = (UnknownCategory, InvalidModelInput)  # its refusals of the input
        return self

    def _init_common(self, card: ModelCard) -> None:
        self._class_keys = [str(c) for c in self._classes]
        self.data_quality_checker = DataQualityChecker(self.schema)
        self._explainer: Any = None
        self._decision = self._decision_rule(card)

    @property
    def runtime(self) -> str:
        """What scores this version: COMPILED (the compiled evaluator) or SCIKIT_LEARN (the unpickled estimator)."""
        return COMPILED if self.compiled is not None else SCIKIT_LEARN

    @property
    def estimator(self) -> Any:
        """The version's scikit-learn estimator; on the compiled path loaded (verified, unpickled) on first use."""
        if self._estimator is None and self._load_estimator is not None:
            self._estimator = self._load_estimator()
            self._load_estimator = None
        return self._estimator

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
        On the compiled path the rows become numpy columns (InputSchema.validate_columns), not a DataFrame.

        Raises InvalidInput naming each bad row and field (schema), or each row the model cannot score or scores
        as NaN/infinite; ExplanationUnavailable when `explain` is asked of a model that cannot be explained.
        """
        data = self.schema.validate_columns(rows) if self.compiled is not None else self.schema.validate(rows)
        scored = self._scored(self._checked_arrays(data))
        warnings = self.data_quality_checker.check_rows(rows)
        if warnings:
            scored = replace(scored, warnings=warnings)
        if explain:
            frame = data if self.compiled is None else self.schema.frame(rows)
            scored = replace(scored, explanations=self.explainer().explain(frame).rows())
        return scored

    def score_frame(self, X: pd.DataFrame) -> Scored:
        """Score an already validated frame (columns in schema order): predictions, probabilities keyed by class,
        and decisions when the card has a threshold. Raises InvalidInput as score_arrays."""
        return self._scored(self.score_arrays(X))

    def _scored(self, arrays: ScoredArrays) -> Scored:
        probabilities = None
        if arrays.probabilities is not None:
            keys = self._class_keys
            probabilities = [dict(zip(keys, row, strict=True)) for row in arrays.probabilities.tolist()]
        scored = Scored(self.card.name, self.card.version, arrays.predictions, probabilities, fallback=arrays.fallback)
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
        """Predictions (and probabilities) of every row of X (a validated frame; on the compiled path its columns go
        to the compiled evaluator as numpy arrays). Raises InvalidInput naming each row the model cannot score, or
        whose prediction or probabilities are not finite (never passed on as a result)."""
        if self.compiled is not None:
            return self._checked_arrays({name: X[name].to_numpy() for name in self.schema.names})
        return self._checked_arrays(X)

    def _checked_arrays(self, data: Any) -> ScoredArrays:
        """`data`: a DataFrame (scikit-learn path) or {feature: numpy column} (compiled path)."""
        try:
            arrays = self._score(data)
        except (ValueError, TypeError, KeyError) as e:
            raise self._explain_failure(data, e) from None
        bad = _non_finite_rows(arrays)
        if bad:
            raise InvalidInput(f"{len(bad)} row(s) could not be scored: {bad[0]}", errors=bad)
        return arrays

    def _score(self, data: Any) -> ScoredArrays:
        if self.compiled is not None:  # predict by the model's own rule (not always argmax at a tie), in one pass
            try:
                labels, proba = self.compiled.predict_and_proba(data)
            except self._refusals:
                raise  # input the model refuses, as scikit-learn does: reported per row (_explain_failure)
            except Exception as e:  # an evaluator failure the parity gate never met: the estimator answers instead,
                # so the caller still gets the published model's answer, never a 500; the reason travels with it
                fallback = f"{type(e).__name__}: {e}"
                return replace(self._score_estimator(self.schema.frame_of(data)), fallback=fallback)
            return ScoredArrays(labels.tolist(), np.asarray(proba, dtype=float) if self._proba else None)
        return self._score_estimator(data)

    def _score_estimator(self, data: Any) -> ScoredArrays:
        model = self.estimator
        if self._proba:
            proba = np.asarray(model.predict_proba(data), dtype=float)
            # One pass through the pipeline instead of two: predict is argmax of the probabilities here.
            if self._argmax_is_predict:
                predictions = self._classes[proba.argmax(axis=1)].tolist()
            else:
                predictions = np.asarray(model.predict(data)).tolist()
            return ScoredArrays(predictions, proba)
        return ScoredArrays(np.asarray(model.predict(data)).tolist(), None)

    def _explain_failure(self, data: Any, error: Exception) -> InvalidInput:
        """The model rejected the batch: find which rows it rejects, so the caller can fix them. A rejected row holding
        a category training did not have is reported on that field (an encoder with handle_unknown="error" refuses
        it, and its own message names a column position, not the feature)."""
        bad: list[FieldError] = []
        for i in range(_rows(data)):
            row = _row(data, i)
            try:
                self._score(row)
            except (ValueError, TypeError, KeyError) as e:
                unseen = [w for w in self.data_quality_checker.check_frame(row) if w.code == UNSEEN_CATEGORY]
                bad.extend(
                    FieldError(f"the model cannot score this row: {w.message} ({_short(e)})", row=i, field=w.field)
                    for w in unseen
                )
                if not unseen:
                    bad.append(FieldError(f"the model cannot score this row: {_short(e)}", row=i))
        if not bad:
            bad = [FieldError(f"the model cannot score this batch: {_short(error)}")]
        return InvalidInput(f"{len(bad)} row(s) could not be scored: {bad[0]}", errors=bad)


def _rows(data: Any) -> int:
    """Rows of a DataFrame or of {feature: column}."""
    if isinstance(data, dict):
        return len(next(iter(data.values()))) if data else 0
    return len(data)


def _row(data: Any, i: int) -> Any:
    """Row i of a DataFrame or of {feature: column}, as the same kind of object."""
    if isinstance(data, dict):
        return {name: column[i : i + 1] for name, column in data.items()}
    return data.iloc[[i]]


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
