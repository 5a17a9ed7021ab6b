"""Integrity: the card is signed with KMS, checked before anything is unpickled."""

from __future__ import annotations

import dataclasses
import json
import threading

import joblib
import pytest

from sklambda.errors import ModelRefused
from sklambda.registry.card import ModelCard, Signature
from sklambda.registry.signing import CardSigner, CardVerifier
from sklambda.serving import server as serving
from sklambda.serving.server import ModelServer, load_verified
from tests.support import make_signing_key, store_built


def test_a_signed_card_verifies_and_loads(registry_env, published):
    loaded = load_verified(registry_env.registry, registry_env.verifier, "churn", "1")
    assert loaded.card == published
    assert loaded.card.signature.algorithm == "ECDSA_SHA_256"


def test_any_change_to_the_card_breaks_the_signature(registry_env, published):
    # GIVEN the card with one schema detail changed
    features = list(published.input_schema.features)
    features[1] = dataclasses.replace(features[1], maximum=1e9)
    edited = dataclasses.replace(
        published, input_schema=dataclasses.replace(published.input_schema, features=tuple(features))
    )
    # WHEN verified
    with pytest.raises(ModelRefused, match="failed signature verification") as e:
        registry_env.verifier.verify(edited)
    assert e.value.reason == "bad_signature"


def test_a_signature_from_another_key_is_refused(registry_env, published):
    # GIVEN a verifier trusting a different key
    other = CardVerifier(make_signing_key())
    with pytest.raises(ModelRefused, match="failed signature verification"):
        other.verify(published)


def test_the_key_named_in_the_card_is_not_trusted(registry_env, published):
    # GIVEN an attacker who re-signs an edited card with their own key and names that key in the card
    attacker_key = make_signing_key()
    edited = dataclasses.replace(published, description="swapped", signature=None)
    forged = CardSigner(attacker_key).sign(edited)
    assert forged.signature.key_id != registry_env.signing_key_id
    # WHEN the runtime verifies with its configured key
    with pytest.raises(ModelRefused):
        registry_env.verifier.verify(forged)


def test_unsigned_and_garbled_signatures_are_refused(registry_env, published):
    with pytest.raises(ModelRefused, match="not signed"):
        registry_env.verifier.verify(dataclasses.replace(published, signature=None))
    garbled = dataclasses.replace(published, signature=Signature(published.signature.key_id, "ECDSA_SHA_256", "!!"))
    with pytest.raises(ModelRefused, match="failed signature"):
        registry_env.verifier.verify(garbled)


def test_tampered_artifact_is_never_unpickled(registry_env, published, monkeypatch):
    # GIVEN the artifact replaced by other bytes of the same size
    s3 = registry_env.s3()
    blob = s3.get_object(Bucket=registry_env.bucket, Key=published.artifact.key)["Body"].read()
    s3.put_object(Bucket=registry_env.bucket, Key=published.artifact.key, Body=bytes(reversed(blob)))
    calls = []
    monkeypatch.setattr(joblib, "load", lambda *a, **k: calls.append(a))
    # WHEN loaded
    with pytest.raises(ModelRefused, match="does not match the signed sha256") as e:
        load_verified(registry_env.registry, registry_env.verifier, "churn", "1")
    # THEN joblib.load was never reached
    assert calls == [] and e.value.reason == "artifact_tampered"


def test_a_card_failing_verification_is_refused_for_that_even_when_its_artifact_is_missing(registry_env, published):
    # GIVEN version 1's artifact deleted, and a runtime trusting another key than the card's
    registry_env.s3().delete_object(Bucket=registry_env.bucket, Key=published.artifact.key)
    other = CardVerifier(make_signing_key())
    # WHEN loaded (the artifact's GET runs while the card is verified)
    with pytest.raises(ModelRefused) as e:
        load_verified(registry_env.registry, other, "churn", "1")
    # THEN the refusal is the first check that failed, as when the checks ran one after the other
    assert e.value.reason == "bad_signature"
    # AND with the trusted key, the missing artifact is what is refused
    with pytest.raises(ModelRefused) as e:
        load_verified(registry_env.registry, registry_env.verifier, "churn", "1")
    assert e.value.reason == "artifact_missing"


