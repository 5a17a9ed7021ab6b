"""Capture overhead benchmark: a warm prediction through the handler with prediction capture on vs off.

    python -m sklambda_infra.bench.capture [--rounds 40] [--block 25] [--rows 1]

Both arms are the predict handler, imported twice in one process against the same moto registry (in process):
one container with capture off (no pseudonymization key), one with capture on (sample rate 1, the key unwrapped
with moto KMS on the first request). Capture writes each record as a JSON line to the function's log, which a
CloudWatch Logs subscription filter delivers to Firehose outside the request: so the arm pays everything capture
costs in the function (sampling, pseudonymizing, building and serializing records, the write). Standard output is
a pipe drained by another process, as Lambda's runtime reads the function's output, for both arms (the EMF metrics and
logs go there too). Arms are interleaved ABBA per round so drift and turbo affect both. The p50 of the capture arm
over the p50 of the other is the added latency; the target is below 1.10.
Writes build/bench/capture.md and build/bench/capture.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sklambda_infra.bench import common
from sklambda_infra.bench.stats import Spread, interleaved_order, median, percentile, ratio, verdict

TARGET = 1.10


# The reader at the pipe's other end: a process of its own, as Lambda's runtime reads the function's output from
# outside the function's process. It prints how many bytes it read.
_DRAIN = "import sys\nn = 0\nwhile chunk := sys.stdin.buffer.read1(1 << 16):\n    n += len(chunk)\nprint(n)"


@contextmanager
def stdout_piped() -> Iterator[dict[str, int]]:
    """File descriptor 1 becomes a pipe that another process drains (and counts), like the Lambda runtime's log pipe.

    The reader is a process, not a thread of this one: a reading thread would wake at every write and compete with
    the handler for the GIL, which Lambda's out-of-process reader does not. `seen["bytes"]` is set when the block
    ends.
    """
    sys.stdout.flush()
    reader = subprocess.Popen([sys.executable, "-c", _DRAIN], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    saved = os.dup(1)
    os.dup2(reader.stdin.fileno(), 1)
    reader.stdin.close()  # fd 1 is now the pipe's only write end in this process
    seen = {"bytes": 0}
    try:
        yield seen
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)  # closes the pipe's last write end: the reader sees EOF and prints its count
        os.close(saved)
        out = reader.stdout.read()
        reader.stdout.close()
        reader.wait(timeout=30)
        seen["bytes"] = int(out or 0)


def _timed(call, n: int) -> list[int]:
    out = []
    for _ in range(n):
        started = time.perf_counter_ns()
        call()
        out.append(time.perf_counter_ns() - started)
    return out


def run(rounds: int, block: int, rows: int, models: common.Models) -> dict[str, Any]:
    import boto3
    from moto import mock_aws

    from sklambda import aws, config
    from sklambda.monitoring.capture import create_key_ciphertext

    results: dict[str, Any] = {"rounds": rounds, "block": block, "rows": rows, "models": {}}
    with common.environ(common.FAKE_AWS, remove=("AWS_ENDPOINT_URL", "AWS_PROFILE")), mock_aws():
        aws.reset_clients()
        key = common.make_bucket_and_key()
        common.publish_models(models, common.BUCKET, key)
        ciphertext = create_key_ciphertext(boto3.client("kms").create_key()["KeyMetadata"]["Arn"])
        # Both serving paths: capture's cost is about the same per request, the request's is not (bench/compiled.py).
        apps = []
        for path in common.PATHS:
            env = common.function_env(common.BUCKET, key, path)
            with common.environ(env, remove=(config.PSEUDONYM_KEY_CIPHERTEXT,)):
                plain = common.import_predict_app()
            capture_env = {**env, config.PSEUDONYM_KEY_CIPHERTEXT: ciphertext, config.CAPTURE_SAMPLE_RATE: "1"}
            with common.environ(capture_env):
                capturing = common.import_predict_app()
            assert not plain.capturer.enabled and capturing.capturer.enabled
            apps.append((path, plain, capturing))
        try:
            for path, plain, capturing in apps:
                for name in models.fitted:
                    measured = _bench_model(plain, capturing, name, rounds, block, rows)
                    results["models"][f"{name}, {path} path"] = measured
        finally:
            for _, plain, capturing in apps:
                plain.metrics.clear_metrics()
                capturing.metrics.clear_metrics()
            aws.reset_clients()
    return results


def _bench_model(plain, capturing, name: str, rounds: int, block: int, rows: int) -> dict[str, Any]:
    event = common.predict_event(name, [common.one_row()] * rows)
    context = common.lambda_context()
    arms = {"baseline": lambda: plain.handler(event, context), "subject": lambda: capturing.handler(event, context)}
    with stdout_piped() as seen:
        for call in arms.values():
            for _ in range(20):  # load, verify, unwrap the key, warm every cache
                answer = call()
                if answer["statusCode"] != 200:
                    raise RuntimeError(f"{name}: {answer['statusCode']} {answer.get('body')}")
        samples: dict[str, list[int]] = {"baseline": [], "subject": []}
        per_round: list[float] = []
        for order in interleaved_order(rounds):
            medians = {}
            for arm in order:
                got = _timed(arms[arm], block)
                samples[arm].extend(got)
                medians[arm] = median(got)
            per_round.append(ratio(medians["subject"], medians["baseline"]))
    p50 = {arm: median(v) / 1e6 for arm, v in samples.items()}
    common.log(f"capture: {name}: off {p50['baseline']:.3f} ms, on {p50['subject']:.3f} ms")
    return {
        "p50_ms_without_capture": round(p50["baseline"], 4),
        "p50_ms_with_capture": round(p50["subject"], 4),
        "p90_ms_without_capture": round(percentile(samples["baseline"], 90) / 1e6, 4),
        "p90_ms_with_capture": round(percentile(samples["subject"], 90) / 1e6, 4),
        "ratio_p50": round(p50["subject"] / p50["baseline"], 4),
        "ratio_per_round": str(Spread.of(per_round)),
        "log_bytes": seen["bytes"],
        "verdict": verdict(p50["subject"] / p50["baseline"], TARGET),
    }


def report(results: dict[str, Any]) -> str:
    lines = [
        "# Prediction capture overhead",
        "",
        f"Warm predict handler, {results['rows']} row(s) per request, capture on (sample rate 1) vs off; "
        f"{results['rounds']} interleaved rounds x {results['block']} calls per arm; moto in process; the "
        f"function's output is a pipe drained by another process (as Lambda's runtime reads it). Target: p50 ratio "
        f"< {TARGET:.2f}.",
        "",
        "| model, serving path | p50 off (ms) | p50 on (ms) | ratio p50 | per round | p90 off / on (ms) | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results["models"].items():
        lines.append(
            f"| {name} | {r['p50_ms_without_capture']:.3f} | {r['p50_ms_with_capture']:.3f} | "
            f"{r['ratio_p50']:.3f} | {r['ratio_per_round']} | {r['p90_ms_without_capture']:.3f} / "
            f"{r['p90_ms_with_capture']:.3f} | {r['verdict']} |"
        )
    lines += [
        "",
        "Capture writes pseudonymized JSON lines to the function's log; a CloudWatch Logs subscription filter sends",
        "them to Firehose after the response, so no network call is on the request's path. The earlier design (a",
        "synchronous PutRecordBatch per request) measured +28-46 % against moto in process alone, before any",
        "network round trip.",
        "",
        "Capture adds about the same time per request on both serving paths (building, pseudonymizing and writing",
        "the line); a compiled request costs about a tenth of a scikit-learn one, so the same cost is a larger share",
        "of it (section 16).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--block", type=int, default=25)
    parser.add_argument("--rows", type=int, default=1)
    parser.add_argument("--training-rows", type=int, default=5000)
    parser.add_argument("--trees", type=int, default=50)
    args = parser.parse_args(argv)
    models = common.fit_models(rows=args.training_rows, trees=args.trees)
    results = run(args.rounds, args.block, args.rows, models)
    common.BUILD.mkdir(parents=True, exist_ok=True)
    (common.BUILD / "capture.json").write_text(json.dumps(results, indent=2) + "\n")
    (common.BUILD / "capture.md").write_text(report(results))
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
