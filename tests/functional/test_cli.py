"""The sklambda command against a moto registry: publish from files, promote, rollback, inspect."""

from __future__ import annotations

import json

import pytest

from sklambda_infra import sample
from sklambda_infra.cli import main
from tests.support import cli_arguments


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
    assert cli(*publish_args(files, "--no-compile")) == 0
    assert cli("promote", "churn", "2") == 0
    assert cli("rollback", "churn") == 0
    out = capsys.readouterr().out
    # THEN the registry has both versions, production back on 1, and the output says so
    assert "published churn version 1" in out and "holdout metrics: accuracy=" in out
    # AND what serves each: version 1 the compiled evaluator, version 2 (--no-compile) scikit-learn
    assert "  served by the compiled evaluator (" in out and "0 class flips" in out
    assert "  served by scikit-learn (published without trying the compiled evaluator)" in out
    assert registry_env.registry.get_card("churn", "2").compiled is None
    assert "production rolled back to 1" in out
    assert registry_env.registry.list_aliases("churn") == {"production": "1"}
    card = registry_env.registry.get_card("churn", "1")
    assert card.input_schema.feature("customer_id").pii and card.metrics["split"] == "holdout"


def test_models_list_is_a_table_and_its_json_the_same_facts(cli, published, registry_env, capsys):
    # GIVEN churn version 1 on production and staging
    registry_env.registry.set_alias("churn", "staging", "1")
    # WHEN the models are listed as text and as JSON
    assert cli("models", "list") == 0
    table = capsys.readouterr().out.splitlines()
    assert cli("models", "list", "--json") == 0
    listed = json.loads(capsys.readouterr().out)
    # THEN the text is a header and one row per model; the JSON holds the versions and aliases
    assert [line.split() for line in table] == [
        ["MODEL", "VERSIONS", "LATEST", "ALIASES"],
        ["churn", "1", "1", "production", "->", "1,", "staging", "->", "1"],
    ]
    assert listed == {"churn": {"versions": ["1"], "aliases": {"production": "1", "staging": "1"}}}


def test_models_show_prints_sections_and_the_schema_as_a_table(cli, published, capsys):
    # GIVEN churn version 1 published and promoted to production
    # WHEN it is shown
    assert cli("models", "show", "churn") == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    # THEN identity, signature and aliases are aligned fields, never a Python dict
    assert lines[0] == "churn version 1 (classification)"
    assert "  signature:    verified, ECDSA_SHA_256 with the trusted key arn:aws:kms:" in out
    assert "  aliases:      production -> 1" in lines and "  decision:     yes when P >= 0.500 (default)" in lines
    assert "  explanations: yes" in lines and "{" not in out
    assert any(line.startswith("  served by:    the compiled evaluator (") for line in lines)
    # AND the metrics and the schema are tables: a header, then one row per metric / feature
    assert lines[lines.index("metrics (holdout, 400 rows; trained on 1,600 rows)") + 1].split() == ["METRIC", "VALUE"]
    start = next(i for i, line in enumerate(lines) if line.startswith("input schema (11 features)"))
    assert lines[start + 1].split() == ["FEATURE", "TYPE", "NULL", "REQUIRED", "RANGE", "/", "CATEGORIES", "PII"]
    rows = {line.split()[0]: line.split() for line in lines[start + 2 : start + 13]}
    # customer_id is pii, and optional: the pipeline's ColumnTransformer drops it
    pii_row = ["customer_id", "category", "warn", "no", "(pii:", "values", "not", "recorded)", "yes"]
    assert rows["customer_id"] == pii_row
    assert rows["plan"] == ["plan", "category", "warn", "yes", "basic,", "plus,", "premium"]
    assert rows["age"][:4] == ["age", "integer", "warn", "yes"] and rows["age"][5] == ".."
    assert "NULL warn: a null is scored with a data-quality warning" in out
    assert "importance (roc_auc drop when shuffled, holdout split, top 5)" in out


def test_publish_with_segment_and_sensitive_flags_and_models_show_prints_the_table(cli, files, registry_env, capsys):
    # GIVEN churn published with --segment region and --sensitive has_partner and a tighter parity bound
    bound = ("--fairness-bound", "demographic_parity_difference=0.05")
    assert cli(*publish_args(files, "--segment", "region", "--sensitive", "has_partner", *bound)) == 0
    card = registry_env.registry.get_card("churn", "1")
    # THEN the signed card has both features, the bound given
    assert [f["name"] for f in card.segments["features"]] == ["region", "has_partner"]
    assert card.segments["bounds"]["demographic_parity_difference"] == 0.05
    capsys.readouterr()
    # AND models show prints a table per feature with its gaps
    assert cli("models", "show", "churn", "--version", "1") == 0
    out = capsys.readouterr().out
    assert "segments (holdout split, groups under 30 rows are too small)" in out
    lines = out.splitlines()
    header = next(line for line in lines if line.strip().startswith("HAS_PARTNER (SENSITIVE)"))
    assert header.split()[2:] == ["ROWS", "ACCURACY", "RECALL", "ROC_AUC", "SELECTION_RATE", "NOTE"]
    assert any(line.strip().startswith("demographic_parity_difference gap") for line in lines)


