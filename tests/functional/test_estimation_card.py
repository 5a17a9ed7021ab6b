"""The CBPE calibration maps in the signed card (binary and multiclass): fitted at publish on the holdout, stored,
verified, read back."""

from __future__ import annotations

import dataclasses
import json

import pytest
from sklearn.linear_model import LogisticRegression

from sklambda.errors import ModelRefused
from sklambda.monitoring.model_quality.degradation import NO_REFERENCE, check_degradation
from sklambda.monitoring.model_quality.estimation import MULTICLASS_METHOD, EstimationUnavailable, estimate
from sklambda.monitoring.model_quality.metrics import window_metrics
from sklambda.publishing.publisher import build_card
from sklambda.registry.card import ModelCard
from tests.support import BuiltVersion, store_built


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


def test_a_multiclass_model_gets_one_vs_rest_maps_in_the_signed_card(registry_env, churn, target_runtime):
    # GIVEN a 3-class model (churn's `plan`) built with a holdout, signed and stored as publish does
    columns = ["age", "tenure_months", "monthly_charges"]
    model = LogisticRegression(max_iter=500).fit(churn.X[columns], churn.X["plan"])
    built = build_card(
        model,
        churn.X[columns],
        churn.X["plan"],
        name="plan",
        version="1",
        X_holdout=churn.X_holdout[columns],
        y_holdout=churn.X_holdout["plan"],
    )
    store_built(registry_env, BuiltVersion(*built))
    # WHEN its card is read back and verified
    card = registry_env.registry.get_card("plan", "1")
    registry_env.verifier.verify(card)
    # THEN it carries the multiclass CBPE section, one map per class, with the card's holdout metrics
    section = card.estimation
    assert section["method"] == MULTICLASS_METHOD and len(section["calibrations"]) == len(card.classes) == 3
    for name in ("accuracy", "f1_macro", "roc_auc_ovr"):
        assert section["holdout"][name] == pytest.approx(card.metrics[name], abs=1e-12), name
    # AND on the holdout the estimated accuracy is close to the realized one
    proba = model.predict_proba(churn.X_holdout[columns])
    assert estimate(section, proba).accuracy == pytest.approx(card.metrics["accuracy"], abs=0.02)
    # AND the window's realized metrics have the card's names, so the degradation check compares like with like
    window = window_metrics(card.task, churn.X_holdout["plan"], prob=proba, classes=card.classes)
    report = check_degradation(window, card.metrics, labeled_rows=len(proba))
    compared = {m.name for m in report.metrics if m.verdict != NO_REFERENCE}
    assert compared == {"accuracy", "balanced_accuracy", "f1_macro", "roc_auc_ovr", "log_loss"}
