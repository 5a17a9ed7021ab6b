"""Consecutive-window logic: a model is declared drifted only after N drifted windows in a row.

The state is a small JSON-serialisable dict, so the scheduled check can keep it in S3 between runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sklambda.monitoring.drift.check import DRIFT, INSUFFICIENT_DATA, NO_DRIFT, DriftReport

STATE_FORMAT = "sklambda.monitoring.drift-state/v1"


def update_state(previous_state: Mapping[str, Any] | None, window_result: DriftReport | Mapping[str, Any]):
    """Fold one window's result into the state; return ``(state, model_drifted)``.

    - a drifted window adds one to the run of drifted windows; a no_drift window ends the run;
    - an insufficient_data window neither counts nor ends the run (a quiet hour says nothing either way);
    - the model is drifted while the run is at least ``consecutive_windows`` long (from the window's config).
    ``window_result`` is a DriftReport or its ``to_dict()``.
    """
    result = window_result.to_dict() if isinstance(window_result, DriftReport) else dict(window_result)
    verdict = result["verdict"]
    if verdict not in (DRIFT, NO_DRIFT, INSUFFICIENT_DATA):
        raise ValueError(f"unknown verdict {verdict!r}")
    required = int(result.get("config", {}).get("consecutive_windows", 2))
    prev = dict(previous_state or {})
    run = int(prev.get("consecutive_drifted", 0))
    if verdict == DRIFT:
        run += 1
    elif verdict == NO_DRIFT:
        run = 0
    drifted = run >= required
    if verdict == DRIFT:
        features = set(result.get("drifted_features", []))
        if run > 1:
            features |= set(prev.get("drifted_features", []))
    elif verdict == INSUFFICIENT_DATA:
        features = set(prev.get("drifted_features", []))
    else:
        features = set()
    state = {
        "format": STATE_FORMAT,
        "consecutive_drifted": run,
        "required": required,
        "windows_seen": int(prev.get("windows_seen", 0)) + 1,
        "last_verdict": verdict,
        "model_drifted": drifted,
        # Features flagged during the current run of drifted windows.
        "drifted_features": sorted(features),
    }
    return state, drifted
