"""The gate between two published versions: both loaded verified from the registry, scored as served on the same
labeled rows, and compared by sklambda.updating.gate."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from sklambda.registry.signing import CardVerifier
from sklambda.registry.store import Registry
from sklambda.serving.server import load_verified
from sklambda.updating.gate import GateConfig, GateResult, compare_versions

# The metrics scored on the positive class's probability; accuracy-like ones on the served prediction.
_PROBABILITY_METRICS = ("roc_auc", "log_loss", "brier")


def gate_versions(
    registry: Registry,
    verifier: CardVerifier,
    name: str,
    champion: str,
    challenger: str,
    X: pd.DataFrame,
    y: Any,
    *,
    config: GateConfig | None = None,
) -> GateResult:
    """Load versions `champion` and `challenger` of `name` (exact versions; signatures verified before unpickling, as
    the predict function does), score the rows of X with each as it is served, and gate the challenger.

    X: the labeled rows (the card's feature columns; others are ignored); y: their true labels (n,). For a binary
    classifier the positive class is the champion's decision class (else its second class, scikit-learn's
    convention), the same for both versions. Raises ValueError when the versions have different tasks or classes, or
    y's length differs from X's, or a multiclass model is gated on another metric than accuracy (each row's
    correctness is compared, paired); ModelNotFound / ModelRefused as load_verified; InvalidInput for rows a model
    cannot score.
    """
    config = config or GateConfig()
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows and y {len(y)}")
    loaded = [load_verified(registry, verifier, name, v) for v in (champion, challenger)]
    cards = [m.card for m in loaded]
    if cards[0].task != cards[1].task or list(cards[0].classes or ()) != list(cards[1].classes or ()):
        raise ValueError(
            f"versions {champion} and {challenger} of {name!r} do not answer the same question: tasks "
            f"{cards[0].task}/{cards[1].task}, classes {cards[0].classes}/{cards[1].classes}"
        )
    truth = np.asarray(y)
    scored = [m.scorer.score_arrays(X[list(m.card.input_schema.names)]) for m in loaded]
    if cards[0].task == "regression":
        values = [np.asarray(s.predictions, dtype=float) for s in scored]
        return compare_versions(truth.astype(float), *values, config=config)
    classes = list(cards[0].classes or ())
    if len(classes) != 2:
        if config.metric != "accuracy":
            raise ValueError(
                f"{name!r} has {len(classes)} classes: a multiclass model is gated on accuracy (metric 'accuracy'), "
                f"not {config.metric}"
            )
        # Accuracy is the mean of each row's correctness: the same paired bootstrap on "is this row right" vectors.
        right = [np.array([str(p) == str(t) for p, t in zip(s.predictions, truth, strict=True)]) for s in scored]
        return compare_versions(np.ones(len(truth), dtype=bool), *right, config=config)
    decision = cards[0].decision or {}
    positive = decision.get("positive_class", classes[1])
    column = [str(c) for c in classes].index(str(positive))
    is_positive = np.array([str(v) == str(positive) for v in truth])
    if config.metric in _PROBABILITY_METRICS:
        if any(s.probabilities is None for s in scored):
            raise ValueError(f"{config.metric} needs probabilities, which a version of {name!r} does not give")
        values = [s.probabilities[:, column] for s in scored]
    else:
        values = [np.array([str(p) == str(positive) for p in s.predictions]) for s in scored]
    return compare_versions(is_positive, *values, config=config)
