"""The batch scoring handlers (functions/batch_score/) with SQS events from events/ and moto.

The engine itself (sklambda.batch) is tested on its own; here: S3 notifications in SQS messages -> jobs, exactly once
per object version, poison files reported as failed records, fan-out of large files, the state machine's tasks.
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
import json
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

from sklambda_infra import sample

ROOT = Path(__file__).resolve().parents[2]
BATCH_DIR = ROOT / "functions" / "batch_score"
EVENT = ROOT / "events" / "batch_sqs_event.json"
DATA_BUCKET = "sklambda-data-test"
TABLE = "sklambda-idempotency-test"
BIG_ROWS = 130_000  # about 7.4 MB: above the 6 MiB fan-out threshold, two 5 MiB chunks


def _import(module: str) -> ModuleType:
    """A fresh import of a batch handler module (and of batch_shared), as a new Lambda container would do."""
    for name in ("batch_shared", f"batch_{module}"):
        sys.modules.pop(name, None)
    if str(BATCH_DIR) not in sys.path:
        sys.path.insert(0, str(BATCH_DIR))
    spec = importlib.util.spec_from_file_location(f"batch_{module}", BATCH_DIR / f"{module}.py")
    loaded = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = loaded
    spec.loader.exec_module(loaded)
    return loaded


@pytest.fixture
def batch_env(function_env, published, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=DATA_BUCKET)
    s3.put_bucket_versioning(Bucket=DATA_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    boto3.client("dynamodb").create_table(
        TableName=TABLE,
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    machine = boto3.client("stepfunctions").create_state_machine(
        name="batch-fanout",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn="arn:aws:iam::123456789012:role/batch-fanout",
    )["stateMachineArn"]
    for name, value in {
        "SKLAMBDA_BATCH_DATA_BUCKET": DATA_BUCKET,
        "SKLAMBDA_BATCH_IDEMPOTENCY_TABLE": TABLE,
        "SKLAMBDA_BATCH_STATE_MACHINE_ARN": machine,
        "SKLAMBDA_BATCH_FANOUT_BYTES": str(6 * 1024 * 1024),
        "SKLAMBDA_BATCH_CHUNK_BYTES": str(5 * 1024 * 1024),
        "SKLAMBDA_BATCH_FANOUT_MAX_CONCURRENCY": "3",
    }.items():
        monkeypatch.setenv(name, value)
    return SimpleNamespace(s3=s3, state_machine_arn=machine)


@pytest.fixture
def batch_app(batch_env) -> ModuleType:
    return _import("app")


@pytest.fixture
def fanout_app(batch_env) -> ModuleType:
    return _import("fanout")


def churn_csv(rows: int, seed: int = 3) -> bytes:
    X, _ = sample.churn_data(rows, seed=seed)
    return X.to_csv(index=False).encode()


_SEQUENCERS = itertools.count(0x0055AED6DCD90281E5)


def upload(s3, key: str, body: bytes) -> dict:
    """Put an object; the S3 notification record S3 would send for it (key URL-encoded, sequencers increasing
    from one upload to the next, as S3's are for the PUTs of one key)."""
    from urllib.parse import quote_plus

    put = s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=body)
    return {
        "eventName": "ObjectCreated:Put",
        "s3": {
            "bucket": {"name": DATA_BUCKET, "arn": f"arn:aws:s3:::{DATA_BUCKET}"},
            "object": {
                "key": quote_plus(key, safe="/"),
                "size": len(body),
                "eTag": put["ETag"].strip('"'),
                "versionId": put["VersionId"],
                "sequencer": f"{next(_SEQUENCERS):018X}",
            },
        },
    }


def sqs_event(*bodies: dict, message_id: str = "msg") -> dict:
    """The sample event from events/ with one message per body."""
    template = json.loads(EVENT.read_text())["Records"][0]
    records = []
    for i, body in enumerate(bodies):
        record = copy.deepcopy(template)
        record["messageId"] = f"{message_id}-{i}"
        record["body"] = json.dumps(body)
        records.append(record)
    return {"Records": records}


def versions(s3, key: str) -> int:
    listed = s3.list_object_versions(Bucket=DATA_BUCKET, Prefix=key)
    return len([v for v in listed.get("Versions", []) if v["Key"] == key])


def read(s3, key: str) -> bytes:
    return s3.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read()


