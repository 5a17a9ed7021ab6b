"""The model registry: immutable versions and movable aliases in one S3 bucket.

Layout (under the bucket root):
    models/<name>/versions/<version>/card.json             the signed model card (the commit point)
    models/<name>/versions/<version>/model-<sha12>.joblib  the artifact, content-addressed
    models/<name>/versions/<version>/compiled-<sha12>.bin  the compiled artifact (sklambda.compiled), when there is one
    models/<name>/versions/<version>/code/<path>           user code shipped with the model (sha256 in the card)
    models/<name>/aliases/<alias>.json                     {"version": ..., "history": [...], "canary"?, "shadow"?}

An alias points at one *stable* version, and optionally at a *canary* version taking a weighted, sticky share of the
traffic (Canary.takes) and a *shadow* version that never answers (the monitoring run replays captured traffic on it).

Versions are immutable: the card is written with If-None-Match: *, so a second publish of the same
version fails even when two publishers race. Alias updates use If-Match on the previous ETag, so two
concurrent promotes cannot silently overwrite each other.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from sklambda import aws
from sklambda.errors import ModelNotFound, ModelRefused, RegistryConflict
from sklambda.registry.card import ModelCard

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ALIAS_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
MAX_ALIAS_HISTORY = 50
# The routing point of a key is a 64-bit hash prefix mapped to [0, 100): finer than any weight one can ask for.
_HASH_SPACE = float(2**64)


def check_name(name: str) -> str:
    """`name` if it is a valid model name (1-63 of a-z, 0-9, '-', '_', starting with a letter or digit).

    Raises ModelNotFound otherwise (a 404: no model of that name can exist); the name is a segment of S3 keys.
    """
    if not NAME_RE.match(name or ""):
        raise ModelNotFound(
            f"invalid model name {name!r}: use 1-63 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


def check_version(version: str) -> str:
    """`version` if it is a valid version (1-64 of letters, digits, '.', '-', '_', starting with a letter or digit);
    else raises ModelNotFound.
    """
    if not VERSION_RE.match(version or ""):
        raise ModelNotFound(f"invalid version {version!r}: use letters, digits, '.', '-' or '_' (at most 64)")
    return version


def check_alias(alias: str) -> str:
    """`alias` if it is a valid alias (1-63 of a-z, 0-9, '-', '_', starting with a letter); else raises
    ModelNotFound.
    """
    if not ALIAS_RE.match(alias or ""):
        raise ModelNotFound(
            f"invalid alias {alias!r}: use lowercase letters, digits, '-' or '_', starting with a letter"
        )
    return alias


def check_weight(weight: float) -> float:
    """`weight` (percent of the traffic a canary takes) if 0 < weight < 100; else ValueError (0 is no canary, 100
    is `promote --finish`)."""
    w = float(weight)
    if not 0 < w < 100:
        raise ValueError(f"a canary weight is a percent strictly between 0 and 100, got {weight!r}")
    return w


@dataclass(frozen=True)
class Canary:
    """A canary version on an alias: it answers `weight` percent of the callers, the stable version the rest.

    version: the canary version. weight: percent in (0, 100). key: the feature whose value is the caller key, hashed
    (None: the row's inference_id). started_at: ISO 8601 UTC when the canary started (a ramp keeps it). bounds: the
    automatic-rollback bounds given at promote (sklambda.updating.rollout.rollout_bounds_from reads them; only the
    values given are stored, so defaults live in one place).
    """

    version: str
    weight: float
    key: str | None = None
    started_at: str = ""
    bounds: dict[str, Any] = field(default_factory=dict)

    def point(self, name: str, alias: str, key_value: str) -> float:
        """Where a caller key falls in [0, 100): the first 8 bytes of sha256("<name>/<alias>/<canary version>/<key>").

        Salted with the canary version so two canaries do not always pick the same callers; not with the weight, so
        raising the weight keeps every caller already on the canary there (sticky through a ramp).
        """
        digest = hashlib.sha256(f"{name}/{alias}/{self.version}/{key_value}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / _HASH_SPACE * 100.0

    def takes(self, name: str, alias: str, key_value: str) -> bool:
        """Whether the caller with `key_value` is answered by the canary version (sticky: the same key, the same
        answer, for as long as the canary and its weight last)."""
        return self.point(name, alias, key_value) < self.weight

    def to_dict(self) -> dict:
        """The stored JSON object."""
        return {
            "version": self.version,
            "weight": self.weight,
            "key": self.key,
            "started_at": self.started_at,
            "bounds": dict(self.bounds),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Canary:
        """The inverse of to_dict."""
        return cls(d["version"], float(d["weight"]), d.get("key"), d.get("started_at", ""), dict(d.get("bounds") or {}))


@dataclass(frozen=True)
class Shadow:
    """A shadow version on an alias: never answers callers; the monitoring run scores captured traffic with it.
    started_at: ISO 8601 UTC."""

    version: str
    started_at: str = ""

    def to_dict(self) -> dict:
        """The stored JSON object."""
        return {"version": self.version, "started_at": self.started_at}

    @classmethod
    def from_dict(cls, d: dict) -> Shadow:
        """The inverse of to_dict."""
        return cls(d["version"], d.get("started_at", ""))


@dataclass(frozen=True)
class AliasRecord:
    """An alias as stored in models/<name>/aliases/<alias>.json.

    version: the stable version the alias points at (what answers when no canary applies).
    history: earlier stable targets, oldest first (at most 50): what `rollback` goes back to.
    updated_at: ISO 8601 UTC, to the second.
    etag: the S3 ETag it was read with (the If-Match condition of the next write); None for a record not read from S3.
    canary: a canary version taking a share of the traffic, or None. shadow: a shadow version, or None.
    """

    name: str
    alias: str
    version: str
    history: tuple[str, ...]
    updated_at: str
    etag: str | None = None
    canary: Canary | None = None
    shadow: Shadow | None = None

    def versions(self) -> tuple[str, ...]:
        """The versions that answer callers: the stable one, then the canary's if any."""
        return (self.version, self.canary.version) if self.canary else (self.version,)

    def route(self, key_value: str | None) -> str:
        """The version answering the caller with `key_value` (None, e.g. no key: the stable version)."""
        if self.canary is not None and key_value is not None and self.canary.takes(self.name, self.alias, key_value):
            return self.canary.version
        return self.version

    def to_dict(self) -> dict:
        """The stored JSON object (without the etag); `canary` / `shadow` only when set, so older readers and records
        stay as they were."""
        d: dict[str, Any] = {
            "name": self.name,
            "alias": self.alias,
            "version": self.version,
            "history": list(self.history),
            "updated_at": self.updated_at,
        }
        if self.canary is not None:
            d["canary"] = self.canary.to_dict()
        if self.shadow is not None:
            d["shadow"] = self.shadow.to_dict()
        return d


class PendingRead:
    """A registry read running in a background (daemon) thread, started by Registry.start_fetch_artifact.

    `result()` waits for it, then returns its value or raises its exception in the caller's thread. A read whose
    result is never asked for (the card failed a check first) ends on its own and its bytes are dropped.
    """

    def __init__(self, read: Callable[[], bytes]) -> None:
        self._value: bytes | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(read,), name="sklambda-registry-read", daemon=True)
        self._thread.start()

    def _run(self, read: Callable[[], bytes]) -> None:
        try:
            self._value = read()
        except BaseException as e:  # handed to the caller by result()
            self._error = e

    def result(self) -> bytes:
        """The bytes read; raises the read's exception (ModelRefused, ClientError) if it failed."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _is_missing(e: ClientError) -> bool:
    return _code(e) in ("NoSuchKey", "404", "NotFound")


def _is_precondition(e: ClientError) -> bool:
    return _code(e) in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")


class Registry:
    """Versions and aliases of models in one S3 bucket (layout in the module docstring).

    `bucket` is the bucket name (ValueError when empty); `s3` returns the boto3 S3 client to use (default: the shared
    one from sklambda.aws, created lazily so tests can start moto first). Reading needs s3:GetObject and s3:ListBucket,
    writing s3:PutObject. S3 errors other than a missing key or a failed precondition propagate as botocore's
    ClientError.
    """

    def __init__(self, bucket: str, s3: Callable[[], Any] = lambda: aws.client("s3")) -> None:
        if not bucket:
            raise ValueError("a registry needs a bucket name")
        self.bucket = bucket
        self._s3 = s3

    # --- keys -------------------------------------------------------------------------------------
    @staticmethod
    def version_prefix(name: str, version: str) -> str:
        """The key prefix of one version's objects, `models/<name>/versions/<version>/`."""
        return f"models/{name}/versions/{version}/"

    @classmethod
    def card_key(cls, name: str, version: str) -> str:
        """The key of a version's model card."""
        return cls.version_prefix(name, version) + "card.json"

    @classmethod
    def artifact_key(cls, name: str, version: str, sha256: str) -> str:
        """The key of a version's artifact: content-addressed by the first 12 hex digits of its sha256."""
        return cls.version_prefix(name, version) + f"model-{sha256[:12]}.joblib"

    @classmethod
    def compiled_key(cls, name: str, version: str, sha256: str) -> str:
        """The key of a version's compiled artifact (sklambda.compiled): content-addressed like the joblib one."""
        return cls.version_prefix(name, version) + f"compiled-{sha256[:12]}.bin"

    @classmethod
    def code_key(cls, name: str, version: str, path: str) -> str:
        """The key of a user code file shipped with a version (`path` relative, with '/')."""
        return cls.version_prefix(name, version) + f"code/{path}"

    @staticmethod
    def alias_key(name: str, alias: str) -> str:
        """The key of an alias record."""
        return f"models/{name}/aliases/{alias}.json"

    # --- reads ------------------------------------------------------------------------------------
    def _get(self, key: str) -> tuple[bytes, str]:
        resp = self._s3().get_object(Bucket=self.bucket, Key=key)
        return resp["Body"].read(), resp["ETag"]

    def _common_prefixes(self, prefix: str) -> list[str]:
        out = []
        paginator = self._s3().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            out.extend(p["Prefix"][len(prefix) :].rstrip("/") for p in page.get("CommonPrefixes", []))
        return out

    def list_models(self) -> list[str]:
        """Every model name with at least one object in the bucket, sorted."""
        return sorted(self._common_prefixes("models/"))

    def list_versions(self, name: str) -> list[str]:
        """The versions of `name`, numeric ones first in numeric order, then the others sorted as text.

        Raises ModelNotFound for an invalid name; an unknown model has no versions ([]).
        """
        check_name(name)
        versions = self._common_prefixes(f"models/{name}/versions/")
        return sorted(versions, key=_version_sort_key)

    def next_version(self, name: str) -> str:
        """The version a publish without an explicit version gets: one more than the highest numeric version, "1"
        first.
        """
        numeric = [int(v) for v in self.list_versions(name) if v.isdigit()]
        return str(max(numeric, default=0) + 1)

    def get_card(self, name: str, version: str) -> ModelCard:
        """The model card of `name` at `version`, parsed but not yet verified (CardVerifier checks its signature).

        Raises ModelNotFound for an invalid name or version or when the version does not exist; ModelRefused when the
        card is not a readable card (reason bad_card) or describes another name/version than its path
        (card_path_mismatch: a signed card copied elsewhere must not pass as that version).
        """
        check_name(name)
        check_version(version)
        try:
            raw, _ = self._get(self.card_key(name, version))
        except ClientError as e:
            if _is_missing(e):
                raise ModelNotFound(f"model {name!r} has no version {version!r}") from None
            raise
        try:
            card = ModelCard.from_json(raw)
        except (ValueError, KeyError, TypeError) as e:
            raise ModelRefused(
                f"model card of {name!r} version {version!r} is unreadable: {e}", reason="bad_card"
            ) from None
        if (card.name, card.version) != (name, version):
            # A signed card copied to another path would otherwise pass verification.
            raise ModelRefused(
                f"model card at {name!r} version {version!r} describes {card.name!r} version {card.version!r}",
                reason="card_path_mismatch",
            )
        return card

    def _get_stored(self, key: str, card: ModelCard, what: str, reason: str) -> bytes:
        """The bytes at `key`, one of `card`'s files; ModelRefused(`reason`) naming `what` when the object is gone."""
        try:
            blob, _ = self._get(key)
        except ClientError as e:
            if _is_missing(e):
                raise ModelRefused(
                    f"{what} of model {card.name!r} version {card.version!r} is missing", reason=reason
                ) from None
            raise
        return blob

    def fetch_artifact(self, card: ModelCard) -> bytes:
        """The artifact bytes the card points at (not yet checked against its sha256).

        Raises ModelRefused (reason artifact_missing) when the object is gone.
        """
        return self._get_stored(card.artifact.key, card, "artifact", "artifact_missing")

    def fetch_compiled(self, card: ModelCard) -> bytes:
        """The compiled artifact bytes the card points at (`ModelCard.compiled_artifact`; not yet checked against its
        sha256). Raises ModelRefused (reason artifact_missing) when the object is gone, ValueError when the card has
        no compiled artifact."""
        ref = card.compiled_artifact
        if ref is None:
            raise ValueError(f"model {card.name!r} version {card.version!r} has no compiled artifact")
        return self._get_stored(ref.key, card, "compiled artifact", "artifact_missing")

    def start_fetch_artifact(self, card: ModelCard, *, compiled: bool = False) -> PendingRead:
        """`fetch_artifact(card)` (`fetch_compiled(card)` when `compiled`) started in a background thread, so the GET
        can run while the caller checks the card (KMS Verify): its `result()` waits for the bytes (not yet checked
        against the card's sha256) or raises what that method raises. botocore clients are thread-safe; the S3 client
        is created before the thread starts.
        """
        self._s3()
        return PendingRead(lambda: self.fetch_compiled(card) if compiled else self.fetch_artifact(card))

    def fetch_code(self, card: ModelCard) -> dict[str, bytes]:
        """The user code files the card lists, {path: bytes}; their sha256 is checked by the caller."""
        files = {}
        for entry in (card.code or {}).get("files", ()):
            path = entry["path"]
            key = self.code_key(card.name, card.version, path)
            files[path] = self._get_stored(key, card, f"code file {path!r}", "code_missing")
        return files

    def get_alias(self, name: str, alias: str) -> AliasRecord:
        """The record of alias `alias` of `name`, with the ETag it was read with.

        Raises ModelNotFound for an invalid name or alias, or when the alias does not exist (the message says whether
        the model itself is unknown).
        """
        check_name(name)
        check_alias(alias)
        try:
            raw, etag = self._get(self.alias_key(name, alias))
        except ClientError as e:
            if _is_missing(e):
                known = self.list_versions(name)
                shown = ", ".join(known[-5:]) + (" ..." if len(known) > 5 else "")
                what = (
                    f"model {name!r} has no alias {alias!r} (its versions: {shown}: ask for one by version, or "
                    f"promote one to {alias!r})"
                    if known
                    else f"unknown model {name!r}"
                )
                raise ModelNotFound(what) from None
            raise
        d = json.loads(raw)
        return AliasRecord(
            name,
            alias,
            d["version"],
            tuple(d.get("history", ())),
            d.get("updated_at", ""),
            etag,
            canary=Canary.from_dict(d["canary"]) if d.get("canary") else None,
            shadow=Shadow.from_dict(d["shadow"]) if d.get("shadow") else None,
        )

    def list_aliases(self, name: str) -> dict[str, str]:
        """Every alias of `name` → the version it points at (one read per alias)."""
        check_name(name)
        prefix = f"models/{name}/aliases/"
        out = {}
        paginator = self._s3().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                alias = obj["Key"][len(prefix) :].removesuffix(".json")
                out[alias] = self.get_alias(name, alias).version
        return out

    def resolve(self, name: str, *, alias: str | None = None, version: str | None = None) -> str:
        """Return the version a request means: an explicit version wins, else the alias."""
        check_name(name)
        if version is not None:
            check_version(version)
            return version
        if alias is None:
            raise ValueError("resolve needs an alias or a version")
        return self.get_alias(name, alias).version

    # --- writes -----------------------------------------------------------------------------------
    def put_version(
        self, card: ModelCard, artifact: bytes, code: dict[str, bytes] | None = None, compiled: bytes | None = None
    ) -> None:
        """Store an artifact, the user code shipped with it ({path: bytes}), the compiled artifact when the card has
        one, and its signed card. The card write is the commit point: a reader never sees a card whose files are not
        there yet. Raises ValueError when bytes do not match the card's sha256/size (or a compiled artifact is missing
        or unexpected)."""
        check_name(card.name)
        check_version(card.version)
        if hashlib.sha256(artifact).hexdigest() != card.artifact.sha256 or len(artifact) != card.artifact.size:
            raise ValueError("artifact bytes do not match the card's sha256/size")
        compiled_ref = card.compiled_artifact
        if (compiled_ref is None) != (compiled is None):
            raise ValueError("compiled artifact bytes are given if and only if the card has a compiled artifact")
        if compiled is not None and (
            hashlib.sha256(compiled).hexdigest() != compiled_ref.sha256 or len(compiled) != compiled_ref.size
        ):
            raise ValueError("compiled artifact bytes do not match the card's sha256/size")
        if self.version_exists(card.name, card.version):
            raise RegistryConflict(
                f"model {card.name!r} version {card.version!r} already exists; versions are immutable"
            )
        self._s3().put_object(
            Bucket=self.bucket, Key=card.artifact.key, Body=artifact, ContentType="application/octet-stream"
        )
        if compiled_ref is not None:
            self._s3().put_object(
                Bucket=self.bucket, Key=compiled_ref.key, Body=compiled, ContentType="application/octet-stream"
            )
        for path, data in sorted((code or {}).items()):
            self._s3().put_object(
                Bucket=self.bucket,
                Key=self.code_key(card.name, card.version, path),
                Body=data,
                ContentType="text/x-python",
            )
        try:
            self._s3().put_object(
                Bucket=self.bucket,
                Key=self.card_key(card.name, card.version),
                Body=card.to_json(),
                ContentType="application/json",
                IfNoneMatch="*",
            )
        except ClientError as e:
            if _is_precondition(e):
                raise RegistryConflict(
                    f"model {card.name!r} version {card.version!r} already exists; versions are immutable"
                ) from None
            raise

    def version_exists(self, name: str, version: str) -> bool:
        """Whether a card exists for `name` at `version` (a HEAD request; a card is the commit point of a version)."""
        try:
            self._s3().head_object(Bucket=self.bucket, Key=self.card_key(name, version))
            return True
        except ClientError as e:
            if _is_missing(e):
                return False
            raise

    def set_alias(self, name: str, alias: str, version: str) -> AliasRecord:
        """Point `alias` at `version`, remembering the previous target for rollback.

        Raises ModelNotFound when the version does not exist; RegistryConflict when the alias has a canary on another
        version (finish it or roll it back first: a plain promote would silently end a rollout), or changed
        concurrently. Promoting the canary's own version is `finish_canary`.
        """
        check_alias(alias)
        if not self.version_exists(name, check_version(version)):
            raise ModelNotFound(f"model {name!r} has no version {version!r}")
        try:
            current = self.get_alias(name, alias)
        except ModelNotFound:
            current = None
        if current is not None and current.canary is not None:
            if current.canary.version == version:
                return self.finish_canary(name, alias)
            raise RegistryConflict(
                f"alias {alias!r} of model {name!r} has a canary on version {current.canary.version} "
                f"({current.canary.weight:g} %): finish it (promote --finish) or roll it back first"
            )
        if current is not None and current.version == version:
            return current
        history = (*current.history, current.version)[-MAX_ALIAS_HISTORY:] if current else ()
        shadow = current.shadow if current else None
        return self._write(AliasRecord(name, alias, version, history, _now(), shadow=_unless(shadow, version)), current)

    def rollback(self, name: str, alias: str, *, expected_etag: str | None = None) -> AliasRecord:
        """Undo the alias's last change: with a canary, drop it at once (the stable version takes all the traffic);
        otherwise point `alias` back at the version it had before. With `expected_etag` (the ETag of a record read
        earlier), only the alias as it was then is rolled back: an automatic rollback decided on that record must not
        undo a promote made since. Raises ModelNotFound when there is nothing to roll back to; RegistryConflict when
        the alias changed concurrently or since `expected_etag`."""
        current = self.get_alias(name, alias)
        if expected_etag is not None and current.etag != expected_etag:
            raise RegistryConflict(f"alias {alias!r} of model {name!r} changed since it was read; nothing rolled back")
        if current.canary is not None:
            return self._write(replace(current, canary=None, updated_at=_now()), current)
        if not current.history:
            raise ModelNotFound(f"alias {alias!r} of model {name!r} has no previous version to roll back to")
        previous = current.history[-1]
        return self._write(
            replace(
                current,
                version=previous,
                history=current.history[:-1],
                updated_at=_now(),
                shadow=_unless(current.shadow, previous),
            ),
            current,
        )

    def start_canary(
        self,
        name: str,
        alias: str,
        version: str,
        weight: float,
        *,
        key: str | None = None,
        bounds: dict[str, Any] | None = None,
    ) -> AliasRecord:
        """Give `version` `weight` percent of the callers of `alias` (0 < weight < 100), sticky per caller key.

        key: the feature whose value identifies a caller (None: the row's inference_id). bounds: the automatic
        rollback bounds to store with the canary. Called again with the same canary version, it changes the weight
        (a ramp), keeping started_at and its key; bounds change only when given.
        Raises ModelNotFound (no such version, no such alias: a canary needs a stable version to compare with);
        ValueError for a weight outside (0, 100) or the alias's own stable version; RegistryConflict when another
        canary is running (finish or roll it back first), when a ramp gives another key (a new key re-routes every
        caller: the sticky assignment would be lost), or the alias changed concurrently.
        """
        check_alias(alias)
        weight = check_weight(weight)
        if not self.version_exists(name, check_version(version)):
            raise ModelNotFound(f"model {name!r} has no version {version!r}")
        current = self.get_alias(name, alias)
        if current.version == version:
            raise ValueError(f"version {version} is already the stable version of alias {alias!r} of {name!r}")
        running = current.canary
        if running is not None and running.version != version:
            raise RegistryConflict(
                f"alias {alias!r} of model {name!r} already has a canary on version {running.version} "
                f"({running.weight:g} %): finish it (promote --finish) or roll it back first"
            )
        if running is not None and key is not None and key != running.key:
            was = f"the feature {running.key}" if running.key else "each row's inference_id"
            raise RegistryConflict(
                f"the canary of version {version} on alias {alias!r} of model {name!r} is keyed by {was}: another "
                f"key ({key}) would re-route every caller; roll it back (or finish it) first, then start it with the "
                "new key"
            )
        canary = Canary(
            version,
            weight,
            key if key is not None or running is None else running.key,
            running.started_at if running is not None else _now(),
            dict(bounds) if bounds is not None else (dict(running.bounds) if running is not None else {}),
        )
        return self._write(replace(current, canary=canary, updated_at=_now()), current)

    def finish_canary(self, name: str, alias: str) -> AliasRecord:
        """Move the whole alias to its canary version (the stable version goes to the history, so `rollback` after
        it returns there). Raises ModelNotFound when the alias has no canary; RegistryConflict on a concurrent
        change."""
        current = self.get_alias(name, alias)
        if current.canary is None:
            raise ModelNotFound(f"alias {alias!r} of model {name!r} has no canary to finish")
        version = current.canary.version
        return self._write(
            replace(
                current,
                version=version,
                history=(*current.history, current.version)[-MAX_ALIAS_HISTORY:],
                canary=None,
                shadow=_unless(current.shadow, version),
                updated_at=_now(),
            ),
            current,
        )

    def set_shadow(self, name: str, alias: str, version: str) -> AliasRecord:
        """Make `version` the shadow of `alias` (replacing any other shadow). Raises ModelNotFound (no such version or
        alias); ValueError when it is the alias's stable version or its canary's version (a canary answers callers: it
        cannot also be scored as one that never does); RegistryConflict on a concurrent change."""
        check_alias(alias)
        if not self.version_exists(name, check_version(version)):
            raise ModelNotFound(f"model {name!r} has no version {version!r}")
        current = self.get_alias(name, alias)
        if current.version == version:
            raise ValueError(f"version {version} is the stable version of alias {alias!r} of {name!r}, not a shadow")
        if current.canary is not None and current.canary.version == version:
            raise ValueError(
                f"version {version} is the canary of alias {alias!r} of {name!r} (it answers "
                f"{current.canary.weight:g} % of the callers), so it cannot be a shadow, which never answers: roll the "
                "canary back first"
            )
        if current.shadow is not None and current.shadow.version == version:
            return current
        return self._write(replace(current, shadow=Shadow(version, _now()), updated_at=_now()), current)

    def clear_shadow(self, name: str, alias: str) -> AliasRecord:
        """Stop shadowing on `alias` (a no-op without a shadow)."""
        current = self.get_alias(name, alias)
        if current.shadow is None:
            return current
        return self._write(replace(current, shadow=None, updated_at=_now()), current)

    def _write(self, record: AliasRecord, current: AliasRecord | None) -> AliasRecord:
        """Store `record`, conditional on the alias being as `current` was read (If-Match its ETag; If-None-Match
        for a new alias). Raises RegistryConflict when another writer got there first."""
        condition = {"IfMatch": current.etag} if current and current.etag else {"IfNoneMatch": "*"}
        try:
            resp = self._s3().put_object(
                Bucket=self.bucket,
                Key=self.alias_key(record.name, record.alias),
                Body=json.dumps(record.to_dict(), indent=2).encode(),
                ContentType="application/json",
                **condition,
            )
        except ClientError as e:
            if _is_precondition(e):
                raise RegistryConflict(
                    f"alias {record.alias!r} of model {record.name!r} was changed concurrently; read it again and retry"
                ) from None
            raise
        return replace(record, etag=resp.get("ETag"))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _unless(shadow: Shadow | None, version: str) -> Shadow | None:
    """A shadow stops being one when its version becomes the stable version."""
    return None if shadow is not None and shadow.version == version else shadow


def _version_sort_key(v: str) -> tuple:
    return (0, int(v), "") if v.isdigit() else (1, 0, v)
