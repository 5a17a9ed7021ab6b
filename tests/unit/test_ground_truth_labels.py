"""Label rows checked against a card (sklambda.monitoring.ground_truth.labels): ids, classes, numbers, times,
duplicates, all-or-nothing requests and row-by-row files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from sklambda.errors import InvalidInput, ModelNotFound, ModelRefused
from sklambda.monitoring.ground_truth.labels import (
    MAX_CLOCK_SKEW,
    MAX_PROBLEMS,
    Duplicates,
    LabelRules,
    LabelRulesSource,
    Problem,
    check_file_rows,
    csv_header,
    parse_request,
    parse_row,
)
from sklambda.monitoring.ground_truth.store import Label

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def card(task: str = "classification", classes: tuple | None = ("no", "yes"), name: str = "churn") -> SimpleNamespace:
    return SimpleNamespace(name=name, version="3", task=task, classes=classes)


CHURN = LabelRules.from_card(card())
INT_CLASSES = LabelRules.from_card(card(classes=(0, 1, 2)))
BOOL_CLASSES = LabelRules.from_card(card(classes=(False, True)))
REGRESSOR = LabelRules.from_card(card("regression", None))


def problems_of(row, rules=CHURN, *, text: bool = False) -> list[tuple[str | None, str]]:
    parsed = parse_row(row, 7, rules, NOW, text=text)
    assert isinstance(parsed, list), parsed
    assert all(p.row == 7 for p in parsed)
    return [(p.field, p.reason) for p in parsed]


def test_a_valid_row_becomes_a_label_with_the_cards_class_and_an_aware_time():
    # GIVEN a row with the project's id key, a class and a time with an offset
    row = {"inference_id": "order-1", "label": "yes", "time": "2026-11-30T09:00:00+01:00"}
    # WHEN it is parsed
    label = parse_row(row, 0, CHURN, NOW)
    # THEN it is a Label of that id, class and moment
    assert label == Label("order-1", "yes", datetime(2026, 11, 30, 8, 0, tzinfo=UTC))


def test_the_issues_id_key_is_accepted_and_one_of_the_two_is_required():
    assert parse_row({"id": "a-1", "label": "no"}, 0, CHURN, NOW) == Label("a-1", "no", None)
    assert problems_of({"label": "no"}) == [("inference_id", "missing_id")]
    assert problems_of({"id": "a", "inference_id": "b", "label": "no"}) == [("id", "ambiguous_id")]


@pytest.mark.parametrize("bad", ["", "has space", "x" * 65, "naïve", 17, None])
def test_a_bad_id_is_rejected_naming_the_field(bad):
    expected = [("inference_id", "missing_id")] if bad in ("", None) else [("inference_id", "bad_id")]
    assert problems_of({"inference_id": bad, "label": "no"}) == expected


def test_a_label_that_is_not_a_class_is_rejected_naming_the_classes():
    # GIVEN a churn classifier (classes "no", "yes")
    parsed = parse_row({"id": "a", "label": "maybe"}, 3, CHURN, NOW)
    # THEN "maybe" is refused as an unknown class, the message listing the classes
    (problem,) = parsed
    assert (problem.row, problem.field, problem.reason) == (3, "label", "unknown_class")
    assert "'no', 'yes'" in problem.message


@pytest.mark.parametrize("bad", [[1], {"c": 1}, 1.5])
def test_a_label_of_the_wrong_type_is_rejected(bad):
    expected = "unknown_class" if isinstance(bad, float) else "bad_label"
    assert problems_of({"id": "a", "label": bad}) == [("label", expected)]


def test_an_integer_class_matches_its_value_and_its_text_and_is_stored_as_the_cards_value():
    # GIVEN classes 0, 1, 2 (scikit-learn's classes_ of an int target)
    for sent in (1, 1.0, "1"):
        # WHEN the label is sent as a number or as the class's text (as in probabilities and proba_<class>)
        label = parse_row({"id": "a", "label": sent}, 0, INT_CLASSES, NOW)
        # THEN it is the class 1, stored as the int
        assert label.label == 1 and type(label.label) is int, sent
    # AND text that is not the class's text, or a bool, is not the class
    assert problems_of({"id": "a", "label": "1.0"}, INT_CLASSES) == [("label", "unknown_class")]
    assert problems_of({"id": "a", "label": True}, INT_CLASSES) == [("label", "unknown_class")]


def test_a_bool_class_matches_only_a_bool_or_its_text():
    assert parse_row({"id": "a", "label": True}, 0, BOOL_CLASSES, NOW).label is True
    assert parse_row({"id": "a", "label": "False"}, 0, BOOL_CLASSES, NOW).label is False
    assert problems_of({"id": "a", "label": 1}, BOOL_CLASSES) == [("label", "unknown_class")]


def test_a_csv_cell_is_matched_by_the_class_text():
    assert parse_row({"id": "a", "label": "2"}, 0, INT_CLASSES, NOW, text=True).label == 2
    assert problems_of({"id": "a", "label": ""}, text=True) == [("label", "missing_label")]


def test_a_regression_label_is_a_finite_number_and_never_a_bool_or_json_text():
    assert parse_row({"id": "a", "label": 3}, 0, REGRESSOR, NOW).label == 3
    assert parse_row({"id": "a", "label": "2.5"}, 0, REGRESSOR, NOW, text=True).label == 2.5
    for bad in (True, "2.5", None, float("nan")):
        expected = "missing_label" if bad is None else "bad_label"
        assert problems_of({"id": "a", "label": bad}, REGRESSOR) == [("label", expected)], bad
    for bad in ("nan", "inf", "ten"):
        assert problems_of({"id": "a", "label": bad}, REGRESSOR, text=True) == [("label", "bad_label")], bad


@pytest.mark.parametrize(
    ("sent", "reason"),
    [
        ("2026-11-30T08:00:00", "bad_time"),  # no timezone
        ("30/11/2026", "bad_time"),
        (1764489600, "bad_time"),  # epoch seconds: not ISO 8601
        ((NOW + MAX_CLOCK_SKEW + timedelta(seconds=1)).isoformat(), "future_time"),
    ],
)
def test_a_bad_time_is_rejected(sent, reason):
    assert problems_of({"id": "a", "label": "no", "time": sent}) == [("time", reason)]


def test_a_time_within_the_clock_skew_and_an_empty_time_are_accepted():
    soon = (NOW + MAX_CLOCK_SKEW).isoformat()
    assert parse_row({"id": "a", "label": "no", "time": soon}, 0, CHURN, NOW).time == NOW + MAX_CLOCK_SKEW
    assert parse_row({"id": "a", "label": "no", "time": None}, 0, CHURN, NOW).time is None


def test_every_problem_of_a_row_is_reported():
    assert problems_of({"id": "a b", "label": "maybe", "time": "yesterday"}) == [
        ("id", "bad_id"),
        ("label", "unknown_class"),
        ("time", "bad_time"),
    ]


def test_a_request_is_all_or_nothing_and_a_duplicate_names_both_rows():
    # GIVEN a request whose rows 0 and 2 share an id and whose row 1 has an unknown class
    rows = [{"id": "a", "label": "no"}, {"id": "b", "label": "perhaps"}, {"id": "a", "label": "yes"}]
    # WHEN it is parsed
    with pytest.raises(InvalidInput) as raised:
        parse_request(rows, CHURN, NOW)
    # THEN nothing is accepted and both problems are listed, the duplicate naming the row it repeats
    details = [e.to_dict() for e in raised.value.errors]
    assert [(d["row"], d["field"]) for d in details] == [(1, "label"), (2, "inference_id")]
    assert "row 0" in details[1]["message"]
    assert raised.value.message.startswith("invalid label: row 1, field 'label'")


def test_a_request_lists_at_most_the_capped_number_of_problems():
    rows = [{"id": f"r{i}", "label": "nope"} for i in range(MAX_PROBLEMS * 3)]
    with pytest.raises(InvalidInput) as raised:
        parse_request(rows, CHURN, NOW)
    assert len(raised.value.errors) == MAX_PROBLEMS


def test_an_empty_request_and_a_row_that_is_not_an_object_are_refused():
    with pytest.raises(InvalidInput):
        parse_request([], CHURN, NOW)
    with pytest.raises(InvalidInput) as raised:
        parse_request(["a", {"id": "b", "label": "no"}], CHURN, NOW)
    assert raised.value.errors[0].row == 0


def test_a_csv_header_needs_one_id_column_and_a_label_column():
    assert csv_header(b"inference_id,label,time") == ["inference_id", "label", "time"]
    assert csv_header(b"\xef\xbb\xbfid, label") == ["id", "label"]  # a BOM and spaces are tolerated
    for bad in (b"label,time", b"id,inference_id,label", b"id,outcome"):
        with pytest.raises(ValueError):
            csv_header(bad)


def test_file_rows_are_accepted_row_by_row_and_duplicates_span_batches():
    # GIVEN two batches of a CSV file (lines 2-4 and 5-6) sharing one Duplicates
    header = ["inference_id", "label", "time"]
    seen = Duplicates()
    first = check_file_rows(
        [b"a,yes,", b"b,maybe,", b"c,no,2026-11-30T08:00:00Z"],
        [2, 3, 4],
        {},
        header=header,
        rules=CHURN,
        now=NOW,
        seen=seen,
    )
    second = check_file_rows([b"a,no,", b"d,yes"], [5, 6], {}, header=header, rules=CHURN, now=NOW, seen=seen)
    # THEN good rows are labels, bad ones are rejected with their line and reason
    assert [lab.inference_id for lab in first.labels] == ["a", "c"]
    assert [(line, [p.reason for p in ps]) for line, _, ps in first.rejected] == [(3, ["unknown_class"])]
    # AND an id of an earlier batch is a duplicate naming its first line; a short row is unreadable
    assert [(line, [(p.reason, p.row) for p in ps]) for line, _, ps in second.rejected] == [
        (5, [("duplicate_id", 5)]),
        (6, [("not_a_row", 6)]),
    ]
    assert "row 2" in second.rejected[0][2][0].message


def test_json_lines_rows_keep_their_json_types():
    rows = check_file_rows(
        [b'{"id": "a", "label": 1}', b'{"id": "b", "label": "2"}', b"not json", b"[1]", b'{"id": "c", "label'],
        [1, 2, 3, 4, 5],
        {4: "the row is longer than 20 bytes (the limit); it was not read"},
        header=None,
        rules=INT_CLASSES,
        now=NOW,
        seen=Duplicates(),
    )
    assert [(lab.inference_id, lab.label) for lab in rows.labels] == [("a", 1), ("b", 2)]
    assert [(line, ps[0].reason) for line, _, ps in rows.rejected] == [
        (3, "not_a_row"),
        (4, "not_a_row"),
        (5, "not_a_row"),
    ]
    assert "longer than 20 bytes" in rows.rejected[2][2][0].message


def test_a_classifier_card_without_classes_has_no_rules():
    with pytest.raises(ValueError):
        LabelRules.from_card(card(classes=None))


def test_a_problem_is_the_apis_error_detail():
    assert Problem(4, "label", "bad_label", "wrong").to_field_error().to_dict() == {
        "row": 4,
        "field": "label",
        "message": "wrong",
    }


class FakeRegistry:
    """Aliases and cards in memory, counting reads."""

    def __init__(self) -> None:
        self.aliases = {("churn", "production"): "1"}
        self.reads = 0

    def resolve(self, name, *, alias=None, version=None):
        self.reads += 1
        if version is not None:
            return version
        if (name, alias) not in self.aliases:
            raise ModelNotFound(f"unknown model {name!r}")
        return self.aliases[(name, alias)]

    def get_card(self, name, version):
        self.reads += 1
        return SimpleNamespace(name=name, version=version, task="classification", classes=("no", "yes"))


class FakeVerifier:
    def __init__(self, refuse: bool = False) -> None:
        self.refuse, self.calls = refuse, 0

    def verify(self, card) -> None:
        self.calls += 1
        if self.refuse:
            raise ModelRefused("bad signature", reason="bad_signature")


def test_label_rules_come_from_the_aliased_card_cached_for_the_alias_ttl():
    # GIVEN a source with a 60 s alias TTL on a fake clock
    clock = [0.0]
    registry, verifier = FakeRegistry(), FakeVerifier()
    source = LabelRulesSource(registry, verifier, alias_ttl_seconds=60, clock=lambda: clock[0])
    # WHEN production is asked for twice within the TTL
    first = source.get("churn", alias="production")
    reads = registry.reads
    assert source.get("churn", alias="production") is first and registry.reads == reads
    assert (first.version, first.classes, verifier.calls) == ("1", ("no", "yes"), 1)
    # THEN after a promotion and the TTL, the new version's card is read (and verified)
    registry.aliases[("churn", "production")] = "2"
    clock[0] = 61
    assert source.get("churn", alias="production").version == "2" and verifier.calls == 2
    # AND an unknown model is ModelNotFound (the route's 404)
    with pytest.raises(ModelNotFound):
        source.get("ghost", alias="production")


def test_a_refused_card_is_remembered_for_the_alias_ttl():
    clock = [0.0]
    registry, verifier = FakeRegistry(), FakeVerifier(refuse=True)
    source = LabelRulesSource(registry, verifier, alias_ttl_seconds=60, clock=lambda: clock[0])
    for _ in range(3):
        with pytest.raises(ModelRefused):
            source.get("churn", version="1")
    assert verifier.calls == 1
    clock[0] = 61
    with pytest.raises(ModelRefused):
        source.get("churn", version="1")
    assert verifier.calls == 2


def test_a_request_row_with_an_unknown_field_is_refused_naming_it_while_a_file_row_ignores_it():
    # GIVEN a row whose time was misspelt, and the same row from a file
    row = {"id": "a-1", "label": "no", "tme": "2026-11-30T08:00:00Z"}
    # WHEN a request sends it
    with pytest.raises(InvalidInput) as refused:
        parse_request([row], CHURN, NOW)
    # THEN it is refused naming the field (its label would otherwise be stored undated)
    (error,) = refused.value.errors
    assert error.field == "tme" and error.row == 0 and "unknown field 'tme'" in error.message
    # AND a file's extra column is ignored (exports often carry more columns)
    assert parse_row(row, 1, CHURN, NOW, text=True) == Label("a-1", "no", None)


def test_a_refused_json_value_is_quoted_as_json_in_the_message():
    # GIVEN a JSON true sent as the label of a model whose classes are "no" and "yes"
    (problem,) = parse_row({"id": "a", "label": True}, 0, CHURN, NOW)
    # THEN the message shows it as the sender wrote it (true), not as Python's True
    assert problem.message.startswith("true ") and "True" not in problem.message
