"""Routing a request's rows between an alias's stable and canary versions, and merging the answers in row order."""

from __future__ import annotations

from sklambda.errors import FieldError, InvalidInput
from sklambda.registry.store import AliasRecord, Canary
from sklambda.serving import routing
from sklambda.serving.data_quality import DataQualityWarning
from sklambda.serving.scoring import Scored


def _record(key: str | None = "customer_id", weight: float = 50) -> AliasRecord:
    return AliasRecord("churn", "production", "1", (), "", canary=Canary("2", weight, key))


def test_a_row_is_routed_by_its_key_feature_else_by_its_inference_id():
    # GIVEN a canary keyed by customer_id, and rows with, without and with a null customer_id
    record = _record()
    rows = [{"customer_id": "C7"}, {"age": 3}, {"customer_id": None}, {"customer_id": 17}, "not a row"]
    ids = ["a", "b", "c", "d", "e"]
    # WHEN they are routed
    versions = routing.route_rows(record, rows, ids)
    # THEN each follows the rule for its caller key: the feature's text when present, else its inference id
    assert versions == [record.route("C7"), record.route("b"), record.route("c"), record.route("17"), record.route("e")]
    assert [routing.caller_key(r, "customer_id", i) for r, i in zip(rows, ids, strict=True)] == [
        "C7", "b", "c", "17", "e"
    ]  # fmt: skip


def test_rows_of_one_caller_go_together_and_without_a_key_each_row_is_its_own_caller():
    # GIVEN 200 rows of one customer, then 200 rows of distinct ids and no key
    one_customer = routing.route_rows(_record(), [{"customer_id": "C1"}] * 200, [f"r{i}" for i in range(200)])
    no_key = routing.route_rows(_record(key=None), [{"customer_id": "C1"}] * 200, [f"r{i}" for i in range(200)])
    # THEN the customer's rows share one version, while the id-keyed rows split between both
    assert len(set(one_customer)) == 1
    assert set(no_key) == {"1", "2"}


def test_without_a_canary_every_row_gets_the_stable_version():
    record = AliasRecord("churn", "production", "1", (), "")
    assert routing.route_rows(record, [{}, {}], ["a", "b"]) == ["1", "1"]


def test_groups_keep_row_order_and_the_merge_puts_every_answer_back_in_its_row():
    # GIVEN rows 0..4 answered by versions 1,2,1,2,1
    groups = routing.group_rows(["1", "2", "1", "2", "1"])
    assert [(g.version, g.rows) for g in groups] == [("1", [0, 2, 4]), ("2", [1, 3])]
    warn = DataQualityWarning(1, "age", "out_of_range", "m")  # the second row of version 1's group: row 2
    stable = Scored("churn", "1", ["a0", "a2", "a4"], [{"yes": 0.0}, {"yes": 0.2}, {"yes": 0.4}], [warn],
                    decisions=["n", "n", "n"], decision_rule={"positive_class": "yes", "threshold": 0.5})  # fmt: skip
    canary = Scored("churn", "2", ["b1", "b3"], None)  # a version without probabilities or a decision rule
    # WHEN the answers are merged
    routed = routing.merge("churn", 5, [(groups[0], stable), (groups[1], canary)])
    # THEN each row has its own version's answer, in request order, and a warning names the request's row
    assert routed.versions == ["1", "2", "1", "2", "1"] and routed.model_version is None
    assert routed.predictions == ["a0", "b1", "a2", "b3", "a4"]
    assert routed.probabilities == [{"yes": 0.0}, None, {"yes": 0.2}, None, {"yes": 0.4}]
    assert routed.decisions == ["n", None, "n", None, "n"]
    assert [w.row for w in routed.warnings] == [2]
    assert routed.decision_rules == {"1": {"positive_class": "yes", "threshold": 0.5}, "2": None}


def test_refusals_of_several_groups_are_one_error_naming_the_requests_rows():
    groups = routing.group_rows(["1", "2", "1", "2"])
    failures = [
        (InvalidInput("x", errors=[FieldError("bad", 1, "age")]), groups[0]),  # version 1's second row: row 2
        (InvalidInput("y", errors=[FieldError("bad", 0, "plan")]), groups[1]),  # version 2's first row: row 1
    ]
    error = routing.in_request(failures)
    assert [(e.row, e.field) for e in error.errors] == [(1, "plan"), (2, "age")]
    assert error.message.startswith("2 problem(s) in the input: row 1, field 'plan'")
