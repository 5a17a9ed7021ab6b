"""Shadow comparison: replay an alias's captured requests on its shadow version and on its stable version, and say
whether the shadow would be better, with intervals.

The shadow never answers callers. Each check takes the row records the alias's answering versions captured in a
window (sampled down to `max_rows`), validates their features against each version's schema, scores them with both
versions (loaded verified, as the predict function loads them), and compares, on the very same rows (paired):

- agreement rate: share of rows where both predict the same class (regressors: predictions within
  AGREEMENT_RTOL of each other), Wilson interval (model_quality.metrics.wilson);
- prediction distribution: per class, shadow share - stable share on the same rows, a paired mean of per-row
  indicator differences with its normal interval; for regressors the two-sample Kolmogorov-Smirnov test
  (scipy.stats.ks_2samp; it treats the samples as independent, so it is conservative for paired rows) and the
  mean difference with its paired normal interval;
- quality on the rows that have labels: updating.gate.compare_versions on the card's main metric (updating.rollout.
  main_metric), champion = stable, challenger = shadow, with the gain's one-sided lower bound: `replace` ("would
  replace: shown better"), `keep_champion` ("would keep the stable version: not shown better") or `reject`, which
  means the shadow is not shown non-inferior (its lower bound is below -margin): on few labeled rows that is
  inconclusive, so it reads "not shown non-inferior: may be worse by more than the margin" (level `warning`), and
  "shown worse by more than the margin" (level `worse`) only when the whole interval lies below -margin;
- latency: scoring time per row of each, measured on the same chunks in alternating order; the ratio shadow / stable
  over all chunks, and its range over the chunks (a spread, not a confidence interval).

Replay fidelity: re-scored by the stable version, the rows it answered must give the predictions it captured; the
report gives the share that match. When the model reads pii features, the captured values are pseudonyms
(monitoring.capture): the replay scores the pseudonyms, so rows on which such a feature matters are not faithful; the
report says so, and the fidelity share measures it.

Layout in the data bucket:
    reports/shadow/<model>/<alias>/v<shadow version>.json | .html   the last comparison, rewritten by every check
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from sklambda.errors import InvalidInput
from sklambda.monitoring.ground_truth.store import read_labels
from sklambda.monitoring.model_quality.join import ID, LABEL, join_labels
from sklambda.monitoring.model_quality.metrics import mean_estimate, wilson
from sklambda.monitoring.windows import Window
from sklambda.registry.card import REGRESSION
from sklambda.registry.schema import is_required
from sklambda.registry.store import AliasRecord
from sklambda.serving.server import LoadedModel
from sklambda.updating.gate import KEEP_CHAMPION, REJECT, REPLACE, GateConfig, compare_versions
from sklambda.updating.rollout import main_metric, positive_class
from sklambda.updating.traffic import read_alias_traffic, since

REPORT_FORMAT = "sklambda.updating.shadow-report/v1"
REPORT_PREFIX = "reports/shadow/"
# Two regression predictions agree when they differ by at most this share of the larger's magnitude.
AGREEMENT_RTOL = 0.01
# A replayed regression prediction reproduces the captured one to within float64 formatting (JSON round trip).
FIDELITY_RTOL = 1e-9
# Chunks the replay is scored in, each timed for both versions (alternating which goes first).
LATENCY_CHUNKS = 5
# The quality comparison's verdict and level by the gate's decision (module docstring); a `reject` whose interval lies
# entirely below -margin is WORSE.
VERDICTS = {
    REPLACE: ("would replace: shown better", "better"),
    KEEP_CHAMPION: ("would keep the stable version: not shown better", "neutral"),
    REJECT: ("not shown non-inferior: may be worse by more than the margin ({margin:g})", "warning"),
}
WORSE = ("shown worse by more than the margin ({margin:g})", "worse")


@dataclass(frozen=True)
class Replay:
    """Rows both versions could score: their captured records and each version's predictions (and probabilities of
    the stable card's classes, or None), the seconds each took, chunk by chunk, and the rows left out, by version."""

    records: list[dict]
    stable: list
    shadow: list
    stable_proba: np.ndarray | None
    shadow_proba: np.ndarray | None
    stable_seconds: list[float]
    shadow_seconds: list[float]
    rejected: dict[str, int]


