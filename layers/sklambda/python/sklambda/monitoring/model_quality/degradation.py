"""The degradation rule: is a window's model quality significantly and materially worse than the card's holdout?

Per metric the card has a holdout value for (same names: ``card.metrics["roc_auc"]``, ``["accuracy"]``, a
multiclass card's ``["f1_macro"]`` and ``["roc_auc_ovr"]``, ...; the
cost per row against ``card.decision["holdout_expected_cost"]``), the window is *degraded* only when all hold:

1. the window has at least ``min_labeled_rows`` labeled rows (otherwise *insufficient_labels*, never degraded);
2. the drop (holdout - window for a larger-is-better metric, window - holdout otherwise) exceeds the metric's
   tolerance (absolute, or relative to the holdout value for the unbounded metrics of RELATIVE_TOLERANCE);
3. a one-sided z-test of "no drop" rejects at ``alpha`` (per metric by default; ``correction="holm"`` adjusts
   across the window's compared metrics: Holm 1979, "A simple sequentially rejective multiple test procedure",
   Scand. J. Statist. 6:65-70).
   The variance is the window estimate's plus the holdout value's: the holdout is a sample too. The card keeps
   only the holdout's row count, so its variance is the window's scaled by labeled_rows / holdout_rows, which is
   exact for means and proportions when the window and holdout share one distribution (the null hypothesis).

The model is declared degraded (the alarm, `update_state`) when both hold:

a. the last ``consecutive_windows`` windows with enough labels were degraded (the drift check's run rule:
   insufficient_labels windows neither count nor reset the run);
b. the run's pooled evidence confirms it: per metric, the row-weighted mean drop over the run's windows exceeds the
   tolerance and its one-sided z-test rejects at ``alarm_alpha`` after Holm's correction across the metrics. The
   pooled variance counts the windows' independent sampling errors once each and the holdout's error once: every
   window is compared with the same holdout, so its luck is shared, not averaged away.

Why two levels. A window's verdict must see a 0.03 ROC AUC drop at 2,000 labels (its standard error there is
~0.0096 with a 10,000-row holdout) in 95 % of windows, which needs a one-sided test near alpha = 0.07 and a
tolerance below 0.015; that also flags ~9 % of clean windows. The shared holdout makes consecutive false windows
correlated (a model whose holdout was lucky looks worse in every window), so "two degraded windows in a row" alone
raised 1.4-1.9 % false alarms on clean models; (b) bounds the alarm's family-wise error by alarm_alpha (1 %)
whatever the windows did (bench/model_quality.py measures both).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
from scipy import stats as sps

from sklambda.monitoring.model_quality.metrics import HIGHER_IS_BETTER, Estimate

DEGRADED, OK, INSUFFICIENT_LABELS = "degraded", "ok", "insufficient_labels"
# A metric of the window the card has no holdout value for: reported, never compared.
NO_REFERENCE = "no_reference"
STATE_FORMAT = "sklambda.monitoring.model-quality-state/v1"
REPORT_FORMAT = "sklambda.monitoring.model-quality/v1"
CORRECTIONS = ("holm", "none")
# The decision section's expected cost per row at publish (holdout split, or training without a holdout).
COST_REFERENCES = ("holdout_expected_cost", "training_expected_cost")
# Tolerances read as a share of the holdout value (the metric has no natural scale); the others are absolute.
RELATIVE_TOLERANCE = frozenset({"log_loss", "cost_per_row", "mae", "rmse"})
# Drops a user would not act on. Absolute points for bounded scores (0.0125 = 1.25 accuracy points: under half the
# 0.03 ROC AUC or 3 accuracy points the monitor must catch at 2,000 labels, leaving 1.8 standard errors of that
# window for the test's power, and ~3 standard errors of a 10,000-row holdout's accuracy); 10 % for the relative
# ones.
# ECE carries a small-window upward bias of ~sqrt(bins/n), hence its wider tolerance.
DEFAULT_TOLERANCES: Mapping[str, float] = {
    "accuracy": 0.0125,
    "balanced_accuracy": 0.0125,
    "precision": 0.02,
    "recall": 0.02,
    "f1": 0.02,
    "roc_auc": 0.0125,
    # Multiclass (macro averages, one-vs-rest AUC): the tolerances of their binary counterparts.
    "precision_macro": 0.02,
    "recall_macro": 0.02,
    "f1_macro": 0.02,
    "roc_auc_ovr": 0.0125,
    "log_loss": 0.10,
    "brier": 0.01,
    "ece": 0.03,
    "cost_per_row": 0.10,
    "mae": 0.10,
    "rmse": 0.10,
    "r2": 0.02,
    "mean_bias": 0.0,
}


@dataclass(frozen=True)
class DegradationConfig:
    """Settings of the degradation rule; each field's comment says what it means and why its default.

    Raises ValueError for alpha or alarm_alpha outside (0, 1), an unknown correction, min_labeled_rows or
    consecutive_windows below 1, or a negative tolerance.
    """

    # One-sided level of each metric's test in one window: 0.07 gives ~95 % power against a 0.03 ROC AUC drop at
    # 2,000 labels (module docstring); the alarm's error is bounded by alarm_alpha, not by this.
    alpha: float = 0.07
    correction: str = "none"
    # Family-wise level of the alarm's pooled test over the run of degraded windows (Holm across metrics).
    alarm_alpha: float = 0.01
    # Below this many labeled rows the window is insufficient_labels: an accuracy near 0.8 has a standard error
    # of ~0.018 at 500 rows, so only drops of ~4 points can be told from noise there.
    min_labeled_rows: int = 500
    # A model is degraded after this many degraded windows in a row (as the drift check).
    consecutive_windows: int = 2
    # Per-metric tolerance (see DEFAULT_TOLERANCES); a metric missing here has tolerance 0.
    tolerances: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_TOLERANCES))

    def __post_init__(self) -> None:
        for name in ("alpha", "alarm_alpha"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be in (0, 1), got {getattr(self, name)}")
        if self.correction not in CORRECTIONS:
            raise ValueError(f"correction must be one of {CORRECTIONS}, got {self.correction!r}")
        if self.min_labeled_rows < 1 or self.consecutive_windows < 1:
            raise ValueError("min_labeled_rows and consecutive_windows must be at least 1")
        bad = {k: v for k, v in self.tolerances.items() if not v >= 0}
        if bad:
            raise ValueError(f"tolerances must be >= 0, got {bad}")

    def to_dict(self) -> dict[str, Any]:
        """Every setting by name, as the report records it."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["tolerances"] = dict(self.tolerances)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DegradationConfig:
        """The defaults with ``d`` applied; ``d["tolerances"]`` is merged into the default tolerances.

        Unknown keys raise ValueError.
        """
        base = cls()
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model-quality setting(s) {sorted(unknown)}; known: {sorted(known)}")
        changes = dict(d)
        if "tolerances" in changes:
            changes["tolerances"] = {**base.tolerances, **{k: float(v) for k, v in changes["tolerances"].items()}}
        return replace(base, **changes)


