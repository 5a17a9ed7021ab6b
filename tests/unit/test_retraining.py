"""The retraining pipeline's pure parts (sklambda.updating.retraining, training_data): requests, step records and
resume, the rollout watch, the holdout rule and the card options a retrained version keeps. Fakes, no AWS."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from botocore.exceptions import ClientError

from sklambda.updating import retraining
from sklambda.updating.retraining import Retraining, RetrainRequest, RunStore, card_options, parse_request, run_step
from sklambda.updating.training_data import SOURCE, assemble


class FakeS3:
    """get_object / put_object over a dict; a missing key is S3's NoSuchKey."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def get_object(self, Bucket: str, Key: str) -> dict:
        if Key not in self.objects:
            raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "missing"}}, "GetObject")
        return {"Body": io.BytesIO(self.objects[Key])}

    def put_object(self, Bucket: str, Key: str, Body: bytes, ContentType: str) -> dict:
        self.objects[Key] = Body
        return {}


def store() -> RunStore:
    return RunStore(FakeS3(), "data", "churn", "run-1")


def test_a_succeeded_step_is_not_run_again_and_a_failed_one_is_retried_with_its_attempt_counted() -> None:
    # GIVEN a step that failed once with a StepFailed carrying what it found
    runs = store()
    with pytest.raises(retraining.GateFailed):
        run_step(runs, "gate", {"x": 1}, lambda: (_ for _ in ()).throw(retraining.GateFailed("no", outcome={"g": 0})))
    failed = runs.record("gate")
    assert (failed["status"], failed["attempt"], failed["outcome"]) == ("failed", 1, {"g": 0})
    assert failed["error"] == {"error": "GateFailed", "message": "no"}
    # WHEN it is run again, succeeds, and is then asked a third time
    assert run_step(runs, "gate", {"x": 1}, lambda: {"decision": "replace"}) == {"decision": "replace"}
    again = run_step(runs, "gate", {"x": 1}, lambda: pytest.fail("a succeeded step must not run again"))
    # THEN the second run was attempt 2, and the third returned the recorded outcome
    assert again == {"decision": "replace"}
    assert (runs.record("gate")["status"], runs.record("gate")["attempt"]) == ("succeeded", 2)


def watcher() -> Retraining:
    return Retraining(registry=None, verifier=None, s3=FakeS3(), data_bucket="data")  # type: ignore[arg-type]


def test_the_watch_counts_rounds_and_gives_up_after_max_rounds_still_collecting() -> None:
    pipeline, request = watcher(), RetrainRequest(model="churn", run_id="w", max_rounds=2)
    # WHEN the check answers collecting twice
    first = pipeline.watch(request, {"status": "collecting", "verdict": {"reasons": []}}, None)
    # THEN the first round waits again, the second times the rollout out
    assert (first["status"], first["round"]) == ("collecting", 1)
    with pytest.raises(retraining.RolloutTimedOut, match="after 2 check"):
        pipeline.watch(request, {"status": "failed", "error": {"code": "internal", "message": "S3 throttled"}}, first)
    assert pipeline.store(request).record("watch")["status"] == "failed"


def test_the_watch_ends_the_run_with_the_checks_reasons_or_an_unknown_answer() -> None:
    pipeline, request = watcher(), RetrainRequest(model="churn", run_id="w")
    rolled_back = {"status": "rolled_back", "verdict": {"reasons": [{"metric": "latency", "text": "p99 latency 2.1x"}]}}
    with pytest.raises(retraining.CanaryRolledBack, match=r"p99 latency 2\.1x"):
        pipeline.watch(request, rolled_back, None)
    with pytest.raises(retraining.CanaryRolledBack, match="no canary any more"):
        pipeline.watch(RetrainRequest(model="churn", run_id="w1"), {"status": "no_canary"}, None)
    with pytest.raises(retraining.RolloutCheckFailed, match="unknown status"):
        pipeline.watch(RetrainRequest(model="churn", run_id="w2"), {"oops": True}, None)


@pytest.mark.parametrize(
    ("quality", "status"),
    [
        ({"available": True, "decision": "replace"}, "healthy"),
        ({"available": True, "decision": "keep_champion"}, "collecting"),
        ({"available": True, "decision": "reject"}, "rejected"),
        ({"available": False, "reason": "12 labeled rows"}, "collecting"),
    ],
)
def test_a_shadow_is_healthy_once_its_paired_gate_would_replace_the_stable_version(quality, status) -> None:
    answer = {"status": "no_canary", "shadow": {"status": "compared", "summary": "s", "quality": quality}}
    assert retraining.read_check(answer, "shadow")[0] == status
    assert retraining.read_check({"status": "no_canary", "shadow": None}, "shadow")[0] == "rolled_back"


