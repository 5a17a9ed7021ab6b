"""Publishing: turn a fitted estimator and its data into a signed, immutable registry version."""

from __future__ import annotations

import hashlib
import io
import os
import platform
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import joblib
import numpy as np
import pandas as pd
import scipy
import sklearn
from sklearn import metrics as skm
from sklearn.base import is_classifier, is_regressor
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted

from sklambda import config
from sklambda.baseline import feature_baseline, prediction_baseline
from sklambda.card import CLASSIFICATION, REGRESSION, ArtifactRef, ModelCard
from sklambda.errors import ConfigurationError, InvalidInput, PublishRejected, RegistryConflict
from sklambda.registry import Registry, check_name, check_version
from sklambda.schema import infer_schema
from sklambda.signing import CardSigner


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "joblib": joblib.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scipy": scipy.__version__,
    }


def describe_estimator(model: Any) -> str:
    cls = type(model)
    text = f"{cls.__module__}.{cls.__qualname__}"
    steps = getattr(model, "steps", None)
    if steps:
        text += "(" + " -> ".join(f"{n}={type(s).__name__}" for n, s in steps) + ")"
    return text


def _task(model: Any) -> str:
    if is_classifier(model):
        return CLASSIFICATION
    if is_regressor(model):
        return REGRESSION
    raise PublishRejected(f"{type(model).__name__} is neither a classifier nor a regressor")


def _metrics(model: Any, task: str, X: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    if task == REGRESSION:
        pred = model.predict(X)
        return {
            "r2": float(skm.r2_score(y, pred)),
            "mae": float(skm.mean_absolute_error(y, pred)),
            "rmse": float(np.sqrt(skm.mean_squared_error(y, pred))),
        }
    pred = model.predict(X)
    out = {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y, pred)),
        "f1_macro": float(skm.f1_score(y, pred, average="macro")),
    }
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(X)
        classes = list(model.classes_)
        out["log_loss"] = float(skm.log_loss(y, proba, labels=classes))
        if len(set(np.asarray(y).tolist())) > 1:
            if len(classes) == 2:
                out["roc_auc"] = float(skm.roc_auc_score(np.asarray(y) == classes[1], proba[:, 1]))
            else:
                out["roc_auc_ovr"] = float(skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes))
    return out


def to_records(X: pd.DataFrame) -> list[dict]:
    """Rows as a JSON client would send them (NaN → null, numpy scalars → Python)."""
    frame = X.astype(object).where(X.notna(), None)
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in frame.to_dict("records")]


def build_card(
    model: Any,
    X: pd.DataFrame,
    y: Any,
    *,
    name: str,
    version: str,
    X_holdout: pd.DataFrame | None = None,
    y_holdout: Any = None,
    pii: Iterable[str] = (),
    nullable: Iterable[str] = (),
    categorical: Iterable[str] = (),
    description: str = "",
    tags: Mapping[str, str] | None = None,
) -> tuple[ModelCard, bytes]:
    """Compute schema, metrics and baseline, serialize the model; return the unsigned card and artifact."""
    check_name(name)
    check_version(version)
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise PublishRejected(f"{type(model).__name__} is not fitted: fit it before publishing") from None
    task = _task(model)
    if y is None:
        raise PublishRejected("no target values given")
    y = pd.Series(np.asarray(y))
    if len(X) == 0:
        raise PublishRejected("the training data is empty")
    if len(X) != len(y):
        raise PublishRejected(f"the training data has {len(X)} rows but the target has {len(y)}")
    schema = infer_schema(X, pii=pii, nullable=nullable, categorical=categorical)

    # Prove the serving path works before publishing: JSON-shaped rows → schema → frame → model.
    sample = to_records(X.head(5))
    try:
        frame = schema.validate(sample)
        model.predict(frame)
    except InvalidInput as e:
        raise PublishRejected(f"training rows do not pass the inferred schema: {e.message}") from None
    except Exception as e:
        raise PublishRejected(f"the model cannot score rows rebuilt from its schema: {e}") from None

    if X_holdout is not None and y_holdout is not None:
        if list(X_holdout.columns) != list(X.columns):
            raise PublishRejected("the holdout data does not have the training data's columns")
        metrics = {
            "split": "holdout",
            "rows": len(X_holdout),
            **_metrics(model, task, X_holdout, pd.Series(np.asarray(y_holdout))),
        }
    else:
        metrics = {"split": "training", "rows": len(X), **_metrics(model, task, X, y)}
    metrics["training_rows"] = len(X)

    classes = [c.item() if isinstance(c, np.generic) else c for c in model.classes_] if task == CLASSIFICATION else None
    pred = np.asarray(model.predict(X))
    proba = np.asarray(model.predict_proba(X)) if classes is not None and hasattr(model, "predict_proba") else None
    baseline = {"features": feature_baseline(X, schema), "predictions": prediction_baseline(pred, proba, classes)}

    buf = io.BytesIO()
    joblib.dump(model, buf)
    blob = buf.getvalue()
    sha = hashlib.sha256(blob).hexdigest()
    card = ModelCard(
        name=name,
        version=version,
        task=task,
        classes=tuple(classes) if classes is not None else None,
        target=str(y.name) if y.name is not None else None,
        estimator=describe_estimator(model),
        library_versions=library_versions(),
        input_schema=schema,
        metrics=metrics,
        baseline=baseline,
        artifact=ArtifactRef(key=Registry.artifact_key(name, version, sha), sha256=sha, size=len(blob)),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        description=description,
        tags=dict(tags or {}),
    )
    return card, blob


def publish(
    model: Any,
    X: pd.DataFrame,
    y: Any,
    *,
    name: str,
    registry: Registry | None = None,
    signer: CardSigner | None = None,
    version: str | None = None,
    alias: str | None = None,
    **card_options: Any,
) -> ModelCard:
    """Publish a fitted model as a new immutable version; optionally point `alias` at it.

    Without `registry`/`signer`, the bucket and signing key come from SKLAMBDA_MODEL_BUCKET and
    SKLAMBDA_SIGNING_KEY_ID.
    """
    registry = registry or Registry(_env(config.MODEL_BUCKET))
    signer = signer or CardSigner(_env(config.SIGNING_KEY_ID))
    version = version or registry.next_version(name)
    if registry.version_exists(name, version):
        raise RegistryConflict(f"model {name!r} version {version!r} already exists; versions are immutable")
    if isinstance(y, pd.Series) and y.name is None:
        y = y.rename("target")
    card, blob = build_card(model, X, y, name=name, version=version, **card_options)
    signed = signer.sign(card)
    registry.put_version(signed, blob)
    if alias:
        registry.set_alias(name, alias, version)
    return signed


def _env(name: str) -> str:
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"pass it explicitly or set the environment variable {name}")
    return value
