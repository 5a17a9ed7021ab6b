"""Publisher side: a fitted scikit-learn pipeline compiled into a CompiledProgram, or NotCompilable saying why.

Only steps whose transform/predict arithmetic `sklambda.compiled.evaluate` repeats exactly are compiled (the exact
classes in SUPPORTED, never subclasses, which may override it); anything else is refused, never approximated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import is_classifier
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeClassifier, ExtraTreeRegressor

from sklambda.compiled.program import CompiledProgram
from sklambda.registry.schema import InputSchema

TREES = (DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeClassifier, ExtraTreeRegressor)
FORESTS = (RandomForestClassifier, RandomForestRegressor, ExtraTreesClassifier, ExtraTreesRegressor)
LINEAR_REGRESSORS = (LinearRegression, Ridge, Lasso, ElasticNet)
SCALERS = (StandardScaler, MinMaxScaler, MaxAbsScaler, RobustScaler)
ENCODERS = (OneHotEncoder, OrdinalEncoder)
SUPPORTED = (
    ColumnTransformer,
    SimpleImputer,
    *SCALERS,
    *ENCODERS,
    LogisticRegression,
    *LINEAR_REGRESSORS,
    *TREES,
    *FORESTS,
)


class NotCompilable(Exception):
    """The model holds a step the compiled evaluator cannot reproduce exactly; the message names the step and why."""


def _qualname(est: Any) -> str:
    return f"{type(est).__module__.split('._')[0]}.{type(est).__name__}"


def _refuse(step: str, est: Any, why: str | None = None) -> NotCompilable:
    what = f"step {step!r} ({_qualname(est)})"
    return NotCompilable(f"{what} {why}" if why else f"{what} is not supported by the compiled evaluator")


class _Arrays:
    """The arrays of the program being built, named a0, a1, ... in order of creation."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def add(self, array: Any, dtype: Any = np.float64) -> str:
        name = f"a{len(self.arrays)}"
        self.arrays[name] = np.ascontiguousarray(array, dtype=dtype)
        return name


def compile_model(model: Any, schema: InputSchema) -> CompiledProgram:
    """Compile a fitted estimator or Pipeline that scores DataFrames shaped by `schema` (the card's input schema).

    Supported steps (exact classes): ColumnTransformer (transformers by column name, "drop"/"passthrough", remainder),
    nested Pipelines, SimpleImputer (numeric, missing_values=NaN, any strategy, add_indicator), StandardScaler,
    MinMaxScaler, MaxAbsScaler, RobustScaler, OneHotEncoder (handle_unknown "error"/"ignore", drop), OrdinalEncoder,
    and as the last step LogisticRegression, LinearRegression, Ridge, Lasso, ElasticNet (one target), decision trees,
    random forests and extra trees (one output). A bare estimator must have been fitted on a DataFrame.

    Returns a CompiledProgram. Raises NotCompilable naming the step and the reason for anything else.
    """
    steps = [(n, e) for n, e in model.steps if e not in (None, "passthrough")] if type(model) is Pipeline else []
    if type(model) is not Pipeline:
        steps = [(type(model).__name__, model)]
    if not steps:
        raise NotCompilable("the pipeline has no steps to compile")
    arrays = _Arrays()
    kinds = {f.name: f.dtype != "object" for f in schema.features}  # numeric (float64/int64/bool) or not
    compiled: list[dict] = []
    state: Any = None  # None: the DataFrame itself; an int: a float64 matrix of that many columns
    for i, (name, est) in enumerate(steps):
        last = i == len(steps) - 1
        if type(est) not in SUPPORTED:
            raise _refuse(name, est)
        ops: list[dict] = []
        if type(est) is ColumnTransformer:
            if state is not None or last:
                raise _refuse(name, est, "is supported only as a pipeline's first step")
            op, state = _column_transformer(name, est, kinds, arrays)
            ops.append(op)
        else:
            if state is None:
                state = _select(name, est, kinds, ops)
            if last:
                ops.append(_estimator(name, est, state, arrays))
            else:
                op, state = _transformer(name, est, [True] * state, arrays)
                ops.append(op)
        compiled.append({"name": name, "estimator": _qualname(est), "ops": ops})
    final = steps[-1][1]
    if is_classifier(final):
        classes = np.asarray(final.classes_)
        dtype = None if classes.dtype.kind in "OUS" else classes.dtype.str
        estimator = {
            "kind": "classifier",
            "classes": _json_values(steps[-1][0], final, classes.tolist()),
            "classes_dtype": dtype,
            "has_proba": True,
        }
    else:
        estimator = {"kind": "regressor", "classes": None, "classes_dtype": None, "has_proba": False}
    header = {"features": list(schema.names), "steps": compiled, "estimator": estimator}
    return CompiledProgram(header=header, arrays=arrays.arrays)