def test_a_request_names_every_bad_field_and_takes_the_execution_name_as_its_run_id() -> None:
    with pytest.raises(retraining.InvalidRetrainRequest) as e:
        parse_request({"model": "churn", "rollout": "blue-green", "canary_weight": 150, "colour": 1}, "ex")
    assert [p.split(":")[0] for p in e.value.outcome["problems"]] == ["rollout", "canary_weight", "colour"]
    assert parse_request({"model": "churn"}, "exec-7").run_id == "exec-7"
    with pytest.raises(retraining.InvalidRetrainRequest, match="run_id"):
        parse_request({"model": "churn"}, "has space")


def card(*, pii: bool, task: str = "classification", reads_pii: bool = True) -> SimpleNamespace:
    features = [
        SimpleNamespace(name="x", pii=False, type="number", required=True),
        SimpleNamespace(name="who", pii=pii, type="category", required=reads_pii),
    ]
    schema = SimpleNamespace(names=("x", "who"), features=features)
    return SimpleNamespace(input_schema=schema, task=task, classes=("no", "yes"))


def frame(n: int, *, start: int = 0, source: str = "prefix") -> pd.DataFrame:
    rng = np.random.default_rng(start)
    return pd.DataFrame(
        {"x": np.arange(start, start + n, dtype=float), "who": [f"p{i}" for i in range(n)],
         "y": np.where(rng.random(n) < 0.5, "yes", "no"), SOURCE: source}
    )  # fmt: skip


def test_the_holdout_is_the_most_recent_labeled_rows_when_there_are_enough() -> None:
    # GIVEN 300 prefix rows and 400 labeled captured rows, oldest first, of a model without pii
    prefix, captured = frame(300), frame(400, start=1000, source="capture")
    # WHEN they are assembled
    data = assemble(prefix, captured, card(pii=False), "y", min_holdout_rows=50)
    # THEN the holdout is the newest fifth of the captures, and every other row trains
    assert data.holdout_source == "recent_labeled"
    assert data.holdout["x"].tolist() == list(np.arange(1320.0, 1400.0))
    assert len(data.train) == 300 + 320 and data.captured_used == 400


def test_without_enough_recent_labels_the_holdout_is_a_seeded_stratified_split() -> None:
    # GIVEN 500 prefix rows and 20 labeled captures (too few for a holdout)
    prefix, captured = frame(500), frame(20, start=1000, source="capture")
    # WHEN they are assembled twice
    first = assemble(prefix, captured, card(pii=False), "y", min_holdout_rows=50)
    second = assemble(prefix, captured, card(pii=False), "y", min_holdout_rows=50)
    # THEN a fifth of each class is held out, the same rows each time (a rerun splits the same way)
    assert first.holdout_source == "seeded_split" and "too few" in first.notes[0]
    assert first.holdout["x"].tolist() == second.holdout["x"].tolist()
    rows = pd.concat([prefix, captured])
    for label in ("yes", "no"):
        assert (first.holdout["y"] == label).sum() == round((rows["y"] == label).sum() * 0.2)


def test_captured_rows_of_a_model_with_pii_are_left_out_with_a_note() -> None:
    data = assemble(frame(300), frame(400, start=1000, source="capture"), card(pii=True), "y")
    assert (data.captured, data.captured_used, len(data.train) + len(data.holdout)) == (400, 0, 300)
    assert "pseudonyms" in data.notes[0] and (data.train[SOURCE] == "prefix").all()


def test_captured_rows_train_when_the_model_never_reads_its_pii_feature() -> None:
    # GIVEN a model whose pii feature is an id it never reads (publish found it dropped: required False)
    data = assemble(frame(300), frame(400, start=1000, source="capture"), card(pii=True, reads_pii=False), "y")
    # THEN its labeled captures train and hold out like any others: their pseudonyms reach no estimator
    assert (data.captured_used, data.holdout_source, data.notes) == (400, "recent_labeled", [])


