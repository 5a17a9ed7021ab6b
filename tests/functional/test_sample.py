"""`sklambda sample write`: the sample model's files, published by the command it prints, on a moto registry."""

from __future__ import annotations

import shlex

from sklambda_infra import penguins
from sklambda_infra.cli import main


def test_the_printed_publish_command_publishes_the_written_sample(registry_env, tmp_path, capsys, monkeypatch):
    # GIVEN an empty folder, and the registry in the environment as `eval "$(sklambda local env)"` sets it
    monkeypatch.setenv("SKLAMBDA_MODEL_BUCKET", registry_env.bucket)
    monkeypatch.setenv("SKLAMBDA_SIGNING_KEY_ID", registry_env.signing_key_id)
    monkeypatch.chdir(tmp_path)
    # WHEN the sample is written, then the publish command it prints runs as printed
    assert main(["sample", "write", "walkthrough"]) == 0
    printed = capsys.readouterr().out
    command = shlex.split(next(line for line in printed.splitlines() if line.strip().startswith("sklambda publish")))
    assert main(command[1:]) == 0
    # THEN the three files are there and the registry holds the sample: staging -> 1, individual_id pii, the
    # holdout's metrics, as many training rows as train.csv has
    assert sorted(p.name for p in (tmp_path / "walkthrough").iterdir()) == sorted(penguins.SAMPLE_FILES)
    assert "published penguins version 1" in capsys.readouterr().out
    assert registry_env.registry.list_aliases(penguins.NAME) == {"staging": "1"}
    card = registry_env.registry.get_card(penguins.NAME, "1")
    assert card.input_schema.feature("individual_id").pii
    assert card.metrics["split"] == "holdout" and list(card.classes) == ["female", "male"]
    training_rows = sum(1 for _ in (tmp_path / "walkthrough" / "train.csv").open()) - 1
    assert card.metrics["training_rows"] == training_rows


def test_writing_the_sample_over_existing_files_needs_overwrite(tmp_path, capsys):
    # GIVEN a folder holding a train.csv of the user's own
    (tmp_path / "train.csv").write_text("mine\n")
    # WHEN the sample is written there without --overwrite
    code = main(["sample", "write", str(tmp_path)])
    # THEN it refuses in one line naming the file, and writes nothing
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "train.csv exists" in err and "--overwrite" in err
    assert (tmp_path / "train.csv").read_text() == "mine\n" and not (tmp_path / "model.joblib").exists()
    # WHEN it is written with --overwrite THEN the sample replaces it
    assert main(["sample", "write", str(tmp_path), "--overwrite"]) == 0
    assert (tmp_path / "train.csv").read_text().startswith(",".join([*penguins.FEATURES, penguins.TARGET]))
