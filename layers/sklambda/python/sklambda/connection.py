"""Where a publisher reaches a stack: the one resolution that `sklambda.publish`, the CLI and the tests share.

Each value comes from the first of: an explicit argument; the environment (the registry's SKLAMBDA_* variables and
the AWS SDK's standard ones, AWS_ENDPOINT_URL included: see the AWS SDKs and Tools reference guide, "Service-specific
endpoints"); a running local stack's details file (`.sklambda/local.json` beside the nearest `template.yaml` at or
above the current folder, or the file SKLAMBDA_LOCAL_FILE names). The local stack is read only when the registry is
not fully named by the first two, so a publisher configured for the cloud never picks up a stale local file.

Publisher-side only: a Lambda function always has its settings in its environment (sklambda.config).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sklambda import aws, config
from sklambda.errors import ConfigurationError

ENV_LOCAL_FILE = "SKLAMBDA_LOCAL_FILE"
ENV_API_URL = "SKLAMBDA_API_URL"
ENV_API_KEY = "SKLAMBDA_API_KEY"
ENV_DATA_BUCKET = "SKLAMBDA_DATA_BUCKET"
LOCAL_DETAILS = Path(".sklambda") / "local.json"
TEMPLATE = "template.yaml"
LOCAL_FALLBACKS = {"region": "us-east-1", "access_key_id": "testing", "secret_access_key": "testing"}

# Target field -> (environment variable, key in the local stack's details). Region: boto3 reads AWS_REGION first,
# then AWS_DEFAULT_REGION (botocore's config chain); both are exported so the AWS CLI v1 finds one too.
_SOURCES: dict[str, tuple[tuple[str, ...], str]] = {
    "model_bucket": ((config.MODEL_BUCKET,), "model_bucket"),
    "signing_key_id": ((config.SIGNING_KEY_ID,), "signing_key_id"),
    "endpoint_url": ((config.AWS_ENDPOINT_URL,), "aws_endpoint_url"),
    "region": (("AWS_REGION", "AWS_DEFAULT_REGION"), "region"),
    "access_key_id": (("AWS_ACCESS_KEY_ID",), "access_key_id"),
    "secret_access_key": (("AWS_SECRET_ACCESS_KEY",), "secret_access_key"),
    "api_url": ((ENV_API_URL,), "api_url"),
    "api_key": ((ENV_API_KEY,), "api_key"),
    "data_bucket": ((ENV_DATA_BUCKET,), "data_bucket"),
    "runtime_path": ((config.RUNTIME_PATH,), "runtime_path"),
    # Under the details' "state_machines" (see _from_details): what `sklambda retrain` starts.
    "retrain_state_machine_arn": ((config.RETRAIN_STATE_MACHINE_ARN,), "retrain_state_machine_arn"),
}


@dataclass(frozen=True)
class Target:
    """A stack's coordinates as a publisher needs them; None where nothing said.

    `source` says where the registry (bucket, signing key) came from: "arguments", "environment" or
    "local stack <path>"; `local_file` is the details file read, if any.
    """

    model_bucket: str | None = None
    signing_key_id: str | None = None
    endpoint_url: str | None = None
    region: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    api_url: str | None = None
    api_key: str | None = None
    data_bucket: str | None = None
    runtime_path: str | None = None
    retrain_state_machine_arn: str | None = None
    source: str = "environment"
    local_file: Path | None = field(default=None, compare=False)

    @classmethod
    def from_local_details(cls, details: Mapping[str, Any], path: Path | None = None) -> Target:
        """The target a local stack's details file (`.sklambda/local.json`) describes."""
        return cls(**_from_details(details), source=f"local stack {path}" if path else "local stack", local_file=path)

    def environment(self) -> dict[str, str]:
        """The environment variables that point boto3, the AWS CLI, `sklambda.publish` and curl at this target.

        Returns {NAME: value} in a stable order; values that are None are left out. Both AWS_REGION and
        AWS_DEFAULT_REGION carry the region (the AWS CLI v1 reads only the latter).
        """
        out: dict[str, str] = {}
        for name, (variables, _) in _SOURCES.items():
            value = getattr(self, name)
            if value:
                for variable in variables:
                    out[variable] = str(value)
        return out

    def use(self) -> None:
        """Point this process's shared AWS clients (sklambda.aws) at the target: endpoint, region, credentials.

        Values that are None keep botocore's own resolution, boto3's too (environment, profile, role).
        """
        aws.configure(
            endpoint_url=self.endpoint_url,
            region=self.region,
            access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key,
        )


