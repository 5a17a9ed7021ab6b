"""Label rows checked against a model's card: what `POST /models/{name}/feedback` and the files under feedback/ accept.

A label row (a JSON object in a request or a JSON Lines file, a CSV row under a header) has:
- the id of the prediction it judges: `inference_id` (the project's name, returned by every prediction) or `id` (the
  name in issue 13's request shape); exactly one of the two. Rules: sklambda.serving.ids (1-64 printable ASCII
  characters without spaces). Two rows of one request or file may not share an id (the rejection names both rows).
- `label`, the true outcome. For a classifier: one of the card's `classes` (scikit-learn's `classes_`, stored as
  JSON values). A JSON value of the class's type matches it (1 or 1.0 for the class 1; a bool is never a number);
  so does the class's text, `str(class)`, as the predict API names classes in `probabilities` and batch in its
  `proba_<class>` columns: "1" for the class 1, "True" for True. The label is stored as the card's value (1, not
  "1"), so one class has one stored form whatever the sender's. A CSV cell is always text, so CSV labels are
  matched by text. For a regressor: a finite number (JSON int or float, not a bool; in CSV a cell Python's float()
  reads, not nan or inf).
- optionally `time`, when the outcome was observed: ISO 8601 with a timezone (datetime.fromisoformat: "2026-11-30T
  08:00:00Z", "...+01:00"); not later than now plus MAX_CLOCK_SKEW (a label cannot be observed in the future; the
  allowance covers senders' clocks). Empty (null, "" or an absent column) means unknown: the store then orders by
  arrival.
Other keys and columns are ignored. Errors name the row (counted from 0 in a request's `labels`, the 1-based line in
a file, as batch's errors files do) and the field, with a stable `reason` code per problem (REASONS).
"""

from __future__ import annotations

import csv
import json
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sklambda.errors import FieldError, InvalidInput, ModelRefused, printable
from sklambda.monitoring.ground_truth.store import Label
from sklambda.monitoring.windows import MAX_CLOCK_SKEW
from sklambda.registry.card import ModelCard
from sklambda.registry.signing import CardVerifier
from sklambda.registry.store import Registry
from sklambda.serving.ids import id_problem

ID_FIELDS = ("inference_id", "id")
LABEL, TIME = "label", "time"
# The fields of a label row (a request's rows may have no other).
ROW_FIELDS = (*ID_FIELDS, LABEL, TIME)
# Problems listed in one 422 answer (a bad request can have thousands; the first ones say enough).
MAX_PROBLEMS = 20

# reason code -> what it means (the summary of a file counts rejected rows by these).
REASONS = {
    "not_a_row": "the row is not a JSON object or a readable CSV row",
    "missing_id": "neither inference_id nor id is given",
    "ambiguous_id": "both inference_id and id are given",
    "bad_id": "the id is not a valid inference id",
    "duplicate_id": "an earlier row has the same id",
    "missing_label": "label is not given",
    "bad_label": "the label has the wrong type (not a class name or value, not a finite number)",
    "unknown_class": "the label is not one of the model's classes",
    "bad_time": "time is not ISO 8601 with a timezone",
    "future_time": "time is in the future",
    "unknown_field": "a field other than inference_id, id, label and time (requests only)",
}


@dataclass(frozen=True)
class Problem:
    """One problem with one row: `row` (request index from 0, or file line from 1), `field`, a `reason` of REASONS
    and a readable `message`."""

    row: int
    field: str | None
    reason: str
    message: str

    def to_field_error(self) -> FieldError:
        """As the API's error detail ({"row", "field", "message"})."""
        return FieldError(self.message, row=self.row, field=self.field)


