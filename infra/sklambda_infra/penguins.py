"""The sample model on real data: the Palmer penguins, shipped offline inside the `palmerpenguins` wheel.

`make demo` and `sklambda local up` publish it, and `sklambda sample write DIR` writes the files the README's
"publish your own model" walkthrough publishes from. The synthetic churn data of `sklambda_infra.sample` stays
what benchmarks and most tests fit on (any size, any seed); this is the one real dataset.

The data: 344 adult Adélie, Chinstrap and Gentoo penguins measured on three islands near Palmer Station,
Antarctica, 2007-2009 (Gorman, Williams & Fraser 2014, PLoS ONE 9(3): e90081; CC0), as `load_penguins_raw()`
returns it from the CSV inside the package (no network). Each bird has a field identifier ("Individual ID",
marked pii here: it identifies one data subject, as a customer id would), three categorical and six numeric
features, with nulls in the blood isotope ratios.

The target is the bird's sex (female/male, from molecular sexing of a blood sample in the study). It is a real
binary question, balanced (165/168), that field biologists answer from measurements when a blood test is not
at hand; binary, so publish can choose a decision threshold from the costs of the two errors. The 11 birds
without a recorded sex are left out (the target is unknown), which leaves 333.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NAME = "penguins"  # the model name the sample is published under
TARGET = "sex"
POSITIVE_CLASS = "female"
PII = ("individual_id",)
CATEGORICAL = ("species", "island", "clutch_completion")
# Groups the card and each model-quality window report metrics for (publish --segment).
SEGMENTS = ("island", "species")
NUMERIC = (
    "culmen_length_mm",
    "culmen_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
    "delta_15n",
    "delta_13c",
)
FEATURES = (*PII, *CATEGORICAL, *NUMERIC)
# Raw column -> feature name (snake case, units kept; "culmen" is the study's word for the bill's upper ridge).
RAW_COLUMNS = {
    "Individual ID": "individual_id",
    "Species": "species",
    "Island": "island",
    "Clutch Completion": "clutch_completion",
    "Culmen Length (mm)": "culmen_length_mm",
    "Culmen Depth (mm)": "culmen_depth_mm",
    "Flipper Length (mm)": "flipper_length_mm",
    "Body Mass (g)": "body_mass_g",
    "Delta 15 N (o/oo)": "delta_15n",
    "Delta 13 C (o/oo)": "delta_13c",
    "Sex": TARGET,
}
# Measured in whole millimetres and grams: integers once the birds that were not measured are left out.
INTEGER = ("flipper_length_mm", "body_mass_g")
SAMPLE_FILES = ("model.joblib", "train.csv", "holdout.csv")
HOLDOUT_SHARE = 0.25
SEED = 0
# How the sample is described on its model card, and the costs its decision threshold is chosen from: the demo
# story is a study of females that fits a tracking logger to each bird predicted female; a male tagged by mistake
# wastes a logger and a foraging trip's data (false positive, cost 3), a female passed over is just one bird fewer
# (false negative, cost 1).
COSTS = (3.0, 1.0)
CARD = {
    "description": "Probability that an adult penguin is female, from its measurements (Palmer Station LTER data).",
    "owner": "seabird-ecology@example.com",
    "intended_use": "Choose birds for a study of females when no blood sample has been sexed yet.",
    "limitations": [
        "333 adult birds from three islands, 2007-2009: other colonies, seasons or chicks are out of scope",
        "Sex from molecular sexing in the study; a prediction is not a replacement for it",
    ],
}


def load() -> tuple[pd.DataFrame, pd.Series]:
    """The 333 sexed penguins: (X [333 rows, FEATURES], y [333] of "female"/"male", named TARGET).

    Read from the CSV inside the palmerpenguins wheel (no network). Species are shortened to their common name
    ("Adelie", "Chinstrap", "Gentoo"), clutch completion and sex are lower case; body mass (g) and flipper length
    (mm) are integers; the isotope ratios (per mil) keep their nulls (birds whose blood was not analysed).
    Raises ModuleNotFoundError when palmerpenguins (a dev dependency) is not installed.
    """
    from palmerpenguins import load_penguins_raw

    raw = load_penguins_raw()[list(RAW_COLUMNS)].rename(columns=RAW_COLUMNS)
    raw = raw[raw[TARGET].isin(["MALE", "FEMALE"])].reset_index(drop=True)
    frame = raw.assign(
        species=raw["species"].str.partition(" ")[0],
        clutch_completion=raw["clutch_completion"].str.lower(),
        sex=raw[TARGET].str.lower(),
    )
    frame = frame.astype({column: "int64" for column in INTEGER})
    return frame[list(FEATURES)], frame[TARGET].rename(TARGET)


def split(
    X: pd.DataFrame, y: pd.Series, holdout: float = HOLDOUT_SHARE, seed: int = SEED
) -> tuple[pd.DataFrame, pd.Series, pd.DataFrame, pd.Series]:
    """(X_train, y_train, X_holdout, y_holdout): a seeded shuffle, stratified by sex, `holdout` of the rows held
    out; each part's index starts at 0."""
    rng = np.random.default_rng(seed)
    held = np.zeros(len(X), dtype=bool)
    for label in sorted(y.unique()):
        rows = np.flatnonzero(y.to_numpy() == label)
        held[rng.choice(rows, size=round(len(rows) * holdout), replace=False)] = True

    def part(mask: np.ndarray) -> tuple[pd.DataFrame, pd.Series]:
        return X[mask].reset_index(drop=True), y[mask].reset_index(drop=True)

    return (*part(~held), *part(held))


