"""Helpers of the compiled evaluator's tests: the columns serving hands the evaluator, and the comparison of a
compiled model with scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sklambda.compiled.compile import compile_model
from sklambda.compiled.evaluate import CompiledModel
from sklambda.compiled.program import CompiledProgram
from sklambda.registry.schema import InputSchema, to_records

# The agreement every supported model must reach with scikit-learn's predict_proba/predict (issue 15).
TOLERANCE = 1e-12


def columns_of(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """What serving hands the evaluator: each column of the validated DataFrame as a numpy array."""
    return {c: frame[c].to_numpy() for c in frame}


def served_frame(schema: InputSchema, X: pd.DataFrame) -> pd.DataFrame:
    """`X` as a request carries it (JSON records) and as serving validates it against the card's schema."""
    return schema.validate(to_records(X))


def compiled(model, schema: InputSchema) -> CompiledModel:
    """The model compiled, written to bytes and read back: what serving runs."""
    return CompiledModel(CompiledProgram.from_bytes(compile_model(model, schema).to_bytes()))


def assert_agrees(model, schema: InputSchema, frame: pd.DataFrame) -> float:
    """The compiled model answers as `model` on every row and on the first row alone; returns the largest difference
    in probability (or regression value)."""
    evaluator = compiled(model, schema)
    worst = 0.0
    for part in (frame, frame.iloc[:1].reset_index(drop=True)):
        columns = columns_of(part)
        if evaluator.has_proba:
            got, want = evaluator.predict_proba(columns), model.predict_proba(part)
            assert got.shape == want.shape and got.dtype == np.float64
            worst = max(worst, float(np.abs(got - want).max()))
        predicted, expected = evaluator.predict(columns), model.predict(part)
        if evaluator.is_classifier:
            assert predicted.tolist() == expected.tolist()
        else:
            worst = max(worst, float(np.abs(predicted - expected).max()))
    assert worst <= TOLERANCE, f"largest difference {worst:.3g} exceeds {TOLERANCE}"
    return worst
