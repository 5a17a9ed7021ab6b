"""Compare one window of live data with a model card's baseline: per-feature and prediction drift.

Numeric features (and regression predictions, class probabilities): live values are counted into the
baseline's quantile bins (``np.searchsorted`` on the edges, ``np.bincount``); values outside the training
range fall in the first or last bin. On those counts: PSI, and a chi-square homogeneity test as its p-value;
the binned KS statistic (largest gap of the two CDFs at the bin edges) with its asymptotic p-value. The card
holds no raw training values, so the KS statistic is computed at the ~10 quantile edges only: a lower bound
of the raw statistic, with a conservative p-value. No Wasserstein distance: from 7 quantiles it would be too
coarse to threshold; ``mean_shift_std`` (live mean minus baseline mean, in baseline standard deviations) is
reported for readers instead.

Categorical and boolean features (and predicted classes): shares of the baseline's top categories plus one
"other" bucket; chi-square homogeneity (rare buckets merged), Jensen-Shannon distance, the largest change of
one share, and the share of values in categories training never had (known from the schema's category list,
or from the baseline's frequencies when they cover every category, ``other_share == 0``).

Every feature: null rate change, Cohen's h and the arcsine two-proportion test. ``pii`` features get only
that: no values of theirs are read beyond ``isna`` or written to the report.

All p-values of a window form one family, adjusted by Holm (or BH); a test flags its feature when the
adjusted p-value is below ``alpha`` and its effect size reaches the configured threshold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sklambda.monitoring.drift import stats
from sklambda.monitoring.drift.config import DriftConfig
from sklambda.registry.schema import BOOLEAN, CATEGORY, FeatureSpec, InputSchema

if TYPE_CHECKING:
    from sklambda.registry.card import ModelCard

NO_DRIFT, DRIFT, INSUFFICIENT_DATA = "no_drift", "drift", "insufficient_data"
NUMERIC, CATEGORICAL, PII = "numeric", "categorical", "pii"
OTHER = "(other)"


@dataclass(frozen=True)
class ColumnDrift:
    """The tests of one feature, or one part of the predictions (classes, a class probability, a value)."""

    name: str
    kind: str  # numeric | categorical | pii
    rows: int
    tests: Mapping[str, Any]
    p_values: Mapping[str, float]
    p_adjusted: Mapping[str, float]
    drifted: bool
    reasons: tuple[str, ...]
    # What the live window looks like, on the baseline's bins/categories (None for pii features).
    current: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The column as the drift report's JSON has it (NaN and infinities as null, numpy scalars as Python)."""
        return {
            "name": self.name,
            "type": self.kind,
            "rows": self.rows,
            "tests": {k: _num(v) for k, v in self.tests.items()},
            "p_values": {k: _num(v) for k, v in self.p_values.items()},
            "p_adjusted": {k: _num(v) for k, v in self.p_adjusted.items()},
            "drifted": self.drifted,
            "reasons": list(self.reasons),
            "current": _jsonable(self.current),
        }


@dataclass(frozen=True)
class DriftReport:
    """The outcome of comparing one window with a card's baseline.

    rows: live rows compared. verdict: "drift", "no_drift", or "insufficient_data" (fewer than config.min_rows rows;
        nothing is flagged then).
    features, predictions: one ColumnDrift per feature checked and per part of the predictions.
    tests_in_family: p-values adjusted together. model: {"name", "version"} when known.
    missing_features: schema features the window had no column for (not checked).
    """

    rows: int
    verdict: str
    features: tuple[ColumnDrift, ...]
    predictions: tuple[ColumnDrift, ...]
    config: DriftConfig
    tests_in_family: int = 0
    model: Mapping[str, str] = field(default_factory=dict)
    # Schema features the window did not have a column for (not checked, never drift by themselves).
    missing_features: tuple[str, ...] = ()

    @property
    def drifted_features(self) -> tuple[str, ...]:
        """Names of the features flagged, in schema order."""
        return tuple(f.name for f in self.features if f.drifted)

    @property
    def prediction_drifted(self) -> bool:
        """Whether any part of the predictions was flagged."""
        return any(p.drifted for p in self.predictions)

    @property
    def drifted(self) -> bool:
        """Whether the verdict is "drift"."""
        return self.verdict == DRIFT

    def feature(self, name: str) -> ColumnDrift:
        """The ColumnDrift of feature `name`; KeyError if it was not checked."""
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The report as written to reports/drift/ (JSON-ready), config included."""
        return {
            "model": dict(self.model),
            "rows": self.rows,
            "verdict": self.verdict,
            "drifted_features": list(self.drifted_features),
            "prediction_drifted": self.prediction_drifted,
            "tests_in_family": self.tests_in_family,
            "missing_features": list(self.missing_features),
            "features": [f.to_dict() for f in self.features],
            "predictions": [p.to_dict() for p in self.predictions],
            "config": self.config.to_dict(),
        }


@dataclass
class _Pending:
    """A column's statistics before the window-wide p-value adjustment decides what is flagged."""

    name: str
    kind: str
    rows: int
    tests: dict[str, Any]
    p_values: dict[str, float]
    # (p-value key, effect reached?, reason shown when flagged)
    checks: list[tuple[str, bool, str]]
    current: dict[str, Any] | None = None


