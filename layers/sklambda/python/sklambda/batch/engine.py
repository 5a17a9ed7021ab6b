"""Scoring a file uploaded to S3: stream, validate, score in chunks, write outputs atomically.

One pass (score_object) or fan-out over byte ranges (plan_chunks → score_chunk x N → merge_chunks), with the
same outputs byte for byte. No Lambda event shapes here: the handler builds an ObjectRef and calls in.

Retries: output keys depend only on the input key, and every output is a multipart upload completed at the
end (aborted on any error), so a retry after a crash overwrites complete objects or nothing. A job that failed
because of its input raises BatchJobFailed (not retryable); any other exception (S3, network, a bug) writes a failed
summary with the counts so far and raises BatchJobCrashed (retryable) from it.

Ordering (ordering.py): a job for an object version older than the one whose outputs are published (by the S3
event sequencer in ObjectRef.sequencer) publishes nothing; it returns a summary with status "superseded", written to
the superseded record beside the summary (keys.Target.superseded_key), never over the newer summary.

Counts: every summary has rows_read == rows_scored + rows_rejected (rows_scored counts rows the model scored, also
when the job failed and published none of them; outputs.scored says whether a scored file was published).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError

from sklambda import aws
from sklambda.batch.errors import BatchJobCrashed, BatchJobFailed
from sklambda.batch.keys import CSV, CSV_GZ, Target, detect_format, parse_incoming_key
from sklambda.batch.ordering import Guard, Superseded
from sklambda.batch.parse import CsvLayout, HeaderProblem, Parsed, Reasons, parse_csv, parse_jsonl
from sklambda.batch.reader import CorruptInput, RecordBatch, RecordReader, raw_blocks
from sklambda.batch.writer import MultipartWriter
from sklambda.config import MIN_PART_BYTES, BatchSettings
from sklambda.errors import ExplanationUnavailable, InvalidInput, ModelNotFound, ModelRefused
from sklambda.serving.server import LoadedModel, ModelServer

THRESHOLD_TAG = "batch_reject_threshold"
SUCCEEDED, FAILED, SUPERSEDED = "succeeded", "failed", "superseded"
# Called with (model, frame of the scored rows, their ScoredArrays) after each scored batch of rows: how the
# handler captures a sample for monitoring without the engine knowing about capture.
ScoredObserver = Callable[[LoadedModel, pd.DataFrame, Any], None]


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    # The S3 event's sequencer (s3.object.sequencer): orders the uploads of one key. None: the job is unordered.
    sequencer: str | None = None


@dataclass(frozen=True)
class ByteRange:
    """Bytes [start, end) of the object; every range but the last ends just after a newline."""

    start: int
    end: int


@dataclass(frozen=True)
class ChunkResult:
    index: int
    byte_range: ByteRange
    status: str
    rows_read: int
    rows_scored: int
    rows_rejected: int
    physical_lines: int
    scored_key: str | None
    errors_key: str | None
    model_version: str | None
    reject_threshold: float
    failure_reason: str | None = None
    report: str | None = None
    duration_seconds: float = 0.0
    data_quality: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class JobSummary:
    job_id: str
    status: str
    input_bucket: str
    input_key: str
    input_version_id: str | None
    input_etag: str | None
    model_name: str
    model_alias: str | None
    model_version: str | None
    format: str
    rows_read: int
    rows_scored: int
    rows_rejected: int
    reject_threshold: float
    duration_seconds: float
    output_bucket: str
    scored_key: str | None
    errors_key: str | None
    summary_key: str
    chunks: int = 1
    failure_reason: str | None = None
    report: str | None = None
    # Scored rows' values unlike the training data, per check (serving.data_quality): scored anyway, counted here.
    data_quality: dict[str, int] = field(default_factory=dict)
    input_sequencer: str | None = None
    superseded_by: str | None = None  # status superseded: the sequencer of the newer upload already published

    def __post_init__(self) -> None:
        if self.rows_read != self.rows_scored + self.rows_rejected:
            raise ValueError(
                f"job {self.job_id}: rows do not add up: {self.rows_read} read != {self.rows_scored} scored + "
                f"{self.rows_rejected} rejected"
            )

    @property
    def reject_rate(self) -> float:
        return self.rows_rejected / self.rows_read if self.rows_read else 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.duration_seconds if self.duration_seconds > 0 else 0.0

    @property
    def failure(self) -> str:
        return f"{self.failure_reason}: {self.report}" if self.failure_reason else ""

    def to_dict(self) -> dict:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "input": {
                "bucket": self.input_bucket,
                "key": self.input_key,
                "version_id": self.input_version_id,
                "etag": self.input_etag,
                "sequencer": self.input_sequencer,
            },
            "model": {"name": self.model_name, "alias": self.model_alias, "version": self.model_version},
            "format": self.format,
            "rows_read": self.rows_read,
            "rows_scored": self.rows_scored,
            "rows_rejected": self.rows_rejected,
            "reject_rate": round(self.reject_rate, 6),
            "reject_threshold": self.reject_threshold,
            "duration_seconds": round(self.duration_seconds, 3),
            "rows_per_second": round(self.rows_per_second, 1),
            "chunks": self.chunks,
            "data_quality_warnings": dict(self.data_quality),
            "outputs": {
                "bucket": self.output_bucket,
                "scored": self.scored_key,
                "errors": self.errors_key,
                "summary": self.summary_key,
            },
            "failure": {"reason": self.failure_reason, "report": self.report} if self.failure_reason else None,
            "superseded_by": {"sequencer": self.superseded_by} if self.status == SUPERSEDED else None,
        }


class _Failed(Exception):
    """Internal: the input (or registry) makes the job fail; carries a reason code and a report."""

    def __init__(self, reason: str, report: str) -> None:
        super().__init__(report)
        self.reason, self.report = reason, report


@dataclass
class _Counts:
    rows_read: int = 0
    rows_scored: int = 0
    rows_rejected: int = 0
    physical_lines: int = 0
    raw_bytes: list[int] = field(default_factory=lambda: [0])
    data_quality: Counter = field(default_factory=Counter)


def job_id_for(ref: ObjectRef) -> str:
    """Deterministic: a retry of the same object version uses the same id (and tmp/ prefix)."""
    ident = f"{ref.bucket}\n{ref.key}\n{ref.version_id or ''}\n{ref.etag or ''}"
    return hashlib.sha256(ident.encode()).hexdigest()[:24]


# Object metadata that asks for explanation columns: `aws s3 cp f.csv s3://.../incoming/m/ --metadata explain=true`.
EXPLAIN_METADATA = "explain"


def output_columns(loaded: LoadedModel, *, explain: bool = False) -> list[str]:
    scorer = loaded.scorer
    probas = [f"proba_{k}" for k in scorer.class_keys] if scorer.has_probabilities else []
    decision = ["decision"] if scorer.decision_rule is not None else []
    explained = ["explain_base", *(f"explain_{n}" for n in loaded.card.input_schema.names)] if explain else []
    return ["prediction", *probas, *decision, "model_version", *explained]


def _explained_output(loaded: LoadedModel) -> str:
    """Which model output the explanation columns attribute: P(positive class) of a binary classifier, or the
    prediction of a regressor. Multi-class models would need one column set per class: refused."""
    scorer = loaded.scorer
    try:  # refuse before any row is read when the model cannot be explained (no background, no predict_proba)
        scorer.explainer()
    except ExplanationUnavailable as e:
        raise _Failed("explain_unavailable", e.message) from None
    if not scorer.has_probabilities:
        return "prediction"
    keys = scorer.class_keys
    if len(keys) != 2:
        raise _Failed(
            "explain_unsupported",
            f"explanation columns are written for binary classifiers and regressors; {loaded.card.name} has "
            f"{len(keys)} classes (use the API's ?explain=true, which returns every class)",
        )
    rule = scorer.decision_rule
    return str(rule["positive_class"]) if rule else keys[1]


def reject_threshold(loaded: LoadedModel | None, settings: BatchSettings) -> float:
    if loaded is not None:
        raw = loaded.card.tags.get(THRESHOLD_TAG)
        if raw is not None:
            try:
                value = float(raw)
                if 0 <= value <= 1:
                    return value
            except (TypeError, ValueError):
                pass
    return settings.reject_threshold


# -- the streaming core ----------------------------------------------------------------------------------
class _Formatter:
    """Appends the prediction columns to each scored row's raw text."""

    def __init__(self, loaded: LoadedModel, fmt: str, *, explain: bool = False) -> None:
        self.csv = fmt in (CSV, CSV_GZ)
        self.scorer = loaded.scorer
        self.version = loaded.card.version
        self.columns = output_columns(loaded, explain=explain)
        self.explain_output = _explained_output(loaded) if explain else None
        self.decides = self.scorer.decision_rule is not None
        if self.csv:
            self.class_text = {c: _csv_cell(str(c)) for c in self.scorer.classes}
            self.tail = "," + _csv_cell(self.version)
        else:
            self.class_text = {c: json.dumps(c) for c in self.scorer.classes}
            self.tail = ',"model_version":' + json.dumps(self.version)
            self.keys = [json.dumps(c) for c in self.columns]

    def header(self, layout: CsvLayout) -> bytes:
        return layout.header_bytes + ("," + ",".join(_csv_cell(c) for c in self.columns)).encode() + b"\n"

    def rows(self, raws: list[bytes], scored, explanations: Any = None) -> bytes:
        preds = scored.predictions
        ctext = self.class_text
        if scored.probabilities is not None:
            pred_s = [ctext.get(p) or self._value(p) for p in preds]
            cols = [list(map(float.__repr__, column)) for column in scored.probabilities.T.tolist()]
            if self.decides:
                cols.append([ctext.get(d) or self._value(d) for d in self.scorer.decide(scored.probabilities)])
        else:
            pred_s = [self._value(p) for p in preds]
            cols = []
        after: list[list[str]] = []  # columns after model_version
        if explanations is not None:
            j = list(explanations.outputs).index(self.explain_output)
            after.append([float.__repr__(float(explanations.base_values[j]))] * len(raws))
            after.extend(list(map(float.__repr__, c)) for c in explanations.values[:, :, j].T.tolist())
        if self.csv:
            tail = self.tail
            heads = map(",".join, zip(pred_s, *cols, strict=True))
            if after:
                rests = map(",".join, zip(*after, strict=True))
                suffixes = [("," + h + tail + "," + r).encode() for h, r in zip(heads, rests, strict=True)]
            else:
                suffixes = [("," + h + tail).encode() for h in heads]
            return b"\n".join(map(bytes.__add__, raws, suffixes)) + b"\n"
        out = []
        k = self.keys
        n_before = 1 + len(cols)
        for i, raw in enumerate(raws):
            body = raw.rstrip()[:-1]
            parts = [f",{k[0]}:{pred_s[i]}"] + [f",{k[j + 1]}:{cols[j][i]}" for j in range(len(cols))]
            extra = [f",{k[n_before + 1 + j]}:{after[j][i]}" for j in range(len(after))]
            out.append(body + ("".join(parts) + self.tail + "".join(extra) + "}").encode())
        return b"\n".join(out) + b"\n"

    def _value(self, v: Any) -> str:
        if isinstance(v, float):
            return float.__repr__(v) if math.isfinite(v) else ("" if self.csv else "null")
        return _csv_cell(str(v)) if self.csv else json.dumps(v)


