"""The scoring loop every batch path runs: a byte stream in, scored rows and rejected rows out, counted in a Tally.

    stream(body, Scoring(loaded, fmt, settings, scored=out, errors=err), tally, part)

body -> reader.py (records, bounded memory) -> parse.py (validated frame per batch of rows) -> the model (padded,
see PAD_ROWS) -> format.py (output bytes). The single pass scores the whole object as one part; a fan-out chunk
is a part that may start after the header and must not hold a quoted line break; the parity gate scores a file in
memory. All three go through `stream`, so a row's output bytes do not depend on the path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import pandas as pd

from sklambda.batch.errors import JobFailure
from sklambda.batch.format import RowFormatter, error_line
from sklambda.batch.keys import CSV, CSV_GZ
from sklambda.batch.parse import INFERENCE_ID, CsvLayout, HeaderProblem, Parsed, parse_csv, parse_jsonl
from sklambda.batch.reader import CorruptInput, RecordBatch, RecordReader, raw_blocks
from sklambda.batch.summary import Tally
from sklambda.config import BatchSettings
from sklambda.errors import ExplanationUnavailable, InvalidInput
from sklambda.registry.schema import InputSchema
from sklambda.serving.scoring import ScoredArrays
from sklambda.serving.server import LoadedModel

# Called with (model, frame of the scored rows, their ScoredArrays, their inference ids, their 1-based input lines)
# after each scored batch of rows: how the handler captures a sample for monitoring without the engine knowing about
# capture.
ScoredObserver = Callable[[LoadedModel, pd.DataFrame, ScoredArrays, list[str], list[int]], None]

# Scored frames are padded (with copies of their last row) to a multiple of this many rows. BLAS kernels
# (OpenBLAS gemv/gemm) take a different code path for the last rows of a matrix whose height is not a multiple
# of their block size, which can change a probability in its last bit; padding puts every real row through the
# same path, so a row's output does not depend on where a chunk boundary fell (fan-out = single pass, byte for
# byte). Best effort: verified with the OpenBLAS numpy wheels, not guaranteed by every BLAS.
PAD_ROWS = 16


class Sink(Protocol):
    """Where output bytes go: a MultipartWriter (S3), or memory for the parity gate."""

    def write(self, data: bytes) -> None:
        """Append `data` (whole lines) to the output."""


@dataclass(frozen=True)
class Scoring:
    """The job's context for the loop: the model, the file's format (keys.CSV...), limits, where rows go.

    `explain` adds the explanation columns (format.output_columns); `observer` sees every scored batch. `job_id`
    prefixes the generated inference ids: `<job_id>-<byte offset of the row in the object>` (the offset rather than
    the line: a fan-out chunk knows where its byte range starts, not how many lines precede it), so a retried job
    (same object version, same job id) and every path (single pass, fan-out) give a row the same id.
    """

    loaded: LoadedModel
    fmt: str
    settings: BatchSettings
    scored: Sink
    errors: Sink
    explain: bool = False
    observer: ScoredObserver | None = None
    job_id: str = "batch"


@dataclass(frozen=True)
class Part:
    """Which part of the file a stream holds.

    `starts_file`: it starts at byte 0, so a CSV's first record is its header (written to the scored output), and
    a part with no row fails the job. `header`: the file's CSV header line, for a part that starts after it.
    `whole_file`: it runs to the end in one piece, so a quoted CSV field may span lines; a chunk cut on newlines
    must not hold one (the reader raises ChunkingUnsafe). `start_offset`: the byte offset in the object where the
    part starts (of the decompressed text; 0 for a whole file).
    """

    starts_file: bool = True
    header: bytes | None = None
    whole_file: bool = True
    start_offset: int = 0


WHOLE_FILE = Part()


def stream(body: Any, scoring: Scoring, tally: Tally, part: Part = WHOLE_FILE) -> None:
    """Read records from `body` (anything with read(n) -> bytes: a StreamingBody), score them in batches of
    settings.chunk_rows, write the scored rows to scoring.scored and the rejected ones to scoring.errors, and add
    them to `tally` as they go (so a failure leaves the counts so far).

    Raises JobFailure for the whole part: bad_header (unreadable or not matching the schema), unreadable (corrupt
    gzip), empty / no_rows (a part that starts the file and holds no row), explain_unavailable /
    explain_unsupported. Raises ChunkingUnsafe (reader.py) for a quoted line break in a part that is not the whole
    file. Rows the schema or the model refuses are not errors: they go to the errors output with their reasons, as
    does a row whose caller-given inference id is bad or repeats one of an earlier row of the part (a fan-out job
    checks repeats within each chunk only).
    """
    fmt, settings = scoring.fmt, scoring.settings
    is_csv = fmt in (CSV, CSV_GZ)
    loop = _Loop(scoring, RowFormatter(scoring.loaded, fmt, explain=scoring.explain), tally)
    schema = scoring.loaded.card.input_schema
    raw_bytes = [0]
    reader = RecordReader(
        raw_blocks(body, gzip=fmt.endswith(".gz"), counter=raw_bytes),
        batch_rows=settings.chunk_rows,
        max_line_bytes=settings.max_line_bytes,
        quoted=is_csv,
        allow_multiline=part.whole_file,
        start_offset=part.start_offset,
    )
    columns = loop.formatter.columns
    layout = _layout(part.header, schema, columns) if (is_csv and part.header is not None) else None
    try:
        for batch in reader:
            if is_csv and layout is None:
                if 0 in batch.rejected:
                    raise JobFailure("bad_header", f"the header line cannot be read: {batch.rejected[0]}")
                layout = _layout(batch.records[0], schema, columns)
                if part.starts_file:
                    scoring.scored.write(loop.formatter.header(layout))
                batch = RecordBatch(
                    batch.records[1:],
                    batch.lines[1:],
                    batch.offsets[1:],
                    {i - 1: r for i, r in batch.rejected.items()},
                )
            loop.score(batch, layout)
    except CorruptInput as e:
        tally.physical_lines = reader.physical_lines
        raise JobFailure(
            "unreadable",
            f"{e}; {tally.rows_read} row(s) before that point were read "
            f"({tally.rows_scored} scored, {tally.rows_rejected} rejected), none is published",
        ) from None
    tally.physical_lines = reader.physical_lines
    if not part.starts_file:
        return
    if raw_bytes[0] == 0:
        raise JobFailure("empty", "the object is empty (0 bytes): there is nothing to score")
    if is_csv and layout is None:
        raise JobFailure("empty", "the object has no header line and no rows (only blank lines)")
    if tally.rows_read == 0:
        what = "a header but no data rows" if is_csv else "no rows (only blank lines)"
        raise JobFailure("no_rows", f"the object has {what}: there is nothing to score")


def _layout(header: bytes, schema: InputSchema, columns: list[str]) -> CsvLayout:
    try:
        return CsvLayout(header, schema, columns)
    except HeaderProblem as e:
        raise JobFailure("bad_header", f"{e}; no row was scored") from None


@dataclass(frozen=True)
class _Loop:
    """One stream's state: what it scores with, how it formats, what it counts."""

    scoring: Scoring
    formatter: RowFormatter
    tally: Tally
    seen_ids: dict[str, int] = field(default_factory=dict)  # caller-given inference id -> its line

    def score(self, batch: RecordBatch, layout: CsvLayout | None) -> None:
        """Parse, score and write one batch of records (CSV when `layout` is given, else JSON Lines)."""
        if not len(batch):
            return
        scoring, tally = self.scoring, self.tally
        loaded = scoring.loaded
        if layout is not None:
            parsed = parse_csv(batch, layout)
        else:
            parsed = parse_jsonl(batch, loaded.card.input_schema, self.formatter.columns)
        given = self._caller_ids(batch, parsed)
        ok, frame, scored = _score(loaded, parsed) if parsed.ok else ([], None, None)
        if ok:
            explanations = _explain(loaded, frame) if self.formatter.explain_output is not None else None
            prefix, offsets = f"{scoring.job_id}-", batch.offsets
            if given:
                appended = [None if given.get(i) else f"{prefix}{offsets[i]}" for i in ok]
                ids = [given.get(i) or a for i, a in zip(ok, appended, strict=True)]
            else:  # no caller ids (the usual file): one comprehension
                appended = ids = [f"{prefix}{offsets[i]}" for i in ok]
            scoring.scored.write(self.formatter.rows([batch.records[i] for i in ok], scored, explanations, appended))
            tally.data_quality_warnings.update(loaded.scorer.data_quality_checker.count(frame))
            if scoring.observer is not None:
                scoring.observer(loaded, frame, scored, ids, [batch.lines[i] for i in ok])
        if parsed.bad:
            max_raw = scoring.settings.max_raw_bytes
            lines = [
                error_line(batch.lines[i], batch.records[i], parsed.bad[i], max_raw, i in batch.rejected)
                for i in sorted(parsed.bad)
            ]
            scoring.errors.write(b"".join(lines))
        tally.rows_read += len(batch)
        tally.rows_scored += len(ok)
        tally.rows_rejected += len(parsed.bad)

    def _caller_ids(self, batch: RecordBatch, parsed: Parsed) -> dict[int, str]:
        """The caller-given inference ids of the parsed rows, by index in the batch. A row repeating the id of an
        earlier row of the part moves from parsed.ok (and its frame) to parsed.bad."""
        if parsed.ids is None:
            return {}
        given: dict[int, str] = {}
        keep: list[int] = []
        seen = self.seen_ids
        for j, (i, value) in enumerate(zip(parsed.ok, parsed.ids, strict=True)):
            if value is None:
                keep.append(j)
            elif value in seen:
                message = f"inference id {value!r} is already the id of line {seen[value]}: ids must be unique"
                parsed.bad.setdefault(i, []).append((INFERENCE_ID, message))
            else:
                seen[value] = batch.lines[i]
                given[i] = value
                keep.append(j)
        if len(keep) < len(parsed.ok):
            parsed.ok = [parsed.ok[j] for j in keep]
            parsed.frame = parsed.frame.iloc[keep].reset_index(drop=True)
            parsed.ids = [parsed.ids[j] for j in keep]
        return given