def find_local_details(start: str | os.PathLike[str] | None = None) -> Path:
    """The path of the local stack's details file: $SKLAMBDA_LOCAL_FILE, else `.sklambda/local.json` beside the
    nearest `template.yaml` at or above `start` (default: the current folder), else under `start` itself.
    The file may not exist."""
    given = os.environ.get(ENV_LOCAL_FILE, "").strip()
    if given:
        return Path(given)
    here = Path(start if start is not None else Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / TEMPLATE).is_file():
            return folder / LOCAL_DETAILS
    return here / LOCAL_DETAILS


def read_local_details(path: Path) -> dict[str, Any] | None:
    """The details a running local stack wrote at `path`, or None when there is no readable file, or when the process
    that wrote it (its `pid`) is no longer running: a stopped stack's file must not send a publish to a dead port."""
    try:
        details = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(details, dict):
        return None
    pid = details.get("pid")
    if isinstance(pid, int) and pid > 0 and not process_running(pid):
        return None
    return details


def process_running(pid: int) -> bool:
    """Whether process `pid` runs: it exists (os.kill with signal 0; someone else's counts) and is not a zombie (a
    stack killed but not yet reaped by its parent still has a pid; Linux says so in /proc/<pid>/stat)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (macOS): existing is running
    return state != "Z"


def _from_details(details: Mapping[str, Any]) -> dict[str, Any]:
    values = {name: details.get(key) for name, (_, key) in _SOURCES.items()}
    # Older details files have the data bucket only among the buckets, under its logical id.
    values["data_bucket"] = values["data_bucket"] or (details.get("buckets") or {}).get("DataBucket")
    machines = details.get("state_machines") or {}
    values["retrain_state_machine_arn"] = values["retrain_state_machine_arn"] or machines.get("RetrainStateMachine")
    # A local stack (moto) accepts any credentials; the stack writes its own, these cover a file without them.
    for name, fallback in LOCAL_FALLBACKS.items():
        values[name] = values[name] or fallback
    return values


def resolve(
    *,
    model_bucket: str | None = None,
    signing_key_id: str | None = None,
    endpoint_url: str | None = None,
    need_signing_key: bool = True,
    start: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    arguments: str = "registry=/signer=",
) -> Target:
    """The target named by explicit arguments, else the environment, else a running local stack's details.

    need_signing_key: False for read-only commands that do not verify cards (the bucket alone is enough).
    start: the folder to look for the local stack from (default: the current folder). environ: default os.environ.
    arguments: how the caller passes them explicitly, for the error message (the CLI: "--bucket/--signing-key").

    The local stack fills only values still missing, and only when the bucket (or, with `need_signing_key`, the
    signing key) is missing after arguments and environment.

    Raises ConfigurationError naming what is missing and the three ways to give it when no source names the model
    bucket (and signing key, when needed).
    """
    env = os.environ if environ is None else environ
    explicit = {"model_bucket": model_bucket, "signing_key_id": signing_key_id, "endpoint_url": endpoint_url}
    values: dict[str, Any] = {}
    for name, (variables, _) in _SOURCES.items():
        value = explicit.get(name) or next((env[v].strip() for v in variables if env.get(v, "").strip()), None)
        values[name] = value or None
    source = "arguments" if model_bucket else "environment"
    local_file = None

    def complete() -> bool:
        return bool(values["model_bucket"]) and (bool(values["signing_key_id"]) or not need_signing_key)

    stale = ""
    if not complete():
        path = find_local_details(start)
        details = read_local_details(path)
        if details is None and path.is_file():
            stale = f"; {path} is from a local stack that is not running any more"
        if details is not None:
            local = _from_details(details)
            values = {name: values[name] or local[name] for name in values}
            source, local_file = f"local stack {path}", path
    if not complete():
        missing = [] if values["model_bucket"] else ["model bucket"]
        missing += [] if values["signing_key_id"] or not need_signing_key else ["signing key"]
        raise ConfigurationError(
            f"no {' and no '.join(missing)} configured: pass {arguments}, set "
            f'{config.MODEL_BUCKET} and {config.SIGNING_KEY_ID} (`eval "$(sklambda local env)"` sets them for the '
            f"local stack), or start the local stack with `make local`{stale}"
        )
    return Target(**values, source=source, local_file=local_file)
