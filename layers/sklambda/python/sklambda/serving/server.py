"""Loading verified models and caching them per container.

Order of checks before anything is unpickled: the card's signature (KMS Verify with the trusted key),
the scikit-learn version, the artifact's size and sha256, and the sha256 of each user code file the card lists.
Only then joblib.load, with the model's own code importable (sklambda.registry.usercode).

A version whose card has a compiled artifact (the card's `compiled` section, sklambda.compiled) is served, where the
caller asks for it (`ModelServer(compiled=True)`: the predict function), by the compiled evaluator: the same checks
run on the compiled artifact (signature, scikit-learn version, size and sha256), and nothing is unpickled at all
(the compiled format holds arrays and JSON only). scikit-learn, scipy and pandas are then never imported, unless
something needs the estimator (explanations), which is loaded, verified as above, at that moment.
"""

from __future__ import annotations

import hashlib
import io
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sklambda.errors import ModelRefused
from sklambda.registry.card import ArtifactRef, ModelCard
from sklambda.registry.signing import CardVerifier
from sklambda.registry.store import AliasRecord, PendingRead, Registry
from sklambda.registry.usercode import importable, materialize
from sklambda.registry.usercode import verify as verify_code
from sklambda.serving.scoring import Scorer

_runtime_sklearn: str | None = None


def runtime_sklearn_version() -> str:
    """The scikit-learn version this runtime has, without importing scikit-learn when it is not imported yet (its
    import costs ~0.9 s: scipy and pandas come with it): read from the installed distribution's metadata."""
    global _runtime_sklearn
    if _runtime_sklearn is None:
        module = sys.modules.get("sklearn")
        if module is not None:
            _runtime_sklearn = module.__version__
        else:
            from importlib.metadata import version

            _runtime_sklearn = version("scikit-learn")
    return _runtime_sklearn


@dataclass(frozen=True)
class LoadedModel:
    """One verified, unpickled version: its card, the Scorer around the estimator, and how long fetching, verifying and
    unpickling took (seconds).
    """

    card: ModelCard
    scorer: Scorer
    load_seconds: float


class ServingEvents(Protocol):
    """What the serving layer reports; the function maps these to metrics."""

    def model_loaded(self, name: str, version: str, seconds: float) -> None:
        """Version `version` of `name` was verified and unpickled in `seconds`."""

    def model_refused(self, name: str, version: str, reason: str) -> None:
        """Version `version` of `name` was refused; `reason` is ModelRefused.reason (e.g. bad_signature)."""


class NoEvents:
    """ServingEvents that report nothing (the default)."""

    def model_loaded(self, name: str, version: str, seconds: float) -> None:
        """Report nothing."""
        pass

    def model_refused(self, name: str, version: str, reason: str) -> None:
        """Report nothing."""
        pass


def check_compatible(card: ModelCard, runtime_sklearn: str | None = None) -> None:
    """Refuse a model pickled with another scikit-learn than the runtime's (ModelRefused, reason
    sklearn_version_mismatch).

    scikit-learn's model persistence guide: a model saved with one version may fail to load, or predict differently,
    with another, so an exact match is required rather than risking silent differences. `runtime_sklearn`: default
    this runtime's (runtime_sklearn_version).
    """
    runtime_sklearn = runtime_sklearn or runtime_sklearn_version()
    if card.sklearn_version != runtime_sklearn:
        raise ModelRefused(
            f"model {card.name!r} version {card.version!r} was saved with scikit-learn {card.sklearn_version} "
            f"but this runtime has scikit-learn {runtime_sklearn}; re-train or re-publish it with "
            f"scikit-learn {runtime_sklearn}",
            reason="sklearn_version_mismatch",
        )


def check_artifact(card: ModelCard, blob: bytes, ref: ArtifactRef | None = None) -> None:
    """Refuse artifact bytes whose size or sha256 differ from the signed card's (ModelRefused, reason
    artifact_tampered). `ref`: which of the card's artifacts `blob` is (default the joblib one; the compiled one is
    `card.compiled_artifact`).
    """
    ref = ref or card.artifact
    what = "artifact" if ref is card.artifact else "compiled artifact"
    where = f"model {card.name!r} version {card.version!r}"
    if len(blob) != ref.size:
        raise ModelRefused(
            f"{what} of {where} has {len(blob)} bytes, the signed card says {ref.size}", reason="artifact_tampered"
        )
    if hashlib.sha256(blob).hexdigest() != ref.sha256:
        raise ModelRefused(f"{what} of {where} does not match the signed sha256", reason="artifact_tampered")


def unpickle(card: ModelCard, blob: bytes, code: dict[str, bytes] | None = None) -> object:
    """The estimator in `blob`, with the card's user code importable while it loads. The caller has verified
    the bytes; the publish-time parity gate loads the artifact through this same function."""
    import joblib  # here, not at import: a container serving compiled models never needs it

    modules = (card.code or {}).get("modules", ())
    folder = materialize(code, label=f"{card.name}-{card.version}") if code else None
    with importable(folder, modules):
        return joblib.load(io.BytesIO(blob))


