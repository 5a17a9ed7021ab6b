"""The Open Inference Protocol codec over bytes: the binary tensor data extension (requests built and responses read
by an unmodified tritonclient), the missing-value convention of nullable features, and every framing mistake."""

from __future__ import annotations

import json
import math
import struct

import numpy as np
import pytest
import tritonclient.http as triton

from sklambda.errors import InvalidInput, MalformedRequest, PayloadTooLarge, http_status
from sklambda.registry.card import ArtifactRef, ModelCard
from sklambda.registry.schema import FeatureSpec, InputSchema
from sklambda.serving import oip
from sklambda.serving.contracts import InferRequest, parse_body

LIMIT = 1 << 20
FEATURES = (
    FeatureSpec("income", "number", nullable=True),
    FeatureSpec("age", "integer"),
    FeatureSpec("active", "boolean"),
    FeatureSpec("plan", "category", nullable=True, categories=("basic", "plus"), missing="nan"),
    FeatureSpec("region", "category", categories=("north", "south")),
)


def card(features: tuple[FeatureSpec, ...] = FEATURES) -> ModelCard:
    return ModelCard(
        name="tiny",
        version="1",
        task="classification",
        classes=("no", "yes"),
        target="y",
        estimator="Pipeline",
        library_versions={},
        input_schema=InputSchema(features),
        metrics={},
        baseline={},
        artifact=ArtifactRef("k", "0" * 64, 1),
        created_at="2026-01-01T00:00:00Z",
    )


def tensor(name: str, array: np.ndarray, datatype: str, *, binary: bool = True) -> triton.InferInput:
    inp = triton.InferInput(name, list(array.shape), datatype)
    inp.set_data_from_numpy(array, binary_data=binary)
    return inp


def client_inputs(*, binary: bool = True, income=(48200.5, np.nan), plan=("plus", "")) -> list[triton.InferInput]:
    """Two rows, one tensor per feature, as tritonclient sends them (binary by default)."""
    return [
        tensor("income", np.array(income, dtype=np.float32), "FP32", binary=binary),
        tensor("age", np.array([42, 37], dtype=np.int64), "INT64", binary=binary),
        tensor("active", np.array([True, False]), "BOOL", binary=binary),
        tensor("plan", np.array(plan, dtype=np.object_), "BYTES", binary=binary),
        tensor("region", np.array(["north", "south"], dtype=np.object_), "BYTES", binary=binary),
    ]


def read(inputs: list[triton.InferInput], outputs=None) -> InferRequest:
    """What the server reads from tritonclient's body and Inference-Header-Content-Length header."""
    body, header_length = triton.InferenceServerClient.generate_request_body(inputs, outputs=outputs)
    assert header_length is not None  # the binary extension is in use
    return oip.read_request(body, str(header_length), max_bytes=LIMIT)


def body_with(header: dict, tail: bytes) -> tuple[bytes, str]:
    raw = json.dumps(header).encode()
    return raw + tail, str(len(raw))


def test_a_tritonclient_binary_request_decodes_to_its_rows_with_nan_as_a_missing_value():
    # GIVEN tritonclient's default binary request: FP32, INT64, BOOL and BYTES tensors, NaN for the nullable income
    request = read(client_inputs())
    # WHEN the tensors are turned into rows
    rows = oip.decode(request, card())
    # THEN each row holds Python values, and NaN and "" of the nullable features are missing (None)
    assert rows == [
        {"income": 48200.5, "age": 42, "active": True, "plan": "plus", "region": "north"},
        {"income": None, "age": 37, "active": False, "plan": None, "region": "south"},
    ]
    # AND the schema accepts them as they are
    assert len(InputSchema(FEATURES).validate(rows)) == 2


