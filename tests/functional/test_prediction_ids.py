"""Prediction ids through the predict function: returned per row on REST and v2, the caller's own echoed, bad or
repeated ones refused naming the row, and the id written in the capture record."""

from __future__ import annotations

import json

import boto3
import pytest

from sklambda import config
from sklambda.monitoring.capture import CAPTURE_MARKER, create_key_ciphertext
from tests.support import call, event_body, import_predict_app, load_event


def _rows(n: int = 2) -> list[dict]:
    rows = event_body("predict.json")["instances"]
    return [rows[i % len(rows)] for i in range(n)]


def _predict(**body) -> dict:
    return load_event("predict.json", body={"instances": _rows(), **body})


def _v2(parameters: dict | None) -> dict:
    request = event_body("v2_infer.json")
    if parameters is not None:
        request["parameters"] = parameters
    return load_event("v2_infer.json", body=request)


def test_rest_rows_get_generated_ids_from_the_request_id(predict_app, published, lambda_context):
    # GIVEN a request without ids
    event = _predict()
    request_id = event["requestContext"]["requestId"]
    # WHEN it is scored
    status, body = call(predict_app, event, lambda_context)
    # THEN each row has the id <API request id>-<row>, in row order
    assert status == 200
    assert body["inference_ids"] == [f"{request_id}-0", f"{request_id}-1"]


def test_rest_caller_ids_are_echoed_per_row_or_derived_from_the_request_id(predict_app, published, lambda_context):
    # GIVEN one request with an id per row, one with one id for its two rows, one with one id for its one row
    per_row = _predict(inference_ids=["order-1", "order/2"])
    for_request = _predict(inference_id="batch-7")
    single = load_event("predict.json", body={"instances": _rows(1), "inference_id": "only-one"})
    # WHEN they are scored
    answers = [call(predict_app, e, lambda_context) for e in (per_row, for_request, single)]
    # THEN the ids come back as given, as <id>-<row>, and as the id itself
    assert [status for status, _ in answers] == [200, 200, 200]
    assert [body["inference_ids"] for _, body in answers] == [
        ["order-1", "order/2"],
        ["batch-7-0", "batch-7-1"],
        ["only-one"],
    ]


@pytest.mark.parametrize(
    ("body", "row", "field", "words"),
    [
        ({"inference_ids": ["a", "a"]}, 1, "inference_ids", "already the id of row 0"),
        ({"inference_ids": ["a", "has space"]}, 1, "inference_ids", "printable ASCII"),
        ({"inference_ids": ["x" * 65, "b"]}, 0, "inference_ids", "at most 64"),
        ({"inference_ids": [7, "b"]}, 0, "inference_ids", "must be a string"),
        ({"inference_ids": ["a"]}, None, "inference_ids", "one inference id per row"),
        ({"inference_id": ""}, None, "inference_id", "cannot be empty"),
        ({"inference_id": "a", "inference_ids": ["b", "c"]}, None, "inference_id", "not both"),
    ],
    ids=["duplicate", "space", "too-long", "not-a-string", "wrong-count", "empty", "both"],
)
def test_bad_or_repeated_caller_ids_are_a_422_naming_row_and_field(
    predict_app, published, lambda_context, body, row, field, words
):
    # WHEN a request carries bad ids
    status, answer = call(predict_app, _predict(**body), lambda_context)
    # THEN it is refused with the row (when one is to blame) and the field named
    assert status == 422
    detail = answer["error"]["details"][0]
    assert (detail.get("row"), detail["field"]) == (row, field)
    assert words in answer["error"]["message"] + detail["message"]


def test_v2_response_carries_the_ids_as_a_parameter(predict_app, published, lambda_context):
    # GIVEN v2 requests without ids, with one per row and with one for the request
    events = [_v2(None), _v2({"inference_ids": ["a-1", "a-2"]}), _v2({"inference_id": "r"})]
    request_id = events[0]["requestContext"]["requestId"]
    # WHEN they are scored
    answers = [call(predict_app, e, lambda_context) for e in events]
    # THEN parameters.inference_ids holds one id per row, and the request's own id is still echoed as is
    assert [status for status, _ in answers] == [200, 200, 200]
    assert [body["parameters"]["inference_ids"] for _, body in answers] == [
        [f"{request_id}-0", f"{request_id}-1"],
        ["a-1", "a-2"],
        ["r-0", "r-1"],
    ]
    assert answers[0][1]["id"] == event_body("v2_infer.json")["id"]


def test_v2_repeated_ids_are_a_422_naming_the_row(predict_app, published, lambda_context):
    status, answer = call(predict_app, _v2({"inference_ids": ["same", "same"]}), lambda_context)
    assert status == 422
    assert answer["details"][0] == {
        "row": 1,
        "field": "parameters.inference_ids",
        "message": "inference id 'same' is already the id of row 0: ids must be unique",
    }


def test_the_capture_record_holds_the_id_returned_to_the_caller(
    function_env, published, lambda_context, monkeypatch, capsys
):
    # GIVEN capture on for every request
    data_key = boto3.client("kms").create_key()["KeyMetadata"]["Arn"]
    monkeypatch.setenv(config.PSEUDONYM_KEY_CIPHERTEXT, create_key_ciphertext(data_key))
    app = import_predict_app()
    capsys.readouterr()
    # WHEN a REST and a v2 request are scored with the caller's ids
    _, rest = call(app, _predict(inference_ids=["r-1", "r-2"]), lambda_context)
    _, v2 = call(app, _v2({"inference_ids": ["v-1", "v-2"]}), lambda_context)
    # THEN each captured record carries its row's id
    records = []
    for line in capsys.readouterr().out.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("capture") == CAPTURE_MARKER:
            records.append(record)
    assert [(r["row"], r["inference_id"]) for r in records] == [(0, "r-1"), (1, "r-2"), (0, "v-1"), (1, "v-2")]
    assert rest["inference_ids"] == ["r-1", "r-2"] and v2["parameters"]["inference_ids"] == ["v-1", "v-2"]
