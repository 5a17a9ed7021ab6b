"""Batch scoring benchmark: the batch function (S3 → S3 through moto, in process) vs a plain pandas script.

    python -m sklambda_infra.bench.batch [--rows 1000000] [--memory-rows 1000000 5000000]

Same machine, same run, same 20-feature logistic pipeline (14 numeric, 6 categorical), same CSV:
- pandas arm: read_csv, predict_proba, to_csv with prediction and probability columns, local files;
- sklambda arm: the batch function's handler given the SQS event of incoming/bench/day.csv in a moto S3
  bucket (idempotency record in moto DynamoDB, score_object, outputs back to moto), in a warm container.
Ratios matter, not absolute times. Peak memory: each size is scored in a fresh subprocess against an S3 stub
backed by local files (so moto's in-memory objects do not count) and reports ru_maxrss; it must not grow
with the file size. Writes build/bench/batch.md and build/bench/batch.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from sklambda_infra.bench.common import BUILD, FAKE_AWS, ROOT, log

BATCH_FUNCTION = ROOT / "functions" / "batch_score"
NUMERIC = [f"x{i:02d}" for i in range(14)]
CATEGORICAL = [f"c{i}" for i in range(6)]
LEVELS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]


def frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = {name: np.round(rng.normal(50, 20, n), 3) for name in NUMERIC}
    for name in CATEGORICAL:
        data[name] = rng.choice(LEVELS, n)
    X = pd.DataFrame(data)
    logit = (X[NUMERIC[:5]].to_numpy() - 50).sum(axis=1) / 40 + np.where(X["c0"] == "alpha", 1.0, 0.0)
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return X, y


def write_csv(path: Path, rows: int) -> int:
    """The input file, written in slices so generating 5M rows does not need 5M rows in memory."""
    with path.open("wb") as f:
        for start in range(0, rows, 500_000):
            X, _ = frame(min(500_000, rows - start), seed=1000 + start)
            f.write(X.to_csv(index=False, header=start == 0).encode())
    return path.stat().st_size


def model():
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    X, y = frame(20_000, seed=0)
    prep = ColumnTransformer(
        [("num", StandardScaler(), NUMERIC), ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)]
    )
    return Pipeline([("prep", prep), ("model", LogisticRegression(max_iter=1000))]).fit(X, y), X, y


def publish_model(bucket: str) -> tuple[Any, Any]:
    """Publish the bench model into a moto registry; return (ModelServer, boto3 s3 client)."""
    import boto3

    from sklambda.publishing import publish
    from sklambda.registry.signing import CardSigner, CardVerifier
    from sklambda.registry.store import Registry
    from sklambda.serving.server import ModelServer
    from sklambda_infra.runtime import ensure_runtime_path

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    key = boto3.client("kms").create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]["Arn"]
    estimator, X, y = model()
    registry = Registry(bucket)
    ensure_runtime_path()
    publish(estimator, X, y, name="bench", alias="production", registry=registry, signer=CardSigner(key))
    return ModelServer(registry, CardVerifier(key)), s3


# -- arms ------------------------------------------------------------------------------------------------
def pandas_arm(src: Path, dst: Path) -> float:
    estimator, _, _ = model()
    started = time.perf_counter()
    X = pd.read_csv(src)
    proba = estimator.predict_proba(X)
    X["prediction"] = estimator.classes_[proba.argmax(axis=1)]
    for i, c in enumerate(estimator.classes_):
        X[f"proba_{c}"] = proba[:, i]
    X["model_version"] = "1"
    X.to_csv(dst, index=False)
    return time.perf_counter() - started


def _batch_handler():
    """A fresh import of functions/batch_score/app.py, as a new Lambda container would do."""
    import importlib.util

    for name in ("batch_shared", "bench_batch_app"):
        sys.modules.pop(name, None)
    if str(BATCH_FUNCTION) not in sys.path:
        sys.path.insert(0, str(BATCH_FUNCTION))
    spec = importlib.util.spec_from_file_location("bench_batch_app", BATCH_FUNCTION / "app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _sqs_event(bucket: str, key: str, put: dict, size: int) -> dict:
    """The sample SQS event from events/, carrying the S3 notification of the uploaded object."""
    event = json.loads((ROOT / "events" / "batch_sqs_event.json").read_text())
    notification = json.loads(event["Records"][0]["body"])
    obj = notification["Records"][0]["s3"]
    obj["bucket"].update(name=bucket, arn=f"arn:aws:s3:::{bucket}")
    obj["object"].update(key=key, size=size, eTag=put["ETag"].strip('"'), versionId=put["VersionId"])
    event["Records"][0]["body"] = json.dumps(notification)
    return event


def sklambda_arm(src: Path) -> tuple[float, dict]:
    """S3 -> S3 through the batch function's handler: SQS event, idempotency record, score_object, metrics."""
    import boto3
    from moto import mock_aws

    from sklambda import aws

    os.environ.update(FAKE_AWS)
    with mock_aws():
        aws.reset_clients()
        server, s3 = publish_model("bench-models")
        s3.create_bucket(Bucket="bench-data")
        s3.put_bucket_versioning(Bucket="bench-data", VersioningConfiguration={"Status": "Enabled"})
        boto3.client("dynamodb").create_table(
            TableName="bench-idempotency",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            BillingMode="PAY_PER_REQUEST",
        )
        os.environ.update(
            SKLAMBDA_MODEL_BUCKET="bench-models",
            SKLAMBDA_SIGNING_KEY_ID=server.verifier.key_id,
            SKLAMBDA_BATCH_DATA_BUCKET="bench-data",
            SKLAMBDA_BATCH_IDEMPOTENCY_TABLE="bench-idempotency",
            SKLAMBDA_BATCH_STATE_MACHINE_ARN="arn:aws:states:us-east-1:123456789012:stateMachine:unused",
            POWERTOOLS_SERVICE_NAME="sklambda",
            POWERTOOLS_METRICS_NAMESPACE="sklambda",
            POWERTOOLS_TRACE_DISABLED="true",
        )
        app = _batch_handler()
        context = SimpleNamespace(
            function_name="bench-batch", memory_limit_in_mb=3008, aws_request_id="bench",
            invoked_function_arn="arn:aws:lambda:us-east-1:123456789012:function:bench-batch",
            get_remaining_time_in_millis=lambda: 900_000,
        )  # fmt: skip
        app.server().get("bench", alias="production")  # a warm container: model load is not throughput
        key = "incoming/bench/day.csv"
        with src.open("rb") as f:
            put = s3.put_object(Bucket="bench-data", Key=key, Body=f)
        event = _sqs_event("bench-data", key, put, src.stat().st_size)
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):  # EMF/logs, as Lambda writes them
            started = time.perf_counter()
            response = app.handler(event, context)
            elapsed = time.perf_counter() - started
        if response.get("batchItemFailures"):
            raise RuntimeError(f"the batch handler reported a failure: {response}")
        summary = json.loads(s3.get_object(Bucket="bench-data", Key="scored/bench/day.csv.summary.json")["Body"].read())
    aws.reset_clients()
    return elapsed, summary