def summary(s3, relative: str) -> dict:
    return json.loads(s3.get_object(Bucket=DATA_BUCKET, Key=f"scored/churn/{relative}.summary.json")["Body"].read())


def test_sample_event_holds_an_s3_notification_for_incoming():
    # GIVEN the sample event used by these tests and `sam local invoke -e`
    body = json.loads(json.loads(EVENT.read_text())["Records"][0]["body"])
    (record,) = body["Records"]
    # THEN it is an ObjectCreated record under incoming/ with a URL-encoded key and a version id
    assert record["eventName"].startswith("ObjectCreated")
    assert record["s3"]["object"]["key"].startswith("incoming/churn/") and "+" in record["s3"]["object"]["key"]
    assert record["s3"]["object"]["versionId"]


def test_uploaded_file_is_scored_with_errors_and_summary(batch_app, batch_env, lambda_context):
    # GIVEN a CSV with one bad row uploaded under incoming/churn/
    rows = churn_csv(30).decode().splitlines()
    rows[5] = rows[5].replace(rows[5].split(",")[1], "not-a-number", 1)
    notification = upload(batch_env.s3, "incoming/churn/day.csv", ("\n".join(rows) + "\n").encode())
    # WHEN the handler receives the notification
    response = batch_app.handler(sqs_event({"Records": [notification]}), lambda_context)
    # THEN no record failed, and the scored file, the errors file and the summary exist
    assert response == {"batchItemFailures": []}
    report = summary(batch_env.s3, "day.csv")
    assert (report["status"], report["rows_read"], report["rows_scored"], report["rows_rejected"]) == (
        "succeeded",
        30,
        29,
        1,
    )
    scored = read(batch_env.s3, "scored/churn/day.csv").decode().splitlines()
    assert len(scored) == 30  # header + 29 rows
    errors = read(batch_env.s3, "errors/churn/day.csv.jsonl").splitlines()
    assert len(errors) == 1


def test_duplicate_delivery_scores_once(batch_app, batch_env, lambda_context):
    # GIVEN one upload whose notification is delivered twice (SQS and S3 are at-least-once)
    notification = upload(batch_env.s3, "incoming/churn/dup.csv", churn_csv(10))
    event = sqs_event({"Records": [notification]})
    # WHEN both deliveries are handled
    first = batch_app.handler(event, lambda_context)
    second = batch_app.handler(sqs_event({"Records": [notification]}, message_id="again"), lambda_context)
    # THEN both succeed, but the outputs were written once (one version each in the versioned bucket)
    assert first == second == {"batchItemFailures": []}
    assert versions(batch_env.s3, "scored/churn/dup.csv") == 1
    assert versions(batch_env.s3, "scored/churn/dup.csv.summary.json") == 1
    # AND a new upload of the same key (a new version) is scored again
    again = upload(batch_env.s3, "incoming/churn/dup.csv", churn_csv(12))
    assert batch_app.handler(sqs_event({"Records": [again]}), lambda_context) == {"batchItemFailures": []}
    assert versions(batch_env.s3, "scored/churn/dup.csv.summary.json") == 2
    assert summary(batch_env.s3, "dup.csv")["rows_read"] == 12


def test_poison_file_fails_its_record_with_a_report_and_is_retried(batch_app, batch_env, lambda_context):
    # GIVEN a file whose header matches no feature of the model, next to a good one in the same batch
    poison = upload(batch_env.s3, "incoming/churn/poison.csv", b"foo,bar\n1,2\n3,4\n")
    good = upload(batch_env.s3, "incoming/churn/good.csv", churn_csv(5))
    event = sqs_event({"Records": [poison]}, {"Records": [good]})
    # WHEN the batch is handled
    response = batch_app.handler(event, lambda_context)
    # THEN only the poison message is reported failed (SQS redelivers it, then the DLQ takes it) ...
    assert response == {"batchItemFailures": [{"itemIdentifier": "msg-0"}]}
    assert summary(batch_env.s3, "good.csv")["status"] == "succeeded"
    # ... and its failed report is already written
    report = summary(batch_env.s3, "poison.csv")
    assert report["status"] == "failed" and report["failure"]["reason"]
    # AND the failure is not remembered as done: a redelivery runs the job again (a redrive after a fix works);
    #     a batch whose every record failed makes the invocation fail (powertools), which SQS treats the same way
    with pytest.raises(BatchProcessingError):
        batch_app.handler(sqs_event({"Records": [poison]}), lambda_context)
    assert versions(batch_env.s3, "scored/churn/poison.csv.summary.json") == 2