def _csv_cell(text: str) -> str:
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _error_line(line: int, raw: bytes, reasons: Reasons, max_raw: int, reader_cut: bool) -> bytes:
    entry = {
        "line": line,
        "raw": raw[:max_raw].decode("utf-8", "replace"),
        "raw_truncated": reader_cut or len(raw) > max_raw,
        "reasons": [{"field": f, "message": m} for f, m in reasons],
    }
    return json.dumps(entry, ensure_ascii=False).encode() + b"\n"


# Scored frames are padded (with copies of their last row) to a multiple of this many rows. BLAS kernels
# (OpenBLAS gemv/gemm) take a different code path for the last rows of a matrix whose height is not a multiple
# of their block size, which can change a probability in its last bit; padding puts every real row through the
# same path, so a row's output does not depend on where a chunk boundary fell (fan-out = single pass, byte for
# byte). Best effort: verified with the OpenBLAS numpy wheels, not guaranteed by every BLAS.
PAD_ROWS = 16


def _score_padded(loaded: LoadedModel, frame: pd.DataFrame):
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


def _score(loaded: LoadedModel, parsed: Parsed):
    """Score the parsed rows; rows the model itself refuses move to `bad` and the rest is scored again.
    Returns the scored rows' indexes in the batch, their frame and their scores."""
    try:
        return parsed.ok, parsed.frame, _score_padded(loaded, parsed.frame)
    except InvalidInput as e:
        refused = {err.row for err in e.errors if err.row is not None} or set(range(len(parsed.ok)))
        for err in e.errors:
            for j in [err.row] if err.row is not None else range(len(parsed.ok)):
                if (None, err.message) not in parsed.bad.get(parsed.ok[j], []):
                    parsed.bad.setdefault(parsed.ok[j], []).append((None, err.message))
        keep = [j for j in range(len(parsed.ok)) if j not in refused]
        if not keep:
            return [], None, None
        ok = [parsed.ok[j] for j in keep]
        frame = parsed.frame.iloc[keep].reset_index(drop=True)
        return ok, frame, _score_padded(loaded, frame)


