"""Model-quality benchmark: false degradation alarms, detection of concept drift, and the 1M-row join + metrics.

    python -m sklambda_infra.bench.model_quality [--quick] [--out build/bench]

Population: a binary problem with one score x ~ N(0, 1); P(y=1 | x) = sigmoid(INTERCEPT + slope * x). The model
serves the calibrated probability of the clean slope (SLOPE), thresholded at 0.5. The card's holdout metrics
(accuracy, balanced_accuracy, precision, recall, f1, roc_auc, log_loss, brier: the names publish records for a
binary classifier with a decision) come from HOLDOUT_ROWS rows, drawn
afresh for each simulated model, since a lucky holdout would make all of that model's windows look worse.

Rates: each simulated model gets a sequence of windows run through check_degradation and update_state with the
default DegradationConfig. Clean windows (the holdout's population) at 500, 2,000 and 20,000 labeled rows give
the false-alarm rates, per window and after the 2-in-a-row rule. Concept drift flattens the slope so the
population's ROC AUC falls by 0.03, or its accuracy by 3 points (slopes found by bisection on 1,000,000 rows);
detection is the share of drifted windows found degraded, per window and after the rule (from the second
window on).

Speed: 1,000,000 captured predictions (32-hex ids, probability, time, version) and 100,000 labels of them;
timed join_labels + window_metrics (every classification metric, costs included) + check_degradation,
median of the repeats after one warm-up.

Speed from S3 (what the quality check does before the join): the same 1,000,000 predictions as capture lines
(CaptureRecord.to_json_line's exact bytes, gzipped 10,000 lines an object, spread over S3_DAYS days) and the
100,000 labels as ground-truth objects (ground_truth.store.write_labels), in moto's in-process S3; timed
read_labels + read_predictions (the labeled ids over the lookback, and the checked version's predictions served in
the window) + the join + every metric + the verdict, and CBPE's estimate on the window's served predictions apart.
moto answers from memory: a real S3 adds its transfer time (~100 MB of gzip here).

Writes build/bench/model_quality.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from sklambda.monitoring.model_quality.degradation import (
    DEGRADED,
    DegradationConfig,
    check_degradation,
    update_state,
)
from sklambda.monitoring.model_quality.join import join_labels
from sklambda.monitoring.model_quality.metrics import classification_metrics, window_metrics
from sklambda.monitoring.windows import Window, capture_prefix

BUILD = Path("build/bench")
INTERCEPT = -0.5  # ~40 % positives
SLOPE = 2.0  # population ROC AUC ~0.87, accuracy ~0.80
HOLDOUT_ROWS = 10_000
# What publish records for a binary classifier with a decision, and so what every window is compared on.
CARD_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "brier")
CLEAN_SIZES = (500, 2_000, 20_000)
DRIFT_SIZES = (2_000, 20_000)
DRIFT_DROP = 0.03  # ROC AUC, or accuracy (3 points)
CALIBRATION_ROWS = 1_000_000
BISECTION_STEPS = 20  # slope to ~2e-6
# Targets of the issue.
FALSE_ALARM_TARGET = 0.01
DETECTION_TARGET = 0.95
SPEED_TARGET_SECONDS = 5.0
SPEED_PREDICTIONS, SPEED_LABELS = 1_000_000, 100_000
DECISION = {"threshold": 0.5, "costs": {"false_positive": 1.0, "false_negative": 5.0}}
FULL = {"models": 50, "windows": 20, "repeats": 5}
QUICK = {"models": 10, "windows": 10, "repeats": 2}
# Speed from S3: the predictions spread over this many days of capture (the lookback), the labels arriving on the last.
S3_DAYS = 10
S3_LINES_PER_OBJECT = 10_000
S3_LABELS_PER_OBJECT = 10_000
S3_BUCKET, S3_MODEL, S3_VERSION = "sklambda-bench-data", "mq", "3"
S3_END = pd.Timestamp("2026-01-11", tz="UTC")


def log(message: str) -> None:
    print(f"[model_quality] {message}", file=sys.stderr, flush=True)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def draw(n: int, rng: np.random.Generator, label_slope: float = SLOPE) -> tuple[np.ndarray, np.ndarray]:
    """(y, served probability): labels from label_slope, probabilities from the model's SLOPE."""
    x = rng.normal(size=n)
    y = rng.random(n) < _sigmoid(INTERCEPT + label_slope * x)
    return y, _sigmoid(INTERCEPT + SLOPE * x)