def check_drift(
    baseline: Mapping[str, Any],
    schema: InputSchema,
    window: pd.DataFrame,
    *,
    predictions: Sequence | np.ndarray | pd.Series | None = None,
    probabilities: np.ndarray | pd.DataFrame | None = None,
    config: DriftConfig | None = None,
    model: Mapping[str, str] | None = None,
) -> DriftReport:
    """Compare ``window`` (one row per request row, the schema's feature columns) with the card's baseline.

    ``baseline`` is the card's ``baseline`` dict ({"features": ..., "predictions": ...}). ``predictions`` ([N] labels or
    values) and ``probabilities`` ([N, classes], in the card's class order, or a DataFrame with one column per class)
    are optional: without them only the features are checked. Features in ``config.ignore``, the model never reads
    (``FeatureSpec.required`` False), without a baseline, or without a column in the window are skipped (the last
    listed in ``missing_features``).

    Returns the DriftReport; the tests and thresholds are in the module docstring and DriftConfig. A window of fewer
    than config.min_rows rows (an empty one too) is insufficient_data.

    Sources: PSI (population stability index, Siddiqi 2006, "Credit Risk Scorecards", 0.1 as a moderate shift); the
        two-sample Kolmogorov-Smirnov statistic and its asymptotic distribution; Pearson's chi-square test of
        homogeneity; Jensen-Shannon distance (Lin 1991); Cohen's h for two proportions (Cohen 1988); Holm's step-down
        (1979) and Benjamini-Hochberg (1995) adjustments.
    """
    config = config or DriftConfig()
    features_base = baseline.get("features", {})
    training_rows = max((int(b.get("count", 0)) for b in features_base.values()), default=0)
    rows = len(window)
    pending: list[_Pending] = []
    # A feature the model never reads (optional: clients may leave it out, so its null rate shifts) cannot move it.
    checked = [f for f in schema.features if f.required and f.name not in config.ignore]
    missing = tuple(f.name for f in checked if f.name not in window.columns)
    for spec in checked:
        if spec.name not in features_base or spec.name not in window.columns:
            continue
        pending.append(_feature(spec, features_base[spec.name], window[spec.name], config))
    pred_pending = _predictions(baseline.get("predictions"), training_rows, predictions, probabilities, config)

    everything = pending + pred_pending
    keys = [(i, k) for i, p in enumerate(everything) for k in p.p_values]
    adjusted = stats.adjust([everything[i].p_values[k] for i, k in keys], config.correction)
    p_adj: list[dict[str, float]] = [{} for _ in everything]
    for (i, k), v in zip(keys, adjusted, strict=True):
        p_adj[i][k] = v

    enough = rows >= config.min_rows
    done = []
    for i, p in enumerate(everything):
        reasons = tuple(
            f"{reason} (adjusted p={p_adj[i][key]:.2g})"
            for key, effect, reason in p.checks
            if enough and effect and p_adj[i][key] < config.alpha
        )
        done.append(
            ColumnDrift(p.name, p.kind, p.rows, p.tests, p.p_values, p_adj[i], bool(reasons), reasons, p.current)
        )
    feats, preds = tuple(done[: len(pending)]), tuple(done[len(pending) :])
    verdict = INSUFFICIENT_DATA if not enough else DRIFT if any(c.drifted for c in done) else NO_DRIFT
    return DriftReport(rows, verdict, feats, preds, config, len(keys), dict(model or {}), missing)


