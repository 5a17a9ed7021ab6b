"""The rollout check on the local stack: a canary whose captured requests fail is rolled back by
`sklambda local invoke rollout-check`, with its report in the stack's data bucket.

The capture lines are written into the data bucket as the capture stream delivers them (the predict function's
canary routing and error records are not what this test is about), for a model of its own, so that no other test's
alias is touched.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest

from sklambda import aws
from sklambda.monitoring.windows import capture_prefix
from sklambda.publishing.publisher import publish
from sklambda.registry.signing import CardSigner
from sklambda.registry.store import Registry
from sklambda_infra import cli, sample
from sklambda_infra.local import cli as local_cli
from tests.support import point_at_stack

ROOT = Path(__file__).resolve().parents[2]
MODEL = "rollout-e2e"


def lines(version: str, requests: int, errors: int) -> str:
    """One-row requests through production answered by `version`, the first `errors` failed (error records)."""
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
    out = []
    for i in range(requests):
        head = {"capture": "sklambda/v1", "timestamp": stamp, "model": MODEL, "version": version,
                "request_id": f"e2e-{version}-{i}"}  # fmt: skip
        if i < errors:
            error = {"outcome": "error", "status": 500, "code": "internal", "rows": 1, "alias": "production"}
            out.append({**head, **error})
        else:
            out.append({**head, "row": 0, "features": {}, "prediction": "no", "probabilities": None, "key_id": "k",
                        "inference_id": f"e2e-{version}-{i}", "latency_ms": 20.0, "alias": "production"})  # fmt: skip
    return "".join(json.dumps(o, separators=(",", ":")) + "\n" for o in out)


@pytest.mark.e2e
def test_a_failing_canary_is_rolled_back_by_the_local_rollout_check(project_stack, churn, logistic_model, monkeypatch,
                                                                     capsys):  # fmt: skip
    stack = project_stack
    details = stack.details
    point_at_stack(stack, monkeypatch)
    registry = Registry(details["model_bucket"])
    signer = CardSigner(details["signing_key_id"])
    # GIVEN a model of this test's own in production (v1) with a 10 % canary of v2
    publish(logistic_model, churn.X, churn.y, name=MODEL, alias="production", pii=sample.PII, registry=registry,
            signer=signer)  # fmt: skip
    publish(logistic_model, churn.X, churn.y, name=MODEL, pii=sample.PII, registry=registry, signer=signer)
    registry.start_canary(MODEL, "production", "2", 10)
    # AND captured requests: v2 failed 12 of 40, v1 1 of 300
    s3 = boto3.client("s3", endpoint_url=stack.aws_endpoint_url)
    bucket = details["buckets"]["DataBucket"]
    body = lines("1", 300, 1) + lines("2", 40, 12)
    s3.put_object(Bucket=bucket, Key=capture_prefix(MODEL, datetime.now(UTC).date()) + "e2e", Body=body.encode())
    # WHEN `sklambda local invoke rollout-check --model rollout-e2e` runs
    monkeypatch.setattr(local_cli, "read_details", lambda root: details)
    capsys.readouterr()
    code = cli.main(["local", "invoke", "rollout-check", "--project-root", str(ROOT), "--model", MODEL])
    answer = json.loads(capsys.readouterr().out)
    # THEN the canary is gone from the alias (rolled back by this run, or by the stack's own 5-minute schedule if it
    # ran first: then this run finds no canary left)
    assert code == 0, answer
    assert answer["status"] in ("rolled_back", "no_canary"), answer
    record = registry.get_alias(MODEL, "production")
    assert (record.version, record.canary) == ("1", None)
    # AND a kept report says why
    kept = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"reports/rollout/{MODEL}/production/")["Contents"]
        if o["Key"].endswith(".json") and not o["Key"].endswith("latest.json")
    ]
    (key,) = kept
    report = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert report["status"] == "rolled_back" and report["rollback"]["applied"] is True
    assert report["reasons"][0]["metric"] == "error_rate"
    aws.reset_clients()
