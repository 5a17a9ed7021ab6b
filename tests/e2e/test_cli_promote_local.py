"""`sklambda promote --wait` against the running local stack: it finds the stack, its alias TTL and its API, and
returns once the API serves the alias."""

from __future__ import annotations

import json

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