class FileS3:
    """Just enough of the S3 client for score_object, backed by local files (memory measurement only)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uploads: dict[str, Any] = {}

    def _path(self, key: str) -> Path:
        p = self.root / "out" / key
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def get_object(self, Bucket: str, Key: str, **_: Any) -> dict:
        return {"Body": (self.root / "in.csv").open("rb")}

    def put_object(self, Bucket: str, Key: str, Body: bytes, **_: Any) -> dict:
        self._path(Key).write_bytes(Body)
        return {}

    def delete_object(self, Bucket: str, Key: str, **_: Any) -> dict:
        self._path(Key).unlink(missing_ok=True)
        return {}

    def create_multipart_upload(self, Bucket: str, Key: str, **_: Any) -> dict:
        self.uploads[Key] = self._path(Key + ".partial").open("wb")
        return {"UploadId": Key}

    def upload_part(self, Bucket: str, Key: str, UploadId: str, PartNumber: int, Body: bytes, **_: Any) -> dict:
        self.uploads[Key].write(Body)
        return {"ETag": str(PartNumber)}

    def complete_multipart_upload(self, Bucket: str, Key: str, UploadId: str, MultipartUpload: dict, **_: Any) -> dict:
        self.uploads.pop(Key).close()
        self._path(Key + ".partial").replace(self._path(Key))
        return {}

    def abort_multipart_upload(self, Bucket: str, Key: str, UploadId: str, **_: Any) -> dict:
        self.uploads.pop(Key).close()
        return {}


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def _reset_peak() -> float | None:
    """Reset the peak RSS (Linux: clear_refs 5) so fitting and publishing the model do not count; RSS now."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_mib("VmRSS")
    except OSError:
        return None


def memory_child(root: str) -> None:
    """Run in a subprocess: score root/in.csv through FileS3 and print peak RSS (MiB) and rows."""
    from moto import mock_aws

    from sklambda import aws
    from sklambda.batch import ObjectRef, score_object
    from sklambda.config import BatchSettings

    os.environ.update(FAKE_AWS)
    with mock_aws():
        aws.reset_clients()
        server, _ = publish_model("bench-models")
        server.get("bench", alias="production")
        before = _reset_peak()
        summary = score_object(
            ObjectRef("bench-data", "incoming/bench/day.csv", None),
            server=server,
            settings=BatchSettings(),
            s3=FileS3(Path(root)),
        )
    peak = _status_mib("VmHWM") if before is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": summary.rows_scored, "peak_mib": round(peak, 1), "before_mib": round(before or 0, 1)}))


