"""A realistic synthetic tabular dataset and the pipelines the demo, tests and benchmarks fit on it.

No network here, so no downloaded dataset: customer churn is simulated with plausible marginals
(skewed incomes, tenure, plan tiers, regions) and a logistic ground truth with interactions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

TARGET = "churned"
PII = ("customer_id",)
NUMERIC = ("age", "monthly_income", "tenure_months", "monthly_charges", "support_calls", "last_login_days")
CATEGORICAL = ("plan", "region", "payment_method", "has_partner")
FEATURES = (*PII, *NUMERIC, *CATEGORICAL)


# Concept drift for the demo: a competitor's cheap offer makes basic-plan customers leave (the log-odds of churn of a
# basic-plan customer rise by this much) while the customers themselves, the model's inputs, look as before.
COMPETITOR_OFFER = 1.6


def churn_data(n: int = 5000, seed: int = 0, *, competitor_offer: float = 0.0) -> tuple[pd.DataFrame, pd.Series]:
    """`n` simulated customers (FEATURES) and whether they churned ("yes"/"no"), reproducible from `seed`.

    competitor_offer: added to the log-odds of churn of basic-plan customers (COMPETITOR_OFFER: the demo's concept
    drift); 0 is the world the models are first trained in. The inputs are drawn the same way whatever its value.
    """
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 85, n)
    income = np.round(rng.lognormal(mean=10.6, sigma=0.5, size=n), 2)
    # A few customers never gave their income: the pipeline imputes it.
    income[rng.random(n) < 0.03] = np.nan
    tenure = rng.integers(0, 120, n)
    plan = rng.choice(["basic", "plus", "premium"], n, p=[0.5, 0.35, 0.15])
    base = {"basic": 25.0, "plus": 45.0, "premium": 80.0}
    charges = np.round(np.array([base[p] for p in plan]) + rng.normal(0, 6, n), 2)
    region = rng.choice(["north", "south", "east", "west", "central"], n, p=[0.25, 0.2, 0.2, 0.2, 0.15])
    payment = rng.choice(["card", "bank_transfer", "paypal", "invoice"], n, p=[0.45, 0.25, 0.2, 0.1])
    partner = rng.choice(["yes", "no"], n, p=[0.45, 0.55])
    calls = rng.poisson(1.2, n)
    login = rng.exponential(12, n).round().astype(int)
    logit = (
        -1.2
        - 0.025 * tenure
        + 0.45 * calls
        + 0.04 * login
        + 0.02 * (charges - 40)
        + np.where(payment == "invoice", 0.8, 0.0)
        + np.where(plan == "premium", -0.5, 0.0)
        + np.where(partner == "yes", -0.3, 0.0)
        - 0.01 * (age - 45)
        + np.where(plan == "basic", competitor_offer, 0.0)
    )
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    X = pd.DataFrame(
        {
            "customer_id": [f"C{100000 + i:07d}" for i in rng.permutation(n)],
            "age": age,
            "monthly_income": income,
            "tenure_months": tenure,
            "monthly_charges": charges,
            "support_calls": calls,
            "last_login_days": login,
            "plan": plan,
            "region": region,
            "payment_method": payment,
            "has_partner": partner,
        }
    )
    return X, pd.Series(np.where(y, "yes", "no"), name=TARGET)


def preprocessor() -> ColumnTransformer:
    # customer_id is in the schema (marked pii) but never reaches the model: remainder="drop".
    return ColumnTransformer(
        [
            (
                "num",
                Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
                list(NUMERIC),
            ),
            ("cat", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL)),
        ],
        remainder="drop",
    )


def logistic_pipeline() -> Pipeline:
    return Pipeline([("prep", preprocessor()), ("model", LogisticRegression(max_iter=1000))])


def forest_pipeline(n_estimators: int = 100, seed: int = 0) -> Pipeline:
    return Pipeline(
        [
            ("prep", preprocessor()),
            ("model", RandomForestClassifier(n_estimators=n_estimators, max_depth=12, n_jobs=1, random_state=seed)),
        ]
    )


def split(X: pd.DataFrame, y: pd.Series, holdout: float = 0.2):
    cut = int(len(X) * (1 - holdout))
    return X.iloc[:cut], y.iloc[:cut], X.iloc[cut:].reset_index(drop=True), y.iloc[cut:].reset_index(drop=True)