def test_the_same_tensors_as_json_decode_to_the_same_rows():
    # GIVEN the request with every tensor as JSON data instead (NaN written as the NaN literal)
    body, header_length = triton.InferenceServerClient.generate_request_body(client_inputs(binary=False))
    assert header_length is None
    request = parse_body(body.decode(), InferRequest, max_bytes=LIMIT)
    # THEN the rows are the binary ones
    assert oip.decode(request, card()) == oip.decode(read(client_inputs()), card())


def test_nan_for_a_feature_that_cannot_be_null_is_refused_naming_row_and_field():
    # GIVEN a model whose income is not nullable, and a NaN income in row 1
    strict = (FeatureSpec("income", "number"), *FEATURES[1:])
    rows = oip.decode(read(client_inputs()), card(strict))
    # WHEN the rows are validated THEN the NaN is a 422 naming row 1 and the income input
    with pytest.raises(InvalidInput) as refused:
        InputSchema(strict).validate(rows)
    assert http_status(refused.value) == 422
    assert [(e.row, e.field) for e in refused.value.errors] == [(1, "income")]


def test_an_empty_string_is_a_category_where_nulls_are_not_allowed_or_empty_is_a_training_category():
    # GIVEN "" for region (not nullable) and for a nullable plan whose training categories include ""
    features = (*FEATURES[:3], FeatureSpec("plan", "category", nullable=True, categories=("", "plus")), FEATURES[4])
    inputs = client_inputs(plan=("", "plus"))
    inputs[4] = tensor("region", np.array(["", "north"], dtype=np.object_), "BYTES")
    # WHEN decoded THEN both stay empty strings
    rows = oip.decode(read(inputs), card(features))
    assert rows[0]["plan"] == "" and rows[0]["region"] == ""


def test_a_single_n_by_f_binary_tensor_uses_the_nan_convention_per_feature():
    # GIVEN an all-numeric model and one FP64 [2, 2] tensor with NaN in the nullable column
    features = (FeatureSpec("income", "number", nullable=True), FeatureSpec("age", "integer"))
    request = read([tensor("input-0", np.array([[1.5, 3.0], [np.nan, 4.0]]), "FP64")])
    # THEN rows are read in schema order, the NaN a missing value
    assert oip.decode(request, card(features)) == [{"income": 1.5, "age": 3.0}, {"income": None, "age": 4.0}]


@pytest.mark.parametrize(
    ("array", "datatype", "expected"),
    [
        (np.array([1, 255], dtype=np.uint8), "UINT8", [1, 255]),
        (np.array([-2, 7], dtype=np.int16), "INT16", [-2, 7]),
        (np.array([2**40, -1], dtype=np.int64), "INT64", [2**40, -1]),
        (np.array([2**63], dtype=np.uint64), "UINT64", [2**63]),
        (np.array([0.5, -1.25], dtype=np.float16), "FP16", [0.5, -1.25]),
        (np.array([0.1], dtype=np.float64), "FP64", [0.1]),
    ],
)
def test_fixed_size_datatypes_decode_little_endian_values(array, datatype, expected):
    request = read([tensor("x", array, datatype)])
    assert request.inputs[0].data == expected


def test_bf16_is_read_as_the_upper_half_of_an_fp32():
    # GIVEN 1.5 and -2.0 as BF16 (the top 16 bits of their FP32 bytes), sent as raw bytes
    raw = b"".join(struct.pack("<f", v)[2:] for v in (1.5, -2.0))
    body, length = body_with({"inputs": [{"name": "x", "shape": [2], "datatype": "BF16",
                                          "parameters": {"binary_data_size": 4}}]}, raw)  # fmt: skip
    # THEN they are read back exactly
    assert oip.read_request(body, length, max_bytes=LIMIT).inputs[0].data == [1.5, -2.0]


