"""The predict function's OpenAPI description (GET /openapi.json, GET /models/{name}/openapi.json) driven with API
Gateway REST events against a moto registry."""

from __future__ import annotations

import re

import jsonschema
import pytest

from sklambda.registry.schema import is_required
from tests.support import PREDICT_APP, call, event_body, load_event

# The feedback function serves its route on the same API (functions/feedback/app.py); the document describes it too.
FEEDBACK_APP = PREDICT_APP.parents[1] / "feedback" / "app.py"


def served_routes() -> set[tuple[str, str]]:
    """The handlers' routes from their decorators, e.g. @app.get("/models/<name>") -> (get, /models/{name})."""
    source = PREDICT_APP.read_text(encoding="utf-8") + FEEDBACK_APP.read_text(encoding="utf-8")
    found = re.findall(r"@app\.(get|post|put|patch|delete)\(\s*\"([^\"]+)\"", source)
    return {(method, re.sub(r"<(\w+)>", r"{\1}", path)) for method, path in found}


def instance_validator(doc: dict) -> jsonschema.Draft202012Validator:
    """A validator of one predict row as `doc` describes it (its components resolved)."""
    schema = {"$ref": "#/components/schemas/PredictRequest/properties/instances/items", **doc}
    return jsonschema.Draft202012Validator(schema)


def test_the_document_describes_every_route_the_handler_serves(predict_app, published, lambda_context):
    # GIVEN the general document, asked for with the API key
    status, doc = call(predict_app, load_event("openapi.json"), lambda_context)
    # THEN it is OpenAPI 3.1 with exactly the handler's routes, each answering JSON
    assert status == 200 and doc["openapi"].startswith("3.1")
    documented = {(method, path) for path, item in doc["paths"].items() for method in item}
    assert documented == served_routes()
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            assert "application/json" in operation["responses"]["200"]["content"], (method, path)
    # AND the server is the URL the caller used, stage included, and the security the API key it came with
    assert doc["servers"] == [{"url": "https://abc123.execute-api.us-east-1.amazonaws.com/v1"}]
    assert doc["security"] == [{"api_key": []}]
    assert doc["components"]["securitySchemes"] == {
        "api_key": {**doc["components"]["securitySchemes"]["api_key"], "type": "apiKey", "in": "header"}
    }
    assert doc["components"]["securitySchemes"]["api_key"]["name"] == "x-api-key"


def test_request_bodies_and_query_come_from_the_models_that_parse_them(predict_app, published, lambda_context):
    # GIVEN the general document
    _, doc = call(predict_app, load_event("openapi.json"), lambda_context)
    predict = doc["paths"]["/models/{name}/predict"]["post"]
    schemas = doc["components"]["schemas"]
    # THEN the predict body is PredictRequest (no other top-level key), capped at the function's row limit
    assert predict["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PredictRequest"
    }
    assert schemas["PredictRequest"]["additionalProperties"] is False
    assert schemas["PredictRequest"]["properties"]["instances"]["maxItems"] == predict_app.settings.max_rows
    # AND the query parameters are ModelSelector's, and errors have the REST shape, v2 errors the protocol's
    assert [p["name"] for p in predict["parameters"] if p["in"] == "query"] == ["alias", "version", "explain"]
    assert predict["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/Error")
    infer = doc["paths"]["/v2/models/{name}/infer"]["post"]
    assert infer["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/InferRequest")
    assert infer["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/V2Error")


def test_an_iam_caller_is_told_to_sign_with_sigv4(predict_app, published, lambda_context):
    # GIVEN a request signed with SigV4 (AuthMode IAM: no API key in the identity)
    event = load_event("openapi.json")
    event["requestContext"]["identity"] = {"accessKey": "AKIDEXAMPLE", "userArn": "arn:aws:iam::123456789012:user/u"}
    # WHEN the document is asked for
    _, doc = call(predict_app, event, lambda_context)
    # THEN its only security scheme is SigV4
    assert doc["security"] == [{"sigv4": []}]
    assert set(doc["components"]["securitySchemes"]) == {"sigv4"}
    assert doc["components"]["securitySchemes"]["sigv4"]["x-amazon-apigateway-authtype"] == "awsSigv4"


