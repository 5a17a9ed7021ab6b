"""Publishing a job's outputs only while no newer upload of the same input key has published its own.

S3 may deliver the notification of an object version late or again (SQS redelivers, a DLQ redrive replays an old
message). Every output key of a job (keys.py) depends on its input key only, so a job for an older version of the
key must not replace what a newer version published. S3's event `sequencer` orders the events of one key: two
sequencers are compared as hex strings after padding the shorter with leading zeros (AWS: "Event message
structure"). The sequencer that produced an output is stored with it, in its metadata (x-amz-meta-sklambda-sequencer)
and, for the summary, in its JSON (input.sequencer).

Before each output is completed (or deleted), its stored sequencer is read; a newer one means the job is
superseded (Superseded is raised and the caller publishes nothing more). The summary, written last, is the
arbiter: it is written with If-Match on the ETag read before (If-None-Match: * when there was none), so of two
jobs racing for the same keys only one wins; the loser reads the summary again and is either superseded or
retries. What remains unguarded is the moment between reading an output's sequencer and completing it
(milliseconds, against the seconds a job takes). Deletes are conditional too (If-Match).

A job without a sequencer (the engine called directly, an old fan-out execution) is unordered: it publishes as
before, unconditionally.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

SEQUENCER_METADATA = "sklambda-sequencer"
_CONFLICT = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}
_MISSING = {"NoSuchKey", "404", "NotFound"}
MAX_ATTEMPTS = 10


def is_newer(candidate: str | None, than: str | None) -> bool:
    """True when `candidate` orders strictly after `than` (a missing sequencer orders before any other)."""
    if candidate is None:
        return False
    if than is None:
        return True
    a, b = candidate.strip().upper(), than.strip().upper()
    width = max(len(a), len(b))
    return a.rjust(width, "0") > b.rjust(width, "0")


class Superseded(Exception):
    """A newer upload of the same input key has already published outputs (`sequencer` is the newer one's)."""

    def __init__(self, sequencer: str | None) -> None:
        super().__init__(f"superseded by the upload with sequencer {sequencer}")
        self.sequencer = sequencer


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


class Guard:
    """The ordering checks of one job; `sequencer` is its input's event sequencer (None: unordered)."""

    def __init__(self, s3: Any, bucket: str, summary_key: str, sequencer: str | None) -> None:
        self.s3, self.bucket, self.summary_key, self.sequencer = s3, bucket, summary_key, sequencer
        self._summary_etag: str | None = None

    @property
    def metadata(self) -> dict[str, str]:
        """S3 user metadata for every output this job writes."""
        return {SEQUENCER_METADATA: self.sequencer} if self.sequencer else {}

    def _head(self, key: str) -> tuple[str | None, str | None]:
        """(ETag, stored sequencer) of the current object, (None, None) when there is none."""
        try:
            head = self.s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as e:
            if _code(e) in _MISSING:
                return None, None
            raise
        return head["ETag"], (head.get("Metadata") or {}).get(SEQUENCER_METADATA)

    def check(self) -> None:
        """Raise Superseded when the current summary was produced by a newer upload of the input key."""
        if self.sequencer is None:
            return
        self._summary_etag, current = self._head(self.summary_key)
        if is_newer(current, self.sequencer):
            raise Superseded(current)

    def before_write(self, key: str) -> None:
        """Call just before completing `key`: raises Superseded when a newer upload already wrote it."""
        if self.sequencer is None:
            return
        _, current = self._head(key)
        if is_newer(current, self.sequencer):
            raise Superseded(current)

    def delete(self, key: str) -> None:
        """Delete this job's earlier output at `key` (if any) unless a newer upload wrote it."""
        if self.sequencer is None:
            self.s3.delete_object(Bucket=self.bucket, Key=key)
            return
        for _ in range(MAX_ATTEMPTS):
            etag, current = self._head(key)
            if etag is None:
                return
            if is_newer(current, self.sequencer):
                raise Superseded(current)
            try:
                self.s3.delete_object(Bucket=self.bucket, Key=key, IfMatch=etag)
                return
            except ClientError as e:
                if _code(e) not in _CONFLICT and _code(e) not in _MISSING:
                    raise
        raise RuntimeError(f"s3://{self.bucket}/{key} kept changing while it was being deleted")

    def put_summary(self, summary: dict[str, Any]) -> None:
        """Write the summary: unconditionally for an unordered job, else only over an older (or no) summary."""
        body = json.dumps(summary, indent=2, sort_keys=False).encode()
        args = {"Bucket": self.bucket, "Key": self.summary_key, "Body": body, "ContentType": "application/json"}
        if self.sequencer is None:
            self.s3.put_object(**args)
            return
        for _ in range(MAX_ATTEMPTS):
            condition = {"IfMatch": self._summary_etag} if self._summary_etag else {"IfNoneMatch": "*"}
            try:
                self.s3.put_object(**args, **condition, Metadata=self.metadata)
                return
            except ClientError as e:
                if _code(e) not in _CONFLICT and _code(e) not in _MISSING:
                    raise
            self.check()  # another job wrote the summary meanwhile: superseded, or retry over its ETag
        raise RuntimeError(f"s3://{self.bucket}/{self.summary_key} kept changing while this job wrote it")
