"""The predict function's Open Inference Protocol routes with the binary tensor data extension, driven with the REST
API proxy events API Gateway sends when the API's BinaryMediaTypes match (base64 bodies), against a moto registry.
Request bodies are built and responses read by an unmodified tritonclient."""

from __future__ import annotations

import base64
import json
from dataclasses import replace

import numpy as np
import tritonclient.http as triton

import sklambda
from sklambda.registry.schema import InputSchema, to_records
from tests.support import call, load_event, store_built, triton_inputs

HEADER = "Inference-Header-Content-Length"


def binary_event(body: bytes, header_length: int | None, *, path: str = "/v2/models/churn/infer") -> dict:
    """A v2 infer event as API Gateway passes tritonclient's request: no Content-Type or Accept, the body base64."""
    event = load_event("v2_infer.json")
    headers = {k: v for k, v in event["headers"].items() if k not in ("Accept", "Content-Type")}
    if header_length is not None:
        headers[HEADER] = str(header_length)
    event.update(path=path, headers=headers, multiValueHeaders={k: [v] for k, v in headers.items()})
    event.update(body=base64.b64encode(body).decode(), isBase64Encoded=True)
    return event


def rows_with_a_missing_income(churn, n: int = 6):
    frame = churn.X_holdout.head(n).copy()
    frame.loc[1, "monthly_income"] = np.nan
    return frame


def datatypes(predict_app, lambda_context) -> dict[str, str]:
    _, metadata = call(predict_app, load_event("v2_model_metadata.json"), lambda_context)
    return {i["name"]: i["datatype"] for i in metadata["inputs"]}


def test_a_tritonclient_binary_request_gets_binary_outputs_that_agree_with_the_rest_route(
    predict_app, published, churn, lambda_context
):
    # GIVEN six holdout rows, one with a missing income (NaN), as tritonclient's default binary request
    frame = rows_with_a_missing_income(churn)
    body, header_length = triton.InferenceServerClient.generate_request_body(
        triton_inputs(frame, datatypes(predict_app, lambda_context)), request_id="b-1"
    )
    # WHEN it is sent to the v2 route
    response = predict_app.handler(binary_event(body, header_length), lambda_context)
    # THEN the answer is binary: base64 for API Gateway, with the binary extension's header
    assert response["statusCode"] == 200 and response["isBase64Encoded"] is True
    headers = response["multiValueHeaders"]
    assert headers["Content-Type"] == ["application/octet-stream"]
    raw = base64.b64decode(response["body"])
    result = triton.InferenceServerClient.parse_response_body(raw, header_length=int(headers[HEADER][0]))
    assert result.get_response()["id"] == "b-1"
    # AND its predictions and probabilities are the REST route's for the same rows (the NaN income sent as null)
    rest_status, rest = call(predict_app, load_event("predict.json", body={"instances": to_records(frame)}),
                             lambda_context)  # fmt: skip
    assert rest_status == 200
    assert [p.decode() for p in result.as_numpy("predict").tolist()] == rest["predictions"]
    classes = result.get_output("predict_proba")["parameters"]["classes"]
    expected = [[p[c] for c in classes] for p in rest["probabilities"]]
    assert result.as_numpy("predict_proba").tolist() == expected


def test_a_nan_for_a_feature_that_cannot_be_null_is_a_422_naming_row_and_input(
    predict_app, registry_env, churn_v1, churn, lambda_context
):
    # GIVEN churn published with a schema where monthly_charges takes no null, and a binary request whose
    #       monthly_charges is NaN in row 2
    features = [replace(f, accepts_null=False) if f.name == "monthly_charges" else f
                for f in churn_v1.card.input_schema.features]  # fmt: skip
    strict = replace(churn_v1.card, input_schema=InputSchema(tuple(features)))
    store_built(registry_env, replace(churn_v1, card=strict), alias="production")
    frame = churn.X_holdout.head(3).copy()
    types = datatypes(predict_app, lambda_context)
    frame.loc[2, "monthly_charges"] = np.nan
    body, header_length = triton.InferenceServerClient.generate_request_body(triton_inputs(frame, types))
    # WHEN it is sent
    status, answer = call(predict_app, binary_event(body, header_length), lambda_context)
    # THEN it is refused in the protocol's error shape, naming the row and the input
    assert status == 422
    assert {"row": 2, "field": "monthly_charges"}.items() <= answer["details"][0].items()
    assert "monthly_charges" in answer["error"]
    # AND the model metadata says that input takes no missing value
    _, metadata = call(predict_app, load_event("v2_model_metadata.json"), lambda_context)
    assert next(i for i in metadata["inputs"] if i["name"] == "monthly_charges")["parameters"] == {"nullable": False}


