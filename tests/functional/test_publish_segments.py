"""Segments and fairness at publish: the card's signed `segments` section and the refusal of columns that
cannot be segments (sklambda.publishing.segments)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline

from sklambda.errors import PublishRejected
from sklambda.monitoring.model_quality import fairness
from sklambda.publishing.publisher import build_card
from sklambda.registry.card import ModelCard
from sklambda_infra import modelcard, sample
from tests.support import publish_churn


def test_publish_with_segments_stores_a_signed_section_computed_on_the_holdout(registry_env, churn, logistic_model):
    # GIVEN the churn model published with region as a segment and has_partner as sensitive
    card = publish_churn(registry_env, churn, logistic_model, segments=["region"], sensitive=["has_partner"])
    # WHEN the card is read back (its signature verified)
    stored = registry_env.registry.get_card("churn", card.version)
    section = stored.segments
    # THEN it holds both features, their groups cover the holdout, and only the sensitive one has the differences
    assert section["split"] == "holdout" and section["rows"] == len(churn.X_holdout)
    by_name = {f["name"]: f for f in section["features"]}
    region, partner = by_name["region"], by_name["has_partner"]
    assert sum(g["rows"] for g in region["groups"]) == len(churn.X_holdout)
    assert {g["group"] for g in region["groups"]} == {str(v) for v in churn.X_holdout["region"].dropna().unique()} | (
        {None} if churn.X_holdout["region"].isna().any() else set()
    )
    names = {g["name"] for g in partner["gaps"]}
    assert {fairness.DEMOGRAPHIC_PARITY, fairness.EQUAL_OPPORTUNITY} <= names
    assert not {fairness.DEMOGRAPHIC_PARITY, fairness.EQUAL_OPPORTUNITY} & {g["name"] for g in region["gaps"]}
    # AND the selection rate of each group is the share of its holdout rows at or above the decision threshold
    threshold = stored.decision["threshold"]
    proba = logistic_model.predict_proba(churn.X_holdout)[:, 1]
    for g in region["groups"]:
        if g["group"] is not None:
            rows = (churn.X_holdout["region"] == g["group"]).to_numpy()
            assert g["metrics"]["selection_rate"] == pytest.approx(np.mean(proba[rows] >= threshold))
    assert stored.to_dict()["segments"] == card.to_dict()["segments"]
    # AND the rendered model card shows a section per feature with its groups and gaps
    markdown = modelcard.render(stored, "markdown")
    assert "## Segments: region" in markdown and "## Segments: has_partner" in markdown
    for g in region["groups"]:
        assert f"| {g['group'] if g['group'] is not None else '(null)'} | {g['rows']} |" in markdown
    assert f"{fairness.DEMOGRAPHIC_PARITY} gap" in markdown
    assert "Segments: region" in modelcard.render(stored, "html")


def test_a_card_without_segments_still_loads():
    # GIVEN a card dict written before the section existed (none of it present)
    card = ModelCard.from_dict(_minimal_card_dict())
    # THEN it loads with no segments, and its signed JSON has no such key
    assert card.segments is None and "segments" not in card.to_dict(include_signature=False)


def test_columns_that_cannot_be_segments_are_refused_by_name(churn, logistic_model, target_runtime):
    # GIVEN a missing column, a pii column and a numeric column named as segments or sensitive
    with pytest.raises(PublishRejected) as info:
        build_card(
            logistic_model,
            churn.X,
            churn.y,
            name="churn",
            version="1",
            pii=sample.PII,
            segments=["nope", "age"],
            sensitive=["customer_id"],
        )
    # THEN one refusal names each
    fields = {e.field: e.message for e in info.value.errors}
    assert set(fields) == {"nope", "age", "customer_id"}
    assert "not a column" in fields["nope"] and "is pii" in fields["customer_id"] and "integer" in fields["age"]
    assert all(m.startswith("[segments]") for m in fields.values())


def test_a_fairness_bound_for_no_metric_is_refused_before_any_metric_is_computed(churn, logistic_model, monkeypatch):
    # GIVEN a misspelt bound name and a negative bound (the segments themselves are fine)
    from sklambda.publishing import publisher

    monkeypatch.setattr(publisher, "segments_section", lambda *a, **k: pytest.fail("metrics computed"))
    with pytest.raises(PublishRejected) as info:
        build_card(logistic_model, churn.X, churn.y, name="churn", version="1", pii=sample.PII, segments=["region"],
                   fairness_bounds={"acuracy": 0.05, "recall": -1})  # fmt: skip
    # THEN each is refused by name, before the segments' metrics
    fields = {e.field: e.message for e in info.value.errors}
    assert "which is no metric" in fields["acuracy"] and "accuracy" in fields["acuracy"]
    assert "must be a number >= 0" in fields["recall"]


def test_a_regressor_gets_mae_and_mean_bias_per_group(churn, target_runtime):
    # GIVEN a regressor on the churn features predicting monthly charges, region as a segment
    X = churn.X.drop(columns=["monthly_charges"])
    numeric = [c for c in sample.NUMERIC if c != "monthly_charges"]
    X = X[[*numeric, "region"]]
    model = Pipeline(
        [("prep", ColumnTransformer([("num", SimpleImputer(), numeric)])), ("model", LinearRegression())]
    ).fit(X, churn.X["monthly_charges"])
    card, *_ = build_card(model, X, churn.X["monthly_charges"], name="charges", version="1", segments=["region"])
    # THEN each region has MAE and mean bias, and with no bound for them nothing is flagged
    region = card.segments["features"][0]
    assert set(region["groups"][0]["metrics"]) == {"mae", "mean_bias"}
    assert card.segments["split"] == "training" and card.segments["flagged"] == []


def _minimal_card_dict() -> dict:
    return {
        "format": "sklambda.registry.card/v1",
        "name": "m",
        "version": "1",
        "task": "regression",
        "classes": None,
        "target": "y",
        "estimator": "x",
        "library_versions": {},
        "input_schema": {"features": []},
        "metrics": {},
        "baseline": {},
        "artifact": {"key": "k", "sha256": "0" * 64, "size": 1},
        "created_at": "2026-01-01T00:00:00+00:00",
    }
