"""The feedback function (functions/feedback/app.py) with events from events/ and moto: the route, label files
through SQS (quarantine, summary, idempotency), and erasure of the labels of an erased subject.

The function's environment is template.yaml's (FeedbackFunction's variables, parameters at their defaults), with
the test's bucket and key names for the resources it references.
"""

from __future__ import annotations

import copy
import functools
import gzip
import importlib.util
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType, SimpleNamespace
from urllib.parse import quote_plus

import boto3
import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from cfnlint.decode import cfn_yaml

from sklambda.monitoring.capture import Pseudonymizer
from sklambda.monitoring.ground_truth.store import read_labels
from sklambda.monitoring.privacy import erase_subject
from tests.support import call, load_event

ROOT = Path(__file__).resolve().parents[2]
FEEDBACK_APP = ROOT / "functions" / "feedback" / "app.py"
SQS_EVENT = ROOT / "events" / "feedback_sqs_event.json"
DATA_BUCKET = "sklambda-data-test"
NOW = datetime.now(UTC)
WINDOW = (NOW - timedelta(days=2), NOW + timedelta(days=1))


@functools.cache
def _template() -> dict:
    """template.yaml parsed once per process (read only)."""
    return json.loads(json.dumps(cfn_yaml.load(str(ROOT / "template.yaml"))))


def template_environment(resources: dict[str, str]) -> dict[str, str]:
    """FeedbackFunction's variables as template.yaml sets them: parameters at their defaults, resource references
    from `resources` (logical id or `Id.Attribute` -> value)."""
    template = _template()
    variables = template["Resources"]["FeedbackFunction"]["Properties"]["Environment"]["Variables"]
    out = {}
    for name, value in variables.items():
        if isinstance(value, dict) and "Ref" in value:
            ref = value["Ref"]
            value = template["Parameters"][ref]["Default"] if ref in template["Parameters"] else resources[ref]
        elif isinstance(value, dict) and "Fn::GetAtt" in value:
            value = resources[".".join(value["Fn::GetAtt"])]
        out[name] = str(value)
    return out


@pytest.fixture
def feedback_env(function_env, published, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=DATA_BUCKET)
    s3.put_bucket_versioning(Bucket=DATA_BUCKET, VersioningConfiguration={"Status": "Enabled"})
    resources = {
        "ModelBucket": function_env.bucket,
        "SigningKey.Arn": function_env.signing_key_id,
        "DataBucket": DATA_BUCKET,
    }
    for name, value in template_environment(resources).items():
        monkeypatch.setenv(name, value)
    return SimpleNamespace(s3=s3, card=published)


def _import() -> ModuleType:
    """A fresh import of the function, as a new Lambda container would do."""
    spec = importlib.util.spec_from_file_location("feedback_app", FEEDBACK_APP)
    module = importlib.util.module_from_spec(spec)
    sys.modules["feedback_app"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def feedback_app(feedback_env) -> ModuleType:
    return _import()


def post(app: ModuleType, context, body: object = ..., *, name: str = "churn", raw: str | None = None):
    event = load_event("feedback.json", body=body, raw_body=raw)
    event["path"] = f"/models/{name}/feedback"
    event["pathParameters"] = {"name": name}
    return call(app, event, context)


def labels_of(s3, model: str = "churn") -> dict[str, object]:
    frame = read_labels(s3, DATA_BUCKET, model, *WINDOW).frame
    return dict(zip(frame["inference_id"], frame["label"], strict=True))


def ground_truth_keys(s3, prefix: str = "ground-truth/model=churn/") -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix=prefix).get("Contents", []))