def test_a_model_document_makes_the_rows_exact_from_the_card(predict_app, published, lambda_context):
    # GIVEN churn version 1 in production
    # WHEN its document is asked for
    status, doc = call(predict_app, load_event("model_openapi.json"), lambda_context)
    # THEN a row is an object of exactly the card's features, the required ones listed
    assert status == 200
    assert doc["info"]["x-sklambda-model"]["version"] == published.version
    instance = doc["components"]["schemas"]["Instance"]
    features = published.input_schema.features
    assert list(instance["properties"]) == [f.name for f in features]
    assert instance["required"] == [f.name for f in features if is_required(f)]
    assert instance["additionalProperties"] is False
    # AND categories are listed, except for pii features, whose values the card never keeps
    for f in features:
        prop = instance["properties"][f.name]
        if f.type == "category":
            assert ("enum" in prop) is (not f.pii and f.categories is not None), f.name
            if f.pii:
                assert prop["type"] == "string" or prop["type"] == ["string", "null"]
    # AND the sample event's rows are valid, a row with an unknown or a missing feature or a wrong type is not
    validate = instance_validator(doc)
    rows = event_body("predict.json")["instances"]
    for row in rows:
        validate.validate(row)
    assert not validate.is_valid({**rows[0], "favourite_colour": "red"})
    assert not validate.is_valid({k: v for k, v in rows[0].items() if k != "age"})
    assert not validate.is_valid({**rows[0], "age": "forty"})
    # AND only this model is named in the paths
    predict = doc["paths"]["/models/{name}/predict"]["post"]
    (name,) = [p for p in predict["parameters"] if p["name"] == "name"]
    assert name["schema"]["enum"] == ["churn"]


def test_a_model_document_follows_the_card_on_nulls(predict_app, published, lambda_context):
    # GIVEN the model document
    _, doc = call(predict_app, load_event("model_openapi.json"), lambda_context)
    instance = doc["components"]["schemas"]["Instance"]
    # THEN null is allowed exactly where the card allows one
    for f in published.input_schema.features:
        types = instance["properties"][f.name]["type"]
        assert ("null" in types if isinstance(types, list) else False) is f.null_allowed, f.name


@pytest.mark.parametrize(
    ("name", "query", "status", "code"),
    [("nope", None, 404, "model_not_found"), ("churn", {"version": "9"}, 404, "model_not_found")],
)
def test_an_unknown_model_or_version_is_the_same_404_as_other_routes(
    predict_app, published, lambda_context, name, query, status, code
):
    # GIVEN a model or version that does not exist
    event = load_event("model_openapi.json", query=query)
    event["pathParameters"] = {"name": name}
    event["path"] = f"/models/{name}/openapi.json"
    # WHEN its document is asked for THEN the answer is the 404 the model info route gives
    got_status, body = call(predict_app, event, lambda_context)
    info = load_event("model_info.json", query=query)
    info["pathParameters"] = {"name": name}
    info["path"] = f"/models/{name}"
    assert (got_status, body["error"]["code"]) == (status, code)
    assert call(predict_app, info, lambda_context) == (got_status, body)


def test_the_document_is_built_once_per_container(predict_app, published, lambda_context):
    # GIVEN the document asked for once
    call(predict_app, load_event("openapi.json"), lambda_context)
    built = predict_app._openapi().general()
    # WHEN it is asked for again, and a model's twice
    call(predict_app, load_event("openapi.json"), lambda_context)
    call(predict_app, load_event("model_openapi.json"), lambda_context)
    model = predict_app._openapi().of_model(published)
    call(predict_app, load_event("model_openapi.json"), lambda_context)
    # THEN the same documents served each time
    assert predict_app._openapi().general() is built
    assert predict_app._openapi().of_model(published) is model
