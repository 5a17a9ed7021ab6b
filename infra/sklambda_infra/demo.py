"""`make demo`: the whole path on the local stack, start to finish, in well under two minutes.

Starts the local stack, trains a churn model (ColumnTransformer pipeline, customer_id marked pii),
publishes and promotes it, predicts over HTTP with the API key, shows a client mistake, promotes a
second model without a redeploy, shows a tampered artifact being refused, and shuts down.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
# A short alias TTL so the promote step shows up within seconds; production keeps the template's 60 s.
DEMO_PARAMETERS = {"AliasTtlSeconds": "2"}
LOG_FILE = ROOT / ".sklambda" / "demo.log"


def say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def http(method: str, url: str, *, api_key: str | None, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    if api_key:
        req.add_header("x-api-key", api_key)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def wait_for_summary(s3: Any, bucket: str, key: str, timeout: float = 60.0) -> dict:
    """The local stack's SQS poller runs the batch function; its summary appears when the job is done."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except s3.exceptions.NoSuchKey:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no s3://{bucket}/{key} after {timeout:.0f} s; see .sklambda/demo.log") from None
            time.sleep(0.2)


def table(rows: list[dict], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    lines = ["  " + "  ".join(c.ljust(widths[c]) for c in columns)]
    lines.append("  " + "  ".join("-" * widths[c] for c in columns))
    lines += ["  " + "  ".join(str(r[c]).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


# The demo's shipped module: a FunctionTransformer's function lives here, not in the training script.
FEATURE_UTILS = '''"""Feature code shipped with the churn-capped model (sklambda publish --code feature_utils.py)."""

CAP = 6  # support calls above this say nothing more about churn


def cap_support_calls(X):
    X = X.copy()
    X["support_calls"] = X["support_calls"].clip(upper=CAP)
    return X
'''


def run() -> int:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from sklambda import aws
    from sklambda.errors import PublishRejected
    from sklambda.monitoring.drift_check import run_drift_check
    from sklambda.monitoring.windows import Window, read_capture
    from sklambda.publishing import publish
    from sklambda.registry.schema import to_records
    from sklambda.registry.signing import CardSigner, CardVerifier, read_card
    from sklambda.registry.store import Registry
    from sklambda_infra import modelcard, sample
    from sklambda_infra.local import LocalStack
    from sklambda_infra.runtime import ensure_runtime_path

    started = time.perf_counter()
    say("Starting the local stack from template.yaml (moto + API gateway on 127.0.0.1)")
    # The function's own logs (JSON lines, EMF metrics) go to a file so the demo output stays readable.
    LOG_FILE.parent.mkdir(parents=True, exist_ok=True)
    with (
        LOG_FILE.open("w") as log,
        LocalStack(
            ROOT, aws_port=0, api_port=0, parameters=DEMO_PARAMETERS, log=lambda line: print(line, file=log, flush=True)
        ) as stack,
    ):
        d = stack.details
        print(f"  API:          {d['api_url']}  (x-api-key: {d['api_key']})")
        print(f"  AWS endpoint: {d['aws_endpoint_url']}")
        print(f"  model bucket: {d['model_bucket']}  (SSE-KMS with the template's DataKey, versioned)")
        os.environ.update(
            AWS_ENDPOINT_URL=d["aws_endpoint_url"],
            AWS_ACCESS_KEY_ID=d["access_key_id"],
            AWS_SECRET_ACCESS_KEY=d["secret_access_key"],
            AWS_DEFAULT_REGION=d["region"],
        )
        aws.reset_clients()
        registry, signer = Registry(d["model_bucket"]), CardSigner(d["signing_key_id"])
        verifier = CardVerifier(d["signing_key_id"])
        api, key = d["api_url"], d["api_key"]
        # Publish checks every model in the layer's host copy (the stack's workers run on the same one).
        ensure_runtime_path(lambda line: print(f"  {line}"))

        say("Training a churn model: 20,000 customers, 6 numeric + 4 categorical columns, customer_id is PII")
        X, y = sample.churn_data(20_000, seed=7)
        X_train, y_train, X_hold, y_hold = sample.split(X, y)
        logistic = sample.logistic_pipeline().fit(X_train, y_train)
        print(f"  {type(logistic[-1]).__name__} behind a ColumnTransformer(impute+scale numeric, one-hot categorical)")

        say("Publishing version 1 (schema, metrics, baseline, KMS signature) and promoting it to production")
        card = publish(
            logistic,
            X_train,
            y_train,
            name="churn",
            registry=registry,
            signer=signer,
            X_holdout=X_hold,
            y_holdout=y_hold,
            pii=sample.PII,
            alias="production",
            description="Probability that a customer cancels within 90 days (demo data).",
            owner="retention-analytics@example.com",
            intended_use="Rank customers for a retention call; not for pricing or credit decisions.",
            limitations=["Synthetic demo data", "Not validated on customers younger than 18"],
            costs=(1.0, 5.0),  # a missed churner costs 5 retention calls: publish picks the threshold
            min_metrics={"roc_auc": 0.7},
        )
        m = card.metrics
        print(f"  churn v{card.version}: holdout AUC {m['roc_auc']:.3f}, accuracy {m['accuracy']:.3f}, "
              f"{card.artifact.size / 1024:.0f} KiB, sha256 {card.artifact.sha256[:12]}, "
              f"signed with {card.signature.algorithm}")  # fmt: skip
        top = ", ".join(f"{f['name']} {f['mean']:.3f}" for f in card.importance["features"][:3])
        print(f"  permutation importance (AUC drop on the holdout): {top}, ...")
        print(f"  decision threshold {card.decision['threshold']:.3f}, chosen from costs FP=1, FN=5 on the holdout")

        say("Predicting over HTTP: POST /models/churn/predict")
        # Five customers spread from the least to the most likely to churn, so the table shows a range.
        risk_order = logistic.predict_proba(X_hold)[:, 1].argsort()
        customers = to_records(X_hold.iloc[risk_order[[0, len(risk_order) // 2, -60, -20, -1]]])
        status, body = http("POST", f"{api}/models/churn/predict", api_key=key, body={"instances": customers})
        assert status == 200, body
        print(table(
            [
                {"customer": c["customer_id"], "plan": c["plan"], "tenure": c["tenure_months"],
                 "support calls": c["support_calls"], "prediction": p, "P(churn)": f"{pr['yes']:.2f}"}
                for c, p, pr in zip(customers, body["predictions"], body["probabilities"], strict=True)
            ],
            ["customer", "plan", "tenure", "support calls", "prediction", "P(churn)"],
        ))  # fmt: skip
        print(f"  answered by {body['model_name']} version {body['model_version']}; decisions at threshold "
              f"{body['decision_threshold']['threshold']:.3f}: {body['decisions']}")  # fmt: skip

        say("Why? POST /models/churn/predict?explain=true for the riskiest customer")
        status, body = http("POST", f"{api}/models/churn/predict?explain=true", api_key=key,
                            body={"instances": customers[-1:]})  # fmt: skip
        assert status == 200, body
        why = body["explanations"][0]
        ranked = sorted(why["attributions"].items(), key=lambda kv: -abs(kv[1]["yes"]))
        for name, value in ranked[:5]:
            print(f"  {name:<16} {customers[-1][name]!s:>10}  {value['yes']:+.3f}")
        total = why["base_value"]["yes"] + sum(v["yes"] for v in why["attributions"].values())
        print(f"  base {why['base_value']['yes']:.3f} + attributions = {total:.4f} = P(churn) "
              f"{body['probabilities'][0]['yes']:.4f}  ({why['method']})")  # fmt: skip

        say("Unusual values are scored with data-quality warnings")
        odd = {**customers[0], "age": 140, "plan": "platinum", "tenure_months": None}
        status, body = http("POST", f"{api}/models/churn/predict", api_key=key, body={"instances": [odd]})
        print(f"  {status}: P(churn) {body['probabilities'][0]['yes']:.2f}, warnings:")
        for w in body["warnings"]:
            print(f"    row {w['row']}, {w['field']}: {w['code']}: {w['message']}")

        say("A bad training set is refused with a report (constant column, holdout copied from training)")
        broken = X_train.head(3000).assign(region="north")
        try:
            publish(logistic, broken, y_train.head(3000), name="churn", registry=registry, signer=signer,
                    X_holdout=broken.head(500), y_holdout=y_train.head(500), pii=sample.PII)  # fmt: skip
            raise AssertionError("the bad training set was published")
        except PublishRejected as e:
            for line in e.message.splitlines():
                print(f"  {line}")

        say("A model with its own code: feature_utils.py shipped with it (publish(..., code=[...]), CLI --code)")
        shipped = ROOT / ".sklambda" / "demo" / "feature_utils.py"
        shipped.parent.mkdir(parents=True, exist_ok=True)
        shipped.write_text(FEATURE_UTILS)
        sys.path.insert(0, str(shipped.parent))
        import feature_utils

        capped = make_pipeline(FunctionTransformer(feature_utils.cap_support_calls), sample.logistic_pipeline())
        capped.fit(X_train, y_train)
        card2 = publish(capped, X_train, y_train, name="churn-capped", registry=registry, signer=signer,
                        X_holdout=X_hold, y_holdout=y_hold, pii=sample.PII, alias="production",
                        code=[shipped])  # fmt: skip
        parity = card2.parity
        print(f"  churn-capped v{card2.version}: ships {[f['path'] for f in card2.code['files']]} "
              f"(sha256 {card2.code['files'][0]['sha256'][:12]} in the signed card)")  # fmt: skip
        print(f"  parity gate: {parity['rows']} rows through {', '.join(parity['routes'])} in the layer's packages "
              f"(fingerprint {parity['runtime']['fingerprint'][:12]}): max difference "
              f"{parity['max_abs_difference']:.1e}, {parity['seconds']:.2f} s")  # fmt: skip
        status, body = http("POST", f"{api}/models/churn-capped/predict", api_key=key,
                            body={"instances": customers[-1:]})  # fmt: skip
        expected = float(capped.predict_proba(X_hold.iloc[risk_order[[-1]]])[0, 1])
        print(f"  served P(churn) {body['probabilities'][0]['yes']!r} = in memory {expected!r}: {status}")

        say("The parity gate refuses a model that would be served differently than it answers in memory")
        feature_utils.CAP = 2  # a notebook tweak: the shipped file still says 6, as every fresh process reads it
        tweaked = make_pipeline(FunctionTransformer(feature_utils.cap_support_calls), sample.logistic_pipeline())
        tweaked.fit(X_train, y_train)
        try:
            publish(tweaked, X_train, y_train, name="churn-capped", registry=registry, signer=signer,
                    X_holdout=X_hold, y_holdout=y_hold, pii=sample.PII, code=[shipped])  # fmt: skip
            raise AssertionError("the tweaked model was published")
        except PublishRejected as e:
            head, _, rows = e.message.partition(": row ")
            print(f"  {head}:")
            print(f"    row {rows[:300]}...")
        print(f"  versions of churn-capped: {registry.list_versions('churn-capped')} (nothing stored)")

        say("The model card: sklambda models card churn --format html")
        card_file = ROOT / ".sklambda" / "model-card.html"
        stored, check = read_card(registry, verifier, "churn", card.version)  # as the command does: verified
        card_file.write_text(
            modelcard.render(stored, "html", aliases=registry.list_aliases("churn"), verification=check)
        )
        markdown = modelcard.render(stored, "markdown", verification=check).splitlines()
        start = next(i for i, line in enumerate(markdown) if "importance" in line.lower())
        for line in markdown[start : start + 8]:
            print(f"  {line}")
        print(f"  the whole card, to open in a browser: {card_file.relative_to(ROOT)}")

        say("The same call without the API key, and with a malformed row")
        status, body = http("POST", f"{api}/models/churn/predict", api_key=None, body={"instances": customers[:1]})
        print(f"  no key      -> {status} {body}")
        bad = {**customers[0], "age": "forty", "plan": None}
        bad.pop("region")
        status, body = http("POST", f"{api}/models/churn/predict", api_key=key, body={"instances": [bad]})
        print(f"  bad row     -> {status} {body['error']['message'].split(':')[0]}")
        for problem in body["error"]["details"]:
            print(f"                 row {problem['row']}, {problem['field']}: {problem['message']}")

        say("Open Inference Protocol v2: POST /v2/models/churn/infer (KServe/MLServer clients work unchanged)")
        inputs = [
            {"name": f.name, "shape": [2], "datatype": "BYTES" if f.type == "category" else "FP64",
             "data": [c[f.name] for c in customers[:2]]}
            for f in card.input_schema.features
        ]  # fmt: skip
        status, body = http("POST", f"{api}/v2/models/churn/infer", api_key=key, body={"id": "demo", "inputs": inputs})
        proba = next(o for o in body["outputs"] if o["name"] == "predict_proba")
        print(f"  {status}: predict={body['outputs'][0]['data']}, predict_proba shape {proba['shape']}")

        say("Publishing a random forest as version 2 and promoting it: no redeploy")
        forest = sample.forest_pipeline(n_estimators=100).fit(X_train, y_train)
        card2 = publish(forest, X_train, y_train, name="churn", registry=registry, signer=signer,
                        X_holdout=X_hold, y_holdout=y_hold, pii=sample.PII, alias="production")  # fmt: skip
        print(f"  churn v{card2.version}: holdout AUC {card2.metrics['roc_auc']:.3f}; production -> {card2.version}")
        time.sleep(float(DEMO_PARAMETERS["AliasTtlSeconds"]) + 0.5)
        status, body = http("POST", f"{api}/models/churn/predict", api_key=key, body={"instances": customers[:1]})
        print(f"  now answered by version {body['model_version']}: P(churn)={body['probabilities'][0]['yes']:.2f}")
        registry.rollback("churn", "production")
        time.sleep(float(DEMO_PARAMETERS["AliasTtlSeconds"]) + 0.5)
        status, body = http("POST", f"{api}/models/churn/predict", api_key=key, body={"instances": customers[:1]})
        print(f"  after `sklambda rollback churn`: answered by version {body['model_version']}")

        say("Tampering: version 3 is published, then its artifact is overwritten in S3")
        card3 = publish(logistic, X_train, y_train, name="churn", registry=registry, signer=signer, pii=sample.PII)
        s3 = aws.client("s3")
        blob = s3.get_object(Bucket=d["model_bucket"], Key=card3.artifact.key)["Body"].read()
        s3.put_object(Bucket=d["model_bucket"], Key=card3.artifact.key, Body=blob.replace(b"sklearn", b"evilmod", 1))
        status, body = http("POST", f"{api}/models/churn/predict?version=3", api_key=key,
                            body={"instances": customers[:1]})  # fmt: skip
        print(f"  {status}: {body['error']['message']}")
        assert status == 503, body
        status, body = http("POST", f"{api}/models/churn/predict", api_key=key, body={"instances": customers[:1]})
        print(f"  production (version {body['model_version']}) is unaffected: {status}")

        say("Batch scoring: a CSV of 4,000 customers uploaded to incoming/churn/ (4 rows are broken)")
        data_bucket = d["buckets"]["DataBucket"]
        batch = X_hold.astype(object)
        batch.loc[9, "age"] = "forty"  # text in a numeric column
        batch.loc[19, "tenure_months"] = 12.5  # a fraction in an integer column
        batch.loc[29, "monthly_charges"] = "NaN"
        text = batch.to_csv(index=False).splitlines()
        text[40] = text[40].replace(",", ";")  # one line with the wrong delimiter
        s3.put_object(Bucket=data_bucket, Key="incoming/churn/2026-11-27/customers.csv",
                      Body=("\n".join(text) + "\n").encode())  # fmt: skip
        summary = wait_for_summary(s3, data_bucket, "scored/churn/2026-11-27/customers.csv.summary.json")
        print(f"  {summary['status']}: {summary['rows_read']} rows read, {summary['rows_scored']} scored, "
              f"{summary['rows_rejected']} rejected, model {summary['model']['name']} v{summary['model']['version']}, "
              f"{summary['duration_seconds']:.2f} s")  # fmt: skip
        errors = s3.get_object(Bucket=data_bucket, Key=summary["outputs"]["errors"])["Body"].read().decode()
        for line in errors.splitlines():
            entry = json.loads(line)
            reasons = "; ".join(f"{r['field'] or 'row'}: {r['message']}" for r in entry["reasons"])
            print(f"    line {entry['line']}: {reasons}")
        scored = s3.get_object(Bucket=data_bucket, Key=summary["outputs"]["scored"])["Body"].read().decode()
        header, first = scored.splitlines()[:2]
        print(f"  s3://{data_bucket}/{summary['outputs']['scored']} starts with:")
        print(f"    {header}\n    {first}")

        say("Monitoring: predictions are captured (customer_id pseudonymized), then checked for drift")
        fresh, _ = sample.churn_data(4000, seed=21)  # new customers from the same population
        shifted = fresh.copy()
        shifted["monthly_charges"] = shifted["monthly_charges"] + 12  # a price rise
        for label, frame in (("unshifted", fresh), ("shifted (monthly_charges +12)", shifted)):
            window_start = datetime.now(UTC)
            rows = to_records(frame)
            for i in range(0, len(rows), 1000):
                status, body = http("POST", f"{api}/models/churn/predict", api_key=key,
                                    body={"instances": rows[i : i + 1000]})  # fmt: skip
                assert status == 200, body
            window = Window(window_start, datetime.now(UTC) + timedelta(seconds=1))
            # Capture lines leave through the function's log and the subscription after each response.
            card, _ = read_card(registry, verifier, "churn", registry.resolve("churn", alias="production"))
            deadline = time.monotonic() + 30
            while read_capture(s3, data_bucket, card, window).rows < len(rows) and time.monotonic() < deadline:
                time.sleep(0.2)
            result = run_drift_check(
                "churn", registry=registry, data_bucket=data_bucket, window=window, verifier=verifier
            )
            drifted = ", ".join(result.report.drifted_features) or "none"
            print(f"  {label:<30} {result.report.rows} rows: {result.report.verdict}; drifted features: {drifted}")
            print(f"  {'':<30} report: s3://{data_bucket}/{result.report_keys['html']}")
        local_report = ROOT / ".sklambda" / "drift-report.html"
        local_report.write_bytes(s3.get_object(Bucket=data_bucket, Key=result.report_keys["html"])["Body"].read())
        print(f"  the shifted window's report, to open in a browser: {local_report.relative_to(ROOT)}")

        say("Shutting down the local stack")
    print(f"  done in {time.perf_counter() - started:.1f} s. Function logs and metrics: {LOG_FILE.relative_to(ROOT)}")
    print("  Next: `make local`, then curl it (see README).")
    return 0


if __name__ == "__main__":
    sys.exit(run())
