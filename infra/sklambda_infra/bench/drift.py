"""Drift check benchmark: speed and memory on 1,000,000 rows x 20 features, false-alarm and detection rates.

    python -m sklambda_infra.bench.drift [--rows 1000000] [--repeats 5] [--clean-windows 800] [--shift-windows 50]
                                          [--e2e-repeats 3] [--max-rows 50000] [--target-scale 1]

Speed: a 20-feature frame (14 numeric, 6 categorical, as bench/batch.py) plus predicted class and probabilities;
the baseline is computed by publishing.baseline from a 50,000-row sample of the same generator, as publish does.
Reported: median and best of ``--repeats`` runs of ``check_drift``, the ratio to a floor (the counting any
drift check must do: ``np.histogram`` per numeric column on the baseline edges, ``value_counts`` per categorical
one), and the peak memory the check allocates (tracemalloc, over the frame it is given).

End to end (``end_to_end``): the same rows as gzipped capture lines in moto S3, one day of one model; timed
``read_capture`` + ``check_card`` (run_drift_check minus resolving the card and writing reports) with the Lambda's
default ``max_rows`` (SKLAMBDA_DRIFT_MAX_ROWS: a sample of 50,000 matching lines decoded) and with
``max_rows=None`` (every line decoded), peak RSS of each, and whether both give the same verdict on a clean day
and on a day with one numeric feature shifted.

Rates: the churn model of sklambda_infra.sample, its baseline from 4,000 training rows; clean windows from
the same generator (sizes 100 to 50,000, min_rows lowered to 100 so that none is "insufficient"), and the
single-feature shifts of tests/unit/test_drift.py on 1,000- and 5,000-row windows, per window and with the
default 2-in-a-row rule.

Targets (``targets``): the drift issue's figures, each a row with its target and PASS/MISS, default settings
(min_rows 500): clean windows flagged at 500, 5,000 and 50,000 rows (<= 1%); a 0.2 sd mean shift at 500 rows
(>= 60%); a correlation between two independent features (Gaussian copula 0.3, marginals unchanged) at 5,000 rows
(>= 95%); the top decile spread x2 at 5,000 rows and 3% of values far above the training maximum at 500 rows
(>= 95%, our targets: the issue names the cases, not the rates); a 5-point category move at 500 rows (>= 25%,
no worse than the issue's figure). Writes build/bench/drift.md and build/bench/drift.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
from scipy.stats import norm

from sklambda.config import DRIFT_MAX_ROWS, DriftCheckSettings
from sklambda.monitoring.capture import CaptureRecord
from sklambda.monitoring.drift import DRIFT, DriftConfig, check_card, check_drift, update_state
from sklambda.monitoring.windows import Window, capture_prefix, read_capture
from sklambda.publishing.baseline import card_baseline
from sklambda.registry.card import CLASSIFICATION, ArtifactRef, ModelCard
from sklambda.registry.schema import infer_schema
from sklambda_infra import sample
from sklambda_infra.bench.common import BUILD, ROOT

NUMERIC = [f"x{i:02d}" for i in range(14)]
CATEGORICAL = [f"c{i}" for i in range(6)]
LEVELS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
TARGET_SECONDS = 2.5
CLEAN_SIZES = (100, 300, 1000, 3000, 5000, 10000, 20000, 50000)
# The drift-check Lambda's default sample (SKLAMBDA_DRIFT_MAX_ROWS).
DEFAULT_MAX_ROWS: int = DriftCheckSettings.defaults()[DRIFT_MAX_ROWS]
LINES_PER_OBJECT = 50_000
CAPTURE_BUCKET = "sklambda-drift-bench"
KEY_ID = "0123456789ab"
SHIFTED_FEATURE, SHIFT = "x03", 12.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- speed ----------------------------------------------------------------------------------------------------


def wide_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {name: np.round(rng.normal(50, 20, n), 3) for name in NUMERIC}
    for name in CATEGORICAL:
        data[name] = rng.choice(LEVELS, n)
    X = pd.DataFrame(data)
    p = 1 / (1 + np.exp(-(X["x00"].to_numpy() - 50) / 20))
    return X, np.where(p > 0.5, "yes", "no"), np.column_stack([1 - p, p])


def floor_check(X: pd.DataFrame, baseline: dict) -> None:
    for name in NUMERIC:
        np.histogram(X[name].dropna().to_numpy(), bins=baseline["features"][name]["histogram"]["bin_edges"])
    for name in CATEGORICAL:
        X[name].value_counts()


def timed(fn: Callable[[], object], repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def speed(rows: int, repeats: int) -> dict:
    train, pred_t, proba_t = wide_frame(50_000, 0)
    schema = infer_schema(train)
    baseline = card_baseline(train, schema, pred_t, proba_t, ["no", "yes"])
    log(f"generating {rows:,} rows")
    X, pred, proba = wide_frame(rows, 1)

    def run():
        return check_drift(baseline, schema, X, predictions=pred, probabilities=proba)

    check = timed(run, repeats)
    floor = timed(lambda: floor_check(X, baseline), repeats)
    tracemalloc.start()
    report = run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    median = statistics.median(check)
    return {
        "rows": rows,
        "features": len(NUMERIC) + len(CATEGORICAL),
        "plus": "predicted class and 2 class probabilities",
        "repeats": repeats,
        "check_seconds": {"median": median, "best": min(check), "all": check},
        "floor_seconds": {"median": statistics.median(floor), "best": min(floor)},
        "ratio_to_floor": median / statistics.median(floor),
        "target_seconds": TARGET_SECONDS,
        "meets_target": median <= TARGET_SECONDS,
        "peak_alloc_mb": peak / 2**20,
        "frame_mb": X.memory_usage(deep=True).sum() / 2**20,
        "verdict_on_same_distribution": report.verdict,
    }


# --- end to end: captured lines in S3 -> read_capture -> check_card ----------------------------------------------


LATENCY_MS = 1.25  # every captured request's scoring time (the reader never looks at it)


def _capture_template(model: str) -> str:
    """A %-format of one capture line in CaptureRecord.to_json_line's exact key order and separators.

    Floats go through %r (Python's repr, which is what json.dumps writes for finite floats); the categorical
    levels and predicted classes are plain ASCII words, so quoting them is their JSON form. `_capture_lines`
    checks its first lines against CaptureRecord.to_json_line.
    """
    features = ",".join([f'"{n}":%r' for n in NUMERIC] + [f'"{n}":"%s"' for n in CATEGORICAL])
    return (
        '{"capture":"sklambda/v1","timestamp":"%s","model":' + json.dumps(model) + ',"version":"1",'
        '"request_id":"%s","row":0,"features":{' + features + '},"prediction":"%s",'
        '"probabilities":{"no":%r,"yes":%r},"key_id":"' + KEY_ID + '","inference_id":"%s-0",'
        '"latency_ms":' + repr(LATENCY_MS) + ',"alias":"production"}'
    )


def _capture_lines(model: str, X: pd.DataFrame, pred: np.ndarray, proba: np.ndarray, day: datetime) -> list[str]:
    """One capture line per row, one-row requests spread evenly over `day` (~7 µs a line instead of ~70 µs
    through build_records)."""
    n = len(X)
    start = np.datetime64(day.replace(tzinfo=None).isoformat(), "ms")
    stamps = np.datetime_as_string(start + np.arange(n) * np.timedelta64(86_400_000 // max(n, 1), "ms"), unit="ms")
    stamps = [s + "+00:00" for s in stamps.tolist()]
    request_ids = [f"{i:08x}-0000-4000-8000-{i:012x}" for i in range(n)]
    columns = [X[name].tolist() for name in (*NUMERIC, *CATEGORICAL)]
    probas = (proba[:, 0].tolist(), proba[:, 1].tolist())
    rows = zip(stamps, request_ids, *columns, pred.tolist(), *probas, request_ids, strict=True)
    template = _capture_template(model)
    lines = [template % row for row in rows]
    for i in range(min(n, 3)):  # the fast path of read_capture needs the exact bytes CaptureRecord writes
        record = CaptureRecord(
            timestamp=stamps[i],
            model=model,
            version="1",
            request_id=request_ids[i],
            row=0,
            features={name: X[name].iloc[i].item() for name in NUMERIC} | {n: X[n].iloc[i] for n in CATEGORICAL},
            prediction=str(pred[i]),
            probabilities={"no": float(proba[i, 0]), "yes": float(proba[i, 1])},
            key_id=KEY_ID,
            inference_id=f"{request_ids[i]}-0",
            latency_ms=LATENCY_MS,
            alias="production",
        )
        if record.to_json_line() != lines[i] + "\n":
            raise AssertionError(f"capture line differs from CaptureRecord.to_json_line:\n{lines[i]}")
    return lines


def _put_capture(s3, model: str, lines: list[str], day: datetime, per_object: int) -> tuple[int, int, int]:
    """Gzipped objects of `per_object` lines under the day's capture prefix, named as Firehose names them."""
    objects = raw = packed = 0
    for k in range(0, len(lines), per_object):
        body = ("\n".join(lines[k : k + per_object]) + "\n").encode()
        blob = gzip.compress(body, compresslevel=6, mtime=0)
        key = f"{capture_prefix(model, day.date())}sklambda-capture-1-{day:%Y-%m-%d}-{k // per_object:06d}.gz"
        s3.put_object(Bucket=CAPTURE_BUCKET, Key=key, Body=blob)
        objects, raw, packed = objects + 1, raw + len(body), packed + len(blob)
    return objects, raw, packed


def _wide_card(model: str, schema, baseline: dict) -> ModelCard:
    return ModelCard(
        name=model,
        version="1",
        task=CLASSIFICATION,
        classes=("no", "yes"),
        target="y",
        estimator="none (drift benchmark: the baseline and the captured lines are generated)",
        library_versions={},
        input_schema=schema,
        metrics={},
        baseline=baseline,
        artifact=ArtifactRef(key="-", sha256="0" * 64, size=0),
        created_at="2026-01-01T00:00:00+00:00",
    )


def _check_window(s3, card: ModelCard, window: Window, max_rows: int | None):
    """What run_drift_check does between resolving the card and writing the reports."""
    captured = read_capture(s3, CAPTURE_BUCKET, card, window, max_rows=max_rows)
    report = check_card(
        card,
        captured.features,
        predictions=np.asarray(captured.predictions, dtype=object) if captured.rows else None,
        probabilities=captured.probabilities,
    )
    return captured, report


def _status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Linux: reset this process's peak RSS (VmHWM) to its current RSS (proc(5), clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _measure(s3, card: ModelCard, window: Window, max_rows: int | None, repeats: int) -> dict:
    # First run: peak RSS over what the process held just before (moto's objects, the frames kept for the
    # other measurements), and the verdict. It is also the warm-up of the timed runs.
    reset = _reset_peak_rss()
    before = _status_mb("VmRSS")
    t = time.perf_counter()
    captured, report = _check_window(s3, card, window, max_rows)
    first = time.perf_counter() - t
    peak = _status_mb("VmHWM") if reset else None
    del captured
    seconds = [first]
    for _ in range(repeats - 1):
        t = time.perf_counter()
        _check_window(s3, card, window, max_rows)
        seconds.append(time.perf_counter() - t)
    median = statistics.median(seconds)
    return {
        "max_rows": max_rows,
        "seconds": {"median": median, "best": min(seconds), "all": seconds},
        "meets_target": median <= TARGET_SECONDS,
        "rss_before_mb": before,
        "peak_rss_mb": peak,
        "peak_rss_increase_mb": None if peak is None or before is None else peak - before,
        "rows_compared": report.rows,
        "verdict": report.verdict,
        "drifted_features": sorted(report.drifted_features),
    }


def _lambda_memory_mb() -> int | None:
    """The drift-check function's MemorySize in template.yaml, for scale (None if it cannot be read)."""
    try:
        text = (ROOT / "template.yaml").read_text()
    except OSError:
        return None
    found = re.search(r"\n  DriftCheckFunction:\n(?:    .*\n|\s*\n)*?      MemorySize: (\d+)", text)
    return int(found.group(1)) if found else None


def end_to_end(
    rows: int,
    repeats: int,
    *,
    max_rows: int = DEFAULT_MAX_ROWS,
    per_object: int = LINES_PER_OBJECT,
    shift: float = SHIFT,
) -> dict:
    """The scheduled check on `rows` captured lines in (moto) S3: read_capture + check_card, sampled and in full.

    The wide frame's rows become capture lines of one day, gzipped `per_object` lines an object as Firehose
    writes them; a second model's day holds the same rows with `SHIFTED_FEATURE` moved by `shift`. Timed:
    ``read_capture(max_rows=max_rows)`` (what the drift-check Lambda does by default) and
    ``read_capture(max_rows=None)`` (every line decoded), each followed by ``check_card`` as run_drift_check
    does; the verdicts of both on both days are compared.
    """
    from moto import mock_aws

    train, pred_t, proba_t = wide_frame(50_000, 0)
    schema = infer_schema(train)
    baseline = card_baseline(train, schema, pred_t, proba_t, ["no", "yes"])
    day = datetime(2026, 11, 26, tzinfo=UTC)
    window = Window(day, day + timedelta(days=1))
    with mock_aws():
        # An explicit AWS endpoint: a local stack's AWS_ENDPOINT_URL in the environment must not take the calls.
        s3 = boto3.client("s3", region_name="us-east-1", endpoint_url="https://s3.us-east-1.amazonaws.com")
        s3.create_bucket(Bucket=CAPTURE_BUCKET)
        started = time.perf_counter()
        log(f"end to end: writing {rows:,} capture lines, {per_object:,} per gzipped object")
        X, pred, proba = wide_frame(rows, 1)
        objects, raw, packed = _put_capture(s3, "wide", _capture_lines("wide", X, pred, proba, day), day, per_object)
        X[SHIFTED_FEATURE] = np.round(X[SHIFTED_FEATURE] + shift, 3)
        _put_capture(s3, "wide-shifted", _capture_lines("wide-shifted", X, pred, proba, day), day, per_object)
        del X, pred, proba
        setup = time.perf_counter() - started
        clean, shifted = _wide_card("wide", schema, baseline), _wide_card("wide-shifted", schema, baseline)
        log(f"end to end: sampled to {max_rows:,} rows, {repeats} runs")
        sampled = _measure(s3, clean, window, max_rows, repeats)
        log(f"end to end: sampled {sampled['seconds']}; every row, {repeats} runs")
        full = _measure(s3, clean, window, None, repeats)
        log(f"end to end: every row {full['seconds']}; shifted day")
        agreement = {
            "clean": {"sampled": _verdict(sampled), "full": _verdict(full)},
            "shifted": {
                "sampled": _verdict(_check_window(s3, shifted, window, max_rows)[1]),
                "full": _verdict(_check_window(s3, shifted, window, None)[1]),
            },
        }
    for a in agreement.values():
        a["same"] = a["sampled"] == a["full"]
    return {
        "rows": rows,
        "features": len(NUMERIC) + len(CATEGORICAL),
        "objects": objects,
        "lines_per_object": per_object,
        "uncompressed_mb": raw / 2**20,
        "compressed_mb": packed / 2**20,
        "setup_seconds": setup,
        "repeats": repeats,
        "default_max_rows": DEFAULT_MAX_ROWS,
        "target_seconds": TARGET_SECONDS,
        "lambda_memory_mb": _lambda_memory_mb(),
        "sampled": sampled,
        "full": full,
        "shift": f"{SHIFTED_FEATURE} +{shift:g} (baseline std {baseline['features'][SHIFTED_FEATURE]['std']:.1f})",
        "agreement": agreement,
        "verdicts_agree": all(a["same"] for a in agreement.values()),
    }


def _verdict(found) -> dict:
    """Verdict and drifted features of a DriftReport or of a _measure result."""
    if isinstance(found, dict):
        return {"verdict": found["verdict"], "drifted_features": found["drifted_features"]}
    return {"verdict": found.verdict, "drifted_features": sorted(found.drifted_features)}


# --- rates ----------------------------------------------------------------------------------------------------


class Churn:
    def __init__(self) -> None:
        X, y = sample.churn_data(5000, seed=0)
        X, y, _, _ = sample.split(X, y)
        self.schema = infer_schema(X, pii=sample.PII)
        self.model = sample.logistic_pipeline().fit(X, y)
        self.classes = [str(c) for c in self.model.classes_]
        self.baseline = card_baseline(X, self.schema, self.model.predict(X), self.model.predict_proba(X), self.classes)

    def check(self, w: pd.DataFrame, logit_shift: float = 0.0, config: DriftConfig | None = None):
        proba = self.model.predict_proba(w)
        if logit_shift:
            p = np.clip(proba[:, 1], 1e-9, 1 - 1e-9)
            p = 1 / (1 + np.exp(-(np.log(p / (1 - p)) + logit_shift)))
            proba = np.column_stack([1 - p, p])
        pred = np.asarray(self.classes)[proba.argmax(axis=1)]
        return check_drift(self.baseline, self.schema, w, predictions=pred, probabilities=proba, config=config)


def _shift_numeric(name: str):
    def change(w, rng, base):
        w[name] = w[name] + 0.25 * base["features"][name]["std"]
        return w

    return change


def _plan(w, rng, base):
    basic = np.flatnonzero(w["plan"].to_numpy() == "basic")
    w.loc[rng.choice(basic, int(0.05 * len(w)), replace=False), "plan"] = "premium"
    return w


def _unseen(w, rng, base):
    w.loc[rng.choice(len(w), int(0.02 * len(w)), replace=False), "region"] = "atlantis"
    return w


def _nulls(w, rng, base):
    w["tenure_months"] = w["tenure_months"].astype("float64")
    w.loc[rng.choice(len(w), int(0.05 * len(w)), replace=False), "tenure_months"] = np.nan
    return w


SHIFTS = {
    "age mean +0.25 std": ("age", _shift_numeric("age"), 0.0),
    "monthly_charges mean +0.25 std": ("monthly_charges", _shift_numeric("monthly_charges"), 0.0),
    "plan share: 5 points basic -> premium": ("plan", _plan, 0.0),
    "region: 2% unseen categories": ("region", _unseen, 0.0),
    "tenure_months nulls 0% -> 5%": ("tenure_months", _nulls, 0.0),
    "predictions: log-odds +0.4": (None, lambda w, rng, base: w, 0.4),
}


def rates(clean_windows: int, shift_windows: int) -> dict:
    churn = Churn()
    per_size = max(1, clean_windows // len(CLEAN_SIZES))
    low = DriftConfig(min_rows=100)
    clean: dict[str, dict] = {}
    for n in CLEAN_SIZES:
        seeds = range(n * 7, n * 7 + per_size)
        verdicts = [churn.check(sample.churn_data(n, seed=1_000_000 + s)[0], config=low) for s in seeds]
        default = [churn.check(sample.churn_data(n, seed=2_000_000 + s)[0]) for s in seeds]
        clean[str(n)] = {
            "windows": per_size,
            "drifted_min_rows_100": sum(r.verdict == DRIFT for r in verdicts),
            "drifted_default": sum(r.verdict == DRIFT for r in default),
            "insufficient_default": sum(r.verdict == "insufficient_data" for r in default),
        }
        log(f"clean {n}: {clean[str(n)]}")
    total = per_size * len(CLEAN_SIZES)
    detection: dict[str, dict] = {}
    for label, (feature, change, logit) in SHIFTS.items():
        detection[label] = {}
        for n in (1000, 5000):
            rng = np.random.default_rng(3)
            reports = [
                churn.check(change(sample.churn_data(n, seed=3_000_000 + i)[0], rng, churn.baseline), logit)
                for i in range(shift_windows)
            ]
            hit = [(feature in r.drifted_features) if feature else r.prediction_drifted for r in reports]
            state, model_hits = None, []
            for r in reports:
                state, drifted = update_state(state, r)
                model_hits.append(drifted)
            detection[label][str(n)] = {
                "windows": shift_windows,
                "window_rate": float(np.mean(hit)),
                "model_rate_2_in_a_row": float(np.mean(model_hits[1:])),
            }
        log(f"{label}: {detection[label]}")
    return {
        "clean": clean,
        "false_alarm_rate_min_rows_100": sum(c["drifted_min_rows_100"] for c in clean.values()) / total,
        "false_alarm_rate_default": sum(c["drifted_default"] for c in clean.values()) / total,
        "clean_windows": total,
        "detection": detection,
    }


# --- targets: the drift issue's figures, each with its target ---------------------------------------------------

TARGET_NUMERIC = ("age", "monthly_income", "tenure_months", "monthly_charges", "support_calls", "last_login_days")
FALSE_ALARM_SIZES = {500: 600, 5000: 300, 50000: 100}  # rows: clean windows


def _mean_shift(sd: float):
    """Window i shifts one numeric feature (rotating over TARGET_NUMERIC) by ``sd`` baseline standard deviations."""

    def change(w, rng, base, i):
        name = TARGET_NUMERIC[i % len(TARGET_NUMERIC)]
        w[name] = w[name] + sd * base["features"][name]["std"]
        return w, name

    return change


def _plan_move(w, rng, base, i):
    return _plan(w, rng, base), "plan"


def _correlation(w, rng, base, i):
    """age and tenure_months, independent in training, get a Gaussian-copula correlation of 0.3: the window's own
    tenure values are re-paired with its age values, so both marginals are exactly the window's."""
    n = len(w)
    z_age = (np.argsort(np.argsort(w["age"].to_numpy() + rng.random(n) * 1e-6)) + 0.5) / n
    z = 0.3 * norm.ppf(z_age) + np.sqrt(1 - 0.3**2) * rng.standard_normal(n)
    tenure = np.sort(w["tenure_months"].to_numpy())
    w["tenure_months"] = tenure[np.argsort(np.argsort(z))]
    return w, "(multivariate)"


def _top_decile(w, rng, base, i):
    """monthly_income: values above the training 90th percentile move twice as far above it (the rest unchanged)."""
    q90 = base["features"]["monthly_income"]["histogram"]["bin_edges"][-2]
    x = w["monthly_income"].to_numpy(dtype="float64")
    w["monthly_income"] = np.where(x > q90, q90 + 2 * (x - q90), x)
    return w, "monthly_income"


def _far_above(w, rng, base, i):
    """3 % of monthly_charges values set far above the training maximum (max + 2 standard deviations and more)."""
    b = base["features"]["monthly_charges"]
    picked = rng.choice(len(w), int(0.03 * len(w)), replace=False)
    w["monthly_charges"] = w["monthly_charges"].astype("float64")
    w.loc[picked, "monthly_charges"] = b["max"] + b["std"] * (2 + rng.random(len(picked)))
    return w, "monthly_charges"


# label: (change, rows, windows, target share of windows flagging the changed feature)
TARGETS = {
    "mean shift 0.2 sd (one numeric feature, rotating)": (_mean_shift(0.2), 500, 200, 0.60),
    "category share move of 5 points (plan basic -> premium)": (_plan_move, 500, 200, 0.25),
    "correlation 0 -> 0.3 (age, tenure_months), marginals unchanged": (_correlation, 5000, 100, 0.95),
    "top decile of monthly_income spread x2": (_top_decile, 5000, 100, 0.95),
    "3 % of monthly_charges far above the training max": (_far_above, 500, 200, 0.95),
}


def _flags(report, feature: str) -> bool:
    if feature == "(multivariate)":
        return any(m.drifted for m in getattr(report, "multivariate", ()))
    return feature in report.drifted_features


def targets(scale: float = 1.0) -> dict:
    """The issue's targets as rows: clean false alarms at 500/5,000/50,000 rows and the detection of each change.

    ``scale`` multiplies every window count (0.1 for a quick run). Windows are seeded; each row says its target
    and whether it is met. A change counts as detected when its feature (or the multivariate test) is flagged.
    """
    churn = Churn()
    rows: list[dict] = []
    for n, windows in FALSE_ALARM_SIZES.items():
        windows = max(1, int(windows * scale))
        started = time.perf_counter()
        flagged = sum(
            churn.check(sample.churn_data(n, seed=5_000_000 + n + s)[0]).verdict == DRIFT for s in range(windows)
        )
        rate = flagged / windows
        rows.append(
            {
                "measure": f"clean windows flagged (false alarms), {n:,} rows",
                "rows": n,
                "windows": windows,
                "rate": rate,
                "target": "<= 1%",
                "passed": rate <= 0.01,
                "seconds_per_window": (time.perf_counter() - started) / windows,
            }
        )
        log(f"targets: {rows[-1]}")
    for label, (change, n, windows, target) in TARGETS.items():
        windows = max(1, int(windows * scale))
        rng = np.random.default_rng(7)
        by_feature: dict[str, list[int]] = {}
        for i in range(windows):
            w, feature = change(sample.churn_data(n, seed=6_000_000 + n + i)[0], rng, churn.baseline, i)
            by_feature.setdefault(feature, []).append(int(_flags(churn.check(w), feature)))
        rate = sum(map(sum, by_feature.values())) / windows
        rows.append(
            {
                "measure": f"{label}, {n:,} rows",
                "rows": n,
                "windows": windows,
                "rate": rate,
                "target": f">= {target:.0%}",
                "passed": rate >= target,
                "by_feature": {k: sum(v) / len(v) for k, v in by_feature.items()} if len(by_feature) > 1 else None,
            }
        )
        log(f"targets: {rows[-1]}")
    return {"rows": rows, "all_passed": all(r["passed"] for r in rows)}


def targets_markdown(t: dict) -> list[str]:
    lines = [
        "## Targets of the drift issue",
        "",
        "Churn model (baseline from 4,000 training rows), default settings; seeded windows. A change is detected "
        "when its feature (or the multivariate test) is flagged in that window.",
        "",
        "| measure | windows | measured | target | verdict |",
        "|---|---:|---:|---|---|",
    ]
    for r in t["rows"]:
        verdict = "PASS" if r["passed"] else "MISS"
        lines.append(f"| {r['measure']} | {r['windows']} | {r['rate']:.1%} | {r['target']} | {verdict} |")
        if r.get("by_feature"):
            lines.append(
                "| &nbsp;&nbsp;by feature: "
                + ", ".join(f"{k} {v:.0%}" for k, v in r["by_feature"].items())
                + " | | | | |"
            )
    return [*lines, ""]


# --- report -----------------------------------------------------------------------------------------------------


def machine() -> dict:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }


def markdown(result: dict) -> str:
    s, r = result["speed"], result["rates"]
    lines: list[str] = [
        "# Drift check benchmark",
        "",
        f"Machine: {result['machine']['platform']}, {result['machine']['cpus']} CPUs, Python "
        f"{result['machine']['python']}, numpy {result['machine']['numpy']}, pandas {result['machine']['pandas']}.",
        "",
        "## Speed and memory",
        "",
        f"{s['rows']:,} rows x {s['features']} features ({s['plus']}), {s['repeats']} runs after a warm-up.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| check_drift, median | {s['check_seconds']['median']:.3f} s |",
        f"| check_drift, best | {s['check_seconds']['best']:.3f} s |",
        f"| target | {s['target_seconds']} s ({'met' if s['meets_target'] else 'MISSED'}) |",
        f"| floor (histogram + value_counts only), median | {s['floor_seconds']['median']:.3f} s |",
        f"| ratio check / floor | {s['ratio_to_floor']:.2f} |",
        f"| peak memory allocated by the check (tracemalloc) | {s['peak_alloc_mb']:.0f} MB |",
        f"| the frame itself (deep) | {s['frame_mb']:.0f} MB |",
        "",
        "This is `check_drift` alone, on a DataFrame already in memory: no S3 read, no JSON decoding. The scheduled "
        "check also has to read and decode the captured lines; see the end-to-end measurement below.",
        "",
    ]
    if result.get("targets"):
        lines += targets_markdown(result["targets"])
    if result.get("end_to_end"):
        lines += _end_to_end_markdown(result["end_to_end"])
    lines += [
        "## False alarms on clean windows",
        "",
        f"{r['clean_windows']} clean windows for each setting. Drifted windows: "
        f"{r['false_alarm_rate_min_rows_100']:.2%} with min_rows=100, {r['false_alarm_rate_default']:.2%} with the "
        "defaults (windows under 500 rows are insufficient_data there).",
        "",
        "| rows | windows | drifted (min_rows=100) | drifted (defaults) | insufficient (defaults) |",
        "|---|---|---|---|---|",
    ]
    for n, c in r["clean"].items():
        lines.append(
            f"| {int(n):,} | {c['windows']} | {c['drifted_min_rows_100']} | {c['drifted_default']} | "
            f"{c['insufficient_default']} |"
        )
    lines += [
        "",
        "## Detection of single changes",
        "",
        "Share of windows where the changed feature (or the predictions) is flagged, and share of windows from the "
        "second on where the model is declared drifted (2 drifted windows in a row).",
        "",
        "| change | 1,000 rows: window | model | 5,000 rows: window | model |",
        "|---|---|---|---|---|",
    ]
    for label, d in r["detection"].items():
        a, b = d["1000"], d["5000"]
        lines.append(
            f"| {label} | {a['window_rate']:.0%} | {a['model_rate_2_in_a_row']:.0%} | {b['window_rate']:.0%} | "
            f"{b['model_rate_2_in_a_row']:.0%} |"
        )
    return "\n".join(lines) + "\n"


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} MB"


