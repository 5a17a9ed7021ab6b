"""Writing outputs that appear atomically: S3 multipart uploads, completed only at the end."""

from __future__ import annotations

import zlib
from typing import Any

from sklambda.config import MIN_PART_BYTES


class MultipartWriter:
    """Buffered writes to one key. Nothing is visible until complete(); abort() leaves nothing behind.

    A small output (under one part) is written with a single PutObject at complete(), which is atomic too.
    """

    def __init__(
        self, s3: Any, bucket: str, key: str, *, part_bytes: int, gzip: bool = False, metadata: dict | None = None
    ) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key
        self.metadata = dict(metadata or {})  # S3 user metadata of the object
        self.part_bytes = max(part_bytes, MIN_PART_BYTES)
        self._gz = zlib.compressobj(6, zlib.DEFLATED, 31) if gzip else None
        self._buf: list[bytes] = []
        self._buffered = 0
        self._upload_id: str | None = None
        self._parts: list[dict] = []
        self.bytes_written = 0  # uncompressed bytes given to write()
        self.closed = False

    def write(self, data: bytes) -> None:
        """Append `data` (gzipped first when the writer compresses); uploads a part each time `part_bytes` of
        (compressed) data are buffered. S3 errors propagate; nothing is visible until complete()."""
        if not data:
            return
        self.bytes_written += len(data)
        if self._gz is not None:
            data = self._gz.compress(data)
        self._buf.append(data)
        self._buffered += len(data)
        if self._buffered >= self.part_bytes:
            self._upload(b"".join(self._buf))

    def _upload(self, data: bytes) -> None:
        if self._upload_id is None:
            self._upload_id = self.s3.create_multipart_upload(Bucket=self.bucket, Key=self.key, Metadata=self.metadata)[
                "UploadId"
            ]
        number = len(self._parts) + 1
        etag = self.s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, PartNumber=number, Body=data
        )["ETag"]
        self._parts.append({"PartNumber": number, "ETag": etag})
        self._buf, self._buffered = [], 0

    def complete(self) -> None:
        """Make the object visible: a single PutObject when no part was uploaded, else the last part and
        CompleteMultipartUpload. S3 errors propagate (the caller aborts)."""
        if self._gz is not None:
            self._buf.append(self._gz.flush())
        data = b"".join(self._buf)
        if self._upload_id is None:
            self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=data, Metadata=self.metadata)
        else:
            if data:
                self._upload(data)
            self.s3.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
            )
        self.closed = True

    def abort(self) -> None:
        """Abandon the object: AbortMultipartUpload when parts were uploaded; idempotent, a no-op once complete."""
        if self._upload_id is not None and not self.closed:
            self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)
        self.closed = True