@dataclass(frozen=True)
class LabelRules:
    """What a label must be for one model version, from its card: `task` ("classification" or "regression") and, for
    classifiers, `classes` (the card's values, in order)."""

    model: str
    version: str
    task: str
    classes: tuple = ()
    _by_text: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_card(cls, card: ModelCard) -> LabelRules:
        """The rules of `card`'s version. Raises ValueError for a classifier card without classes (not publishable)."""
        if card.task == "classification" and not card.classes:
            raise ValueError(f"model {card.name!r} version {card.version!r} is a classifier without classes")
        classes = tuple(card.classes or ()) if card.task == "classification" else ()
        return cls(card.name, card.version, card.task, classes, {str(c): c for c in classes})

    def label(self, value: Any, *, text: bool) -> Any:
        """The label to store for `value` (the card's class value for a classifier, a float or int for a regressor).

        `text`: the value is a CSV cell (always a str). Raises ValueError(reason, message) with a reason of REASONS.
        """
        if self.task == "classification":
            return self._class(value, text=text)
        return _number(value, text=text)

    def _class(self, value: Any, *, text: bool) -> Any:
        if isinstance(value, str):
            if value in self._by_text:
                return self._by_text[value]
        elif not text and isinstance(value, (bool, int, float)):
            for c in self.classes:
                # a bool matches only a bool class, a number only a numeric class (True == 1 in Python)
                if isinstance(c, bool) == isinstance(value, bool) and isinstance(c, (int, float)) and c == value:
                    return c
        else:
            raise ValueError("bad_label", f"a label is a class name or value, got {type(value).__name__}")
        shown = ", ".join(repr(c) for c in self.classes[:20])
        more = ", ..." if len(self.classes) > 20 else ""
        raise ValueError("unknown_class", f"{_shown(value)} is not a class of this model: one of {shown}{more}")


def _shown(value: Any) -> str:
    """A sent value as its sender wrote it: JSON for true/false/null and numbers (not Python's True/None), quoted text
    for strings; at most 80 characters, non-printable characters escaped."""
    try:
        text = repr(value) if isinstance(value, str) else json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        text = repr(value)
    return printable(text if len(text) <= 80 else text[:77] + "...")


def _number(value: Any, *, text: bool) -> float | int:
    if text and isinstance(value, str):
        try:
            number: Any = float(value)
        except ValueError:
            raise ValueError("bad_label", f"a regression label is a number, got {_shown(value)}") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = value
    else:
        raise ValueError("bad_label", f"a regression label is a number, got {type(value).__name__}")
    if not math.isfinite(number):
        raise ValueError("bad_label", f"a regression label is a finite number, got {_shown(value)}")
    return number


