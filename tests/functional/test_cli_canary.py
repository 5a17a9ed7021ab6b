"""`sklambda promote --canary/--finish/--gate`, `rollback` of a canary, `shadow` and `models show` of both, against a
moto registry."""

from __future__ import annotations

import numpy as np
import pytest

from sklambda_infra import sample
from sklambda_infra.cli import main
from tests.support import as_version, store_built


@pytest.fixture
def cli(registry_env, monkeypatch, tmp_path):
    """The CLI on this test's moto registry, with no local stack and no API configured."""
    monkeypatch.setenv("SKLAMBDA_LOCAL_FILE", str(tmp_path / "no-local-stack.json"))
    for name in ("SKLAMBDA_API_URL", "SKLAMBDA_API_KEY"):
        monkeypatch.delenv(name, raising=False)

    def run(*args: str) -> int:
        return main(["--bucket", registry_env.bucket, "--signing-key", registry_env.signing_key_id, *args])

    return run


@pytest.fixture(scope="module")
def chance_model(churn):
    """The churn pipeline fitted on shuffled labels: no better than chance."""
    shuffled = churn.y.sample(frac=1.0, random_state=np.random.RandomState(0)).to_numpy()
    return sample.logistic_pipeline().fit(churn.X, shuffled)


@pytest.fixture
def versions(registry_env, churn_v1, chance_model):
    """churn 1 (production), 2 (the same pipeline) and 3 (chance_model), stored from the session's build."""
    store_built(registry_env, churn_v1, alias="production")
    store_built(registry_env, as_version(churn_v1, "2"))
    store_built(registry_env, as_version(churn_v1, "3", chance_model))
    return registry_env.registry


def test_a_canary_starts_ramps_shows_rolls_back_and_finishes(cli, versions, capsys):
    # WHEN version 2 starts as a 10 % canary keyed by customer_id with a latency bound
    assert cli("promote", "churn", "2", "--canary", "10", "--key", "customer_id", "--max-latency-ratio", "2") == 0
    # THEN the alias keeps version 1 and routes 10 % of the customers to 2, with the bound given (and only it)
    record = versions.get_alias("churn", "production")
    assert (record.version, record.canary.version, record.canary.weight) == ("1", "2", 10.0)
    assert record.canary.key == "customer_id" and record.canary.bounds == {"max_latency_ratio": 2.0}
    out = capsys.readouterr().out
    assert "churn: production -> 1, canary 2 takes 10 % of the callers, sticky per the feature customer_id" in out
    # AND models show names the canary, its key, start and bounds
    assert cli("models", "show", "churn", "--no-verify") == 0
    shown = capsys.readouterr().out
    assert "canary:       production: version 2 takes 10 % of the callers (key customer_id; stable 1) since" in shown
    assert "rollback bounds: max_latency_ratio=2" in shown
    # WHEN it ramps to 50 %, then is rolled back
    assert cli("promote", "churn", "2", "--canary", "50") == 0
    assert "(was 10 %)" in capsys.readouterr().out
    assert cli("rollback", "churn") == 0
    # THEN the canary is gone at once and version 1 answers everyone
    assert "canary 2 dropped (50 %): version 1 answers every caller" in capsys.readouterr().out
    assert versions.get_alias("churn", "production").canary is None
    # WHEN a canary is started again and finished
    assert cli("promote", "churn", "2", "--canary", "10") == 0
    assert cli("promote", "churn", "--finish") == 0
    # THEN the alias is on version 2, and a rollback returns it to 1
    assert "churn: production -> 2 (canary finished; was 1)" in capsys.readouterr().out
    assert versions.get_alias("churn", "production").version == "2"
    assert cli("rollback", "churn") == 0 and versions.get_alias("churn", "production").version == "1"


def test_canary_mistakes_are_refused_with_a_clear_message(cli, versions, capsys):
    mistakes = [
        (
            ("2", "--canary", "10", "--key", "favourite_colour"),
            "--key 'favourite_colour' is not a feature of version 1",
        ),
        (("9", "--canary", "10"), "has no version '9'"),
        (("1", "--canary", "10"), "already the stable version"),
        (("--finish",), "has no canary to finish"),
        (("2", "--max-latency-ratio", "2"), "--max-latency-ratio go with --canary"),
        (("2", "--gate"), "--gate needs --data CSV and --target COLUMN"),
        (("2", "--finish"), "it takes no VERSION"),
        (("2", "--canary", "10", "--max-latency-ratio", "0.5"), "max_latency_ratio must be at least 1"),
    ]
    for args, message in mistakes:
        # WHEN a promote is given a mistake THEN it exits 2 saying what is wrong, and no canary starts
        assert cli("promote", "churn", *args) == 2, args
        assert message in capsys.readouterr().err
        assert versions.get_alias("churn", "production").canary is None


def test_a_second_canary_or_a_plain_promote_during_one_is_refused(cli, versions, capsys):
    assert cli("promote", "churn", "2", "--canary", "10") == 0
    assert cli("promote", "churn", "3", "--canary", "10") == 2
    assert (
        "already has a canary on version 2 (10 %): finish it (promote --finish) or roll it back"
        in capsys.readouterr().err
    )
    assert cli("promote", "churn", "3") == 2
    assert versions.get_alias("churn", "production").canary.version == "2"