def replay(stable: LoadedModel, shadow: LoadedModel, records: list[dict]) -> Replay:
    """Score the captured `records`' features with both versions (each validating against its own schema).

    A row either version's schema or estimator refuses (InvalidInput naming it) is left out for both and counted
    under that version. Raises InvalidInput only when a version refuses the batch without naming rows.
    """
    rejected = {"stable": 0, "shadow": 0}
    kept = list(records)
    frames: dict[str, pd.DataFrame] = {}
    for _ in range(len(records) + 1):  # each round that finds bad rows drops at least one: it ends
        frames.clear()
        bad: set[int] = set()
        for role, loaded in (("stable", stable), ("shadow", shadow)):
            rows = [r.get("features") or {} for r in kept]
            try:
                frame = loaded.scorer.schema.validate(rows) if rows else None
                if frame is not None:
                    loaded.scorer.score_arrays(frame)  # names the rows the estimator refuses, before timing
                    frames[role] = frame
            except InvalidInput as e:
                named = {err.row for err in e.errors if err.row is not None}
                if not named:
                    raise
                rejected[role] += len(named - bad)
                bad |= named
        if not bad:
            break
        kept = [r for i, r in enumerate(kept) if i not in bad]
    if not kept or len(frames) < 2:
        return Replay([], [], [], None, None, [], [], rejected)
    predictions: dict[str, list] = {"stable": [], "shadow": []}
    probabilities: dict[str, list] = {"stable": [], "shadow": []}
    seconds: dict[str, list[float]] = {"stable": [], "shadow": []}
    bounds = np.linspace(0, len(kept), min(LATENCY_CHUNKS, len(kept)) + 1).astype(int)
    for k, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        order = (("stable", stable), ("shadow", shadow)) if k % 2 == 0 else (("shadow", shadow), ("stable", stable))
        for role, loaded in order:
            chunk = frames[role].iloc[lo:hi]
            started = time.perf_counter()
            scored = loaded.scorer.score_arrays(chunk)
            seconds[role].append(time.perf_counter() - started)
            predictions[role].extend(scored.predictions)
            probabilities[role].append(scored.probabilities)
    return Replay(
        kept,
        predictions["stable"],
        predictions["shadow"],
        _stack(probabilities["stable"]),
        _stack(probabilities["shadow"]),
        seconds["stable"],
        seconds["shadow"],
        rejected,
    )


def _stack(parts: list) -> np.ndarray | None:
    return None if any(p is None for p in parts) or not parts else np.vstack(parts)


