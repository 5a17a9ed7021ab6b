"""The sample dataset (sklambda_infra.penguins): real data read offline from the palmerpenguins package."""

from __future__ import annotations

import socket

import pandas as pd
import pytest

from sklambda_infra import penguins


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to resolve a name or open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_the_dataset_loads_offline_with_mixed_types_nulls_and_an_identifier(no_network):
    from palmerpenguins import load_penguins_raw

    # GIVEN no network WHEN the sample dataset loads
    X, y = penguins.load()
    raw = load_penguins_raw()
    # THEN it has every sexed bird of the package's raw table, the features in order, the target female/male
    assert len(X) == len(y) == raw["Sex"].isin(["MALE", "FEMALE"]).sum()
    assert list(X.columns) == list(penguins.FEATURES) and y.name == penguins.TARGET
    assert set(y) == {"female", "male"}
    # THEN categorical features are text, integer measurements integers, the others floats with nulls where the
    # blood was not analysed, and the identifier is kept, as in the raw table, for the card to mark pii
    for column in (*penguins.PII, *penguins.CATEGORICAL):
        assert pd.api.types.is_string_dtype(X[column]), column
    for column in penguins.NUMERIC:
        expected = pd.api.types.is_integer_dtype if column in penguins.INTEGER else pd.api.types.is_float_dtype
        assert expected(X[column]), column
    assert X[["delta_15n", "delta_13c"]].isna().any().all()
    assert set(X["individual_id"]) <= set(raw["Individual ID"])
    assert set(X["species"]) == {"Adelie", "Chinstrap", "Gentoo"}


def test_split_holds_out_a_seeded_stratified_share_of_distinct_rows():
    # GIVEN the dataset WHEN it is split twice with the same seed
    X, y = penguins.load()
    X_train, y_train, X_holdout, y_holdout = penguins.split(X, y)
    again = penguins.split(X, y)
    # THEN every row is in exactly one part, the holdout is HOLDOUT_SHARE of each class, and the split repeats
    together = pd.concat([X_train, X_holdout]).sort_values(list(X.columns)).reset_index(drop=True)
    pd.testing.assert_frame_equal(together, X.sort_values(list(X.columns)).reset_index(drop=True))
    for label, count in y.value_counts().items():
        assert (y_holdout == label).sum() == round(count * penguins.HOLDOUT_SHARE)
    pd.testing.assert_frame_equal(again[2], X_holdout)
    assert list(X_train.index) == list(range(len(X_train))) and len(y_train) == len(X_train)


def test_resampled_traffic_is_made_of_real_rows():
    # GIVEN the dataset WHEN traffic larger than it is drawn
    X, _ = penguins.load()
    traffic = penguins.resample(X, 1000, seed=3)
    # THEN it has that many rows, each one a row of the dataset
    assert len(traffic) == 1000
    real = set(X.astype(str).itertuples(index=False))
    assert set(traffic.astype(str).itertuples(index=False)) <= real