def _verdict_text(v: dict) -> str:
    return v["verdict"] + (f" ({', '.join(v['drifted_features'])})" if v["drifted_features"] else "")


def _end_to_end_markdown(e: dict) -> list[str]:
    sampled, full, target = e["sampled"], e["full"], e["target_seconds"]
    default = sampled["max_rows"] == e["default_max_rows"]
    sample_label = f"sampled to {sampled['max_rows']:,} rows" + (" (the default)" if default else "")

    def row(label: str, m: dict) -> str:
        t = m["seconds"]
        return (
            f"| {label} | {m['rows_compared']:,} | {t['median']:.2f} s | {t['best']:.2f} s | "
            f"{'PASS' if m['meets_target'] else 'MISS'} | {_mb(m['peak_rss_mb'])} | {_mb(m['peak_rss_increase_mb'])} |"
        )

    agreement = e["agreement"]
    lambda_memory = f" The drift-check function has {e['lambda_memory_mb']:,} MB." if e.get("lambda_memory_mb") else ""
    return [
        "## End to end: captured lines in S3 to a verdict",
        "",
        f"The same {e['features']}-feature generator written as {e['rows']:,} capture lines of one day "
        "(`CaptureRecord.to_json_line`'s exact format, checked against it; one-row requests spread over the day), "
        f"gzipped {e['lines_per_object']:,} lines an object as Firehose writes them: {e['objects']} objects, "
        f"{e['uncompressed_mb']:,.0f} MB of JSON, {e['compressed_mb']:,.0f} MB gzipped, in moto S3 in this process "
        "(so no network transfer is included). Timed: `read_capture` (list, get, gunzip, select the window, decode, "
        "build the frame) + `check_card`, i.e. `run_drift_check` without resolving the card and writing the "
        f"reports; median of {e['repeats']} runs. The drift-check Lambda passes `max_rows` = "
        f"`SKLAMBDA_DRIFT_MAX_ROWS`, default {e['default_max_rows']:,}: above that, a seeded uniform sample of the "
        "window's lines is decoded and compared. Peak RSS is the process's (VmHWM, reset before the first run of "
        "each), which includes moto's copy of the objects; the increase is over the RSS just before the run (a lower "
        "bound: memory the process freed earlier can be reused without raising RSS)." + lambda_memory,
        "",
        "| read_capture + check_card | rows compared | median | best | "
        f"target <= {target} s | peak RSS | peak RSS increase |",
        "|---|---:|---:|---:|---|---:|---:|",
        row(sample_label, sampled),
        row(f"every line decoded (max_rows=None), {e['rows']:,} rows", full),
        "",
        f"Sampling against the full window, same lines (clean day, and a day with {e['shift']}):",
        "",
        "| day | sampled | every line | same verdict |",
        "|---|---|---|---|",
        *(
            f"| {day} | {_verdict_text(a['sampled'])} | {_verdict_text(a['full'])} | {'yes' if a['same'] else 'NO'} |"
            for day, a in (("clean", agreement["clean"]), (f"shifted: {e['shift']}", agreement["shifted"]))
        ),
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clean-windows", type=int, default=800)
    parser.add_argument("--shift-windows", type=int, default=50)
    parser.add_argument("--e2e-repeats", type=int, default=3, help="runs of the end-to-end check (each mode)")
    parser.add_argument("--max-rows", type=int, default=DEFAULT_MAX_ROWS, help="the end-to-end check's sample")
    parser.add_argument(
        "--target-scale", type=float, default=1.0, help="windows of the issue's targets, times this (0: skip them)"
    )
    parser.add_argument("--out", type=Path, default=BUILD)
    args = parser.parse_args(argv)
    result = {"machine": machine(), "speed": speed(args.rows, args.repeats)}
    log(f"speed: {result['speed']['check_seconds']}")
    result["end_to_end"] = end_to_end(args.rows, args.e2e_repeats, max_rows=args.max_rows)
    result["rates"] = rates(args.clean_windows, args.shift_windows)
    if args.target_scale > 0:
        result["targets"] = targets(args.target_scale)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "drift.json").write_text(json.dumps(result, indent=2, allow_nan=False))
    (args.out / "drift.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