def compare_shadow(
    stable: LoadedModel,
    shadow: LoadedModel,
    records: list[dict],
    labels: pd.DataFrame | None = None,
    *,
    max_rows: int | None = None,
    seed: int = 0,
    gate: GateConfig | None = None,
) -> dict[str, Any]:
    """The comparison report of `shadow` against `stable` on the captured row `records` (module docstring).

    records: row records as captured (features, prediction, version, inference_id). labels: ground_truth's frame
    (inference_id, label), or None. max_rows: replay a seeded uniform sample of at most this many rows. gate: the
    paired comparison's settings (default: GateConfig on the main metric). Returns the JSON-ready sections replay,
    fidelity, agreement, distribution, quality, latency and summary. Raises ValueError when the versions answer
    different questions (task or classes differ).
    """
    s_card, h_card = stable.card, shadow.card
    if s_card.task != h_card.task or [str(c) for c in s_card.classes or ()] != [str(c) for c in h_card.classes or ()]:
        raise ValueError(
            f"versions {s_card.version} and {h_card.version} do not answer the same question: tasks "
            f"{s_card.task}/{h_card.task}, classes {s_card.classes}/{h_card.classes}"
        )
    captured = len(records)
    if max_rows is not None and captured > max_rows:
        picked = np.sort(np.random.default_rng(seed).choice(captured, max_rows, replace=False))
        records = [records[i] for i in picked]
    done = replay(stable, shadow, records)
    n = len(done.records)
    regression = s_card.task == REGRESSION
    document: dict[str, Any] = {
        "replay": {
            "rows_captured": captured,
            "rows_replayed": n,
            "sampled": max_rows is not None and captured > max_rows,
            "rejected": done.rejected,
        },
        "fidelity": _fidelity(done, s_card.version, regression, _pii_read(s_card)),
    }
    if not n:
        document |= {"agreement": None, "distribution": None, "quality": None, "latency": None}
        document["summary"] = "no captured row could be replayed on both versions"
        return document
    document["agreement"] = _agreement(done, regression)
    document["distribution"] = _regression_shift(done) if regression else _class_shares(done, s_card.classes or ())
    document["quality"] = _quality(stable, done, labels, gate)
    document["latency"] = _latency(done)
    document["summary"] = _summary(document)
    return document


def _pii_read(card: Any) -> list[str]:
    """The pii features the model reads: one it never reads (`required` False) cannot change a replayed answer."""
    return [f.name for f in card.input_schema.features if f.pii and is_required(f)]


def _fidelity(done: Replay, version: str, regression: bool, pii: list[str]) -> dict[str, Any]:
    answered = [i for i, r in enumerate(done.records) if str(r.get("version")) == version]
    match = 0
    for i in answered:
        captured, replayed = done.records[i].get("prediction"), done.stable[i]
        if regression:
            match += bool(np.isclose(float(captured), float(replayed), rtol=FIDELITY_RTOL, atol=0))
        else:
            match += str(captured) == str(replayed)
    out: dict[str, Any] = {
        "rows": len(answered),
        "matching": match,
        "share": match / len(answered) if answered else None,
        "pii_features": pii,
    }
    if pii:
        out["note"] = (
            f"the model reads pii features ({', '.join(pii)}): capture keeps pseudonyms of their values, "
            "so the replay scores the pseudonyms; rows on which those features matter are not replayed faithfully"
        )
    return out


def _agreement(done: Replay, regression: bool) -> dict[str, Any]:
    if regression:
        a, b = np.asarray(done.stable, dtype=float), np.asarray(done.shadow, dtype=float)
        same = np.abs(a - b) <= AGREEMENT_RTOL * np.maximum(np.abs(a), np.abs(b))
        definition = f"predictions within {AGREEMENT_RTOL:.0%} of each other"
    else:
        same = np.array([str(x) == str(y) for x, y in zip(done.stable, done.shadow, strict=True)])
        definition = "the same predicted class"
    estimate = wilson(int(same.sum()), len(same))
    return {
        "rows": len(same),
        "agreeing": int(same.sum()),
        "rate": estimate.value,
        "interval": [estimate.lower, estimate.upper],
        "definition": definition,
    }


def _class_shares(done: Replay, classes: Any) -> dict[str, Any]:
    a = np.array([str(x) for x in done.stable])
    b = np.array([str(x) for x in done.shadow])
    out = []
    for c in [str(c) for c in classes] or sorted(set(a) | set(b)):
        diff = mean_estimate((b == c).astype(float) - (a == c).astype(float))
        out.append(
            {
                "class": c,
                "stable": float((a == c).mean()),
                "shadow": float((b == c).mean()),
                "difference": diff.value,
                "interval": _interval(diff),
            }
        )
    return {"kind": "class_shares", "classes": out}


def _regression_shift(done: Replay) -> dict[str, Any]:
    a, b = np.asarray(done.stable, dtype=float), np.asarray(done.shadow, dtype=float)
    ks = sps.ks_2samp(b, a)
    diff = mean_estimate(b - a)
    return {
        "kind": "two_sample",
        "test": "ks_2samp",
        "statistic": float(ks.statistic),
        "p_value": float(ks.pvalue),
        "stable_mean": float(a.mean()),
        "shadow_mean": float(b.mean()),
        "mean_difference": diff.value,
        "interval": _interval(diff),
    }


