"""Registry: immutable versions, aliases with history, publish from Python."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline

from sklambda.errors import ModelNotFound, PublishRejected, RegistryConflict
from sklambda.publishing import publish
from sklambda_infra import sample
from tests.support import RegistryEnv, publish_churn

pytestmark = pytest.mark.publishing  # `published` runs publish() itself in each test


@pytest.fixture(scope="module")
def small(churn: SimpleNamespace) -> SimpleNamespace:
    """A small churn model to publish many versions of: a logistic regression on two numeric features of 200 rows,
    customer_id (pii) in the data and dropped. publish() takes a quarter of the sample pipeline's time on it; the
    numbering and alias tests need versions, not the sample's card."""
    X, y = churn.X[["customer_id", "age", "tenure_months"]].iloc[:200], churn.y.iloc[:200]
    prep = ColumnTransformer([("num", "passthrough", ["age", "tenure_months"])], remainder="drop")
    return SimpleNamespace(model=Pipeline([("prep", prep), ("model", LogisticRegression())]).fit(X, y), X=X, y=y)


def publish_versions(env: RegistryEnv, small: SimpleNamespace, count: int) -> None:
    """Publish `count` new versions of churn with publish(), no alias."""
    for _ in range(count):
        publish(small.model, small.X, small.y, name="churn", pii=sample.PII, registry=env.registry, signer=env.signer)


def test_versions_are_numbered_and_listed_in_order(registry_env, small):
    # GIVEN eleven publishes of the same model
    publish_versions(registry_env, small, 11)
    # WHEN versions are listed
    versions = registry_env.registry.list_versions("churn")
    # THEN they count up numerically, not lexically
    assert versions == [str(i) for i in range(1, 12)]
    assert registry_env.registry.list_models() == ["churn"]


def test_publishing_an_existing_version_is_refused(registry_env, churn, logistic_model, forest_model):
    # GIVEN version 7 exists
    publish_churn(registry_env, churn, logistic_model, version="7")
    before = registry_env.registry.get_card("churn", "7")
    # WHEN another model is published as version 7
    with pytest.raises(RegistryConflict, match="already exists"):
        publish_churn(registry_env, churn, forest_model, version="7")
    # THEN version 7 is unchanged
    assert registry_env.registry.get_card("churn", "7") == before


def test_card_write_is_conditional_so_racing_publishers_cannot_overwrite(registry_env, churn, logistic_model):
    # GIVEN a card already at the version's path (as if another publisher won the race after our check)
    card = publish_churn(registry_env, churn, logistic_model)
    s3 = registry_env.s3()
    blob = s3.get_object(Bucket=registry_env.bucket, Key=card.artifact.key)["Body"].read()
    compiled = s3.get_object(Bucket=registry_env.bucket, Key=card.compiled_artifact.key)["Body"].read()
    registry_env.registry.version_exists = lambda name, version: False  # the check saw nothing
    # WHEN the second publisher commits
    with pytest.raises(RegistryConflict):
        registry_env.registry.put_version(card, blob, None, compiled)


def test_promote_and_rollback_walk_the_alias_history(registry_env, small):
    reg = registry_env.registry
    publish_versions(registry_env, small, 3)
    # GIVEN production promoted 1 -> 2 -> 3
    for v in ("1", "2", "3"):
        reg.set_alias("churn", "production", v)
    # WHEN rolled back twice
    first = reg.rollback("churn", "production").version
    second = reg.rollback("churn", "production").version
    # THEN it walks back 3 -> 2 -> 1, and a third rollback has nothing left
    assert (first, second) == ("2", "1")
    with pytest.raises(ModelNotFound, match="no previous version"):
        reg.rollback("churn", "production")


def test_promoting_to_a_missing_version_is_refused(registry_env, published):
    with pytest.raises(ModelNotFound, match="no version '9'"):
        registry_env.registry.set_alias("churn", "production", "9")
    assert registry_env.registry.get_alias("churn", "production").version == "1"


def test_concurrent_alias_update_is_detected(registry_env, small):
    # GIVEN two promoters that both read production at version 1
    reg = registry_env.registry
    publish_versions(registry_env, small, 3)
    reg.set_alias("churn", "production", "1")
    stale = reg.get_alias("churn", "production")
    reg.set_alias("churn", "production", "2")
    # WHEN the slower one writes with its stale ETag
    with pytest.raises(RegistryConflict, match="changed concurrently"):
        reg._write(replace(stale, version="3", history=("1",)), stale)
    # THEN the faster one's promote stands
    assert reg.get_alias("churn", "production").version == "2"


