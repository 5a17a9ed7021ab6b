"""Prediction capture on the local stack: a prediction over the local API becomes a pseudonymized capture object
in moto S3 (through moto's Firehose), and `sklambda privacy erase` removes the subject from it."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import boto3
import pytest
from conftest import event_body, point_at_stack, publish_to_stack

from sklambda import aws, config
from sklambda.capture import Pseudonymizer
from sklambda.monitoring import capture_prefix
from sklambda_infra import cli
from sklambda_infra.local import LocalStack

ROOT = Path(__file__).resolve().parents[1]


class Log(list):
    def __call__(self, line: str) -> None:
        self.append(line)


@pytest.mark.e2e
def test_prediction_over_the_local_api_is_captured_pseudonymized_and_erasable(churn, logistic_model, monkeypatch):
    with LocalStack(ROOT, stack_name="capture-e2e", aws_port=0, api_port=0, log=Log()) as stack:
        details = stack.details
        # GIVEN the local stack generated the wrapped key and gave the function the stream
        ciphertext = details["generated_parameters"]["PseudonymKeyCiphertext"]
        (capture,) = details["captures"]
        env = details["functions"]["PredictFunction"]["environment"]
        assert env[config.CAPTURE_STREAM] == capture["stream"]
        assert env[config.PSEUDONYM_KEY_CIPHERTEXT] == ciphertext
        point_at_stack(stack, monkeypatch)
        publish_to_stack(stack, churn, logistic_model)
        # WHEN the sample rows are predicted through the local API
        body = event_body("predict.json")
        request = urllib.request.Request(
            f"{stack.api_url}/models/churn/predict",
            data=json.dumps(body).encode(),
            headers={"x-api-key": details["api_key"], "content-type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            assert response.status == 200
        # THEN a capture object holds one record per row, with pseudonyms and no raw customer id
        s3 = boto3.client("s3", endpoint_url=stack.aws_endpoint_url)
        listing = s3.list_objects_v2(Bucket=capture["bucket"], Prefix=config.CAPTURE_PREFIX)["Contents"]
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
