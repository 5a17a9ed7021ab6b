"""What the CLI says when it fails: a message and an exit code for a known error, a traceback for a bug."""

from __future__ import annotations

import io

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from sklambda.errors import FieldError, ModelNotFound, PublishRejected
from sklambda_infra import cli_errors


def client_error(code: str, operation: str = "ListObjectsV2", message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@pytest.mark.parametrize(
    ("error", "expected", "code"),
    [
        (ModelNotFound("unknown model 'churn'"), "error: unknown model 'churn'", 2),
        (client_error("InvalidAccessKeyId"), "error: AWS refused the credentials (InvalidAccessKeyId on List", 1),
        (client_error("SignatureDoesNotMatch"), "error: AWS refused the credentials (SignatureDoesNotMatch", 1),
        (client_error("AccessDenied", "PutObject", "no"), "error: access denied to PutObject (no)", 1),
        (client_error("NoSuchBucket"), "error: there is no bucket", 2),
        (client_error("NotFoundException", "Sign", "key gone"), "error: the signing key cannot be used", 2),
        (client_error("SlowDown", "GetObject", "later"), "error: AWS call GetObject failed: SlowDown: later", 1),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:4566/b?x=1"),
         "error: cannot reach http://127.0.0.1:4566: is the local stack running?", 3),
        (EndpointConnectionError(endpoint_url="https://s3.eu-west-1.amazonaws.com/b"),
         "error: cannot reach https://s3.eu-west-1.amazonaws.com: check the network", 1),
        (NoCredentialsError(), "error: no AWS credentials found", 2),
        (FileNotFoundError(2, "No such file or directory", "/x/c.md"), "error: No such file or directory: /x/c.md", 2),
        (KeyboardInterrupt(), "interrupted", 130),
    ],
)  # fmt: skip
def test_known_errors_are_one_message_and_an_exit_code_without_a_traceback(error, expected, code):
    # GIVEN an error a user can cause (or fix) WHEN it reaches the CLI's handler
    out = io.StringIO()
    exit_code = cli_errors.handle(error, stream=out)
    # THEN it is a short message naming the cause, with its exit code, and no traceback
    assert out.getvalue().startswith(expected), out.getvalue()
    assert exit_code == code and "Traceback" not in out.getvalue()


def test_a_refusal_lists_its_problems_and_counts_the_rest():
    # GIVEN a refusal with more per-field problems than are listed
    problems = [FieldError(row=i, field="age", message="not a number") for i in range(25)]
    out = io.StringIO()
    # WHEN reported
    cli_errors.handle(PublishRejected("[data] 25 rows refused", errors=problems), stream=out)
    # THEN the first 20 are listed and the rest counted
    lines = out.getvalue().splitlines()
    assert lines[0] == "error: [data] 25 rows refused" and len(lines) == 1 + 20 + 1
    assert lines[-1] == "  ... and 5 more"


def test_a_bug_shows_its_traceback_and_says_it_is_a_bug():
    # GIVEN an exception no rule knows (a bug)
    try:
        {}["missing"]
    except KeyError as e:
        error = e
    out = io.StringIO()
    # WHEN it reaches the handler
    exit_code = cli_errors.handle(error, stream=out)
    # THEN its traceback is printed, then a line calling it a bug, and the exit code is EX_SOFTWARE
    text = out.getvalue()
    assert text.startswith("Traceback (most recent call last):") and "KeyError: 'missing'" in text
    assert text.splitlines()[-1].startswith("error: unexpected KeyError: this is a bug in sklambda")
    assert exit_code == 70


def test_debug_adds_the_traceback_of_a_known_error():
    # GIVEN a known error raised from somewhere
    try:
        raise ModelNotFound("unknown model 'churn'")
    except ModelNotFound as e:
        error = e
    out = io.StringIO()
    # WHEN reported with --debug
    exit_code = cli_errors.handle(error, debug=True, stream=out)
    # THEN the traceback comes first and the message last, with the same exit code
    assert out.getvalue().startswith("Traceback") and out.getvalue().endswith("error: unknown model 'churn'\n")
    assert exit_code == 2