def _population(metric: str, label_slope: float) -> float:
    y, p = draw(CALIBRATION_ROWS, np.random.default_rng(12345), label_slope)
    return classification_metrics(y, p, only=(metric,))[metric].value


def drifted_slope(metric: str, drop: float = DRIFT_DROP) -> tuple[float, float, float]:
    """(label slope, clean value, drifted value) such that the population's ``metric`` is ``drop`` lower."""
    clean = _population(metric, SLOPE)
    lo, hi = 0.2, SLOPE
    for _ in range(BISECTION_STEPS):
        mid = (lo + hi) / 2
        if clean - _population(metric, mid) > drop:
            lo = mid
        else:
            hi = mid
    return hi, clean, _population(metric, hi)


def _card(rng: np.random.Generator) -> dict:
    y, p = draw(HOLDOUT_ROWS, rng)
    values = classification_metrics(y, p, only=CARD_METRICS)
    return {"split": "holdout", "rows": HOLDOUT_ROWS, **{k: v.value for k, v in values.items()}}


def simulate(
    size: int, label_slope: float, models: int, windows: int, seed: int, config: DegradationConfig | None = None
) -> dict:
    """Window and model-alarm rates over ``models`` simulated models x ``windows`` windows of ``size`` rows."""
    config = config or DegradationConfig()
    rng = np.random.default_rng(seed)
    degraded_windows = alarms = alarm_opportunities = 0
    by_metric: dict[str, int] = {}
    for _ in range(models):
        card = _card(rng)
        state = None
        for w in range(windows):
            y, p = draw(size, rng, label_slope)
            report = check_degradation(
                classification_metrics(y, p, only=CARD_METRICS), card, labeled_rows=size, config=config
            )
            state, flagged = update_state(state, report)
            degraded_windows += report.verdict == DEGRADED
            for name in report.degraded_metrics:
                by_metric[name] = by_metric.get(name, 0) + 1
            if w >= config.consecutive_windows - 1:
                alarm_opportunities += 1
                alarms += flagged
    total = models * windows
    return {
        "rows": size,
        "windows": total,
        "window_rate": degraded_windows / total,
        "model_alarm_rate": alarms / alarm_opportunities,
        "degraded_by_metric": by_metric,
    }


def rates(models: int, windows: int) -> dict:
    """False-alarm rates on clean windows and detection rates under the two calibrated drifts."""
    clean = [simulate(n, SLOPE, models, windows, seed=n) for n in CLEAN_SIZES]
    for c in clean:
        log(f"clean {c['rows']}: window {c['window_rate']:.2%}, model {c['model_alarm_rate']:.2%}")
    drifts = {}
    for metric in ("roc_auc", "accuracy"):
        slope, before, after = drifted_slope(metric)
        runs = [simulate(n, slope, models, windows, seed=n + 1) for n in DRIFT_SIZES]
        for r in runs:
            log(f"drift {metric} {r['rows']}: window {r['window_rate']:.2%}, model {r['model_alarm_rate']:.2%}")
        drifts[metric] = {"label_slope": slope, "clean": before, "drifted": after, "runs": runs}
    worst_false = max(c["model_alarm_rate"] for c in clean)
    worst_detect = min(r["window_rate"] for d in drifts.values() for r in d["runs"])
    return {
        "models": models,
        "windows_per_model": windows,
        "holdout_rows": HOLDOUT_ROWS,
        "config": DegradationConfig().to_dict(),
        "clean": clean,
        "drift": drifts,
        "worst_false_alarm_rate": worst_false,
        "worst_detection_rate": worst_detect,
        "meets_false_alarm_target": worst_false <= FALSE_ALARM_TARGET,
        "meets_detection_target": worst_detect >= DETECTION_TARGET,
    }