def test_a_pii_segment_is_refused_by_the_cli(cli, files, capsys):
    # GIVEN the pii column named as a sensitive feature
    assert cli(*publish_args(files, "--sensitive", "customer_id")) == 2
    # THEN the refusal names it
    assert "[segments] 'customer_id'" in capsys.readouterr().err


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


def forge_card(registry_env) -> str:
    """Rewrite churn version 1's stored card after publishing (another artifact sha256), keeping its signature."""
    s3 = registry_env.s3()
    key = registry_env.registry.card_key("churn", "1")
    card = json.loads(s3.get_object(Bucket=registry_env.bucket, Key=key)["Body"].read())
    card["artifact"]["sha256"] = forged = "f" * 64
    s3.put_object(Bucket=registry_env.bucket, Key=key, Body=json.dumps(card).encode())
    return forged


@pytest.mark.parametrize("command", [("show", "churn"), ("show", "churn", "--json"), ("card", "churn")])
def test_a_card_forged_after_publishing_is_refused_by_models_show_and_card(
    cli, published, registry_env, capsys, command
):
    # GIVEN a published card rewritten afterwards, its old signature kept
    forged = forge_card(registry_env)
    capsys.readouterr()
    # WHEN it is shown (verification is the default)
    code = cli("models", *command)
    out, err = capsys.readouterr()
    # THEN the command refuses, says why and how to look anyway, exits non-zero and prints nothing of the card
    assert code == 2
    assert err.startswith("error: refusing to show the card: model 'churn' version '1' failed signature verification")
    assert "--no-verify" in err
    assert forged not in out and "verified" not in out