def _stream(
    body: Any,
    *,
    fmt: str,
    loaded: LoadedModel,
    settings: BatchSettings,
    scored_out: MultipartWriter,
    errors_out: MultipartWriter,
    counts: _Counts,
    header: bytes | None = None,
    write_header: bool = True,
    allow_multiline: bool = True,
    observer: ScoredObserver | None = None,
    explain: bool = False,
) -> None:
    """Read records from `body`, write scored rows and rejected rows. Raises _Failed for a bad header/stream."""
    is_csv = fmt in (CSV, CSV_GZ)
    formatter = _Formatter(loaded, fmt, explain=explain)
    schema = loaded.card.input_schema
    reader = RecordReader(
        raw_blocks(body, gzip=fmt.endswith(".gz"), counter=counts.raw_bytes),
        batch_rows=settings.chunk_rows,
        max_line_bytes=settings.max_line_bytes,
        quoted=is_csv,
        allow_multiline=allow_multiline,
    )
    layout = _layout(header, schema, formatter.columns) if (is_csv and header is not None) else None
    try:
        for batch in reader:
            if is_csv and layout is None:
                if 0 in batch.rejected:
                    raise _Failed("bad_header", f"the header line cannot be read: {batch.rejected[0]}")
                layout = _layout(batch.records[0], schema, formatter.columns)
                if write_header:
                    scored_out.write(formatter.header(layout))
                batch = RecordBatch(batch.records[1:], batch.lines[1:], {i - 1: r for i, r in batch.rejected.items()})
            _process(batch, layout, schema, loaded, formatter, settings, scored_out, errors_out, counts, observer)
    except CorruptInput as e:
        counts.physical_lines = reader.physical_lines
        raise _Failed(
            "unreadable",
            f"{e}; {counts.rows_read} row(s) before that point were read "
            f"({counts.rows_scored} scored, {counts.rows_rejected} rejected), none is published",
        ) from None
    counts.physical_lines = reader.physical_lines
    if counts.raw_bytes[0] == 0 and write_header:
        raise _Failed("empty", "the object is empty (0 bytes): there is nothing to score")
    if is_csv and layout is None and write_header:
        raise _Failed("empty", "the object has no header line and no rows (only blank lines)")
    if counts.rows_read == 0 and write_header:
        what = "a header but no data rows" if is_csv else "no rows (only blank lines)"
        raise _Failed("no_rows", f"the object has {what}: there is nothing to score")


