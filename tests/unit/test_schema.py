"""Schema inference at publish and validation of every request row."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from sklambda.errors import InvalidInput, PublishRejected
from sklambda.registry.schema import FeatureSpec, InputSchema, infer_schema, is_required


@pytest.fixture
def frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["a1", "a2", "a3"],
            "age": [30, 41, 52],
            "score": [0.5, np.nan, 2.5],
            "plan": ["basic", "plus", "basic"],
            "active": [True, False, True],
        }
    )


def test_types_ranges_categories_and_nullability_are_inferred(frame):
    schema = infer_schema(frame, pii=["id"])
    by = {f.name: f for f in schema.features}
    assert [f.type for f in schema.features] == ["category", "integer", "number", "category", "boolean"]
    assert (by["age"].minimum, by["age"].maximum, by["age"].nullable) == (30.0, 52.0, False)
    assert by["score"].nullable is True
    assert by["plan"].categories == ("basic", "plus")
    assert by["id"].pii and by["id"].categories is None


def test_naming_an_unknown_column_as_pii_is_refused(frame):
    with pytest.raises(PublishRejected, match="pii names column"):
        infer_schema(frame, pii=["email"])


def test_columns_of_mixed_objects_cannot_be_inferred_and_the_types_are_named_with_a_row():
    with pytest.raises(PublishRejected, match="cannot infer a feature type for column 'mixed'") as info:
        infer_schema(pd.DataFrame({"mixed": ["a", 1, None]}))
    assert "it mixes str (row 0: 'a') and int (row 1: 1)" in info.value.message


def test_valid_rows_become_a_frame_in_training_order(frame):
    schema = infer_schema(frame)
    out = schema.validate([{"active": False, "plan": "plus", "score": None, "age": 33.0, "id": "x"}])
    assert list(out.columns) == ["id", "age", "score", "plan", "active"]
    assert out["age"].dtype == np.int64 and out.loc[0, "age"] == 33
    assert np.isnan(out.loc[0, "score"])
    assert out["active"].dtype == bool


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("age", "30", "expected an integer, got string '30'"),
        ("age", 30.5, "expected an integer, got 30.5"),
        ("age", True, "expected an integer, got boolean true"),
        ("score", [1], "expected a number, got an array"),
        ("plan", 3, "expected a string category, got int 3"),
        ("active", "yes", "expected true or false, got string 'yes'"),
        ("age", None, "is null but the feature is not nullable"),
    ],
)
def test_each_wrong_value_is_named_with_row_and_field(frame, field, value, message):
    schema = infer_schema(frame)
    row = {"id": "x", "age": 30, "score": 1.0, "plan": "basic", "active": True, field: value}
    with pytest.raises(InvalidInput) as e:
        schema.validate([row, row])
    assert [(x.row, x.field, x.message) for x in e.value.errors] == [(0, field, message), (1, field, message)]


def test_every_problem_is_reported_at_once(frame):
    schema = infer_schema(frame)
    with pytest.raises(InvalidInput) as e:
        schema.validate([{"id": "x"}, "not an object"])
    problems = [(x.row, x.field) for x in e.value.errors]
    assert problems == [(0, "age"), (0, "score"), (0, "plan"), (0, "active"), (1, None)]
    assert "5 problem(s)" in e.value.message


def test_schema_round_trips_through_its_dict():
    schema = InputSchema((FeatureSpec("a", "number", nullable=True, minimum=0.0, maximum=1.0),))
    assert InputSchema.from_dict(schema.to_dict()) == schema
    with pytest.raises(ValueError, match="unknown type"):
        FeatureSpec.from_dict({"name": "b", "type": "complex"})


def test_request_frame_matches_pandas_own_conversion_of_each_column():
    # GIVEN a schema with every column kind, nullable ones included
    schema = InputSchema(
        (
            FeatureSpec("id", "category"),
            FeatureSpec("age", "integer"),
            FeatureSpec("visits", "integer", nullable=True),
            FeatureSpec("score", "number", nullable=True),
            FeatureSpec("active", "boolean"),
            FeatureSpec("opted_in", "boolean", nullable=True),
            FeatureSpec("plan", "category", nullable=True),
        )
    )
    rows = [
        {"id": "a", "age": 30.0, "visits": None, "score": 1, "active": True, "opted_in": None, "plan": None},
        {"id": "b", "age": 2**40, "visits": 3, "score": None, "active": False, "opted_in": True, "plan": "plus"},
    ]
    # WHEN the rows become the frame the model sees
    out = schema.frame(rows)
    # THEN it equals one pd.Series per column (nulls as NaN outside categories), dtypes and block layout included
    expected = pd.DataFrame(
        {
            f.name: pd.Series([r[f.name] if r[f.name] is not None else np.nan for r in rows], dtype=f.dtype)
            if f.type != "category"
            else pd.Series([r[f.name] for r in rows], dtype=object)
            for f in schema.features
        }
    )
    pd.testing.assert_frame_equal(out, expected, check_exact=True)
    assert [b.dtype for b in out._mgr.blocks] == [b.dtype for b in expected._mgr.blocks]
    assert out["id"].dtype == object and out.loc[1, "plan"] == "plus" and out.loc[0, "plan"] is None


def test_an_integer_too_large_for_int64_fails_as_pandas_fails():
    schema = InputSchema((FeatureSpec("n", "integer"),))
    with pytest.raises(OverflowError):
        pd.Series([2**70], dtype="int64")
    with pytest.raises(OverflowError):
        schema.frame([{"n": 2**70}])


# --- features the model never reads ------------------------------------------------------------------------------
@pytest.fixture
def optional_schema(frame) -> InputSchema:
    """The frame's schema with id (pii) and active marked as never read by the model."""
    schema = infer_schema(frame, pii=["id"])
    return InputSchema(tuple(replace(f, required=f.name not in ("id", "active")) for f in schema.features))