def _select(name: str, est: Any, kinds: dict[str, bool], ops: list[dict]) -> int:
    names = getattr(est, "feature_names_in_", None)
    if names is None:
        raise _refuse(name, est, "was fitted without column names: the compiled evaluator maps columns by name")
    for column in names:
        if not kinds.get(column, False):
            raise _refuse(name, est, f"reads column {column!r}, which is not a numeric feature of the schema")
    ops.append({"op": "select", "columns": [str(c) for c in names]})
    return len(names)


def _column_transformer(name: str, ct: ColumnTransformer, kinds: dict[str, bool], arrays: _Arrays) -> tuple[dict, int]:
    names = getattr(ct, "feature_names_in_", None)
    if names is None:
        raise _refuse(name, ct, "was fitted without column names: the compiled evaluator maps columns by name")
    blocks, width = [], 0
    for part, trans, _ in ct.transformers_:
        indices = ct._transformer_to_input_indices.get(part, [])  # columns resolved at fit (names, masks, callables)
        if trans == "drop" or len(indices) == 0:
            continue
        columns = [str(names[i]) for i in indices]
        where = f"{name}/{part}"
        for column in columns:
            if column not in kinds:
                raise _refuse(where, trans, f"reads column {column!r}, which the schema does not have")
        ops: list[dict] = []
        state: Any = [kinds[c] for c in columns]  # a list of numeric flags: columns not yet a matrix
        inner = (
            [(where, trans)]
            if type(trans) is not Pipeline
            else [(f"{where}/{n}", e) for n, e in trans.steps if e not in (None, "passthrough")]
        )
        if trans == "passthrough" or _is_identity(trans):
            inner = []
        for step, est in inner:
            if type(est) not in SUPPORTED or type(est) is ColumnTransformer or not hasattr(est, "transform"):
                raise _refuse(step, est)
            op, state = _transformer(step, est, state, arrays, columns=columns)
            ops.append(op)
        if isinstance(state, list):
            if not all(state):
                raise _refuse(where, trans, "passes a category column through to the estimator unencoded")
            state = len(state)
        blocks.append({"name": part, "columns": columns, "ops": ops})
        width += state
    if not blocks:
        raise _refuse(name, ct, "selects no columns")
    return {"op": "column_transformer", "blocks": blocks}, width


def _is_identity(est: Any) -> bool:
    """A fitted ColumnTransformer holds "passthrough" as FunctionTransformer(func=None): the identity."""
    return type(est) is FunctionTransformer and est.func is None


def _transformer(step: str, est: Any, state: Any, arrays: _Arrays, *, columns: Sequence[str] = ()) -> tuple[dict, int]:
    """One transform: `state` is a list of numeric flags (columns before any transform) or a matrix width."""
    if type(est) in ENCODERS:
        if not isinstance(state, list):
            state = [True] * state
        return _encoder(step, est, list(columns) or [f"x{i}" for i in range(len(state))], arrays)
    if isinstance(state, list) and not all(state):
        raise _refuse(step, est, "is given a category column; the compiled evaluator runs it on numbers only")
    if type(est) is SimpleImputer:
        return _imputer(step, est, arrays)
    return _scaler(step, est, arrays)