def _layout(header: bytes, schema, columns) -> CsvLayout:
    try:
        return CsvLayout(header, schema, columns)
    except HeaderProblem as e:
        raise _Failed("bad_header", f"{e}; no row was scored") from None


def _process(batch, layout, schema, loaded, formatter, settings, scored_out, errors_out, counts, observer) -> None:
    if not len(batch):
        return
    parsed = parse_csv(batch, layout) if layout is not None else parse_jsonl(batch, schema, formatter.columns)
    ok, frame, scored = _score(loaded, parsed) if parsed.ok else ([], None, None)
    if ok:
        explanations = _explain(loaded, frame) if formatter.explain_output is not None else None
        scored_out.write(formatter.rows([batch.records[i] for i in ok], scored, explanations))
        counts.data_quality.update(loaded.scorer.flagger.count(frame))
        if observer is not None:
            observer(loaded, frame, scored)
    if parsed.bad:
        lines = [
            _error_line(batch.lines[i], batch.records[i], parsed.bad[i], settings.max_raw_bytes, i in batch.rejected)
            for i in sorted(parsed.bad)
        ]
        errors_out.write(b"".join(lines))
    counts.rows_read += len(batch)
    counts.rows_scored += len(ok)
    counts.rows_rejected += len(parsed.bad)


def _explain(loaded: LoadedModel, frame: pd.DataFrame) -> Any:
    try:
        return loaded.scorer.explainer().explain(frame)
    except ExplanationUnavailable as e:
        raise _Failed("explain_unavailable", e.message) from None


def _wants_explanations(response: Mapping[str, Any]) -> bool:
    value = (response.get("Metadata") or {}).get(EXPLAIN_METADATA, "")
    return str(value).strip().lower() in ("1", "true", "yes")


# -- S3 helpers ------------------------------------------------------------------------------------------
def _error_code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


_GONE = {"NoSuchKey", "NoSuchVersion", "404", "NotFound", "InvalidArgument"}


def _open(s3: Any, ref: ObjectRef, byte_range: ByteRange | None = None) -> Any:
    return _get(s3, ref, byte_range)["Body"]


def _get(s3: Any, ref: ObjectRef, byte_range: ByteRange | None = None) -> Mapping[str, Any]:
    """GetObject's response (Body and Metadata); an empty range gives an empty body and no metadata."""
    args: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key}
    if ref.version_id:
        args["VersionId"] = ref.version_id
    if byte_range is not None:
        if byte_range.end <= byte_range.start:
            return {"Body": _EmptyBody(), "Metadata": {}}
        args["Range"] = f"bytes={byte_range.start}-{byte_range.end - 1}"
    try:
        return s3.get_object(**args)
    except ClientError as e:
        if _error_code(e) in _GONE:
            raise _Failed(
                "input_missing",
                f"s3://{ref.bucket}/{ref.key}"
                + (f" version {ref.version_id}" if ref.version_id else "")
                + f" no longer exists ({_error_code(e)}): it was deleted before it was read",
            ) from None
        raise


class _EmptyBody:
    def read(self, n: int = -1) -> bytes:
        return b""


def _delete_quietly(s3: Any, bucket: str, key: str) -> None:
    s3.delete_object(Bucket=bucket, Key=key)


def _load(server: ModelServer, target: Target, settings: BatchSettings) -> LoadedModel:
    try:
        if target.version is not None:
            return server.get(target.model, version=target.version)
        return server.get(target.model, alias=target.alias or settings.default_alias)
    except ModelNotFound as e:
        raise _Failed("model_not_found", str(e)) from None
    except ModelRefused as e:
        raise _Failed("model_refused", str(e)) from None


