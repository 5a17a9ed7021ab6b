"""Validating a batch of records against the model's schema and building the frame the model scores.

CSV cells are text, so each feature type has a parser with the semantics of FeatureSpec.check:
- number / integer: what float() reads, finite (text, 'nan' and 'inf' are rejected); an integer feature also
  rejects a fractional value ('3.0' is accepted, like 3.0 in JSON);
- boolean: true/false/1/0, case-insensitive;
- category: the cell's text;
- an empty cell is null, allowed only for nullable features or those publish proved the model scores a null
  for (CSV has no other way to say null; sklambda.serving.data_quality counts those).
Numeric columns are parsed by pandas' C reader; only a column holding a bad cell falls back to per-cell checks.
JSONL values go through FeatureSpec.check unchanged. Columns or keys that are not features are carried
through to the output but never reach the model. An `inference_id` column or key (INFERENCE_ID) is the caller's
prediction id of the row (sklambda.serving.ids), carried to the output as is; a bad one (an empty cell, a null)
rejects the row. A CSV file with the column gives every row's id; a JSON Lines row without the key gets a generated
one (batch/stream.py). A feature the model never reads (`is_required` False) may be left
out of the header or a JSON object: it is then null for the model.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sklambda.batch.reader import RecordBatch
from sklambda.registry.schema import BOOLEAN, CATEGORY, INTEGER, NUMBER, FeatureSpec, InputSchema
from sklambda.serving.ids import id_problem

# The column (CSV) or key (JSON Lines) that holds the caller's prediction id of a row, and the output column of ids.
INFERENCE_ID = "inference_id"

Reasons = list[tuple[str | None, str]]
_TRUE = {"true": True, "1": True, "false": False, "0": False}


class HeaderProblem(Exception):
    """The header cannot be scored with this model: the whole file fails, nothing is scored."""


@dataclass
class Parsed:
    """One batch of records validated: the rows the model can score (`frame`, in the schema's column order and
    dtypes) and the rows rejected, each with its reasons as (field or None, message)."""

    ok: list[int]  # indices (in the batch) of the rows in `frame`, in order
    frame: pd.DataFrame
    bad: dict[int, Reasons]
    # per row of `frame`: the caller's inference id, None where the row has none (a JSON Lines row without the key);
    # None for a CSV file without the column
    ids: list[str | None] | None = None


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _utf8_problem(record: bytes) -> str | None:
    try:
        record.decode("utf-8")
    except UnicodeDecodeError as e:
        return f"invalid UTF-8 (byte 0x{record[e.start]:02x} at byte {e.start + 1} of the row)"
    return None


# -- CSV -------------------------------------------------------------------------------------------------
class CsvLayout:
    """The header of a CSV file, checked against the schema."""

    def __init__(self, header: bytes, schema: InputSchema, output_columns: Sequence[str]) -> None:
        try:
            text = header.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise HeaderProblem("the header line is not valid UTF-8") from None
        names = next(csv.reader([text]), [])
        names = [n.strip() for n in names]
        features = schema.names
        if len(names) == 1 and len(features) > 1:
            for sep, label in ((";", "';'"), ("\t", "tab"), ("|", "'|'")):
                if sep in names[0]:
                    raise HeaderProblem(
                        f"the header has one column {_short(names[0])!r}: the file looks {label}-delimited; "
                        "sklambda reads comma-separated CSV"
                    )
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise HeaderProblem(f"the header repeats column(s): {', '.join(dupes)}")
        missing = [f for f in schema.required_names if f not in names]
        if missing:
            raise HeaderProblem(
                f"the header lacks feature column(s) {', '.join(missing)} that model needs; "
                f"expected columns: {', '.join(features)}"
            )
        clash = [c for c in output_columns if c in names]
        if clash:
            raise HeaderProblem(f"the header already has output column(s) {', '.join(clash)}; rename them")
        self.names = names
        self.ncols = len(names)
        self.extra = [n for n in names if n not in set(features)]
        self.specs = [schema.feature(f) for f in features]
        # None for an optional feature the file leaves out (null in every row).
        self.positions = [names.index(f) if f in names else None for f in features]
        # The caller's inference id column (None when the file has none: the job generates every id).
        self.id_position = names.index(INFERENCE_ID) if INFERENCE_ID in names and INFERENCE_ID not in features else None
        self.header_bytes = header[3:] if header.startswith(b"\xef\xbb\xbf") else header


def parse_csv(batch: RecordBatch, layout: CsvLayout) -> Parsed:
    """Validate a batch of CSV records (without the header) against the header's layout and the schema.

    A row is rejected (never raised) when the reader already rejected it, it is not UTF-8, its field count differs
    from the header's, or a feature cell does not parse as its type (module docstring); the reasons name every bad
    field. The frame holds the feature columns of the accepted rows.
    """
    records = batch.records
    bad: dict[int, Reasons] = {i: [(None, r)] for i, r in batch.rejected.items()}
    candidates = [i for i in range(len(records)) if i not in bad] if bad else range(len(records))
    joined = b"\n".join([records[i] for i in candidates]) if bad else b"\n".join(records)
    try:
        joined.decode("utf-8")
    except UnicodeDecodeError:
        for i in candidates:
            problem = _utf8_problem(records[i])
            if problem:
                bad[i] = [(None, problem)]
        candidates = [i for i in candidates if i not in bad]
    careful = b'"' in joined or b"\r" in joined  # rows only the csv module can split (or refuse)
    expected = layout.ncols
    good: list[int] = []
    for i in candidates:
        r = records[i]
        if careful and (b'"' in r or b"\r" in r):
            try:
                n = len(_csv_fields(r))
            except csv.Error as e:  # e.g. a carriage return inside an unquoted field
                bad[i] = [(None, f"the row cannot be read as CSV: {e}")]
                continue
        else:
            n = r.count(b",") + 1
        if n == expected:
            good.append(i)
        else:
            bad[i] = [(None, f"expected {expected} fields (as in the header), got {n}")]
    columns = _read_columns([records[i] for i in good], layout)
    keep = np.ones(len(good), dtype=bool)
    values = {}
    for spec, column in zip(layout.specs, columns, strict=True):
        if column is None:
            values[spec.name] = _absent(spec, len(good))
            continue
        parsed, problems = parse_column(spec, column)
        values[spec.name] = parsed
        for j, message in problems:
            keep[j] = False
            bad.setdefault(good[j], []).append((spec.name, message))
    ids = None
    if layout.id_position is not None:
        cells = _cells([records[i] for i in good], layout.id_position)
        for j, cell in enumerate(cells):
            problem = id_problem(cell)
            if problem:
                keep[j] = False
                bad.setdefault(good[j], []).append((INFERENCE_ID, problem))
        ids = [cell for cell, k in zip(cells, keep, strict=True) if k]
    ok = [i for i, k in zip(good, keep, strict=True) if k]
    return Parsed(ok, _frame(layout.specs, values, keep), bad, ids)


def _cells(records: list[bytes], position: int) -> list[str]:
    """The text of one column of well-formed rows (quoted cells unquoted by the csv module)."""
    out = []
    for r in records:
        if b'"' in r or b"\r" in r:
            out.append(_csv_fields(r)[position])
        else:
            out.append(r.split(b",")[position].decode("utf-8"))
    return out


def _csv_fields(record: bytes) -> list[str]:
    """The fields of one record, as the csv module reads them (raises csv.Error)."""
    return next(csv.reader([record.decode("utf-8")]), [])


def _read_columns(records: list[bytes], layout: CsvLayout) -> list[np.ndarray | None]:
    """The feature columns of well-formed rows: numeric arrays where every cell parsed, else arrays of str; None for
    an optional feature the file leaves out."""
    if not records:
        return [np.empty(0, dtype=object) if p is not None else None for p in layout.positions]
    present = [p for p in layout.positions if p is not None]
    dtypes = {p: object for p, s in zip(layout.positions, layout.specs, strict=True) if s.type not in (NUMBER, INTEGER)}
    dtypes.pop(None, None)
    try:
        df = pd.read_csv(
            io.BytesIO(b"\n".join(records)),
            header=None,
            usecols=present,
            dtype=dtypes,
            na_filter=False,
            skip_blank_lines=False,
            engine="c",
            encoding="utf-8",
        )
        if len(df) == len(records):
            return [df[p].to_numpy() if p is not None else None for p in layout.positions]
    except (ValueError, pd.errors.ParserError):
        pass
    # The C reader disagreed with the csv module on some row: read with the csv module, row by row.
    rows = [_csv_fields(r) for r in records]  # parse_csv refused every row the csv module cannot read
    return [np.array([row[p] for row in rows], dtype=object) if p is not None else None for p in layout.positions]


def _absent(spec: FeatureSpec, n: int) -> np.ndarray:
    """The values of an optional feature the file leaves out: null in every row (the model never reads it)."""
    return np.full(n, np.nan) if spec.type in (NUMBER, INTEGER) else np.full(n, None, dtype=object)


def parse_column(spec: FeatureSpec, column: np.ndarray) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """One CSV column of `spec`'s feature (its cells as text, or what pandas' C reader parsed) as values with the
    semantics of FeatureSpec.check (module docstring): numbers as float64 (NaN for null; an integer column the reader
    parsed stays int64), booleans and categories as objects (None for null). Returns (values, [(row, message)]) with
    one message per cell the schema refuses; such a cell's value is NaN or None."""
    problems: list[tuple[int, str]] = []
    if spec.type in (NUMBER, INTEGER):
        if column.dtype.kind in "iuf":
            values = column.astype(np.float64, copy=False)
            if column.dtype.kind == "f" and not np.isfinite(values).all():  # the C reader parsed 'inf'
                values = values.copy()
                for j in np.flatnonzero(~np.isfinite(values)):
                    problems.append((int(j), f"expected a finite {spec.type}, got {float(values[j])!r}"))
        else:
            try:
                values = pd.to_numeric(pd.Series(column, dtype=object), errors="coerce").to_numpy(np.float64, copy=True)
            except (OverflowError, ValueError, TypeError):  # e.g. an integer too large for a float: cell by cell
                values = np.full(len(column), np.nan)
            for j in np.flatnonzero(~np.isfinite(values)):
                cell = column[j]
                if not isinstance(cell, str):  # the C reader parsed an integer too large for int64 (a Python int)
                    number = _int_to_float(cell)
                    if number is None:
                        problems.append((int(j), f"expected a finite {spec.type}, got a {_digits(cell)}-digit number"))
                    else:
                        values[j] = number
                    continue
                if not cell.strip():
                    if not spec.null_allowed:
                        problems.append((int(j), "is empty but the feature is not nullable"))
                    values[j] = np.nan
                    continue
                try:
                    number = float(cell)
                except ValueError:
                    problems.append((int(j), f"expected {_article(spec.type)}, got string {_short(cell)!r}"))
                else:
                    if math.isfinite(number):  # float() reads it though pandas did not: accept
                        values[j] = number
                    else:
                        problems.append((int(j), f"expected a finite {spec.type}, got {_short(cell)!r}"))
        if spec.type == INTEGER and column.dtype.kind != "i":
            fractional = np.isfinite(values) & (values != np.floor(values))
            problems.extend(
                (int(j), f"expected an integer, got {float(values[j])!r}") for j in np.flatnonzero(fractional)
            )
            huge = np.isfinite(values) & ~fractional & (np.abs(values) >= INT64_LIMIT)
            problems.extend((int(j), _out_of_range(float(values[j]))) for j in np.flatnonzero(huge))
        if spec.type == INTEGER and column.dtype.kind == "i":
            return column, problems
        return values, problems
    cells = column.astype(object, copy=False)
    empty = np.flatnonzero(cells == "")
    if spec.type == BOOLEAN:
        out = np.empty(len(cells), dtype=object)
        for j, cell in enumerate(cells):
            v = _TRUE.get(cell.strip().lower())
            if v is None and cell != "":
                problems.append((j, f"expected true or false (or 1/0), got string {_short(cell)!r}"))
            out[j] = v
    else:
        out = cells.copy() if len(empty) else cells
    for j in empty:
        if not spec.null_allowed:
            problems.append((int(j), "is empty but the feature is not nullable"))
        out[j] = None
    return out, problems


