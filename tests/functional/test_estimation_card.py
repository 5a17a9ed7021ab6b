"""The CBPE calibration map in the signed card: fitted at publish on the holdout, stored, verified, read back."""

from __future__ import annotations

import dataclasses
import json

import pytest

from sklambda.errors import ModelRefused
from sklambda.monitoring.model_quality.estimation import EstimationUnavailable, estimate
from sklambda.registry.card import ModelCard


def test_publish_stores_the_calibration_map_in_the_signed_card(registry_env, published, churn, logistic_model):
    # GIVEN churn published with a holdout (a binary classifier with predict_proba)
    # WHEN its card is read back from the registry and verified
    card = registry_env.registry.get_card("churn", published.version)
    registry_env.verifier.verify(card)
    # THEN it carries the CBPE section fitted on the holdout at the card's threshold
    section = card.estimation
    assert section == published.estimation and section["method"] == "cbpe"
    assert section["threshold"] == card.decision["threshold"]
    assert section["holdout"]["rows"] == len(churn.X_holdout)
    assert section["holdout"]["accuracy"] == pytest.approx(card.metrics["accuracy"], abs=0.01)
    # AND on the holdout itself the estimate is close to the holdout's realized accuracy
    e = estimate(section, logistic_model.predict_proba(churn.X_holdout))
    assert e.accuracy == pytest.approx(section["holdout"]["accuracy"], abs=0.02)


def test_an_edited_calibration_map_fails_signature_verification(registry_env, published):
    # GIVEN the signed card with one calibrated probability changed
    calibration = dict(published.estimation["calibration"], y=[0.0] * len(published.estimation["calibration"]["y"]))
    edited = dataclasses.replace(published, estimation=dict(published.estimation, calibration=calibration))
    # WHEN verified THEN it is refused: the map is covered by the signature
    with pytest.raises(ModelRefused, match="failed signature verification"):
        registry_env.verifier.verify(edited)


def test_a_card_from_before_estimation_loads_and_says_estimation_is_unavailable(published):
    # GIVEN a card written before the estimation section existed
    old = json.loads(published.to_json())
    old.pop("estimation")
    # WHEN read
    card = ModelCard.from_dict(old)
    # THEN it loads without the section, keeps its canonical JSON, and estimation is refused with a clear message
    assert card.estimation is None and "estimation" not in card.to_dict()
    with pytest.raises(EstimationUnavailable, match="estimation unavailable"):
        estimate(card.estimation, [[0.3, 0.7]])