def frames(n_predictions: int, n_labels: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(labels, predictions) as the capture and a label upload would give them."""
    rng = np.random.default_rng(seed)
    ids = np.char.mod("%032x", rng.permutation(n_predictions * 4)[:n_predictions]).astype(str)
    y, p = draw(n_predictions, rng)
    start = pd.Timestamp("2026-01-01", tz="UTC")
    predictions = pd.DataFrame(
        {
            "inference_id": ids,
            "prediction": (p >= 0.5).astype(np.int64),
            "probability": p,
            "time": start + pd.to_timedelta(rng.integers(0, 86_400, n_predictions), unit="s"),
            "version": "3",
        }
    )
    chosen = rng.choice(n_predictions, n_labels, replace=False)
    labels = pd.DataFrame(
        {"inference_id": ids[chosen], "label": y[chosen].astype(np.int64), "time": start + pd.Timedelta("2D")}
    )
    return labels, predictions


def speed(repeats: int) -> dict:
    """Seconds of join + every metric + the verdict on SPEED_LABELS labels of SPEED_PREDICTIONS predictions."""
    labels, predictions = frames(SPEED_PREDICTIONS, SPEED_LABELS)
    card = {"rows": HOLDOUT_ROWS, "accuracy": 0.8, "balanced_accuracy": 0.78, "roc_auc": 0.87, "log_loss": 0.44}

    def once() -> tuple[float, float, dict]:
        started = time.perf_counter()
        joined = join_labels(labels, predictions)
        joined_at = time.perf_counter()
        frame = joined.frame
        est = window_metrics(
            "classification", frame["label"].to_numpy() == 1, prob=frame["probability"].to_numpy(), decision=DECISION
        )
        check_degradation(est, card, labeled_rows=len(frame), decision=DECISION)
        return joined_at - started, time.perf_counter() - started, joined.summary()

    once()  # warm-up
    runs = [once() for _ in range(repeats)]
    totals = [r[1] for r in runs]
    return {
        "predictions": SPEED_PREDICTIONS,
        "labels": SPEED_LABELS,
        "repeats": repeats,
        "join_seconds_median": statistics.median(r[0] for r in runs),
        "total_seconds_median": statistics.median(totals),
        "total_seconds_best": min(totals),
        "join": runs[-1][2],
        "target_seconds": SPEED_TARGET_SECONDS,
        "meets_target": statistics.median(totals) <= SPEED_TARGET_SECONDS,
    }


def _capture_lines(frame: pd.DataFrame) -> list[str]:
    """One capture line per prediction, in CaptureRecord.to_json_line's exact bytes (checked on the first lines; ~2 µs
    a line instead of ~70 µs through build_records): what read_predictions selects on without decoding."""
    from sklambda.monitoring.capture import CaptureRecord

    template = (
        '{"capture":"sklambda/v1","timestamp":"%s","model":"' + S3_MODEL + '","version":"' + S3_VERSION + '",'
        '"request_id":"%s","row":0,"features":{"x":%r},"prediction":"%s","probabilities":{"no":%r,"yes":%r},'
        '"key_id":"bench","inference_id":"%s","latency_ms":1.25,"alias":"production"}'
    )
    stamps = [t.isoformat(timespec="milliseconds") for t in frame["time"]]
    p = frame["probability"].tolist()
    predicted = np.where(frame["probability"] >= 0.5, "yes", "no").tolist()
    ids = frame["inference_id"].tolist()
    x = np.round(frame["probability"].to_numpy(), 3).tolist()
    rows = zip(stamps, ids, x, predicted, [1 - v for v in p], p, ids, strict=True)
    lines = [template % row for row in rows]
    for i in range(3):
        record = CaptureRecord(stamps[i], S3_MODEL, S3_VERSION, ids[i], 0, {"x": x[i]}, predicted[i],
                               {"no": 1 - p[i], "yes": p[i]}, "bench", ids[i], 1.25, "production")  # fmt: skip
        if record.to_json_line() != lines[i] + "\n":
            raise AssertionError(f"capture line differs from CaptureRecord.to_json_line:\n{lines[i]}")
    return lines


def speed_from_s3(repeats: int) -> dict:
    """Seconds of reading SPEED_LABELS labels and the SPEED_PREDICTIONS captured predictions from (moto) S3, then the
    join, every metric and the verdict; and of CBPE's estimate on the window's served predictions."""
    import gzip

    import boto3
    from moto import mock_aws

    from sklambda.monitoring.ground_truth.store import Label, read_labels, write_labels
    from sklambda.monitoring.model_quality.estimation import card_section, estimate
    from sklambda.monitoring.windows import read_predictions

    labels, predictions = frames(SPEED_PREDICTIONS, SPEED_LABELS)
    # Spread the predictions over S3_DAYS days ending at S3_END; the labels arrive in the last day.
    rng = np.random.default_rng(1)
    offsets = rng.integers(0, S3_DAYS * 86_400_000, len(predictions))
    predictions["time"] = S3_END - pd.Timedelta(days=S3_DAYS) + pd.to_timedelta(offsets, unit="ms")
    predictions = predictions.sort_values("time", kind="stable").reset_index(drop=True)
    window = Window((S3_END - pd.Timedelta(days=1)).to_pydatetime(), S3_END.to_pydatetime())
    period = Window((S3_END - pd.Timedelta(days=S3_DAYS)).to_pydatetime(), S3_END.to_pydatetime())
    holdout_y, holdout_p = draw(HOLDOUT_ROWS, np.random.default_rng(2))
    section = card_section(np.c_[1 - holdout_p, holdout_p], holdout_y, positive_index=1, threshold=0.5)
    card = {"rows": HOLDOUT_ROWS, "accuracy": 0.8, "balanced_accuracy": 0.78, "roc_auc": 0.87, "log_loss": 0.44}
    with mock_aws():
        # An explicit AWS endpoint: a local stack's AWS_ENDPOINT_URL in the environment must not take the calls.
        s3 = boto3.client("s3", region_name="us-east-1", endpoint_url="https://s3.us-east-1.amazonaws.com")
        s3.create_bucket(Bucket=S3_BUCKET)
        started = time.perf_counter()
        lines = _capture_lines(predictions)
        days = predictions["time"].dt.floor("D").to_numpy()
        objects = packed = 0
        for day in np.unique(days):
            chosen = np.flatnonzero(days == day)
            for k in range(0, len(chosen), S3_LINES_PER_OBJECT):
                body = "\n".join(lines[i] for i in chosen[k : k + S3_LINES_PER_OBJECT]) + "\n"
                blob = gzip.compress(body.encode(), compresslevel=6, mtime=0)
                key = f"{capture_prefix(S3_MODEL, pd.Timestamp(day).date())}part-{k // S3_LINES_PER_OBJECT:04d}.gz"
                s3.put_object(Bucket=S3_BUCKET, Key=key, Body=blob)
                objects, packed = objects + 1, packed + len(blob)
        del lines
        values = np.where(labels["label"] == 1, "yes", "no")
        arrival = (S3_END - pd.Timedelta(hours=1)).to_pydatetime()
        for k in range(0, len(labels), S3_LABELS_PER_OBJECT):
            chunk = [Label(i, v) for i, v in zip(labels["inference_id"][k : k + S3_LABELS_PER_OBJECT],
                                                 values[k : k + S3_LABELS_PER_OBJECT], strict=True)]  # fmt: skip
            write_labels(s3, S3_BUCKET, S3_MODEL, chunk, arrival=arrival)
        setup = time.perf_counter() - started
        log(f"from S3: {objects} capture objects ({packed / 1e6:.0f} MB gzipped) written in {setup:.1f} s")

        def once() -> dict:
            t0 = time.perf_counter()
            read = read_labels(s3, S3_BUCKET, S3_MODEL, window.start, window.end)
            captured = read_predictions(s3, S3_BUCKET, S3_MODEL, period, labeled=set(read.frame["inference_id"]),
                                        served=(S3_VERSION, window), positive="yes")  # fmt: skip
            t1 = time.perf_counter()
            frame = captured.frame
            joined = join_labels(read.frame[["inference_id", "label", "time"]], frame[frame["inference_id"].notna()])
            rows = joined.frame
            est = window_metrics(
                "classification",
                (rows["label"] == "yes").to_numpy(),
                prob=rows["probability"].to_numpy(),
                predicted=(rows["prediction"] == "yes").to_numpy(),
                decision=DECISION,
            )
            check_degradation(est, card, labeled_rows=len(rows), decision=DECISION)
            t2 = time.perf_counter()
            served = frame[(frame["version"] == S3_VERSION) & (frame["time"] >= pd.Timestamp(window.start))]
            p = served["probability"].to_numpy()
            estimate(section, np.c_[1 - p, p])
            t3 = time.perf_counter()
            return {
                "read": t1 - t0,
                "total": t2 - t0,
                "estimate": t3 - t2,
                "selected": len(frame),
                "served": len(served),
                "join": joined.summary(),
            }

        once()  # warm-up
        runs = [once() for _ in range(repeats)]
    totals = [r["total"] for r in runs]
    return {
        "predictions": SPEED_PREDICTIONS,
        "labels": SPEED_LABELS,
        "days": S3_DAYS,
        "objects": objects,
        "gzipped_bytes": packed,
        "repeats": repeats,
        "read_seconds_median": statistics.median(r["read"] for r in runs),
        "total_seconds_median": statistics.median(totals),
        "total_seconds_best": min(totals),
        "estimate_seconds_median": statistics.median(r["estimate"] for r in runs),
        "rows_decoded": runs[-1]["selected"],
        "served_in_window": runs[-1]["served"],
        "join": runs[-1]["join"],
        "target_seconds": SPEED_TARGET_SECONDS,
        "meets_target": statistics.median(totals) <= SPEED_TARGET_SECONDS,
    }


def machine() -> dict:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }


def run(quick: bool = False) -> dict:
    """Every measure of this module (QUICK or FULL plan)."""
    plan = QUICK if quick else FULL
    result = {"machine": machine(), "quick": quick, "speed": speed(plan["repeats"])}
    log(f"speed: {result['speed']['total_seconds_median']:.2f} s")
    result["speed_from_s3"] = speed_from_s3(plan["repeats"])
    log(f"speed from S3: {result['speed_from_s3']['total_seconds_median']:.2f} s")
    result["rates"] = rates(plan["models"], plan["windows"])
    return result


def summary_rows(result: dict) -> list[list[str]]:
    """[benchmark, measured, target, verdict] rows for BENCHMARKS.md's summary."""
    s, r = result["speed"], result["rates"]
    sizes = ", ".join(f"{c['rows']:,}" for c in r["clean"])
    rows = [
        [
            f"model quality: join {s['labels']:,} labels with {s['predictions']:,} predictions + every metric (median)",
            f"{s['total_seconds_median']:.2f} s",
            f"<= {s['target_seconds']:.0f} s",
            "PASS" if s["meets_target"] else "MISS",
        ],
        [
            f"model-quality false degradation alarms, clean windows of {sizes} labels (worst, alarm rule)",
            f"{r['worst_false_alarm_rate']:.2%}",
            f"<= {FALSE_ALARM_TARGET:.0%}",
            "PASS" if r["meets_false_alarm_target"] else "MISS",
        ],
        [
            "model-quality detection of -0.03 ROC AUC / -3 accuracy points at >= 2,000 labels (worst, per window)",
            f"{r['worst_detection_rate']:.1%}",
            f">= {DETECTION_TARGET:.0%}",
            "PASS" if r["meets_detection_target"] else "MISS",
        ],
    ]
    f = result.get("speed_from_s3")
    if f:
        rows.insert(
            1,
            [
                f"model quality: read {f['labels']:,} labels and {f['predictions']:,} captured predictions from moto "
                "S3, join + every metric (median)",
                f"{f['total_seconds_median']:.2f} s",
                f"<= {f['target_seconds']:.0f} s",
                "PASS" if f["meets_target"] else "MISS",
            ],
        )
    return rows