# -- one pass --------------------------------------------------------------------------------------------
def score_object(
    ref: ObjectRef,
    *,
    server: ModelServer,
    settings: BatchSettings,
    s3: Any = None,
    job_id: str | None = None,
    observer: ScoredObserver | None = None,
) -> JobSummary:
    """Score the whole object in one streaming pass.

    Returns the succeeded summary, or a superseded one (status "superseded", nothing published) when a newer
    upload of the key has published its outputs. Raises BatchInputError (bad key), BatchJobFailed (failed summary
    written; not retryable), or BatchJobCrashed (failed summary written when possible; retryable)."""
    s3 = s3 or aws.client("s3")
    target = parse_incoming_key(ref.key)
    fmt = target.format
    job_id = job_id or job_id_for(ref)
    bucket = settings.data_bucket or ref.bucket
    started = time.monotonic()
    counts = _Counts()
    guard = Guard(s3, bucket, target.summary_key, ref.sequencer)
    scored_out = MultipartWriter(
        s3, bucket, target.scored_key, part_bytes=settings.part_bytes, gzip=fmt.endswith(".gz"), metadata=guard.metadata
    )
    errors_out = MultipartWriter(s3, bucket, target.errors_key, part_bytes=settings.part_bytes, metadata=guard.metadata)
    loaded: LoadedModel | None = None

    def summary(status: str, failure: _Failed | None = None, errors_published: bool = True) -> JobSummary:
        return JobSummary(
            job_id=job_id,
            status=status,
            **_identity(ref, target, settings),
            model_version=loaded.card.version if loaded else None,
            format=fmt,
            rows_read=counts.rows_read,
            rows_scored=counts.rows_scored,
            rows_rejected=counts.rows_rejected,
            reject_threshold=reject_threshold(loaded, settings),
            duration_seconds=time.monotonic() - started,
            output_bucket=bucket,
            scored_key=target.scored_key if status == SUCCEEDED else None,
            errors_key=target.errors_key if counts.rows_rejected and errors_published else None,
            summary_key=target.summary_key,
            failure_reason=failure.reason if failure else None,
            report=failure.report if failure else None,
            data_quality=dict(counts.data_quality),
        )

    try:
        guard.check()  # a late delivery of an old version: do not even score it
        loaded = _load(server, target, settings)
        response = _get(s3, ref)
        _stream(
            response["Body"],
            fmt=fmt,
            loaded=loaded,
            settings=settings,
            scored_out=scored_out,
            errors_out=errors_out,
            counts=counts,
            observer=observer,
            explain=_wants_explanations(response),
        )
        _check_threshold(counts.rows_read, counts.rows_rejected, reject_threshold(loaded, settings))
        guard.check()
        guard.before_write(target.scored_key)
        scored_out.complete()
        _finish_errors(guard, errors_out, target, counts.rows_rejected)
        result = summary(SUCCEEDED)
        guard.put_summary(result.to_dict())
        return result
    except Superseded as e:
        scored_out.abort()
        errors_out.abort()
        return _superseded(s3, bucket, target, summary(SUPERSEDED), e)
    except _Failed as failure:
        scored_out.abort()
        result = _publish_failure(
            s3, bucket, target, guard, lambda f=failure: summary(FAILED, f), errors_out, counts.rows_rejected
        )
        if result.status == SUPERSEDED:
            return result
        raise BatchJobFailed(result) from None
    except Exception as crash:
        scored_out.abort()
        errors_out.abort()
        report = _unexpected(crash)
        _crashed(s3, bucket, target, guard, lambda: summary(FAILED, report, errors_published=False), crash)
        raise  # not reached: _crashed raises
    except BaseException:
        scored_out.abort()
        errors_out.abort()
        raise


def _unexpected(e: BaseException) -> _Failed:
    return _Failed("unexpected_error", f"{type(e).__name__}: {str(e)[:MAX_REPORT_CHARS]}; the job is retried")


def _publish_failure(
    s3: Any,
    bucket: str,
    target: Target,
    guard: Guard,
    summary: Callable[[], JobSummary],
    errors_out: MultipartWriter,
    rejected: int,
) -> JobSummary:
    """A failed job: its errors file, no scored file (not even an old one of this key), the failed summary.
    Returns the failed summary, or the superseded one when a newer upload already published."""
    try:
        guard.check()
        _finish_errors(guard, errors_out, target, rejected)
        guard.delete(target.scored_key)  # a failed job leaves no scored file, not even its key's older one
        result = summary()
        guard.put_summary(result.to_dict())
        return result
    except Superseded as e:
        errors_out.abort()
        return _superseded(s3, bucket, target, replace(summary(), failure_reason=None, report=None), e)
    except BaseException:
        errors_out.abort()
        raise


def _crashed(
    s3: Any, bucket: str, target: Target, guard: Guard, summary: Callable[[], JobSummary], crash: Exception
) -> None:
    """After an unexpected exception: write the failed summary (counts so far) and raise BatchJobCrashed from the
    exception; if S3 refuses even that, the original exception propagates."""
    try:
        result = summary()
        guard.check()
        guard.delete(target.scored_key)
        guard.delete(target.errors_key)
        guard.put_summary(result.to_dict())
    except Exception:  # S3 refuses this too, or a newer upload published (the retry will say superseded)
        raise crash from None
    raise BatchJobCrashed(result) from crash


