"""Serve exactly what was published: the parity gate, what an artifact needs, user code shipped with the model,
nulls as the training data had them, the scikit-learn version the pickle records."""

from __future__ import annotations

import csv
import io
import json
import sys
import textwrap
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn.base
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from sklambda.batch.engine import score_file
from sklambda.errors import ModelRefused, PublishRejected
from sklambda.publishing import publish
from sklambda.publishing.artifact import scan_artifact
from sklambda.registry import schema as schema_module
from sklambda.serving.server import ModelServer
from tests import runtimes
from tests.support import call, import_predict_app, load_event

pytestmark = pytest.mark.publishing  # `published` runs publish() itself in each test

ROW = {"a": 2.0409191213851825, "d": None}  # the row: P(1) must be the pipeline's, not a None category's


def nulls_data(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """The issue's shape: a numeric `a` and a pandas string column `d` with 10 % missing."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    d = pd.Series(rng.choice(["x", "y", "z"], size=n, p=[0.3, 0.3, 0.4]), dtype="str")
    d[rng.random(n) < 0.1] = np.nan
    logit = 2 * a + np.where(d == "x", 3.0, np.where(d == "y", -3.0, 0.0))
    y = pd.Series((rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int), name="y")
    return pd.DataFrame({"a": a, "d": d}), y


def imputing_pipeline(encoder: OneHotEncoder) -> Pipeline:
    categorical = make_pipeline(SimpleImputer(strategy="most_frequent"), encoder)
    prep = ColumnTransformer([("num", "passthrough", ["a"]), ("cat", categorical, ["d"])])
    return make_pipeline(prep, LogisticRegression())


def publish_model(env, model, X, y, **options):
    return publish(model, X, y, name="churn", alias="production", registry=env.registry, signer=env.signer, **options)


def rest_predict(app, context, rows: list[dict]) -> tuple[int, dict]:
    return call(app, load_event("predict.json", body={"instances": rows}), context)


def server_for(env) -> ModelServer:
    return ModelServer(env.registry, env.verifier)


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    """A folder on sys.path for modules the 'training script' imports; they are forgotten afterwards."""
    folder = tmp_path / "project"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    before = set(sys.modules)
    yield folder
    for name in set(sys.modules) - before:
        if name.startswith(("feature_utils", "shipped_", "mypkg")):
            del sys.modules[name]


def write_module(folder: Path, name: str, source: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(source))
    return path


# -- nulls -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encoder", [OneHotEncoder(handle_unknown="ignore"), OneHotEncoder()], ids=["ignore", "default"]
)
def test_a_null_category_is_served_as_the_pipeline_scores_it(registry_env, function_env, lambda_context, encoder):
    # GIVEN the pipeline: a categorical column imputed (most frequent) then one-hot encoded, 10 % missing
    X, y = nulls_data()
    model = imputing_pipeline(encoder).fit(X, y)
    card = publish_model(registry_env, model, X, y)
    expected = model.predict_proba(pd.DataFrame({"a": [ROW["a"]], "d": pd.Series([np.nan], dtype="str")}))[0, 1]
    # WHEN the row is sent with "d": null to the API, and as an empty CSV cell to batch scoring
    status, body = rest_predict(import_predict_app(), lambda_context, [ROW])
    loaded = server_for(registry_env).get("churn", alias="production")
    scored, errors = score_file(loaded, f"a,d\n{ROW['a']!r},\n".encode(), "csv")
    # THEN both answer the pipeline's probability (not the one of an unknown category), and the card says why
    assert status == 200
    assert body["probabilities"][0]["1"] == pytest.approx(expected, rel=1e-12)
    batch_row = next(csv.DictReader(io.StringIO(scored.decode())))
    assert float(batch_row["proba_1"]) == pytest.approx(expected, rel=1e-12) and errors == b""
    assert card.input_schema.feature("d").missing == "nan"
    assert card.parity["rows"] > 0 and card.parity["max_rel_difference"] <= 1e-9


def test_the_gate_refuses_a_publish_whose_served_nulls_would_differ(registry_env, monkeypatch):
    # GIVEN the serving path of before this fix, where a null category reached the model as None
    monkeypatch.setattr(schema_module, "missing_marker", lambda s: schema_module.MISSING_NONE)
    X, y = nulls_data()
    model = imputing_pipeline(OneHotEncoder(handle_unknown="ignore")).fit(X, y)
    # WHEN it is published
    with pytest.raises(PublishRejected) as refused:
        publish_model(registry_env, model, X, y)
    # THEN the parity gate refuses it, naming the feature, rows and both values
    message = refused.value.message
    assert message.startswith("[parity]") and "'d'" in message and "null in every one of them" in message
    assert "in memory [" in message and "served [" in message
    assert refused.value.errors and all(e.field == "d" for e in refused.value.errors)
    assert not registry_env.registry.list_versions("churn")


@pytest.mark.parametrize("impute", [True, False], ids=["imputed", "native-nan"])
def test_numeric_nulls_are_served_as_nan(registry_env, function_env, lambda_context, impute):
    # GIVEN a numeric column with missing values, imputed by the pipeline or handled by the model itself
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    X.loc[rng.random(300) < 0.15, "b"] = np.nan
    y = pd.Series((X["a"] + X["b"].fillna(2) > 0).astype(int), name="y")
    model = (
        make_pipeline(SimpleImputer(strategy="median"), LogisticRegression())
        if impute
        else HistGradientBoostingClassifier(max_iter=20)
    ).fit(X, y)
    publish_model(registry_env, model, X, y)
    # WHEN a row with a null is scored
    status, body = rest_predict(import_predict_app(), lambda_context, [{"a": 0.3, "b": None}])
    # THEN it is the model's answer for NaN
    expected = model.predict_proba(pd.DataFrame({"a": [0.3], "b": [np.nan]}))[0, 1]
    assert status == 200 and body["probabilities"][0]["1"] == pytest.approx(expected, rel=1e-12)


# -- code the model needs ------------------------------------------------------------------------------------------


class SubtractTransform(TransformerMixin, BaseEstimator):
    """Defined in the 'training script' (this module plays __main__ below)."""

    def fit(self, X, y=None):
        self.mean_ = np.asarray(X, dtype=float).mean(axis=0)
        return self

    def transform(self, X):
        return np.asarray(X, dtype=float) - self.mean_


def numeric_data(n: int = 300) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(5)
    X = pd.DataFrame({"a": rng.normal(size=n) + 3, "b": rng.uniform(1, 5, size=n)})
    return X, pd.Series((X["a"] / X["b"] + rng.normal(scale=0.3, size=n) > 1).astype(int), name="y")


def test_a_class_from_the_training_script_is_refused_naming_it_and_the_fix(registry_env, monkeypatch):
    # GIVEN a pipeline whose transformer class lives in __main__ (as when defined in the training script)
    monkeypatch.setattr(SubtractTransform, "__module__", "__main__")
    monkeypatch.setitem(sys.modules["__main__"].__dict__, "SubtractTransform", SubtractTransform)
    X, y = numeric_data()
    model = Pipeline([("sub", SubtractTransform()), ("clf", LogisticRegression())]).fit(X, y)
    # WHEN it is published
    with pytest.raises(PublishRejected) as refused:
        publish_model(registry_env, model, X, y)
    # THEN publish refuses, naming the class and how to ship it; nothing is stored
    assert "[user_code]" in refused.value.message and "SubtractTransform" in refused.value.message
    assert "code=[" in refused.value.message
    assert not registry_env.registry.list_versions("churn")


SHIPPED_TRANSFORMER = """
    import numpy as np
    from sklearn.base import BaseEstimator, TransformerMixin

    class SubtractTransform(TransformerMixin, BaseEstimator):
        def fit(self, X, y=None):
            self.mean_ = np.asarray(X, dtype=float).mean(axis=0)
            return self

        def transform(self, X):
            return np.asarray(X, dtype=float) - self.mean_
"""


def test_a_custom_transformer_shipped_with_code_is_served_equal(registry_env, function_env, lambda_context, module_dir):
    # GIVEN the same transformer moved to a module of the project, and shipped with the model
    path = write_module(module_dir, "shipped_transform.py", SHIPPED_TRANSFORMER)
    from shipped_transform import SubtractTransform as Shipped

    X, y = numeric_data()
    model = Pipeline([("sub", Shipped()), ("clf", LogisticRegression())]).fit(X, y)
    card = publish_model(registry_env, model, X, y, code=[str(path)])
    # WHEN a container that never saw the module answers (the module is gone from this process)
    del sys.modules["shipped_transform"]
    status, body = rest_predict(import_predict_app(), lambda_context, [{"a": 3.5, "b": 2.0}])
    # THEN the card lists the file with its sha256 and the answer is the pipeline's
    assert card.code["modules"] == ["shipped_transform"] and card.code["files"][0]["path"] == "shipped_transform.py"
    expected = model.predict_proba(pd.DataFrame({"a": [3.5], "b": [2.0]}))[0, 1]
    assert status == 200 and body["probabilities"][0]["1"] == pytest.approx(expected, rel=1e-12)


FEATURE_UTILS = """
    import numpy as np

    SCALE = {scale}

    def add_ratio(X):
        X = X.copy()
        X["ratio"] = X["a"] / X["b"] * SCALE
        return X
"""


def test_a_function_transformer_over_a_shipped_module_is_served_and_refused_without_it(
    registry_env, function_env, lambda_context, module_dir
):
    # GIVEN a FunctionTransformer whose function lives in a helper module next to the training script
    path = write_module(module_dir, "feature_utils.py", FEATURE_UTILS.format(scale=1.0))
    from feature_utils import add_ratio

    X, y = numeric_data()
    model = make_pipeline(FunctionTransformer(add_ratio), StandardScaler(), LogisticRegression()).fit(X, y)
    # WHEN it is published without the module, then with it
    with pytest.raises(PublishRejected) as refused:
        publish_model(registry_env, model, X, y)
    card = publish_model(registry_env, model, X, y, code=[str(path)])
    status, body = rest_predict(import_predict_app(), lambda_context, [{"a": 3.0, "b": 4.0}])
    # THEN the first is refused naming the module and --code; the second is served with the pipeline's answer
    assert "'feature_utils'" in refused.value.message and "code=" in refused.value.message
    assert card.version == "1"
    expected = model.predict_proba(pd.DataFrame({"a": [3.0], "b": [4.0]}))[0, 1]
    assert status == 200 and body["probabilities"][0]["1"] == pytest.approx(expected, rel=1e-12)


def test_the_gate_refuses_a_model_that_depends_on_state_set_in_the_training_process(registry_env, module_dir):
    # GIVEN a shipped module whose setting the training script changed in memory (SCALE = 3 instead of 1)
    path = write_module(module_dir, "feature_utils.py", FEATURE_UTILS.format(scale=1.0))
    import feature_utils

    feature_utils.SCALE = 3.0
    X, y = numeric_data()
    model = make_pipeline(FunctionTransformer(feature_utils.add_ratio), LogisticRegression()).fit(X, y)
    # WHEN it is published: a fresh process loads the module as written, with SCALE = 1
    with pytest.raises(PublishRejected) as refused:
        publish_model(registry_env, model, X, y, code=[str(path)])
    # THEN the parity gate refuses it with rows and both values
    assert refused.value.message.startswith("[parity] served probabilities differ")
    assert "in memory" in refused.value.message and "served" in refused.value.message


def test_two_models_shipping_different_versions_of_one_module_load_side_by_side(registry_env, module_dir, tmp_path):
    # GIVEN two models, each shipped with its own feature_utils (SCALE 1 and SCALE 5)
    X, y = numeric_data()
    cards = []
    for name, scale in (("first", 1.0), ("second", 5.0)):
        folder = tmp_path / name
        folder.mkdir()
        path = write_module(folder, "feature_utils.py", FEATURE_UTILS.format(scale=scale))
        sys.modules.pop("feature_utils", None)
        sys.path.insert(0, str(folder))
        try:
            import feature_utils

            model = make_pipeline(FunctionTransformer(feature_utils.add_ratio), LogisticRegression()).fit(X, y)
            expected = model.predict_proba(X.head(3))[:, 1]
            publish(model, X, y, name=name, registry=registry_env.registry, signer=registry_env.signer, code=[path])
            cards.append((name, expected))
        finally:
            sys.path.remove(str(folder))
            sys.modules.pop("feature_utils", None)
    # WHEN one container loads both
    server = server_for(registry_env)
    answers = {name: server.get(name, version="1").scorer.score_frame(X.head(3)) for name, _ in cards}
    # THEN each answers with its own module, and neither module is left in sys.modules
    for name, expected in cards:
        got = [p["1"] for p in answers[name].probabilities]
        assert got == pytest.approx(expected.tolist(), rel=1e-12)
    assert "feature_utils" not in sys.modules


def test_tampered_shipped_code_is_refused_before_unpickling(registry_env, module_dir):
    # GIVEN a published model with shipped code, whose code file is then rewritten in the bucket
    path = write_module(module_dir, "feature_utils.py", FEATURE_UTILS.format(scale=1.0))
    from feature_utils import add_ratio

    X, y = numeric_data()
    model = make_pipeline(FunctionTransformer(add_ratio), LogisticRegression()).fit(X, y)
    card = publish_model(registry_env, model, X, y, code=[str(path)])
    key = registry_env.registry.code_key("churn", card.version, "feature_utils.py")
    registry_env.s3().put_object(Bucket=registry_env.bucket, Key=key, Body=b"raise SystemExit('owned')\n")
    # WHEN the runtime loads it
    with pytest.raises(ModelRefused) as refused:
        server_for(registry_env).get("churn", alias="production")
    # THEN it is refused for the code, with no unpickling done
    assert refused.value.reason == "code_tampered"


# -- packages the layer lacks, versions ----------------------------------------------------------------------------


def test_a_package_missing_from_the_layer_is_refused_naming_it_and_the_extras_file(registry_env):
    lightgbm = pytest.importorskip("lightgbm", reason="lightgbm is in the dev extra")
    # GIVEN a pipeline ending in a LightGBM classifier, and the default layer (no lightgbm)
    X, y = numeric_data()
    model = make_pipeline(StandardScaler(), lightgbm.LGBMClassifier(n_estimators=10, verbose=-1)).fit(X, y)
    # WHEN it is published
    with pytest.raises(PublishRejected) as refused:
        publish_model(registry_env, model, X, y)
    # THEN the refusal names the package, its pin and where to add it
    message = refused.value.message
    assert "[runtime_packages]" in message and f"lightgbm=={lightgbm.__version__}" in message
    assert "layers/deps/extra-requirements.txt" in message


def test_a_pickle_recording_another_sklearn_version_is_refused_with_both_versions(
    registry_env, tmp_path, monkeypatch, churn, logistic_model
):
    # GIVEN a ColumnTransformer pipeline and a scaler + logistic regression saved by "scikit-learn 1.3.2"
    X, y = numeric_data()
    simple = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    files = {}
    with monkeypatch.context() as m:
        m.setattr(sklearn.base, "__version__", "1.3.2")
        for label, model in (("simple", simple), ("column_transformer", logistic_model)):
            files[label] = tmp_path / f"{label}.joblib"
            joblib.dump(model, files[label])
    assert scan_artifact(files["simple"].read_bytes()).sklearn_versions == ("1.3.2",)
    # WHEN each file is published from this scikit-learn
    refusals = {}
    for label, (Xd, yd) in {"simple": (X, y), "column_transformer": (churn.X, churn.y)}.items():
        with pytest.raises(PublishRejected) as refused:
            publish_model(registry_env, str(files[label]), Xd, yd)
        refusals[label] = refused.value.message
    # THEN both are refused naming the pickle's version and the runtime's, never an error from inside the model
    for message in refusals.values():
        assert "[sklearn_version]" in message and "1.3.2" in message and sklearn.__version__ in message
        assert "has no attribute" not in message


def test_the_card_records_the_version_the_artifact_was_pickled_with(registry_env, tmp_path):
    # GIVEN a model saved to a file by this scikit-learn
    X, y = numeric_data()
    path = tmp_path / "model.joblib"
    joblib.dump(make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y), path)
    # WHEN the file is published
    card = publish_model(registry_env, str(path), X, y)
    stored = registry_env.registry.fetch_artifact(card)
    # THEN the uploaded bytes are the file's and the card's version is the one the pickle records
    assert stored == path.read_bytes()
    assert card.library_versions["scikit-learn"] == scan_artifact(stored).sklearn_version == sklearn.__version__
    assert card.parity["runtime"]["scikit-learn"] == sklearn.__version__


# -- refusals are PublishRejected ----------------------------------------------------------------------------------


EXPLODING = """
    from sklearn.linear_model import LinearRegression

    class ExplodingRegressor(LinearRegression):
        def predict(self, X):
            if len(X) > 50:
                raise FloatingPointError("overflow in matmul")
            return super().predict(X)
"""


def test_an_unpicklable_model_is_a_publish_rejected_naming_the_artifact(registry_env):
    # GIVEN a pipeline holding a lambda, which pickle cannot store
    X, y = numeric_data()
    model = make_pipeline(FunctionTransformer(lambda X: X), LinearRegression()).fit(X, y.astype(float))
    # WHEN it is published
    with pytest.raises(PublishRejected) as refused:
        publish_model(registry_env, model, X, y.astype(float))
    # THEN the refusal names the check, not pickle's exception
    assert refused.value.message.startswith("[artifact] the model cannot be pickled")


def test_an_estimator_raising_during_publish_is_a_publish_rejected_naming_the_check(registry_env, module_dir):
    # GIVEN a shipped regressor whose predict raises on inputs of more than 50 rows
    path = write_module(module_dir, "shipped_boom.py", EXPLODING)
    from shipped_boom import ExplodingRegressor

    X, y = numeric_data()
    model = ExplodingRegressor().fit(X, y.astype(float))
    # WHEN it is published
    with pytest.raises(PublishRejected) as refused:
        publish_model(registry_env, model, X, y.astype(float), code=[str(path)])
    # THEN the refusal names the step and the estimator's error
    assert refused.value.message.startswith("[metrics] FloatingPointError: overflow in matmul")


NAN_REGRESSOR = """
    import numpy as np
    from sklearn.linear_model import LinearRegression

    class NanRegressor(LinearRegression):
        def predict(self, X):
            out = super().predict(X)
            return np.where(np.asarray(X)[:, 1] > 4.5, np.nan, out)
"""


def test_a_model_giving_non_finite_answers_on_its_own_data_is_refused(registry_env, module_dir):
    # GIVEN a shipped regressor that answers NaN when b > 4.5, which happens in its own training data
    path = write_module(module_dir, "shipped_nan.py", NAN_REGRESSOR)
    from shipped_nan import NanRegressor

    X, y = numeric_data()
    model = NanRegressor().fit(X, y.astype(float))
    # WHEN it is published
    with pytest.raises(PublishRejected) as refused:
        publish_model(registry_env, model, X, y.astype(float), code=[str(path)])
    # THEN publish refuses rather than storing a model that would fail those rows for every client
    assert "non-finite" in refused.value.message or "NaN" in refused.value.message
    assert not registry_env.registry.list_versions("churn")


def test_the_publish_attribute_is_the_function_on_every_access():
    # GIVEN the package, after importing every publishing module
    import sklambda.publishing.parity
    import sklambda.publishing.publisher

    # WHEN sklambda.publish is read twice
    first, second = sklambda.publish, sklambda.publish
    # THEN both are the publish function
    assert callable(first) and first is second is publish


def test_parity_rows_cover_nulls_categories_and_extremes():
    from sklambda.publishing.parity import select_rows

    # GIVEN training data with nulls, three categories and a long tail
    X, _ = nulls_data(2000)
    # WHEN the gate picks its rows
    rows = select_rows(X)
    # THEN they hold nulls, every category and both extremes of the numeric feature
    assert rows["d"].isna().any() and set(rows["d"].dropna()) == {"x", "y", "z"}
    assert rows["a"].min() == X["a"].min() and rows["a"].max() == X["a"].max()
    assert len(rows) <= 256 + 10


def test_the_gate_cost_is_recorded_in_the_card(published):
    assert published.parity["routes"] == ["rest", "v2", "batch_csv", "batch_jsonl"]
    assert published.parity["seconds"] > 0 and json.dumps(published.parity)


# -- the target runtime's package set ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lightgbm_runtime(tmp_path_factory):
    from sklambda_infra import layer
    from sklambda_infra.runtime import local_runtime

    extras = tmp_path_factory.mktemp("extras") / "extra-requirements.txt"
    extras.write_text(runtimes.LIGHTGBM_EXTRAS)
    return local_runtime(requirements=[layer.REQUIREMENTS, extras])


def test_a_lightgbm_pipeline_publishes_once_the_layer_has_lightgbm(registry_env, lightgbm_runtime):
    lightgbm = pytest.importorskip("lightgbm", reason="lightgbm is in the dev extra")
    # GIVEN a pipeline ending in LightGBM, and a target runtime whose layer pins lightgbm (extra-requirements.txt)
    X, y = numeric_data()
    model = make_pipeline(StandardScaler(), lightgbm.LGBMClassifier(n_estimators=10, verbose=-1)).fit(X, y)
    # WHEN it is published to that runtime and loaded back
    card = publish_model(registry_env, model, X, y, runtime=lightgbm_runtime)
    loaded = server_for(registry_env).get("churn", alias="production")
    # THEN the gate ran in the runtime with lightgbm and the served answers are the pipeline's
    assert "lightgbm" in card.parity["needs"]["modules"]
    assert card.parity["runtime"]["fingerprint"] == lightgbm_runtime.manifest.fingerprint
    got = [p["1"] for p in loaded.scorer.score_frame(X.head(20)).probabilities]
    assert got == pytest.approx(model.predict_proba(X.head(20))[:, 1].tolist(), rel=1e-12)


def test_the_other_supported_sklearn_serves_its_own_pickles_and_refuses_this_ones(registry_env, tmp_path):
    from sklambda_infra.runtime import local_runtime

    # GIVEN a runtime built with scikit-learn 1.8.0, and a model pickled by that version (fitted in that runtime)
    runtime = local_runtime(sklearn=runtimes.OTHER_SKLEARN)
    X, y = numeric_data()
    X.assign(y=y).to_csv(tmp_path / "train.csv", index=False)
    path = tmp_path / "model-1.8.joblib"
    fit = f"""
import sys; sys.path[:0] = {[str(p) for p in runtime.paths]!r}
import joblib, pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
data = pd.read_csv({str(tmp_path / "train.csv")!r})
joblib.dump(make_pipeline(StandardScaler(), LogisticRegression()).fit(data[["a", "b"]], data["y"]), {str(path)!r})
"""
    import subprocess

    subprocess.run([sys.executable, "-I", "-S", "-c", fit], check=True, capture_output=True, timeout=120)
    # WHEN it is published to that runtime, and a model pickled by this process's 1.9 is published there too
    card = publish_model(registry_env, str(path), X, y, runtime=runtime)
    with pytest.raises(PublishRejected) as refused:
        publish_model(registry_env, make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y), X, y,
                      runtime=runtime)  # fmt: skip
    # THEN the first is accepted with the pickle's version on record and checked in that runtime; the second is
    # refused naming both versions
    assert card.library_versions["scikit-learn"] == runtimes.OTHER_SKLEARN == card.parity["runtime"]["scikit-learn"]
    assert "[sklearn_version]" in refused.value.message
    assert sklearn.__version__ in refused.value.message and runtimes.OTHER_SKLEARN in refused.value.message
