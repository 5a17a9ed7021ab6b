"""Windows of captured predictions: read the capture lines of one model version between two instants from S3, with
malformed lines quarantined (counted by reason, never raised).

Layout in the data bucket (the capture layout is written by Firehose, see sklambda.monitoring.capture):
    capture/model=<name>/dt=<yyyy-mm-dd>/...            JSON lines, one CaptureRecord each
`read_capture` reads the records of the version under check (the drift check: the baseline they are compared with
belongs to that version); `read_predictions` the records of every version that a model-quality check joins labels with
(by `inference_id`), with their ids and times. Both skip error records (sklambda.monitoring.capture.ErrorRecord: a
failed request, no row in it), on their bytes where the line has CaptureRecord's own form, else once decoded.
"""

from __future__ import annotations

import gzip
import json
import math
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence, Set
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from sklambda.config import CAPTURE_PREFIX
from sklambda.monitoring.capture import is_error
from sklambda.registry.card import ModelCard
from sklambda.registry.schema import BOOLEAN, CATEGORY, FLOAT64_MAX, INTEGER, NUMBER

READ_THREADS = 4
# How far past now a time may be: clocks drift (NTP keeps servers within well under a second; phones and batch
# exports less so). Five minutes, the tolerance AWS SigV4 allows a request's timestamp. A label's observed time and an
# on-demand window's end are both held to it.
MAX_CLOCK_SKEW = timedelta(minutes=5)


def not_in_future(moment: datetime, now: datetime, what: str = "end") -> datetime:
    """`moment` as an aware UTC datetime (a naive one is read as UTC), checked against `now` + MAX_CLOCK_SKEW.

    Raises ValueError naming `what` when it is later: a window that has not happened yet would be checked as empty and
    then recorded as the model's newest window in its state, history and page.
    """
    aware = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    if aware > now + MAX_CLOCK_SKEW:
        raise ValueError(f"{what} {aware.isoformat()} is in the future (now is {now.astimezone(UTC).isoformat()})")
    return aware


@dataclass(frozen=True)
class Window:
    """A time window [start, end) of captured predictions; timezone-aware datetimes (the drift check uses UTC)."""

    start: datetime
    end: datetime

    @classmethod
    def ending(cls, end: datetime, hours: float) -> Window:
        """The window of `hours` hours (a float, may be fractional) that ends at `end`."""
        return cls(end - timedelta(hours=hours), end)

    def days(self) -> Iterator[date]:
        """Every calendar day the window touches, start's to end's inclusive, in the window's timezone (UTC for the
        drift check, as Firehose's dt= partitions are).
        """
        day = self.start.date()
        while day <= self.end.date():
            yield day
            day += timedelta(days=1)


@dataclass(frozen=True)
class CapturedWindow:
    """The captured rows of one model version in one window, ready for the drift check.

    features: [rows, schema features], columns in schema order, dtypes as the model's input (nulls as NaN/None).
    predictions: [rows] labels or values. probabilities: [rows, classes] in the card's class order, or None (regressors,
        or some records without probabilities).
    rows: rows compared (after sampling and quarantine). objects: S3 objects read.
    rows_in_window: matching lines in the whole window (estimated when sampled, see `estimated`).
    """

    features: pd.DataFrame
    predictions: list
    probabilities: pd.DataFrame | None
    rows: int
    objects: int
    rows_in_window: int = 0
    estimated: bool = False  # rows_in_window extrapolated from a sample of the window's lines
    # Lines of the window that could not be used (not JSON, not UTF-8, values of the wrong type, text UTF-8 cannot
    # encode...): left out of the comparison and counted, by reason (field names only, never values).
    quarantined: int = 0
    quarantine_reasons: Mapping[str, int] = field(default_factory=dict)


def capture_prefix(model: str, day: date) -> str:
    """The S3 prefix of one model's captures of one UTC day: `capture/model=<model>/dt=<yyyy-mm-dd>/` (Firehose's
    partitioning).
    """
    return f"{CAPTURE_PREFIX}model={model}/dt={day.isoformat()}/"