def _interval(e: Any) -> list[float | None]:
    return [float(e.lower) if np.isfinite(e.lower) else None, float(e.upper) if np.isfinite(e.upper) else None]


def _quality(stable: LoadedModel, done: Replay, labels: pd.DataFrame | None, gate: GateConfig | None) -> dict[str, Any]:
    """The gate's paired comparison on the replayed rows that have a label."""
    if labels is None or not len(labels):
        return {"available": False, "reason": "no label has arrived for the replayed rows"}
    ids = pd.DataFrame({ID: [r.get("inference_id") for r in done.records], "prediction": range(len(done.records))})
    joined = join_labels(labels[[ID, LABEL]], ids[ids[ID].notna()]).frame
    if not len(joined):
        return {"available": False, "reason": "no label has arrived for the replayed rows"}
    rows = joined["prediction"].to_numpy(dtype=int)  # the replay's row index, carried through the join
    truth = joined[LABEL].to_numpy(dtype=object)
    card = stable.card
    positive = positive_class(card)
    has_proba = done.stable_proba is not None and done.shadow_proba is not None
    metric = main_metric(card.task, has_proba, len(card.classes or ()))
    config = gate or GateConfig(metric=metric)
    try:
        if card.task == REGRESSION:
            y = pd.to_numeric(pd.Series(truth), errors="coerce").to_numpy(dtype=float)
            ok = np.isfinite(y)
            values = [np.asarray(p, dtype=float)[rows][ok] for p in (done.stable, done.shadow)]
            result = compare_versions(y[ok], *values, config=config)
        elif config.metric == "roc_auc" and positive is not None and has_proba:
            column = [str(c) for c in stable.scorer.class_keys].index(str(positive))
            y = np.array([str(t) == str(positive) for t in truth])
            scores = [p[rows, column] for p in (done.stable_proba, done.shadow_proba)]
            result = compare_versions(y, *scores, config=config)
        else:  # accuracy of any classifier: whether each version was right, against "always right"
            right = [
                np.array([str(p[i]) == str(t) for i, t in zip(rows, truth, strict=True)])
                for p in (done.stable, done.shadow)
            ]
            result = compare_versions(np.ones(len(rows), dtype=bool), *right, config=config)
    except ValueError as e:
        return {"available": False, "reason": str(e), "labeled_rows": len(rows)}
    z = float(sps.norm.ppf(1 - config.alpha))
    interval = [result.gain - z * result.se, result.gain + z * result.se]
    verdict, level = quality_verdict(result.decision, interval[1], config.margin)
    return {
        "available": True,
        "labeled_rows": result.rows,
        "metric": result.metric,
        "stable": result.champion,
        "shadow": result.challenger,
        "gain": result.gain,
        "gain_lower": result.gain_lower,
        "interval": interval,
        "margin": config.margin,
        "decision": result.decision,
        "verdict": verdict,
        "level": level,
        "gate": result.to_dict(),
    }


def quality_verdict(decision: str, upper: float, margin: float) -> tuple[str, str]:
    """(verdict, level) of the paired gate's `decision` for a reader (VERDICTS). `upper`: the upper end of the gain's
    interval; `margin`: the gate's non-inferiority margin (metric units). A `reject` says only that the lower bound is
    below -margin, which few labeled rows make likely even for an equal shadow: level `warning`; it is `worse` (shown
    worse by more than the margin) only when `upper` is below -margin too."""
    verdict, level = WORSE if decision == REJECT and upper < -margin else VERDICTS[decision]
    return verdict.format(margin=margin), level


