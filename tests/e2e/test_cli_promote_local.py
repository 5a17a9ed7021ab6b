"""`sklambda promote --wait` against the running local stack: it finds the stack, its alias TTL and its API, and
returns once the API serves the alias."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import replace

import pytest

from sklambda import aws
from sklambda.registry.store import Registry
from sklambda_infra.cli import main
from tests.support import point_at_stack


@pytest.mark.e2e
def test_promote_wait_returns_once_the_local_api_serves_the_alias(project_stack, monkeypatch, tmp_path, capsys):
    # GIVEN the running stack's details (as .sklambda/local.json holds them) and no registry configured otherwise
    details = project_stack.details
    (tmp_path / "local.json").write_text(json.dumps(details))
    monkeypatch.setenv("SKLAMBDA_LOCAL_FILE", str(tmp_path / "local.json"))
    for name in ("SKLAMBDA_MODEL_BUCKET", "SKLAMBDA_SIGNING_KEY_ID", "SKLAMBDA_API_URL", "SKLAMBDA_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    point_at_stack(project_stack, monkeypatch)
    version = Registry(details["model_bucket"]).resolve("churn", alias="production")
    try:
        # WHEN an alias no container has cached yet is promoted with --wait
        code = main(["promote", "churn", version, "--alias", "wait-check", "--wait", "--timeout", "60"])
        out, err = capsys.readouterr()
        # THEN it says the template's TTL applies, asks the stack's API with its key, and returns once it is served
        ttl = float(details["functions"]["PredictFunction"]["environment"]["SKLAMBDA_ALIAS_TTL_SECONDS"])
        assert code == 0, err
        assert f"within the alias TTL: {ttl:g} s (the running local stack's AliasTtlSeconds)" in out
        assert f"the API serves churn wait-check -> {version} (after " in out
        assert f"promote: waiting until {details['api_url']} serves wait-check -> {version}..." in err
    finally:
        aws.client("s3").delete_object(Bucket=details["model_bucket"], Key=Registry.alias_key("churn", "wait-check"))
        aws.reset_clients()


@pytest.mark.e2e
def test_a_canary_promoted_with_wait_answers_its_callers_through_the_local_api(
    project_stack, churn, logistic_model, monkeypatch, tmp_path, capsys
):
    # GIVEN versions 1 and 2 of a model of its own on the running stack, 1 at production
    from sklambda.registry.signing import CardSigner, CardVerifier
    from tests.support import RegistryEnv, as_version, build_churn, event_body, store_built

    details = project_stack.details
    (tmp_path / "local.json").write_text(json.dumps(details))
    monkeypatch.setenv("SKLAMBDA_LOCAL_FILE", str(tmp_path / "local.json"))
    for name in ("SKLAMBDA_MODEL_BUCKET", "SKLAMBDA_SIGNING_KEY_ID", "SKLAMBDA_API_URL", "SKLAMBDA_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    point_at_stack(project_stack, monkeypatch)
    bucket, key = details["model_bucket"], details["signing_key_id"]
    env = RegistryEnv(bucket, key, Registry(bucket), CardSigner(key), CardVerifier(key))
    name = "churn-canary"
    built = build_churn(churn, logistic_model)
    base = replace(built, card=replace(built.card, name=name))
    store_built(env, as_version(base, "1"), alias="production")
    store_built(env, as_version(base, "2"))
    try:
        # WHEN version 2 becomes a 50 % canary keyed by customer with --wait, and 12 customers are scored
        code = main(["promote", name, "2", "--canary", "50", "--key", "customer_id", "--wait", "--timeout", "60"])
        out, err = capsys.readouterr()
        assert code == 0, err
        row = event_body("predict.json")["instances"][0]
        rows = [{**row, "customer_id": f"C{i}"} for i in range(12)]
        request = urllib.request.Request(
            f"{details['api_url']}/models/{name}/predict",
            data=json.dumps({"instances": rows}).encode(),
            headers={"x-api-key": details["api_key"], "content-type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            body = json.loads(response.read())
        # THEN the wait ended once the API reported the canary, and both versions answered, each row named
        assert f"the API serves {name} production -> 1 + canary 2 at 50 % (after " in out
        record = env.registry.get_alias(name, "production")
        assert body["model_versions"] == [record.route(r["customer_id"]) for r in rows]
        assert set(body["model_versions"]) == {"1", "2"} and body["model_version"] is None
        # WHEN it is rolled back (not waited for: the container keeps the canary for the stack's alias TTL, 60 s)
        assert main(["rollback", name]) == 0
        # THEN the canary is gone from the alias at once
        assert "canary 2 dropped (50 %): version 1 answers every caller" in capsys.readouterr().out
        assert env.registry.get_alias(name, "production").canary is None
    finally:
        s3 = aws.client("s3")
        for obj in s3.list_objects_v2(Bucket=bucket, Prefix=f"models/{name}/").get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])
        aws.reset_clients()
