"""Compare one window of live data with a model card's baseline: per-feature, prediction and multivariate drift.

Numeric features (and regression predictions, class probabilities): live values are counted into the
baseline's quantile bins (``np.searchsorted`` on the edges, ``np.bincount``); values outside the training
range fall in the first or last bin. On those counts: PSI, and a chi-square homogeneity test as its p-value;
the binned KS statistic (largest gap of the two CDFs at the bin edges) with its asymptotic p-value; the
Wilcoxon-Mann-Whitney rank-sum test (``location``, the most powerful rank test against a shift, whose effect is
``mean_shift_std``: live mean minus baseline mean, in baseline standard deviations). The card holds no raw
training values, so the KS statistic is computed at the ~10 quantile edges only: a lower bound of the raw
statistic, with a conservative p-value. Bins cannot see inside the first and last decile, so the tails get their
own exceedance tests (``stats.exceedance_test``): the share of values below the training 1st and above its 99th
percentile (``tail_lower``, ``tail_upper``; cards published before tail counts were recorded skip them, with a
note) and outside the training [min, max] (``out_of_range``).

Categorical and boolean features (and predicted classes): shares of the baseline's top categories plus one
"other" bucket; chi-square homogeneity (rare buckets merged), Jensen-Shannon distance, the largest change of
one share, and the share of values in categories training never had (known from the schema's category list,
or from the baseline's frequencies when they cover every category, ``other_share == 0``).

Every feature: null rate change, Cohen's h and the arcsine two-proportion test. ``pii`` features get only
that: no values of theirs are read beyond ``isna`` or written to the report.

Multivariate (``dependence``): Spearman's correlation of every pair of numeric features against the matrix
stored at publish (``publishing.baseline.dependence_baseline``), each pair by ``stats.correlation_test``: a change
in how features move together is invisible to every per-feature test when the marginals stay put.

The family: the tests of one column (a feature, a part of the predictions, the multivariate test) look at one
distribution and are strongly dependent, so they are merged into one p-value by the Cauchy combination with
fixed weights (``stats.cauchy_combination``, Liu & Xie 2020); the columns' p-values are then adjusted by Holm (or
BH) across columns. One Holm over every test of every column (as before) divided alpha by ~40 on a
10-feature model, 7 of every 8 shares for tests that watch the same shift, which cost small windows most of their
power. Per window, any flag needs a column's adjusted p-value below alpha, so the false-alarm rate stays
<= alpha (Holm 1979 over valid column p-values). A test is a reason when its column passed, its own p-value over
its weight (weighted Bonferroni within the column, Holm 1979's weighted form) is below alpha too, and its effect
size reaches the configured threshold; its ``p_adjusted`` is the larger of the two.
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
MULTIVARIATE = "multivariate"
DEPENDENCE = "dependence"
UNSEEN = "(unseen categories)"
# Weights of each column's tests in its Cauchy combination (normalised over the tests a column has). A priori, not
# fitted: a location shift is the change seen most in practice and the rank-sum test is the one that sees it best,
# so it gets the largest share; chi-square and KS watch the same bins; the tails and the range watch what the bins
# cannot; the null rate is one test apart. Weighting p-values by prior belief keeps the error control
# (Genovese, Roeder & Wasserman 2006, Biometrika 93).
NUMERIC_WEIGHTS = {
    "location": 0.35,
    "chi2": 0.15,
    "ks": 0.1,
    "tail_lower": 0.075,
    "tail_upper": 0.075,
    "out_of_range": 0.1,
    "null_rate": 0.15,
}
CATEGORICAL_WEIGHTS = {"chi2": 0.7, "unseen": 0.15, "null_rate": 0.15}
# The multivariate test ranks at most this many rows of a window (a seeded sample): ~0.3 s at 50,000 rows and
# 6 features on one core; the correlations' noise at that size (~0.005) is far below any threshold.
DEPENDENCE_MAX_ROWS = 50_000
# Pairs listed in the report, the most significant first.
DEPENDENCE_PAIRS_SHOWN = 5


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
    # The column's tests merged (Cauchy combination), and that p-value adjusted across the window's columns.
    p_combined: float = 1.0
    p_combined_adjusted: float = 1.0
    # Tests skipped and why (an older card without the statistics they need).
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The column as the drift report's JSON has it (NaN and infinities as null, numpy scalars as Python)."""
        return {
            "name": self.name,
            "type": self.kind,
            "rows": self.rows,
            "tests": {k: _num(v) for k, v in self.tests.items()},
            "p_values": {k: _num(v) for k, v in self.p_values.items()},
            "p_adjusted": {k: _num(v) for k, v in self.p_adjusted.items()},
            "p_combined": _num(self.p_combined),
            "p_combined_adjusted": _num(self.p_combined_adjusted),
            "drifted": self.drifted,
            "reasons": list(self.reasons),
            "notes": list(self.notes),
            "current": _jsonable(self.current),
        }