# --- the route -----------------------------------------------------------------------------------------------------
def test_the_sample_request_is_stored_once_and_a_retry_rewrites_the_same_object(
    feedback_app, feedback_env, lambda_context
):
    # GIVEN the sample request (one label by inference_id with a time, one by id)
    # WHEN it is posted
    status, body = call(feedback_app, load_event("feedback.json"), lambda_context)
    # THEN both labels are stored in one object of the arrival day's partition
    assert status == 201
    assert (body["model"], body["version"], body["accepted"], body["stored"]) == ("churn", "1", 2, True)
    assert body["repeat"] is False
    assert body["key"].startswith(f"ground-truth/model=churn/dt={NOW.date().isoformat()}/")
    assert labels_of(feedback_env.s3) == {"order-1001": "yes", "order-1002": "no"}
    # WHEN the same request is retried
    status, again = call(feedback_app, load_event("feedback.json"), lambda_context)
    # THEN it is answered 200 as a repeat, under the same key, and no other object is written
    assert (status, again["stored"], again["repeat"], again["key"]) == (200, True, True, body["key"])
    assert ground_truth_keys(feedback_env.s3) == [body["key"]]


def test_a_corrected_label_is_the_newer_one(feedback_app, feedback_env, lambda_context):
    post(feedback_app, lambda_context, {"labels": [{"id": "a-1", "label": "no", "time": "2026-11-01T00:00:00Z"}]})
    status, _ = post(
        feedback_app, lambda_context, {"labels": [{"id": "a-1", "label": "yes", "time": "2026-11-02T00:00:00Z"}]}
    )
    assert status == 201
    assert labels_of(feedback_env.s3) == {"a-1": "yes"}


def test_an_unknown_model_is_a_404_shaped_like_predicts(feedback_app, feedback_env, lambda_context):
    status, body = post(feedback_app, lambda_context, {"labels": [{"id": "a", "label": "no"}]}, name="nope")
    assert status == 404
    assert body["error"]["code"] == "model_not_found" and "nope" in body["error"]["message"]
    assert ground_truth_keys(feedback_env.s3, "ground-truth/") == []


def test_invalid_labels_are_a_422_naming_each_row_and_nothing_is_stored(feedback_app, feedback_env, lambda_context):
    # GIVEN a request with a wrong class, a wrong label type, a bad time and a duplicate id
    labels = [
        {"id": "a", "label": "maybe"},
        {"id": "b", "label": [1]},
        {"id": "c", "label": "no", "time": "2026-11-30"},
        {"id": "a", "label": "yes"},
        {"id": "d", "label": "yes"},
    ]
    status, body = post(feedback_app, lambda_context, {"labels": labels})
    # THEN every problem is listed with its row and field, and no label is stored (all or nothing)
    assert status == 422
    assert body["error"]["code"] == "invalid_input"
    assert [(d["row"], d["field"]) for d in body["error"]["details"]] == [
        (0, "label"),
        (1, "label"),
        (2, "time"),
        (3, "inference_id"),
    ]
    assert "row 0" in body["error"]["details"][3]["message"]
    assert ground_truth_keys(feedback_env.s3, "ground-truth/") == []


@pytest.mark.parametrize(
    ("raw", "status"),
    [("{not json", 400), ('{"labels": "yes"}', 400), ("", 400), ('{"labels": []}', 422)],
    ids=["malformed", "labels-not-a-list", "empty-body", "no-labels"],
)
def test_a_malformed_request_is_a_client_error(feedback_app, feedback_env, lambda_context, raw, status):
    got, body = post(feedback_app, lambda_context, raw=raw)
    assert got == status and body["error"]["message"]


def test_too_many_labels_or_too_large_a_body_is_a_413(feedback_env, lambda_context, monkeypatch):
    # GIVEN a function limited to 2 labels and 300 bytes per request
    monkeypatch.setenv("SKLAMBDA_FEEDBACK_MAX_LABELS", "2")
    monkeypatch.setenv("SKLAMBDA_MAX_BODY_BYTES", "300")
    app = _import()
    three = {"labels": [{"id": f"r{i}", "label": "no"} for i in range(3)]}
    assert post(app, lambda_context, three)[0] == 413
    big = {"labels": [{"id": "r" * 60, "label": "no", "note": "x" * 300}]}
    status, body = post(app, lambda_context, big)
    assert status == 413 and body["error"]["code"] == "payload_too_large"


