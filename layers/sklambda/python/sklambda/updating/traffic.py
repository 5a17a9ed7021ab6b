"""An alias's captured traffic since a rollout started: the row records and error records of its answering versions.

Capture lines (sklambda.monitoring.capture) come in two kinds, both starting with the marker, the timestamp, the model
and the version:
- row records: one per scored row, with `request_id`, `features`, `prediction`, `probabilities`, `inference_id`,
  `latency_ms` (the request's scoring time in ms, the same on every row of one request; None for batch rows) and
  `alias` (the alias the request named; None for an explicit version);
- error records: one per failed request that had resolved a version, with `"outcome": "error"`, `status`, `code`,
  `rows` and `alias`, and no features.

Only requests that named the alias count (`alias` equal to it): callers asking for a version explicitly are not part
of the canary's random split, so they would bias the comparison. A request is one (request_id, version) pair: a
request whose rows were split between the stable and the canary version counts once for each.

Both kinds of record are written for sampled requests only (the capture sample rate applies to failed requests too),
so error rates computed here are the sampled requests' rates.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from sklambda.monitoring.windows import READ_THREADS, Window, capture_prefix

ERROR_OUTCOME = "error"
REQUEST_COLUMNS = ("request_id", "version", "time", "outcome", "latency_ms", "status", "code", "rows")


@dataclass(frozen=True)
class AliasTraffic:
    """What an alias answered in a window, per version.

    requests: one row per (request_id, version): `request_id`, `version`, `time` (pandas UTC timestamp of its first
        record), `outcome` ("ok" or "error"), `latency_ms` (float, NaN for errors and batch rows), `status` and `code`
        (errors only), `rows` (rows in the request).
    rows: the row records themselves (dicts as captured: features, prediction, probabilities, inference_id...), in
        the order read.
    objects, lines: S3 objects and lines read. unreadable: lines of the model's partitions that are not JSON objects.
    """

    requests: pd.DataFrame
    rows: list[dict] = field(default_factory=list)
    objects: int = 0
    lines: int = 0
    unreadable: int = 0

    def of(self, version: str) -> pd.DataFrame:
        """The requests answered by `version`."""
        return self.requests[self.requests["version"] == version]


def read_alias_traffic(
    s3: Any, bucket: str, model: str, alias: str, versions: Collection[str], window: Window
) -> AliasTraffic:
    """The captured requests of `model` that named `alias`, answered by one of `versions`, in [start, end).

    s3: a boto3 S3 client; bucket: the data bucket (capture/model=<name>/dt=<day>/, gzip when the key ends in .gz).
    Lines are first selected on their bytes (the model, one of the versions and the alias must appear), then decoded
    and checked field by field. Lines that are not JSON objects are counted as unreadable, never raised. S3 errors
    propagate as botocore's ClientError.
    """
    keys = [
        obj["Key"]
        for day in window.days()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=capture_prefix(model, day))
        for obj in page.get("Contents", [])
    ]

    def fetch(key: str) -> bytes:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        return gzip.decompress(body) if key.endswith(".gz") else body

    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        bodies = list(pool.map(fetch, keys))
    wanted = {str(v) for v in versions}
    marks = [f'"version":{json.dumps(v)}'.encode() for v in wanted]
    alias_mark = f'"alias":{json.dumps(alias)}'.encode()
    start, end = pd.Timestamp(window.start).tz_convert(UTC), pd.Timestamp(window.end).tz_convert(UTC)
    rows: list[dict] = []
    errors: list[dict] = []
    lines = unreadable = 0
    for body in bodies:
        for line in body.splitlines():
            if not line.strip():
                continue
            lines += 1
            # Cheap byte test first: most lines of a busy model belong to other aliases or versions.
            if alias_mark not in line or not any(m in line for m in marks):
                continue
            try:
                record = json.loads(line)
            except ValueError:
                unreadable += 1
                continue
            if not isinstance(record, dict):
                unreadable += 1
                continue
            if record.get("model") != model or record.get("alias") != alias or str(record.get("version")) not in wanted:
                continue
            (errors if record.get("outcome") == ERROR_OUTCOME else rows).append(record)
    frame = _requests(rows, errors)
    inside = (frame["time"] >= start) & (frame["time"] < end)
    kept = set(zip(frame.loc[inside, "request_id"], frame.loc[inside, "version"], strict=True))
    return AliasTraffic(
        frame[inside].reset_index(drop=True),
        [r for r in rows if (r.get("request_id"), str(r.get("version"))) in kept],
        objects=len(keys),
        lines=lines,
        unreadable=unreadable,
    )


def _requests(rows: list[dict], errors: list[dict]) -> pd.DataFrame:
    """One row per (request_id, version): row records grouped, error records as they are."""
    ok = pd.DataFrame(
        {
            "request_id": [r.get("request_id") for r in rows],
            "version": [str(r.get("version")) for r in rows],
            "time": [r.get("timestamp") for r in rows],
            "latency_ms": pd.to_numeric(pd.Series([r.get("latency_ms") for r in rows], dtype=object), errors="coerce"),
        }
    )
    if len(ok):
        ok = (
            ok.groupby(["request_id", "version"], sort=False)
            .agg(time=("time", "min"), latency_ms=("latency_ms", "first"), rows=("time", "size"))
            .reset_index()
            .assign(outcome="ok", status=None, code=None)
        )
    failed = pd.DataFrame(
        {
            "request_id": [r.get("request_id") for r in errors],
            "version": [str(r.get("version")) for r in errors],
            "time": [r.get("timestamp") for r in errors],
            "outcome": ERROR_OUTCOME,
            "latency_ms": float("nan"),
            "status": [r.get("status") for r in errors],
            "code": [r.get("code") for r in errors],
            "rows": [r.get("rows") for r in errors],
        }
    )
    parts = [p for p in (ok, failed) if len(p)]
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=list(REQUEST_COLUMNS))
    frame = frame.reindex(columns=list(REQUEST_COLUMNS))
    frame["time"] = pd.to_datetime(frame["time"], utc=True, errors="coerce", format="ISO8601")
    frame["latency_ms"] = pd.to_numeric(frame["latency_ms"], errors="coerce").astype("float64")
    return frame[frame["time"].notna()]


def since(started_at: str, now: datetime) -> Window:
    """The window [started_at, now) of a rollout (started_at ISO 8601; a naive one is read as UTC). Raises ValueError
    when it does not parse."""
    start = datetime.fromisoformat(started_at)
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    return Window(start, max(now, start))