def test_url_encoded_keys_are_decoded(batch_app, batch_env, lambda_context):
    # GIVEN a key with a space and a non-ASCII character (S3 sends them URL-encoded, spaces as '+')
    key = "incoming/churn/März report 1.csv"
    notification = upload(batch_env.s3, key, churn_csv(4))
    assert "+" in notification["s3"]["object"]["key"] and "%" in notification["s3"]["object"]["key"]
    # WHEN it is handled THEN the output uses the real key
    assert batch_app.handler(sqs_event({"Records": [notification]}), lambda_context) == {"batchItemFailures": []}
    assert summary(batch_env.s3, "März report 1.csv")["input"]["key"] == key


def test_s3_test_event_and_non_batch_keys_are_ignored(batch_app, batch_env, lambda_context, capsys):
    # GIVEN S3's test message (sent when the notification is configured) and a key that cannot be a job
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2025-01-01T00:00:00Z", "Bucket": "b"}
    readme = upload(batch_env.s3, "incoming/churn/README.txt", b"not a data file")
    # WHEN they are handled THEN neither fails (nothing to retry) and nothing is written
    event = sqs_event(test_event, {"Records": [readme]})
    assert batch_app.handler(event, lambda_context) == {"batchItemFailures": []}
    listed = batch_env.s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix="scored/")
    assert listed.get("KeyCount", 0) == 0
    # AND the skipped key is counted
    assert '"InvalidObjects"' in capsys.readouterr().out


def test_large_file_is_fanned_out_once_with_its_chunk_list(batch_app, batch_env, lambda_context):
    # GIVEN a file above the fan-out threshold (6 MiB here) and 5 MiB chunks
    body = churn_csv(BIG_ROWS)
    assert len(body) > 6 * 1024 * 1024
    notification = upload(batch_env.s3, "incoming/churn/big.csv", body)
    # WHEN it is handled, twice
    assert batch_app.handler(sqs_event({"Records": [notification]}), lambda_context) == {"batchItemFailures": []}
    assert batch_app.handler(sqs_event({"Records": [notification]}), lambda_context) == {"batchItemFailures": []}
    # THEN one execution was started, named after the job, with the planned chunks covering the whole file
    sfn = boto3.client("stepfunctions")
    (execution,) = sfn.list_executions(stateMachineArn=batch_env.state_machine_arn)["executions"]
    started = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert execution["name"] == started["job_id"]
    chunks = started["chunks"]
    assert len(chunks) == 2 and chunks[0]["start"] == 0 and chunks[-1]["end"] == len(body)
    assert all(a["end"] == b["start"] for a, b in itertools.pairwise(chunks))
    assert started["object"]["key"] == "incoming/churn/big.csv" and started["max_concurrency"] == 3
    # AND nothing was scored in this function
    assert batch_env.s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix="scored/").get("KeyCount", 0) == 0


def test_state_machine_tasks_score_chunks_and_merge_them(batch_app, fanout_app, batch_env, lambda_context):
    # GIVEN a large file fanned out by the SQS handler
    body = churn_csv(BIG_ROWS)
    notification = upload(batch_env.s3, "incoming/churn/big.csv", body)
    batch_app.handler(sqs_event({"Records": [notification]}), lambda_context)
    sfn = boto3.client("stepfunctions")
    (execution,) = sfn.list_executions(stateMachineArn=batch_env.state_machine_arn)["executions"]
    state = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    # WHEN each chunk task runs, then the merge (what the Distributed Map and the next state do)
    common = {"job_id": state["job_id"], "object": state["object"]}
    results = [
        fanout_app.handler({"action": "chunk", **common, "chunk": c, "chunk_index": i}, lambda_context)
        for i, c in enumerate(state["chunks"])
    ]
    merged = fanout_app.handler({"action": "merge", **common, "results": results}, lambda_context)
    # THEN one scored file holds every row, in order, and the summary counts both chunks
    assert (merged["status"], merged["chunks"], merged["rows_read"]) == ("succeeded", 2, BIG_ROWS)
    scored = read(batch_env.s3, "scored/churn/big.csv").decode().splitlines()
    assert len(scored) == BIG_ROWS + 1
    assert [line.split(",")[0] for line in scored[1:4]] == [
        line.split(",")[0] for line in body.decode().splitlines()[1:4]
    ]
    # AND the temporary parts are gone
    assert batch_env.s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix="tmp/").get("KeyCount", 0) == 0


