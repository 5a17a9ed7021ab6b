"""The functional layer's shared fixtures stand for what they replace."""

from __future__ import annotations

import dataclasses

from sklambda.registry.store import Registry
from sklambda.serving.server import load_verified
from tests.support import publish_churn, store_built


def _without_what_differs_per_publish(card) -> dict:
    d = card.to_dict()
    d.pop("created_at")
    d.pop("signature")
    d["parity"].pop("seconds")
    return d


def test_published_from_the_session_build_is_what_publish_stores(registry_env, churn, logistic_model, published):
    # GIVEN `published` (stored from the session's build) and the same model published by publish() into another bucket
    registry_env.s3().create_bucket(Bucket="sklambda-models-other")
    other = dataclasses.replace(
        registry_env, bucket="sklambda-models-other", registry=Registry("sklambda-models-other")
    )
    again = publish_churn(other, churn, logistic_model)
    # THEN both cards are equal but for when they were made, their signature and how long the parity gate took
    assert _without_what_differs_per_publish(published) == _without_what_differs_per_publish(again)
    # AND the stored version is verified and loaded as any published one, and production points at it
    assert load_verified(registry_env.registry, registry_env.verifier, "churn", "1").card == published
    assert registry_env.registry.get_alias("churn", "production").version == "1"


def test_a_session_build_as_another_name_and_version_is_what_publish_stores_there(
    registry_env, churn, logistic_model, churn_build
):
    # GIVEN the session's build of churn stored as version 3 of retention, and the same model published by publish()
    # as version 3 of retention into another bucket
    stored = store_built(registry_env, churn_build(logistic_model, name="retention", version="3"))
    registry_env.s3().create_bucket(Bucket="sklambda-models-other")
    other = dataclasses.replace(
        registry_env, bucket="sklambda-models-other", registry=Registry("sklambda-models-other")
    )
    again = publish_churn(other, churn, logistic_model, name="retention", version="3", alias=None)
    # THEN both cards are equal but for when they were made, their signature and how long the parity gate took
    assert _without_what_differs_per_publish(stored) == _without_what_differs_per_publish(again)
    # AND the stored version is verified and loaded as any published one
    assert load_verified(registry_env.registry, registry_env.verifier, "retention", "3").card == stored
