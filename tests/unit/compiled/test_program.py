"""The compiled artifact's bytes: a round trip keeps every answer; damaged or foreign bytes are refused."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from sklambda.compiled.compile import compile_model
from sklambda.compiled.evaluate import CompiledModel
from sklambda.compiled.program import FORMAT, MAGIC, CompiledFormatError, CompiledProgram
from sklambda_infra import sample
from tests.unit.compiled.helpers import columns_of


@pytest.fixture(scope="module")
def program(churn_compiled) -> CompiledProgram:
    model = sample.logistic_pipeline().fit(churn_compiled.X, churn_compiled.y)
    return compile_model(model, churn_compiled.schema)


def test_round_trip_keeps_header_arrays_and_answers(program, churn_compiled):
    # GIVEN a compiled program WHEN written to bytes and read back
    again = CompiledProgram.from_bytes(program.to_bytes())
    # THEN the header and every array are the same, bit for bit, and so are the answers
    assert again.header == {**program.header, "format": FORMAT}
    assert again.arrays.keys() == program.arrays.keys()
    for name, array in program.arrays.items():
        assert again.arrays[name].dtype == array.dtype and np.array_equal(again.arrays[name], array)
    columns = columns_of(churn_compiled.frame)
    assert np.array_equal(CompiledModel(again).predict_proba(columns), CompiledModel(program).predict_proba(columns))


def test_a_flipped_byte_in_the_arrays_is_refused(program):
    # GIVEN the bytes of a program with one byte of its last array changed
    blob = bytearray(program.to_bytes())
    blob[-3] ^= 0x40
    # WHEN read THEN the checksum refuses it
    with pytest.raises(CompiledFormatError, match="damaged"):
        CompiledProgram.from_bytes(bytes(blob))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda b: b[:20], "truncated|magic"),
        (lambda b: b"PK\x03\x04" + b[4:], "magic"),
        (lambda b: b[: len(MAGIC)] + struct.pack("<Q", 10**9) + b[len(MAGIC) + 8 :], "truncated"),
        (lambda b: b[: len(MAGIC) + 8] + b"\xff" + b[len(MAGIC) + 9 :], "not JSON"),
        (lambda b: b"", "magic"),
    ],
    ids=["truncated", "zip", "header-too-long", "header-not-json", "empty"],
)
def test_damaged_bytes_are_refused(program, damage, message):
    # GIVEN damaged bytes WHEN read THEN a CompiledFormatError (a ValueError) says what is wrong
    with pytest.raises(CompiledFormatError, match=message):
        CompiledProgram.from_bytes(damage(program.to_bytes()))


def _with_header(blob: bytes, change) -> bytes:
    (size,) = struct.unpack_from("<Q", blob, len(MAGIC))
    start = len(MAGIC) + 8
    header = json.loads(blob[start : start + size])
    change(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return MAGIC + struct.pack("<Q", len(text)) + text + blob[start + size :]


def test_an_unknown_format_version_is_refused(program):
    # GIVEN a program that says it is of a later format
    blob = _with_header(program.to_bytes(), lambda h: h.update(format="sklambda.compiled/v2"))
    # WHEN read THEN it is refused, naming the version found and the one read
    with pytest.raises(CompiledFormatError, match=r"v2.*v1"):
        CompiledProgram.from_bytes(blob)


def test_an_object_array_is_never_read_or_written(program):
    # GIVEN a header claiming an array of dtype object (which only pickle could hold)
    name = next(iter(program.arrays))
    blob = _with_header(program.to_bytes(), lambda h: h["arrays"][name].update(dtype="|O"))
    # WHEN read THEN it is refused; and an object array cannot be written either
    with pytest.raises(CompiledFormatError, match="refused dtype"):
        CompiledProgram.from_bytes(blob)
    with pytest.raises(CompiledFormatError, match="dtype object"):
        CompiledProgram(header={}, arrays={"a": np.array(["x"], dtype=object)}).to_bytes()


def test_an_array_outside_the_program_is_refused(program):
    # GIVEN a header whose array runs past the end of the bytes
    name = next(iter(program.arrays))
    blob = _with_header(program.to_bytes(), lambda h: h["arrays"][name].update(offset=10**6))
    # WHEN read THEN it is refused
    with pytest.raises(CompiledFormatError, match="outside"):
        CompiledProgram.from_bytes(blob)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda steps: steps[-1]["ops"].__setitem__(0, {"op": "quantum"}), "unknown operation 'quantum'"),
        (lambda steps: steps[-1]["ops"][0].update(link="probit"), "link 'probit'"),
        (lambda steps: steps[-1]["ops"][0].pop("coef"), "malformed"),
    ],
    ids=["operation", "link", "missing-key"],
)
def test_steps_the_evaluator_does_not_know_are_refused(program, change, message):
    # GIVEN a well-formed program whose steps name what this version does not have
    steps = json.loads(json.dumps(program.header["steps"]))
    change(steps)
    strange = CompiledProgram(header={**program.header, "steps": steps}, arrays=program.arrays)
    # WHEN the evaluator is built THEN it refuses it
    with pytest.raises(CompiledFormatError, match=message):
        CompiledModel(CompiledProgram.from_bytes(strange.to_bytes()))