def test_required_is_serialized_only_when_false_so_older_cards_keep_their_bytes(optional_schema):
    # GIVEN a schema with two optional features
    as_dict = optional_schema.to_dict()
    # THEN only those carry "required": false, and the schema reads back the same
    assert [f["name"] for f in as_dict["features"] if "required" in f] == ["id", "active"]
    assert all(f["required"] is False for f in as_dict["features"] if "required" in f)
    assert InputSchema.from_dict(as_dict) == optional_schema
    assert [is_required(f) for f in optional_schema.features] == [False, True, True, True, False]
    # AND a card written before the field existed reads as every feature required
    old = {"features": [{k: v for k, v in f.items() if k != "required"} for f in as_dict["features"]]}
    assert InputSchema.from_dict(old).optional_names == ()


def test_rows_may_leave_out_or_null_the_optional_features_and_the_model_gets_their_missing_marker(optional_schema):
    # GIVEN one row without id and active, one with them null, one with them set
    rows = [
        {"age": 30, "score": 1.0, "plan": "basic"},
        {"id": None, "age": 31, "score": 1.5, "plan": "plus", "active": None},
        {"id": "a9", "age": 32, "score": 2.0, "plan": "plus", "active": True},
    ]
    # WHEN validated
    X = optional_schema.validate(rows)
    # THEN every row is accepted; the left-out values are the training missing marker (NaN), the given one kept
    assert list(X.columns) == ["id", "age", "score", "plan", "active"]
    assert X["id"].isna().tolist() == [True, True, False] and X["id"].iloc[2] == "a9"
    assert X["active"].isna().tolist() == [True, True, False] and X["active"].iloc[2] is True


def test_an_optional_feature_still_refuses_a_wrong_type_and_unknown_features_stay_refused(optional_schema):
    # GIVEN a row with a number for the optional category id, and an unknown field
    with pytest.raises(InvalidInput) as info:
        optional_schema.validate([{"id": 5, "age": 30, "score": 1.0, "plan": "basic", "email": "x"}])
    # THEN both are named; a left-out optional feature is not a problem, a left-out required one is
    problems = {(e.field, e.message) for e in info.value.errors}
    assert problems == {("id", "expected a string category, got int 5"), ("email", "unknown feature")}
    with pytest.raises(InvalidInput) as info:
        optional_schema.validate([{"score": 1.0, "plan": "basic"}])
    assert [(e.field, e.message) for e in info.value.errors] == [("age", "missing feature")]