def _imputer(step: str, est: SimpleImputer, arrays: _Arrays) -> tuple[dict, int]:
    if not (isinstance(est.missing_values, float) and math.isnan(est.missing_values)):
        raise _refuse(step, est, f"imputes missing_values={est.missing_values!r}; only NaN is supported")
    statistics = np.asarray(est.statistics_, dtype=np.float64)
    keep = None
    if not est.keep_empty_features and np.isnan(statistics).any():
        keep = np.flatnonzero(~np.isnan(statistics))
    indicator = None
    if est.add_indicator:
        if est.indicator_.features != "missing-only":
            raise _refuse(step, est, "has a missing indicator of features='all', not supported")
        indicator = np.asarray(est.indicator_.features_)
    width = (len(keep) if keep is not None else len(statistics)) + (len(indicator) if indicator is not None else 0)
    op = {
        "op": "impute",
        "statistics": arrays.add(statistics),
        "keep": arrays.add(keep, np.int64) if keep is not None else None,
        "indicator": arrays.add(indicator, np.int64) if indicator is not None else None,
    }
    return op, width


def _scaler(step: str, est: Any, arrays: _Arrays) -> tuple[dict, int]:
    # The in-place steps of each scaler's dense `transform`, in scikit-learn 1.9.1's order.
    steps: list[list] = []
    kind = type(est)
    if kind is StandardScaler:
        if est.with_mean:
            steps.append(["sub", arrays.add(est.mean_)])
        if est.with_std:
            steps.append(["div", arrays.add(est.scale_)])
        width = len(est.scale_ if est.scale_ is not None else est.mean_)
    elif kind is MinMaxScaler:
        steps += [["mul", arrays.add(est.scale_)], ["add", arrays.add(est.min_)]]
        if est.clip:
            steps.append(["clip", float(est.feature_range[0]), float(est.feature_range[1])])
        width = len(est.scale_)
    elif kind is MaxAbsScaler:
        steps.append(["div", arrays.add(est.scale_)])
        if getattr(est, "clip", False):
            steps.append(["clip", -1.0, 1.0])
        width = len(est.scale_)
    else:
        if est.with_centering:
            steps.append(["sub", arrays.add(est.center_)])
        if est.with_scaling:
            steps.append(["div", arrays.add(est.scale_)])
        width = est.n_features_in_
    return {"op": "arithmetic", "steps": steps}, width


def _json_values(step: str, est: Any, values: list) -> list:
    out = []
    for v in values:
        if isinstance(v, np.generic):
            v = v.item()
        if v is None or isinstance(v, bool | int | str) or (isinstance(v, float) and math.isfinite(v)):
            out.append(v)
        else:
            raise _refuse(step, est, f"has a category or class {v!r} of type {type(v).__name__}, not str or number")
    return out