def _objects(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            yield obj["Key"]


# A line of a model's capture partition that is not a JSON object: quarantined (counted), never compared.
UNREADABLE = object()

# How CaptureRecord.to_json_line starts every line: the stamp and then model and version can be read without
# decoding the JSON. Lines in any other form are decoded and filtered the slow way.
_LINE_PREFIX = b'{"capture":"sklambda/v1","timestamp":"'
_STAMP_LEN = len("2026-01-01T00:00:00.000+00:00")


def read_capture(
    s3: Any, bucket: str, card: ModelCard, window: Window, *, max_rows: int | None = None, seed: int = 0
) -> CapturedWindow:
    """The captured rows of `card`'s model and version whose timestamp falls in [start, end).

    s3: a boto3 S3 client; bucket: the data bucket. Reads every object under the window's days' prefixes (gzip when the
        key ends in .gz), four at a time. With `max_rows`, a window holding more lines is compared on a uniform random
        sample (seeded by `seed`) of at most that many matching rows: lines are visited in a random order until enough
        match, so only those are checked and decoded, and `rows_in_window` is then estimated from the share of visited
        lines that matched.

    Returns a CapturedWindow. Lines of other versions or outside the window are skipped; lines that are not JSON objects
    or whose values do not fit the card's schema are quarantined and counted by reason, never raised. S3 errors (no
    permission, throttling) propagate as botocore's ClientError.
    """
    names = list(card.input_schema.names)
    keys, lines = _read_lines(s3, bucket, card.name, window)
    match = _Matcher(card, window)
    n = len(lines)
    sampled = max_rows is not None and n > max_rows
    order = np.random.default_rng(seed).permutation(n).tolist() if sampled else range(n)
    undecoded: list[bytes] = []  # matching lines in CaptureRecord's own form, decoded together at the end
    decoded: list[dict] = []  # matching lines in any other form, decoded to be checked
    reasons: Counter[str] = Counter()
    visited = 0
    for i in order:
        visited += 1
        found = match(lines[i])
        if found is None:
            continue
        if found is UNREADABLE:  # in this model's partition but not a JSON object: whose it is cannot be told
            reasons["line is not a JSON object (torn, truncated or not UTF-8)"] += 1
            continue
        (undecoded if isinstance(found, bytes) else decoded).append(found)
        if sampled and len(undecoded) + len(decoded) >= max_rows:  # type: ignore[operator]
            break
    fast, torn = _decode_all(undecoded)
    if torn:
        reasons["line is not a JSON object (torn, truncated or not UTF-8)"] += torn
    # Error records in another form than CaptureRecord's own are only told apart once decoded.
    errors = sum(1 for r in fast + decoded if type(r) is dict and is_error(r))
    matched = len(undecoded) + len(decoded) - errors
    in_window = matched if visited == n else round(matched * n / visited)
    usable = _RecordCheck(card)
    records = []
    for record in fast + decoded:
        if type(record) is dict and is_error(record):
            continue
        problem = usable(record)
        if problem is None:
            records.append(record)
        else:
            reasons[problem] += 1
    features = [r.get("features") or {} for r in records]
    predictions = [r.get("prediction") for r in records]
    probabilities = [r["probabilities"] for r in records if r.get("probabilities") is not None]
    raw = pd.DataFrame.from_records(features, columns=names) if features else pd.DataFrame(columns=names)
    frame = pd.DataFrame({n: _column(raw[n], _dtype(card, n)) for n in names})
    proba = None
    if probabilities and len(probabilities) == len(predictions):
        proba = pd.DataFrame.from_records(probabilities, columns=[str(c) for c in card.classes or ()])
    return CapturedWindow(
        frame,
        predictions,
        proba,
        len(predictions),
        len(keys),
        rows_in_window=in_window,
        estimated=visited < n,
        quarantined=sum(reasons.values()),
        quarantine_reasons=dict(reasons.most_common()),  # few: reasons name only the card's fields
    )


def _read_lines(s3: Any, bucket: str, model: str, window: Window) -> tuple[list[str], _Lines]:
    """The keys of every capture object of `model` on the window's days, and their lines."""
    keys = [key for day in window.days() for key in _objects(s3, bucket, capture_prefix(model, day))]

    def fetch(key: str) -> _Body:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return _Body(gzip.decompress(body) if key.endswith(".gz") else body)

    # S3 reads, zlib and numpy's newline search release the GIL: a few threads overlap the transfers and use a
    # second vCPU. Lines are addressed by offsets, not split into a million bytes objects.
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        return keys, _Lines(list(pool.map(fetch, keys)))


@dataclass(frozen=True)
class CapturedPredictions:
    """The captured predictions of one model (every version) that the model-quality check joins labels with.

    frame: one row per selected record: `inference_id`, `time` (pandas UTC timestamp of the prediction), `version`,
        `prediction`, `probability` (of `positive`, NaN without one), `probabilities` (the record's {class: p} or
        None), and one column per requested feature (as captured: pii values pseudonymized).
    objects: S3 objects read. lines: lines of the model's partitions in the period. unidentified: selected lines
        without an `inference_id` (captured before prediction ids existed): left out, since no label can join them.
    quarantined, quarantine_reasons: lines left out, counted by reason (as read_capture's).
    """

    frame: pd.DataFrame
    objects: int
    lines: int
    unidentified: int = 0
    quarantined: int = 0
    quarantine_reasons: Mapping[str, int] = field(default_factory=dict)


PREDICTION_COLUMNS = ("inference_id", "time", "version", "prediction", "probability", "probabilities")
_ID_MARK = b'"inference_id":"'


def read_predictions(
    s3: Any,
    bucket: str,
    model: str,
    period: Window,
    *,
    labeled: Set[str],
    served: tuple[str, Window] | None = None,
    positive: Any = None,
    features: Sequence[str] = (),
) -> CapturedPredictions:
    """The captured predictions of `model` in `period` ([start, end), every version) that a quality check needs:
    those whose `inference_id` is in `labeled`, and, with `served=(version, window)`, every prediction of that version
    served in that window (the rows performance is estimated on before their labels arrive).

    s3: a boto3 S3 client; bucket: the data bucket. positive: the class whose probability fills `probability`
    (binary classifiers; None leaves it NaN). features: feature values to keep per row (the card's segment features).

    Lines are read as read_capture reads them (the same objects, threads and byte-level selection); a line's id is
    found on its bytes, so only the selected lines are decoded. Lines that are not JSON objects are quarantined and
    counted, never raised. S3 errors propagate as botocore's ClientError.
    """
    keys, lines = _read_lines(s3, bucket, model, period)
    start, end = _stamp(period.start).encode(), _stamp(period.end).encode()
    identity = f'","model":{json.dumps(model)},"version":'.encode()
    version_b, window_b = None, (b"", b"")
    if served is not None:
        version_b = identity + f"{json.dumps(served[0])},".encode()
        window_b = (_stamp(served[1].start).encode(), _stamp(served[1].end).encode())
    wanted = {i.encode() for i in labeled}
    undecoded: list[bytes] = []
    decoded: list[dict] = []
    reasons: Counter[str] = Counter()
    select = _Selector(identity, (start, end), version_b, window_b)
    for body in lines.bodies:
        data = body.data
        served_lines, candidates, other_form = select(body)
        undecoded += [data[s:e] for s, e in served_lines]
        for s, e in candidates:  # in the period, not served in the window: kept when labeled
            mark = data.rfind(_ID_MARK, s, e)
            if mark < 0:
                continue
            raw_id = data[mark + len(_ID_MARK) : data.find(b'"', mark + len(_ID_MARK), e)]
            # An id with a JSON escape (a quote or backslash in it) is decoded and compared as text.
            if raw_id in wanted or b"\\" in raw_id:
                undecoded.append(data[s:e])
        for s, e in other_form:
            line = data[s:e]
            if not line.strip():
                continue
            record = _decode(line)  # a line in another form: decoded to be checked field by field
            if record is None:
                reasons["line is not a JSON object (torn, truncated or not UTF-8)"] += 1
            elif record.get("model") == model:
                decoded.append(record)
    fast, torn = _decode_all(undecoded)
    if torn:
        reasons["line is not a JSON object (torn, truncated or not UTF-8)"] += torn
    objects = [r for r in fast + decoded if type(r) is dict]
    if len(objects) < len(fast) + len(decoded):
        reasons["record is not a JSON object"] += len(fast) + len(decoded) - len(objects)
    records = [r for r in objects if not is_error(r)]  # a failed request: no prediction to join a label with
    # Column by column (vectorized where pandas can): a selected window is ~100,000 records.
    times = pd.to_datetime(
        pd.Series([r.get("timestamp") for r in records], dtype=object), utc=True, errors="coerce", format="ISO8601"
    )
    if bad := int(times.isna().sum()):
        reasons["timestamp is not an ISO 8601 time"] += bad
    ids = pd.Series([r.get("inference_id") for r in records], dtype=object)
    identified = ids.map(type).eq(str).to_numpy()
    versions = pd.Series([r.get("version") for r in records], dtype=object).astype(str)
    keep = ((times >= pd.Timestamp(period.start)) & (times < pd.Timestamp(period.end))).to_numpy(copy=True)
    in_window = np.zeros(len(records), dtype=bool)
    if served is not None:
        lo, hi = pd.Timestamp(served[1].start), pd.Timestamp(served[1].end)
        in_window = ((versions == str(served[0])) & (times >= lo) & (times < hi)).to_numpy() & keep
    unidentified = int((keep & ~identified).sum())
    keep = keep & (in_window | (identified & ids.isin(labeled).to_numpy()))
    chosen = [r for r, k in zip(records, keep.tolist(), strict=True) if k]
    probabilities = [p if type(p := r.get("probabilities")) is dict else None for r in chosen]
    positive_key = None if positive is None else str(positive)
    values = [r.get("features") if type(r.get("features")) is dict else {} for r in chosen]
    frame = pd.DataFrame(
        {
            "inference_id": ids[keep].where(identified[keep], None).to_numpy(dtype=object),
            "time": times[keep].reset_index(drop=True),
            "version": versions[keep].to_numpy(dtype=object),
            "prediction": pd.Series([r.get("prediction") for r in chosen], dtype=object),
            "probability": pd.to_numeric(
                pd.Series([p.get(positive_key) if p and positive_key else None for p in probabilities], dtype=object),
                errors="coerce",
            ).astype("float64"),
            "probabilities": pd.Series(probabilities, dtype=object),
            **{f: pd.Series([v.get(f) for v in values], dtype=object) for f in features},
        },
        columns=[*PREDICTION_COLUMNS, *features],
    )
    return CapturedPredictions(
        frame,
        objects=len(keys),
        lines=len(lines),
        unidentified=unidentified,
        quarantined=sum(reasons.values()),
        quarantine_reasons=dict(reasons.most_common()),
    )


class _Selector:
    """Which lines of one capture object read_predictions needs, found with numpy on the lines' fixed-place bytes.

    Lines in CaptureRecord.to_json_line's form start with the marker, the UTC stamp, the model and the version at
    fixed offsets, so one gather of each line's head tells, for every line at once: is it of this model, in the
    period, of the checked version and served in the window? Only the lines left (in the period, not served in the
    window) are looked at one by one, for their id.
    """

    def __init__(
        self, identity: bytes, period: tuple[bytes, bytes], version: bytes | None, window: tuple[bytes, bytes]
    ) -> None:
        self.at = len(_LINE_PREFIX) + _STAMP_LEN
        self.width = self.at + len(version if version is not None else identity)
        self.offsets = np.arange(self.width)
        self.prefix = np.frombuffer(_LINE_PREFIX, dtype=np.uint8)
        self.identity = np.frombuffer(identity, dtype=np.uint8)
        self.version = None if version is None else np.frombuffer(version, dtype=np.uint8)
        self.utc = np.frombuffer(b"+00:00", dtype=np.uint8)
        self.period = tuple(np.bytes_(p) for p in period)
        self.window = tuple(np.bytes_(w) for w in window)

    def __call__(self, body: _Body) -> tuple[list[tuple[int, int]], list[tuple[int, int]], list[tuple[int, int]]]:
        """(served in the window, other lines of the period, lines in another form) as (start, end) offsets."""
        starts, ends = body.starts, body.ends
        if not len(starts):
            return [], [], []
        data = np.frombuffer(body.data, dtype=np.uint8)
        # A line shorter than the head cannot be in the fast form (its gather, clamped to the data, is ignored).
        long_enough = ends - starts >= self.width
        heads = data[np.minimum(starts[:, None] + self.offsets, len(data) - 1)]
        at, stamp_at = self.at, len(_LINE_PREFIX)
        fast = (
            long_enough
            & (heads[:, :stamp_at] == self.prefix).all(axis=1)
            & (heads[:, at - len(self.utc) : at] == self.utc).all(axis=1)
            & (heads[:, at : at + len(self.identity)] == self.identity).all(axis=1)
        )
        stamps = np.ascontiguousarray(heads[:, stamp_at:at]).view(f"S{_STAMP_LEN}").ravel()
        in_period = fast & (stamps >= self.period[0]) & (stamps < self.period[1])
        served = np.zeros(len(starts), dtype=bool)
        if self.version is not None:
            served = (
                in_period
                & (heads[:, at : at + len(self.version)] == self.version).all(axis=1)
                & (stamps >= self.window[0])
                & (stamps < self.window[1])
            )
        return tuple(  # type: ignore[return-value]
            list(zip(starts[mask].tolist(), ends[mask].tolist(), strict=True))
            for mask in (served, in_period & ~served, ~fast)
        )


class _RecordCheck:
    """Why a decoded capture record cannot be compared (a message naming the field, never its value), or None.

    Records sklambda writes always pass: their rows were validated against the card before they were scored. A
    record that does not (written by an older version, edited, or corrupted) is quarantined, not compared: a string
    where a number belongs would otherwise count as a null, and text UTF-8 cannot encode would fail the reports.
    Inlined type checks for the common case (~2 µs a record); the slow helpers only name the problem.
    """

    def __init__(self, card: ModelCard) -> None:
        self.features = [(f.name, f.type, f.pii) for f in card.input_schema.features]

    def __call__(self, record: Any) -> str | None:
        if type(record) is not dict:
            return "record is not a JSON object"
        features = record.get("features")
        if type(features) is not dict:
            return "features is not an object"
        for name, kind, pii in self.features:
            value = features.get(name)
            if value is None:
                continue
            t = type(value)
            if t is str and value.isascii() and (pii or kind == CATEGORY):
                continue
            if t is float and kind in (NUMBER, INTEGER) and value - value == 0:  # finite (inf - inf is NaN)
                continue
            problem = _text_problem(value) if pii else _value_problem(kind, value)
            if problem:
                return f"features.{name}: {problem}"
        prediction = record.get("prediction")
        if not (type(prediction) is str and prediction.isascii()):
            problem = _text_problem(prediction) or (
                "not a single value" if isinstance(prediction, dict | list) else _number_problem(prediction)
            )
            if problem:
                return f"prediction: {problem}"
        probabilities = record.get("probabilities")
        if probabilities is not None:
            if type(probabilities) is not dict:
                return "probabilities is not an object"
            for key, value in probabilities.items():
                if _text_problem(key) or _value_problem(NUMBER, value):
                    return "probabilities: a class name or probability is not valid"
        return None


def _text_problem(value: Any) -> str | None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "not valid Unicode text (a lone surrogate)"
    return None


def _number_problem(value: Any) -> str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return "not a finite number"
    if isinstance(value, int) and not isinstance(value, bool) and not -FLOAT64_MAX <= value <= FLOAT64_MAX:
        return "a number beyond the 64-bit float range"
    return None


def _value_problem(kind: str, value: Any) -> str | None:
    if kind == CATEGORY:
        return _text_problem(value) if isinstance(value, str) else "not a category string"
    if kind == BOOLEAN:
        return None if isinstance(value, bool) else "not true or false"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "not a number"
    return _number_problem(value)


class _Body:
    """One decompressed capture object and where its lines start and end."""

    def __init__(self, data: bytes) -> None:
        newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
        self.data = data
        self.starts = np.concatenate(([0], newlines + 1))
        self.ends = np.concatenate((newlines, [len(data)]))
        if len(self.starts) and self.starts[-1] == len(data):  # nothing after the last newline
            self.starts, self.ends = self.starts[:-1], self.ends[:-1]


class _Lines:
    """The lines of several objects under one index, sliced out only when asked for."""

    def __init__(self, bodies: list[_Body]) -> None:
        self.bodies = bodies
        self.first = np.cumsum([0] + [len(b.starts) for b in bodies])  # global index of each body's first line

    def __len__(self) -> int:
        return int(self.first[-1])

    def __getitem__(self, i: int) -> bytes:
        which = int(np.searchsorted(self.first, i, side="right")) - 1
        body, j = self.bodies[which], i - int(self.first[which])
        return body.data[int(body.starts[j]) : int(body.ends[j])]


def _decode_all(lines: list[bytes]) -> tuple[list[Any], int]:
    """One JSON decode for many lines (less per-call overhead); line by line when one of them is torn. Returns the
    decoded lines and how many could not be decoded (torn, not UTF-8, over Python's integer-digit limit)."""
    if not lines:
        return [], 0
    try:
        return json.loads(b"[" + b",".join(lines) + b"]"), 0
    except ValueError:
        decoded = [r for r in map(_decode, lines) if r is not None]
        return decoded, len(lines) - len(decoded)


class _Matcher:
    """Is a capture line of the card's model and version, inside the window?

    Lines as CaptureRecord.to_json_line writes them are selected on their bytes (stamp, model, version at fixed
    places) and returned undecoded; any other line is decoded and checked field by field.
    """

    def __init__(self, card: ModelCard, window: Window) -> None:
        self.card = card
        # Records carry UTC stamps with milliseconds: the window's bounds in that form compare correctly as text.
        self.start, self.end = _stamp(window.start), _stamp(window.end)
        self.start_b, self.end_b = self.start.encode(), self.end.encode()
        self.identity = f'","model":{json.dumps(card.name)},"version":{json.dumps(card.version)},'.encode()

    def __call__(self, line: bytes) -> bytes | dict | object | None:
        """The line itself (undecoded) when selected on its bytes, the decoded record otherwise, None if no match,
        UNREADABLE for a line that is not a JSON object."""
        if line.startswith(_LINE_PREFIX):
            stamp = line[len(_LINE_PREFIX) : len(_LINE_PREFIX) + _STAMP_LEN]
            if stamp.endswith(b"+00:00") and line.startswith(self.identity, len(_LINE_PREFIX) + _STAMP_LEN):
                if _error_line(line, len(_LINE_PREFIX) + _STAMP_LEN + len(self.identity)):
                    return None
                return line if self.start_b <= stamp < self.end_b else None
        if not line.strip():
            return None
        record = _decode(line)
        if record is None:
            return UNREADABLE
        return record if _in_window(record, self.card, self.start, self.end) else None


_REQUEST_ID_KEY = b'"request_id":"'
_ERROR_AFTER_ID = b'","outcome":"error"'


def _error_line(line: bytes, at: int) -> bool:
    """Whether a line in CaptureRecord's own form, whose request_id key starts at `at`, is an ErrorRecord: its
    request id is followed by `"outcome":"error"` (a row record's by `"row":`). The id's end is the first `","` after
    its opening quote: inside a JSON string a quote is always escaped, so that sequence cannot occur in it."""
    if not line.startswith(_REQUEST_ID_KEY, at):
        return False
    end = line.find(b'","', at + len(_REQUEST_ID_KEY))
    return end >= 0 and line.startswith(_ERROR_AFTER_ID, end)


def _decode(line: bytes) -> dict | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None  # a torn line (never written by sklambda) cannot be a record
    return record if isinstance(record, dict) else None


def _in_window(record: dict, card: ModelCard, start: str, end: str) -> bool:
    # The model is checked too: partitioning is Firehose's, the record is the authority.
    if record.get("model") != card.name or record.get("version") != card.version:
        return False
    try:
        stamp = _stamp(datetime.fromisoformat(str(record["timestamp"])))
    except (KeyError, ValueError, TypeError):
        return False
    return start <= stamp < end


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _column(values: pd.Series, dtype: Any) -> pd.Series:
    if dtype == "float64":
        return pd.to_numeric(values, errors="coerce").astype("float64")
    return values.astype(object).where(values.notna(), None)


def _dtype(card: ModelCard, name: str) -> Any:
    spec = card.input_schema.feature(name)
    return "float64" if spec.type in ("number", "integer") else object
