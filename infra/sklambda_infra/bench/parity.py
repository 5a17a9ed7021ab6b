"""What the publish-time parity gate costs: publishing the demo's churn models with and without it.

Model and data as in `make demo`: 20,000 churn rows (16,000 training, 4,000 holdout), the logistic pipeline with
costs and a metric gate, and a 100-tree forest; moto S3 and KMS in process. Three arms per model, interleaved over
rounds so that machine noise hits them alike:
- `no gate`: publish with the gate replaced by a stub (the baseline measured in the same run);
- `gate, cold`: publish with the gate, its runtime process started by this publish (a CLI run, a notebook's first);
- `gate, warm`: publish with the gate, the runtime process already running (a notebook's later publishes).
The gate's cost is `gate - no gate` (median over rounds); the issue's budget is 5 s for the demo's churn model.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import boto3
from moto import mock_aws

from sklambda_infra import sample
from sklambda_infra.bench import common

BUDGET_S = 5.0


def _publish(model: Any, data: dict, registry: Any, signer: Any, name: str) -> float:
    from sklambda.publishing import publish

    started = time.perf_counter()
    publish(model, data["X"], data["y"], name=name, registry=registry, signer=signer, X_holdout=data["X_hold"],
            y_holdout=data["y_hold"], pii=sample.PII, costs=(1.0, 5.0), min_metrics={"roc_auc": 0.7})  # fmt: skip
    return time.perf_counter() - started


def run(rounds: int = 3) -> dict[str, Any]:
    """{model: {arm: [seconds per round]}, "gate_seconds": {model: [card.parity.seconds]}}."""
    from sklambda.publishing import parity, publisher
    from sklambda.registry.signing import CardSigner
    from sklambda.registry.store import Registry
    from sklambda_infra.runtime import ensure_runtime_path

    ensure_runtime_path()
    X, y = sample.churn_data(20_000, seed=7)
    X_train, y_train, X_hold, y_hold = sample.split(X, y)
    data = {"X": X_train, "y": y_train, "X_hold": X_hold, "y_hold": y_hold}
    models = {
        "logistic pipeline": sample.logistic_pipeline().fit(X_train, y_train),
        "100-tree forest": sample.forest_pipeline(n_estimators=100).fit(X_train, y_train),
    }
    real_check = publisher.check_parity
    real_server = publisher.server_for

    def no_gate(model, card, blob, rows, runtime, **kwargs):
        return parity.ParityReport(len(rows), [], 0.0, 0.0, {}, {}, 0.0)

    out: dict[str, Any] = {"rounds": rounds, "budget_s": BUDGET_S, "models": {}}
    credentials = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"}
    with common.environ(credentials, remove=("AWS_ENDPOINT_URL",)), mock_aws():
        from sklambda import aws

        aws.reset_clients()
        boto3.client("s3").create_bucket(Bucket="parity-bench")
        key = boto3.client("kms").create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"]
        registry, signer = Registry("parity-bench"), CardSigner(key["Arn"])
        for label, model in models.items():
            arms: dict[str, list[float]] = {"no gate": [], "gate, cold": [], "gate, warm": []}
            gate_seconds = []
            for r in range(rounds):
                publisher.check_parity, publisher.server_for = no_gate, lambda runtime: None
                try:
                    arms["no gate"].append(_publish(model, data, registry, signer, f"nogate-{r}"))
                finally:
                    publisher.check_parity, publisher.server_for = real_check, real_server
                parity._close_servers()
                arms["gate, cold"].append(_publish(model, data, registry, signer, f"cold-{r}"))
                arms["gate, warm"].append(_publish(model, data, registry, signer, f"warm-{r}"))
                card = registry.get_card(f"warm-{r}", "1")
                gate_seconds.append(card.parity["seconds"])
            out["models"][label] = {"arms": arms, "gate_seconds": gate_seconds, "rows": card.parity["rows"]}
    return out


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Parity gate at publish",
        "",
        __doc__.split("\n\n", 1)[1].strip(),
        "",
        "| model | no gate | gate, cold | gate, warm | added, cold | added, warm | gate alone (warm) | rows |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, m in results["models"].items():
        base, cold, warm = (_median(m["arms"][a]) for a in ("no gate", "gate, cold", "gate, warm"))
        lines.append(
            f"| {label} | {base:.2f} s | {cold:.2f} s | {warm:.2f} s | {cold - base:+.2f} s | {warm - base:+.2f} s "
            f"| {_median(m['gate_seconds']):.2f} s | {m['rows']} |"
        )
    lines += ["", f"Medians over {results['rounds']} interleaved rounds."]
    return "\n".join(lines)


def summary_rows(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    for label, m in results["models"].items():
        added = _median(m["arms"]["gate, cold"]) - _median(m["arms"]["no gate"])
        verdict = "PASS" if added <= results["budget_s"] else "MISS"
        rows.append(
            [f"parity gate added to publish ({label}, cold)", f"{added:+.2f} s", f"<= {BUDGET_S:.0f} s", verdict]
        )
    return rows
