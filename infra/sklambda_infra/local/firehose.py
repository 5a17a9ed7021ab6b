"""Firehose dynamic partitioning for the local stack.

moto (5.2) writes every PutRecord(Batch) call as one object under `<prefix>YYYY/MM/DD/HH/` and evaluates no
`!{...}` expression. Streams registered here get what Firehose does in the cloud instead: each record's
partition keys are read with the stream's MetadataExtraction query (the simple `{key: .field}` form), the
prefix's `!{partitionKeyFromQuery:key}` and `!{timestamp:<pattern>}` expressions are evaluated, and records are
written grouped by the resulting prefix. Buffering, compression and error output are not emulated.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_QUERY = re.compile(r"^\{\s*(\w+)\s*:\s*\.(\w+)\s*(?:,\s*(\w+)\s*:\s*\.(\w+)\s*)*\}$")
_PAIR = re.compile(r"(\w+)\s*:\s*\.(\w+)")
_EXPRESSION = re.compile(r"!\{(partitionKeyFromQuery|timestamp):([^}]+)\}")
# Firehose's timestamp patterns are Java DateTimeFormatter ones; these are the fields prefixes use.
_JAVA_TO_STRFTIME = (("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H"), ("mm", "%M"), ("ss", "%S"))

_lock = threading.Lock()
_streams: dict[str, Partitioning] = {}


@dataclass(frozen=True)
class Partitioning:
    prefix: str
    keys: dict[str, str]  # partition key -> record field

    def prefix_for(self, record: dict[str, Any], now: datetime) -> str:
        def value(match: re.Match) -> str:
            kind, arg = match.group(1), match.group(2)
            if kind == "timestamp":
                pattern = arg
                for java, strf in _JAVA_TO_STRFTIME:
                    pattern = pattern.replace(java, strf)
                return now.strftime(pattern)
            return str(record.get(self.keys[arg], "unknown"))

        return _EXPRESSION.sub(value, self.prefix)


def partitioning(prefix: str, query: str | None) -> Partitioning | None:
    """The emulation for a stream, or None when its prefix uses something this module does not evaluate."""
    if "!{" not in prefix:
        return None
    keys = dict(_PAIR.findall(query)) if query and _QUERY.match(query.strip()) else {}
    for kind, arg in _EXPRESSION.findall(prefix):
        if kind == "partitionKeyFromQuery" and arg not in keys:
            return None
    if "!{" in _EXPRESSION.sub("", prefix):
        return None
    return Partitioning(prefix, keys)


def register(stream_name: str, spec: Partitioning) -> None:
    with _lock:
        _streams[stream_name] = spec
        _install()


def _install() -> None:
    from moto.firehose.models import FirehoseBackend
    from moto.s3.models import s3_backends

    original = FirehoseBackend.put_s3_records
    if getattr(original, "_sklambda_partitioning", False):
        return

    def put_s3_records(self, delivery_stream_name, version_id, s3_destination, records):
        spec = _streams.get(delivery_stream_name)
        if spec is None:
            return original(self, delivery_stream_name, version_id, s3_destination, records)
        now = datetime.now(UTC)
        groups: dict[str, list[bytes]] = defaultdict(list)
        for r in records:
            try:
                parsed = json.loads(r["Data"])
            except (ValueError, UnicodeDecodeError):
                parsed = {}
            groups[spec.prefix_for(parsed if isinstance(parsed, dict) else {}, now)].append(r["Data"])
        bucket = s3_destination["BucketARN"].split(":")[-1]
        stamp = now.strftime("%Y-%m-%d-%H-%M-%S")
        for prefix, data in groups.items():
            key = f"{prefix}{delivery_stream_name}-{version_id}-{stamp}-{uuid.uuid4()}"
            s3_backends[self.account_id][self.partition].put_object(bucket, key, b"".join(data))
        return [{"RecordId": str(uuid.uuid4())} for _ in records]

    put_s3_records._sklambda_partitioning = True  # type: ignore[attr-defined]
    FirehoseBackend.put_s3_records = put_s3_records
