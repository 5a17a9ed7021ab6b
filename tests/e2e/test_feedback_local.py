"""Ground truth in on the local stack: labels POSTed to /models/churn/feedback through the local API gateway (API
key checked), and a label file copied under feedback/churn/ (S3 notification -> FeedbackQueue -> the feedback
function), both read back with `read_labels`."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from sklambda.monitoring.ground_truth.store import read_labels
from sklambda_infra.local import LocalStack


def post_labels(stack: LocalStack, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        f"{stack.api_url}/models/churn/feedback",
        data=json.dumps(body).encode(),
        headers={"x-api-key": stack.details["api_key"], "content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status, json.loads(response.read())


def wait_for_object(s3, bucket: str, key: str, timeout_s: float) -> bytes:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            if time.monotonic() > deadline:
                raise AssertionError(f"s3://{bucket}/{key} did not appear in {timeout_s} s") from None
            time.sleep(0.2)


@pytest.mark.e2e
def test_labels_posted_and_uploaded_on_the_local_stack_are_read_back(project_stack):
    stack = project_stack
    bucket = stack.details["buckets"]["DataBucket"]
    s3 = stack.client("s3")
    # GIVEN the route and the file notification wired from template.yaml
    (source,) = [s for s in stack.details["sqs_event_sources"] if s["function"] == "FeedbackFunction"]
    assert source["report_batch_item_failures"]
    # WHEN two labels are posted through the local API with its key
    status, answer = post_labels(stack, {"labels": [{"id": "e2e-1", "label": "yes"}, {"id": "e2e-2", "label": "no"}]})
    # THEN they are stored
    assert (status, answer["accepted"], answer["stored"]) == (201, 2, True)
    # WHEN a CSV label file (one bad row) is uploaded under feedback/churn/
    s3.put_object(Bucket=bucket, Key="feedback/churn/e2e.csv", Body=b"inference_id,label\ne2e-3,no\ne2e-4,maybe\n")
    # THEN its summary appears, with the good row stored and the bad one rejected
    raw = wait_for_object(s3, bucket, "ground-truth/summaries/churn/e2e.csv.summary.json", timeout_s=60)
    summary = json.loads(raw)
    assert (summary["status"], summary["rows_accepted"], summary["rows_rejected"]) == ("succeeded", 1, 1)
    # AND read_labels finds all three labels
    now = datetime.now(UTC)
    frame = read_labels(s3, bucket, "churn", now - timedelta(days=1), now + timedelta(days=1)).frame
    labels = dict(zip(frame["inference_id"], frame["label"], strict=True))
    assert {k: v for k, v in labels.items() if k.startswith("e2e-")} == {"e2e-1": "yes", "e2e-2": "no", "e2e-3": "no"}
