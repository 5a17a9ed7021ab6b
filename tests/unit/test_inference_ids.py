"""sklambda.serving.ids: what an inference id may be, and how a request's row ids are chosen."""

from __future__ import annotations

import pytest

from sklambda.errors import InvalidInput
from sklambda.serving.contracts import InferRequest, PredictRequest
from sklambda.serving.ids import id_problem, request_ids
from sklambda.serving.oip import inference_ids


@pytest.mark.parametrize(
    "value", ["a", "0f8fad5b-d9cb-469f-a165-70867728950e", "cust-17/2026-11-30", "x" * 64, 'a,b"c']
)
def test_short_printable_ascii_without_spaces_is_an_id(value):
    assert id_problem(value) is None


@pytest.mark.parametrize(
    ("value", "words"),
    [("", "empty"), ("x" * 65, "at most 64"), ("a b", "printable"), ("tab\there", "printable"),
     ("caf\u00e9", "printable"), (12, "string"), (None, "string")],
)  # fmt: skip
def test_anything_else_is_not_an_id_and_says_why(value, words):
    assert words in id_problem(value)


def test_without_caller_ids_rows_are_numbered_after_the_generated_prefix():
    assert request_ids(3, row_ids=None, request_id=None, generated_prefix="req") == ["req-0", "req-1", "req-2"]


def test_a_request_id_names_a_single_row_itself_and_numbers_several():
    assert request_ids(1, row_ids=None, request_id="r", generated_prefix="g") == ["r"]
    assert request_ids(2, row_ids=None, request_id="r", generated_prefix="g") == ["r-0", "r-1"]


def test_every_bad_or_repeated_row_id_is_named_with_its_row():
    with pytest.raises(InvalidInput) as caught:
        request_ids(4, row_ids=["a", "", "a", "b"], request_id=None, generated_prefix="g")
    assert [(e.row, e.field) for e in caught.value.errors] == [(1, "inference_ids"), (2, "inference_ids")]
    assert "already the id of row 0" in caught.value.errors[1].message


def test_the_request_shapes_accept_the_id_fields():
    body = PredictRequest.model_validate({"instances": [{}], "inference_ids": ["a"]})
    assert (body.inference_ids, body.inference_id) == (["a"], None)
    v2 = InferRequest.model_validate(
        {
            "id": "1",
            "parameters": {"inference_ids": ["a", "b"]},
            "inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1, 2]}],
        }
    )
    assert inference_ids(v2, 2, "req") == ["a", "b"]
    assert inference_ids(v2.model_copy(update={"parameters": None}), 2, "req") == ["req-0", "req-1"]