def test_fail_task_writes_the_failed_summary(fanout_app, batch_env, lambda_context):
    # GIVEN a map that failed (the state machine's Catch passes the error)
    ref = {"bucket": DATA_BUCKET, "key": "incoming/churn/broken.csv", "version_id": "v1", "etag": "e", "size": 10}
    error = {"Error": "States.ExceedToleratedFailureThreshold", "Cause": "1 of 2 items failed"}
    # WHEN the ReportFailure task runs
    result = fanout_app.handler({"action": "fail", "job_id": "j1", "object": ref, "error": error}, lambda_context)
    # THEN the job's summary says it failed and why
    report = summary(batch_env.s3, "broken.csv")
    assert result["status"] == report["status"] == "failed"
    assert report["failure"]["reason"] == "fan_out_failed"
    assert "ExceedToleratedFailureThreshold" in report["failure"]["report"]


def test_unknown_action_is_an_error(fanout_app, lambda_context):
    with pytest.raises(ValueError, match="unknown action"):
        fanout_app.handler({"action": "explode"}, lambda_context)


def capture_lines(text: str) -> list[dict]:
    out = []
    for line in text.splitlines():
        if line.startswith('{"capture":'):
            out.append(json.loads(line))
    return out


@pytest.mark.parametrize(("rate", "max_rows", "expected"), [("1", "1000", 40), ("1", "7", 7), ("0", "1000", 0)])
def test_batch_job_captures_a_capped_sample_of_its_scored_rows_pseudonymized(
    batch_env, lambda_context, monkeypatch, capsys, rate, max_rows, expected
):
    from sklambda.monitoring.capture import Pseudonymizer, create_key_ciphertext

    # GIVEN batch capture on with a sample rate and a per-job cap, and a 40-row file with customer ids
    ciphertext = create_key_ciphertext(boto3.client("kms").create_key()["KeyMetadata"]["Arn"])
    monkeypatch.setenv("SKLAMBDA_PSEUDONYM_KEY_CIPHERTEXT", ciphertext)
    monkeypatch.setenv("SKLAMBDA_BATCH_CAPTURE_SAMPLE_RATE", rate)
    monkeypatch.setenv("SKLAMBDA_BATCH_CAPTURE_MAX_ROWS", max_rows)
    app = _import("app")
    X, _ = sample.churn_data(40, seed=3)
    notification = upload(batch_env.s3, "incoming/churn/sampled.csv", X.to_csv(index=False).encode())
    capsys.readouterr()
    # WHEN the job runs
    assert app.handler(sqs_event({"Records": [notification]}), lambda_context) == {"batchItemFailures": []}
    # THEN the sample (capped) was written as capture lines under the job id, with pseudonyms only
    out = capsys.readouterr().out
    records = capture_lines(out)
    assert len(records) == expected
    assert not any(customer in out for customer in X["customer_id"])
    if records:
        job = summary(batch_env.s3, "sampled.csv")["job_id"]
        assert {r["request_id"] for r in records} == {job}
        p = Pseudonymizer.from_ciphertext(ciphertext)
        by_id = {p.pseudonym(c): c for c in X["customer_id"]}
        assert all(r["features"]["customer_id"] in by_id for r in records)
        assert all(set(r["probabilities"]) == {"no", "yes"} for r in records)


# -- issue 10: nothing lost, nothing broken by one bad record --------------------------------------------------
def handled(app, context, *notifications: dict) -> dict:
    return app.handler(sqs_event(*({"Records": [n]} for n in notifications)), context)


def output(s3, source: str, relative: str) -> tuple[dict, bytes]:
    """The summary and the scored file of one job's outputs."""
    report = json.loads(read(s3, f"scored/{source}/{relative}.summary.json"))
    return report, read(s3, f"scored/{source}/{relative}")


