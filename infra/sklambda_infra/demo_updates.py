"""The demo's safe-updates part, on the churn model: a concept drift the inputs do not show, found by the quality
check; the PerformanceDegraded event starting RetrainStateMachine (refit, publish, gate, a canary, approval,
promotion); then a worse version put on a canary by hand and rolled back by the rollout check on its own.

Called by sklambda_infra.demo.run with the running local stack; prints as the rest of the demo does.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import numpy as np

from sklambda_infra import sample
from sklambda_infra.demo_support import QUALITY_ROWS, QualityDemo, http, say, table

NAME = "churn"
# The canary's traffic: requests of a few customers each, so most requests reach both versions.
ROWS_PER_REQUEST = 12
CANARY_REQUESTS = 350
BAD_CANARY_WEIGHT = 30
BAD_CANARY_REQUESTS = 120
# What the rollout check needs per version before it may call a canary healthy (RolloutBounds.min_requests), set
# lower than its default of 200 at promote so the demo's traffic is enough; a significant violation never waits.
DEMO_MIN_REQUESTS = 100
RUN_TIMEOUT_S = 150.0


def _wait(what: str, probe: Any, timeout: float = RUN_TIMEOUT_S, every: float = 0.25) -> Any:
    """Poll `probe()` until it returns something truthy; AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def _send(api: str, key: str, rows: list[dict], ids: list[str], *, query: str = "") -> Counter:
    """POST `rows` in requests of ROWS_PER_REQUEST with their inference ids; the rows each version answered."""
    answered: Counter = Counter()
    for i in range(0, len(rows), ROWS_PER_REQUEST):
        status, body = http("POST", f"{api}/models/{NAME}/predict{query}", api_key=key,
                            body={"instances": rows[i : i + ROWS_PER_REQUEST],
                                  "inference_ids": ids[i : i + ROWS_PER_REQUEST]})  # fmt: skip
        assert status == 200, body
        answered.update(body.get("model_versions") or [body["model_version"]] * len(body["predictions"]))
    return answered


def _label(api: str, key: str, ids: list[str], y: Any) -> int:
    """Send the true labels of `ids` through POST /models/churn/feedback (in chunks the route accepts)."""
    sent = 0
    labels = [{"id": i, "label": str(v)} for i, v in zip(ids, y, strict=True)]
    for i in range(0, len(labels), 500):
        status, body = http("POST", f"{api}/models/{NAME}/feedback", api_key=key, body={"labels": labels[i : i + 500]})
        assert status in (200, 201), body
        sent += body["accepted"]
    return sent


