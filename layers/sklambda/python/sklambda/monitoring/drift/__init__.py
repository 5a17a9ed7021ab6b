"""Drift statistics: compare a window of live rows and predictions with a model card's baseline.

    report = check_drift(card.baseline, card.input_schema, window, predictions=pred, probabilities=proba,
                         config=DriftConfig.from_card_tags(card.tags))
    state, model_drifted = update_state(previous_state, report)
    html = render_html(report, card.baseline)
    entry = summarize(report_document, {"json": ..., "html": ...})     # one window of the model's history
    page = render_page(card.name, merge(history, entry, limit=30), limit=30)

Domain only: no S3, no Lambda event shapes.
"""

from sklambda.monitoring.drift.check import (
    DRIFT,
    INSUFFICIENT_DATA,
    NO_DRIFT,
    ColumnDrift,
    DriftReport,
    check_card,
    check_drift,
)
from sklambda.monitoring.drift.config import DriftConfig
from sklambda.monitoring.drift.history import merge, prediction_distribution, summarize
from sklambda.monitoring.drift.html import render_html
from sklambda.monitoring.drift.page import render_page
from sklambda.monitoring.drift.state import update_state

__all__ = [
    "DRIFT",
    "INSUFFICIENT_DATA",
    "NO_DRIFT",
    "ColumnDrift",
    "DriftConfig",
    "DriftReport",
    "check_card",
    "check_drift",
    "merge",
    "prediction_distribution",
    "render_html",
    "render_page",
    "summarize",
    "update_state",
]
