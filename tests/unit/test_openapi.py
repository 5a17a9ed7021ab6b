"""The OpenAPI description as pure code: a feature's JSON Schema agrees with what FeatureSpec.check accepts."""

from __future__ import annotations

import jsonschema
import pytest

from sklambda.registry.schema import FLOAT64_MAX, INT64_MAX, FeatureSpec, InputSchema
from sklambda.serving import openapi
from sklambda.serving.contracts import PredictRequest

LIMITS = openapi.Limits(max_rows=1000, max_explain_rows=100, max_body_bytes=1_048_576)
FEATURES = (
    FeatureSpec("age", "integer", minimum=18.0, maximum=90.0),
    FeatureSpec("income", "number", nullable=True, minimum=0.0, maximum=1e6),
    FeatureSpec("plan", "category", categories=("basic", "premium")),
    FeatureSpec("customer_id", "category", pii=True),
    FeatureSpec("has_partner", "boolean"),
)
# Values of each kind, some of which each feature refuses.
VALUES = [
    0, 42, -7, 3.0, 2.5, INT64_MAX, INT64_MAX + 1, 10**400, FLOAT64_MAX, -1e300, True, False, None,
    "basic", "premium", "gold", "", "C0001", [1], {"a": 1},
]  # fmt: skip


@pytest.mark.parametrize("spec", FEATURES, ids=lambda f: f.name)
def test_a_feature_schema_accepts_exactly_what_the_api_accepts(spec: FeatureSpec) -> None:
    # GIVEN a feature's JSON Schema, whose category list is told but not enforced by the API
    schema = openapi.feature_schema(spec)
    validator = jsonschema.Draft202012Validator(schema)
    for value in VALUES:
        # WHEN a value is checked by both
        api_accepts = spec.check(value) is None
        # THEN they agree, except that the API also scores a category it never saw (with a warning)
        unseen_category = spec.categories is not None and isinstance(value, str) and value not in spec.categories
        if unseen_category:
            assert api_accepts and not validator.is_valid(value), value
        else:
            assert validator.is_valid(value) is api_accepts, value


def test_a_pii_feature_never_lists_its_values_and_a_range_is_told_not_enforced() -> None:
    # GIVEN a pii category, and a number with a training range
    pii, income = openapi.feature_schema(FEATURES[3]), openapi.feature_schema(FEATURES[1])
    # THEN the pii feature is any string; the range is in the description and a value outside it is valid
    assert pii == {"type": "string", "description": pii["description"]} and "personal data" in pii["description"]
    assert "training range 0 to 1e+06" in income["description"]
    assert jsonschema.Draft202012Validator(income).is_valid(2e6)


def test_a_row_has_the_schemas_features_and_no_other() -> None:
    # GIVEN the row schema of a model's input schema
    row = openapi.instance_schema(InputSchema(FEATURES))
    validator = jsonschema.Draft202012Validator(row)
    good = {"age": 40, "income": None, "plan": "basic", "customer_id": "C1", "has_partner": False}
    # THEN a full row is valid, an unknown feature or a missing one is not, as InputSchema.validate refuses them
    assert validator.is_valid(good)
    assert not validator.is_valid({**good, "colour": "red"})
    assert not validator.is_valid({k: v for k, v in good.items() if k != "plan"})
    assert row["required"] == [f.name for f in FEATURES]


def test_the_served_document_keeps_only_the_callers_security_and_leaves_the_base_unchanged() -> None:
    # GIVEN the base document
    base = openapi.document(LIMITS)
    # WHEN it is served to an API-key caller
    served = openapi.for_request(base, server_url="https://api.example/v1", schemes=[openapi.API_KEY])
    # THEN it names the server and the API key only, and the base still has both schemes and no server
    assert served["servers"] == [{"url": "https://api.example/v1"}]
    assert served["security"] == [{"api_key": []}] and set(served["components"]["securitySchemes"]) == {"api_key"}
    assert "servers" not in base and set(base["components"]["securitySchemes"]) == {"api_key", "sigv4"}


def test_the_row_limit_of_the_function_is_the_documents() -> None:
    # GIVEN the function's limits WHEN the document is built THEN at most max_rows rows are described
    instances = openapi.document(LIMITS)["components"]["schemas"][PredictRequest.__name__]["properties"]["instances"]
    assert instances["maxItems"] == LIMITS.max_rows
    assert f"{LIMITS.max_explain_rows} with explain=true" in instances["description"]
