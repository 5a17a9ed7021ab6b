"""Prediction capture on the local stack: a prediction over the local API becomes a pseudonymized capture object
in moto S3 (function log line -> the template's subscription filter -> moto's Firehose), and `sklambda privacy
erase` removes the subject from it."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest

from sklambda import aws, config
from sklambda.monitoring.capture import Pseudonymizer
from sklambda.monitoring.windows import capture_prefix
from sklambda_infra import cli
from sklambda_infra.local import LocalStack
from tests.support import Log, event_body, point_at_stack, publish_to_stack

ROOT = Path(__file__).resolve().parents[2]


def predict(stack, details) -> int:
    request = urllib.request.Request(
        f"{stack.api_url}/models/churn/predict",
        data=json.dumps(event_body("predict.json")).encode(),
        headers={"x-api-key": details["api_key"], "content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.status


def wait_for_objects(s3, bucket: str, timeout_s: float = 10.0) -> list[dict]:
    """Capture lines leave through the worker's log and the subscription forwarder, after the response."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=config.CAPTURE_PREFIX).get("Contents", [])
        if listing:
            return listing
        time.sleep(0.1)
    return []


@pytest.mark.e2e
def test_prediction_over_the_local_api_is_captured_pseudonymized_and_erasable(
    nothing_captured, churn, logistic_model, monkeypatch
):
    stack = nothing_captured
    details = stack.details
    # GIVEN the local stack generated the wrapped key, gave it to the function, and subscribed its log group
    ciphertext = details["generated_parameters"]["PseudonymKeyCiphertext"]
    (capture,) = details["captures"]
    env = details["functions"]["PredictFunction"]["environment"]
    assert env[config.PSEUDONYM_KEY_CIPHERTEXT] == ciphertext
    subscribed = {(s["filter"], s["stream"]) for s in details["log_subscriptions"]}
    assert ("PredictCaptureSubscription", capture["stream"]) in subscribed
    point_at_stack(stack, monkeypatch)
    publish_to_stack(stack, churn, logistic_model)
    # WHEN the sample rows are predicted through the local API
    assert predict(stack, details) == 200
    # THEN a capture object holds one record per row, with pseudonyms and no raw customer id
    s3 = boto3.client("s3", endpoint_url=stack.aws_endpoint_url)
    listing = wait_for_objects(s3, capture["bucket"])
    data = b"".join(s3.get_object(Bucket=capture["bucket"], Key=o["Key"])["Body"].read() for o in listing)
    records = [json.loads(line) for line in data.splitlines()]
    assert len(records) == 2
    # AND it is partitioned per model and day, as Firehose's dynamic partitioning does in the cloud
    day = datetime.now(UTC).date()
    assert [o["Key"].startswith(capture_prefix("churn", day)) for o in listing] == [True] * len(listing)
    assert b"C0100042" not in data and b"C0100043" not in data
    pseudonymizer = Pseudonymizer.from_ciphertext(ciphertext)
    assert records[0]["features"]["customer_id"] == pseudonymizer.pseudonym("C0100042")
    # AND `sklambda privacy erase` removes exactly that subject's record
    code = cli.main(
        [
            "--endpoint-url",
            stack.aws_endpoint_url,
            "privacy",
            "erase",
            "--model",
            "churn",
            "--subject",
            "C0100042",
            "--data-bucket",
            capture["bucket"],
            "--key-ciphertext",
            ciphertext,
            "--prefix",
            capture["prefix"],
        ]
    )
    assert code == 0
    after = b"".join(
        s3.get_object(Bucket=capture["bucket"], Key=o["Key"])["Body"].read()
        for o in s3.list_objects_v2(Bucket=capture["bucket"], Prefix=config.CAPTURE_PREFIX)["Contents"]
    )
    left = [json.loads(line) for line in after.splitlines()]
    assert [r["features"]["customer_id"] for r in left] == [pseudonymizer.pseudonym("C0100043")]
    aws.reset_clients()


@pytest.mark.e2e
def test_a_failing_capture_stream_does_not_fail_predictions(churn, logistic_model, monkeypatch):
    # A stack of its own: the test deletes the capture stream, which the shared stack keeps for the other tests.
    log = Log()
    with LocalStack(ROOT, stack_name="capture-down", aws_port=0, api_port=0, log=log) as stack:
        details = stack.details
        point_at_stack(stack, monkeypatch)
        publish_to_stack(stack, churn, logistic_model)
        # GIVEN the capture stream is gone (deleted, throttled: Firehose does not take the records)
        (capture,) = details["captures"]
        boto3.client("firehose", endpoint_url=stack.aws_endpoint_url).delete_delivery_stream(
            DeliveryStreamName=capture["stream"]
        )
        # WHEN predictions are made
        statuses = [predict(stack, details) for _ in range(3)]
        stack.forwarder.flush()
        # THEN every prediction succeeds, and the undelivered records are reported by the log delivery
        assert statuses == [200, 200, 200]
        assert any("records not delivered" in line for line in log)
    aws.reset_clients()