def test_labels_are_checked_against_the_card_of_the_alias_asked_for(feedback_app, feedback_env, lambda_context):
    event = load_event("feedback.json", query={"alias": "staging"})
    status, body = call(feedback_app, event, lambda_context)
    assert status == 404 and "staging" in body["error"]["message"]


# --- files ---------------------------------------------------------------------------------------------------------
def upload(s3, key: str, body: bytes) -> dict:
    """Put an object; the S3 notification record S3 would send for it (key URL-encoded)."""
    put = s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=body)
    return {
        "eventName": "ObjectCreated:Put",
        "eventTime": NOW.isoformat().replace("+00:00", "Z"),
        "s3": {
            "bucket": {"name": DATA_BUCKET},
            "object": {"key": quote_plus(key, safe="/"), "size": len(body), "versionId": put["VersionId"]},
        },
    }


def sqs_event(*records: dict) -> dict:
    """The sample event from events/ with one message holding `records`."""
    event = json.loads(SQS_EVENT.read_text())
    message = copy.deepcopy(event["Records"][0])
    message["body"] = json.dumps({"Records": list(records)})
    return {"Records": [message]}


def summary_of(s3, relative: str) -> dict:
    key = f"ground-truth/summaries/churn/{relative}.summary.json"
    return json.loads(s3.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read())


CSV = b"""inference_id,label,time
r-1,yes,2026-11-29T10:00:00Z
r-2,maybe,
r-3,no,
r-1,no,
r-4,yes,yesterday
"r-5",no,
"""


def test_the_sample_sqs_event_is_an_s3_notification_for_feedback():
    body = json.loads(json.loads(SQS_EVENT.read_text())["Records"][0]["body"])
    (record,) = body["Records"]
    assert record["eventName"].startswith("ObjectCreated") and record["s3"]["object"]["key"].startswith("feedback/")


def test_a_label_files_columns_it_does_not_read_are_named_in_its_summary(feedback_app, feedback_env, lambda_context):
    s3 = feedback_env.s3
    # GIVEN a CSV label file whose time column is misspelt and which carries a note column
    text = b"inference_id,label,tme,note\nr-1,yes,2026-11-30T08:00:00Z,checked\n"
    event = sqs_event(upload(s3, "feedback/churn/typo.csv", text))
    # WHEN its notification is handled
    assert feedback_app.handler(event, lambda_context) == {"batchItemFailures": []}
    # THEN its label is stored (extra columns are allowed in files), and the summary names the columns not read
    assert labels_of(s3) == {"r-1": "yes"}
    assert summary_of(s3, "typo.csv")["ignored_columns"] == ["tme", "note"]


def test_a_label_file_stores_its_good_rows_quarantines_the_bad_ones_and_writes_a_summary(
    feedback_app, feedback_env, lambda_context
):
    s3 = feedback_env.s3
    # GIVEN a CSV label file with an unknown class, a duplicate id and a bad time among good rows
    event = sqs_event(upload(s3, "feedback/churn/day one.csv", CSV))
    # WHEN its notification is handled
    assert feedback_app.handler(event, lambda_context) == {"batchItemFailures": []}
    # THEN the good rows are labels
    assert labels_of(s3) == {"r-1": "yes", "r-3": "no", "r-5": "no"}
    # AND each bad row is in the errors file with its line and field
    errors = s3.get_object(Bucket=DATA_BUCKET, Key="ground-truth/errors/churn/day one.csv.jsonl")["Body"].read()
    lines = [json.loads(line) for line in errors.splitlines()]
    assert [(e["line"], e["reasons"][0]["field"]) for e in lines] == [(3, "label"), (5, "inference_id"), (6, "time")]
    assert "row 2" in lines[1]["reasons"][0]["message"] and lines[0]["raw"] == "r-2,maybe,"
    # AND the summary counts rows by outcome and reason and names what was written
    summary = summary_of(s3, "day one.csv")
    assert (summary["status"], summary["rows_read"], summary["rows_accepted"], summary["rows_rejected"]) == (
        "succeeded",
        6,
        3,
        3,
    )
    assert summary["rejected_by_reason"] == {"unknown_class": 1, "duplicate_id": 1, "bad_time": 1}
    assert summary["model"] == {"name": "churn", "version": "1"}
    assert summary["outputs"]["labels"] == ground_truth_keys(s3) and summary["objects_created"] == 1


