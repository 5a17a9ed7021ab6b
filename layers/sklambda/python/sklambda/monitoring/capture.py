"""Privacy-safe capture of predictions: pseudonymized rows + scores, delivered by Firehose to S3 capture/.

Transport. A record is one JSON line written to the function's own log (stdout), marked with
`"capture": "sklambda/v1"`. A CloudWatch Logs subscription filter on that marker sends the lines to the capture
Firehose stream, which decompresses them, extracts the messages and partitions them by model and day into the data
bucket (template.yaml). Writing a line costs microseconds; a synchronous PutRecordBatch per request cost a
network round trip (+28-46 % on warm p50 even against a local moto server). CloudWatch Logs retries delivery to
Firehose, so nothing is lost when the stream is throttled; the function cannot fail because of it.

Key management. The pseudonymization key is a 256-bit *data key* of the stack's DataKey (KMS), created once by an
operator with `kms:GenerateDataKeyWithoutPlaintext` (`sklambda privacy create-key`) under the encryption context
`config.PSEUDONYM_KEY_CONTEXT`. Only its ciphertext is stored (the `PseudonymKeyCiphertext` template parameter →
`SKLAMBDA_PSEUDONYM_KEY_CIPHERTEXT`). A container decrypts it once (`kms:Decrypt`, allowed only with that context)
and computes HMAC-SHA256 locally: one KMS call per container instead of one `kms:GenerateMac` per value.
Every record names the key it was made with (`key_id`, a fingerprint that reveals nothing about the key).
Rotation: create a new data key, deploy it; new records carry the new key_id. Old records keep old pseudonyms, so
`erase` takes every key ciphertext still present in retained captures (records expire with the capture retention).

Raw values of pii features never leave the function: they are replaced by `h1:<hex>` before a record is built, so
neither the log group nor S3 ever holds one (the log group keeps pseudonymized records for its retention).
A capture failure (KMS, serialization, anything) never fails a prediction: it is counted and reported to the caller.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from sklambda import aws
from sklambda.config import PSEUDONYM_KEY_CONTEXT, CaptureSettings
from sklambda.registry.schema import to_records

PSEUDONYM_PREFIX = "h1:"
# The marker the log subscription filter selects on: FilterPattern { $.capture = "sklambda/v1" }.
CAPTURE_MARKER = "sklambda/v1"
# A CloudWatch Logs event is at most 256 KiB (longer Lambda log lines are split, which would break the JSON).
MAX_RECORD_BYTES = 256 * 1024 - 1024


def create_key_ciphertext(kms_key_id: str) -> str:
    """A new pseudonymization data key, wrapped by `kms_key_id`; base64 of the CiphertextBlob (the plaintext is
    never returned to the caller)."""
    blob = aws.client("kms").generate_data_key_without_plaintext(
        KeyId=kms_key_id, KeySpec="AES_256", EncryptionContext=PSEUDONYM_KEY_CONTEXT
    )["CiphertextBlob"]
    return base64.b64encode(blob).decode("ascii")


class Pseudonymizer:
    """Keyed HMAC-SHA256 of identifiers: stable for one key, unlinkable across keys."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("a pseudonymization key must have at least 128 bits")
        self._key = key
        self.key_id = hmac.new(key, b"sklambda key id", hashlib.sha256).hexdigest()[:12]

    @classmethod
    def from_ciphertext(cls, ciphertext_b64: str) -> Pseudonymizer:
        """Unwrap the data key with kms:Decrypt (one call; do it once per container)."""
        blob = base64.b64decode(ciphertext_b64)
        plaintext = aws.client("kms").decrypt(CiphertextBlob=blob, EncryptionContext=PSEUDONYM_KEY_CONTEXT)["Plaintext"]
        return cls(plaintext)

    def pseudonym(self, value: Any) -> str:
        """h1:<64 hex>, HMAC-SHA256 of the value's text (a string as is, anything else as JSON) under the key."""
        text = value if isinstance(value, str) else json.dumps(value)
        return PSEUDONYM_PREFIX + hmac.new(self._key, text.encode("utf-8"), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:  # never show the key
        return f"Pseudonymizer(key_id={self.key_id!r})"


@dataclass(frozen=True)
class CaptureRecord:
    """One scored row as stored: pii features pseudonymized. `request_id` is the API request id or a batch job id;
    `row` the row's place in the request (0-based) or its line in the batch input (1-based); `inference_id` the
    prediction id returned to the caller (sklambda.serving.ids). `latency_ms`: the time the version took to score the
    request's rows it answered, in milliseconds (the same on each of them; None for batch rows); `alias`: the alias the
    request named (None for an explicit version or a batch job). Records written before ids (or latencies) existed
    have no `inference_id` (`latency_ms`, `alias`) key; monitoring/windows.py reads them all the same. A row record has
    no `outcome` key: that marks an ErrorRecord."""

    timestamp: str
    model: str
    version: str
    request_id: str
    row: int
    features: dict[str, Any]
    prediction: Any
    probabilities: dict[str, float] | None
    key_id: str
    inference_id: str | None = None
    latency_ms: float | None = None
    alias: str | None = None

    def to_json_line(self) -> str:
        """The record as one compact JSON line ending in a newline: the marker first, then the timestamp, model and
        version, in the byte form monitoring/windows.py selects on (tests/unit/test_capture_line_format.py)."""
        # The fields by name, not dataclasses.asdict: asdict deep-copies every nested dict and list (~0.1 ms per
        # record, a third of a compiled-path request); json.dumps reads them as they are.
        line = {"capture": CAPTURE_MARKER, **{name: getattr(self, name) for name in _CAPTURE_FIELDS}}
        return json.dumps(line, separators=(",", ":"), default=str) + "\n"


_CAPTURE_FIELDS = tuple(f.name for f in fields(CaptureRecord))
ERROR_OUTCOME = "error"


@dataclass(frozen=True)
class ErrorRecord:
    """One failed request that had resolved a version (a refused model, rows that version's validation refused, an
    unexpected error while scoring), for the rollout check's error rates per version. Same marker and leading fields as
    a CaptureRecord (so it travels the same way and is read with the same selection), then `outcome` "error", the HTTP
    `status`, the error `code` (sklambda.errors), the `rows` of the request that version was to answer, and `alias`.
    No features: nothing of the request's values is kept. Every reader of rows skips it (`is_error`)."""

    timestamp: str
    model: str
    version: str
    request_id: str
    status: int
    code: str
    rows: int
    alias: str | None = None

    def to_json_line(self) -> str:
        """The record as one compact JSON line ending in a newline, in CaptureRecord.to_json_line's leading form."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        head = {k: values.pop(k) for k in ("timestamp", "model", "version", "request_id")}
        line = {"capture": CAPTURE_MARKER, **head, "outcome": ERROR_OUTCOME, **values}
        return json.dumps(line, separators=(",", ":"), default=str) + "\n"


def is_error(record: Mapping[str, Any]) -> bool:
    """Whether a decoded capture record is an ErrorRecord (no row in it): readers of rows skip those."""
    return record.get("outcome") == ERROR_OUTCOME


def build_records(
    *,
    model: str,
    version: str,
    request_id: str,
    rows: Sequence[Mapping[str, Any]],
    predictions: Sequence[Any],
    probabilities: Sequence[Mapping[str, float]] | None,
    feature_names: Sequence[str],
    pii: Iterable[str],
    pseudonymizer: Pseudonymizer,
    inference_ids: Sequence[str] | None = None,
    row_numbers: Sequence[int] | None = None,
    now: datetime | None = None,
    latency_ms: float | None = None,
    alias: str | None = None,
) -> list[CaptureRecord]:
    """One record per row, in order: the named features (pii ones pseudonymized, nulls kept), the row's prediction,
    probabilities and inference id (None when `inference_ids` is not given), all stamped with one UTC millisecond
    timestamp (`now`, default the current time), `latency_ms` and `alias` (CaptureRecord). `row_numbers` gives each
    record's `row` (default 0, 1, ...).

    Raises whatever the pseudonymizer raises; Capturer.capture turns that into a counted failure.
    """
    pii = set(pii)
    stamp = (now or datetime.now(UTC)).isoformat(timespec="milliseconds")
    records = []
    for i, row in enumerate(rows):
        features = {}
        for name in feature_names:
            value = row.get(name)
            if name in pii and value is not None:
                value = pseudonymizer.pseudonym(value)
            features[name] = value
        records.append(
            CaptureRecord(
                timestamp=stamp,
                model=model,
                version=version,
                request_id=request_id,
                row=row_numbers[i] if row_numbers is not None else i,
                features=features,
                prediction=predictions[i],
                probabilities=dict(probabilities[i]) if probabilities is not None else None,
                key_id=pseudonymizer.key_id,
                inference_id=inference_ids[i] if inference_ids is not None else None,
                latency_ms=latency_ms,
                alias=alias,
            )
        )
    return records


@dataclass
class CaptureOutcome:
    """What one capture call did; `failed` records were lost (counted, never raised)."""

    sampled: bool = False
    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def _write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


class Capturer:
    """Samples, pseudonymizes and writes scored rows as capture lines to the log. One per container.

    `capture()` never raises: failures are returned in the outcome (the handler turns them into metrics).
    """

    def __init__(
        self,
        settings: CaptureSettings,
        *,
        pseudonymizer: Pseudonymizer | None = None,
        write: Callable[[str], None] = _write_stdout,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self._pseudonymizer = pseudonymizer
        self._write = write
        self._rng = rng

    @property
    def enabled(self) -> bool:
        """Capture is on: a key ciphertext is configured and the sample rate is above 0."""
        return self.settings.enabled

    def pseudonymizer(self) -> Pseudonymizer:
        """The container's pseudonymizer, unwrapped with kms:Decrypt on first use. Raises what KMS raises."""
        if self._pseudonymizer is None:
            assert self.settings.key_ciphertext is not None
            self._pseudonymizer = Pseudonymizer.from_ciphertext(self.settings.key_ciphertext)
        return self._pseudonymizer

    def sampled(self) -> bool:
        """Is this request captured? (predict: one draw per request)."""
        rate = self.settings.sample_rate
        return self.enabled and (rate >= 1 or self._rng() < rate)

    def sample_rows(self, n: int, *, already: int = 0) -> list[int]:
        """Which of `n` rows are captured (batch: one draw per row), within `max_rows` given `already` captured."""
        if not self.enabled or n <= 0:
            return []
        rate = self.settings.sample_rate
        picked = list(range(n)) if rate >= 1 else [i for i in range(n) if self._rng() < rate]
        if self.settings.max_rows is not None:
            picked = picked[: max(0, self.settings.max_rows - already)]
        return picked

    def capture(
        self,
        *,
        model: str,
        version: str,
        request_id: str,
        rows: Sequence[Mapping[str, Any]],
        predictions: Sequence[Any],
        probabilities: Sequence[Mapping[str, float]] | None,
        feature_names: Sequence[str],
        pii: Iterable[str],
        inference_ids: Sequence[str] | None = None,
        row_numbers: Sequence[int] | None = None,
        sample: bool = True,
        latency_ms: float | None = None,
        alias: str | None = None,
    ) -> CaptureOutcome:
        """Capture `rows` (with their `inference_ids`, `row_numbers`, `latency_ms` and `alias`, see build_records) if
        this request is sampled (`sample=False`: the caller sampled already)."""
        outcome = CaptureOutcome()
        if not self.enabled or not rows or (sample and not self.sampled()):
            return outcome
        outcome.sampled = True
        try:
            records = build_records(
                model=model,
                version=version,
                request_id=request_id,
                rows=rows,
                predictions=predictions,
                probabilities=probabilities,
                feature_names=feature_names,
                pii=pii,
                pseudonymizer=self.pseudonymizer(),
                inference_ids=inference_ids,
                row_numbers=row_numbers,
                latency_ms=latency_ms,
                alias=alias,
            )
            lines = [r.to_json_line() for r in records]
        except Exception as e:  # the key could not be unwrapped, a value could not be serialized...
            outcome.failed = len(rows)
            outcome.errors.append(f"{type(e).__name__}: {e}")
            return outcome
        kept = [line for line in lines if len(line.encode("utf-8")) <= MAX_RECORD_BYTES]
        if len(kept) < len(lines):
            outcome.failed += len(lines) - len(kept)
            outcome.errors.append(f"{len(lines) - len(kept)} records over {MAX_RECORD_BYTES} bytes")
        try:
            self._write("".join(kept))  # one write: the lines of one request stay together in the log stream
        except Exception as e:
            outcome.failed += len(kept)
            outcome.errors.append(f"{type(e).__name__}: {e}")
            return outcome
        outcome.sent = len(kept)
        return outcome

    def capture_error(
        self,
        *,
        model: str,
        version: str,
        request_id: str,
        status: int,
        code: str,
        rows: int,
        alias: str | None,
        sample: bool = True,
    ) -> CaptureOutcome:
        """Write one ErrorRecord if this request is sampled (at the rate rows are: error rates stay comparable with
        the captured rows); never raises, as `capture`."""
        outcome = CaptureOutcome()
        if not self.enabled or (sample and not self.sampled()):
            return outcome
        outcome.sampled = True
        try:
            stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
            self._write(ErrorRecord(stamp, model, version, request_id, status, code, rows, alias).to_json_line())
        except Exception as e:
            outcome.failed = 1
            outcome.errors.append(f"{type(e).__name__}: {e}")
            return outcome
        outcome.sent = 1
        return outcome


class JobCapture:
    """Captures a sample of one batch job's scored rows (`request_id` = the job id); a ScoredObserver.

    Rows are drawn independently at the batch sample rate, up to `max_rows` for the job (per chunk under fan-out).
    A retried job draws again, so a retry can capture rows a failed attempt already captured.
    """

    def __init__(self, capturer: Capturer, job_id: str) -> None:
        self.capturer = capturer
        self.job_id = job_id
        self.outcome = CaptureOutcome()
        self.model: str | None = None
        self.version: str | None = None

    def __call__(self, loaded: Any, frame: Any, scored: Any, inference_ids: Any = None, lines: Any = None) -> None:
        """Capture a sample of one scored batch (a batch.stream.ScoredObserver): `frame` holds the scored rows,
        `scored` their ScoredArrays, `inference_ids` their ids and `lines` their 1-based lines in the input (the
        records' `row`). A failed capture is counted in `self.outcome`, never raised."""
        picked = self.capturer.sample_rows(len(frame), already=self.outcome.sent + self.outcome.failed)
        if not picked:
            return
        probabilities = None
        if scored.probabilities is not None:
            keys = loaded.scorer.class_keys
            probabilities = [dict(zip(keys, scored.probabilities[i].tolist(), strict=True)) for i in picked]
        schema = loaded.card.input_schema
        self.model, self.version = loaded.card.name, loaded.card.version
        outcome = self.capturer.capture(
            model=loaded.card.name,
            version=loaded.card.version,
            request_id=self.job_id,
            rows=to_records(frame.iloc[picked]),
            predictions=[scored.predictions[i] for i in picked],
            probabilities=probabilities,
            feature_names=schema.names,
            pii=schema.pii_features,
            inference_ids=[inference_ids[i] for i in picked] if inference_ids is not None else None,
            row_numbers=[lines[i] for i in picked] if lines is not None else None,
            sample=False,
        )
        self.outcome.sampled = True
        self.outcome.sent += outcome.sent
        self.outcome.failed += outcome.failed
        self.outcome.errors.extend(outcome.errors[:3])