def _one_input(datatype: str, shape: list[int], raw: bytes, size: int | None = None) -> tuple[bytes, str]:
    parameters = {"binary_data_size": len(raw) if size is None else size}
    return body_with({"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "parameters": parameters}]}, raw)


@pytest.mark.parametrize(
    ("body_and_length", "status", "words"),
    [
        (_one_input("FP32", [2], b"\x00" * 4), 422, "needs 2 x 4 = 8"),
        (_one_input("INT64", [1], b"\x00" * 4), 422, "needs 1 x 8 = 8"),
        (_one_input("BOOL", [2], b"\x01\x02"), 422, "element 1 is byte 2"),
        (_one_input("BOOL", [3], b"\x01\x00"), 422, "needs 3 x 1 = 3"),
        (_one_input("COMPLEX64", [1], b"\x00" * 8), 422, "unknown datatype 'COMPLEX64'"),
        (_one_input("BYTES", [1], b"\x05\x00\x00\x00ab"), 422, "declares 5 bytes but 2 are left"),
        (_one_input("BYTES", [1], b"\x02\x00"), 422, "cut inside its 4-byte length"),
        (_one_input("BYTES", [1], b"\x02\x00\x00\x00\xff\xfe"), 422, "is not UTF-8 text"),
        (_one_input("BYTES", [2], b"\x01\x00\x00\x00a"), 422, "holds 1 BYTES elements but shape [2] needs 2"),
        (_one_input("BYTES", [1], b"\x01\x00\x00\x00a\x01\x00\x00\x00b"), 422, "more than the 1 BYTES elements"),
        (_one_input("FP32", [-1], b""), 422, "negative dimension"),
        (_one_input("FP32", [2], b"\x00" * 4, size=8), 400, "binary_data_size is 8 but only 4 bytes"),
        (_one_input("FP32", [1], b"\x00" * 4, size=-4), 400, "must be a byte count"),
        (_one_input("FP32", [1], b"\x00" * 4, size=True), 400, "must be a byte count"),
        ((_one_input("FP32", [1], b"\x00" * 4)[0] + b"extra", _one_input("FP32", [1], b"\x00" * 4)[1]), 400,
         "5 bytes after the JSON header"),
        ((b'{"inputs": []}', "999"), 400, "is 999 but the body has only 14 bytes"),
        ((b'{"inputs": []}', "ten"), 400, "must be a byte count"),
        ((b"\xff\xfe" + b"\x00" * 4, "2"), 400, "not UTF-8 text"),
        ((b'{"inputs": [}', "13"), 400, "not valid JSON"),
    ],
)  # fmt: skip
def test_binary_framing_mistakes_are_client_errors_naming_the_input(body_and_length, status, words):
    # GIVEN a body that breaks the binary tensor data extension's rules
    body, length = body_and_length
    # WHEN it is read (and its tensors decoded)
    with pytest.raises((MalformedRequest, InvalidInput)) as refused:
        oip.read_request(body, length, max_bytes=LIMIT)
    # THEN it is a 400 (framing) or 422 (a tensor's bytes) that says what is wrong, naming the input
    assert http_status(refused.value) == status
    assert words in refused.value.message
    if refused.value.errors:
        assert refused.value.errors[0].field == "x"


def test_an_input_with_both_data_and_binary_data_size_is_a_400():
    body, length = body_with({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0],
                                          "parameters": {"binary_data_size": 4}}]}, b"\x00" * 4)  # fmt: skip
    with pytest.raises(MalformedRequest, match=r"both data and parameters\.binary_data_size"):
        oip.read_request(body, length, max_bytes=LIMIT)


def test_binary_data_size_without_the_header_is_a_400_naming_the_input():
    # GIVEN a JSON request (no Inference-Header-Content-Length) whose input announces binary data
    request = InferRequest.model_validate(
        {"inputs": [{"name": "age", "shape": [1], "datatype": "INT64", "parameters": {"binary_data_size": 8}}]}
    )
    # THEN decoding refuses it, naming the header and the input
    with pytest.raises(MalformedRequest, match="Inference-Header-Content-Length") as refused:
        oip.decode(request, card())
    assert refused.value.errors[0].field == "age"