def test_no_verify_shows_a_forged_card_marked_not_verified(cli, published, registry_env, capsys):
    # GIVEN the same forged card
    forged = forge_card(registry_env)
    capsys.readouterr()
    # WHEN it is shown with --no-verify, as text and as JSON
    assert cli("models", "show", "churn", "--no-verify") == 0
    out, err = capsys.readouterr()
    assert cli("models", "show", "churn", "--no-verify", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    # THEN it is shown, marked NOT VERIFIED first and on the signature line; the JSON says verified false
    assert out.startswith("NOT VERIFIED: --no-verify was given") and "WARNING: NOT VERIFIED" in err
    assert forged in out and "  signature:    NOT VERIFIED (the card claims ECDSA_SHA_256)" in out
    assert "verified," not in out
    assert shown["artifact"]["sha256"] == forged and shown["verification"]["verified"] is False


def test_showing_a_card_needs_the_signing_key_or_no_verify(registry_env, published, capsys, monkeypatch, tmp_path):
    # GIVEN a published model and a registry bucket given without any signing key (nor a local stack)
    monkeypatch.delenv("SKLAMBDA_SIGNING_KEY_ID", raising=False)
    monkeypatch.setenv("SKLAMBDA_LOCAL_FILE", str(tmp_path / "absent.json"))
    capsys.readouterr()
    # WHEN the card is shown without a key, then with --no-verify
    refused = main(["--bucket", registry_env.bucket, "models", "show", "churn", "--version", "1"])
    err = capsys.readouterr().err
    shown = main(["--bucket", registry_env.bucket, "models", "show", "churn", "--version", "1", "--no-verify"])
    # THEN the first says it needs the key (or --no-verify); the second shows it, marked NOT VERIFIED
    assert refused == 2 and "no signing key configured" in err and "--no-verify" in err
    assert shown == 0 and "NOT VERIFIED" in capsys.readouterr().out


FEATURE_UTILS = """
def add_ratio(X):
    X = X.copy()
    X["ratio"] = X["a"] / X["b"]
    return X
"""


def test_publish_ships_the_code_given_with_code_and_refuses_without_it(cli, registry_env, tmp_path, capsys):
    import subprocess
    import sys

    # GIVEN a model file whose FunctionTransformer lives in feature_utils.py, saved by a training script
    (tmp_path / "feature_utils.py").write_text(FEATURE_UTILS)
    train = """
import joblib, numpy as np, pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from feature_utils import add_ratio
rng = np.random.default_rng(0)
X = pd.DataFrame({"a": rng.uniform(1, 5, 300), "b": rng.uniform(1, 5, 300)})
y = (X["a"] / X["b"] > 1).map({True: "up", False: "down"})
joblib.dump(make_pipeline(FunctionTransformer(add_ratio), LogisticRegression()).fit(X, y), "model.joblib")
X.assign(label=y).to_csv("train.csv", index=False)
"""
    subprocess.run([sys.executable, "-c", train], cwd=tmp_path, check=True, timeout=120)
    args = ["publish", "--model", str(tmp_path / "model.joblib"), "--data", str(tmp_path / "train.csv"),
            "--target", "label", "--name", "ratio"]  # fmt: skip
    # WHEN it is published without --code, then with it
    without = cli(*args)
    refused = capsys.readouterr().err
    with_code = cli(*args, "--code", str(tmp_path / "feature_utils.py"))
    out = capsys.readouterr().out
    # THEN the first is refused naming the module, the second ships the file in the signed card
    assert without == 2 and "'feature_utils'" in refused and "--code" in refused
    assert with_code == 0 and "published ratio version 1" in out
    card = registry_env.registry.get_card("ratio", "1")
    assert [f["path"] for f in card.code["files"]] == ["feature_utils.py"]


def test_version_prints_the_package_version_and_exits_0(capsys):
    # GIVEN the installed package's version
    import sklambda

    # WHEN the CLI is asked for its version
    with pytest.raises(SystemExit) as ended:
        main(["--version"])

    # THEN it prints it, as argparse's version action does, and succeeds
    assert ended.value.code == 0
    assert capsys.readouterr().out.strip() == f"sklambda {sklambda.__version__}"


def test_every_argument_of_every_command_has_help():
    # GIVEN the CLI's parser, subcommands included
    from sklambda_infra.cli import build_parser

    # WHEN every action is looked at THEN each says what it is for in --help
    undocumented = [f"{path} {name}" for path, name, action in cli_arguments(build_parser()) if not action.help]
    assert undocumented == []


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        ("data-empty", "[data] {train} is not a readable CSV file: No columns to parse from file"),
        ("data-missing", "[data] no file {train}"),
        ("model-missing", "[model] no file {model}"),
    ],
)
def test_unreadable_inputs_are_refused_together_before_the_target_runtime_is_built(
    cli, files, monkeypatch, capsys, broken, expected
):
    # GIVEN an empty training CSV, a missing one, or a missing model file; building the runtime would fail the test
    import sklambda_infra.runtime

    def must_not_build(*args, **kwargs):
        raise AssertionError("the target runtime was built before the inputs were checked")

    monkeypatch.setattr(sklambda_infra.runtime, "ensure_runtime_path", must_not_build)
    if broken == "data-empty":
        open(files["train"], "w").close()
    elif broken == "data-missing":
        files["train"] = str(files["dir"] / "no-such.csv")
    else:
        files["model"] = str(files["dir"] / "no-such.joblib")

    # WHEN publish runs
    code = cli(*publish_args(files))

    # THEN it is refused with the file and the reason, without a traceback
    err = capsys.readouterr().err
    assert code == 2
    assert expected.format(train=files["train"], model=files["model"]) in err
    assert "Traceback" not in err


def test_gate_compares_two_published_versions_on_a_labeled_file_as_served(
    cli, files, registry_env, published, churn, logistic_model, forest_model, churn_build, capsys
):
    # GIVEN churn version 1 (logistic, production) and version 2 (a forest), and a labeled holdout file
    from tests.support import store_built

    store_built(registry_env, churn_build(forest_model, version="2"), alias="production")
    capsys.readouterr()
    # WHEN the forest is gated against version 1 on ROC AUC
    code = cli("gate", "churn", "2", "--champion", "1", "--data", files["holdout"], "--target", "churned", "--json")
    result = json.loads(capsys.readouterr().out)
    # THEN each version's AUC is what it scores on the file, and the exit code follows the decision
    from sklearn.metrics import roc_auc_score

    positive = published.decision["positive_class"] if published.decision else logistic_model.classes_[1]
    y = (churn.y_holdout == positive).to_numpy()
    column = list(logistic_model.classes_).index(positive)
    assert result["champion"] == pytest.approx(
        roc_auc_score(y, logistic_model.predict_proba(churn.X_holdout)[:, column])
    )
    assert result["challenger"] == pytest.approx(
        roc_auc_score(y, forest_model.predict_proba(churn.X_holdout)[:, column])
    )
    assert code == {"replace": 0, "keep_champion": 1, "reject": 4}[result["decision"]]
    # AND a version gated against itself is no replacement
    assert cli("gate", "churn", "1", "--champion", "1", "--data", files["holdout"], "--target", "churned") == 1
    assert "decision: keep_champion" in capsys.readouterr().out
