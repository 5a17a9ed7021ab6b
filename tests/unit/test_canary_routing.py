"""The canary routing rule on an alias record: sticky per caller key, close to its weight, monotone in the weight."""

from __future__ import annotations

import pytest

from sklambda.registry.store import AliasRecord, Canary


def _record(weight: float, version: str = "2") -> AliasRecord:
    return AliasRecord("churn", "production", "1", (), "", canary=Canary(version, weight))


def test_the_share_routed_to_the_canary_matches_its_weight():
    # GIVEN a 10 % canary WHEN 20,000 distinct callers are routed
    routed = [_record(10).route(f"customer-{i}") for i in range(20_000)]
    # THEN about 10 % reach version 2 (binomial sd 0.21 points: 4 sd either side)
    assert 0.0916 < routed.count("2") / len(routed) < 0.1084


def test_a_caller_keeps_its_version_and_a_ramp_keeps_the_canary_callers():
    # GIVEN callers routed at 10 %
    keys = [f"customer-{i}" for i in range(2_000)]
    at_10 = {k for k in keys if _record(10).route(k) == "2"}
    # WHEN they are routed again, and after a ramp to 50 %
    again = {k for k in keys if _record(10).route(k) == "2"}
    at_50 = {k for k in keys if _record(50).route(k) == "2"}
    # THEN the same callers are on the canary, and the ramp only adds callers
    assert again == at_10 and at_10 < at_50


def test_another_canary_version_picks_other_callers():
    keys = [f"customer-{i}" for i in range(2_000)]
    first = {k for k in keys if _record(10, "2").route(k) == "2"}
    second = {k for k in keys if _record(10, "3").route(k) == "3"}
    # THEN the overlap is about 10 % of 10 %, not the same slice of customers every time
    assert len(first & second) < 0.5 * len(first)


@pytest.mark.parametrize("weight", [0, 100, -5, 150])
def test_weights_outside_the_open_interval_are_refused(weight):
    from sklambda.registry.store import check_weight

    with pytest.raises(ValueError, match="strictly between 0 and 100"):
        check_weight(weight)


def test_without_a_canary_or_a_key_the_stable_version_answers():
    assert AliasRecord("churn", "production", "1", (), "").route("anyone") == "1"
    assert _record(99).route(None) == "1"