def _superseded(s3: Any, bucket: str, target: Target, summary: JobSummary, e: Superseded) -> JobSummary:
    """The report of a job that published nothing because a newer upload of its key already did; written to the
    superseded record (the newer summary stays as it is)."""
    result = replace(
        summary,
        status=SUPERSEDED,
        scored_key=None,
        errors_key=None,
        summary_key=target.superseded_key,
        superseded_by=e.sequencer,
    )
    body = json.dumps(result.to_dict(), indent=2).encode()
    s3.put_object(Bucket=bucket, Key=target.superseded_key, Body=body, ContentType="application/json")
    return result


def _check_threshold(rows_read: int, rows_rejected: int, threshold: float) -> None:
    if rows_read and rows_rejected / rows_read > threshold:
        raise _Failed(
            "reject_threshold",
            f"{rows_rejected} of {rows_read} rows ({rows_rejected / rows_read:.1%}) were rejected, above the "
            f"threshold of {threshold:.1%}; no row is published (see the errors file for each row's reasons)",
        )


def _finish_errors(guard: Guard, errors_out: MultipartWriter, target: Target, rejected: int) -> None:
    if rejected:
        guard.before_write(target.errors_key)
        errors_out.complete()
    else:
        errors_out.abort()
        guard.delete(target.errors_key)  # an old errors file would describe another upload


def _identity(ref: ObjectRef, target: Target, settings: BatchSettings) -> dict[str, Any]:
    """The summary fields that name the input and the model asked for (the same in every summary of a job)."""
    return {
        "input_bucket": ref.bucket,
        "input_key": ref.key,
        "input_version_id": ref.version_id,
        "input_etag": ref.etag,
        "input_sequencer": ref.sequencer,
        "model_name": target.model,
        "model_alias": None if target.version else (target.alias or settings.default_alias),
    }


# -- fan-out ---------------------------------------------------------------------------------------------
# A Step Functions error Cause can be a whole stack trace; the summary keeps its start.
MAX_REPORT_CHARS = 4000


def record_fan_out_failure(
    ref: ObjectRef, *, job_id: str, error: str, cause: str, settings: BatchSettings, s3: Any = None
) -> JobSummary:
    """Write the failed summary of a fanned-out job whose map could not finish (no chunk results to merge), or,
    when a newer upload of the key already published, the superseded record."""
    s3 = s3 or aws.client("s3")
    target = parse_incoming_key(ref.key)
    bucket = settings.data_bucket or ref.bucket
    guard = Guard(s3, bucket, target.summary_key, ref.sequencer)
    summary = JobSummary(
        job_id=job_id,
        status="failed",
        **_identity(ref, target, settings),
        model_version=target.version,
        format=target.format,
        rows_read=0,
        rows_scored=0,
        rows_rejected=0,
        reject_threshold=settings.reject_threshold,
        duration_seconds=0.0,
        output_bucket=bucket,
        scored_key=None,
        errors_key=None,
        summary_key=target.summary_key,
        failure_reason="fan_out_failed",
        report=f"{error}: {cause[:MAX_REPORT_CHARS]}",
    )
    try:
        guard.check()
        guard.put_summary(summary.to_dict())
    except Superseded as e:
        return _superseded(s3, bucket, target, replace(summary, failure_reason=None, report=None), e)
    return summary


def plan_chunks(ref: ObjectRef, *, chunk_bytes: int, s3: Any = None) -> list[ByteRange]:
    """Byte ranges that each end just after a newline, about chunk_bytes long.

    gzip objects cannot be split: one range. Quoted newlines in CSV: a range boundary may fall inside a quoted
    field; score_chunk detects any quoted field spanning lines in its range and raises ChunkingUnsafe, and the
    caller then scores the object with score_object (correct, just not parallel).
    """
    s3 = s3 or aws.client("s3")
    fmt = detect_format(ref.key)
    size = ref.size
    if size is None:
        args = {"Bucket": ref.bucket, "Key": ref.key, **({"VersionId": ref.version_id} if ref.version_id else {})}
        size = int(s3.head_object(**args)["ContentLength"])
    if fmt.endswith(".gz") or size <= chunk_bytes:
        return [ByteRange(0, size)]
    bounds = [0]
    target = chunk_bytes
    while target < size:
        cut = _next_line_start(s3, ref, target, size)
        if cut >= size:
            break
        if cut > bounds[-1]:
            bounds.append(cut)
        target = max(cut, target) + chunk_bytes
    bounds.append(size)
    return [ByteRange(a, b) for a, b in itertools.pairwise(bounds)]


def _next_line_start(s3: Any, ref: ObjectRef, pos: int, size: int, window: int = 64 * 1024) -> int:
    """The offset just after the first newline at or after pos - 1."""
    start = pos - 1
    while start < size:
        end = min(size, start + window)
        data = _open(s3, ref, ByteRange(start, end)).read()
        nl = data.find(b"\n")
        if nl >= 0:
            return start + nl + 1
        start = end
    return size