def _encoder(step: str, est: Any, columns: list[str], arrays: _Arrays) -> tuple[dict, int]:
    if getattr(est, "_infrequent_enabled", False):
        raise _refuse(step, est, "groups infrequent categories (max_categories/min_frequency): not supported")
    features, width = [], 0
    drop = getattr(est, "drop_idx_", None)
    for i, (column, categories) in enumerate(zip(columns, est.categories_, strict=True)):
        values = list(categories)
        nan_index = None
        for k, v in enumerate(values):
            if isinstance(v, float | np.floating) and math.isnan(v):
                nan_index, values[k] = k, None
        feature = {"name": column, "categories": _json_values(step, est, values), "nan_index": nan_index}
        if type(est) is OneHotEncoder:
            dropped = drop[i] if drop is not None else None
            out = [
                -1 if k == dropped else width + k - (1 if dropped is not None and k > dropped else 0)
                for k in range(len(values))
            ]
            feature["map"] = arrays.add(out, np.int64)
            width += len(values) - (dropped is not None)
        features.append(feature)
    if type(est) is OneHotEncoder:
        unknown = est.handle_unknown
        if unknown not in ("error", "ignore", "infrequent_if_exist", "warn"):
            raise _refuse(step, est, f"has handle_unknown={unknown!r}, not supported")
        return {
            "op": "one_hot",
            "features": features,
            "width": width,
            "handle_unknown": "error" if unknown == "error" else "ignore",
        }, width
    if np.dtype(est.dtype) != np.float64:
        raise _refuse(step, est, f"encodes to dtype {est.dtype}; only float64 is supported")
    unknown_value = est.unknown_value if est.handle_unknown == "use_encoded_value" else None
    missing = est.encoded_missing_value
    op = {
        "op": "ordinal",
        "features": features,
        "handle_unknown": est.handle_unknown,
        "unknown_value": None if unknown_value is None or np.isnan(unknown_value) else float(unknown_value),
        "encoded_missing_value": None if np.isnan(missing) else float(missing),
    }
    return op, len(features)


def _estimator(step: str, est: Any, width: int, arrays: _Arrays) -> dict:
    kind = type(est)
    if kind is LogisticRegression:
        link = "logistic" if len(est.classes_) == 2 else "softmax"
        return {"op": "linear", "coef": arrays.add(est.coef_), "intercept": arrays.add(est.intercept_), "link": link}
    if kind in LINEAR_REGRESSORS:
        if np.ndim(est.coef_) != 1:
            raise _refuse(step, est, "has several targets; only one is supported")
        return {
            "op": "linear",
            "coef": arrays.add(est.coef_),
            "intercept": arrays.add(est.intercept_),
            "link": "identity",
        }
    if kind in TREES or kind in FORESTS:
        trees = [est] if kind in TREES else list(est.estimators_)
        if est.n_outputs_ != 1:
            raise _refuse(step, est, "has several outputs; only one is supported")
        return _trees(trees, is_classifier(est), arrays)
    raise _refuse(step, est, "is not supported as the final estimator")


def _trees(trees: list, classifier: bool, arrays: _Arrays) -> dict:
    """Every tree's nodes stacked, node ids global; a leaf's children are itself (see evaluate._trees)."""
    features, thresholds, children, missing_left, values, roots = [], [], [], [], [], []
    offset, depth = 0, 0
    for tree in trees:
        t = tree.tree_
        n = t.node_count
        leaf = t.children_left == -1
        ids = np.arange(n) + offset
        roots.append(offset)
        features.append(np.where(leaf, 0, t.feature))
        thresholds.append(np.where(leaf, 0.0, t.threshold))
        children.append(
            np.stack(
                [np.where(leaf, ids, t.children_left + offset), np.where(leaf, ids, t.children_right + offset)], axis=1
            )
        )
        missing_left.append(np.asarray(t.missing_go_to_left, dtype=bool))
        width = tree.n_classes_ if classifier else 1
        values.append(t.value[:, 0, :width])
        depth = max(depth, t.max_depth)
        offset += n
    index = np.int32 if offset < 2**31 else np.int64
    return {
        "op": "trees",
        "kind": "classifier" if classifier else "regressor",
        "feature": arrays.add(np.concatenate(features), index),
        "threshold": arrays.add(np.concatenate(thresholds)),
        "children": arrays.add(np.concatenate(children), index),
        "missing_go_to_left": arrays.add(np.concatenate(missing_left), bool),
        "value": arrays.add(np.concatenate(values)),
        "roots": arrays.add(roots, index),
        "depth": int(depth),
        "n_trees": len(trees),
        "allow_nan": bool(trees[0].__sklearn_tags__().input_tags.allow_nan),
    }