@dataclass(frozen=True)
class DriftReport:
    """The outcome of comparing one window with a card's baseline.

    rows: live rows compared. verdict: "drift", "no_drift", or "insufficient_data" (fewer than config.min_rows rows;
        nothing is flagged then).
    features, predictions: one ColumnDrift per feature checked and per part of the predictions.
    multivariate: the tests across features (``dependence``: pairwise Spearman correlations), empty when no
        baseline was given. tests_in_family: column p-values adjusted together. model: {"name", "version"} when
        known. missing_features: schema features the window had no column for (not checked).
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
    multivariate: tuple[ColumnDrift, ...] = ()

    @property
    def drifted_features(self) -> tuple[str, ...]:
        """Names of the features flagged, in schema order."""
        return tuple(f.name for f in self.features if f.drifted)

    @property
    def prediction_drifted(self) -> bool:
        """Whether any part of the predictions was flagged."""
        return any(p.drifted for p in self.predictions)

    @property
    def multivariate_drifted(self) -> bool:
        """Whether a multivariate test (a change in how features move together) was flagged."""
        return any(m.drifted for m in self.multivariate)

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
            "multivariate_drifted": self.multivariate_drifted,
            "tests_in_family": self.tests_in_family,
            "missing_features": list(self.missing_features),
            "features": [f.to_dict() for f in self.features],
            "predictions": [p.to_dict() for p in self.predictions],
            "multivariate": [m.to_dict() for m in self.multivariate],
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
    weights: Mapping[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


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

    Returns the DriftReport; the tests, their family and thresholds are in the module docstring and DriftConfig. A
    window of fewer than config.min_rows rows (an empty one too) is insufficient_data.

    Sources: PSI (population stability index, Siddiqi 2006, "Credit Risk Scorecards", 0.1 as a moderate shift); the
        two-sample Kolmogorov-Smirnov statistic and its asymptotic distribution; the Wilcoxon-Mann-Whitney test on
        grouped data; exceedances of training order statistics (Gumbel & von Schelling 1950); Pearson's chi-square
        test of homogeneity; Jensen-Shannon distance (Lin 1991); Cohen's h for two proportions (Cohen 1988);
        Spearman's rho and its Fisher z (Bonett & Wright 2000); the Cauchy combination (Liu & Xie 2020); Holm's
        step-down (1979) and Benjamini-Hochberg (1995) adjustments.
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
    multi_pending = [_dependence(baseline.get("dependence"), schema, window, config)] if baseline else []

    everything = pending + pred_pending + multi_pending
    combined = [stats.cauchy_combination(list(p.p_values.values()), _weights(p)) for p in everything]
    in_family = [i for i, p in enumerate(everything) if p.p_values]
    adjusted = dict(zip(in_family, stats.adjust([combined[i] for i in in_family], config.correction), strict=True))

    enough = rows >= config.min_rows
    done = []
    for i, p in enumerate(everything):
        column_adjusted = adjusted.get(i, 1.0)
        weights = dict(zip(p.p_values, _weights(p), strict=True))
        total = sum(weights.values())
        p_adj = {k: max(column_adjusted, min(1.0, v * total / weights[k])) for k, v in p.p_values.items()}
        reasons = tuple(
            f"{reason} (adjusted p={p_adj[key]:.2g})"
            for key, effect, reason in p.checks
            if enough and effect and p_adj[key] < config.alpha
        )
        done.append(
            ColumnDrift(
                p.name,
                p.kind,
                p.rows,
                p.tests,
                p.p_values,
                p_adj,
                bool(reasons),
                reasons,
                p.current,
                combined[i],
                column_adjusted,
                tuple(p.notes),
            )
        )
    feats = tuple(done[: len(pending)])
    preds = tuple(done[len(pending) : len(pending) + len(pred_pending)])
    multi = tuple(done[len(pending) + len(pred_pending) :])
    verdict = INSUFFICIENT_DATA if not enough else DRIFT if any(c.drifted for c in done) else NO_DRIFT
    return DriftReport(rows, verdict, feats, preds, config, len(in_family), dict(model or {}), missing, multi)


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


def _weights(p: _Pending) -> list[float]:
    """The column's test weights in p_values order (equal when the column kind has none)."""
    return [p.weights.get(k, 1.0) for k in p.p_values]


# --- per column ---------------------------------------------------------------------------------------------


