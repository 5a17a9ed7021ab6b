"""Firehose dynamic partitioning for the local stack.

moto (5.2) writes every PutRecord(Batch) call as one object under `<prefix>YYYY/MM/DD/HH/` and evaluates no
`!{...}` expression. Streams registered here get what Firehose does in the cloud instead: each record's
partition keys are read with the stream's MetadataExtraction query (the simple `{key: .field}` form), the
prefix's `!{partitionKeyFromQuery:key}` and `!{timestamp:<pattern>}` expressions are evaluated, and records are
written grouped by the resulting prefix. Buffering, compression and error output are not emulated. The hook into
moto's delivery is in moto_patches.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sklambda_infra.local.moto_patches import Partitioner

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

    def prefix_for_data(self, data: bytes, now: datetime) -> str:
        """prefix_for a record as Firehose receives it: JSON bytes (anything else has no partition keys)."""
        try:
            parsed = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            parsed = {}
        return self.prefix_for(parsed if isinstance(parsed, dict) else {}, now)


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
    """Partition the records of the stream ``stream_name`` by ``spec`` from now on (moto's delivery is patched
    once, by moto_patches.partition_firehose_deliveries)."""
    from sklambda_infra.local.moto_patches import partition_firehose_deliveries  # moto: only when a stack runs

    with _lock:
        _streams[stream_name] = spec
    partition_firehose_deliveries(_partitioner_for)


def _partitioner_for(stream_name: str) -> Partitioner | None:
    with _lock:
        spec = _streams.get(stream_name)
    return None if spec is None else spec.prefix_for_data