def markdown(result: dict) -> str:
    """The benchmark's report."""
    m, s, r = result["machine"], result["speed"], result["rates"]
    lines = [
        "# Model-quality benchmark",
        "",
        f"Machine: {m['platform']}, {m['cpus']} CPUs, Python {m['python']}, numpy {m['numpy']}, pandas {m['pandas']}."
        + (" Quick run (fewer simulated windows)." if result.get("quick") else ""),
        "",
        "## Join and metrics",
        "",
        f"{s['labels']:,} labels joined with {s['predictions']:,} captured predictions, then every classification "
        f"metric with its interval and the verdict; {s['repeats']} runs after a warm-up.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| join, median | {s['join_seconds_median']:.3f} s |",
        f"| join + metrics + verdict, median | {s['total_seconds_median']:.3f} s |",
        f"| join + metrics + verdict, best | {s['total_seconds_best']:.3f} s |",
        f"| target | {s['target_seconds']} s ({'met' if s['meets_target'] else 'MISSED'}) |",
        f"| join rate | {s['join']['join_rate']:.2%} |",
        "",
        *_s3_lines(result.get("speed_from_s3")),
        "## False alarms and detection",
        "",
        f"{r['models']} simulated models x {r['windows_per_model']} windows each; a fresh {r['holdout_rows']:,}-row "
        "holdout per model; default DegradationConfig (alpha "
        f"{r['config']['alpha']}, {r['config']['correction']}, {r['config']['consecutive_windows']} windows in a row).",
        "",
        "| windows | labeled rows | degraded windows | model alarms (rule) | metrics flagged |",
        "|---|---:|---:|---:|---|",
    ]
    for c in r["clean"]:
        flagged = ", ".join(f"{k} {v}" for k, v in sorted(c["degraded_by_metric"].items())) or "-"
        lines.append(f"| clean | {c['rows']:,} | {c['window_rate']:.2%} | {c['model_alarm_rate']:.2%} | {flagged} |")
    for metric, d in r["drift"].items():
        for run_ in d["runs"]:
            flagged = ", ".join(f"{k} {v}" for k, v in sorted(run_["degraded_by_metric"].items())) or "-"
            lines.append(
                f"| {metric} {d['clean']:.3f} -> {d['drifted']:.3f} | {run_['rows']:,} | {run_['window_rate']:.1%} | "
                f"{run_['model_alarm_rate']:.1%} | {flagged} |"
            )
    lines += ["", "| benchmark | measured | target | verdict |", "|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in summary_rows(result)]
    return "\n".join(lines) + "\n"


def _s3_lines(f: dict | None) -> list[str]:
    if not f:
        return []
    return [
        "## Read from S3, join and metrics",
        "",
        f"{f['labels']:,} labels (ground-truth objects) and {f['predictions']:,} captured predictions over {f['days']} "
        f"days ({f['objects']} gzipped capture objects, {f['gzipped_bytes'] / 1e6:.0f} MB) in moto's in-process S3; "
        f"{f['repeats']} runs after a warm-up. {f['rows_decoded']:,} capture lines decoded (the labeled ones and the "
        f"{f['served_in_window']:,} served in the window); the rest are selected on their bytes.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| read labels + predictions, median | {f['read_seconds_median']:.3f} s |",
        f"| read + join + metrics + verdict, median | {f['total_seconds_median']:.3f} s |",
        f"| read + join + metrics + verdict, best | {f['total_seconds_best']:.3f} s |",
        f"| CBPE estimate on the window's served predictions, median | {f['estimate_seconds_median']:.3f} s |",
        f"| target (the join's) | {f['target_seconds']} s ({'met' if f['meets_target'] else 'MISSED'}) |",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer simulated windows and repeats (a smoke run)")
    parser.add_argument("--out", type=Path, default=BUILD)
    args = parser.parse_args(argv)
    result = run(quick=args.quick)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "model_quality.json").write_text(json.dumps(result, indent=2, allow_nan=False))
    (args.out / "model_quality.md").write_text(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
