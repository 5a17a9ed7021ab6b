"""The scheduled drift check, minus its Lambda: read a window of captured predictions (monitoring.windows), compare
it with the production model's baseline (monitoring.drift), keep the consecutive-window state, and write the JSON and
HTML reports, and the model's monitoring page over its last windows.

Layout in the data bucket (one folder per model, so the page's relative links work in the bucket and in a download):
    reports/drift/<name>/<window end>.json | .html       one report per check, stating its window and baseline
    reports/drift/<name>/state.json                      the run of drifted windows (drift.update_state)
    reports/drift/<name>/history.json                    the last windows, summarized (drift.history)
    reports/drift/<name>/index.html                      the monitoring page (drift.page), rewritten by every check
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from botocore.exceptions import ClientError

from sklambda import aws
from sklambda.config import DRIFT_HISTORY_WINDOWS, DriftCheckSettings
from sklambda.monitoring.drift import (
    DriftConfig,
    DriftReport,
    check_card,
    merge,
    prediction_distribution,
    render_html,
    render_page,
    summarize,
    update_state,
)
from sklambda.monitoring.drift.history import HISTORY_FORMAT
from sklambda.monitoring.windows import Window, read_capture
from sklambda.registry.signing import NOT_VERIFIED, CardVerifier, SignatureCheck, read_card
from sklambda.registry.store import Registry

REPORT_PREFIX = "reports/drift/"
PAGE_NAME, HISTORY_NAME = "index.html", "history.json"
# A report's name: its window's end, UTC, to the second (colons are awkward in file names).
STAMP_FORMAT = "%Y-%m-%dT%H-%M-%SZ"
_REPORT_JSON = re.compile(r"^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\dZ\.json$")
# Writers of one history racing (a scheduled and an on-demand check): each retry re-reads and merges again.
HISTORY_WRITE_ATTEMPTS = 3
_CONFLICT = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


@dataclass(frozen=True)
class DriftCheckResult:
    """What one drift check found and wrote (the drift check function returns `to_dict`).

    report: the window's DriftReport. model_drifted: the consecutive-window rule fired (DriftConfig.consecutive_windows
        drifted windows in a row), which is what raises an alert.
    state: the consecutive-window state after this window. report_keys: {"json", "html", "state", "history", "page"}
        → S3 keys written ("history" and "page" missing when the page could not be written: see page_error).
    rows_in_window: captured rows of the version in the window (estimated when sampled).
    card_signature: what was checked about the card whose baseline was the reference.
    quarantined_records, quarantine_reasons: capture lines left out, counted by reason.
    """

    model: str
    version: str
    window: Window
    report: DriftReport
    model_drifted: bool
    state: dict
    report_keys: dict[str, str]
    rows_in_window: int = 0
    card_signature: SignatureCheck = NOT_VERIFIED
    quarantined_records: int = 0
    quarantine_reasons: Mapping[str, int] = field(default_factory=dict)
    # Why the monitoring page was not updated (the reports, state and verdict stand), or None.
    page_error: str | None = None

    def to_dict(self) -> dict:
        """The JSON summary: model, version, window (ISO 8601 UTC, end exclusive, hours), verdict, drifted features,
        row counts, state, report keys, card signature, and `page_error` when the page was not updated.
        """
        return {
            "model": self.model,
            "version": self.version,
            "window": window_bounds(self.window),
            "verdict": self.report.verdict,
            "model_drifted": self.model_drifted,
            "drifted_features": list(self.report.drifted_features),
            "rows": self.report.rows,
            "rows_in_window": self.rows_in_window,
            "quarantined_records": self.quarantined_records,
            "quarantine_reasons": dict(self.quarantine_reasons),
            "state": self.state,
            "reports": self.report_keys,
            "card_signature": self.card_signature.to_dict(),
            **({"page_error": self.page_error} if self.page_error else {}),
        }


def window_bounds(window: Window) -> dict[str, Any]:
    """{"start", "end", "end_exclusive": True, "hours"}: the window in ISO 8601 UTC; a record stamped exactly at `end`
    belongs to the next window (monitoring.windows reads [start, end))."""
    start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "end_exclusive": True,
        "hours": (end - start).total_seconds() / 3600,
    }


def report_folder(model: str) -> str:
    """The S3 prefix of a model's reports, state, history and page: `reports/drift/<model>/`."""
    return f"{REPORT_PREFIX}{model}/"


def _read_object(s3: Any, bucket: str, key: str) -> tuple[bytes, str] | None:
    """(the object's bytes, its ETag), or None when there is none.

    Whether it exists is asked with a listing first: without s3:ListBucket, S3 answers a GET of a missing key with
    403 AccessDenied rather than 404 (GetObject API reference, "Permissions"), which must not be taken for "none".
    Other S3 errors propagate as ClientError.
    """
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1).get("Contents", [])
    if not listed or listed[0]["Key"] != key:
        return None
    try:
        response = s3.get_object(Bucket=bucket, Key=key)
    except ClientError as e:
        if _code(e) in ("NoSuchKey", "404"):  # deleted since the listing
            return None
        raise
    return response["Body"].read(), response["ETag"]


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