def preprocessor() -> ColumnTransformer:
    """Median-impute and scale the numeric features, one-hot the categories (unseen ones ignored);
    individual_id is in the schema (marked pii) but never reaches the model: remainder="drop"."""
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    return ColumnTransformer(
        [("num", numeric, list(NUMERIC)), ("cat", OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL))],
        remainder="drop",
    )


def logistic_pipeline() -> Pipeline:
    """The sample model: a logistic regression behind `preprocessor()`."""
    return Pipeline([("prep", preprocessor()), ("model", LogisticRegression(max_iter=1000))])


def forest_pipeline(n_estimators: int = 100, seed: int = SEED) -> Pipeline:
    """A random forest behind `preprocessor()` (the demo's second version)."""
    forest = RandomForestClassifier(n_estimators=n_estimators, min_samples_leaf=2, n_jobs=1, random_state=seed)
    return Pipeline([("prep", preprocessor()), ("model", forest)])


def resample_index(rows: int, n: int, seed: int) -> np.ndarray:
    """`n` positions drawn with replacement from range(rows), seeded (which real rows `resample` takes)."""
    return np.random.default_rng(seed).integers(0, rows, n)


def resample(X: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """`n` rows drawn with replacement from the real rows of X (traffic for a dataset of 333 birds), index 0..n-1."""
    return X.iloc[resample_index(len(X), n, seed)].reset_index(drop=True)


def card_options(X_holdout: pd.DataFrame, y_holdout: pd.Series) -> dict[str, Any]:
    """publish()'s keyword arguments for the sample: holdout, pii, the decision threshold from COSTS about
    POSITIVE_CLASS, the card's documentation and a metric gate."""
    return {
        "X_holdout": X_holdout,
        "y_holdout": y_holdout,
        "pii": PII,
        "positive_class": POSITIVE_CLASS,
        "costs": COSTS,
        "min_metrics": {"roc_auc": 0.9},
        # Per-group metrics in the card and in each model-quality window.
        "segments": SEGMENTS,
        **CARD,
    }


def publish_sample(registry: Any, signer: Any, *, alias: str | None = "production", name: str = NAME) -> Any:
    """Fit the sample (logistic_pipeline on the training split) and publish it as a new version of `name`,
    pointing `alias` at it. Needs SKLAMBDA_RUNTIME_PATH (the target runtime) as any publish does.

    Returns the signed ModelCard. Raises what sklambda.publish raises (PublishRejected, RegistryConflict, ...).
    """
    from sklambda.publishing import publish

    X_train, y_train, X_holdout, y_holdout = split(*load())
    model = logistic_pipeline().fit(X_train, y_train)
    return publish(
        model,
        X_train,
        y_train,
        name=name,
        registry=registry,
        signer=signer,
        alias=alias,
        **card_options(X_holdout, y_holdout),
    )


def write_sample(folder: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write SAMPLE_FILES into `folder` (created if missing): model.joblib, the fitted logistic_pipeline, and
    train.csv / holdout.csv, its training and holdout rows with the TARGET column last. Returns their paths.

    Raises FileExistsError naming the first file already there, unless `overwrite`.
    """
    folder = Path(folder)
    paths = [folder / name for name in SAMPLE_FILES]
    existing = [p for p in paths if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"{existing[0]} exists (pass --overwrite to replace the sample files)")
    folder.mkdir(parents=True, exist_ok=True)
    X_train, y_train, X_holdout, y_holdout = split(*load())
    model = logistic_pipeline().fit(X_train, y_train)
    model_path, train_path, holdout_path = paths
    # Written beside, then moved: a reader never sees half a file.
    partial = model_path.with_name(model_path.name + ".partial")
    joblib.dump(model, partial)
    shutil.move(partial, model_path)
    X_train.assign(**{TARGET: y_train}).to_csv(train_path, index=False)
    X_holdout.assign(**{TARGET: y_holdout}).to_csv(holdout_path, index=False)
    return paths