def run(ctx: Any) -> None:
    """The safe-updates part. `ctx` carries the demo's stack, api, key, s3, data_bucket, registry, signer, verifier,
    alias_ttl (seconds) and the `cli` entry point (sklambda_infra.cli.main)."""
    from sklambda.publishing import publish
    from sklambda.registry.schema import to_records
    from sklambda.updating.retraining import run_prefix

    stack, api, key, s3, bucket = ctx.stack, ctx.api, ctx.key, ctx.s3, ctx.data_bucket
    registry = ctx.registry
    say("Safe updates: the churn model meets a concept drift; retraining, a gate and a canary replace it")
    X, y = sample.churn_data(3000, seed=0)
    X_train, y_train, X_hold, y_hold = sample.split(X, y)
    champion = sample.logistic_pipeline().fit(X_train, y_train)
    card = publish(champion, X_train, y_train, name=NAME, registry=registry, signer=ctx.signer, alias="production",
                   X_holdout=X_hold, y_holdout=y_hold, pii=sample.PII)  # fmt: skip
    training_key = f"training-data/{NAME}/customers-2025.csv"
    s3.put_object(Bucket=bucket, Key=training_key,
                  Body=X_train.assign(**{sample.TARGET: y_train}).to_csv(index=False).encode())  # fmt: skip
    print(f"  {NAME} v{card.version} (logistic regression, {len(X_train)} simulated customers) at production: holdout "
          f"ROC AUC {card.metrics['roc_auc']:.3f}, accuracy {card.metrics['accuracy']:.3f}; its training rows are "
          f"in s3://{bucket}/{training_key}, the prefix retraining reads")  # fmt: skip

    # The new world: the same kind of customers, but a competitor's offer makes basic-plan ones leave.
    X_new, y_new = sample.churn_data(7000, seed=21, competitor_offer=sample.COMPETITOR_OFFER)
    before, after = (y == "yes").mean(), (y_new == "yes").mean()
    print(f"  then a competitor's cheap offer: basic-plan customers leave more often (churn {before:.0%} -> "
          f"{after:.0%}); the customers themselves, the model's inputs, look as before")  # fmt: skip
    quality = QualityDemo(api, key, NAME, X_new, s3, bucket, stack, registry, ctx.verifier)
    degraded: dict = {}
    for week in (1, 2):
        w = quality.window(f"competitor, week {week}", np.arange((week - 1) * QUALITY_ROWS, week * QUALITY_ROWS))
        quality.label_window(w, y_new)
        degraded = quality.check(w)
    assert degraded["model_degraded"], degraded

    say("PerformanceDegraded starts RetrainStateMachine (an EventBridge rule): assemble, refit, publish, gate, canary")
    sfn = stack.client("stepfunctions")
    machine = stack.details["state_machines"]["RetrainStateMachine"]
    executions = _wait("the retraining run the event starts",
                       lambda: sfn.list_executions(stateMachineArn=machine)["executions"], timeout=30)  # fmt: skip
    execution = executions[0]
    run_id = execution["name"]
    print(f"  run {run_id} started by the event (execution {execution['executionArn'].rsplit(':', 1)[-1]})")
    record = _wait("the candidate's canary", lambda: (r := registry.get_alias(NAME, "production")).canary and r)
    steps = {
        s: json.loads(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read())
        for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{run_prefix(NAME, run_id)}steps/").get("Contents", [])
        for s in [o["Key"].rsplit("/", 1)[-1].split("-", 1)[-1].removesuffix(".json")]
    }
    assembled, trained, gated = (steps[s]["outcome"] for s in ("assemble", "train", "gate"))
    print(f"  assemble: {assembled['training_rows']} training rows ({assembled['prefix_rows']} from the prefix, "
          f"{assembled['labeled_captured_rows_used']} labeled captures), {assembled['holdout_rows']} held out "
          f"({assembled['holdout_source']})")  # fmt: skip
    print(f"  train:    a sklearn.base.clone of v{trained['champion']}'s pipeline refit, published as "
          f"v{trained['version']} through publish's quality and parity gates, signed by the train function's role "
          f"({steps['train']['seconds']:.1f} s)")  # fmt: skip
    print(f"  gate:     {gated['decision']}: {gated['reason']}")
    canary = record.canary
    print(f"  canary:   v{canary.version} takes {canary.weight:g} % of the callers, sticky per caller (here each "
          f"customer's inference id, c-00000...); v{record.version} keeps the rest")  # fmt: skip

    rows = to_records(X_new.iloc[2 * QUALITY_ROWS :].reset_index(drop=True))
    ids = [f"c-{i:05d}" for i in range(len(rows))]
    n = CANARY_REQUESTS * ROWS_PER_REQUEST
    answered = _send(api, key, rows[:n], ids[:n])
    shares = ", ".join(f"v{v} {c} rows ({c / n:.0%})" for v, c in sorted(answered.items()))
    print(f"  {CANARY_REQUESTS} requests of {ROWS_PER_REQUEST} customers: {shares}")
    body = {"instances": rows[:ROWS_PER_REQUEST], "inference_ids": ids[:ROWS_PER_REQUEST]}
    first, again = (http("POST", f"{api}/models/{NAME}/predict", api_key=key, body=body)[1] for _ in range(2))
    assert first["model_versions"] == again["model_versions"], (first, again)
    print(f"  each answer names each row's version (model_versions); the same customers again get the same ones: "
          f"{first['model_versions']}")  # fmt: skip

    approval_key = f"{run_prefix(NAME, run_id)}approval.json"
    _wait("the approval request", lambda: s3.list_objects_v2(Bucket=bucket, Prefix=approval_key).get("KeyCount"))
    watch = json.loads(s3.get_object(Bucket=bucket, Key=next(
        o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{run_prefix(NAME, run_id)}steps/")["Contents"]
        if o["Key"].endswith("-watch.json")))["Body"].read())  # fmt: skip
    verdict = watch["input"]["answer"]["verdict"]
    figures = "; ".join(
        f"v{v['version']} {v['requests']} requests, {v['errors']} errors, p50 {v['latency_p50_ms']:.1f} ms"
        for v in (verdict["stable"], verdict["canary"])
    )
    print(f"  rollout check (RolloutCheckFunction, round {watch['outcome']['round']}): {verdict['status']}: {figures}")
    print("  (a request counts once for each version that answered some of its rows: most reached both)")
    print("  the run asks for approval (an SNS message on ApprovalTopic) and waits on its task token")
    print(f"  $ sklambda approve {NAME} {run_id}")
    assert ctx.cli(["approve", NAME, run_id]) == 0
    done = _wait("the run's end", lambda: (d := sfn.describe_execution(executionArn=execution["executionArn"]))[
        "status"] != "RUNNING" and d)  # fmt: skip
    report = json.loads(s3.get_object(Bucket=bucket, Key=f"{run_prefix(NAME, run_id)}report.json")["Body"].read())
    assert done["status"] == "SUCCEEDED" and report["status"] == "succeeded", report
    print(table([{"step": s["step"], "status": s["status"], "seconds": f"{s.get('seconds') or 0:.2f}"}
                 for s in report["steps"]], ["step", "status", "seconds"]))  # fmt: skip
    promoted = registry.get_alias(NAME, "production")
    took = (done["stopDate"] - done["startDate"]).total_seconds()
    print(f"  run {report['status']} in {took:.1f} s: production -> v{promoted.version} (events ModelPromoted, "
          f"RetrainingSucceeded); report s3://{bucket}/{run_prefix(NAME, run_id)}report.json")  # fmt: skip

    say("A worse version on a canary is rolled back by the rollout check, with the reason")
    # A careless candidate: fitted on labels shuffled against their rows, so it ranks customers no better than chance.
    rng = np.random.default_rng(3)
    fit_X, fit_y = X_new.iloc[:1200], y_new.iloc[:1200]
    careless = sample.logistic_pipeline().fit(fit_X, fit_y.iloc[rng.permutation(len(fit_y))].reset_index(drop=True))
    bad = publish(careless, fit_X, fit_y, name=NAME, registry=registry, signer=ctx.signer, pii=sample.PII)
    print(f"  v{bad.version}: a careless candidate, fitted on this year's customers with their labels shuffled; its "
          f"card says ROC AUC {bad.metrics['roc_auc']:.3f}, but publish was asked for no minimum metric")  # fmt: skip
    command = ["promote", NAME, bad.version, "--canary", str(BAD_CANARY_WEIGHT),
               "--min-requests", str(DEMO_MIN_REQUESTS), "--wait", "--alias-ttl", f"{ctx.alias_ttl:g}"]  # fmt: skip
    print(f"  $ sklambda {' '.join(command)}")
    assert ctx.cli(command) == 0
    start = n + ROWS_PER_REQUEST
    m = BAD_CANARY_REQUESTS * ROWS_PER_REQUEST
    answered = _send(api, key, rows[start : start + m], ids[start : start + m])
    sent = _label(api, key, ids[start : start + m], y_new.iloc[2 * QUALITY_ROWS + start : 2 * QUALITY_ROWS + start + m])
    print(f"  {BAD_CANARY_REQUESTS} requests: " + ", ".join(f"v{v} {c} rows" for v, c in sorted(answered.items()))
          + f"; their {sent} labels sent to /feedback")  # fmt: skip
    time.sleep(1.0)  # the labels' and captures' delivery (the local Firehose flushes every 0.2 s)
    out = stack.invoke("RolloutCheckFunction", {"model": NAME, "alias": "production"})
    assert out["status"] == "rolled_back", out
    for reason in out["verdict"]["reasons"]:
        if reason.get("violated"):
            print(f"  {reason['text']}")
    rolled = registry.get_alias(NAME, "production")
    time.sleep(ctx.alias_ttl + 0.5)  # the predict containers re-read the alias within its TTL
    _, body = http("POST", f"{api}/models/{NAME}/predict", api_key=key, body={"instances": rows[:3]})
    assert rolled.canary is None, rolled
    print(f"  rolled back: production is v{rolled.version} for everyone, the canary is gone; "
          f"CanaryRolledBack event {out['event_id']}; the next answer: v{body['model_version']}")  # fmt: skip