@dataclass(frozen=True)
class MetricVerdict:
    """One metric of one window against its holdout value.

    estimate: the window's Estimate. reference: the holdout value (None: not compared). drop: how much worse the
    window is (> 0 = worse, in the metric's units). tolerance: the absolute tolerance applied. p_value: one-sided,
    unadjusted; p_adjusted: after the correction. verdict: degraded, ok, insufficient_labels or no_reference.
    window_variance / holdout_variance: the two parts of the drop's variance (the alarm's pooled test needs them
    apart); None when the metric was not compared.
    """

    name: str
    estimate: Estimate
    reference: float | None
    drop: float | None
    tolerance: float | None
    p_value: float | None
    p_adjusted: float | None
    verdict: str
    window_variance: float | None = None
    holdout_variance: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN becomes None)."""
        return {
            "name": self.name,
            **self.estimate.to_dict(),
            "reference": self.reference,
            "drop": self.drop,
            "tolerance": self.tolerance,
            "p_value": self.p_value,
            "p_adjusted": self.p_adjusted,
            "verdict": self.verdict,
            "window_variance": self.window_variance,
            "holdout_variance": self.holdout_variance,
        }


@dataclass(frozen=True)
class DegradationReport:
    """The verdict of one window: degraded (a metric is), ok, or insufficient_labels; per-metric details."""

    labeled_rows: int
    verdict: str
    metrics: tuple[MetricVerdict, ...]
    config: DegradationConfig
    holdout_rows: int | None = None

    @property
    def degraded_metrics(self) -> tuple[str, ...]:
        """Names of the metrics found degraded, in report order."""
        return tuple(m.name for m in self.metrics if m.verdict == DEGRADED)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready document of the window (what `update_state` also accepts)."""
        return {
            "format": REPORT_FORMAT,
            "verdict": self.verdict,
            "labeled_rows": self.labeled_rows,
            "holdout_rows": self.holdout_rows,
            "degraded_metrics": list(self.degraded_metrics),
            "metrics": [m.to_dict() for m in self.metrics],
            "config": self.config.to_dict(),
        }