def check_card(
    card: ModelCard, window: pd.DataFrame, *, config: DriftConfig | None = None, **predictions: Any
) -> DriftReport:
    """``check_drift`` with the card's baseline and schema, and its ``drift.*`` tags applied over ``config`` (or the
    defaults).

    ``predictions``/``probabilities`` are passed through (see ``check_drift``). Raises ValueError when a ``drift.*`` tag
    names an unknown setting or has a value of the wrong type.
    """
    return check_drift(
        card.baseline,
        card.input_schema,
        window,
        config=DriftConfig.from_card_tags(card.tags, base=config),
        model={"name": card.name, "version": card.version},
        **predictions,
    )


# --- per column ---------------------------------------------------------------------------------------------


def _feature(spec: FeatureSpec, base: Mapping[str, Any], col: pd.Series, config: DriftConfig) -> _Pending:
    nulls = col.isna()
    null_count = int(nulls.sum())
    if spec.pii or base.get("pii"):
        out = _Pending(spec.name, PII, len(col), {}, {}, [])
    elif spec.type in (CATEGORY, BOOLEAN):
        known = set(spec.categories) if spec.categories is not None else None
        if spec.type == BOOLEAN:
            known = {"true", "false"}
        out = _categorical(spec.name, base, col[~nulls] if null_count else col, len(col), config, known)
    else:
        out = _numeric(spec.name, base, col.to_numpy(dtype="float64", na_value=np.nan), len(col), config)
    _null_rate(out, base, null_count, len(col), config)
    return out


def _null_rate(out: _Pending, base: Mapping[str, Any], null_count: int, rows: int, config: DriftConfig) -> None:
    base_rate, base_n = float(base.get("null_rate", 0.0)), float(base.get("count", 0))
    rate = null_count / rows if rows else 0.0
    h, p = stats.proportion_test(base_rate * base_n, base_n, null_count, rows)
    delta = rate - base_rate
    out.tests.update(
        {"null_rate_baseline": base_rate, "null_rate": rate, "null_rate_delta": delta, "null_rate_cohen_h": h}
    )
    out.p_values["null_rate"] = p
    effect = abs(delta) >= config.null_rate_delta_threshold or abs(h) >= config.cohen_h_threshold
    out.checks.append(("null_rate", effect, f"null rate {base_rate:.1%} -> {rate:.1%}"))


def _numeric(name: str, base: Mapping[str, Any], values: np.ndarray, rows: int, config: DriftConfig) -> _Pending:
    present = values[~np.isnan(values)]
    out = _Pending(name, NUMERIC, rows, {}, {}, [])
    hist = base.get("histogram")
    if not hist or not len(present):
        return out
    edges = np.asarray(hist["bin_edges"], float)
    expected = np.asarray(hist["counts"], float)
    # Same bins as np.histogram at publish: [e_i, e_i+1), the last one closed; outside values go to the ends.
    counts = np.bincount(np.searchsorted(edges[1:-1], present, side="right"), minlength=len(expected))
    with np.errstate(over="ignore", invalid="ignore"):  # values near float64's limit: an inf mean is reported as null
        mean, std = float(present.mean()), float(present.std())
    base_std = float(base.get("std") or 0.0)
    psi = stats.psi(expected, counts, config.epsilon)
    ks, p_ks = stats.binned_ks(expected, counts)
    _, p_chi2 = stats.chi2_homogeneity(expected, counts, config.min_expected)
    outside = float(((present < edges[0]) | (present > edges[-1])).mean())
    out.tests.update(
        {
            "psi": psi,
            "ks": ks,
            "mean_baseline": base.get("mean"),
            "mean": mean,
            "std": std,
            "mean_shift_std": (mean - float(base.get("mean", mean))) / base_std if base_std > 0 else None,
            "out_of_range_share": outside,
        }
    )
    out.p_values.update({"chi2": p_chi2, "ks": p_ks})
    out.checks += [
        ("chi2", psi >= config.psi_threshold, f"PSI {psi:.3f} >= {config.psi_threshold}"),
        ("ks", ks >= config.ks_threshold, f"KS {ks:.3f} >= {config.ks_threshold}"),
    ]
    out.current = {"histogram": counts.astype(int).tolist(), "present": len(present)}
    return out


