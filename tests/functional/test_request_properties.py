"""Property-based requests to the predict function (REST and Open Inference Protocol v2 routes), issue 10.

Whatever a client sends, the answer is never a 5xx: random JSON bodies, raw text, and rows built from the card's
schema with hostile values (integers over Python's digit limit or beyond int64/float64, NaN/Infinity tokens,
1e309 as text, lone surrogates in values and names, deep nesting, wrong types, extra and missing fields). Every
error is JSON with a message, and for rows its details name the row and the field that was made hostile.
Seeded (derandomize) and bounded: the file runs in well under 30 s.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sklambda.registry.schema import BOOLEAN, CATEGORY, INTEGER, NUMBER, FeatureSpec
from tests.support import call, event_body, load_event

SETTINGS = settings(
    derandomize=True,
    deadline=None,
    max_examples=120,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ROUTES = ("predict.json", "v2_infer.json")


@dataclass(frozen=True)
class Raw:
    """JSON text put into a body as it is (what json.dumps cannot write: 4,301-digit integers, 1e309)."""

    text: str


def dumps(value: object) -> str:
    """JSON text of `value` with every Raw spliced in verbatim (NaN and Infinity as Python's json writes them)."""
    raws: list[str] = []

    def swap(v: object) -> object:
        if isinstance(v, Raw):
            raws.append(v.text)
            return f"\u0000raw{len(raws) - 1}\u0000"
        if isinstance(v, dict):
            return {k: swap(x) for k, x in v.items()}
        if isinstance(v, list):
            return [swap(x) for x in v]
        return v

    text = json.dumps(swap(value))
    for i, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\u0000raw{i}\u0000"), raw)
    return text


LONE_SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc00b", "plan\ud83d"])
HOSTILE_TEXT = st.one_of(st.text(max_size=20), LONE_SURROGATES, st.text(max_size=5).map(lambda t: t + "\ud800"))
HUGE_INTS = st.one_of(
    st.integers(min_value=2**63, max_value=2**70),
    st.integers(max_value=-(2**63) - 1, min_value=-(2**70)),
    st.sampled_from([2 * 10**308, -(10**400)]),
)
HOSTILE_NUMBERS = st.one_of(
    HUGE_INTS,
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [Raw("1" + "0" * 4300), Raw("-" + "9" * 5000), Raw("1e309"), Raw("-1e309"), Raw("NaN"), Raw("Infinity")]
    ),
)
DEEP = st.integers(min_value=2, max_value=60).map(lambda n: Raw("[" * n + "1" + "]" * n))
WRONG_TYPES = st.one_of(
    st.none(), st.booleans(), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers())
)
HOSTILE_VALUES = st.one_of(HOSTILE_TEXT, HOSTILE_NUMBERS, DEEP, WRONG_TYPES, st.integers(), st.floats())
JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), HOSTILE_TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(HOSTILE_TEXT, inner, max_size=4)),
    max_leaves=12,
)


def valid_value(spec: FeatureSpec, draw) -> object:
    if spec.type == BOOLEAN:
        return draw(st.booleans())
    if spec.type == CATEGORY:
        return draw(st.sampled_from(spec.categories)) if spec.categories else draw(st.text(max_size=8))
    low, high = int(spec.minimum or 0), int(spec.maximum or 100)
    if spec.type == INTEGER:
        return draw(st.integers(min_value=low, max_value=high))
    assert spec.type == NUMBER
    return draw(st.floats(min_value=spec.minimum or 0.0, max_value=spec.maximum or 100.0))


def hostile_rows(schema, draw) -> tuple[list[dict], set[tuple[int, str]]]:
    """1-3 rows of the schema's features, some values replaced, removed or added; the (row, field)s touched."""
    rows, touched = [], set()
    for r in range(draw(st.integers(min_value=1, max_value=3))):
        row = {f.name: valid_value(f, draw) for f in schema.features}
        for name in draw(st.lists(st.sampled_from(schema.names), max_size=3, unique=True)):
            action = draw(st.sampled_from(["replace", "replace", "drop"]))
            if action == "drop":
                del row[name]
            else:
                row[name] = draw(HOSTILE_VALUES)
            touched.add((r, name))
        for extra in draw(st.lists(HOSTILE_TEXT, max_size=1)):
            if extra not in row:
                row[extra] = draw(HOSTILE_VALUES)
                touched.add((r, extra.encode("utf-8", "backslashreplace").decode("utf-8")))
        rows.append(row)
    return rows, touched


def v2_request(schema, rows: list[dict]) -> dict:
    """One input per feature (named after it), its data the rows' values (a dropped value leaves its tensor short)."""
    inputs = []
    for spec in schema.features:
        data = [row[spec.name] for row in rows if spec.name in row]
        inputs.append({"name": spec.name, "shape": [len(data)], "datatype": "BYTES", "data": data})
    return {"id": "prop", "inputs": inputs}


