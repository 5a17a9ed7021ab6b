"""The holdout overlap statistic: observed shared rows against what a random split of the same data gives."""

from __future__ import annotations

import numpy as np
import pytest

from sklambda.publishing import quality
from sklambda.publishing.quality import overlap_estimate
from tests.support import wage_like


def keys(frame) -> np.ndarray:
    numeric = {c for c in frame.columns if frame[c].dtype.kind in "if"}
    return quality._row_keys(frame, list(frame.columns), numeric)


def random_split(X, seed: int, holdout: float = 0.2):
    order = np.random.default_rng(seed).permutation(len(X))
    cut = int(len(X) * holdout)
    return X.iloc[order[cut:]], X.iloc[order[:cut]]


def test_the_expected_rate_is_the_share_of_training_rows_whose_values_occur_again():
    # GIVEN training rows a, a, b, c (a occurs twice: 2 of 4 rows have a duplicate) and a holdout of one a, one d
    train, holdout = np.array(["a", "a", "b", "c"]), np.array(["a", "d"])
    # WHEN the overlap is estimated
    est = overlap_estimate(train, holdout)
    # THEN the expected rate is Good's coverage 1 - N1/n = 1 - 2/4, and 1 of 2 holdout rows is shared
    assert est.expected == pytest.approx(0.5)
    assert (est.shared_rows, est.holdout_rows, est.observed) == (1, 2, 0.5)
    assert est.copied == 0.0


def test_data_without_duplicates_expects_none_and_a_holdout_copy_is_entirely_copied():
    # GIVEN 1,000 distinct training rows and a holdout made of 100 of them
    train = np.arange(1000)
    est = overlap_estimate(train, train[:100])
    # THEN nothing was expected, everything is shared, and the z-score is far beyond the threshold
    assert est.expected == 0.0 and est.observed == 1.0 and est.copied == 1.0
    assert est.z > quality.OVERLAP_Z


@pytest.mark.parametrize("drop", [[], ["year"]], ids=["8 features", "7 features"])
def test_random_splits_of_wage_like_data_look_random_despite_natural_duplicates(drop):
    # GIVEN data like ISLR's Wage, where a correct random split shares 13 % (48 % without year) of the holdout rows
    X = wage_like(seed=3)[0].drop(columns=drop)
    # WHEN 30 random 80/20 splits are compared with the estimate from their own training rows
    found = [overlap_estimate(keys(train), keys(hold)) for train, hold in (random_split(X, s) for s in range(30))]
    # THEN the overlap is large, the estimate agrees with it on average, and no split reaches the reporting threshold
    observed = np.mean([e.observed for e in found])
    assert observed > 0.1
    assert np.mean([e.expected for e in found]) == pytest.approx(observed, abs=0.02)
    assert max(e.z for e in found) < quality.OVERLAP_Z


def test_copied_rows_are_estimated_as_the_share_of_the_holdout_they_make_up():
    # GIVEN a random split of Wage-like data whose holdout then gets 30 % of its rows replaced by training rows
    X = wage_like(seed=4)[0]
    train, hold = random_split(X, 0)
    leaked = np.r_[keys(train)[:180], keys(hold)[180:]]
    # WHEN estimated
    est = overlap_estimate(keys(train), leaked)
    # THEN about 30 % of the holdout is estimated copied, with a z-score far above the threshold
    assert est.copied == pytest.approx(0.3, abs=0.05)
    assert est.z > quality.OVERLAP_Z


def test_the_same_values_as_integer_and_float_are_one_row():
    # GIVEN a training age of 42 and a holdout age of 42.0 (pandas reads an integer column with a null as floats)
    import pandas as pd

    train = pd.DataFrame({"age": [42, 43], "plan": ["a", "b"]})
    hold = pd.DataFrame({"age": [42.0, np.nan], "plan": ["a", "b"]})
    # THEN the first holdout row is identical to a training row, the second (a null age) to none
    k_train = quality._row_keys(train, ["age", "plan"], {"age"})
    k_hold = quality._row_keys(hold, ["age", "plan"], {"age"})
    assert overlap_estimate(k_train, k_hold).shared_rows == 1