# An integer feature's values must fit the int64 column the model is given (pandas would wrap them silently).
INT64_LIMIT = 2.0**63


def _out_of_range(value: float) -> str:
    return f"expected an integer between -2^63 and 2^63, got {value!r}"


def _int_to_float(value: object) -> float | None:
    """The finite float of a non-text cell (an int the C reader parsed), or None when it has none."""
    try:
        number = float(value)  # type: ignore[arg-type]
    except (OverflowError, TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _digits(value: object) -> str:
    try:
        return str(len(str(abs(value))))  # type: ignore[arg-type]
    except (TypeError, ValueError):  # more digits than Python converts to text (sys.get_int_max_str_digits)
        return "many"


def _article(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _frame(specs: Sequence[FeatureSpec], values: dict[str, np.ndarray], keep: np.ndarray) -> pd.DataFrame:
    """The frame InputSchema.frame would build for these rows (same columns, dtypes and values)."""
    n = int(keep.sum())
    index = pd.RangeIndex(n)
    all_kept = n == len(keep)
    columns = {}
    for spec in specs:
        v = values[spec.name] if all_kept else values[spec.name][keep]
        dtype = spec.dtype
        if dtype == "float64":
            columns[spec.name] = np.asarray(v, dtype=np.float64)
        elif dtype == "int64":
            columns[spec.name] = np.asarray(v).astype(np.int64)
        elif dtype == "bool":
            columns[spec.name] = np.asarray(v, dtype=bool)
        else:
            arr = np.asarray(v, dtype=object)
            if spec.type != CATEGORY:  # nullable boolean: nulls as NaN, like InputSchema.frame
                arr = np.array([np.nan if x is None else x for x in arr], dtype=object)
            elif spec.missing is not None and spec.null_allowed:  # the training data's marker, like InputSchema
                marker = spec.missing_value
                arr = np.array([marker if x is None else x for x in arr], dtype=object)
            columns[spec.name] = pd.Series(arr, index=index, dtype=object, copy=False)
    return pd.DataFrame(columns, index=index)


# -- JSONL -----------------------------------------------------------------------------------------------
def parse_jsonl(batch: RecordBatch, schema: InputSchema, output_columns: Sequence[str]) -> Parsed:
    """Validate a batch of JSON Lines records, one object per record, against the schema.

    A row is rejected (never raised) when the reader already rejected it, it is not UTF-8 or not a JSON object, a
    required feature is missing, a feature fails FeatureSpec.check, or it already has a key named like an output
    column (they would be written twice). Other keys are carried to the output, never to the model.
    """
    bad: dict[int, Reasons] = {i: [(None, r)] for i, r in batch.rejected.items()}
    rows: list[dict] = []
    ok: list[int] = []
    ids: list[str | None] = []
    id_is_feature = INFERENCE_ID in schema.names
    for i, record in enumerate(batch.records):
        if i in bad:
            continue
        problem = _utf8_problem(record)
        if problem:
            bad[i] = [(None, problem)]
            continue
        try:
            row = json.loads(record)
        except ValueError as e:
            bad[i] = [(None, f"not valid JSON: {e}")]
            continue
        if not isinstance(row, dict):
            bad[i] = [(None, "expected a JSON object of feature values")]
            continue
        reasons: Reasons = []
        for spec in schema.features:
            if spec.name not in row:
                if spec.required:
                    reasons.append((spec.name, "missing feature"))
                continue
            problem = spec.check(row[spec.name])  # also refuses integers no float64 / int64 column holds
            if problem:
                reasons.append((spec.name, problem))
        reasons.extend((c, "the row already has this output field; rename it") for c in output_columns if c in row)
        given = row[INFERENCE_ID] if INFERENCE_ID in row and not id_is_feature else None
        problem = id_problem(given) if INFERENCE_ID in row and not id_is_feature else None
        if problem:
            reasons.append((INFERENCE_ID, problem))
        if reasons:
            bad[i] = reasons
        else:
            ok.append(i)
            rows.append(row)
            ids.append(given)
    frame = schema.frame(rows) if rows else pd.DataFrame({f.name: [] for f in schema.features})
    return Parsed(ok, frame, bad, ids)
