"""The scheduled drift check, minus its Lambda: read a window of captured predictions (monitoring.windows), compare
it with the production model's baseline (monitoring.drift), keep the consecutive-window state, and write the JSON and
HTML reports.

Layout in the data bucket:
    reports/drift/<name>/<window end>.json | .html       one report per check
    reports/drift/<name>/state.json                      the run of drifted windows (drift.update_state)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from botocore.exceptions import ClientError

from sklambda import aws
from sklambda.monitoring.drift import DriftConfig, DriftReport, check_card, render_html, update_state
from sklambda.monitoring.windows import Window, read_capture
from sklambda.registry.signing import NOT_VERIFIED, CardVerifier, SignatureCheck, read_card
from sklambda.registry.store import Registry

REPORT_PREFIX = "reports/drift/"


@dataclass(frozen=True)
class DriftCheckResult:
    """What one drift check found and wrote (the drift check function returns `to_dict`).

    report: the window's DriftReport. model_drifted: the consecutive-window rule fired (DriftConfig.consecutive_windows
        drifted windows in a row), which is what raises an alert.
    state: the consecutive-window state after this window. report_keys: {"json", "html", "state"} → S3 keys written.
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

    def to_dict(self) -> dict:
        """The JSON summary: model, version, window (ISO 8601), verdict, drifted features, row counts, state, report
        keys, card signature.
        """
        return {
            "model": self.model,
            "version": self.version,
            "window": {"start": self.window.start.isoformat(), "end": self.window.end.isoformat()},
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
        }


class StateStore:
    """The consecutive-window state of each model, one JSON object in S3."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3, self.bucket = s3, bucket

    @staticmethod
    def key(model: str) -> str:
        """The S3 key of a model's state: `reports/drift/<model>/state.json`."""
        return f"{REPORT_PREFIX}{model}/state.json"

    def load(self, model: str) -> dict | None:
        """The stored state of `model`, or None before its first check. Other S3 errors propagate as ClientError."""
        try:
            return json.loads(self.s3.get_object(Bucket=self.bucket, Key=self.key(model))["Body"].read())
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise

    def save(self, model: str, state: dict) -> None:
        """Write the state of `model` (JSON; NaN refused with ValueError)."""
        body = json.dumps(state, indent=2, allow_nan=False).encode()
        self.s3.put_object(Bucket=self.bucket, Key=self.key(model), Body=body, ContentType="application/json")


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
) -> DriftCheckResult:
    """Check one model's window, update its consecutive-window state and write the JSON and HTML reports.

    The version checked is the one `alias` points at now; its card (whose baseline is the reference) is verified with
    `verifier`, the trusted key. `verifier=None` must be asked for explicitly; the report then says `"card_signature":
    {"verified": false, ...}`. With `max_rows`, a larger window is compared on a seeded sample of that many rows
    (monitoring.windows.read_capture). `clock` stamps the report's checked_at.

    Returns the DriftCheckResult. Raises ModelNotFound for an unknown model or alias; ModelRefused when the card fails
    verification (nothing is written then); ValueError for a drift.* card tag that is not a known setting. S3 and KMS
    errors propagate as botocore's ClientError.
    """
    s3 = s3 or aws.client("s3")
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
    stamp = window.end.astimezone(UTC).strftime("%Y-%m-%dT%H-%M-%SZ")
    keys = {
        "json": f"{REPORT_PREFIX}{model}/{stamp}.json",
        "html": f"{REPORT_PREFIX}{model}/{stamp}.html",
        "state": store.key(model),
    }
    document = {
        **report.to_dict(),
        "rows_in_window": captured.rows_in_window,  # `rows` were compared: a sample when above max_rows
        "rows_in_window_estimated": captured.estimated,
        "quarantined_records": captured.quarantined,  # lines left out: not decodable or values of the wrong type
        "quarantine_reasons": dict(captured.quarantine_reasons),
        "model_drifted": drifted,
        "checked_at": clock().isoformat(),
        "card_signature": signature.to_dict(),
    }
    s3.put_object(
        Bucket=data_bucket,
        Key=keys["json"],
        Body=json.dumps(document, indent=2, allow_nan=False).encode(),
        ContentType="application/json",
    )
    s3.put_object(
        Bucket=data_bucket,
        Key=keys["html"],
        Body=render_html(report, card.baseline, quarantined=captured.quarantine_reasons).encode(),
        ContentType="text/html; charset=utf-8",
    )
    store.save(model, state)
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
    )
