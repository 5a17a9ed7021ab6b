"""The sklambda command against a moto registry: publish from files, promote, rollback, inspect."""

from __future__ import annotations

import json

import pytest

from sklambda_infra import sample
from sklambda_infra.cli import main


@pytest.fixture
def cli(registry_env):
    def run(*args: str) -> int:
        return main(["--bucket", registry_env.bucket, "--signing-key", registry_env.signing_key_id, *args])

    return run


def publish_args(files, *extra):
    return (
        "publish",
        *("--model", files["model"], "--data", files["train"], "--holdout", files["holdout"]),
        *("--target", "churned", "--name", "churn", "--pii", *sample.PII),
        *extra,
    )


def test_publish_from_files_then_promote_and_rollback(cli, files, registry_env, capsys):
    # GIVEN a joblib file and training/holdout CSVs
    # WHEN published twice, the first promoted to production
    assert cli(*publish_args(files, "--promote", "production")) == 0
    assert cli(*publish_args(files)) == 0
    assert cli("promote", "churn", "2") == 0
    assert cli("rollback", "churn") == 0
    out = capsys.readouterr().out
    # THEN the registry has both versions, production back on 1, and the output says so
    assert "published churn version 1" in out and "holdout metrics: accuracy=" in out
    assert "production rolled back to 1" in out
    assert registry_env.registry.list_aliases("churn") == {"production": "1"}
    card = registry_env.registry.get_card("churn", "1")
    assert card.input_schema.feature("customer_id").pii and card.metrics["split"] == "holdout"


def test_models_list_and_show(cli, files, capsys):
    cli(*publish_args(files, "--promote", "production"))
    capsys.readouterr()
    assert cli("models", "list", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"churn": {"versions": ["1"], "aliases": {"production": "1"}}}
    assert cli("models", "show", "churn") == 0
    out = capsys.readouterr().out
    assert "churn version 1 (classification)" in out and "PII" in out
    assert "signature: verified, ECDSA_SHA_256 with the trusted key " in out and "NOT VERIFIED" not in out
    assert "importance (roc_auc drop, holdout): " in out and "decision: yes when P >= 0.500 (default)" in out
    assert "explanations: yes" in out and "null scored and flagged" in out


def test_a_missing_target_column_is_a_clear_error(cli, files, capsys):
    code = cli(*publish_args(files)[:-6], "--target", "label", "--name", "churn")
    assert code == 2
    assert "target column 'label' is not in" in capsys.readouterr().err


def test_republishing_a_version_is_refused(cli, files, capsys):
    assert cli(*publish_args(files, "--version", "2024-01")) == 0
    assert cli(*publish_args(files, "--version", "2024-01")) == 2
    assert "already exists; versions are immutable" in capsys.readouterr().err


def test_unknown_model_is_reported_not_raised(cli, capsys):
    assert cli("rollback", "nothing") == 2
    assert "unknown model 'nothing'" in capsys.readouterr().err


def test_without_any_registry_configured_it_says_how_to_get_one(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    for name in ("SKLAMBDA_MODEL_BUCKET", "SKLAMBDA_SIGNING_KEY_ID", "SKLAMBDA_LOCAL_FILE"):
        monkeypatch.delenv(name, raising=False)
    assert main(["models", "list"]) == 2
    assert "make local" in capsys.readouterr().err
