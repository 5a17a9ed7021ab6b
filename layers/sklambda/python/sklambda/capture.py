"""Privacy-safe capture of predictions: pseudonymized rows + scores sent to Kinesis Data Firehose.

Key management. The pseudonymization key is a 256-bit *data key* of the stack's DataKey (KMS), created once by an
operator with `kms:GenerateDataKeyWithoutPlaintext` (`sklambda privacy create-key`) under the encryption context
`config.PSEUDONYM_KEY_CONTEXT`. Only its ciphertext is stored (the `PseudonymKeyCiphertext` template parameter →
`SKLAMBDA_PSEUDONYM_KEY_CIPHERTEXT`). A container decrypts it once (`kms:Decrypt`, allowed only with that context)
and computes HMAC-SHA256 locally: one KMS call per container instead of one `kms:GenerateMac` per value.
Every record names the key it was made with (`key_id`, a fingerprint that reveals nothing about the key).
Rotation: create a new data key, deploy it; new records carry the new key_id. Old records keep old pseudonyms, so
`erase` takes every key ciphertext still present in retained captures (records expire with the capture retention).

Raw values of pii features never leave the function: they are replaced by `h1:<hex>` before a record is built.
A capture failure (KMS, Firehose, anything) never fails a prediction: it is counted and reported to the caller.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sklambda import aws
from sklambda.config import PSEUDONYM_KEY_CONTEXT, CaptureSettings

PSEUDONYM_PREFIX = "h1:"
# PutRecordBatch limits: 500 records and 4 MiB per call; a record is at most 1,000 KiB.
MAX_BATCH_RECORDS = 500
MAX_BATCH_BYTES = 4 * 1024 * 1024
MAX_RECORD_BYTES = 1000 * 1024


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
        text = value if isinstance(value, str) else json.dumps(value)
        return PSEUDONYM_PREFIX + hmac.new(self._key, text.encode("utf-8"), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:  # never show the key
        return f"Pseudonymizer(key_id={self.key_id!r})"


@dataclass(frozen=True)
class CaptureRecord:
    """One scored row as stored: pii features pseudonymized. `request_id` is the API request id or a batch job id."""

    timestamp: str
    model: str
    version: str
    request_id: str
    row: int
    features: dict[str, Any]
    prediction: Any
    probabilities: dict[str, float] | None
    key_id: str

    def to_json_line(self) -> bytes:
        return (json.dumps(asdict(self), separators=(",", ":"), default=str) + "\n").encode("utf-8")


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
    now: datetime | None = None,
) -> list[CaptureRecord]:
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
                row=i,
                features=features,
                prediction=predictions[i],
                probabilities=dict(probabilities[i]) if probabilities is not None else None,
                key_id=pseudonymizer.key_id,
            )
        )
    return records


@dataclass
class CaptureOutcome:
    """What one capture call did; `failed` records were lost (counted, never raised)."""

    sampled: bool = False
    sent: int = 0
    failed: int = 0
    calls: int = 0
    errors: list[str] = field(default_factory=list)


def batches(lines: Sequence[bytes]) -> list[list[bytes]]:
    """Split records into PutRecordBatch calls within the count and size limits."""
    out: list[list[bytes]] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        if current and (len(current) == MAX_BATCH_RECORDS or size + len(line) > MAX_BATCH_BYTES):
            out.append(current)
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        out.append(current)
    return out


class Capturer:
    """Samples requests, pseudonymizes and sends their rows to Firehose. One per container.

    `capture()` never raises: failures are returned in the outcome (the handler turns them into metrics).
    """

    def __init__(
        self,
        settings: CaptureSettings,
        *,
        pseudonymizer: Pseudonymizer | None = None,
        firehose: Callable[[], Any] | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.settings = settings
        self._pseudonymizer = pseudonymizer
        self._firehose = firehose or (lambda: aws.client("firehose"))
        self._rng = rng

    @property
    def enabled(self) -> bool:
        return self.settings.enabled and self.settings.sample_rate > 0

    def pseudonymizer(self) -> Pseudonymizer:
        if self._pseudonymizer is None:
            assert self.settings.key_ciphertext is not None
            self._pseudonymizer = Pseudonymizer.from_ciphertext(self.settings.key_ciphertext)
        return self._pseudonymizer

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
    ) -> CaptureOutcome:
        outcome = CaptureOutcome()
        if not self.enabled or not rows:
            return outcome
        rate = self.settings.sample_rate
        if rate < 1 and self._rng() >= rate:
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
            )
            lines = [r.to_json_line() for r in records]
        except Exception as e:  # the key could not be unwrapped, a value could not be serialized...
            outcome.failed = len(rows)
            outcome.errors.append(f"{type(e).__name__}: {e}")
            return outcome
        too_big = [line for line in lines if len(line) > MAX_RECORD_BYTES]
        if too_big:
            outcome.failed += len(too_big)
            outcome.errors.append(f"{len(too_big)} records over {MAX_RECORD_BYTES} bytes")
            lines = [line for line in lines if len(line) <= MAX_RECORD_BYTES]
        for batch in batches(lines):
            outcome.calls += 1
            try:
                answer = self._firehose().put_record_batch(
                    DeliveryStreamName=self.settings.stream, Records=[{"Data": line} for line in batch]
                )
            except Exception as e:
                outcome.failed += len(batch)
                outcome.errors.append(f"{type(e).__name__}: {e}")
                continue
            failed = int(answer.get("FailedPutCount", 0))
            outcome.failed += failed
            outcome.sent += len(batch) - failed
            if failed:
                codes = {r.get("ErrorCode") for r in answer.get("RequestResponses", []) if r.get("ErrorCode")}
                outcome.errors.append(f"{failed} records refused: {', '.join(sorted(map(str, codes)))}")
        return outcome
