"""Drift thresholds: documented defaults, overridable per model through card tags or a dict.

A window is compared with the card's baseline by several tests per feature. A test flags a feature only when
its effect size reaches a threshold AND its p-value, adjusted (each column's tests merged into one p-value, then
adjusted across the window's columns, Holm by default: see monitoring.drift.check), is below ``alpha``: on
large windows p-values alone flag differences nobody cares about; on small windows effect sizes alone flag
noise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

TAG_PREFIX = "drift."
CORRECTIONS = ("holm", "bh")


@dataclass(frozen=True)
class DriftConfig:
    """Thresholds of the drift check; each field's comment says what it means and why its default.

    Build with keywords, from a dict (`from_dict`), or from card tags (`from_card_tags`). Raises ValueError for alpha
    outside (0, 1), an unknown correction, or min_rows / consecutive_windows below 1.
    """

    # Family-wise error rate of one window (Holm) or false discovery rate (BH). With valid two-sample tests
    # a clean window is flagged with probability <= alpha, before the effect thresholds cut it further. 0.005,
    # not 0.01: the per-column combination makes Holm nearly exact (~0.6% of clean 500-row windows flagged at
    # 0.01; the one Holm over ~40 dependent tests it replaced was conservative), so alpha is close to the rate
    # itself and the <= 1% target needs this margin; measured in bench/drift.py.
    alpha: float = 0.005
    correction: str = "holm"
    # Below this many rows the verdict is insufficient_data: only large changes are detectable there and
    # chi-square approximations need a few expected rows per bin.
    min_rows: int = 500
    # A model is declared drifted after this many drifted windows in a row (insufficient_data windows neither
    # count nor reset). With a per-window false-alarm rate p, a false model alarm needs ~p**2.
    consecutive_windows: int = 2
    # Numeric: PSI on the baseline's quantile bins (0.1 is the usual "moderate shift" mark) or the binned
    # two-sample KS statistic (0.05: a mean shift of ~0.13 std of a normal feature; 0.25 std gives ~0.10).
    psi_threshold: float = 0.1
    ks_threshold: float = 0.05
    # Numeric location (rank-sum test): the mean moved by at least this many baseline standard deviations.
    mean_shift_threshold: float = 0.1
    # Numeric tails: the share of values below the training 1st or above its 99th percentile moved by this much
    # (0.01 = 1 point: the expected share is ~1%, so this is a doubling or an emptied tail).
    tail_share_delta_threshold: float = 0.01
    # Share of live values outside the training [min, max] (about 2 / training rows when nothing changed).
    out_of_range_share_threshold: float = 0.01
    # Multivariate: a pair of numeric features' Spearman correlation moved by at least this much.
    correlation_delta_threshold: float = 0.1
    # Categorical: largest change of one category's share (0.03 = 3 points) or Jensen-Shannon distance (base 2).
    share_delta_threshold: float = 0.03
    js_threshold: float = 0.1
    # Share of live values in categories the training data never had.
    unseen_share_threshold: float = 0.01
    # Null rate: absolute change, or Cohen's h (0.2 = "small"; 0 -> 1% nulls is h = 0.2).
    null_rate_delta_threshold: float = 0.02
    cohen_h_threshold: float = 0.2
    # Empty bins get this share in PSI/JS so a logarithm never sees 0.
    epsilon: float = 1e-4
    # Bins or categories expected to hold fewer rows than this (in either sample) are merged before chi-square.
    min_expected: float = 5.0
    # Features left out of the check entirely (identifiers, known-seasonal features).
    ignore: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.correction not in CORRECTIONS:
            raise ValueError(f"correction must be one of {CORRECTIONS}, got {self.correction!r}")
        if self.min_rows < 1 or self.consecutive_windows < 1:
            raise ValueError("min_rows and consecutive_windows must be at least 1")

    def to_dict(self) -> dict[str, Any]:
        """Every setting by name, as the report records it."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["ignore"] = list(self.ignore)
        return out

    def with_overrides(self, overrides: Mapping[str, Any]) -> DriftConfig:
        """A copy with ``overrides`` applied; values may be strings (as card tags are). Unknown keys raise."""
        known = {f.name: f for f in fields(self)}
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            if key not in known:
                raise ValueError(f"unknown drift setting {key!r}; known: {', '.join(sorted(known))}")
            changes[key] = _coerce(key, getattr(self, key), value)
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DriftConfig:
        """The defaults with ``d`` applied (see `with_overrides`)."""
        return cls().with_overrides(d)

    @classmethod
    def from_card_tags(cls, tags: Mapping[str, str] | None, base: DriftConfig | None = None) -> DriftConfig:
        """Settings from card tags named ``drift.<setting>``, e.g. ``{"drift.alpha": "0.05"}``; others ignored."""
        base = base or cls()
        picked = {k[len(TAG_PREFIX) :]: v for k, v in (tags or {}).items() if k.startswith(TAG_PREFIX)}
        return base.with_overrides(picked)


def _coerce(key: str, current: Any, value: Any) -> Any:
    if isinstance(current, tuple):
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return tuple(str(v) for v in value)
    try:
        if isinstance(current, bool):
            return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes")
        if isinstance(current, int):
            return int(value)
        if isinstance(current, float):
            return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"drift setting {key!r} expects {type(current).__name__}, got {value!r}") from None
    return str(value)