def test_two_models_scoring_files_of_the_same_name_keep_both_outputs(
    batch_app, batch_env, lambda_context, registry_env, churn_build, forest_model, logistic_model
):
    from tests.support import store_built

    # GIVEN two models, credit-default and penguins (different estimators)
    store_built(registry_env, churn_build(forest_model, name="credit-default"), alias="production")
    store_built(registry_env, churn_build(logistic_model, name="penguins"), alias="production")
    body = churn_csv(20)
    # WHEN incoming/credit-default/day1.csv and then incoming/penguins/day1.csv are scored
    assert handled(batch_app, lambda_context, upload(batch_env.s3, "incoming/credit-default/day1.csv", body)) == {
        "batchItemFailures": []
    }
    assert handled(batch_app, lambda_context, upload(batch_env.s3, "incoming/penguins/day1.csv", body)) == {
        "batchItemFailures": []
    }
    # THEN each model has its own scored file and summary, neither replaced by the other
    first, first_scored = output(batch_env.s3, "credit-default", "day1.csv")
    second, second_scored = output(batch_env.s3, "penguins", "day1.csv")
    assert (first["model"]["name"], second["model"]["name"]) == ("credit-default", "penguins")
    assert first["outputs"]["scored"] == "scored/credit-default/day1.csv"
    assert first_scored != second_scored  # two estimators, two sets of probabilities
    assert versions(batch_env.s3, "scored/credit-default/day1.csv") == 1
    # AND nothing was written under the old shared key
    assert versions(batch_env.s3, "scored/day1.csv") == versions(batch_env.s3, "scored/day1.csv.summary.json") == 0


def test_default_alias_and_another_alias_of_one_model_keep_both_outputs(
    batch_app, batch_env, lambda_context, registry_env, churn_build, forest_model
):
    from tests.support import store_built

    # GIVEN churn version 2 behind the alias staging (production is version 1)
    store_built(registry_env, churn_build(forest_model, version="2"), alias="staging")
    body = churn_csv(15)
    # WHEN incoming/churn/X.csv and incoming/churn@staging/X.csv are scored
    for key in ("incoming/churn/X.csv", "incoming/churn@staging/X.csv"):
        assert handled(batch_app, lambda_context, upload(batch_env.s3, key, body)) == {"batchItemFailures": []}
    # THEN both outputs exist, each from its own version
    production, _ = output(batch_env.s3, "churn", "X.csv")
    staging, _ = output(batch_env.s3, "churn@staging", "X.csv")
    assert (production["model"]["version"], staging["model"]["version"]) == ("1", "2")
    assert staging["outputs"]["errors"] is None and staging["outputs"]["scored"] == "scored/churn@staging/X.csv"


def test_a_failed_job_leaves_another_jobs_output_of_the_same_file_name_alone(batch_app, batch_env, lambda_context):
    # GIVEN incoming/churn/R/shared-name.csv scored
    good = upload(batch_env.s3, "incoming/churn/R/shared-name.csv", churn_csv(10))
    assert handled(batch_app, lambda_context, good) == {"batchItemFailures": []}
    before = output(batch_env.s3, "churn", "R/shared-name.csv")
    # WHEN incoming/does-not-exist/R/shared-name.csv fails (no such model) and is reported failed
    bad = upload(batch_env.s3, "incoming/does-not-exist/R/shared-name.csv", churn_csv(10))
    with pytest.raises(BatchProcessingError):
        handled(batch_app, lambda_context, bad)
    # THEN its failed summary is its own ...
    failed = json.loads(read(batch_env.s3, "scored/does-not-exist/R/shared-name.csv.summary.json"))
    assert failed["failure"]["reason"] == "model_not_found"
    # ... and churn's scored file and summary are untouched (not even a new version)
    assert output(batch_env.s3, "churn", "R/shared-name.csv") == before
    assert versions(batch_env.s3, "scored/churn/R/shared-name.csv") == 1
    assert versions(batch_env.s3, "scored/churn/R/shared-name.csv.summary.json") == 1


