"""The holdout overlap statistic: observed shared rows against what a random split of the same data gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sklambda.publishing import quality
from sklambda.publishing.quality import overlap_estimate
from sklambda.registry.card import CLASSIFICATION, REGRESSION
from tests.support import wage_like


def keys(frame) -> np.ndarray:
    numeric = {c for c in frame.columns if frame[c].dtype.kind in "if"}
    return quality.row_keys(frame, list(frame.columns), numeric)


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
    k_train = quality.row_keys(train, ["age", "plan"], {"age"})
    k_hold = quality.row_keys(hold, ["age", "plan"], {"age"})
    assert overlap_estimate(k_train, k_hold).shared_rows == 1


def few_combinations(n: int = 3000, seed: int = 0):
    """The trial's data: three categories of 3-4 levels and a 10-valued integer, so most rows repeat another."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "region": rng.choice(["n", "s", "e"], n),
            "plan": rng.choice(["a", "b", "c", "d"], n),
            "channel": rng.choice(["web", "app", "shop", "phone"], n),
            "tenure": rng.integers(0, 10, n),
        }
    )
    y = pd.Series(np.where((X["tenure"] < 3) ^ (X["plan"] == "d"), "yes", "no"), name="churned")
    return X, y


def overlap_warnings(X, y, X_hold, y_hold, task=CLASSIFICATION, **options):
    report = quality.check_training_data(X, y, task=task, X_holdout=X_hold, y_holdout=y_hold, **options)
    return report, [w for w in report.warnings if w.check == "holdout_overlap"]


@pytest.mark.parametrize("copied", [False, True])
def test_on_data_with_few_distinct_rows_the_check_says_it_cannot_tell_a_copy_from_a_split(copied):
    # GIVEN data whose random splits already repeat ~98 % of their rows, and a holdout split off or copied
    X, y = few_combinations()
    X_train, X_hold = random_split(X, seed=3)
    y_train, y_hold = y.loc[X_train.index], y.loc[X_hold.index]
    if copied:
        X_hold, y_hold = X_train.iloc[:600], y_train.iloc[:600]
    # WHEN the data is checked
    report, warned = overlap_warnings(X_train, y_train, X_hold, y_hold)
    # THEN neither passes silently nor is refused: one warning says this check cannot tell
    assert not [r for r in report.refusals if r.check == "holdout_overlap"]
    assert len(warned) == 1 and "this check cannot tell" in warned[0].message
    assert report.measurements["holdout_overlap"]["expected_rate"] >= quality.OVERLAP_UNTESTABLE


def test_the_override_is_recorded_only_when_it_turned_a_refusal_into_a_warning():
    # GIVEN Wage-like data, a correct random split and a copied holdout, both checked with the override
    X, y = wage_like()
    X_train, X_hold = random_split(X, seed=5)
    y_train = y.loc[X_train.index]
    options = {"task": REGRESSION, "allow_holdout_overlap": True}
    clean, _ = overlap_warnings(X_train, y_train, X_hold, y.loc[X_hold.index], **options)
    copy, warned = overlap_warnings(X_train, y_train, X_train.iloc[:600], y_train.iloc[:600], **options)
    # THEN only the copy, which would have been refused, records the override
    assert clean.overrides == () and copy.overrides == ("holdout_overlap",)
    assert not copy.refusals and "published anyway" in warned[0].message