def _tmp_keys(job_id: str, index: int) -> tuple[str, str]:
    return f"tmp/{job_id}/scored-{index:06d}", f"tmp/{job_id}/errors-{index:06d}.jsonl"


def _read_header(s3: Any, ref: ObjectRef, max_line_bytes: int) -> bytes:
    data = _open(s3, ref, ByteRange(0, max_line_bytes + 1)).read()
    nl = data.find(b"\n")
    if nl < 0:
        raise _Failed("bad_header", f"the header line is longer than {max_line_bytes} bytes or has no newline")
    return data[:nl].rstrip(b"\r")


def score_chunk(
    ref: ObjectRef,
    byte_range: ByteRange,
    *,
    chunk_index: int,
    server: ModelServer,
    settings: BatchSettings,
    s3: Any = None,
    job_id: str | None = None,
    observer: ScoredObserver | None = None,
) -> ChunkResult:
    """Score one byte range into tmp/<job_id>/ parts. A failure of the input is returned as a failed
    ChunkResult (merge_chunks turns it into the failed job); ChunkingUnsafe and S3 errors are raised."""
    s3 = s3 or aws.client("s3")
    target = parse_incoming_key(ref.key)
    fmt = target.format
    job_id = job_id or job_id_for(ref)
    bucket = settings.data_bucket or ref.bucket
    started = time.monotonic()
    scored_key, errors_key = _tmp_keys(job_id, chunk_index)
    scored_out = MultipartWriter(s3, bucket, scored_key, part_bytes=settings.part_bytes, gzip=fmt.endswith(".gz"))
    errors_out = MultipartWriter(s3, bucket, errors_key, part_bytes=settings.part_bytes)
    counts = _Counts()
    loaded = None
    failure: _Failed | None = None
    try:
        loaded = _load(server, target, settings)
        first = byte_range.start == 0
        header = None
        if not first and fmt in (CSV, CSV_GZ):
            header = _read_header(s3, ref, settings.max_line_bytes)
        response = _get(s3, ref, byte_range)
        _stream(
            response["Body"],
            fmt=fmt,
            loaded=loaded,
            settings=settings,
            scored_out=scored_out,
            errors_out=errors_out,
            counts=counts,
            header=header,
            write_header=first,
            allow_multiline=False,
            observer=observer,
            explain=_wants_explanations(response),
        )
        scored_out.complete()
        errors_out.complete()
    except _Failed as e:
        failure = e
        scored_out.abort()
        errors_out.abort()
    except BaseException:
        scored_out.abort()
        errors_out.abort()
        raise
    return ChunkResult(
        index=chunk_index,
        byte_range=byte_range,
        status=FAILED if failure else SUCCEEDED,
        rows_read=counts.rows_read,
        rows_scored=counts.rows_scored,
        rows_rejected=counts.rows_rejected,
        physical_lines=counts.physical_lines,
        scored_key=None if failure else scored_key,
        errors_key=None if failure else errors_key,
        model_version=loaded.card.version if loaded else None,
        reject_threshold=reject_threshold(loaded, settings),
        failure_reason=failure.reason if failure else None,
        report=failure.report if failure else None,
        duration_seconds=time.monotonic() - started,
        data_quality=dict(counts.data_quality),
    )


