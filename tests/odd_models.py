"""Tiny estimators whose outputs are not finite for inputs never seen in training, and their data.

Every training row has `divisor` >= 1, so publishing (and a parity check on the training rows) sees only finite
outputs; a row with `divisor` 0 makes the regressor divide by zero and the classifier give NaN probabilities.
Defined in a module of their own so joblib can pickle and load them by reference.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

FEATURES = ["amount", "divisor"]


def ratio_data(n: int = 300, seed: int = 3) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"amount": rng.uniform(1.0, 100.0, n).round(2), "divisor": rng.integers(1, 10, n)})
    y_reg = pd.Series(X["amount"] / X["divisor"], name="ratio")
    y_cls = pd.Series(np.where(X["amount"] / X["divisor"] > 10, "high", "low"), name="level")
    return SimpleNamespace(X=X, y_reg=y_reg, y_cls=y_cls)


class RatioRegressor(RegressorMixin, BaseEstimator):
    """Predicts amount / divisor: infinite when divisor is 0 (and NaN when amount is 0 too)."""

    def fit(self, X: pd.DataFrame, y=None) -> RatioRegressor:
        self.feature_names_in_ = np.asarray(FEATURES, dtype=object)
        self.n_features_in_ = len(FEATURES)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.asarray(X["amount"], dtype=float) / np.asarray(X["divisor"], dtype=float)


class ShakyClassifier(ClassifierMixin, BaseEstimator):
    """A logistic regression whose probabilities are NaN for a row with divisor 0."""

    def fit(self, X: pd.DataFrame, y) -> ShakyClassifier:
        self.inner_ = LogisticRegression().fit(X[FEATURES], y)
        self.classes_ = self.inner_.classes_
        self.feature_names_in_ = np.asarray(FEATURES, dtype=object)
        self.n_features_in_ = len(FEATURES)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        proba = self.inner_.predict_proba(X[FEATURES])
        proba[np.asarray(X["divisor"]) == 0] = np.nan
        return proba

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def linear_svc(data: SimpleNamespace) -> LinearSVC:
    """A classifier without predict_proba."""
    return LinearSVC().fit(data.X, data.y_cls)
