"""The engine's S3 reads and the fan-out's concatenation of parts (boto3 S3 client calls, nothing cached).

Reads take an ObjectRef (pinned to its version when the event named one) and an optional ByteRange; a deleted
input is a JobFailure (input_missing), any other ClientError propagates (retryable).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from sklambda.batch.errors import JobFailure
from sklambda.batch.job import ByteRange, ObjectRef
from sklambda.batch.ordering import Guard
from sklambda.batch.writer import MultipartWriter
from sklambda.config import MIN_PART_BYTES

# Object metadata that asks for explanation columns: `aws s3 cp f.csv s3://.../incoming/m/ --metadata explain=true`.
EXPLAIN_METADATA = "explain"
# Error codes of GetObject for an object (or version) that no longer exists.
_GONE = {"NoSuchKey", "NoSuchVersion", "404", "NotFound", "InvalidArgument"}


def get_object(s3: Any, ref: ObjectRef, byte_range: ByteRange | None = None) -> Mapping[str, Any]:
    """GetObject's response (Body, a stream, and Metadata) for the whole object or bytes [start, end).

    An empty range gives an empty body and no metadata, without a request. Raises JobFailure input_missing when
    the object or its version was deleted before it was read; other ClientErrors propagate.
    """
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
        code = str(e.response.get("Error", {}).get("Code", ""))
        if code in _GONE:
            raise JobFailure(
                "input_missing",
                f"s3://{ref.bucket}/{ref.key}"
                + (f" version {ref.version_id}" if ref.version_id else "")
                + f" no longer exists ({code}): it was deleted before it was read",
            ) from None
        raise


def wants_explanations(response: Mapping[str, Any]) -> bool:
    """Whether the object's metadata asks for explanation columns (EXPLAIN_METADATA = 1, true or yes)."""
    value = (response.get("Metadata") or {}).get(EXPLAIN_METADATA, "")
    return str(value).strip().lower() in ("1", "true", "yes")


def read_header(s3: Any, ref: ObjectRef, max_line_bytes: int) -> bytes:
    """The object's first line without its line ending (a CSV header, for chunks that start after it).

    Raises JobFailure bad_header when no newline comes within `max_line_bytes` bytes.
    """
    data = get_object(s3, ref, ByteRange(0, max_line_bytes + 1))["Body"].read()
    nl = data.find(b"\n")
    if nl < 0:
        raise JobFailure("bad_header", f"the header line is longer than {max_line_bytes} bytes or has no newline")
    return data[:nl].rstrip(b"\r")


def next_line_start(s3: Any, ref: ObjectRef, pos: int, size: int, window: int = 64 * 1024) -> int:
    """The byte offset just after the first newline at or after `pos - 1` (`size` when there is none), reading
    `window` bytes per ranged request."""
    start = pos - 1
    while start < size:
        end = min(size, start + window)
        data = get_object(s3, ref, ByteRange(start, end))["Body"].read()
        nl = data.find(b"\n")
        if nl >= 0:
            return start + nl + 1
        start = end
    return size


def copy_errors(s3: Any, bucket: str, key: str, offset: int, out: MultipartWriter) -> None:
    """Append a chunk's errors file (JSON lines) to `out`, adding `offset` (the physical lines of the chunks
    before it) to each line number so that numbers refer to the whole file."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    for line in body.iter_lines():
        if line:
            entry = json.loads(line)
            entry["line"] += offset
            out.write(json.dumps(entry, ensure_ascii=False).encode() + b"\n")


def concat(s3: Any, bucket: str, sources: list[str], key: str, guard: Guard) -> None:
    """Write the objects `sources` (in order) to `key` as one multipart upload, completed only at the end.

    Sources of at least MIN_PART_BYTES (5 MiB, S3's minimum for all but the last part) are copied server-side
    (UploadPartCopy); smaller ones are concatenated in memory until they make a part. The upload is completed only
    if no newer upload of the input wrote `key` meanwhile (raises ordering.Superseded) and aborted on any exception.
    """
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


class _EmptyBody:
    def read(self, n: int = -1) -> bytes:
        return b""