def test_binary_tensor_bytes_that_do_not_match_their_shape_are_a_client_error_naming_the_input(
    predict_app, published, churn, lambda_context
):
    # GIVEN a tritonclient body with its last 8 bytes cut off (the end of the last input's tensor)
    frame = churn.X_holdout.head(2)
    inputs = triton_inputs(frame, datatypes(predict_app, lambda_context))
    body, header_length = triton.InferenceServerClient.generate_request_body(inputs)
    # WHEN it is sent
    status, answer = call(predict_app, binary_event(body[:-8], header_length), lambda_context)
    # THEN it is a 400 in the protocol's error shape that names the last input
    assert status == 400
    assert inputs[-1].name() in answer["error"]


def test_binary_data_size_without_the_header_is_a_400(predict_app, published, churn, lambda_context):
    # GIVEN tritonclient's binary body sent without its Inference-Header-Content-Length header
    body, _ = triton.InferenceServerClient.generate_request_body(
        triton_inputs(churn.X_holdout.head(1), datatypes(predict_app, lambda_context))
    )
    # WHEN it is sent THEN it is a 400 (its JSON part is followed by bytes that are not JSON), never a 500
    status, answer = call(predict_app, binary_event(body, None), lambda_context)
    assert status == 400 and "error" in answer


def test_a_json_request_can_ask_for_binary_outputs(predict_app, published, lambda_context):
    # GIVEN the JSON request of events/v2_infer.json asking for predict as binary data
    request = json.loads(load_event("v2_infer.json")["body"])
    request["outputs"] = [{"name": "predict", "parameters": {"binary_data": True}}]
    response = predict_app.handler(load_event("v2_infer.json", body=request), lambda_context)
    # THEN the labels come as length-prefixed BYTES after the JSON header
    assert response["statusCode"] == 200 and response["isBase64Encoded"] is True
    raw = base64.b64decode(response["body"])
    result = triton.InferenceServerClient.parse_response_body(
        raw, header_length=int(response["multiValueHeaders"][HEADER][0])
    )
    assert [o["name"] for o in result.get_response()["outputs"]] == ["predict"]
    assert len(result.as_numpy("predict")) == len(request["inputs"][0]["data"])


def test_a_plain_json_request_still_gets_a_json_answer(predict_app, published, lambda_context):
    response = predict_app.handler(load_event("v2_infer.json"), lambda_context)
    assert response["statusCode"] == 200 and response["isBase64Encoded"] is False
    assert json.loads(response["body"])["outputs"][0]["data"]


def test_server_metadata_names_sklambda_its_version_and_the_binary_extension(predict_app, lambda_context):
    event = load_event("health.json")
    event.update(path="/v2", resource="/v2")
    status, body = call(predict_app, event, lambda_context)
    assert status == 200
    assert body == {"name": "sklambda", "version": sklambda.__version__, "extensions": ["binary_tensor_data"]}


def test_model_metadata_says_which_inputs_take_missing_values_and_how(predict_app, published, lambda_context):
    status, body = call(predict_app, load_event("v2_model_metadata.json"), lambda_context)
    assert status == 200
    # THEN monthly_income (null in training) and plan (a category whose null publish proved the model imputes) say
    #      how a missing value is sent
    parameters = {i["name"]: i["parameters"] for i in body["inputs"]}
    assert parameters["monthly_income"] == {"nullable": True, "missing": ["null", "NaN"]}
    assert parameters["plan"] == {"nullable": True, "missing": ["null", ""]}