def load_verified(
    registry: Registry, verifier: CardVerifier, name: str, version: str, *, compiled: bool = False
) -> LoadedModel:
    """Fetch, verify and unpickle version `version` of `name` (an exact version, not an alias).

    The checks run before anything is unpickled, in this order: the card's signature with the verifier's trusted key
    (KMS Verify), the scikit-learn version, the artifact's size and sha256, the sha256 of each user code file.
    Unpickling runs code chosen by whoever wrote the bytes (Python's pickle documentation: never unpickle untrusted
    data), so only bytes the signing key vouched for reach joblib.load.

    compiled: serve the version with its compiled artifact when the card has one (the predict function): the
        signature check, then the compiled artifact's size and sha256, then the compiled evaluator reads it (arrays and
        JSON: nothing is unpickled). The runtime's scikit-learn version is not checked then (the evaluator does not use
        scikit-learn, and the parity gate proved its answers at publish); the joblib artifact is fetched and checked,
        version included, only if the estimator is needed later (explanations). A card without one is loaded as
        above.

    Returns the LoadedModel with `load_seconds` measured from the first registry read.
    Raises ModelNotFound (invalid name or version, no such version); ModelRefused (HTTP 503) with `reason` bad_card,
    card_path_mismatch, unsigned, bad_signature, sklearn_version_mismatch, artifact_missing, artifact_tampered,
    code_missing, code_tampered, or unloadable (the pickle failed in this runtime: a missing module or class; or
    a compiled artifact this runtime cannot read). S3 and KMS errors other than a missing object propagate as
    botocore's ClientError.
    """
    started = time.perf_counter()
    if not compiled:
        _import_in_background()
    card = registry.get_card(name, version)
    ref = card.compiled_artifact if compiled else None
    if compiled and ref is None:
        _import_in_background()
    # The served artifact's GET runs while KMS checks the card; its bytes are used only once every check below passed.
    artifact = registry.start_fetch_artifact(card, compiled=ref is not None)
    verifier.verify(card)
    if ref is not None:  # the compiled evaluator does not depend on the runtime's scikit-learn: no version check
        blob = artifact.result()
        check_artifact(card, blob, ref)
        scorer = Scorer.from_compiled(_read_compiled(card, blob), card, lambda: _unpickle_verified(registry, card))
        return LoadedModel(card, scorer, time.perf_counter() - started)
    estimator = _unpickle_verified(registry, card, artifact)
    return LoadedModel(card, Scorer(estimator, card), time.perf_counter() - started)


def _import_in_background() -> None:
    """Start importing scikit-learn and joblib in a thread when they are not imported yet: a version served by
    scikit-learn needs them to unpickle, and the import (~0.5 s of CPU) then overlaps the registry reads and KMS
    Verify, which mostly wait on the network. Importing the runtime's own libraries runs none of the artifact's
    bytes; `_unpickle_verified` imports them again (waiting for this import, or raising its error)."""
    if "sklearn" in sys.modules and "joblib" in sys.modules:
        return

    def run() -> None:
        try:
            import joblib  # noqa: F401
            import sklearn  # noqa: F401
        except Exception:  # the import in _unpickle_verified raises it where it is handled
            pass

    threading.Thread(target=run, name="sklambda-import", daemon=True).start()


def _read_compiled(card: ModelCard, blob: bytes) -> object:
    """The compiled evaluator of verified compiled artifact bytes; ModelRefused (unloadable) when this runtime cannot
    read its format."""
    from sklambda.compiled.evaluate import CompiledModel
    from sklambda.compiled.program import CompiledFormatError, CompiledProgram

    try:
        return CompiledModel(CompiledProgram.from_bytes(blob))
    except CompiledFormatError as e:
        raise ModelRefused(
            f"the compiled artifact of model {card.name!r} version {card.version!r} cannot be read by this runtime: "
            f"{e}; update the runtime layer or republish",
            reason="unloadable",
        ) from None


def _unpickle_verified(registry: Registry, card: ModelCard, fetching: PendingRead | None = None) -> object:
    """The joblib artifact of a verified card, fetched (or its GET's result, when `fetching` started it), checked
    (scikit-learn version, size, sha256, user code) and unpickled."""
    import sklearn  # unpickling imports it anyway; imported first, its version is read without package metadata

    check_compatible(card, sklearn.__version__)
    name, version = card.name, card.version
    blob = fetching.result() if fetching is not None else registry.fetch_artifact(card)
    check_artifact(card, blob)
    code = registry.fetch_code(card) if card.code else None
    if code is not None:
        problems = verify_code(card.code, code)
        if problems:
            raise ModelRefused(
                f"user code of model {name!r} version {version!r}: {'; '.join(problems)}", reason="code_tampered"
            )
    # Safe to unpickle: the bytes are exactly the ones the signing key vouched for.
    try:
        return unpickle(card, blob, code)
    except Exception as e:  # publish checks what a pickle needs; a version published before that may still fail
        raise ModelRefused(
            f"model {name!r} version {version!r} cannot be loaded by this runtime: {type(e).__name__}: {e}; "
            "republish it (publish now checks that the deployed runtime can load it)",
            reason="unloadable",
        ) from None


