"""The model-quality check's history: one compact entry per checked window, the data of a model's quality page.

Each entry is built from a window's JSON report (`summarize`), so a lost history can be rebuilt from the reports (as
the drift check's, monitoring.drift_check.HistoryStore; entries are merged by window end with drift.history.merge).
An entry holds, per window: its bounds, the model version, the verdict and the consecutive-window outcome, the labeled
rows and join rate, each realized metric with its interval and holdout reference, each estimated metric (CBPE) with
its interval, the main metric of every segment group, and the names of the window's reports.

Domain only: no S3.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

HISTORY_FORMAT = "sklambda.monitoring.quality-history/v1"
# The one metric a segment chart plots per group: a rate for classifiers, an error in the target's unit for regressors
# (model_quality.fairness computes both per group).
SEGMENT_METRIC = {"classification": "accuracy", "regression": "mae"}


def summarize(document: Mapping[str, Any], reports: Mapping[str, str], *, window_end: str | None = None) -> dict:
    """The history entry of one window, from its JSON report `document` (as monitoring.quality_check writes it).

    reports: {"json", "html"} → the report files' names, relative to the model's folder (the page's links).
    window_end: the window's end (ISO 8601) when the document does not state it. Raises KeyError when the document
    has no verdict.
    """
    window = dict(document.get("window") or {})
    realized = document.get("realized") or {}
    estimated = document.get("estimated") or {}
    metrics = {
        m["name"]: {k: m.get(k) for k in ("value", "lower", "upper", "reference", "verdict")}
        for m in realized.get("metrics") or []
    }
    estimates = {
        m["name"]: {k: m.get(k) for k in ("value", "lower", "upper", "reference", "verdict")}
        for m in estimated.get("metrics") or []
    }
    return {
        "window": {"start": window.get("start"), "end": window.get("end") or window_end, "hours": window.get("hours")},
        "reports": dict(reports),
        "model_version": (document.get("model") or {}).get("version"),
        "checked_at": document.get("checked_at"),
        "verdict": document["verdict"],
        "model_degraded": bool(document.get("model_degraded")),
        "degraded_metrics": list(realized.get("degraded_metrics") or []),
        "labeled_rows": document.get("labeled_rows"),
        "join_rate": (document.get("join") or {}).get("join_rate"),
        "metrics": metrics,
        "estimated_verdict": estimated.get("verdict"),
        "estimated_degraded": bool(estimated.get("estimated_degraded")),
        "estimated": estimates,
        "segments": _segments(document.get("segments"), document.get("task")),
    }


def _segments(section: Mapping[str, Any] | None, task: Any) -> dict[str, dict]:
    """{feature: {"metric", "groups": {group: value}, "flagged": [gap names]}} of the window's segment report."""
    if not section:
        return {}
    metric = SEGMENT_METRIC.get(str(task), "accuracy")
    out = {}
    for feature in section.get("features") or []:
        groups = {
            str(g.get("group")): (g.get("metrics") or {}).get(metric)
            for g in feature.get("groups") or []
            if not g.get("too_small")
        }
        flagged = [gap.get("name") for gap in feature.get("gaps") or [] if gap.get("flagged")]
        out[str(feature.get("name"))] = {"metric": metric, "groups": groups, "flagged": flagged}
    return out
