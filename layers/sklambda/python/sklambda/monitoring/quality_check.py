"""The scheduled model-quality check, minus its Lambda: join the labels that arrived in a window with the captured
predictions they refer to, compute the realized metrics with intervals, compare them with the card's holdout metrics
(model_quality.degradation), estimate the performance of the window's predictions before their labels arrive (CBPE,
model_quality.estimation), compute per-segment metrics and fairness gaps (model_quality.fairness), keep the
consecutive-window state, and write the JSON and HTML reports and the model's quality page.

Which rows. For a window [start, end):
- labels: those that *arrived* in [start, end) (ground_truth.read_labels, newest per id);
- predictions they join (on `inference_id`): captured in [start - lookback_days, end), of any version (labels arrive
  late; a label joins the version that served its prediction). Metrics are reported per version; the version the
  alias points at now is the one checked against its card;
- the estimation window: the predictions of that version *served* in [start, end) (labels or not): what CBPE
  estimates, so a drop can be seen before the labels come.

Too few labels (below the rule's min_labeled_rows) is the verdict `insufficient_labels`, never degraded; a window of
too few served predictions has the estimated verdict `insufficient_rows`.

Layout in the data bucket (one folder per model, beside the drift check's reports/drift/<name>/):
    reports/quality/<name>/<window end>.json | .html   one report per check
    reports/quality/<name>/state.json                  {"realized", "estimated"}: two degradation.update_state states
    reports/quality/<name>/history.json                the last windows, summarized (model_quality.history)
    reports/quality/<name>/index.html                  the quality page (model_quality.page), rewritten by every check
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from sklambda import aws
from sklambda.config import QUALITY_HISTORY_WINDOWS, QUALITY_LOOKBACK_DAYS, QualityCheckSettings
from sklambda.monitoring.charts import PAGE_NAME, other_page_href
from sklambda.monitoring.drift_check import STAMP_FORMAT, HistoryStore, StateStore, window_bounds
from sklambda.monitoring.ground_truth.store import read_labels
from sklambda.monitoring.model_quality.degradation import (
    INSUFFICIENT_LABELS,
    DegradationConfig,
    DegradationReport,
    check_degradation,
    update_state,
)
from sklambda.monitoring.model_quality.estimation import Z_95, EstimationUnavailable, MulticlassEstimate, estimate
from sklambda.monitoring.model_quality.fairness import MIN_GROUP_ROWS, REGRESSION, SegmentReport, segment_report
from sklambda.monitoring.model_quality.history import HISTORY_FORMAT, summarize
from sklambda.monitoring.model_quality.join import ID, LABEL, join_labels
from sklambda.monitoring.model_quality.metrics import HIGHER_IS_BETTER, NAN_ESTIMATE, Estimate, wilson, window_metrics
from sklambda.monitoring.model_quality.page import render_page, render_report
from sklambda.monitoring.windows import Window, read_predictions
from sklambda.registry.card import CLASSIFICATION, ModelCard
from sklambda.registry.signing import CardVerifier, SignatureCheck, read_card
from sklambda.registry.store import Registry

REPORT_PREFIX = "reports/quality/"
REPORT_FORMAT = "sklambda.monitoring.quality-report/v1"
STATE_FORMAT = "sklambda.monitoring.quality-state/v1"
# The estimated verdict of a window with fewer served predictions than min_labeled_rows (the rule's
# insufficient_labels, named for what is missing: these rows need no label).
INSUFFICIENT_ROWS = "insufficient_rows"
# Card tags that set one model's degradation rule, as drift.* tags set its drift check (DriftConfig.from_card_tags):
# quality.alpha, quality.correction, quality.min_labeled_rows, quality.consecutive_windows, quality.tolerance.<metric>.
TAG_PREFIX, TOLERANCE_TAG = "quality.", "tolerance."
_TAG_TYPES = {"alpha": float, "correction": str, "min_labeled_rows": int, "consecutive_windows": int}


def config_from_card_tags(tags: Mapping[str, str] | None, base: DegradationConfig | None = None) -> DegradationConfig:
    """`base` (default DegradationConfig()) with a card's quality.* tags applied, e.g. {"quality.alpha": "0.01",
    "quality.tolerance.roc_auc": "0.03"}; other tags are ignored. Raises ValueError naming the tag for an unknown
    setting or metric, or a value that does not parse or is out of range (DegradationConfig's checks)."""
    base = base or DegradationConfig()
    changes: dict[str, Any] = {}
    tolerances = dict(base.tolerances)
    for key, value in (tags or {}).items():
        if not key.startswith(TAG_PREFIX):
            continue
        name = key[len(TAG_PREFIX) :]
        try:
            if name.startswith(TOLERANCE_TAG):
                metric = name[len(TOLERANCE_TAG) :]
                if metric not in HIGHER_IS_BETTER:
                    raise ValueError(f"no metric {metric!r}; metrics: {sorted(HIGHER_IS_BETTER)}")
                tolerances[metric] = float(value)
            elif name in _TAG_TYPES:
                changes[name] = _TAG_TYPES[name](value)
            else:
                raise ValueError(f"not a setting; settings: {sorted(_TAG_TYPES)} and tolerance.<metric>")
        except ValueError as e:
            raise ValueError(f"card tag {key}={value!r}: {e}") from None
    try:
        return replace(base, **changes, tolerances=tolerances)
    except ValueError as e:
        raise ValueError(f"card tags {sorted(k for k in tags or {} if k.startswith(TAG_PREFIX))}: {e}") from None


class QualityStateStore(StateStore):
    """The consecutive-window states of each model's quality: `reports/quality/<model>/state.json`."""

    prefix = REPORT_PREFIX


class QualityHistoryStore(HistoryStore):
    """Each model's last quality windows (model_quality.history entries): `reports/quality/<model>/history.json`."""

    prefix, format = REPORT_PREFIX, HISTORY_FORMAT

    @staticmethod
    def summarize(document: Mapping[str, Any], reports: Mapping[str, str], *, window_end: str | None = None) -> dict:
        """The history entry of one quality report (model_quality.history.summarize)."""
        return summarize(document, reports, window_end=window_end)


def report_folder(model: str) -> str:
    """The S3 prefix of a model's quality reports, state, history and page: `reports/quality/<model>/`."""
    return f"{REPORT_PREFIX}{model}/"


@dataclass(frozen=True)
class QualityCheckResult:
    """What one quality check found and wrote (the quality check function returns `to_dict`).

    document: the JSON report written (its shape: `run_quality_check`). model_degraded: the consecutive-window rule
    fired on the realized metrics (what raises PerformanceDegraded). estimated_degraded: the same rule fired on the
    estimated metrics (CBPE). report_keys: {"json", "html", "state", "history", "page"} → S3 keys ("history" and
    "page" missing when the page could not be written: see page_error).
    """

    model: str
    version: str
    window: Window
    document: dict
    model_degraded: bool
    estimated_degraded: bool
    report_keys: dict[str, str]
    card_signature: SignatureCheck
    page_error: str | None = None

    @property
    def verdict(self) -> str:
        """The window's realized verdict: degraded, ok or insufficient_labels."""
        return self.document["verdict"]

    def to_dict(self) -> dict:
        """The JSON summary (also the detail of a PerformanceDegraded event): model, version, window, verdicts,
        labeled rows, join rate, each realized metric {value, lower, upper, reference, drop, verdict}, each estimated
        metric the same way, flagged segment gaps, state, report keys, card signature and `page_error` when the page
        was not updated."""
        doc = self.document
        estimated = doc["estimated"]
        return {
            "model": self.model,
            "version": self.version,
            "window": window_bounds(self.window),
            "verdict": self.verdict,
            "model_degraded": self.model_degraded,
            "degraded_metrics": list(doc["realized"]["degraded_metrics"]),
            "labeled_rows": doc["labeled_rows"],
            "join_rate": doc["join"]["join_rate"],
            "metrics": _metric_summary(doc["realized"]["metrics"]),
            "estimated_verdict": estimated.get("verdict"),
            "estimated_degraded": self.estimated_degraded,
            "estimated_metrics": _metric_summary(estimated.get("metrics") or []),
            "segments_flagged": list((doc.get("segments") or {}).get("flagged") or []),
            "state": doc["state"],
            "reports": self.report_keys,
            "card_signature": self.card_signature.to_dict(),
            **({"page_error": self.page_error} if self.page_error else {}),
        }


def _metric_summary(metrics: list[dict]) -> dict[str, dict]:
    keys = ("value", "lower", "upper", "reference", "drop", "verdict")
    return {m["name"]: {k: m.get(k) for k in keys} for m in metrics}


def run_quality_check(
    model: str,
    *,
    registry: Registry,
    data_bucket: str,
    window: Window,
    verifier: CardVerifier | None,
    alias: str = "production",
    lookback_days: float | None = None,
    config: DegradationConfig | None = None,
    s3: Any = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    history_windows: int | None = None,
) -> QualityCheckResult:
    """Check one model's quality over `window`, update its consecutive-window states, write the JSON and HTML reports,
    and rewrite its quality page from its last `history_windows` windows.

    window: the labels' arrival window [start, end), timezone-aware. lookback_days: how far before `start` the
    predictions they refer to are looked for (default: SKLAMBDA_QUALITY_LOOKBACK_DAYS's). config: the degradation rule
    (default DegradationConfig()), with the card's quality.* tags applied over it (config_from_card_tags). The
    version checked is the one `alias` points at now; its card (holdout metrics, decision, estimation and segments
    sections) is verified with `verifier`; `verifier=None` must be asked for explicitly and the report says so.

    The JSON report (`document`):
        format, model {name, version}, alias, task, checked_at, card_signature,
        window {start, end, end_exclusive, hours, lookback_days, predictions_from},
        verdict (degraded | ok | insufficient_labels), model_degraded, labeled_rows,
        labels (ground_truth LabelsRead.summary), join (JoinResult.summary + unidentified_predictions, by_version),
        capture {objects, lines, quarantined, quarantine_reasons},
        realized (DegradationReport.to_dict: metrics [{name, value, lower, upper, se, method, confidence, reference,
            drop, tolerance, p_value, p_adjusted, verdict}], degraded_metrics, config),
        estimated ({available: false, reason} | {available: true, method: "cbpe", rows, verdict (degraded | ok |
            insufficient_rows), estimated_degraded, expected_positive_rate, metrics [as realized's]}),
        estimated_vs_realized ({metric: {estimated, estimated_interval, realized, realized_interval}} on the labeled
            rows of the checked version, or null),
        versions [{version, current, labeled_rows, metrics {name: {value, lower, upper, ...}}}],
        segments (fairness.SegmentReport.to_dict on the labeled rows of the checked version, or null),
        state {format, realized, estimated}, monitoring_page {key, href}, drift_page {href}.

    The page and history are written last: when they cannot be, the result carries `page_error` and the reports,
    state and verdict stand. Raises ModelNotFound for an unknown model or alias; ModelRefused when the card fails
    verification (nothing is written then); ValueError for a quality.* card tag that is not a valid setting (nothing is
    written then). S3 and KMS errors propagate as botocore's ClientError.
    """
    s3 = s3 or aws.client("s3")
    defaults = QualityCheckSettings.defaults()
    limit = history_windows or defaults[QUALITY_HISTORY_WINDOWS]
    lookback = defaults[QUALITY_LOOKBACK_DAYS] if lookback_days is None else lookback_days
    version = registry.resolve(model, alias=alias)
    card, signature = read_card(registry, verifier, model, version)
    config = config_from_card_tags(card.tags, base=config)
    positive = _positive_class(card)
    segments = card.segments or {}
    segment_features = [str(f["name"]) for f in segments.get("features") or []]

    labels = read_labels(s3, data_bucket, model, window.start, window.end)
    period = Window(window.start - timedelta(days=lookback), window.end)
    captured = read_predictions(
        s3,
        data_bucket,
        model,
        period,
        labeled=set(labels.frame[ID]),
        served=(version, window),
        positive=positive,
        features=segment_features,
    )
    predictions = captured.frame[captured.frame[ID].notna()]
    joined = join_labels(labels.frame[[ID, LABEL, "time"]], predictions)
    # The join keeps its own columns; the probabilities and segment values of each joined (latest) capture besides.
    latest = predictions.sort_values("time", kind="stable").drop_duplicates(ID, keep="last")
    frame = joined.frame.merge(latest[[ID, "probabilities", *segment_features]], on=ID, how="left")

    versions = []
    current = frame[frame["version"] == version] if len(frame) else frame
    for served_by, rows in sorted(frame.groupby("version"), key=lambda item: item[0] != version) if len(frame) else []:
        estimates = _realized(card, rows, positive, decision=card.decision if served_by == version else None)
        versions.append(
            {
                "version": served_by,
                "current": served_by == version,
                "labeled_rows": len(rows),
                "metrics": {name: e.to_dict() for name, e in estimates.items()},
            }
        )
    realized = _realized(card, current, positive, decision=card.decision)
    report = check_degradation(realized, card.metrics, labeled_rows=len(current), decision=card.decision, config=config)
    store = QualityStateStore(s3, data_bucket)
    previous = store.load(model) or {}
    realized_state, degraded = update_state(previous.get("realized"), report)

    served = captured.frame[
        (captured.frame["version"] == version)
        & (captured.frame["time"] >= pd.Timestamp(window.start))
        & (captured.frame["time"] < pd.Timestamp(window.end))
    ]
    estimated, estimated_state, estimated_degraded = _estimated(card, served, config, previous.get("estimated"))
    state = {"format": STATE_FORMAT, "realized": realized_state, "estimated": estimated_state}

    folder, stamp = report_folder(model), window.end.astimezone(UTC).strftime(STAMP_FORMAT)
    names = {"json": f"{stamp}.json", "html": f"{stamp}.html"}
    keys = {**{kind: folder + name for kind, name in names.items()}, "state": store.key(model)}
    checked_at = clock().isoformat()
    document = {
        "format": REPORT_FORMAT,
        "model": {"name": card.name, "version": card.version},
        "alias": alias,
        "task": card.task,
        "checked_at": checked_at,
        "card_signature": signature.to_dict(),
        "window": {
            **window_bounds(window),
            "lookback_days": lookback,
            "predictions_from": period.start.astimezone(UTC).isoformat(),
        },
        "verdict": report.verdict,
        "model_degraded": degraded,
        "labeled_rows": len(current),
        "labels": labels.summary(),
        "join": {
            **joined.summary(),
            "unidentified_predictions": captured.unidentified,
            "by_version": {v["version"]: v["labeled_rows"] for v in versions},
        },
        "capture": {
            "objects": captured.objects,
            "lines": captured.lines,
            "quarantined": captured.quarantined,
            "quarantine_reasons": dict(captured.quarantine_reasons),
        },
        "realized": report.to_dict(),
        "estimated": estimated,
        "estimated_vs_realized": _beside(card, current, report),
        "versions": versions,
        "segments": _segments(card, current, segment_features),
        "state": state,
        # Relative: the page is beside the report, the drift page in its sibling folder (bucket or download).
        "monitoring_page": {"key": folder + PAGE_NAME, "href": PAGE_NAME},
        "drift_page": {"href": other_page_href("drift", model)},
    }
    text = json.dumps(document, indent=2, allow_nan=False)
    s3.put_object(Bucket=data_bucket, Key=keys["json"], Body=text.encode(), ContentType="application/json")
    html = render_report(json.loads(text))
    s3.put_object(Bucket=data_bucket, Key=keys["html"], Body=html.encode(), ContentType="text/html; charset=utf-8")
    store.save(model, state)
    page_error = None
    try:
        history = QualityHistoryStore(s3, data_bucket, limit)
        entries = history.add(model, summarize(document, names))
        page = render_page(
            model, entries, limit=limit, location=f"s3://{data_bucket}/{folder}", generated_at=checked_at
        )
        s3.put_object(
            Bucket=data_bucket, Key=folder + PAGE_NAME, Body=page.encode(), ContentType="text/html; charset=utf-8"
        )
        keys |= {"history": history.key(model), "page": folder + PAGE_NAME}
    except Exception as e:  # the page is a view over the reports: its failure must not hide this window's verdict
        page_error = f"{type(e).__name__}: {e}"
    return QualityCheckResult(
        model, version, window, document, degraded, estimated_degraded, keys, signature, page_error
    )


def _positive_class(card: ModelCard) -> Any:
    """The decision's positive class of a binary classifier; None for multiclass models and regressors."""
    if card.task != CLASSIFICATION:
        return None
    positive = (card.decision or {}).get("positive_class")
    if positive is None and card.classes and len(card.classes) == 2:
        positive = card.classes[1]  # scikit-learn's convention: the second of classes_ is the positive one
    return positive


def _is(values: pd.Series, label: Any) -> np.ndarray:
    """values == label, compared as text: a label sent as "yes" or True matches the class as the card stores it."""
    return (values.astype(str) == str(label)).to_numpy()


def _realized(
    card: ModelCard, rows: pd.DataFrame, positive: Any, *, decision: Mapping[str, Any] | None
) -> dict[str, Estimate]:
    """The realized metrics of joined rows (model_quality.metrics.window_metrics).

    Binary classifiers: the positive class's probability when every row has one (else the metrics that need none),
    the served prediction as the decision. Multiclass (3+ classes): metrics.multiclass_metrics on the labels that are
    one of the card's classes. Regressors: MAE, RMSE, R², mean bias (a
    label or prediction that is not a number is left out).
    """
    if card.task == REGRESSION:
        y = pd.to_numeric(rows[LABEL], errors="coerce").to_numpy(dtype=float)
        pred = pd.to_numeric(rows["prediction"], errors="coerce").to_numpy(dtype=float)
        ok = np.isfinite(y) & np.isfinite(pred)
        return window_metrics(REGRESSION, y[ok], predicted=pred[ok])
    if positive is None:  # multiclass: labels and predictions as the card's classes, by their text
        classes = list(card.classes or ())
        by_text = {str(c): c for c in classes}
        y = rows[LABEL].astype(str).map(by_text)
        pred = rows["prediction"].astype(str).map(by_text)
        known = (y.notna() & pred.notna()).to_numpy()  # a label that is no class cannot be scored
        if len(classes) < 3:
            return {"accuracy": wilson(int((y[known] == pred[known]).sum()), int(known.sum()))}
        proba = _proba_matrix(card, rows[known])
        return window_metrics(
            CLASSIFICATION,
            y[known].to_numpy(dtype=object),
            prob=proba,
            predicted=pred[known].to_numpy(dtype=object),
            classes=classes,
        )
    prob = rows["probability"].to_numpy(dtype=float) if "probability" in rows else np.array([])
    return window_metrics(
        CLASSIFICATION,
        _is(rows[LABEL], positive),
        prob=prob if len(rows) and np.isfinite(prob).all() else None,
        predicted=_is(rows["prediction"], positive),
        decision=decision,
    )


def _proba_matrix(card: ModelCard, rows: pd.DataFrame) -> np.ndarray | None:
    """[rows, classes] probabilities in the card's class order (predict_proba's), or None when a row lacks them."""
    classes = [str(c) for c in card.classes or ()]
    if len(classes) < 2 or not len(rows):
        return None
    out = np.empty((len(rows), len(classes)))
    for i, probabilities in enumerate(rows["probabilities"]):
        if not probabilities:
            return None
        try:
            out[i] = [float(probabilities[c]) for c in classes]
        except (KeyError, TypeError, ValueError):
            return None
    return out if np.isfinite(out).all() else None


def _cbpe_estimates(card: ModelCard, proba: np.ndarray) -> tuple[dict[str, Estimate], float | None]:
    """CBPE's accuracy, F1 and ROC AUC (binary) or accuracy, macro F1 and one-vs-rest ROC AUC (multiclass), named as
    the realized metrics, as metrics Estimates (se from the 95 % interval's half-width), and the expected positive
    rate (binary; None for multiclass). Raises EstimationUnavailable, ValueError as estimation.estimate."""
    found = estimate(card.estimation, proba)
    if isinstance(found, MulticlassEstimate):
        named = (
            ("accuracy", found.accuracy, found.accuracy_interval),
            ("f1_macro", found.f1_macro, found.f1_macro_interval),
            ("roc_auc_ovr", found.roc_auc_ovr, found.roc_auc_ovr_interval),
        )
        positive_rate = None
    else:
        named = (
            ("accuracy", found.accuracy, found.accuracy_interval),
            ("f1", found.f1, found.f1_interval),
            ("roc_auc", found.roc_auc, found.roc_auc_interval),
        )
        positive_rate = found.expected_positive_rate
    out = {}
    for name, value, interval in named:
        if value is None or interval is None:
            out[name] = NAN_ESTIMATE
            continue
        low, high = interval
        out[name] = Estimate(value, low, high, (high - low) / (2 * Z_95), "cbpe")
    return out, positive_rate


def _estimated(
    card: ModelCard, served: pd.DataFrame, config: DegradationConfig, previous: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any] | None, bool]:
    """(the report's `estimated` section, the estimated consecutive-window state, estimated_degraded).

    The degradation rule applied to the estimates against the holdout's own (the card's estimation.holdout, with its
    row count): an estimated drop is significant and larger than the tolerance, for consecutive windows. A window
    whose estimate is unavailable leaves the state as it was.
    """
    if card.task != CLASSIFICATION or not card.estimation:
        reason = "the model card has no CBPE estimation section (classifiers published with a holdout)"
        return {"available": False, "reason": reason}, dict(previous) if previous else None, False
    proba = _proba_matrix(card, served)
    if proba is None:
        reason = (
            "no prediction of this version was served in the window"
            if not len(served)
            else "some predictions served in the window were captured without probabilities"
        )
        return {"available": False, "reason": reason}, dict(previous) if previous else None, False
    try:
        estimates, positive_rate = _cbpe_estimates(card, proba)
    except (EstimationUnavailable, ValueError) as e:
        return {"available": False, "reason": str(e)}, dict(previous) if previous else None, False
    report = check_degradation(estimates, card.estimation["holdout"], labeled_rows=len(proba), config=config)
    state, degraded = update_state(previous, report)
    section = report.to_dict()
    return (
        {
            "available": True,
            "method": "cbpe",
            "rows": len(proba),
            "verdict": INSUFFICIENT_ROWS if report.verdict == INSUFFICIENT_LABELS else report.verdict,
            "estimated_degraded": degraded,
            "degraded_metrics": section["degraded_metrics"],
            "expected_positive_rate": positive_rate,  # binary only
            "metrics": [
                {**m, "verdict": INSUFFICIENT_ROWS if m["verdict"] == INSUFFICIENT_LABELS else m["verdict"]}
                for m in section["metrics"]
            ],
            "config": section["config"],
        },
        state,
        degraded,
    )


