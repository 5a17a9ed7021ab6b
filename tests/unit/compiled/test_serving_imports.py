"""Serving a compiled model loads numpy and the standard library only: no scikit-learn, scipy or pandas."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from sklambda.compiled.compile import compile_model
from sklambda_infra import sample
from tests.unit.compiled.helpers import columns_of

SCORE = """
import json, sys
import numpy as np
from sklambda.compiled.evaluate import CompiledModel
model = CompiledModel.from_bytes(open(sys.argv[1], "rb").read())
given = json.load(open(sys.argv[2]))
columns = {k: np.array(v, dtype=object if isinstance(v[0], str) else None) for k, v in given.items()}
proba = model.predict_proba(columns).tolist()
loaded = sorted(m for m in ("sklearn", "scipy", "pandas") if m in sys.modules)
print(json.dumps({"proba": proba, "labels": model.predict(columns).tolist(), "loaded": loaded}))
"""


def test_scoring_a_compiled_forest_imports_no_sklearn_scipy_or_pandas(churn_compiled, tmp_path):
    # GIVEN a compiled forest pipeline written to a file, and validated request columns
    model = sample.forest_pipeline(n_estimators=5).fit(churn_compiled.X, churn_compiled.y)
    (tmp_path / "model.bin").write_bytes(compile_model(model, churn_compiled.schema).to_bytes())
    frame = churn_compiled.frame.iloc[:50]
    columns = {k: v.tolist() for k, v in columns_of(frame).items()}
    (tmp_path / "columns.json").write_text(json.dumps(columns))
    # WHEN a fresh process loads and scores it
    done = subprocess.run(
        [sys.executable, "-c", SCORE, str(tmp_path / "model.bin"), str(tmp_path / "columns.json")],
        capture_output=True,
        text=True,
        check=True,
    )
    answer = json.loads(done.stdout)
    # THEN it answers as scikit-learn, and none of scikit-learn, scipy or pandas was imported
    assert answer["loaded"] == []
    assert np.abs(np.array(answer["proba"]) - model.predict_proba(frame)).max() <= 1e-12
    assert answer["labels"] == model.predict(frame).tolist()