def test_a_label_file_processed_again_stores_nothing_new(feedback_app, feedback_env, lambda_context):
    s3 = feedback_env.s3
    event = sqs_event(upload(s3, "feedback/churn/day.csv", CSV))
    feedback_app.handler(event, lambda_context)
    first = ground_truth_keys(s3)
    # WHEN SQS delivers the same notification again
    assert feedback_app.handler(event, lambda_context) == {"batchItemFailures": []}
    # THEN no label object is added and the summary says none was created
    assert ground_truth_keys(s3) == first
    assert summary_of(s3, "day.csv")["objects_created"] == 0


def test_a_large_gzipped_json_lines_file_is_stored_in_chunks(feedback_env, lambda_context, monkeypatch):
    # GIVEN a function that stores at most 40 labels per object, and 100 JSON Lines labels gzipped
    monkeypatch.setenv("SKLAMBDA_FEEDBACK_CHUNK_LABELS", "40")
    app = _import()
    rows = b"".join(
        json.dumps({"id": f"j-{i}", "label": "yes" if i % 2 else "no"}).encode() + b"\n" for i in range(100)
    )
    app.handler(sqs_event(upload(feedback_env.s3, "feedback/churn/big.jsonl.gz", gzip.compress(rows))), lambda_context)
    # THEN the 100 labels are in three objects
    summary = summary_of(feedback_env.s3, "big.jsonl.gz")
    assert (summary["rows_accepted"], len(summary["outputs"]["labels"])) == (100, 3)
    assert len(labels_of(feedback_env.s3)) == 100


def test_a_file_for_an_unknown_model_fails_its_record_with_a_failed_summary(feedback_app, feedback_env, lambda_context):
    s3 = feedback_env.s3
    event = sqs_event(upload(s3, "feedback/ghost/a.csv", CSV))
    # WHEN the file names a model the registry does not have
    # THEN the record fails (the whole batch of one: SQS retries, then the dead-letter queue) ...
    with pytest.raises(BatchProcessingError):
        feedback_app.handler(event, lambda_context)
    # ... and the summary says why; nothing is stored
    summary = json.loads(
        s3.get_object(Bucket=DATA_BUCKET, Key="ground-truth/summaries/ghost/a.csv.summary.json")["Body"].read()
    )
    assert (summary["status"], summary["failure"]["reason"]) == ("failed", "model_not_found")
    assert ground_truth_keys(s3, "ground-truth/model=") == []


def test_a_csv_without_a_label_column_fails_and_a_key_that_is_not_a_label_file_is_skipped(
    feedback_app, feedback_env, lambda_context
):
    s3 = feedback_env.s3
    bad_header = sqs_event(upload(s3, "feedback/churn/x.csv", b"inference_id,outcome\na,yes\n"))
    with pytest.raises(BatchProcessingError):
        feedback_app.handler(bad_header, lambda_context)
    assert summary_of(s3, "x.csv")["failure"]["reason"] == "bad_header"
    skipped = sqs_event(upload(s3, "feedback/churn/notes.txt", b"hello"), upload(s3, "feedback/loose.csv", b"a"))
    assert feedback_app.handler(skipped, lambda_context) == {"batchItemFailures": []}
    assert ground_truth_keys(s3, "ground-truth/model=") == []