class StateStore:
    """The consecutive-window state of each model, one JSON object in S3 (a subclass sets another `prefix`: the
    model-quality check keeps its own under reports/quality/)."""

    prefix = REPORT_PREFIX

    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3, self.bucket = s3, bucket

    @classmethod
    def key(cls, model: str) -> str:
        """The S3 key of a model's state: `<prefix><model>/state.json` (`reports/drift/<model>/state.json`)."""
        return f"{cls.prefix}{model}/state.json"

    def load(self, model: str) -> dict | None:
        """The stored state of `model`, or None before its first check. Other S3 errors propagate as ClientError."""
        found = _read_object(self.s3, self.bucket, self.key(model))
        return None if found is None else json.loads(found[0])

    def save(self, model: str, state: dict) -> None:
        """Write the state of `model` (JSON; NaN refused with ValueError)."""
        body = json.dumps(state, indent=2, allow_nan=False).encode()
        self.s3.put_object(Bucket=self.bucket, Key=self.key(model), Body=body, ContentType="application/json")


class HistoryStore:
    """Each model's last windows, summarized (drift.history entries, oldest first), in one JSON object beside its
    reports: `reports/drift/<model>/history.json` = {"format", "model", "windows": [...]}.

    One small object read and written per check, instead of listing and reading every report: the page needs a few
    numbers per window, a report holds every test of every feature. When it is missing (the first check, or reports
    written before it existed), it is rebuilt once from the JSON reports in the folder.

    A subclass sets another `prefix`, history `format` and `summarize` (the model-quality check's history).
    """

    prefix, format = REPORT_PREFIX, HISTORY_FORMAT

    def __init__(self, s3: Any, bucket: str, limit: int) -> None:
        self.s3, self.bucket, self.limit = s3, bucket, limit

    @classmethod
    def key(cls, model: str) -> str:
        """The S3 key of a model's history: `<prefix><model>/history.json` (`reports/drift/<model>/history.json`)."""
        return f"{cls.prefix}{model}/{HISTORY_NAME}"

    @staticmethod
    def summarize(document: Mapping[str, Any], reports: Mapping[str, str], *, window_end: str | None = None) -> dict:
        """The history entry of one JSON report (drift.history.summarize)."""
        return summarize(document, reports, window_end=window_end)

    def load(self, model: str) -> list[dict] | None:
        """The entries, oldest first, or None when there is no readable history. S3 errors propagate (ClientError)."""
        return self._read(model)[0]

    def _read(self, model: str) -> tuple[list[dict] | None, dict[str, str]]:
        """(the entries or None, the condition under which a write replaces exactly the object read)."""
        found = _read_object(self.s3, self.bucket, self.key(model))
        if found is None:
            return None, {"IfNoneMatch": "*"}
        body, etag = found
        try:
            windows = json.loads(body).get("windows")
        except (ValueError, AttributeError):
            windows = None  # not a history (torn, foreign): rebuilt from the reports and overwritten
        return (windows if isinstance(windows, list) else None), {"IfMatch": etag}

    def rebuild(self, model: str) -> list[dict]:
        """Entries from the model's JSON reports, the last `limit` by window end. A report that cannot be read as one
        is skipped. S3 errors propagate as ClientError."""
        folder = f"{self.prefix}{model}/"
        names = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder):
            names += [o["Key"][len(folder) :] for o in page.get("Contents", [])]
        entries: list[dict] = []
        for name in sorted(n for n in names if _REPORT_JSON.match(n))[-self.limit :]:
            try:
                document = json.loads(self.s3.get_object(Bucket=self.bucket, Key=folder + name)["Body"].read())
                end = datetime.strptime(name[: -len(".json")], STAMP_FORMAT).replace(tzinfo=UTC).isoformat()
                entry = self.summarize(
                    document, {"json": name, "html": name[: -len(".json")] + ".html"}, window_end=end
                )
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
            entries = merge(entries, entry, self.limit)
        return entries

    def add(self, model: str, entry: Mapping[str, Any]) -> list[dict]:
        """Merge `entry` into the model's history (drift.history.merge) and write it; returns the entries written.

        Written with If-Match on the ETag read (If-None-Match: * when there was none), so two checks racing do not
        drop each other's window: the loser reads again and merges (HISTORY_WRITE_ATTEMPTS times). Raises ClientError
        when S3 refuses, or still conflicts after that many attempts.
        """
        for attempt in range(HISTORY_WRITE_ATTEMPTS):
            entries, condition = self._read(model)
            entries = merge(self.rebuild(model) if entries is None else entries, entry, self.limit)
            body = json.dumps({"format": self.format, "model": model, "windows": entries}, allow_nan=False)
            try:
                self.s3.put_object(
                    Bucket=self.bucket,
                    Key=self.key(model),
                    Body=body.encode(),
                    ContentType="application/json",
                    **condition,
                )
                return entries
            except ClientError as e:
                if attempt == HISTORY_WRITE_ATTEMPTS - 1 or _code(e) not in _CONFLICT:
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")