def test_a_binary_body_over_the_limit_is_a_413_before_it_is_read():
    body, length = _one_input("FP64", [200], b"\x00" * 1600)
    with pytest.raises(PayloadTooLarge):
        oip.read_request(body, length, max_bytes=1000)


def _answer() -> dict:
    return {
        "model_name": "tiny",
        "model_version": "1",
        "id": "r1",
        "outputs": [
            {"name": "predict", "shape": [2], "datatype": "BYTES", "data": ["yes", "no"]},
            {"name": "predict_proba", "shape": [2, 2], "datatype": "FP64", "parameters": {"classes": ["no", "yes"]},
             "data": [0.25, 0.75, 0.875, 0.125]},
        ],
    }  # fmt: skip


def test_binary_outputs_are_read_back_by_tritonclient():
    # GIVEN a request with tritonclient's default: no outputs named, so binary_data_output is true
    request = read(client_inputs())
    # WHEN the answer is encoded
    binary = oip.encode_binary(_answer(), request)
    # THEN tritonclient reads both outputs from the bytes, with their shapes and the JSON parts kept
    result = triton.InferenceServerClient.parse_response_body(binary.body, header_length=binary.header_length)
    assert result.as_numpy("predict").tolist() == [b"yes", b"no"]
    assert result.as_numpy("predict_proba").tolist() == [[0.25, 0.75], [0.875, 0.125]]
    proba = result.get_output("predict_proba")
    assert proba["parameters"] == {"classes": ["no", "yes"], "binary_data_size": 32} and "data" not in proba
    assert result.get_response()["id"] == "r1"


def test_an_output_asked_as_json_stays_json_next_to_a_binary_one():
    # GIVEN outputs named by the client: predict as binary, predict_proba as JSON
    outputs = [triton.InferRequestedOutput("predict", binary_data=True),
               triton.InferRequestedOutput("predict_proba", binary_data=False)]  # fmt: skip
    binary = oip.encode_binary(_answer(), read(client_inputs(), outputs=outputs))
    result = triton.InferenceServerClient.parse_response_body(binary.body, header_length=binary.header_length)
    # THEN only predict is in the bytes; predict_proba keeps its data in the JSON header
    assert result.get_output("predict")["parameters"] == {"binary_data_size": 2 * 4 + len("yes") + len("no")}
    assert result.get_output("predict_proba")["data"] == [0.25, 0.75, 0.875, 0.125]
    assert result.as_numpy("predict").tolist() == [b"yes", b"no"]


def test_a_request_that_asks_no_binary_output_gets_plain_json():
    outputs = [triton.InferRequestedOutput("predict", binary_data=False)]
    assert oip.encode_binary(_answer(), read(client_inputs(), outputs=outputs)) is None
    assert oip.encode_binary(_answer(), InferRequest.model_validate({"inputs": [_json_input()]})) is None


def _json_input() -> dict:
    return {"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}


@pytest.mark.parametrize(
    ("datatype", "data", "expected"),
    [("BOOL", [True, False], [True, False]), ("INT64", [3, -1], [3, -1]), ("FP64", [0.5, math.pi], [0.5, math.pi])],
)
def test_label_datatypes_are_encoded_as_tritonclient_reads_them(datatype, data, expected):
    answer = {"model_name": "m", "model_version": "1",
              "outputs": [{"name": "predict", "shape": [2], "datatype": datatype, "data": data}]}  # fmt: skip
    request = InferRequest.model_validate({"inputs": [_json_input()], "parameters": {"binary_data_output": True}})
    binary = oip.encode_binary(answer, request)
    result = triton.InferenceServerClient.parse_response_body(binary.body, header_length=binary.header_length)
    assert result.as_numpy("predict").tolist() == expected


def test_server_metadata_lists_the_binary_extension():
    metadata = oip.server_metadata("0.1.0")
    assert metadata == {"name": "sklambda", "version": "0.1.0", "extensions": ["binary_tensor_data"]}