def _categorical(
    name: str,
    base: Mapping[str, Any],
    present: pd.Series,
    rows: int,
    config: DriftConfig,
    known: set[str] | None,
    *,
    lower_booleans: bool = True,
) -> _Pending:
    out = _Pending(name, CATEGORICAL, rows, {}, {}, [])
    live = _value_counts(present, lower_booleans)
    freqs: Mapping[str, float] = base.get("frequencies") or {}
    other_share = float(base.get("other_share", 0.0))
    if known is None and other_share == 0 and freqs:
        known = set(freqs)
    base_n = float(base.get("count", 0)) * (1 - float(base.get("null_rate", 0.0)))
    n = sum(live.values())
    cats = list(freqs)
    live_vec = np.array([live.get(c, 0) for c in cats] + [n - sum(live.get(c, 0) for c in cats)], float)
    base_vec = np.array([freqs[c] for c in cats] + [other_share], float) * base_n
    if n == 0 or base_n <= 0:
        return out
    _, p_chi2 = stats.chi2_homogeneity(base_vec, live_vec, config.min_expected)
    js = stats.js_distance(base_vec, live_vec)
    deltas = live_vec / n - base_vec / base_n
    worst = int(np.abs(deltas).argmax())
    worst_name = [*cats, OTHER][worst]
    out.tests.update({"js": js, "max_share_delta": float(deltas[worst]), "max_share_delta_category": worst_name})
    out.p_values["chi2"] = p_chi2
    out.checks += [
        (
            "chi2",
            abs(deltas[worst]) >= config.share_delta_threshold,
            f"share of {worst_name!r} {base_vec[worst] / base_n:.1%} -> {live_vec[worst] / n:.1%}",
        ),
        ("chi2", js >= config.js_threshold, f"Jensen-Shannon distance {js:.3f} >= {config.js_threshold}"),
    ]
    unseen_counts = {k: v for k, v in live.items() if known is not None and k not in known}
    if known is not None:
        unseen = sum(unseen_counts.values())
        share = unseen / n
        _, p = stats.proportion_test(0.0, base_n, unseen, n)
        out.tests["unseen_share"] = share
        out.p_values["unseen"] = p
        out.checks.append(("unseen", share >= config.unseen_share_threshold, f"{share:.1%} unseen categories"))
    else:
        out.tests["unseen_share"] = None
    top_unseen = sorted(unseen_counts.items(), key=lambda kv: -kv[1])[:5]
    out.current = {
        "frequencies": {c: float(v / n) for c, v in zip([*cats, OTHER], live_vec, strict=True)},
        "present": n,
        "unseen_examples": [k for k, _ in top_unseen],
    }
    return out


def _predictions(
    base: Mapping[str, Any] | None,
    training_rows: int,
    predictions: Any,
    probabilities: Any,
    config: DriftConfig,
) -> list[_Pending]:
    if not base or predictions is None:
        return []
    preds = pd.Series(np.asarray(predictions))
    if base.get("type") == "regression":
        return [_numeric("prediction", base, preds.to_numpy(dtype="float64"), len(preds), config)]
    out = []
    freq_base = {"count": training_rows, "null_rate": 0.0, "frequencies": base.get("class_frequencies", {})}
    freq_base["other_share"] = max(0.0, 1.0 - sum(freq_base["frequencies"].values()))
    # The baseline keeps predicted classes as str(class): True stays "True" here, unlike boolean features.
    out.append(_categorical("predicted_class", freq_base, preds, len(preds), config, None, lower_booleans=False))
    proba_base: Mapping[str, Any] = base.get("probability") or {}
    if probabilities is not None and proba_base:
        classes = list(proba_base)
        if isinstance(probabilities, pd.DataFrame):
            matrix = probabilities[classes].to_numpy(dtype="float64")
        else:
            matrix = np.asarray(probabilities, dtype="float64")
        # With two classes one probability determines the other: test one, do not spend alpha twice.
        for i, c in enumerate(classes):
            if len(classes) == 2 and i == 0:
                continue
            out.append(_numeric(f"probability[{c}]", proba_base[c], matrix[:, i], len(matrix), config))
    return out


def _value_counts(present: pd.Series, lower_booleans: bool) -> dict[str, int]:
    """Live counts keyed like the baseline: strings as they are, booleans as "true"/"false", others str()."""
    out: dict[str, int] = {}
    for k, v in present.value_counts(dropna=True, sort=False).items():
        is_bool = lower_booleans and isinstance(k, bool | np.bool_)
        key = k if isinstance(k, str) else str(k).lower() if is_bool else str(k)
        out[key] = out.get(key, 0) + int(v)
    return out


def _num(v: Any) -> Any:
    if isinstance(v, float | np.floating):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def _jsonable(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return _num(v)