def _feature(spec: FeatureSpec, base: Mapping[str, Any], col: pd.Series, config: DriftConfig) -> _Pending:
    nulls = col.isna()
    null_count = int(nulls.sum())
    if spec.pii or base.get("pii"):
        out = _Pending(spec.name, PII, len(col), {}, {}, [], weights=NUMERIC_WEIGHTS)
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
    out = _Pending(name, NUMERIC, rows, {}, {}, [], weights=NUMERIC_WEIGHTS)
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
    rank_biserial, p_location = stats.rank_sum(expected, counts)
    shift = (mean - float(base.get("mean", mean))) / base_std if base_std > 0 else None
    out.tests.update(
        {
            "psi": psi,
            "ks": ks,
            "mean_baseline": base.get("mean"),
            "mean": mean,
            "std": std,
            "mean_shift_std": shift,
            "rank_biserial": rank_biserial,
        }
    )
    out.p_values.update({"location": p_location, "chi2": p_chi2, "ks": p_ks})
    out.checks += [
        (
            "location",
            shift is not None and math.isfinite(shift) and abs(shift) >= config.mean_shift_threshold,
            f"mean {float(base.get('mean', mean)):.4g} -> {mean:.4g} ({shift or 0:+.2f} sd)",
        ),
        ("chi2", psi >= config.psi_threshold, f"PSI {psi:.3f} >= {config.psi_threshold}"),
        ("ks", ks >= config.ks_threshold, f"KS {ks:.3f} >= {config.ks_threshold}"),
    ]
    training = int(expected.sum())
    _tails(out, base.get("tails"), present, training, config)
    _out_of_range(out, base, present, training, config)
    out.current = {"histogram": counts.astype(int).tolist(), "present": len(present)}
    return out


def _tails(
    out: _Pending, tails: Mapping[str, Any] | None, present: np.ndarray, training: int, config: DriftConfig
) -> None:
    """Shares below the training 1st and above its 99th percentile, each an exceedance test (two-sided)."""
    if not tails:
        out.notes.append("tails not tested: the card's baseline has no tail counts (published before they were kept)")
        return
    for side, label in (
        ("lower", "below the training 1st percentile"),
        ("upper", "above the training 99th percentile"),
    ):
        edge, beyond_training = float(tails[side]["edge"]), int(tails[side]["beyond"])
        beyond = int((present < edge).sum() if side == "lower" else (present > edge).sum())
        share_base, share = beyond_training / training if training else 0.0, beyond / len(present)
        out.tests.update({f"tail_{side}_share_baseline": share_base, f"tail_{side}_share": share})
        out.p_values[f"tail_{side}"] = stats.exceedance_test(
            beyond_training, training, beyond, len(present), two_sided=True
        )
        out.checks.append(
            (
                f"tail_{side}",
                abs(share - share_base) >= config.tail_share_delta_threshold,
                f"share {label} ({edge:.4g}) {share_base:.1%} -> {share:.1%}",
            )
        )


def _out_of_range(out: _Pending, base: Mapping[str, Any], present: np.ndarray, training: int, config: DriftConfig):
    """Share of values outside the training [min, max]: an exceedance test of the two extremes (one-sided: more)."""
    if base.get("min") is None or base.get("max") is None:
        out.notes.append("range not tested: the card's baseline has no training min/max")
        return
    low, high = float(base["min"]), float(base["max"])
    outside = int(((present < low) | (present > high)).sum())
    share = outside / len(present)
    out.tests["out_of_range_share"] = share
    # Past both extremes of N values = past the 2nd most extreme of one side (1 training value beyond it).
    out.p_values["out_of_range"] = stats.exceedance_test(1, training, outside, len(present), two_sided=False)
    out.checks.append(
        (
            "out_of_range",
            share >= config.out_of_range_share_threshold,
            f"{share:.1%} of values outside the training range [{low:.4g}, {high:.4g}]",
        )
    )


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
    out = _Pending(name, CATEGORICAL, rows, {}, {}, [], weights=CATEGORICAL_WEIGHTS)
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
    unseen_counts = {k: v for k, v in live.items() if known is not None and k not in known}
    driver, driver_text = _chi2_driver(cats, base_vec, live_vec, sum(unseen_counts.values()))
    out.tests.update(
        {
            "js": js,
            "max_share_delta": float(deltas[worst]),
            "max_share_delta_category": worst_name,
            "chi2_driver": driver,
        }
    )
    out.p_values["chi2"] = p_chi2
    moved = f"share of {worst_name!r} {base_vec[worst] / base_n:.1%} -> {live_vec[worst] / n:.1%}"
    out.checks += [
        (
            "chi2",
            abs(deltas[worst]) >= config.share_delta_threshold,
            driver_text if worst_name == driver else f"{driver_text}; largest share change: {moved}",
        ),
        ("chi2", js >= config.js_threshold, f"Jensen-Shannon distance {js:.3f} >= {config.js_threshold}"),
    ]
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


