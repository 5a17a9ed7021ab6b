"""`make demo`: the whole path on the local stack, start to finish, in well under a minute.

On real data, the Palmer penguins shipped inside the palmerpenguins package (sklambda_infra.penguins): starts the
local stack, trains a model of a penguin's sex from its measurements (ColumnTransformer pipeline, individual_id
marked pii), publishes and promotes it with a decision threshold chosen from costs, predicts over HTTP with the API
key and explanations, shows refused publishes (bad data, a parity failure), code shipped with a model, the model
card, client mistakes, the v2 route, a second version promoted without a redeploy and rolled back, a tampered
artifact refused, a file scored in batch with its bad rows quarantined, captured traffic checked for drift, labels
joined by the model-quality check; then, on the churn model (sklambda_infra.demo_updates), a concept drift found by
the quality check that starts the retraining pipeline (refit, publish, gate, a sticky canary, approval, promotion)
and a worse canary rolled back by the rollout check; and shuts down. The dataset has 333 birds: the traffic of the
batch and drift steps is real rows resampled.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sklambda_infra.demo_support import LABEL_WIDTH, QUALITY_ROWS, QualityDemo, http, say, table, wait_for_summary
from sklambda_infra.progress import Progress

ROOT = Path(__file__).resolve().parents[2]
# A short alias TTL so the promote step shows up within seconds (production keeps the template's 60 s); churn opted in
# to retraining on monitoring events (its safe-updates part), penguins not (its drift and quality alerts stay alerts).
DEMO_PARAMETERS = {"AliasTtlSeconds": "2", "RetrainEventModels": "churn"}
LOG_FILE = ROOT / ".sklambda" / "demo.log"
DEMO_MAX_WAIT_S = 0.5  # the local interpreter's cap on a Wait state (the stack's default is 2 s)


# The demo's shipped module: a FunctionTransformer's function lives here, not in the training script.
FEATURE_UTILS = '''"""Feature code shipped with the penguins-capped model (sklambda publish --code feature_utils.py)."""

CAP_G = 5500  # a bird heavier than this is a large Gentoo whatever its sex: more mass says nothing more


def cap_body_mass(X):
    X = X.copy()
    X["body_mass_g"] = X["body_mass_g"].clip(upper=CAP_G)
    return X
'''


def mid_weight_birds(X) -> Any:
    """Positions of the birds within 0.3 sd of their species' median body mass: there males and females overlap,
    so the model is less sure (a covariate shift: P(x) moves, P(sex | x) does not)."""
    import numpy as np

    mass = X["body_mass_g"]
    by_species = mass.groupby(X["species"])
    z = ((mass - by_species.transform("median")) / by_species.transform("std")).abs()
    return np.flatnonzero((z < 0.3).to_numpy())


def run() -> int:
    import numpy as np
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
    from sklambda_infra import modelcard, penguins
    from sklambda_infra.local import LocalStack
    from sklambda_infra.local.cli import stack_environment
    from sklambda_infra.modelview import compiled_text
    from sklambda_infra.runtime import ensure_runtime_path

    name, female = penguins.NAME, penguins.POSITIVE_CLASS
    started = time.perf_counter()
    say("Starting the local stack from template.yaml (moto + API gateway on 127.0.0.1)")
    # The function's own logs (JSON lines, EMF metrics) go to a file so the demo output stays readable.
    LOG_FILE.parent.mkdir(parents=True, exist_ok=True)
    progress = Progress("demo", sys.stdout)
    with LOG_FILE.open("w") as log, contextlib.ExitStack() as running:
        with progress.stage("starting the stack (the first run on a machine builds the layer's host copy, ~15 s)"):
            stack = running.enter_context(
                LocalStack(
                    ROOT,
                    aws_port=0,
                    api_port=0,
                    parameters=DEMO_PARAMETERS,
                    # The retraining run's Wait between rollout checks (an hour in the cloud): half a second here.
                    max_wait_s=DEMO_MAX_WAIT_S,
                    log=lambda line: print(line, file=log, flush=True),
                )
            )
        d = stack.details
        print(f"  API:          {d['api_url']}  (x-api-key: {d['api_key']})")
        print(f"  AWS endpoint: {d['aws_endpoint_url']}")
        print(f"  model bucket: {d['model_bucket']}  (SSE-KMS with the template's DataKey, versioned)")
        # As `eval "$(sklambda local env)"` does: boto3, publish and the demo's `sklambda` commands use the stack.
        os.environ.update(stack_environment(d))
        aws.reset_clients()
        registry, signer = Registry(d["model_bucket"]), CardSigner(d["signing_key_id"])
        verifier = CardVerifier(d["signing_key_id"])
        api, key = d["api_url"], d["api_key"]
        # Publish checks every model in the layer's host copy (the stack's workers run on the same one).
        with progress.stage("finding the dependency layer's host copy, where publish checks each model"):
            ensure_runtime_path(progress.note)

        say("Real data: the Palmer penguins, shipped inside the palmerpenguins package (no download)")
        X, y = penguins.load()
        X_train, y_train, X_hold, y_hold = penguins.split(X, y)
        nulls = ", ".join(f"{c} {n}" for c, n in X.isna().sum().items() if n)
        print(f"  {len(X)} adult penguins measured near Palmer Station, Antarctica, 2007-2009 (Gorman et al. 2014)")
        print(f"  target {penguins.TARGET!r} ({', '.join(f'{k} {v}' for k, v in y.value_counts().items())}); "
              f"categorical {', '.join(penguins.CATEGORICAL)}; {len(penguins.NUMERIC)} numeric; "
              f"{penguins.PII[0]} is PII")  # fmt: skip
        print(f"  nulls: {nulls} (blood not analysed); {len(X_train)} birds to train on, {len(X_hold)} held out")
        logistic = penguins.logistic_pipeline().fit(X_train, y_train)
        print(f"  {type(logistic[-1]).__name__} behind a ColumnTransformer(impute+scale numeric, one-hot categorical)")

        say("Publishing version 1 (schema, metrics, baseline, KMS signature) and promoting it to production")
        options = penguins.card_options(X_hold, y_hold)
        card = publish(logistic, X_train, y_train, name=name, registry=registry, signer=signer, alias="production",
                       **options)  # fmt: skip
        m = card.metrics
        print(f"  {name} v{card.version}: holdout AUC {m['roc_auc']:.3f}, accuracy {m['accuracy']:.3f}, "
              f"{card.artifact.size / 1024:.0f} KiB, sha256 {card.artifact.sha256[:12]}, "
              f"signed with {card.signature.algorithm}")  # fmt: skip
        print(f"  served by {compiled_text(card)}")
        top = ", ".join(f"{f['name']} {f['mean']:.3f}" for f in card.importance["features"][:3])
        print(f"  permutation importance (AUC drop on the holdout): {top}, ...")
        cost_fp, cost_fn = penguins.COSTS
        print(f"  decision threshold {card.decision['threshold']:.3f} on P({female}), chosen from costs "
              f"FP={cost_fp:g} (a male tagged in a study of females), FN={cost_fn:g} on the holdout")  # fmt: skip

        say(f"Predicting over HTTP: POST /models/{name}/predict")
        # Five held-out birds spread from the least to the most likely female, so the table shows a range.
        complete = X_hold.dropna().reset_index(drop=True)
        order = logistic.predict_proba(complete)[:, list(logistic.classes_).index(female)].argsort()
        birds = to_records(complete.iloc[order[[0, len(order) // 3, len(order) // 2, -10, -1]]])
        status, body = http("POST", f"{api}/models/{name}/predict", api_key=key, body={"instances": birds})
        assert status == 200, body
        print(table(
            [
                {"bird": b["individual_id"], "species": b["species"], "island": b["island"],
                 "body mass g": b["body_mass_g"], "culmen depth mm": b["culmen_depth_mm"], "prediction": p,
                 f"P({female})": f"{pr[female]:.2f}"}
                for b, p, pr in zip(birds, body["predictions"], body["probabilities"], strict=True)
            ],
            ["bird", "species", "island", "body mass g", "culmen depth mm", "prediction", f"P({female})"],
        ))  # fmt: skip
        print(f"  answered by {body['model_name']} version {body['model_version']}; decisions at threshold "
              f"{body['decision_threshold']['threshold']:.3f}: {body['decisions']}")  # fmt: skip

        say(f"Why? POST /models/{name}/predict?explain=true for the likeliest female")
        status, body = http("POST", f"{api}/models/{name}/predict?explain=true", api_key=key,
                            body={"instances": birds[-1:]})  # fmt: skip
        assert status == 200, body
        why = body["explanations"][0]
        ranked = sorted(why["attributions"].items(), key=lambda kv: -abs(kv[1][female]))
        for feature, value in ranked[:5]:
            print(f"  {feature:<18} {birds[-1][feature]!s:>10}  {value[female]:+.3f}")
        total = why["base_value"][female] + sum(v[female] for v in why["attributions"].values())
        print(f"  base {why['base_value'][female]:.3f} + attributions = {total:.4f} = P({female}) "
              f"{body['probabilities'][0][female]:.4f}  ({why['method']})")  # fmt: skip

        say("Unusual values are scored with data-quality warnings")
        odd = {**birds[1], "body_mass_g": 12000, "island": "Deception", "flipper_length_mm": None}
        status, body = http("POST", f"{api}/models/{name}/predict", api_key=key, body={"instances": [odd]})
        print(f"  {status}: P({female}) {body['probabilities'][0][female]:.2f}, warnings:")
        for w in body["warnings"]:
            print(f"    row {w['row']}, {w['field']}: {w['code']}: {w['message']}")

        say("A bad training set is refused with a report (constant column, holdout copied from training)")
        broken = X_train.assign(island="Biscoe")
        try:
            publish(logistic, broken, y_train, name=name, registry=registry, signer=signer,
                    X_holdout=broken.head(60), y_holdout=y_train.head(60), pii=penguins.PII)  # fmt: skip
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

        capped = make_pipeline(FunctionTransformer(feature_utils.cap_body_mass), penguins.logistic_pipeline())
        capped.fit(X_train, y_train)
        card2 = publish(capped, X_train, y_train, name=f"{name}-capped", registry=registry, signer=signer,
                        X_holdout=X_hold, y_holdout=y_hold, pii=penguins.PII, alias="production",
                        code=[shipped])  # fmt: skip
        parity = card2.parity
        print(f"  {name}-capped v{card2.version}: ships {[f['path'] for f in card2.code['files']]} "
              f"(sha256 {card2.code['files'][0]['sha256'][:12]} in the signed card)")  # fmt: skip
        print(f"  parity gate: {parity['rows']} rows through {', '.join(parity['routes'])} in the layer's packages "
              f"(fingerprint {parity['runtime']['fingerprint'][:12]}): max difference "
              f"{parity['max_abs_difference']:.1e}, {parity['seconds']:.2f} s")  # fmt: skip
        print(f"  served by {compiled_text(card2)}")
        status, body = http("POST", f"{api}/models/{name}-capped/predict", api_key=key,
                            body={"instances": birds[-1:]})  # fmt: skip
        likeliest = complete.iloc[order[[-1]]]  # birds[-1], as a frame
        expected = float(capped.predict_proba(likeliest)[0, list(capped.classes_).index(female)])
        print(f"  served P({female}) {body['probabilities'][0][female]!r} = in memory {expected!r}: {status}")

        say("The parity gate refuses a model that would be served differently than it answers in memory")
        feature_utils.CAP_G = 4000  # a notebook tweak: the shipped file still says 5500, as every fresh process reads
        tweaked = make_pipeline(FunctionTransformer(feature_utils.cap_body_mass), penguins.logistic_pipeline())
        tweaked.fit(X_train, y_train)
        try:
            publish(tweaked, X_train, y_train, name=f"{name}-capped", registry=registry, signer=signer,
                    X_holdout=X_hold, y_holdout=y_hold, pii=penguins.PII, code=[shipped])  # fmt: skip
            raise AssertionError("the tweaked model was published")
        except PublishRejected as e:
            head, _, rows = e.message.partition(": row ")
            print(f"  {head}:")
            print(f"    row {rows[:300]}...")
        print(f"  versions of {name}-capped: {registry.list_versions(f'{name}-capped')} (nothing stored)")

        say(f"The model card: sklambda models card {name} --format html")
        card_file = ROOT / ".sklambda" / "model-card.html"
        stored, check = read_card(registry, verifier, name, card.version)  # as the command does: verified
        card_file.write_text(modelcard.render(stored, "html", aliases=registry.list_aliases(name), verification=check))
        markdown = modelcard.render(stored, "markdown", verification=check).splitlines()
        start = next(i for i, line in enumerate(markdown) if "importance" in line.lower())
        for line in markdown[start : start + 8]:
            print(f"  {line}")
        print(f"  the whole card, to open in a browser: {card_file.relative_to(ROOT)}")

        say("The same call without the API key, and with a malformed row")
        status, body = http("POST", f"{api}/models/{name}/predict", api_key=None, body={"instances": birds[:1]})
        print(f"  no key      -> {status} {body}")
        bad = {**birds[0], "body_mass_g": "heavy", "species": None}
        bad.pop("island")
        status, body = http("POST", f"{api}/models/{name}/predict", api_key=key, body={"instances": [bad]})
        print(f"  bad row     -> {status} {body['error']['message'].split(':')[0]}")
        for problem in body["error"]["details"]:
            print(f"                 row {problem['row']}, {problem['field']}: {problem['message']}")

        say(f"Open Inference Protocol v2: POST /v2/models/{name}/infer (KServe/MLServer clients work unchanged)")
        inputs = [
            {"name": f.name, "shape": [2], "datatype": "BYTES" if f.type == "category" else "FP64",
             "data": [b[f.name] for b in birds[:2]]}
            for f in card.input_schema.features
        ]  # fmt: skip
        status, body = http("POST", f"{api}/v2/models/{name}/infer", api_key=key, body={"id": "demo", "inputs": inputs})
        proba = next(o for o in body["outputs"] if o["name"] == "predict_proba")
        print(f"  {status}: predict={body['outputs'][0]['data']}, predict_proba shape {proba['shape']}")

        say("Publishing a random forest as version 2 and promoting it: no redeploy")
        forest = penguins.forest_pipeline(n_estimators=100).fit(X_train, y_train)
        card2 = publish(forest, X_train, y_train, name=name, registry=registry, signer=signer, alias="production",
                        **options)  # fmt: skip
        print(f"  {name} v{card2.version}: holdout AUC {card2.metrics['roc_auc']:.3f}; production -> {card2.version}")
        print(f"  served by {compiled_text(card2)}")
        time.sleep(float(DEMO_PARAMETERS["AliasTtlSeconds"]) + 0.5)
        status, body = http("POST", f"{api}/models/{name}/predict", api_key=key, body={"instances": birds[:1]})
        print(f"  now answered by version {body['model_version']}: P({female})={body['probabilities'][0][female]:.2f}")
        registry.rollback(name, "production")
        time.sleep(float(DEMO_PARAMETERS["AliasTtlSeconds"]) + 0.5)
        status, body = http("POST", f"{api}/models/{name}/predict", api_key=key, body={"instances": birds[:1]})
        print(f"  after `sklambda rollback {name}`: answered by version {body['model_version']}")

        card3 = publish(logistic, X_train, y_train, name=name, registry=registry, signer=signer, pii=penguins.PII)
        # The artifact the predict function serves: the compiled one when publish proved it exact, else the joblib one.
        served = card3.compiled_artifact or card3.artifact
        what = "compiled artifact" if card3.compiled_artifact else "artifact"
        say(f"Tampering: version 3 is published, then the {what} the API serves is overwritten in S3")
        s3 = aws.client("s3")
        blob = s3.get_object(Bucket=d["model_bucket"], Key=served.key)["Body"].read()
        middle = len(blob) // 2
        s3.put_object(Bucket=d["model_bucket"], Key=served.key, Body=blob[:middle] + bytes([blob[middle] ^ 1]) +
                      blob[middle + 1 :])  # fmt: skip
        status, body = http("POST", f"{api}/models/{name}/predict?version=3", api_key=key,
                            body={"instances": birds[:1]})  # fmt: skip
        print(f"  {status}: {body['error']['message']}")
        assert status == 503, body
        status, body = http("POST", f"{api}/models/{name}/predict", api_key=key, body={"instances": birds[:1]})
        print(f"  production (version {body['model_version']}) is unaffected: {status}")

        say(f"Batch scoring: a CSV of 4,000 birds uploaded to incoming/{name}/ (4 rows are broken)")
        print(f"  its rows are drawn with replacement from the {len(X)} real birds (too few for a batch on their own)")
        data_bucket = d["buckets"]["DataBucket"]
        batch = penguins.resample(X, 4000, seed=11).astype(object)
        batch.loc[9, "body_mass_g"] = "heavy"  # text in an integer column
        batch.loc[19, "flipper_length_mm"] = 190.5  # a fraction in an integer column
        batch.loc[29, "culmen_length_mm"] = "NaN"
        text = batch.to_csv(index=False).splitlines()
        text[40] = text[40].replace(",", ";")  # one line with the wrong delimiter
        s3.put_object(Bucket=data_bucket, Key=f"incoming/{name}/2026-11-27/birds.csv",
                      Body=("\n".join(text) + "\n").encode())  # fmt: skip
        summary = wait_for_summary(s3, data_bucket, f"scored/{name}/2026-11-27/birds.csv.summary.json")
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

        say(f"Monitoring: predictions are captured ({penguins.PII[0]} pseudonymized), then checked for drift")
        biscoe = X[X["island"] == "Biscoe"]
        print(f"  traffic: 4,000 requests' rows resampled from the real birds, first from all {len(X)}, then from "
              f"the {len(biscoe)} of Biscoe only (a season surveying one island)")  # fmt: skip
        windows = (
            ("all islands", penguins.resample(X, 4000, seed=21)),
            ("Biscoe only", penguins.resample(biscoe, 4000, seed=22)),
        )
        window_start = datetime.now(UTC)
        for label, frame in windows:
            rows = to_records(frame)
            for i in range(0, len(rows), 1000):
                status, body = http("POST", f"{api}/models/{name}/predict", api_key=key,
                                    body={"instances": rows[i : i + 1000]})  # fmt: skip
                assert status == 200, body
            # Consecutive windows, [start, end): the next one starts where this one ends, and its traffic waits for
            # that moment, so no request is in both; reports are named by their window's end, a second apart at least.
            window = Window(window_start, datetime.now(UTC) + timedelta(seconds=1))
            window_start = window.end
            # Capture lines leave through the function's log and the subscription after each response.
            served, _ = read_card(registry, verifier, name, registry.resolve(name, alias="production"))
            deadline = time.monotonic() + 30
            while read_capture(s3, data_bucket, served, window).rows < len(rows) and time.monotonic() < deadline:
                time.sleep(0.2)
            result = run_drift_check(name, registry=registry, data_bucket=data_bucket, window=window, verifier=verifier)
            drifted = ", ".join(result.report.drifted_features) or "none"
            print(f"  {label:<12} {result.report.rows} rows: {result.report.verdict}; drifted features: {drifted}")
            time.sleep(max(0.0, (window.end - datetime.now(UTC)).total_seconds()))
            start, end = (t.strftime("%H:%M:%S") for t in (result.window.start, result.window.end))
            print(f"  {'':<12} window {start}-{end} UTC; report: s3://{data_bucket}/{result.report_keys['html']}")
        print("  Biscoe has no Chinstraps and is mostly Gentoo, the largest species: the species and island mix "
              "shift, and with them the measurements")  # fmt: skip
        say("Ground truth: labels for served predictions, and the model-quality check (is the model still right?)")
        quality = QualityDemo(api, key, name, X, s3, data_bucket, stack, registry, verifier)
        # Labels of one island's birds come from a new field team whose sex calls disagree with the old ones for
        # half of its birds: the inputs do not move, their relationship to the labels does (concept drift).
        dream = (X["island"] == "Dream").to_numpy()
        rng = np.random.default_rng(41)  # which of Dream's birds the new team calls differently
        mid_weight = mid_weight_birds(X)
        print(f"  labels are the birds' recorded sex, sent by id (the ids sent with each predict call); "
              f"min {quality.min_rows} labeled rows per window")  # fmt: skip
        w = quality.window("a normal week", penguins.resample_index(len(X), QUALITY_ROWS, seed=31))
        quality.label_window(w, y, via_file=True)
        quality.check(w)
        shifted = mid_weight[penguins.resample_index(len(mid_weight), QUALITY_ROWS, seed=32)]
        w = quality.window("mid-weight birds", shifted)
        note = f"only the {len(mid_weight)} birds within 0.3 sd of their species' median mass, where the sexes overlap"
        quality.check(w, note=f"{note}; no labels yet: the estimate (CBPE) sees confidence fall")
        for k, seed in enumerate((33, 34), start=1):
            w = quality.window(f"Dream's new team, {k} of 2", penguins.resample_index(len(X), QUALITY_ROWS, seed=seed))
            flipped = y.copy()
            swap = dream & (rng.random(len(X)) < 0.5)
            flipped[swap] = flipped[swap].map(lambda v: "male" if v == female else female)
            quality.label_window(w, flipped)
            quality.close(w)
            drift = run_drift_check(name, registry=registry, data_bucket=data_bucket, window=w.window,
                                    verifier=verifier)  # fmt: skip
            print(f"  {w.label:<{LABEL_WIDTH}} drift check, same window: {drift.report.verdict} "
                  f"(drifted features: {', '.join(drift.report.drifted_features) or 'none'})")  # fmt: skip
            quality.check(w)

        # The pages link to each window's report and to each other by relative links: download the model's folders.
        local_root = ROOT / ".sklambda" / "monitoring"
        for folder in (f"reports/drift/{name}/", f"reports/quality/{name}/"):
            shutil.rmtree(local_root / folder, ignore_errors=True)  # an earlier demo's reports: another stack's
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=data_bucket, Prefix=folder):
                for item in page.get("Contents", []):
                    target = local_root / item["Key"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(s3.get_object(Bucket=data_bucket, Key=item["Key"])["Body"].read())
        page_key = result.report_keys["page"]
        print(f"  the monitoring page (drift score per feature, prediction shares and verdict over the windows, "
              f"each window's report linked): s3://{data_bucket}/{page_key}")  # fmt: skip
        print(f"  the quality page (realized and estimated metrics with intervals against the holdout, per island): "
              f"s3://{data_bucket}/reports/quality/{name}/index.html")  # fmt: skip
        print(f"  downloaded with their reports, to open in a browser: {(local_root / page_key).relative_to(ROOT)} and "
              f"{(local_root / 'reports' / 'quality' / name / 'index.html').relative_to(ROOT)}")  # fmt: skip

        from types import SimpleNamespace

        from sklambda_infra import demo_updates
        from sklambda_infra.cli import main as cli

        demo_updates.run(SimpleNamespace(stack=stack, api=api, key=key, s3=s3, data_bucket=data_bucket,
                                         registry=registry, signer=signer, verifier=verifier, cli=cli,
                                         alias_ttl=float(DEMO_PARAMETERS["AliasTtlSeconds"])))  # fmt: skip

        say("Shutting down the local stack")
    took = time.perf_counter() - started
    print(f"  the demo took {took:.1f} s. Function logs and metrics: {LOG_FILE.relative_to(ROOT)}")
    print(f"  Next: `make local` (publishes {name} to production), then curl it (see README).")
    return 0


if __name__ == "__main__":
    sys.exit(run())