class ModelServer:
    """Per-container cache of verified models: alias records re-read after a TTL, models kept in a small LRU.

    alias_ttl_seconds: how long an alias record (its stable version, canary and shadow) is reused (a promote, a canary
        or a rollback reaches the container within it); a refused version is also remembered this long, so a tampered
        model is not downloaded on every request.
    cache_size: loaded models kept; the least recently used is dropped beyond it (an alias with a canary keeps two).
    events: told of every load and refusal (the predict function turns them into metrics).
    compiled: serve versions published with a compiled artifact by the compiled evaluator (load_verified); the
        predict function sets it, batch scoring and monitoring do not (they score DataFrames with scikit-learn).
    clock: monotonic seconds (tests pass a fake). Thread-safe: the caches are guarded by one lock; two threads missing
        the same model may both load it.
    """

    def __init__(
        self,
        registry: Registry,
        verifier: CardVerifier,
        *,
        alias_ttl_seconds: float = 60.0,
        cache_size: int = 4,
        events: ServingEvents | None = None,
        compiled: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.verifier = verifier
        self.alias_ttl = alias_ttl_seconds
        self.cache_size = cache_size
        self.events = events or NoEvents()
        self.compiled = compiled
        self._clock = clock
        self._aliases: dict[tuple[str, str], tuple[AliasRecord, float]] = {}
        self._models: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
        # Refusals are remembered for one TTL so a tampered model is not re-downloaded on every request.
        self._refused: dict[tuple[str, str], tuple[ModelRefused, float]] = {}
        self._lock = threading.RLock()

    def alias_record(self, name: str, alias: str) -> AliasRecord:
        """The record of `alias` of `name` (stable version, canary, shadow), read from the registry at most once per
        alias TTL: the record, not only its version, so that routing a canary costs no registry read per request.

        Raises ModelNotFound for an invalid name or alias, an unknown model or a missing alias.
        """
        key = (name, alias)
        now = self._clock()
        with self._lock:
            hit = self._aliases.get(key)
            if hit and hit[1] > now:
                return hit[0]
        record = self.registry.get_alias(name, alias)
        with self._lock:
            self._aliases[key] = (record, now + self.alias_ttl)
        return record

    def resolve_version(self, name: str, alias: str) -> str:
        """The stable version `alias` of `name` points at (alias_record's, so read at most once per alias TTL).

        Raises ModelNotFound for an invalid name or alias, an unknown model or a missing alias.
        """
        return self.alias_record(name, alias).version

    def get(self, name: str, *, alias: str | None = None, version: str | None = None) -> LoadedModel:
        """The loaded model for `name` at `version`, else at `alias`'s stable version (default alias "production").

        An explicit version wins over an alias, whose record is read from the registry at most once per alias TTL; a
        canary on the alias is not applied here (the predict route routes rows itself: sklambda.serving.routing).
        Raises ModelNotFound (HTTP 404) for an invalid or unknown name, alias or version; ModelRefused (HTTP 503) as
        `load`.
        """
        if version is None:
            version = self.resolve_version(name, alias or "production")
        else:
            version = self.registry.resolve(name, version=version)
        return self.load(name, version)

    def load(self, name: str, version: str) -> LoadedModel:
        """Version `version` of `name` (an exact, already resolved version), from the cache or loaded now.

        A version in the cache is returned as it is; otherwise it is loaded by `load_verified` (signature, scikit-learn
        version, sha256 checked before unpickling) and the least recently used model is evicted beyond `cache_size`.
        Raises ModelNotFound (HTTP 404) for an unknown version; ModelRefused (HTTP 503) when the version fails a
        check, remembered for one alias TTL and raised again without reloading.
        """
        key = (name, version)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            refused = self._refused.get(key)
            if refused and refused[1] > self._clock():
                raise refused[0]
        try:
            loaded = load_verified(self.registry, self.verifier, name, version, compiled=self.compiled)
        except ModelRefused as e:
            with self._lock:
                self._refused[key] = (e, self._clock() + self.alias_ttl)
            self.events.model_refused(name, version, e.reason)
            raise
        self.events.model_loaded(name, version, loaded.load_seconds)
        with self._lock:
            self._models[key] = loaded
            while len(self._models) > self.cache_size:
                self._models.popitem(last=False)
        return loaded

    def is_loaded(self, name: str, version: str) -> bool:
        """Whether version `version` of `name` is in the cache now (no registry read)."""
        with self._lock:
            return (name, version) in self._models

    def preload(self, names: tuple[str, ...], alias: str) -> dict[str, str]:
        """Load models ahead of traffic (SnapStart's before-snapshot hook). Failures are reported, not
        raised: a model that cannot load will answer 404/503 on its first request instead."""
        outcome = {}
        for name in names:
            try:
                loaded = self.get(name, alias=alias)
                outcome[name] = f"loaded version {loaded.card.version}"
            except Exception as e:
                outcome[name] = f"not loaded: {e}"
        return outcome
