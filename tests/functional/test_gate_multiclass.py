"""The gate between two versions of a multiclass model: accuracy, paired on each row's correctness."""

from __future__ import annotations

import pytest
from sklearn.linear_model import LogisticRegression

from sklambda.publishing import build_card
from sklambda.updating.gate import KEEP_CHAMPION, REPLACE, GateConfig
from sklambda.updating.versions import gate_versions
from tests.support import BuiltVersion, store_built


def test_a_multiclass_challenger_is_gated_on_accuracy_and_roc_auc_is_refused_by_name(registry_env, churn):
    # GIVEN two versions of a 3-class model of churn's `plan`: v1 without the charges that mostly decide the plan,
    # v2 with them
    weak, strong = ["age", "tenure_months"], ["age", "tenure_months", "monthly_charges"]
    for version, columns in (("1", weak), ("2", strong)):
        model = LogisticRegression(max_iter=500).fit(churn.X[columns], churn.X["plan"])
        built = build_card(model, churn.X[columns], churn.X["plan"], name="plan", version=version)
        store_built(registry_env, BuiltVersion(*built))
    X, y = churn.X_holdout, churn.X_holdout["plan"].to_numpy()
    accuracy = GateConfig(metric="accuracy")
    # WHEN the stronger version challenges the weaker, and a version challenges itself
    better = gate_versions(registry_env.registry, registry_env.verifier, "plan", "1", "2", X, y, config=accuracy)
    same = gate_versions(registry_env.registry, registry_env.verifier, "plan", "2", "2", X, y, config=accuracy)
    # THEN the stronger one replaces (its accuracy as served, on the same rows), an equal one does not
    assert better.decision == REPLACE and better.challenger > better.champion + 0.2
    assert same.decision == KEEP_CHAMPION and same.gain == 0
    # AND ROC AUC, a binary test, is refused with the metric to use
    with pytest.raises(ValueError, match="a multiclass model is gated on accuracy"):
        gate_versions(registry_env.registry, registry_env.verifier, "plan", "1", "2", X, y)