def test_a_retrained_version_keeps_the_champions_card_options_and_names_its_run() -> None:
    # GIVEN a champion published with costs, segments, documentation, tags and a pii feature
    champion = card(pii=True)
    champion.version, champion.description = "3", "churn"
    champion.tags = {"drift.alpha": "0.01"}
    champion.input_schema.features[0].nullable = True
    champion.input_schema.features[1].nullable = False
    champion.decision = {"positive_class": "yes", "source": "costs", "threshold": 0.3,
                         "costs": {"false_positive": 1.0, "false_negative": 5.0}}  # fmt: skip
    champion.segments = {"features": [{"name": "plan", "sensitive": False}, {"name": "region", "sensitive": True}],
                         "bounds": {"demographic_parity_difference": 0.05}}  # fmt: skip
    champion.documentation = {"owner": "risk", "intended_use": "", "limitations": ["EU only"]}
    # WHEN the options are read
    options = card_options(champion, run_id="r-9")
    # THEN costs choose a new threshold (not the old one), and the rest carries over with the run's tags
    assert options["costs"] == (1.0, 5.0) and "threshold" not in options
    assert (options["pii"], options["nullable"], options["positive_class"]) == (["who"], ["x"], "yes")
    assert (options["segments"], options["sensitive"]) == (["plan", "region"], ["region"])
    assert options["fairness_bounds"] == {"demographic_parity_difference": 0.05}
    assert (options["owner"], options["limitations"], "intended_use" in options) == ("risk", ["EU only"], False)
    assert options["tags"] == {"drift.alpha": "0.01", retraining.RUN_TAG: "r-9", retraining.PARENT_TAG: "3"}
    json.dumps(options)  # recorded as the step's input: JSON-ready


def test_the_watch_and_approval_records_time_the_step_from_its_first_start() -> None:
    from datetime import UTC, datetime, timedelta

    from sklambda.updating.retraining import decide_approval

    # GIVEN a clock that moves 10 minutes between calls
    times = iter(datetime(2026, 11, 30, 12, tzinfo=UTC) + timedelta(minutes=10 * i) for i in range(100))
    pipeline = Retraining(registry=None, verifier=None, s3=FakeS3(), data_bucket="data", clock=lambda: next(times))  # type: ignore[arg-type]
    request = RetrainRequest(model="churn", run_id="t")
    # WHEN the watch collects once, then finds the canary healthy
    first = pipeline.watch(request, {"status": "collecting", "verdict": {"reasons": []}}, None)
    pipeline.watch(request, {"status": "healthy", "verdict": {"reasons": []}}, first)
    # THEN its record spans both rounds (first start to end), not the last round alone
    watch = pipeline.store(request).record("watch")
    assert watch["status"] == "succeeded" and watch["seconds"] == 600.0  # round 1 at 12:00, round 2 at 12:10
    # WHEN an approval is asked and decided later
    pipeline.request_approval(request, {}, "token")

    class Sfn:
        def send_task_success(self, taskToken: str, output: str) -> None: ...

    decide_approval(pipeline.store(request), Sfn(), approved=True, clock=lambda: next(times))
    # THEN its seconds run from the request to the decision
    assert pipeline.store(request).record("approval")["seconds"] == 600.0


def test_retrain_wait_says_each_new_watch_round_and_the_approval_command_once() -> None:
    from sklambda_infra.retrain_cli import Progress

    runs = store()
    progress = Progress(runs)
    assert progress.news() == []
    watch = {"status": "running", "outcome": {"status": "collecting", "round": 1, "max_rounds": 48, "reasons": []}}
    runs.write_record("watch", watch)
    assert progress.news() == ["  rollout check 1/48: collecting"]
    assert progress.news() == []  # the same round is said once
    runs.write_record("approval", {"status": "running"})
    (line,) = progress.news()
    assert "waiting for an approval: sklambda approve churn run-1" in line
    assert progress.news() == []