def parse_time(value: Any, now: datetime) -> datetime | None:
    """`value` as an aware datetime, None when empty (None or ""). Raises ValueError(reason, message) when it is not
    ISO 8601 with a timezone (bad_time) or is later than `now` + MAX_CLOCK_SKEW (future_time)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError("bad_time", f"time is an ISO 8601 string with a timezone, got {type(value).__name__}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("bad_time", f"time {_shown(value)} is not ISO 8601 (e.g. 2026-11-30T08:00:00Z)") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("bad_time", f"time {_shown(value)} has no timezone: add Z or an offset such as +01:00")
    if moment > now + MAX_CLOCK_SKEW:
        raise ValueError("future_time", f"time {_shown(value)} is in the future (now is {now.isoformat()})")
    return moment


def parse_row(
    row: Any,
    where: int,
    rules: LabelRules,
    now: datetime,
    *,
    text: bool = False,
    seen: Duplicates | None = None,
    strict: bool = False,
) -> Label | list[Problem]:
    """One row (a mapping of field -> value) as a Label, or its problems (every field checked). `where` numbers the
    row in the problems; `text`: the values are CSV cells (see the module docstring); `seen`: the ids of the earlier
    rows of the same request or file (a valid id is remembered there even when another field of its row is bad, so
    that a later row with it is a duplicate_id naming this one); `strict`: any other field is an unknown_field problem
    (requests; a file's other columns are ignored, as exports often carry more)."""
    if not isinstance(row, Mapping):
        return [Problem(where, None, "not_a_row", f"a label row is a JSON object, got {type(row).__name__}")]
    problems: list[Problem] = []
    if strict:  # a request's misspelt `tme` would otherwise be dropped without a word, its label stored undated
        problems += [
            Problem(where, str(name), "unknown_field", f"unknown field {name!r}: a row has {', '.join(ROW_FIELDS)}")
            for name in row
            if name not in ROW_FIELDS
        ]
    given = [name for name in ID_FIELDS if row.get(name) not in (None, "")]
    inference_id = None
    if not given:
        problems.append(Problem(where, "inference_id", "missing_id", "give the prediction's inference_id (or id)"))
    elif len(given) > 1:
        problems.append(Problem(where, "id", "ambiguous_id", "give inference_id or id, not both"))
    else:
        (name,) = given
        reason = id_problem(row[name])
        if reason is None:
            inference_id = row[name]
            duplicate = seen.check(inference_id, where) if seen is not None else None
            if duplicate is not None:
                problems.append(duplicate)
        else:
            problems.append(Problem(where, name, "bad_id", reason))
    label = None
    if row.get(LABEL) is None or (text and row.get(LABEL) == ""):
        problems.append(Problem(where, LABEL, "missing_label", "label is required"))
    else:
        try:
            label = rules.label(row[LABEL], text=text)
        except ValueError as e:
            problems.append(Problem(where, LABEL, *e.args))
    observed = None
    try:
        observed = parse_time(row.get(TIME), now)
    except ValueError as e:
        problems.append(Problem(where, TIME, *e.args))
    if problems:
        return problems
    return Label(inference_id, label, observed)


class Duplicates:
    """The ids seen so far in one request or file, and the row each was first seen in (one dict entry per id: a file
    of 2 million labels holds about 200 MB here, within the feedback function's memory)."""

    def __init__(self) -> None:
        self._first: dict[str, int] = {}

    def check(self, inference_id: str, where: int) -> Problem | None:
        """None for an id not seen before (now remembered), else the duplicate_id problem naming both rows."""
        first = self._first.setdefault(inference_id, where)
        if first == where:
            return None
        return Problem(
            where,
            "inference_id",
            "duplicate_id",
            f"inference id {inference_id!r} is also the id of row {first}: one label per prediction",
        )


def parse_request(rows: Sequence[Any], rules: LabelRules, now: datetime) -> list[Label]:
    """The labels of one request's `labels` list, all or nothing: every row valid and no id repeated.

    Raises InvalidInput (HTTP 422) listing the problems (at most MAX_PROBLEMS, row counted from 0, field named) when
    any row is invalid or repeats an earlier row's id (the message names both rows). An empty list is a problem too.
    """
    if not rows:
        raise InvalidInput("labels is empty: send at least one label", errors=[FieldError("empty", field="labels")])
    labels: list[Label] = []
    problems: list[Problem] = []
    seen = Duplicates()
    for i, row in enumerate(rows):
        parsed = parse_row(row, i, rules, now, seen=seen, strict=True)
        if isinstance(parsed, Label):
            labels.append(parsed)
            continue
        problems.extend(parsed)
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        problems = problems[:MAX_PROBLEMS]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        first = problems[0]
        raise InvalidInput(
            f"invalid label: row {first.row}, field '{first.field}': {first.message}{more}",
            errors=[p.to_field_error() for p in problems],
        )
    return labels


# --- files ---------------------------------------------------------------------------------------------------------
@dataclass
class FileRows:
    """One batch of a file's rows: the labels accepted and the rows rejected (line, raw bytes, problems)."""

    labels: list[Label] = field(default_factory=list)
    rejected: list[tuple[int, bytes, list[Problem]]] = field(default_factory=list)


def csv_header(record: bytes) -> list[str]:
    """The column names of a CSV header row (trimmed). Raises ValueError naming what is wrong when the header has
    neither (or both) of inference_id and id, or no label column."""
    names = [n.strip() for n in next(csv.reader([record.decode("utf-8-sig", "replace")]), [])]
    ids = [n for n in ID_FIELDS if n in names]
    if len(ids) != 1:
        raise ValueError(f"the header needs one of the columns inference_id or id, got {names[:20]}")
    if LABEL not in names:
        raise ValueError(f"the header needs a label column, got {names[:20]}")
    return names


def file_row(record: bytes, header: list[str] | None) -> Any:
    """One file record as a row mapping (CSV: cells by header name, as text; JSON Lines: the parsed value). Raises
    ValueError with a message when the record cannot be read (not UTF-8, not JSON, wrong number of CSV cells)."""
    try:
        text = record.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("the row is not UTF-8 text") from None
    if header is None:
        try:
            return json.loads(text)
        except ValueError as e:
            raise ValueError(f"the row is not JSON ({e})") from None
    # Without a quote a CSV row is its cells joined by commas (RFC 4180): split it without the csv module's reader.
    cells = text.split(",") if '"' not in text else next(csv.reader([text]), [])
    if len(cells) != len(header):
        raise ValueError(f"the row has {len(cells)} cells, the header {len(header)}")
    return dict(zip(header, map(str.strip, cells), strict=True))


def check_file_rows(
    records: Sequence[bytes],
    lines: Sequence[int],
    reader_rejected: Mapping[int, str],
    *,
    header: list[str] | None,
    rules: LabelRules,
    now: datetime,
    seen: Duplicates,
) -> FileRows:
    """Validate one batch of a file's records (from sklambda.batch.reader): each good row becomes a Label, each bad
    one is rejected with its problems (rows are independent: a file is accepted row by row, like batch scoring).
    `reader_rejected`: index -> why the reader already refused the record (too long). `seen` carries the ids across
    the batches of one file."""
    out = FileRows()
    for i, (record, line) in enumerate(zip(records, lines, strict=True)):
        if i in reader_rejected:
            out.rejected.append((line, record, [Problem(line, None, "not_a_row", reader_rejected[i])]))
            continue
        try:
            row = file_row(record, header)
        except ValueError as e:
            out.rejected.append((line, record, [Problem(line, None, "not_a_row", str(e))]))
            continue
        parsed = parse_row(row, line, rules, now, text=header is not None, seen=seen)
        if isinstance(parsed, Label):
            out.labels.append(parsed)
        else:
            out.rejected.append((line, record, parsed))
    return out


# --- the card a label is checked against ---------------------------------------------------------------------------
class LabelRulesSource:
    """The LabelRules of a model by alias or version, read from the registry and verified as the predict route does
    (the card's signature checked with the trusted key), cached per container: alias answers for `alias_ttl_seconds`,
    versions (immutable) for the container's life (at most `max_versions`, the oldest dropped), a refused card for
    `alias_ttl_seconds` too (as ModelServer does: no registry read and KMS call per request for a tampered card).

    Raises ModelNotFound (HTTP 404) for an unknown model, alias or version, ModelRefused (HTTP 503) for a card that
    fails verification; S3 and KMS errors propagate as botocore's ClientError.
    """

    def __init__(
        self,
        registry: Registry,
        verifier: CardVerifier,
        *,
        alias_ttl_seconds: float = 60.0,
        max_versions: int = 64,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry, self.verifier = registry, verifier
        self.alias_ttl, self.max_versions, self._clock = alias_ttl_seconds, max_versions, clock
        self._aliases: dict[tuple[str, str], tuple[str, float]] = {}
        self._rules: dict[tuple[str, str], LabelRules] = {}
        self._refused: dict[tuple[str, str], tuple[ModelRefused, float]] = {}
        self._lock = threading.Lock()

    def get(self, name: str, *, alias: str | None = None, version: str | None = None) -> LabelRules:
        """The rules of `name` at `version`, else at `alias` (one of the two is required)."""
        if version is None:
            if alias is None:
                raise ValueError("an alias or a version is needed")
            version = self._resolve(name, alias)
        else:
            version = self.registry.resolve(name, version=version)
        key = (name, version)
        with self._lock:
            if key in self._rules:
                return self._rules[key]
            refused = self._refused.get(key)
            if refused and refused[1] > self._clock():
                raise refused[0]
        try:
            card = self.registry.get_card(name, version)
            self.verifier.verify(card)
        except ModelRefused as e:
            with self._lock:
                self._refused[key] = (e, self._clock() + self.alias_ttl)
            raise
        rules = LabelRules.from_card(card)
        with self._lock:
            self._rules[key] = rules
            while len(self._rules) > self.max_versions:
                self._rules.pop(next(iter(self._rules)))
        return rules

    def _resolve(self, name: str, alias: str) -> str:
        now = self._clock()
        with self._lock:
            hit = self._aliases.get((name, alias))
            if hit and hit[1] > now:
                return hit[0]
        version = self.registry.resolve(name, alias=alias)
        with self._lock:
            self._aliases[(name, alias)] = (version, now + self.alias_ttl)
        return version
