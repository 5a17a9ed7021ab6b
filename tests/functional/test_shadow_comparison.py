"""The shadow comparison (sklambda.updating.shadow.compare_shadow) of two estimators on captured rows and labels."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from sklambda.monitoring.capture import Pseudonymizer
from sklambda.registry.schema import to_records
from sklambda.serving.scoring import Scorer
from sklambda.serving.server import LoadedModel
from sklambda.updating.shadow import compare_shadow
from sklambda_infra import sample

PSEUDONYMS = Pseudonymizer(b"k" * 32)


def captured(model, rows: int, *, seed: int, version: str = "1") -> tuple[list[dict], pd.Series]:
    """Row records as the predict function captures them (customer_id pseudonymized), and the rows' true labels."""
    X, y = sample.churn_data(rows, seed=seed)
    predictions = model.predict(X)
    records = [
        {
            "version": version,
            "features": {**row, "customer_id": PSEUDONYMS.pseudonym(row["customer_id"])},
            "prediction": str(p),
            "inference_id": f"id-{seed}-{i}",
        }
        for i, (row, p) in enumerate(zip(to_records(X), predictions, strict=True))
    ]
    return records, y


def test_a_weaker_shadow_is_compared_paired_on_the_same_rows(churn_v1, logistic_model):
    # GIVEN the stable logistic pipeline, a shadow that is a shallow forest, and 1500 captured rows, all labeled
    weak = sample.forest_pipeline(n_estimators=3).set_params(model__max_depth=2).fit(*sample.churn_data(300, seed=9))
    stable = LoadedModel(churn_v1.card, Scorer(logistic_model, churn_v1.card), 0.0)
    shadow = LoadedModel(replace(churn_v1.card, version="2"), Scorer(weak, churn_v1.card), 0.0)
    records, y = captured(logistic_model, 1500, seed=11)
    labels = pd.DataFrame({"inference_id": [r["inference_id"] for r in records], "label": y})
    # AND a tenth of the captured predictions that the stable version would not give again
    for r in records[:150]:
        r["prediction"] = "yes" if r["prediction"] == "no" else "no"
    # WHEN the shadow is compared, on a sample of 1000 rows
    report = compare_shadow(stable, shadow, records, labels, max_rows=1000)
    # THEN 1000 rows were replayed on both, and the replay's fidelity shows the rows that do not reproduce
    assert report["replay"]["rows_replayed"] == 1000 and report["replay"]["sampled"] is True
    fidelity = report["fidelity"]
    assert 0.8 < fidelity["share"] < 0.95
    # AND no pii note: churn's pii customer_id is never read by the model (required False), so it changes no answer
    assert fidelity["pii_features"] == [] and "note" not in fidelity
    # AND the two disagree on some rows, with a Wilson interval around the rate
    agreement = report["agreement"]
    low, high = agreement["interval"]
    assert low < agreement["rate"] < high < 1.0
    # AND each class's share differs by a paired difference with its interval
    shares = {c["class"]: c for c in report["distribution"]["classes"]}
    assert set(shares) == {"no", "yes"}
    assert shares["yes"]["difference"] == pytest.approx(shares["yes"]["shadow"] - shares["yes"]["stable"])
    # AND on ROC AUC (paired DeLong) the shallow forest is rejected, its whole interval below -margin: shown worse
    quality = report["quality"]
    assert (quality["metric"], quality["labeled_rows"], quality["decision"]) == ("roc_auc", 1000, "reject")
    assert quality["interval"][1] < -0.01 and quality["gate"]["method"] == "paired_delong"
    assert (quality["verdict"], quality["level"]) == ("shown worse by more than the margin (0.01)", "worse")
    assert "roc_auc of the shadow against the stable version: shown worse by more than the margin" in report["summary"]
    # AND both were timed on the same chunks
    assert report["latency"]["chunks"] == 5 and report["latency"]["ratio"] > 0


def test_rows_a_version_cannot_score_are_left_out_and_counted(churn_v1, logistic_model):
    # GIVEN captured rows, two of which hold a value the schema refuses
    stable = LoadedModel(churn_v1.card, Scorer(logistic_model, churn_v1.card), 0.0)
    shadow = LoadedModel(replace(churn_v1.card, version="2"), Scorer(logistic_model, churn_v1.card), 0.0)
    records, _ = captured(logistic_model, 50, seed=12)
    records[3]["features"]["age"] = "old"
    records[7]["features"]["monthly_charges"] = "a lot"
    # WHEN the shadow is compared
    report = compare_shadow(stable, shadow, records)
    # THEN the other 48 rows are replayed and the two refused ones counted, not raised
    assert report["replay"]["rows_replayed"] == 48 and report["replay"]["rejected"]["stable"] == 2
    assert report["quality"] == {"available": False, "reason": "no label has arrived for the replayed rows"}


def test_the_pii_note_names_the_pii_features_the_model_reads(churn_v1, logistic_model):
    # GIVEN a card whose pii customer_id is marked as read by the model (required), for both versions
    from sklambda.registry.schema import InputSchema

    features = tuple(
        replace(f, required=True) if f.name == "customer_id" else f for f in churn_v1.card.input_schema.features
    )
    card = replace(churn_v1.card, input_schema=InputSchema(features))
    stable = LoadedModel(card, Scorer(logistic_model, card), 0.0)
    shadow = LoadedModel(replace(card, version="2"), Scorer(logistic_model, card), 0.0)
    records, _ = captured(logistic_model, 50, seed=3)
    # WHEN the shadow is compared THEN the report says the replay scores its pseudonyms
    fidelity = compare_shadow(stable, shadow, records)["fidelity"]
    assert fidelity["pii_features"] == ["customer_id"]
    assert "the model reads pii features (customer_id)" in fidelity["note"] and "pseudonyms" in fidelity["note"]