def test_a_failed_runs_summary_says_the_gates_reason_once_with_the_report_and_event() -> None:
    from sklambda_infra.retrain_cli import summary

    report = {
        "model": "churn", "run_id": "r", "status": "failed", "failed_step": "gate",
        "reason": "gate: keep_champion: not shown better", "event_id": "ev-1",
        "steps": [{"step": "gate", "status": "failed", "seconds": 0.2}],
        "gate": {"decision": "keep_champion", "reason": "not shown better", "metric": "roc_auc", "gain": 0.001,
                 "gain_lower": -0.004},
        "notes": ["assemble: has_partner: values the champion never saw: '0' (75), '1' (25)"],
    }  # fmt: skip
    text = summary(report, "s3://data/retraining/churn/r/report.json")
    assert text.count("not shown better") == 1
    assert "failed at gate: keep_champion: not shown better" in text  # the step is not said twice
    # AND what a step saw without refusing it (here the assemble step's unseen categories) is on the summary too
    assert "note: assemble: has_partner: values the champion never saw" in text
    assert "gate: keep_champion (roc_auc gain +0.0010, lower bound -0.0040)" in text
    assert "report: s3://data/retraining/churn/r/report.json" in text and "event: RetrainingFailed ev-1" in text


def test_prefix_rows_copying_a_holdout_row_on_the_read_features_are_left_out_of_training() -> None:
    # GIVEN 400 labeled captures, and a prefix holding copies of all of them under other ids (an id never read)
    captured = frame(400, start=1000, source="capture")
    copies = captured.assign(who=[f"raw-{i}" for i in range(400)], **{SOURCE: "prefix"})
    prefix = pd.concat([frame(300), copies], ignore_index=True)
    # WHEN they are assembled
    data = assemble(prefix, captured, card(pii=True, reads_pii=False), "y")
    # THEN the copies of the 80 holdout rows are not training rows, and a note says so
    assert data.holdout_source == "recent_labeled" and data.holdout_copies == 80
    assert not set(data.holdout["x"]) & set(data.train["x"])
    assert len(data.train) == 300 + 320 + 320 and "80 training-data row(s) equal a holdout row" in data.notes[-1]


def test_the_train_step_refuses_rows_that_would_change_a_features_type() -> None:
    # GIVEN a champion whose `age` is an integer, and training rows where it is a float column
    from sklambda.registry.schema import FeatureSpec, InputSchema

    champion = SimpleNamespace(input_schema=InputSchema((FeatureSpec("age", "integer"), FeatureSpec("x", "number"))))
    rows = pd.DataFrame({"age": [40.0, 41.5], "x": [1.0, 2.0]})
    # THEN the rows are refused, naming the feature and both types; rows typed as the champion's pass
    with pytest.raises(retraining.TrainingDataUnusable, match=r"age: number \(the champion's: integer\)"):
        retraining._check_types(champion, rows)
    retraining._check_types(champion, rows.assign(age=pd.array([40, None], dtype="Int64")))


@pytest.mark.parametrize(("classes", "given", "used"), [
    (("a", "b", "c"), {}, "accuracy"),  # ROC AUC, the default, is binary: a multiclass champion is gated on accuracy
    (("a", "b", "c"), {"metric": "accuracy", "margin": 0.02}, "accuracy"),
    (("no", "yes"), {}, "roc_auc"),
])  # fmt: skip
def test_the_gate_step_uses_accuracy_for_a_multiclass_champion_unless_told(monkeypatch, classes, given, used):
    # GIVEN a champion with `classes`, and a run whose gate settings are `given`
    seen = {}

    def fake_gate(registry, verifier, name, champion, candidate, X, y, *, config):
        seen["metric"] = config.metric
        return SimpleNamespace(decision=retraining.REPLACE, reason="", to_dict=lambda: {"metric": config.metric})

    card = SimpleNamespace(task="classification", classes=classes, input_schema=SimpleNamespace(names=("x",)))
    monkeypatch.setattr(retraining, "gate_versions", fake_gate)
    monkeypatch.setattr(retraining, "jsonl_to_frame", lambda body, card, target: pd.DataFrame({"x": [1.0], "y": ["a"]}))
    pipeline = Retraining(registry=SimpleNamespace(get_card=lambda name, version: card), verifier=None, s3=FakeS3(),
                          data_bucket="data")  # type: ignore[arg-type]  # fmt: skip
    pipeline.store(RetrainRequest(model="m", run_id="r")).put_file("holdout.jsonl.gz", b"", "application/gzip")
    # WHEN the gate step runs
    outcome = pipeline._gate(RetrainRequest(model="m", run_id="r", gate=given),
                             {"champion": "1", "candidate": "2", "holdout_key": "retraining/m/r/holdout.jsonl.gz"},
                             "y")  # fmt: skip
    # THEN the metric used is the one given, else accuracy for more than two classes, and the outcome names it
    assert seen["metric"] == used == outcome["metric"]
