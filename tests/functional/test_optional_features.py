"""Serving a model with columns it never reads (churn's pii customer_id, dropped by its ColumnTransformer): requests,
v2 inputs and batch files may leave them out; everything else about the schema is enforced as before. And a
category the model refuses is reported on its field."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace

import pytest
from sklearn.preprocessing import OneHotEncoder

from sklambda.batch.engine import score_file
from sklambda.errors import InvalidInput
from sklambda.publishing.parity import payloads
from sklambda.publishing.parity_child import CSV_ROUTE, JSONL_ROUTE, REST, V2
from sklambda.publishing.publisher import build_card
from sklambda.registry.schema import to_records
from sklambda.serving.scoring import Scorer
from sklambda.serving.server import LoadedModel
from sklambda_infra import sample
from tests.support import call, event_body, load_event


def without(rows: list[dict], *names: str) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in names} for r in rows]


def test_the_card_marks_the_dropped_pii_column_optional(published):
    schema = published.input_schema
    assert schema.optional_names == ("customer_id",)
    assert schema.feature("customer_id").pii and "customer_id" not in schema.required_names


def test_the_parity_gate_sends_rows_without_the_optional_column_through_every_route(churn, churn_v1):
    # GIVEN the churn card (customer_id optional) and rows of its holdout
    rows = churn.X_holdout.head(4)
    # WHEN the gate builds what each route is sent
    sent = payloads(rows, churn_v1.card)
    # THEN REST and JSON Lines leave customer_id out of every other row, v2 and CSV leave it out altogether
    rest = json.loads(sent[REST])["instances"]
    jsonl = [json.loads(line) for line in sent[JSONL_ROUTE].splitlines()]
    for instances in (rest, jsonl):
        assert ["customer_id" in r for r in instances] == [True, False, True, False]
    assert "customer_id" not in {i["name"] for i in json.loads(sent[V2])["inputs"]}
    assert "customer_id" not in sent[CSV_ROUTE].splitlines()[0].split(",")


def test_rest_rows_without_or_with_a_null_optional_column_score_like_rows_with_it(
    predict_app, published, lambda_context
):
    # GIVEN the sample request, then the same rows without customer_id, and with customer_id null
    rows = event_body("predict.json")["instances"]
    answers = []
    for instances in (rows, without(rows, "customer_id"), [{**r, "customer_id": None} for r in rows]):
        # WHEN each is sent to the predict route
        status, body = call(predict_app, load_event("predict.json", body={"instances": instances}), lambda_context)
        assert status == 200, body
        answers.append((body["predictions"], body["probabilities"], body["warnings"]))
    # THEN all three get the same answers, and a null in the column the model never reads is no data-quality warning
    assert answers[0] == answers[1] == answers[2]


def test_unknown_and_missing_required_features_are_still_refused(predict_app, published, lambda_context):
    # GIVEN a row with an unknown field and without customer_id and age
    row = {**without(event_body("predict.json")["instances"][:1], "customer_id", "age")[0], "email": "x@y"}
    status, body = call(predict_app, load_event("predict.json", body={"instances": [row]}), lambda_context)
    # THEN the unknown field and the required age are named; the optional customer_id is not
    assert status == 422
    details = {(d["field"], d["message"]) for d in body["error"]["details"]}
    assert details == {("email", "unknown feature"), ("age", "missing feature")}


def test_v2_inputs_may_leave_out_the_optional_feature(predict_app, published, lambda_context):
    # GIVEN the v2 sample request without its customer_id input
    request = event_body("v2_infer.json")
    full = call(predict_app, load_event("v2_infer.json"), lambda_context)[1]
    request["inputs"] = [i for i in request["inputs"] if i["name"] != "customer_id"]
    # WHEN sent
    status, body = call(predict_app, load_event("v2_infer.json", body=request), lambda_context)
    # THEN it is scored as the full request is
    assert status == 200, body
    assert body["outputs"] == full["outputs"]


def test_batch_files_may_leave_out_the_optional_column(churn, churn_v1, logistic_model):
    # GIVEN a CSV without the customer_id column and JSON Lines without the key
    loaded = LoadedModel(churn_v1.card, Scorer(logistic_model, churn_v1.card), 0.0)
    rows = churn.X_holdout.head(20)
    expected = logistic_model.predict_proba(rows)[:, 1]
    csv_file = rows.drop(columns=["customer_id"]).to_csv(index=False).encode()
    jsonl_file = "".join(json.dumps(r) + "\n" for r in without(to_records(rows), "customer_id")).encode()
    for data, fmt in ((csv_file, "csv"), (jsonl_file, "jsonl")):
        # WHEN each is scored as a batch job scores it
        scored, errors = score_file(loaded, data, fmt)
        # THEN every row is scored, with the probabilities of the rows with their ids
        assert errors == b"", errors
        if fmt == "csv":
            got = [float(r["proba_yes"]) for r in csv.DictReader(io.StringIO(scored.decode()))]
        else:
            got = [json.loads(line)["proba_yes"] for line in scored.decode().splitlines()]
        assert got == pytest.approx(expected.tolist(), rel=1e-12)


# --- a category the model refuses ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def strict(churn):
    """The churn pipeline with an encoder that refuses unknown categories (scikit-learn's default), and its card."""
    model = sample.logistic_pipeline()
    model.set_params(prep__cat=OneHotEncoder())
    model.fit(churn.X, churn.y)
    card = build_card(model, churn.X, churn.y, name="churn", version="1", pii=sample.PII)[0]
    return model, card


def test_a_category_the_model_refuses_is_reported_on_its_field_in_batch_and_the_api(churn, strict):
    # GIVEN rows whose has_partner is "1" (as a CSV holding 1/0 where training had "yes"/"no" gives it)
    model, card = strict
    scorer = Scorer(model, card)
    rows = to_records(churn.X_holdout.head(3))
    rows[1]["has_partner"] = "1"
    # WHEN scored through the API's scorer
    with pytest.raises(InvalidInput) as info:
        scorer.score(rows)
    # THEN the refusal names the row and the field, and says the category was not seen in training
    [error] = info.value.errors
    assert (error.row, error.field) == (1, "has_partner")
    assert "category '1' was not seen in training" in error.message
    # AND a batch CSV with that cell rejects that row on that field, scoring the others
    data = churn.X_holdout.head(3).assign(has_partner=["yes", "1", "no"]).to_csv(index=False).encode()
    scored, errors = score_file(LoadedModel(card, scorer, 0.0), data, "csv")
    [rejected] = [json.loads(line) for line in errors.decode().splitlines()]
    assert rejected["line"] == 3  # the header is line 1
    assert [(r["field"], "category '1' was not seen in training" in r["message"]) for r in rejected["reasons"]] == [
        ("has_partner", True)
    ]
    assert len(list(csv.DictReader(io.StringIO(scored.decode())))) == 2


def test_a_version_whose_card_predates_optional_features_still_requires_them(predict_app, published, lambda_context):
    # GIVEN the schema as a card published before this change holds it (every feature required)
    schema = published.input_schema
    old = replace(schema, features=tuple(replace(f, required=True) for f in schema.features))
    # THEN a row without customer_id is refused there, naming it
    with pytest.raises(InvalidInput) as info:
        old.validate(without(event_body("predict.json")["instances"], "customer_id"))
    assert {(e.field, e.message) for e in info.value.errors} == {("customer_id", "missing feature")}