def _score_padded(loaded: LoadedModel, frame: pd.DataFrame) -> ScoredArrays:
    """Scores of every row of `frame`, computed on the frame padded to a multiple of PAD_ROWS rows (see there).

    Raises InvalidInput (Scorer.score_arrays) naming the rows the model cannot score, by their index in `frame`.
    """
    n = len(frame)
    pad = (-n) % PAD_ROWS
    if pad:
        frame = pd.concat([frame, frame.iloc[[n - 1] * pad]], ignore_index=True)
    try:
        scored = loaded.scorer.score_arrays(frame)
    except InvalidInput as e:
        errors = [replace(err, row=min(err.row, n - 1)) if err.row is not None else err for err in e.errors]
        raise InvalidInput(e.message, errors=errors) from None
    if not pad:
        return scored
    probabilities = scored.probabilities[:n] if scored.probabilities is not None else None
    return replace(scored, predictions=scored.predictions[:n], probabilities=probabilities)


def _score(loaded: LoadedModel, parsed: Parsed) -> tuple[list[int], pd.DataFrame | None, ScoredArrays | None]:
    """Score the parsed rows; rows the model itself refuses move to `bad` and the rest is scored again.
    Returns the scored rows' indexes in the batch, their frame and their scores."""
    try:
        return parsed.ok, parsed.frame, _score_padded(loaded, parsed.frame)
    except InvalidInput as e:
        refused = {err.row for err in e.errors if err.row is not None} or set(range(len(parsed.ok)))
        for err in e.errors:
            for j in [err.row] if err.row is not None else range(len(parsed.ok)):
                if (err.field, err.message) not in parsed.bad.get(parsed.ok[j], []):
                    parsed.bad.setdefault(parsed.ok[j], []).append((err.field, err.message))
        keep = [j for j in range(len(parsed.ok)) if j not in refused]
        if not keep:
            return [], None, None
        ok = [parsed.ok[j] for j in keep]
        frame = parsed.frame.iloc[keep].reset_index(drop=True)
        return ok, frame, _score_padded(loaded, frame)


def _explain(loaded: LoadedModel, frame: pd.DataFrame) -> Any:
    try:
        return loaded.scorer.explainer().explain(frame)
    except ExplanationUnavailable as e:
        raise JobFailure("explain_unavailable", e.message) from None