def run_drift_check(
    model: str,
    *,
    registry: Registry,
    data_bucket: str,
    window: Window,
    verifier: CardVerifier | None,
    alias: str = "production",
    config: DriftConfig | None = None,
    s3: Any = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    max_rows: int | None = None,
    history_windows: int | None = None,
) -> DriftCheckResult:
    """Check one model's window, update its consecutive-window state, write the JSON and HTML reports, and rewrite the
    model's monitoring page from its last `history_windows` windows (default: SKLAMBDA_DRIFT_HISTORY_WINDOWS's).

    The version checked is the one `alias` points at now; its card (whose baseline is the reference) is verified with
    `verifier`, the trusted key. `verifier=None` must be asked for explicitly; the report then says `"card_signature":
    {"verified": false, ...}`. With `max_rows`, a larger window is compared on a seeded sample of that many rows
    (monitoring.windows.read_capture). `clock` stamps the report's checked_at and the page.

    Both reports state the window ([start, end) in UTC, its hours, the rows captured in it and compared) and the
    baseline (model version and publish time). The page and its history are written last: when they cannot be, the
    result carries `page_error` and everything else (reports, state, verdict) stands, so an alert never waits on a
    view.

    Returns the DriftCheckResult. Raises ModelNotFound for an unknown model or alias; ModelRefused when the card fails
    verification (nothing is written then); ValueError for a drift.* card tag that is not a known setting. S3 and KMS
    errors propagate as botocore's ClientError.
    """
    s3 = s3 or aws.client("s3")
    limit = history_windows or DriftCheckSettings.defaults()[DRIFT_HISTORY_WINDOWS]
    version = registry.resolve(model, alias=alias)
    card, signature = read_card(registry, verifier, model, version)
    captured = read_capture(s3, data_bucket, card, window, max_rows=max_rows)
    report = check_card(
        card,
        captured.features,
        config=config,
        predictions=np.asarray(captured.predictions, dtype=object) if captured.rows else None,
        probabilities=captured.probabilities,
    )
    store = StateStore(s3, data_bucket)
    state, drifted = update_state(store.load(model), report)
    folder, stamp = report_folder(model), window.end.astimezone(UTC).strftime(STAMP_FORMAT)
    names = {"json": f"{stamp}.json", "html": f"{stamp}.html"}
    keys = {**{kind: folder + name for kind, name in names.items()}, "state": store.key(model)}
    checked_at = clock().isoformat()
    bounds = {
        **window_bounds(window),
        "rows_in_window": captured.rows_in_window,
        "rows_in_window_estimated": captured.estimated,
        "rows_compared": captured.rows,
    }
    reference = {"model": card.name, "version": card.version, "published_at": card.created_at}
    document = {
        "model": {"name": card.name, "version": card.version},
        "window": bounds,
        "baseline": reference,
        **report.to_dict(),
        "rows_in_window": captured.rows_in_window,  # `rows` were compared: a sample when above max_rows
        "rows_in_window_estimated": captured.estimated,
        "quarantined_records": captured.quarantined,  # lines left out: not decodable or values of the wrong type
        "quarantine_reasons": dict(captured.quarantine_reasons),
        "model_drifted": drifted,
        "checked_at": checked_at,
        "card_signature": signature.to_dict(),
        "prediction_distribution": prediction_distribution(
            card.task, captured.predictions, card.baseline.get("predictions")
        ),
        # Relative: the page is beside the report, in the bucket as in a downloaded copy of the folder.
        "monitoring_page": {"key": folder + PAGE_NAME, "href": PAGE_NAME},
    }
    s3.put_object(
        Bucket=data_bucket,
        Key=keys["json"],
        Body=json.dumps(document, indent=2, allow_nan=False).encode(),
        ContentType="application/json",
    )
    html = render_html(
        report,
        card.baseline,
        quarantined=captured.quarantine_reasons,
        window=bounds,
        reference=reference,
        page_href=PAGE_NAME,
    )
    s3.put_object(Bucket=data_bucket, Key=keys["html"], Body=html.encode(), ContentType="text/html; charset=utf-8")
    store.save(model, state)
    page_error = None
    try:
        history = HistoryStore(s3, data_bucket, limit)
        entries = history.add(model, summarize(document, names))
        page = render_page(
            model, entries, limit=limit, location=f"s3://{data_bucket}/{folder}", generated_at=checked_at
        )
        s3.put_object(
            Bucket=data_bucket,
            Key=folder + PAGE_NAME,
            Body=page.encode(),
            ContentType="text/html; charset=utf-8",
        )
        keys |= {"history": history.key(model), "page": folder + PAGE_NAME}
    except Exception as e:  # the page is a view over the reports: its failure must not hide this window's verdict
        page_error = f"{type(e).__name__}: {e}"
    return DriftCheckResult(
        model,
        version,
        window,
        report,
        drifted,
        state,
        keys,
        captured.rows_in_window,
        signature,
        captured.quarantined,
        captured.quarantine_reasons,
        page_error,
    )
