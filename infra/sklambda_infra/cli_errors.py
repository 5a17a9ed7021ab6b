"""What the `sklambda` command says when it fails: one place that turns known errors into a message and an exit code.

A user mistake (a wrong path, a file that is not a model, an unknown model or version, a stack that is not running,
credentials AWS refuses) is a short message on stderr and a non-zero exit, never a traceback. Anything else is a
bug: its traceback is printed, with a line saying so. `--debug` prints the traceback of known errors too.

Exit codes: 2 the command was refused (bad input, unknown model, missing configuration), 1 AWS or the environment
failed (unreachable endpoint, refused credentials, a failed build), 3 the local stack is not running (as
`sklambda local status` says), 130 interrupted (128 + SIGINT, as shells report it), 70 a bug (EX_SOFTWARE,
sysexits.h).
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import TextIO
from urllib.parse import urlsplit

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
)

from sklambda.errors import SklambdaError

REFUSED, FAILED, NOT_RUNNING, INTERRUPTED, BUG = 2, 1, 3, 130, 70
MAX_DETAILS = 20  # per-field problems listed under a message; the rest are counted
# Error codes AWS answers when it does not accept the credentials themselves (S3, KMS, STS).
CREDENTIAL_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidSignatureException",
        "AuthFailure",
    }
)
ACCESS_CODES = frozenset({"AccessDenied", "AccessDeniedException", "Forbidden", "403"})
KMS_OPERATIONS = frozenset({"Sign", "Verify", "GetPublicKey", "DescribeKey"})  # what the CLI asks of the signing key


class StackNotRunning(Exception):
    """The local stack the command needs is not running (its details file is missing or its process is gone)."""


def handle(error: BaseException, *, debug: bool = False, stream: TextIO | None = None) -> int:
    """Report `error` on `stream` (default stderr) and return the exit code (see the module docstring).

    Known errors get a message (and their traceback only with `debug`); any other exception gets its traceback and a
    line calling it a bug. SystemExit is not handled here: argparse's own exits pass through the caller.
    """
    out = stream or sys.stderr
    known = describe(error)
    if known is None:
        traceback.print_exception(error, file=out)
        out.write(
            f"error: unexpected {type(error).__name__}: this is a bug in sklambda, not a mistake of yours; please "
            "report it with the traceback above\n"
        )
        return BUG
    message, code = known
    if debug:
        traceback.print_exception(error, file=out)
    out.write(message.rstrip("\n") + "\n")
    return code


def describe(error: BaseException) -> tuple[str, int] | None:
    """(message, exit code) for a known error, None for a bug."""
    if isinstance(error, KeyboardInterrupt):
        return "interrupted", INTERRUPTED
    if isinstance(error, StackNotRunning):
        return f"error: {error}", NOT_RUNNING
    if isinstance(error, SklambdaError):
        lines = [f"error: {error.message}"]
        lines += [f"  - {detail}" for detail in error.errors[:MAX_DETAILS]]
        if len(error.errors) > MAX_DETAILS:
            lines.append(f"  ... and {len(error.errors) - MAX_DETAILS} more")
        return "\n".join(lines), REFUSED
    if isinstance(error, ClientError):
        return _client_error(error)
    if isinstance(error, BotoCoreError):
        return _botocore_error(error)
    if type(error).__name__ == "LayerBuildError":  # sklambda_infra.layer's; imported lazily, it needs dev tools
        return f"error: {error}", FAILED
    if isinstance(error, ModuleNotFoundError):
        # The local stack, layer build and benchmarks run on the dev tools (moto, PyYAML, aws-sam-translator...).
        return (
            f"error: this command needs the module {error.name!r}, one of the dev tools: install sklambda with its "
            "dev extra (`pip install -e '.[dev]'` in a clone, as `make test` does)",
            REFUSED,
        )
    if isinstance(error, OSError) and error.filename is not None:
        return f"error: {error.strerror or error}: {error.filename}", REFUSED
    return None


def _client_error(error: ClientError) -> tuple[str, int]:
    details = error.response.get("Error", {})
    code, text = str(details.get("Code", "")), str(details.get("Message", "")).strip()
    operation = error.operation_name
    if code in CREDENTIAL_CODES:
        return (
            f"error: AWS refused the credentials ({code} on {operation}): check AWS_PROFILE / AWS_ACCESS_KEY_ID and "
            'AWS_SECRET_ACCESS_KEY; for the local stack, eval "$(sklambda local env)"',
            FAILED,
        )
    if code in ACCESS_CODES:
        return (
            f"error: access denied to {operation}{f' ({text})' if text else ''}: the credentials in use lack the "
            "permission",
            FAILED,
        )
    if code == "NoSuchBucket":
        bucket = details.get("BucketName") or ""
        return (
            f"error: there is no bucket {bucket or 'by that name'}: check --bucket / SKLAMBDA_MODEL_BUCKET (a local "
            "stack's buckets are gone once it stops: `sklambda local status`)",
            REFUSED,
        )
    if operation in KMS_OPERATIONS and code in ("NotFoundException", "KMSInvalidStateException", "DisabledException"):
        return f"error: the signing key cannot be used ({code} on {operation}): {text}; check --signing-key", REFUSED
    return f"error: AWS call {operation} failed: {code}: {text}" if text else f"error: AWS call failed: {error}", FAILED


def _botocore_error(error: BotoCoreError) -> tuple[str, int]:
    if isinstance(error, EndpointConnectionError | ConnectTimeoutError):
        parts = urlsplit(str(getattr(error, "kwargs", {}).get("endpoint_url", "")))
        url = f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""  # the endpoint, not the request's path
        local = parts.hostname in ("127.0.0.1", "localhost", "::1")
        hint = (
            "is the local stack running? (`sklambda local status`; start it with `make local`)"
            if local
            else "check the network and --endpoint-url / AWS_ENDPOINT_URL"
        )
        return f"error: cannot reach {url or 'the AWS endpoint'}: {hint}", NOT_RUNNING if local else FAILED
    if isinstance(error, NoCredentialsError):
        return (
            "error: no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or start the "
            "local stack with `make local`",
            REFUSED,
        )
    if isinstance(error, NoRegionError):
        return "error: no AWS region configured: set AWS_REGION (or AWS_DEFAULT_REGION)", REFUSED
    if isinstance(error, ParamValidationError):
        return f"error: invalid value for AWS: {error}", REFUSED
    return f"error: AWS call failed: {error}", FAILED


def quiet_broken_pipe() -> int:
    """After stdout's reader went away (`sklambda models list | head -1`): point stdout at devnull so the interpreter's
    final flush does not fail again, and exit 1 (the recipe of Python's `signal` documentation, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return FAILED