def test_a_late_redelivery_of_an_older_version_does_not_overwrite_the_newer_result(
    batch_app, batch_env, lambda_context, registry_env, churn_build, logistic_model, capsys, caplog
):
    from tests.support import store_built

    # GIVEN version 1 of incoming/fraud/K.csv, which failed because the model fraud did not exist yet
    first = upload(batch_env.s3, "incoming/fraud/K.csv", churn_csv(8))
    with pytest.raises(BatchProcessingError):
        handled(batch_app, lambda_context, first)
    # AND, once fraud is published, version 2 of the key, scored
    store_built(registry_env, churn_build(logistic_model, name="fraud"), alias="production")
    second = upload(batch_env.s3, "incoming/fraud/K.csv", churn_csv(12, seed=5))
    assert handled(batch_app, lambda_context, second) == {"batchItemFailures": []}
    newer = output(batch_env.s3, "fraud", "K.csv")
    capsys.readouterr()
    # WHEN version 1's notification is delivered again (SQS redelivers)
    response = handled(batch_app, lambda_context, first)
    # THEN the message is done with (nothing to retry) ...
    assert response == {"batchItemFailures": []}
    # ... the scored file and summary are still version 2's, not rewritten
    assert output(batch_env.s3, "fraud", "K.csv") == newer
    assert newer[0]["input"]["version_id"] == second["s3"]["object"]["versionId"] and newer[0]["rows_read"] == 12
    assert versions(batch_env.s3, "scored/fraud/K.csv.summary.json") == 2  # version 1's failure, version 2's
    # AND version 1's delivery is reported as superseded: a record beside the summary, a metric and a log line
    record = json.loads(read(batch_env.s3, "scored/fraud/K.csv.superseded.json"))
    assert record["status"] == "superseded"
    assert record["input"]["sequencer"] == first["s3"]["object"]["sequencer"]
    assert record["superseded_by"] == {"sequencer": second["s3"]["object"]["sequencer"]}
    assert '"SupersededJobs"' in capsys.readouterr().out
    assert any(r.getMessage().startswith("batch job superseded") for r in caplog.records)


def test_a_job_that_crashes_ends_with_a_failed_summary_and_is_retried(
    batch_app, batch_env, lambda_context, monkeypatch, capsys
):
    from sklambda.serving.scoring import Scorer

    # GIVEN a model that raises something unexpected while scoring (not a row's problem)
    def broken(self, frame):
        raise RuntimeError("a bug outside row handling")

    monkeypatch.setattr(Scorer, "score_arrays", broken)
    notification = upload(batch_env.s3, "incoming/churn/crash.csv", churn_csv(10))
    # WHEN the job runs THEN its record fails (SQS redelivers it, then the dead-letter queue takes it) ...
    with pytest.raises(BatchProcessingError):
        handled(batch_app, lambda_context, notification)
    # ... but not before a failed summary says why, with the counts so far
    report = summary(batch_env.s3, "crash.csv")
    assert report["status"] == "failed" and report["failure"]["reason"] == "unexpected_error"
    assert "RuntimeError: a bug outside row handling" in report["failure"]["report"]
    assert report["rows_read"] == report["rows_scored"] + report["rows_rejected"]
    # AND it counts as a failed job
    assert '"FailedJobs"' in capsys.readouterr().out


def test_fanned_out_merge_of_an_older_version_publishes_nothing(batch_app, fanout_app, batch_env, lambda_context):
    # GIVEN the chunks of an older upload's fan-out, and a newer upload of the key already scored
    old = upload(batch_env.s3, "incoming/churn/late.csv", churn_csv(40))
    ref = {
        "bucket": DATA_BUCKET,
        "key": "incoming/churn/late.csv",
        "version_id": old["s3"]["object"]["versionId"],
        "etag": old["s3"]["object"]["eTag"],
        "size": old["s3"]["object"]["size"],
        "sequencer": old["s3"]["object"]["sequencer"],
    }
    common = {"job_id": "late-job", "object": ref}
    chunk = {"start": 0, "end": ref["size"]}
    result = fanout_app.handler({"action": "chunk", **common, "chunk": chunk, "chunk_index": 0}, lambda_context)
    new = upload(batch_env.s3, "incoming/churn/late.csv", churn_csv(25, seed=8))
    assert handled(batch_app, lambda_context, new) == {"batchItemFailures": []}
    # WHEN the older job's merge runs
    merged = fanout_app.handler({"action": "merge", **common, "results": [result]}, lambda_context)
    # THEN it is superseded: the newer outputs stay, and the temporary parts are gone
    assert merged["status"] == "superseded" and merged["rows_read"] == 40
    assert summary(batch_env.s3, "late.csv")["rows_read"] == 25
    assert versions(batch_env.s3, "scored/churn/late.csv") == 1
    assert batch_env.s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix="tmp/").get("KeyCount", 0) == 0