def merge_chunks(
    ref: ObjectRef,
    results: list[ChunkResult],
    *,
    settings: BatchSettings,
    s3: Any = None,
    job_id: str | None = None,
    started_at: float | None = None,
) -> JobSummary:
    """Publish the chunks' parts as one scored file and one errors file, write the summary, delete tmp/.

    Returns the succeeded or superseded summary (as score_object); raises BatchJobFailed or BatchJobCrashed."""
    s3 = s3 or aws.client("s3")
    target = parse_incoming_key(ref.key)
    job_id = job_id or job_id_for(ref)
    bucket = settings.data_bucket or ref.bucket
    guard = Guard(s3, bucket, target.summary_key, ref.sequencer)
    results = sorted(results, key=lambda r: r.index)
    rows_read = sum(r.rows_read for r in results)
    rejected = sum(r.rows_rejected for r in results)
    scored = sum(r.rows_scored for r in results)
    threshold = min((r.reject_threshold for r in results), default=settings.reject_threshold)
    failed = next((r for r in results if r.status == FAILED), None)
    failure = _Failed(failed.failure_reason or "failed", failed.report or "") if failed else None
    if failure is None:
        try:
            if rows_read == 0:
                raise _Failed("no_rows", "the object has no data rows: there is nothing to score")
            _check_threshold(rows_read, rejected, threshold)
        except _Failed as e:
            failure = e

    def summary(status: str, failure: _Failed | None, errors_published: bool = True) -> JobSummary:
        duration = (time.monotonic() - started_at) if started_at else sum(r.duration_seconds for r in results)
        return JobSummary(
            job_id=job_id,
            status=status,
            **_identity(ref, target, settings),
            model_version=next((r.model_version for r in results if r.model_version), None),
            format=target.format,
            rows_read=rows_read,
            rows_scored=scored,
            rows_rejected=rejected,
            reject_threshold=threshold,
            duration_seconds=duration,
            output_bucket=bucket,
            scored_key=target.scored_key if status == SUCCEEDED else None,
            errors_key=target.errors_key if rejected and errors_published else None,
            summary_key=target.summary_key,
            chunks=len(results),
            failure_reason=failure.reason if failure else None,
            report=failure.report if failure else None,
            data_quality=dict(sum((Counter(r.data_quality) for r in results), Counter())),
        )

    errors_out = MultipartWriter(s3, bucket, target.errors_key, part_bytes=settings.part_bytes, metadata=guard.metadata)
    try:
        guard.check()
        offset = 0
        for r in results:
            if r.errors_key and r.rows_rejected:
                _copy_errors(s3, bucket, r.errors_key, offset, errors_out)
            offset += r.physical_lines
        if failure is None:
            _concat(s3, bucket, [r.scored_key for r in results if r.scored_key], target.scored_key, guard)
            _finish_errors(guard, errors_out, target, rejected)
            result = summary(SUCCEEDED, None)
            guard.put_summary(result.to_dict())
        else:
            result = _publish_failure(s3, bucket, target, guard, lambda: summary(FAILED, failure), errors_out, rejected)
    except Superseded as e:
        errors_out.abort()
        result = _superseded(s3, bucket, target, summary(SUPERSEDED, None), e)
    except Exception as crash:
        errors_out.abort()
        report = _unexpected(crash)
        _crashed(s3, bucket, target, guard, lambda: summary(FAILED, report, errors_published=False), crash)
        raise  # not reached: _crashed raises
    except BaseException:
        errors_out.abort()
        raise
    for r in results:
        for key in (r.scored_key, r.errors_key, *_tmp_keys(job_id, r.index)):
            if key:
                _delete_quietly(s3, bucket, key)
    if result.status == FAILED:
        raise BatchJobFailed(result)
    return result


def _copy_errors(s3: Any, bucket: str, key: str, offset: int, out: MultipartWriter) -> None:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    for line in body.iter_lines():
        if line:
            entry = json.loads(line)
            entry["line"] += offset
            out.write(json.dumps(entry, ensure_ascii=False).encode() + b"\n")


def _concat(s3: Any, bucket: str, sources: list[str], key: str, guard: Guard) -> None:
    """One multipart upload of the sources in order: UploadPartCopy for sources of at least 5 MiB, small
    ones concatenated in memory until they make a part (S3's minimum for all but the last part). Completed only
    if no newer upload wrote `key` meanwhile (raises Superseded)."""
    sizes = [int(s3.head_object(Bucket=bucket, Key=k)["ContentLength"]) for k in sources]
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, Metadata=guard.metadata)["UploadId"]
    parts: list[dict] = []
    buf = bytearray()

    def flush() -> None:
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=len(parts) + 1, Body=bytes(buf))
        parts.append({"PartNumber": len(parts) + 1, "ETag": etag["ETag"]})
        buf.clear()

    try:
        for source, size in zip(sources, sizes, strict=True):
            if not buf and size >= MIN_PART_BYTES:
                copied = s3.upload_part_copy(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=len(parts) + 1,
                    CopySource={"Bucket": bucket, "Key": source},
                )
                parts.append({"PartNumber": len(parts) + 1, "ETag": copied["CopyPartResult"]["ETag"]})
                continue
            buf += s3.get_object(Bucket=bucket, Key=source)["Body"].read()
            if len(buf) >= MIN_PART_BYTES:
                flush()
        if buf or not parts:
            flush()
        guard.before_write(key)
        s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts})
    except BaseException:
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise


class _MemoryOut:
    """A stand-in for MultipartWriter that keeps what is written in memory."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


def score_file(
    loaded: LoadedModel, data: bytes, fmt: str, settings: BatchSettings | None = None
) -> tuple[bytes, bytes]:
    """Score a whole small file in memory exactly as a batch job does (reader, parser, padding, formatter):
    returns (scored output, errors output), the bytes the job would write to scored/ and errors/.

    For the publish-time parity gate. Raises InvalidInput with the job's report when the file as a whole fails
    (bad header, no rows).
    """
    scored, errors = _MemoryOut(), _MemoryOut()
    try:
        _stream(
            _MemoryBody(data),
            fmt=fmt,
            loaded=loaded,
            settings=settings or BatchSettings(),
            scored_out=scored,  # type: ignore[arg-type]
            errors_out=errors,  # type: ignore[arg-type]
            counts=_Counts(),
        )
    except _Failed as e:
        raise InvalidInput(f"{e.reason}: {e.report}") from None
    return scored.getvalue(), errors.getvalue()


class _MemoryBody:
    def __init__(self, data: bytes) -> None:
        self._data, self._pos = data, 0

    def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n < 0 else self._pos + n
        out = self._data[self._pos : end]
        self._pos += len(out)
        return out
