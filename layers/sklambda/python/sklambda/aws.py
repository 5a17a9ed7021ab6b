"""AWS clients created lazily, once per container (so tests can start moto before the first call).

The clients are botocore's, made by a botocore session: they are the very clients boto3 hands out (boto3.client
returns a botocore client), without importing boto3 itself: s3transfer and boto3's resource layer, ~12 ms of a cold
start on the bench machine (`import boto3` timed after `import botocore.session`), for features the runtime does not
use (resources, the S3 transfer manager's upload_file/download_file). Region, credentials and AWS_ENDPOINT_URL are
resolved by botocore, exactly as boto3 resolves them.
"""

from __future__ import annotations

import threading
from typing import Any

import botocore.session
from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30)
_clients: dict[str, Any] = {}
# One session for all clients: a session's data loader caches what the first client loads (the service list, the
# endpoint and partition data: ~65-75 ms of the first S3 client here), so the KMS client made next costs ~7 ms. Sessions
# are not thread-safe, but clients are only created under _lock (the clients themselves are thread-safe).
_session: botocore.session.Session | None = None
_lock = threading.Lock()
# Set by configure() (a publisher pointing at a stack it resolved); empty in Lambda, where the environment rules.
_overrides: dict[str, str] = {}


def client(service: str) -> Any:
    """The shared client of `service` (e.g. "s3", "kms"), created on first use; thread-safe.

    Standard retry mode with at most 3 attempts, 5 s connect and 30 s read timeouts (botocore's "Retries" guide).
    Region, credentials and endpoint come from the environment as botocore (and so boto3) reads them
    (AWS_DEFAULT_REGION, which Lambda sets; the function's role; AWS_ENDPOINT_URL for the local stack).
    """
    global _session
    with _lock:
        if service not in _clients:
            if _session is None:
                _session = botocore.session.Session()
            _clients[service] = _session.create_client(
                service,
                region_name=_overrides.get("region"),
                endpoint_url=_overrides.get("endpoint_url"),
                aws_access_key_id=_overrides.get("access_key_id"),
                aws_secret_access_key=_overrides.get("secret_access_key"),
                config=_CONFIG,
            )
        return _clients[service]


def configure(
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
) -> None:
    """Make the next clients use these values instead of the environment's (None: botocore's own resolution); forgets
    cached clients. Used by publishers that resolved a stack (sklambda.connection), never by the functions."""
    global _session
    given = {
        "endpoint_url": endpoint_url,
        "region": region,
        "access_key_id": access_key_id,
        "secret_access_key": secret_access_key,
    }
    with _lock:
        _overrides.clear()
        _overrides.update({k: v for k, v in given.items() if v})
        _clients.clear()
        _session = None


def reset_clients() -> None:
    """Forget cached clients, their session and any configure() values: back to the environment (tests switch
    between moto backends and credentials)."""
    global _session
    with _lock:
        _clients.clear()
        _overrides.clear()
        _session = None


def put_event(bus: str, source: str, detail_type: str, detail: dict[str, Any]) -> str:
    """Put one event on the EventBridge bus `bus` (a name or ARN) and return its event id.

    detail: a JSON object (non-finite floats are refused, other non-JSON values written as text). Raises RuntimeError
    when PutEvents answers the entry with an error code: PutEvents reports a refused entry in its response
    (FailedEntryCount, the entry's ErrorCode), not as an exception (the EventBridge API reference, PutEvents).
    """
    import json

    response = client("events").put_events(
        Entries=[
            {
                "Source": source,
                "DetailType": detail_type,
                "Detail": json.dumps(detail, allow_nan=False, default=str),
                "EventBusName": bus,
            }
        ]
    )
    (entry,) = response["Entries"]
    if response.get("FailedEntryCount") or "EventId" not in entry:
        raise RuntimeError(f"PutEvents refused the {detail_type} event: {entry.get('ErrorCode')}")
    return entry["EventId"]
