"""Explanations and decisions through the prediction API: ?explain=true, the card's decision threshold."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from sklambda import config
from tests.support import call, event_body, load_event, publish_churn


def predict(app, context, *, query: dict | None = None, rows: list | None = None) -> tuple[int, dict]:
    body = {"instances": rows} if rows is not None else ...
    return call(app, load_event("predict.json", body=body, query=query), context)


@pytest.mark.parametrize("model_fixture", ["logistic_model", "forest_model"])
def test_explain_true_returns_attributions_per_input_feature_that_add_up_to_the_probabilities(
    registry_env, function_env, churn, lambda_context, request, model_fixture
):
    # GIVEN a published linear (exact) or forest (tree Shapley) pipeline
    from tests.support import import_predict_app

    model = request.getfixturevalue(model_fixture)
    card = publish_churn(registry_env, churn, model)
    app = import_predict_app()
    # WHEN the sample rows are scored with ?explain=true
    status, body = predict(app, lambda_context, query={"explain": "true"})
    # THEN each row has one attribution per original input feature (no one-hot columns) ...
    assert status == 200
    rows = body["explanations"]
    assert len(rows) == len(body["predictions"]) == 2
    for row, probabilities in zip(rows, body["probabilities"], strict=True):
        assert list(row["attributions"]) == list(card.input_schema.names)
        # ... and base value + attributions = the probability of each class
        for cls, p in probabilities.items():
            total = row["base_value"][cls] + sum(a[cls] for a in row["attributions"].values())
            assert total == pytest.approx(p, abs=1e-6)
        # AND the identifier the pipeline drops gets no attribution
        assert all(abs(v) < 1e-12 for v in row["attributions"]["customer_id"].values())
    assert rows[0]["method"] == ("linear_exact" if model_fixture == "logistic_model" else "tree_exact")


def test_without_explain_the_response_has_no_explanations(predict_app, published, lambda_context):
    status, body = predict(predict_app, lambda_context)
    assert status == 200 and "explanations" not in body


def test_explain_is_limited_to_a_number_of_rows_per_request(function_env, published, lambda_context, monkeypatch):
    from tests.support import import_predict_app

    # GIVEN a function allowing 1 explained row per request
    monkeypatch.setenv(config.MAX_EXPLAIN_ROWS, "1")
    app = import_predict_app()
    # WHEN 2 rows are sent with explain=true, then without
    status, body = predict(app, lambda_context, query={"explain": "true"})
    plain, _ = predict(app, lambda_context)
    # THEN the explained request is refused with 413 naming the limit, the plain one is scored
    assert status == 413 and "limited to 1 rows" in body["error"]["message"]
    assert plain == 200


def test_a_bad_explain_value_is_a_400_naming_the_parameter(predict_app, published, lambda_context):
    status, body = predict(predict_app, lambda_context, query={"explain": "perhaps"})
    assert status == 400
    assert body["error"]["details"][0]["field"] == "explain"


def test_a_card_without_background_cannot_be_explained_but_still_predicts(
    registry_env, function_env, churn, logistic_model, lambda_context, monkeypatch
):
    from sklambda.publishing import publisher as publish_module
    from tests.support import import_predict_app

    # GIVEN a version published without a background sample (as before explanations existed)
    monkeypatch.setattr(publish_module, "background_sample", lambda *a, **k: [])
    publish_churn(registry_env, churn, logistic_model)
    app = import_predict_app()
    # WHEN it is asked to explain, then to predict
    status, body = predict(app, lambda_context, query={"explain": "true"})
    plain, _ = predict(app, lambda_context)
    # THEN explaining is a 409 saying why and what to do, and predicting still works
    assert status == 409 and body["error"]["code"] == "explanation_unavailable"
    assert "republish" in body["error"]["message"]
    assert plain == 200


def test_the_decision_applies_the_cards_threshold_to_the_positive_class_probability(
    registry_env, function_env, churn, logistic_model, lambda_context
):
    from tests.support import import_predict_app

    # GIVEN a binary churn model published with a low decision threshold
    publish_churn(registry_env, churn, logistic_model, threshold=0.2)
    app = import_predict_app()
    rows = event_body("predict.json")["instances"]
    # WHEN rows are scored
    status, body = predict(app, lambda_context)
    # THEN each row's decision is "yes" exactly when P(yes) >= 0.2, next to the model's own prediction
    assert status == 200
    assert body["decision_threshold"] == {"positive_class": "yes", "threshold": 0.2}
    expected = ["yes" if p["yes"] >= 0.2 else "no" for p in body["probabilities"]]
    assert body["decisions"] == expected
    assert body["predictions"] == logistic_model.predict(pd.DataFrame(rows)).tolist()
    assert json.dumps(body)  # plain JSON types only