def assert_answered_properly(route: str, response: dict) -> tuple[int, dict]:
    """Never a 5xx; the body is strict JSON (no NaN/Infinity) that UTF-8 can carry; an error has a message and a
    list of details."""
    status = response["statusCode"]
    assert status < 500, response["body"][:500]
    response["body"].encode("utf-8")
    body = json.loads(response["body"], parse_constant=_refuse_constant)
    if status >= 400:
        error = body["error"]
        if route == "predict.json":
            assert error["code"] and error["message"] and isinstance(error["details"], list)
            details = error["details"]
        else:  # Open Inference Protocol: {"error": message, "details": [...]}
            assert isinstance(error, str) and error
            details = body.get("details", [])
        assert all(isinstance(d, dict) and d["message"] for d in details)
    return status, body


def _refuse_constant(token: str) -> None:
    raise AssertionError(f"the answer holds {token}, which is not JSON")


def details_of(route: str, body: dict) -> list[dict]:
    return body["error"]["details"] if route == "predict.json" else body.get("details", [])


@pytest.mark.parametrize("route", ROUTES)
@SETTINGS
@given(data=st.data())
def test_any_json_body_or_text_is_answered_without_a_5xx(predict_app, published, lambda_context, route, data):
    # GIVEN any JSON value, an object with the route's keys holding any values, or any text
    body = data.draw(
        st.one_of(
            JSON_VALUES.map(dumps),
            st.fixed_dictionaries({"instances": JSON_VALUES}).map(dumps),
            st.fixed_dictionaries({"inputs": JSON_VALUES, "id": JSON_VALUES, "outputs": JSON_VALUES}).map(dumps),
            st.text(max_size=40),
            HOSTILE_NUMBERS.map(dumps),
            st.integers(min_value=1, max_value=3000).map(lambda n: '{"instances": ' + "[" * n + "]" * n + "}"),
        )
    )
    # WHEN it is posted
    response = predict_app.handler(load_event(route, raw_body=body), lambda_context)
    # THEN it is a 2xx or a 4xx with a JSON error, never a 5xx
    assert_answered_properly(route, response)


@SETTINGS
@given(data=st.data())
def test_hostile_rows_are_refused_naming_a_touched_row_and_field_or_scored(
    predict_app, published, lambda_context, data
):
    # GIVEN rows built from the card's schema with hostile values, dropped features and extra ones
    rows, touched = hostile_rows(published.input_schema, data.draw)
    query = {"explain": "true"} if data.draw(st.booleans()) else None
    # WHEN they are sent to the REST route (half of them asking for explanations)
    event = load_event("predict.json", raw_body=dumps({"instances": rows}), query=query)
    response = predict_app.handler(event, lambda_context)
    # THEN the answer is never a 5xx; an error names rows and fields, each one that was made hostile
    status, body = assert_answered_properly("predict.json", response)
    if not touched:
        assert status == 200
    if status >= 400:
        details = details_of("predict.json", body)
        assert details
        places = {(r, f.split(".")[0]) for r, f in touched}
        for d in details:  # a row the model cannot score (a non-finite probability) is named without a field
            assert (d["row"], d["field"].split(".")[0]) in places if "field" in d else d["row"] in dict(touched), d


@SETTINGS
@given(data=st.data())
def test_hostile_v2_tensors_are_refused_in_the_protocols_shape_or_scored(predict_app, published, lambda_context, data):
    # GIVEN v2 tensors (one input per feature) of rows with hostile values
    rows, touched = hostile_rows(published.input_schema, data.draw)
    request = v2_request(published.input_schema, rows)
    if data.draw(st.booleans()):
        request["outputs"] = [{"name": data.draw(st.sampled_from(["predict", "predict_proba", "nope"]))}]
    # WHEN they are sent to the v2 infer route
    response = predict_app.handler(load_event("v2_infer.json", raw_body=dumps(request)), lambda_context)
    # THEN the answer is never a 5xx; an error is the protocol's {"error": message, "details"}
    status, body = assert_answered_properly("v2_infer.json", response)
    wants_nope = any(o["name"] == "nope" for o in request.get("outputs", []))
    if not touched and not wants_nope:
        assert status == 200, body


@SETTINGS
@given(
    query=st.dictionaries(st.sampled_from(["alias", "version", "explain", "other"]), HOSTILE_TEXT, max_size=3),
    name=st.one_of(st.just("churn"), HOSTILE_TEXT),
)
def test_any_query_string_or_model_name_is_answered_without_a_5xx(predict_app, published, lambda_context, query, name):
    # GIVEN the sample rows, with any query string and any model name in the path
    event = load_event("predict.json", query=query)
    event["pathParameters"] = {"name": name}
    event["path"] = f"/models/{name}/predict"
    # WHEN it is posted
    response = predict_app.handler(event, lambda_context)
    # THEN the answer is never a 5xx
    assert_answered_properly("predict.json", response)


def test_the_sample_requests_still_score(predict_app, published, lambda_context):
    # GIVEN the unmodified sample requests (the properties above would hold for a function refusing everything)
    for route in ROUTES:
        status, _ = call(predict_app, load_event(route), lambda_context)
        assert status == 200, route
    assert event_body("predict.json")["instances"]
