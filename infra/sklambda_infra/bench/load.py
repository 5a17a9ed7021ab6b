"""The local API under load: 50 clients send 5,000 predictions to the local stack on 127.0.0.1.

The project's template.yaml runs in the local stack (moto, the local API Gateway, one warm worker for the predict
function); the churn logistic pipeline (trained on 5,000 rows) is published and promoted to production. After
a warm-up (the cold start is not counted), 50 client threads in a separate process send `POST
/models/churn/predict` with two instances each: half keep one connection alive, half open a new connection per
request. An error is a failed connection (refused, reset, timed out) or an answer other than 200 with two
predictions. Latency is per request as the client sees it, including the queue at the function's single warm
worker (one Lambda container handles one request at a time); throughput is answered requests per second of wall
time. Bounded: a fixed number of requests, and no client sends after the deadline.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any
from urllib.parse import urlsplit

from sklambda_infra.bench import common

REQUESTS = 5_000
CLIENTS = 50
WARMUP = 20
DEADLINE_S = 600.0
TIMEOUT_S = 60.0
PATH = "/models/churn/predict"
AWS_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")


def _client(
    url: str, api_key: str, body: bytes, keep_alive: bool, count: int, deadline: float, out: dict[str, list]
) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    headers = {"x-api-key": api_key, "Content-Type": "application/json"}
    conn: http.client.HTTPConnection | None = None
    for _ in range(count):
        if time.monotonic() > deadline:
            out["errors"].append("not sent: deadline passed")
            continue
        if conn is None:
            conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
        started = time.perf_counter()
        try:
            conn.request("POST", PATH, body=body, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200:
                out["errors"].append(f"HTTP {response.status}: {payload[:120]!r}")
            elif len(json.loads(payload).get("predictions") or []) != 2:
                out["errors"].append(f"wrong answer: {payload[:120]!r}")
            else:
                out["latencies"].append(elapsed)
        except (OSError, http.client.HTTPException, ValueError) as e:
            out["errors"].append(type(e).__name__)
            conn.close()
            conn = None
            continue
        if not keep_alive:
            conn.close()
            conn = None
    if conn is not None:
        conn.close()


def drive(url: str, api_key: str, body: bytes, requests: int, clients: int, deadline_s: float) -> dict[str, Any]:
    """Send `requests` requests from `clients` threads (even ones keep their connection alive); run in its own
    process so that the clients do not share the stack's interpreter. Returns latencies (s), errors, wall time."""
    deadline = time.monotonic() + deadline_s
    start = threading.Barrier(clients)
    outs = [{"latencies": [], "errors": []} for _ in range(clients)]
    counts = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]

    def run(i: int) -> None:
        start.wait()
        _client(url, api_key, body, i % 2 == 0, counts[i], deadline, outs[i])

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()) + TIMEOUT_S)
    wall = time.perf_counter() - started
    keep = [x for o in outs[::2] for x in o["latencies"]]
    new = [x for o in outs[1::2] for x in o["latencies"]]
    errors = [e for o in outs for e in o["errors"]]
    return {"wall_s": wall, "keep_alive": keep, "new_connection": new, "errors": errors}


def run(requests: int = REQUESTS, clients: int = CLIENTS) -> dict[str, Any]:
    """{requests, clients, wall_s, ok, errors: {kind: count}, latency_ms: {all|keep-alive|new connection: stats}}."""
    from sklambda import aws
    from sklambda.publishing import publish
    from sklambda.registry.signing import CardSigner
    from sklambda.registry.store import Registry
    from sklambda_infra import sample
    from sklambda_infra.local import LocalStack
    from sklambda_infra.runtime import ensure_runtime_path

    ensure_runtime_path()
    X, y = sample.churn_data(5_000, seed=7)
    model = sample.logistic_pipeline().fit(X, y)
    body = json.dumps({"instances": json.loads(X.head(2).to_json(orient="records"))}).encode()
    with LocalStack(common.ROOT, stack_name="bench-load", aws_port=0, api_port=0, log=lambda line: None) as stack:
        d = stack.details
        stack_env = {
            "AWS_ENDPOINT_URL": d["aws_endpoint_url"],
            "AWS_ACCESS_KEY_ID": d["access_key_id"],
            "AWS_SECRET_ACCESS_KEY": d["secret_access_key"],
            "AWS_DEFAULT_REGION": d["region"],
        }
        try:
            with common.environ(stack_env):
                aws.reset_clients()
                publish(model, X, y, name="churn", alias="production", pii=sample.PII,
                        registry=Registry(d["model_bucket"]), signer=CardSigner(d["signing_key_id"]))  # fmt: skip
        finally:
            aws.reset_clients()
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            warm = pool.submit(drive, d["api_url"], d["api_key"], body, WARMUP, 1, DEADLINE_S).result()
            if warm["errors"]:
                raise RuntimeError(f"the warm-up failed: {warm['errors'][:3]}")
            result = pool.submit(drive, d["api_url"], d["api_key"], body, requests, clients, DEADLINE_S).result()
    everything = result["keep_alive"] + result["new_connection"]
    return {
        "requests": requests,
        "clients": clients,
        "wall_s": result["wall_s"],
        "ok": len(everything),
        "errors": dict(Counter(result["errors"])),
        "latency_ms": {
            "all": _stats(everything),
            "keep-alive": _stats(result["keep_alive"]),
            "new connection": _stats(result["new_connection"]),
        },
    }


def _stats(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {"n": 0, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    ordered = sorted(seconds)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    return {"n": len(ordered), "p50": at(0.50), "p99": at(0.99), "max": ordered[-1] * 1000}


def throughput(results: dict[str, Any]) -> float:
    return results["ok"] / results["wall_s"] if results["wall_s"] else 0.0


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# The local API under load",
        "",
        __doc__.split("\n\n", 1)[1].strip(),
        "",
        "| requests | answered | errors | wall time | throughput |",
        "|---:|---:|---:|---:|---:|",
        f"| {results['requests']} | {results['ok']} | {sum(results['errors'].values())} | {results['wall_s']:.1f} s "
        f"| {throughput(results):.0f} req/s |",
        "",
        "| clients | requests | p50 | p99 | max |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, s in results["latency_ms"].items():
        lines.append(f"| {label} | {s['n']} | {s['p50']:.1f} ms | {s['p99']:.1f} ms | {s['max']:.1f} ms |")
    if results["errors"]:
        lines += ["", "Errors: " + ", ".join(f"{kind} x{n}" for kind, n in sorted(results["errors"].items()))]
    return "\n".join(lines)


def summary_rows(results: dict[str, Any]) -> list[list[str]]:
    errors = sum(results["errors"].values())
    s = results["latency_ms"]["all"]
    return [
        [
            f"local API, {results['requests']} predictions from {results['clients']} clients: errors",
            str(errors),
            "0",
            "PASS" if errors == 0 and results["ok"] == results["requests"] else "MISS",
        ],
        [
            "local API under load: p50 / p99, throughput",
            f"{s['p50']:.1f} / {s['p99']:.1f} ms, {throughput(results):.0f} req/s",
            "reported",
            "-",
        ],
    ]