def holdout_references(card_metrics: Mapping[str, Any], decision: Mapping[str, Any] | None = None) -> dict[str, float]:
    """The holdout value of every metric the window computes, from a card's ``metrics`` and ``decision`` sections.

    Only numeric entries named like the window's metrics (HIGHER_IS_BETTER) are kept; the cost per row comes from
    the decision's ``holdout_expected_cost`` (or ``training_expected_cost`` for a card without a holdout).
    """
    refs = {
        k: float(v)
        for k, v in card_metrics.items()
        if k in HIGHER_IS_BETTER and isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
    }
    for key in COST_REFERENCES:
        value = (decision or {}).get(key)
        if value is not None:
            refs["cost_per_row"] = float(value)
            break
    return refs


def _holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    m = len(p_values)
    order = np.argsort(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted.tolist()


def check_degradation(
    estimates: Mapping[str, Estimate],
    card_metrics: Mapping[str, Any],
    *,
    labeled_rows: int,
    decision: Mapping[str, Any] | None = None,
    config: DegradationConfig | None = None,
) -> DegradationReport:
    """Compare one window's metrics with the card's holdout metrics (module docstring for the rule).

    estimates: `window_metrics`'s output. card_metrics: ``card.metrics`` (its ``rows`` is the holdout's row count;
    without it the holdout value is taken as exact). labeled_rows: rows of the window with a label.
    decision: ``card.decision`` (for the cost per row). Raises ValueError for a negative labeled_rows.
    """
    config = config or DegradationConfig()
    if labeled_rows < 0:
        raise ValueError(f"labeled_rows must be >= 0, got {labeled_rows}")
    refs = holdout_references(card_metrics, decision)
    holdout_rows = card_metrics.get("rows")
    holdout_rows = int(holdout_rows) if isinstance(holdout_rows, int | float) and holdout_rows > 0 else None
    enough = labeled_rows >= config.min_labeled_rows
    rows: list[dict[str, Any]] = []
    for name, est in estimates.items():
        ref = refs.get(name)
        row: dict[str, Any] = {"name": name, "estimate": est, "reference": ref, "drop": None, "tolerance": None}
        row.update(p_value=None, p_adjusted=None, window_variance=None, holdout_variance=None)
        if ref is None:
            row["verdict"] = NO_REFERENCE
        elif not enough or not np.isfinite(est.value):
            row["verdict"] = INSUFFICIENT_LABELS
        else:
            row.update(_compare(name, est, ref, labeled_rows, holdout_rows, config))
        rows.append(row)
    tested = [r for r in rows if r["p_value"] is not None]
    adjusted = _holm([r["p_value"] for r in tested]) if config.correction == "holm" and tested else None
    for i, r in enumerate(tested):
        r["p_adjusted"] = adjusted[i] if adjusted is not None else r["p_value"]
        r["verdict"] = DEGRADED if r["drop"] > r["tolerance"] and r["p_adjusted"] < config.alpha else OK
    metrics = tuple(MetricVerdict(**r) for r in rows)
    verdict = INSUFFICIENT_LABELS if not enough else DEGRADED if any(m.verdict == DEGRADED for m in metrics) else OK
    return DegradationReport(labeled_rows, verdict, metrics, config, holdout_rows)


def _compare(
    name: str, est: Estimate, ref: float, labeled_rows: int, holdout_rows: int | None, config: DegradationConfig
) -> dict[str, Any]:
    """Drop, tolerance and one-sided p-value of one metric (verdict set after the correction)."""
    if name == "mean_bias":  # worse = further from zero
        drop = abs(est.value) - abs(ref)
    else:
        drop = ref - est.value if HIGHER_IS_BETTER.get(name, True) else est.value - ref
    tol = float(config.tolerances.get(name, 0.0))
    if name in RELATIVE_TOLERANCE:
        tol *= abs(ref)
    se = est.se if np.isfinite(est.se) else 0.0
    window_var = se * se
    holdout_var = window_var * (labeled_rows / holdout_rows if holdout_rows else 0.0)
    p = _p_drop(drop, window_var + holdout_var)
    return {
        "drop": float(drop),
        "tolerance": tol,
        "p_value": p,
        "window_variance": window_var,
        "holdout_variance": holdout_var,
    }


def _p_drop(drop: float, variance: float) -> float:
    """One-sided p-value of "no drop" for a normal estimate of the drop (an exact variance 0 decides by sign)."""
    return float(sps.norm.sf(drop / np.sqrt(variance))) if variance > 0 else 0.0 if drop > 0 else 1.0


def pooled_run_test(windows: list[Mapping[str, Any]], config: DegradationConfig) -> dict[str, Any]:
    """The alarm's confirmation over a run of degraded windows (module docstring, rule b).

    windows: the run's window reports (``DegradationReport.to_dict()``, oldest first). Per metric compared in every
    window: pooled drop = sum(n_i * drop_i) / sum(n_i); variance = sum((n_i / N)^2 * window_variance_i) plus the
    holdout's variance once (the mean of the windows' estimates of it). Holm across the metrics at
    ``config.alarm_alpha``; a metric is confirmed when its pooled drop also exceeds its tolerance.

    Returns {"confirmed": bool, "metrics": {name: {"drop", "tolerance", "p_value", "p_adjusted", "confirmed"}}}.
    """
    per_metric: dict[str, list[tuple[int, Mapping[str, Any]]]] = {}
    for w in windows:
        for m in w.get("metrics", []):
            if m.get("p_value") is not None and m.get("window_variance") is not None:
                per_metric.setdefault(m["name"], []).append((int(w["labeled_rows"]), m))
    rows: list[dict[str, Any]] = []
    for name, found in per_metric.items():
        if len(found) < len(windows):
            continue  # not compared in every window of the run
        total = sum(n for n, _ in found)
        drop = sum(n * m["drop"] for n, m in found) / total
        window_var = sum((n / total) ** 2 * m["window_variance"] for n, m in found)
        # holdout_variance_i = unit variance / holdout_rows, estimated from window i as se_i^2 * n_i / holdout_rows;
        # every window shares that one holdout, so its variance enters the pooled drop once.
        holdout_var = float(np.mean([m["holdout_variance"] for _, m in found]))
        tol = float(found[-1][1]["tolerance"])
        rows.append({"name": name, "drop": drop, "tolerance": tol, "p_value": _p_drop(drop, window_var + holdout_var)})
    adjusted = _holm([r["p_value"] for r in rows]) if rows else []
    out = {}
    for r, p_adj in zip(rows, adjusted, strict=True):
        confirmed = r["drop"] > r["tolerance"] and p_adj < config.alarm_alpha
        out[r.pop("name")] = {**r, "p_adjusted": p_adj, "confirmed": confirmed}
    return {"confirmed": any(v["confirmed"] for v in out.values()), "metrics": out}


def update_state(
    previous_state: Mapping[str, Any] | None, window_result: DegradationReport | Mapping[str, Any]
) -> tuple[dict[str, Any], bool]:
    """Fold one window's result into the state; return ``(state, model_degraded)``.

    As the drift check's update_state: a degraded window adds one to the run of degraded windows; an ok window
    ends it; an insufficient_labels window neither counts nor ends it. The model is degraded while the run is at
    least ``consecutive_windows`` long (from the window's config) and the pooled test over the run's last
    ``consecutive_windows`` windows confirms it (`pooled_run_test`; the state keeps those windows' evidence).
    ``window_result`` is a DegradationReport or its ``to_dict()``. Raises ValueError for an unknown verdict.
    """
    result = window_result.to_dict() if isinstance(window_result, DegradationReport) else dict(window_result)
    verdict = result["verdict"]
    if verdict not in (DEGRADED, OK, INSUFFICIENT_LABELS):
        raise ValueError(f"unknown verdict {verdict!r}")
    config = DegradationConfig.from_dict(result.get("config", {}))
    required = config.consecutive_windows
    prev = dict(previous_state or {})
    run = int(prev.get("consecutive_degraded", 0))
    evidence = list(prev.get("run_evidence", []))
    if verdict == DEGRADED:
        run += 1
        evidence = [*evidence, _evidence(result)][-required:]
    elif verdict == OK:
        run, evidence = 0, []
    pooled = pooled_run_test(evidence, config) if run >= required else None
    degraded = bool(pooled and pooled["confirmed"])
    if verdict == DEGRADED:
        names = set(result.get("degraded_metrics", []))
        if run > 1:
            names |= set(prev.get("degraded_metrics", []))
    elif verdict == INSUFFICIENT_LABELS:
        names = set(prev.get("degraded_metrics", []))
    else:
        names = set()
    state = {
        "format": STATE_FORMAT,
        "consecutive_degraded": run,
        "required": required,
        "windows_seen": int(prev.get("windows_seen", 0)) + 1,
        "last_verdict": verdict,
        "model_degraded": degraded,
        # Metrics flagged during the current run of degraded windows.
        "degraded_metrics": sorted(names),
        # The last `required` degraded windows' per-metric evidence, for the pooled test.
        "run_evidence": evidence,
        # The pooled test's outcome when the run was long enough (None otherwise).
        "pooled": pooled,
    }
    return state, degraded


_EVIDENCE_KEYS = ("name", "drop", "tolerance", "p_value", "window_variance", "holdout_variance")


def _evidence(result: Mapping[str, Any]) -> dict[str, Any]:
    """What the pooled test needs from one window's report (small enough to keep in the state)."""
    metrics = [{k: m.get(k) for k in _EVIDENCE_KEYS} for m in result.get("metrics", []) if m.get("p_value") is not None]
    return {"labeled_rows": int(result["labeled_rows"]), "metrics": metrics}