def _chi2_driver(cats: list[str], base_vec: np.ndarray, live_vec: np.ndarray, unseen: int) -> tuple[str, str]:
    """The bucket with the largest share of the chi-square statistic (Pearson's residuals squared, both samples),
    and a reason naming it. When that is the "other" bucket and the window has categories training never had, they
    are what moved it (their training share is 0 by definition) and are named instead."""
    base_n, n = base_vec.sum(), live_vec.sum()
    pooled = (base_vec + live_vec) / (base_n + n)
    with np.errstate(divide="ignore", invalid="ignore"):
        parts = np.where(
            pooled > 0,
            (live_vec - n * pooled) ** 2 / (n * pooled) + (base_vec - base_n * pooled) ** 2 / (base_n * pooled),
            0.0,
        )
    i = int(parts.argmax())
    name = [*cats, OTHER][i]
    if name == OTHER and unseen:
        return UNSEEN, f"categories never seen in training: 0.0% -> {unseen / n:.1%} of values (most of chi-square)"
    share = f"{base_vec[i] / base_n:.1%} -> {live_vec[i] / n:.1%}"
    return name, f"share of {name!r} {share} (most of chi-square)"


def _dependence(
    base: Mapping[str, Any] | None, schema: InputSchema, window: pd.DataFrame, config: DriftConfig
) -> _Pending:
    """Pairwise Spearman correlations of the numeric features against the card's matrix, one Fisher-z test a pair
    merged by the Cauchy combination (pairs share features, so their tests are dependent)."""
    out = _Pending(DEPENDENCE, MULTIVARIATE, len(window), {}, {}, [])
    if not base or len(base.get("features") or ()) < 2:
        out.notes.append(
            "not tested: the card's baseline has no feature correlations (published before they were kept)"
        )
        return out
    names = list(base["features"])
    k = len(names)
    rho_base = np.zeros((k, k))
    rho_base[np.triu_indices(k, k=1)] = base["spearman"]
    skipped = {f.name for f in schema.features if f.name in config.ignore or not f.required}
    kept = [i for i, name in enumerate(names) if name in window.columns and name not in skipped]
    if len(kept) < 2:
        out.notes.append("not tested: fewer than 2 of its numeric features are in the window")
        return out
    columns = window[[names[i] for i in kept]]
    if len(columns) > DEPENDENCE_MAX_ROWS:  # sample first: a 1,000,000-row window is never copied whole
        picked = np.sort(np.random.default_rng(0).choice(len(columns), DEPENDENCE_MAX_ROWS, replace=False))
        columns = columns.iloc[picked]
    values = columns.apply(pd.to_numeric, errors="coerce").to_numpy(dtype="float64")
    values = values[~np.isnan(values).any(axis=1)]
    out.tests["rows"] = len(values)
    if len(values) < config.min_rows:
        out.notes.append(f"not tested: {len(values)} rows complete in its features, fewer than min_rows")
        return out
    rho_live = stats.spearman(values)
    i, j = np.triu_indices(len(kept), k=1)
    rb = rho_base[np.asarray(kept)[i], np.asarray(kept)[j]]
    rl = rho_live[i, j]
    _, p = stats.correlation_test(rb, float(base.get("rows", 0)), rl, len(values))
    delta = rl - rb
    order = np.lexsort((-np.abs(delta), p))
    pairs = [
        {
            "features": [names[kept[i[o]]], names[kept[j[o]]]],
            "baseline": float(rb[o]),
            "current": float(rl[o]),
            "p_value": float(p[o]),
        }
        for o in order[:DEPENDENCE_PAIRS_SHOWN]
    ]
    worst = int(np.abs(delta).argmax())
    out.tests.update(
        {
            "pairs": len(rb),
            "max_correlation_delta": float(delta[worst]),
            "max_correlation_delta_pair": f"{names[kept[i[worst]]]} ~ {names[kept[j[worst]]]}",
        }
    )
    out.p_values["correlation"] = stats.cauchy_combination(p.tolist(), [1.0] * len(p))
    # The reason names the most significant pair among those that moved enough.
    big = np.flatnonzero(np.abs(delta) >= config.correlation_delta_threshold)
    if len(big):
        o = int(big[np.argmin(p[big])])
        a, b = names[kept[i[o]]], names[kept[j[o]]]
        out.checks.append(("correlation", True, f"Spearman correlation of {a} and {b} {rb[o]:+.2f} -> {rl[o]:+.2f}"))
    out.current = {"pairs": pairs}
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