def test_a_canary_ramps_finishes_and_rolls_back_on_the_alias_record(registry_env, small):
    # GIVEN production on version 1 and a version 2
    reg = registry_env.registry
    publish_versions(registry_env, small, 2)
    reg.set_alias("churn", "production", "1")
    # WHEN version 2 starts as a 10 % canary keyed by customer, then ramps to 50 %
    started = reg.start_canary("churn", "production", "2", 10, key="customer_id", bounds={"max_latency_ratio": 2})
    ramped = reg.start_canary("churn", "production", "2", 50)
    # THEN the stable version stays 1, the ramp keeps the key, bounds and start, and readers see the canary
    stored = reg.get_alias("churn", "production")
    assert (stored.version, stored.canary.version, stored.canary.weight) == ("1", "2", 50.0)
    assert stored.canary.key == "customer_id" and stored.canary.bounds == {"max_latency_ratio": 2}
    assert ramped.canary.started_at == started.canary.started_at
    assert stored.versions() == ("1", "2")
    # AND a plain promote while the canary runs, or a weight of 100, are refused by name
    with pytest.raises(RegistryConflict, match="has a canary on version 2"):
        reg.set_alias("churn", "production", "1")
    with pytest.raises(ValueError, match="strictly between 0 and 100"):
        reg.start_canary("churn", "production", "2", 100)
    # WHEN it is rolled back: the canary is gone at once and version 1 keeps every caller
    rolled = reg.rollback("churn", "production")
    assert (rolled.version, rolled.canary, rolled.history) == ("1", None, stored.history)
    # WHEN a new canary is finished: the alias moves whole, and a rollback returns to version 1
    reg.start_canary("churn", "production", "2", 10)
    finished = reg.finish_canary("churn", "production")
    assert (finished.version, finished.canary, finished.history[-1]) == ("2", None, "1")
    assert reg.rollback("churn", "production").version == "1"
    with pytest.raises(ModelNotFound, match="no canary to finish"):
        reg.finish_canary("churn", "production")


def test_a_shadow_is_kept_apart_from_the_answering_versions(registry_env, small):
    # GIVEN production on version 1 and a version 2
    reg = registry_env.registry
    publish_versions(registry_env, small, 2)
    reg.set_alias("churn", "production", "1")
    # WHEN version 2 shadows production
    shadowed = reg.set_shadow("churn", "production", "2")
    # THEN it answers nobody, and it stops being a shadow when it is promoted
    assert shadowed.shadow.version == "2" and shadowed.versions() == ("1",)
    assert all(shadowed.route(str(i)) == "1" for i in range(100))
    with pytest.raises(ValueError, match="is the stable version"):
        reg.set_shadow("churn", "production", "1")
    promoted = reg.set_alias("churn", "production", "2")
    assert (promoted.version, promoted.shadow) == ("2", None)
    reg.set_shadow("churn", "production", "1")
    assert reg.clear_shadow("churn", "production").shadow is None


@pytest.mark.parametrize("bad", ["Churn", "../etc", "", "a" * 64, "churn/1"])
def test_invalid_names_are_refused(registry_env, bad):
    with pytest.raises(ModelNotFound, match="invalid model name"):
        registry_env.registry.list_versions(bad)


def test_card_holds_schema_metrics_baseline_and_versions(published):
    card = published.to_dict()
    assert card["task"] == "classification" and card["classes"] == ["no", "yes"]
    assert card["library_versions"]["scikit-learn"]
    features = {f["name"]: f for f in card["input_schema"]["features"]}
    assert features["age"]["type"] == "integer" and features["age"]["minimum"] >= 18
    assert features["monthly_income"]["nullable"] is True
    assert features["plan"]["categories"] == ["basic", "plus", "premium"]
    assert card["metrics"]["split"] == "holdout" and 0.5 < card["metrics"]["roc_auc"] <= 1
    age = card["baseline"]["features"]["age"]
    assert len(age["histogram"]["bin_edges"]) == len(age["histogram"]["counts"]) + 1
    assert sum(card["baseline"]["features"]["plan"]["frequencies"].values()) == pytest.approx(1.0)
    assert set(card["baseline"]["predictions"]["class_frequencies"]) <= {"yes", "no"}
    assert card["artifact"]["size"] > 0 and len(card["artifact"]["sha256"]) == 64


def test_no_raw_pii_value_reaches_the_card(published, churn):
    # GIVEN customer_id is marked pii
    text = json.dumps(published.to_dict())
    # THEN none of its values appear anywhere in the card (schema, ranges, categories, baseline)
    assert not any(cid in text for cid in churn.X["customer_id"])
    assert published.baseline["features"]["customer_id"] == {"count": len(churn.X), "null_rate": 0.0, "pii": True}


def test_regressors_publish_and_score(registry_env, churn):
    X = churn.X[["age", "tenure_months", "monthly_charges"]]
    y = churn.X["monthly_income"].fillna(0)
    model = LinearRegression().fit(X, y)
    card = publish(model, X, y, name="income", registry=registry_env.registry, signer=registry_env.signer)
    assert card.task == "regression" and card.classes is None and "r2" in card.metrics
    assert card.baseline["predictions"]["type"] == "regression"


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda c: (LogisticRegression(), c.X, c.y), "not fitted"),
        (lambda c: (sample.logistic_pipeline().fit(c.X, c.y), c.X.iloc[:0], c.y.iloc[:0]), "empty"),
        (lambda c: (sample.logistic_pipeline().fit(c.X, c.y), c.X, c.y.iloc[:10]), "target has 10"),
        (lambda c: (sample.logistic_pipeline().fit(c.X, c.y), c.X.to_numpy(), c.y), "pandas DataFrame"),
    ],
)
def test_publish_refuses_what_cannot_make_a_valid_card(registry_env, churn, make_args, message):
    model, X, y = make_args(churn)
    with pytest.raises(PublishRejected, match=message):
        publish(model, X, y, name="bad", registry=registry_env.registry, signer=registry_env.signer)
    assert registry_env.registry.list_versions("bad") == []