def _beside(card: ModelCard, current: pd.DataFrame, report: DegradationReport) -> dict[str, Any] | None:
    """CBPE's estimate on the very rows that were labeled, beside their realized metrics: how well the estimate
    tracked reality once labels arrived (NannyML's "estimated vs realized"). None when it cannot be computed."""
    if card.task != CLASSIFICATION or not card.estimation:
        return None
    proba = _proba_matrix(card, current)
    if proba is None:
        return None
    try:
        estimates, _ = _cbpe_estimates(card, proba)
    except (EstimationUnavailable, ValueError):
        return None
    realized = {m.name: m.estimate for m in report.metrics}
    out = {}
    for name in estimates:
        est, real = estimates[name].to_dict(), realized.get(name, NAN_ESTIMATE).to_dict()
        out[name] = {
            "estimated": est["value"],
            "estimated_interval": [est["lower"], est["upper"]],
            "realized": real["value"],
            "realized_interval": [real["lower"], real["upper"]],
        }
    return out


def _segments(card: ModelCard, current: pd.DataFrame, features: list[str]) -> dict[str, Any] | None:
    """The window's segment report on the labeled rows of the checked version, with the card's segment features,
    sensitive features, bounds and minimum group size; None without a segments section or labeled rows."""
    section = card.segments or {}
    if not features or not len(current):
        return None
    task = REGRESSION if card.task == REGRESSION else CLASSIFICATION
    positive = section.get("positive_label")
    prob = current["probability"].to_numpy(dtype=float)
    report: SegmentReport = segment_report(
        current[LABEL].to_numpy(dtype=object),
        current["prediction"].to_numpy(dtype=object),
        prob if positive is not None and np.isfinite(prob).all() else None,
        {f: current[f].to_numpy(dtype=object) for f in features},
        [str(f["name"]) for f in section.get("features") or [] if f.get("sensitive")],
        task=task,
        positive_label=positive,
        bounds=section.get("bounds"),
        min_group_rows=int(section.get("min_group_rows") or MIN_GROUP_ROWS),
    )
    return report.to_dict()