def measure_memory(rows: int, tmp: Path) -> dict:
    root = tmp / f"mem-{rows}"
    root.mkdir(exist_ok=True)
    write_csv(root / "in.csv", rows)
    out = subprocess.run(
        [sys.executable, "-m", "sklambda_infra.bench.batch", "--memory-child", str(root)],
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    (root / "in.csv").unlink()
    return result


def machine() -> dict:
    try:
        from sklambda_infra.bench.machine import describe

        return describe()
    except Exception:  # the shared bench package is optional here
        import platform
        from datetime import UTC, datetime

        return {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "cpu": platform.processor(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
        }


def report(result: dict) -> str:
    m = result["machine"]
    lines = [
        "## 4. Batch scoring (S3 → S3) vs a plain pandas script",
        "",
        f"{result['rows']:,} rows x 20 columns (14 numeric, 6 categorical), logistic pipeline, "
        f"{result['input_mib']} MiB CSV. Measured {m.get('date')} on {m.get('cpu')} ({m.get('cores')} cores).",
        "",
        "| arm | seconds | rows/s |",
        "|---|---:|---:|",
        f"| pandas: read_csv → predict_proba → to_csv (local files) | {result['pandas_seconds']:.2f} | "
        f"{result['pandas_rows_per_second']:,.0f} |",
        f"| sklambda: the batch function's handler, SQS event → S3 → S3 (moto in process) | "
        f"{result['sklambda_seconds']:.2f} | "
        f"{result['sklambda_rows_per_second']:,.0f} |",
        "",
        f"**Throughput ratio sklambda / pandas: {result['ratio']:.2f}x** (median of {result.get('repeats', 1)} "
        f"interleaved runs, each {', '.join(f'{r:.2f}x' for r in result.get('ratios', [result['ratio']]))}; "
        "target ≥ 1.0x, 2x within reach).",
        "",
        "Peak memory of score_object (fresh process, S3 stub on local files; peak RSS (VmHWM) reset after the model "
        "is loaded, so it shows the engine's own peak):",
        "",
        "| rows | peak RSS MiB | RSS MiB before scoring |",
        "|---:|---:|---:|",
        *[f"| {r['rows']:,} | {r['peak_mib']} | {r['before_mib']} |" for r in result["memory"]],
        "",
    ]
    return "\n".join(lines)


def run(rows: int, memory_rows: list[int], *, repeats: int = 3) -> dict:
    """Both arms on the same file, interleaved `repeats` times (pandas, sklambda, pandas, ...); medians."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "in.csv"
        size = write_csv(src, rows)
        log(f"input: {rows:,} rows, {size / 2**20:.0f} MiB")
        pandas_runs, sklambda_runs, ratios = [], [], []
        summary: dict = {}
        for i in range(repeats):
            pandas_runs.append(pandas_arm(src, tmp / "pandas-out.csv"))
            seconds, summary = sklambda_arm(src)
            sklambda_runs.append(seconds)
            ratios.append(pandas_runs[-1] / seconds)
            log(f"run {i + 1}/{repeats}: pandas {pandas_runs[-1]:.2f} s, sklambda {seconds:.2f} s "
                f"({summary['rows_scored']:,} rows scored)")  # fmt: skip
        memory = []
        for n in memory_rows:
            memory.append(measure_memory(n, tmp))
            log(f"memory at {n:,} rows: {memory[-1]}")
    pandas_seconds, sklambda_seconds = statistics.median(pandas_runs), statistics.median(sklambda_runs)
    return {
        "machine": machine(),
        "rows": rows,
        "columns": 20,
        "repeats": repeats,
        "input_mib": round(size / 2**20, 1),
        "pandas_seconds": round(pandas_seconds, 3),
        "sklambda_seconds": round(sklambda_seconds, 3),
        "pandas_rows_per_second": round(rows / pandas_seconds, 1),
        "sklambda_rows_per_second": round(rows / sklambda_seconds, 1),
        "ratio": round(statistics.median(ratios), 3),
        "ratios": [round(r, 3) for r in ratios],
        "memory": memory,
        "summary": summary,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--memory-rows", type=int, nargs="*", default=[1_000_000, 5_000_000])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each arm (median is reported)")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child)
        return 0
    result = run(args.rows, args.memory_rows, repeats=args.repeats)
    BUILD.mkdir(parents=True, exist_ok=True)
    (BUILD / "batch.json").write_text(json.dumps(result, indent=2))
    (BUILD / "batch.md").write_text(report(result))
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