def _latency(done: Replay) -> dict[str, Any]:
    n = len(done.records)
    s, h = np.asarray(done.stable_seconds), np.asarray(done.shadow_seconds)
    ratios = h / np.maximum(s, 1e-9)
    return {
        "stable_ms_per_row": 1000 * float(s.sum()) / n,
        "shadow_ms_per_row": 1000 * float(h.sum()) / n,
        "ratio": float(h.sum() / max(float(s.sum()), 1e-9)),
        "ratio_range": [float(ratios.min()), float(ratios.max())],
        "chunks": len(s),
    }


def _summary(document: Mapping[str, Any]) -> str:
    agreement = document["agreement"]
    quality = document["quality"]
    parts = [
        f"agreement {100 * agreement['rate']:.1f} % ({100 * agreement['interval'][0]:.1f} to "
        f"{100 * agreement['interval'][1]:.1f} %) on {agreement['rows']:,} replayed rows"
    ]
    if quality.get("available"):
        parts.append(
            f"{quality['metric']} of the shadow against the stable version: {quality['verdict']}, gain "
            f"{quality['gain']:+.4f} (one-sided lower bound {quality['gain_lower']:+.4f}, "
            f"{quality['labeled_rows']:,} labeled rows)"
        )
    else:
        parts.append(f"quality not compared: {quality.get('reason')}")
    parts.append(f"latency ratio {document['latency']['ratio']:.2f}")
    return "; ".join(parts)


def report_folder(model: str, alias: str) -> str:
    """`reports/shadow/<model>/<alias>/`: where an alias's shadow comparisons go."""
    return f"{REPORT_PREFIX}{model}/{alias}/"


def run_shadow(
    record: AliasRecord,
    *,
    load: Callable[[str, str], LoadedModel],
    s3: Any,
    data_bucket: str,
    window_hours: float,
    max_rows: int,
    render: Callable[[Mapping[str, Any]], str],
    now: datetime | None = None,
) -> dict[str, Any]:
    """Compare the shadow of alias `record` with its stable version on the rows the alias answered in the last
    `window_hours` (not before the shadow started), write the report, and return it with its keys under "report".

    load(name, version): a verified LoadedModel (serving.server.load_verified, cached by the caller). Raises
    ValueError when the alias has no shadow or the versions answer different questions; ModelNotFound / ModelRefused
    from `load`; S3 errors as botocore's ClientError.
    """
    if record.shadow is None:
        raise ValueError(f"alias {record.alias!r} of model {record.name!r} has no shadow")
    now = now or datetime.now(UTC)
    started = since(record.shadow.started_at or now.isoformat(), now).start
    window = Window(max(started, now - timedelta(hours=window_hours)), now)
    traffic = read_alias_traffic(s3, data_bucket, record.name, record.alias, record.versions(), window)
    labels = read_labels(s3, data_bucket, record.name, window.start, window.end)
    stable, shadow = load(record.name, record.version), load(record.name, record.shadow.version)
    comparison = compare_shadow(stable, shadow, traffic.rows, labels.frame, max_rows=max_rows)
    document = {
        "format": REPORT_FORMAT,
        "model": record.name,
        "alias": record.alias,
        "stable_version": record.version,
        "shadow_version": record.shadow.version,
        "answering_versions": list(record.versions()),
        "started_at": record.shadow.started_at,
        "window": {"start": window.start.isoformat(), "end": window.end.isoformat()},
        "evaluated_at": now.isoformat(timespec="seconds"),
        **comparison,
    }
    folder = report_folder(record.name, record.alias)
    keys = {"json": f"{folder}v{record.shadow.version}.json", "html": f"{folder}v{record.shadow.version}.html"}
    text = json.dumps(document, indent=2, allow_nan=False)
    s3.put_object(Bucket=data_bucket, Key=keys["json"], Body=text.encode(), ContentType="application/json")
    html = render(json.loads(text))
    s3.put_object(Bucket=data_bucket, Key=keys["html"], Body=html.encode(), ContentType="text/html; charset=utf-8")
    return {**document, "report": keys}
