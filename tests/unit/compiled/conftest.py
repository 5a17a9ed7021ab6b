"""Shared data of the compiled evaluator's tests: the churn sample validated as serving validates it, with nulls and
categories training never saw."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from sklambda.registry.schema import infer_schema
from sklambda_infra import sample
from tests.unit.compiled.helpers import served_frame


@pytest.fixture(scope="module", autouse=True)
def one_openmp_thread() -> Iterator[None]:
    """HistGradientBoosting fits with an OpenMP thread per core; on a machine shared by busy test workers those
    threads wait on each other (a 0.3 s fit took 18 s): one thread keeps these tests fast, the answers unchanged."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture(scope="session")
def churn_compiled() -> SimpleNamespace:
    """The churn sample: 2,000 training rows, its schema, and 500 unseen rows served with nulls in a number and a
    category, and a category never seen in training."""
    X, y = sample.churn_data(2000, seed=3)
    schema = infer_schema(X, pii=sample.PII, nullable=["plan"])
    unseen, _ = sample.churn_data(500, seed=4)
    unseen = unseen.astype({"plan": object})
    unseen.loc[0:9, "monthly_income"] = np.nan
    unseen.loc[10:19, "plan"] = None
    unseen.loc[20:29, "plan"] = "gold"
    unseen.loc[30:39, "region"] = "atlantis"
    return SimpleNamespace(X=X, y=y, schema=schema, frame=served_frame(schema, unseen))