def test_the_artifact_is_read_while_the_card_is_verified(registry_env, published, monkeypatch):
    # GIVEN a registry that signals when the artifact's GET starts, and a verifier that waits for that signal
    registry = registry_env.registry
    reading = threading.Event()
    fetch = registry.fetch_artifact

    def signalling_fetch(card):
        reading.set()
        return fetch(card)

    monkeypatch.setattr(registry, "fetch_artifact", signalling_fetch)
    seen = []

    class WaitingVerifier(CardVerifier):
        def verify(self, card):
            seen.append(reading.wait(timeout=10))  # False only when the GET waits for verification to end
            super().verify(card)

    # WHEN the version is loaded
    loaded = load_verified(registry, WaitingVerifier(registry_env.signing_key_id), "churn", "1")
    # THEN the GET had started before the signature check ended, and the model still loaded verified
    assert seen == [True]
    assert loaded.card == published


def test_a_card_copied_to_another_version_path_is_refused(registry_env, published):
    # GIVEN the signed card of version 1 copied to version 2's path
    s3 = registry_env.s3()
    raw = s3.get_object(Bucket=registry_env.bucket, Key=registry_env.registry.card_key("churn", "1"))["Body"].read()
    s3.put_object(Bucket=registry_env.bucket, Key=registry_env.registry.card_key("churn", "2"), Body=raw)
    with pytest.raises(ModelRefused, match="describes 'churn' version '1'"):
        registry_env.registry.get_card("churn", "2")


def test_sklearn_version_mismatch_names_both_versions(published):
    card = dataclasses.replace(published, library_versions={**published.library_versions, "scikit-learn": "0.24.2"})
    with pytest.raises(ModelRefused, match=r"scikit-learn 0\.24\.2 but this runtime has scikit-learn 9\.9\.9") as e:
        serving.check_compatible(card, runtime_sklearn="9.9.9")
    assert e.value.reason == "sklearn_version_mismatch"
    serving.check_compatible(published)  # the same version passes


def test_refusals_are_cached_for_one_ttl_then_retried(registry_env, published):
    # GIVEN a tampered artifact and a server with a fake clock
    s3 = registry_env.s3()
    good = s3.get_object(Bucket=registry_env.bucket, Key=published.artifact.key)["Body"].read()
    s3.put_object(Bucket=registry_env.bucket, Key=published.artifact.key, Body=b"x" * len(good))
    now = [0.0]
    server = ModelServer(registry_env.registry, registry_env.verifier, alias_ttl_seconds=60, clock=lambda: now[0])
    with pytest.raises(ModelRefused):
        server.get("churn")
    # WHEN the artifact is repaired: still refused within the TTL, served after it
    s3.put_object(Bucket=registry_env.bucket, Key=published.artifact.key, Body=good)
    with pytest.raises(ModelRefused):
        server.get("churn")
    now[0] = 61.0
    assert server.get("churn").card.version == "1"


def test_alias_changes_are_seen_only_after_the_ttl(registry_env, published, churn_build, forest_model):
    now = [0.0]
    server = ModelServer(registry_env.registry, registry_env.verifier, alias_ttl_seconds=60, clock=lambda: now[0])
    assert server.get("churn").card.version == "1"
    store_built(registry_env, churn_build(forest_model, version="2"), alias="production")
    now[0] = 59.0
    assert server.get("churn").card.version == "1"
    now[0] = 61.0
    assert server.get("churn").card.version == "2"


def test_card_json_round_trips_exactly(published):
    again = ModelCard.from_json(published.to_json())
    assert again == published
    assert again.signing_message() == published.signing_message()
    assert json.loads(published.to_json())["format"] == "sklambda.registry.card/v1"