def test_a_corrupt_gzip_file_fails_with_a_summary_listing_what_was_stored(feedback_env, lambda_context, monkeypatch):
    # GIVEN chunks of 10 labels and a gzip file cut short after its first few hundred rows
    monkeypatch.setenv("SKLAMBDA_FEEDBACK_CHUNK_LABELS", "10")
    app = _import()
    rows = b"".join(b'{"id": "g-%d", "label": "no"}\n' % i for i in range(5000))
    cut = gzip.compress(rows)[:400]
    # WHEN it is handled
    with pytest.raises(BatchProcessingError):
        app.handler(sqs_event(upload(feedback_env.s3, "feedback/churn/cut.jsonl.gz", cut)), lambda_context)
    # THEN the summary says the file is corrupt and lists the label objects stored before the break
    summary = summary_of(feedback_env.s3, "cut.jsonl.gz")
    assert (summary["status"], summary["failure"]["reason"]) == ("failed", "corrupt_input")
    assert sorted(summary["outputs"]["labels"]) == ground_truth_keys(feedback_env.s3) != []
    assert summary["rows_accepted"] == len(labels_of(feedback_env.s3)) < 5000


# --- erasure -------------------------------------------------------------------------------------------------------
def test_erasing_a_subject_removes_the_labels_of_its_captured_predictions(feedback_app, feedback_env, lambda_context):
    s3 = feedback_env.s3
    p = Pseudonymizer(b"k" * 32)

    def capture(subject: str, inference_id: str) -> bytes:
        record = {"model": "churn", "features": {"customer_id": p.pseudonym(subject)}, "inference_id": inference_id}
        return json.dumps(record).encode() + b"\n"

    # GIVEN captures of C1 (ids p-1, p-2) and C2 (p-3), and labels for all three plus one never captured
    s3.put_object(
        Bucket=DATA_BUCKET,
        Key="capture/model=churn/dt=2026-11-29/part-0",
        Body=capture("C1", "p-1") + capture("C2", "p-3") + capture("C1", "p-2"),
    )
    post(feedback_app, lambda_context, {"labels": [{"id": "p-1", "label": "yes"}, {"id": "p-3", "label": "no"}]})
    post(feedback_app, lambda_context, {"labels": [{"id": "p-2", "label": "no"}]})
    post(feedback_app, lambda_context, {"labels": [{"id": "p-9", "label": "no"}]})
    # WHEN C1 is erased
    report = erase_subject(DATA_BUCKET, "churn", "C1", [p])
    # THEN C1's labels are gone (one object rewritten, one emptied and deleted), the others stay
    assert labels_of(s3) == {"p-3": "no", "p-9": "no"}
    assert (report.labels_removed, report.label_objects_rewritten, report.label_objects_deleted) == (2, 1, 1)
    assert report.records_removed == 2
    # AND no version of any label object still holds C1's ids (the bucket is versioned)
    for v in s3.list_object_versions(Bucket=DATA_BUCKET, Prefix="ground-truth/").get("Versions", []):
        body = s3.get_object(Bucket=DATA_BUCKET, Key=v["Key"], VersionId=v["VersionId"])["Body"].read()
        assert b'"p-1"' not in body and b'"p-2"' not in body
    # AND the counts are in the report the CLI prints
    assert report.to_dict()["labels_removed"] == 2


# --- CLI -----------------------------------------------------------------------------------------------------------
def test_cli_feedback_send_uploads_a_label_file_under_the_models_folder(feedback_env, tmp_path, capsys):
    from sklambda_infra import cli

    # GIVEN a label file and the stack's data bucket
    path = tmp_path / "week 48.csv"
    path.write_bytes(CSV)
    # WHEN it is sent for churn
    assert cli.main(["feedback", "send", "churn", str(path), "--data-bucket", DATA_BUCKET]) == 0
    # THEN it is under feedback/churn/ with its name, where the bucket's notification picks it up
    body = feedback_env.s3.get_object(Bucket=DATA_BUCKET, Key="feedback/churn/week 48.csv")["Body"].read()
    assert body == CSV
    # AND a file that is not CSV or JSON Lines is refused before anything is uploaded
    other = tmp_path / "labels.xlsx"
    other.write_bytes(b"x")
    assert cli.main(["feedback", "send", "churn", str(other), "--data-bucket", DATA_BUCKET]) != 0
    assert "unknown file type" in capsys.readouterr().err
    assert ground_truth_keys(feedback_env.s3, "feedback/churn/labels") == []