def test_a_weight_outside_the_open_interval_is_refused_by_the_parser(cli, capsys):
    for weight in ("0", "100", "-5", "ten"):
        with pytest.raises(SystemExit) as exited:
            cli("promote", "churn", "2", "--canary", weight)
        assert exited.value.code == 2 and "--canary" in capsys.readouterr().err


def test_a_shadow_is_set_shown_and_stopped(cli, versions, capsys):
    assert cli("shadow", "churn", "3") == 0
    assert versions.get_alias("churn", "production").shadow.version == "3"
    assert cli("models", "show", "churn", "--no-verify") == 0
    assert "shadow:       production: version 3 since" in capsys.readouterr().out
    assert cli("shadow", "churn", "--stop") == 0
    assert versions.get_alias("churn", "production").shadow is None
    assert "production shadow 3 stopped" in capsys.readouterr().out
    assert cli("shadow", "churn") == 2 and cli("shadow", "churn", "1") == 2  # neither, or the stable version


def test_promote_gate_moves_the_alias_only_when_the_gate_says_replace(cli, versions, files, capsys):
    gate = ("--gate", "--data", files["holdout"], "--target", "churned")
    # GIVEN production on version 1 WHEN version 3 (chance level) is promoted through the gate
    assert cli("promote", "churn", "3", *gate) == 1
    # THEN the gate's reason is given and the alias is untouched
    err = capsys.readouterr().err
    assert "error: not promoted: the gate says reject" in err
    assert versions.get_alias("churn", "production").version == "1"
    # GIVEN production on version 3 WHEN version 2 (the real model) goes through the gate as a canary
    versions.set_alias("churn", "production", "3")
    assert cli("promote", "churn", "2", *gate, "--canary", "10") == 0
    # THEN the gate said replace and the canary started
    out = capsys.readouterr().out
    assert "decision: replace" in out and "canary 2 takes 10 %" in out
    assert versions.get_alias("churn", "production").canary.version == "2"


def test_a_canary_version_cannot_shadow_and_a_replaced_shadow_is_named(cli, versions, capsys):
    # GIVEN version 2 as a canary and version 3 as the shadow
    assert cli("promote", "churn", "2", "--canary", "10") == 0
    assert cli("shadow", "churn", "3") == 0
    capsys.readouterr()
    # WHEN the canary's version is set as the shadow THEN it is refused, saying why, and the shadow stays 3
    assert cli("shadow", "churn", "2") == 2
    assert "version 2 is the canary of alias 'production'" in capsys.readouterr().err
    assert versions.get_alias("churn", "production").shadow.version == "3"
    # WHEN the canary is rolled back and 2 replaces the shadow THEN the CLI names the shadow it replaced
    assert cli("rollback", "churn") == 0 and cli("shadow", "churn", "2") == 0
    assert "shadow 2 (was version 3):" in capsys.readouterr().out


def test_a_running_canary_keeps_its_key(cli, versions, capsys):
    # GIVEN a canary keyed by customer_id
    assert cli("promote", "churn", "2", "--canary", "20", "--key", "customer_id") == 0
    # WHEN it is ramped with another key THEN it is refused: every caller would be re-routed
    assert cli("promote", "churn", "2", "--canary", "30", "--key", "age") == 2
    assert "keyed by the feature customer_id: another key (age) would re-route every caller" in capsys.readouterr().err
    canary = versions.get_alias("churn", "production").canary
    assert (canary.weight, canary.key) == (20.0, "customer_id")
    # AND a ramp naming the same key, or none, goes on
    assert cli("promote", "churn", "2", "--canary", "40", "--key", "customer_id") == 0
    assert versions.get_alias("churn", "production").canary.key == "customer_id"


def test_a_version_whose_schema_refuses_the_callers_rows_is_promoted_only_when_allowed(
    registry_env, churn_v1, cli, versions, capsys
):
    # GIVEN version 4: a new required feature `score`, and `age` a number instead of an integer
    from dataclasses import replace

    from sklambda.registry.schema import FeatureSpec, InputSchema

    built = as_version(churn_v1, "4")
    features = [replace(f, type="number") if f.name == "age" else f for f in built.card.input_schema.features]
    schema = InputSchema((*features, FeatureSpec("score", "number")))
    store_built(registry_env, replace(built, card=replace(built.card, input_schema=schema), code={}))
    assert churn_v1.card.input_schema.feature("age").type == "integer"
    # WHEN it is promoted as a canary THEN it is refused with each difference listed, and no canary starts
    assert cli("promote", "churn", "4", "--canary", "30") == 2
    err = capsys.readouterr().err
    assert "the input schemas of versions 1 and 4 of churn differ" in err
    assert "version 4 requires 'score' (number), which version 1 does not take" in err
    assert "'age' is an integer in version 1, a number in version 4" in err
    assert "--allow-schema-change" in err and versions.get_alias("churn", "production").canary is None
    # WHEN it is promoted with --allow-schema-change THEN the warning is printed and the canary starts
    assert cli("promote", "churn", "4", "--canary", "30", "--allow-schema-change") == 0
    assert "warning: the input schemas of versions 1 and 4" in capsys.readouterr().err
    assert versions.get_alias("churn", "production").canary.version == "4"
    # AND a version with the same schema is promoted without a word about schemas
    assert cli("rollback", "churn") == 0 and cli("promote", "churn", "2") == 0
    assert "schema" not in capsys.readouterr().err
