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
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
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

from sklambda.compiled.program import ARRAY_DTYPES, CompiledProgram
from sklambda.registry.schema import InputSchema

TREES = (DecisionTreeClassifier, DecisionTreeRegressor, ExtraTreeClassifier, ExtraTreeRegressor)
FORESTS = (RandomForestClassifier, RandomForestRegressor, ExtraTreesClassifier, ExtraTreesRegressor)
BOOSTING = (GradientBoostingClassifier, GradientBoostingRegressor)
HIST_BOOSTING = (HistGradientBoostingClassifier, HistGradientBoostingRegressor)
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
    *BOOSTING,
    *HIST_BOOSTING,
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

    Supported (exact classes, fitted on a DataFrame, as scikit-learn 1.9.1 computes them):
    - Pipeline (nested ones too) and, as its first step, ColumnTransformer: transformers by column name, mask or
      selector, "drop"/"passthrough", a remainder, dense or sparse output;
    - SimpleImputer (missing_values=NaN; numbers: any strategy, keep_empty_features, add_indicator; categories:
      most_frequent/constant), StandardScaler, MinMaxScaler (clip), MaxAbsScaler, RobustScaler (also on a sparse
      matrix where scikit-learn allows it), OneHotEncoder (handle_unknown "error"/"ignore", drop "first"/"if_binary"/
      explicit; no infrequent categories), OrdinalEncoder (unknown_value, encoded_missing_value; float64);
    - as the last step: LogisticRegression (binary, multinomial), LinearRegression, Ridge, Lasso, ElasticNet (one
      target); DecisionTree, ExtraTree, RandomForest, ExtraTrees classifiers and regressors (one output; missing
      values); GradientBoosting classifier/regressor (default or "zero" init; log_loss, exponential); HistGradient
      Boosting classifier/regressor (numeric splits, identity-link regression losses).

    Returns a CompiledProgram whose header lists `schema.names` as the features the evaluator is given. Raises
    NotCompilable naming the step ("prep/num/scale" inside a ColumnTransformer) and the reason for anything else.
    """
    steps = _flatten(model)
    if not steps:
        raise NotCompilable("the pipeline has no steps to compile")
    arrays = _Arrays()
    kinds = {f.name: f.dtype != "object" for f in schema.features}  # numeric (float64/int64/bool) or not
    compiled: list[dict] = []
    # None: the DataFrame itself; a list of numeric flags: its columns, not yet a matrix; an int: a float64 matrix of
    # that many columns.
    state: Any = None
    sparse = False  # scikit-learn would pass a scipy sparse matrix here (a ColumnTransformer's sparse_output_)
    for i, (name, est) in enumerate(steps):
        last = i == len(steps) - 1
        if type(est) not in SUPPORTED:
            raise _refuse(name, est)
        ops: list[dict] = []
        if type(est) is ColumnTransformer:
            if state is not None or last:
                raise _refuse(name, est, "is supported only as a pipeline's first step")
            op, state = _column_transformer(name, est, kinds, arrays)
            sparse = bool(est.sparse_output_)
            ops.append(op)
        else:
            if state is None:
                state = _select(name, est, kinds, ops)
            if last:
                if isinstance(state, list) and not all(state):
                    raise _refuse(name, est, "is given a category column unencoded")
                width = len(state) if isinstance(state, list) else state
                ops.append(_estimator(name, est, width, arrays, sparse=sparse))
            else:
                op, state, sparse = _transformer(name, est, state, arrays, sparse=sparse, columns=_names(ops))
                ops.append(op)
        compiled.append({"name": name, "estimator": _qualname(est), "ops": ops})
    final = steps[-1][1]
    if is_classifier(final):
        classes = np.asarray(final.classes_)
        dtype = None if classes.dtype.kind in "OUS" else classes.dtype.str
        if dtype is not None and dtype not in ARRAY_DTYPES:
            raise _refuse(steps[-1][0], final, f"has classes of dtype {classes.dtype}, not supported")
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


def _flatten(model: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """A Pipeline's steps, nested Pipelines' steps in their place ("outer/inner"), "passthrough" and None left out;
    a bare estimator is one step named by its class."""
    if type(model) is not Pipeline:
        return [(type(model).__name__, model)]
    steps = []
    for name, est in model.steps:
        if est is None or (isinstance(est, str) and est == "passthrough"):
            continue
        steps.extend(_flatten(est, f"{prefix}{name}/") if type(est) is Pipeline else [(prefix + name, est)])
    return steps


def _names(ops: list[dict]) -> list[str]:
    """The column names a "select" operation just picked (for an encoder's messages), else none."""
    return list(ops[-1]["columns"]) if ops and ops[-1]["op"] == "select" else []


def _select(name: str, est: Any, kinds: dict[str, bool], ops: list[dict]) -> list[bool]:
    names = getattr(est, "feature_names_in_", None)
    if names is None:
        raise _refuse(name, est, "was fitted without column names: the compiled evaluator maps columns by name")
    for column in names:
        if column not in kinds:
            raise _refuse(name, est, f"reads column {column!r}, which the schema does not have")
    ops.append({"op": "select", "columns": [str(c) for c in names]})
    return [kinds[c] for c in names]


def _column_transformer(name: str, ct: ColumnTransformer, kinds: dict[str, bool], arrays: _Arrays) -> tuple[dict, int]:
    names = getattr(ct, "feature_names_in_", None)
    if names is None:
        raise _refuse(name, ct, "was fitted without column names: the compiled evaluator maps columns by name")
    blocks, width = [], 0
    for part, trans, _ in ct.transformers_:
        indices = ct._transformer_to_input_indices.get(part, [])  # columns resolved at fit (names, masks, callables)
        if (isinstance(trans, str) and trans == "drop") or len(indices) == 0:
            continue
        columns = [str(names[i]) for i in indices]
        where = f"{name}/{part}"
        for column in columns:
            if column not in kinds:
                raise _refuse(where, trans, f"reads column {column!r}, which the schema does not have")
        ops: list[dict] = []
        state: Any = [kinds[c] for c in columns]  # a list of numeric flags: columns not yet a matrix
        sparse = False
        inner = _flatten(trans, f"{where}/") if type(trans) is Pipeline else [(where, trans)]
        if (isinstance(trans, str) and trans == "passthrough") or _is_identity(trans):
            inner = []
        for step, est in inner:
            if type(est) not in SUPPORTED or type(est) is ColumnTransformer or not hasattr(est, "transform"):
                raise _refuse(step, est)
            op, state, sparse = _transformer(step, est, state, arrays, sparse=sparse, columns=columns)
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


def _transformer(
    step: str, est: Any, state: Any, arrays: _Arrays, *, sparse: bool, columns: Sequence[str] = ()
) -> tuple[dict, Any, bool]:
    """One transform: `state` is a list of numeric flags (columns before any transform) or a matrix width; `sparse`
    whether scikit-learn gives it a sparse matrix. Returns the operation, the state and sparseness after it."""
    if sparse and type(est) not in SCALERS:
        raise _refuse(step, est, "is given a sparse matrix; the compiled evaluator reproduces only scalers on one")
    if not isinstance(state, list):
        state = [True] * state
    if type(est) in ENCODERS:
        op, width = _encoder(step, est, list(columns) or [f"x{i}" for i in range(len(state))], arrays)
        return op, width, type(est) is OneHotEncoder and bool(est.sparse_output)
    if type(est) is SimpleImputer and not any(state):
        return (*_category_imputer(step, est, arrays), False)
    if not all(state):
        raise _refuse(step, est, "is given a category column; the compiled evaluator runs it on numbers only")
    if type(est) is SimpleImputer:
        return (*_imputer(step, est, arrays), False)
    return (*_scaler(step, est, arrays, sparse=sparse), sparse)


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


def _category_imputer(step: str, est: SimpleImputer, arrays: _Arrays) -> tuple[dict, list[bool]]:
    """SimpleImputer on category columns (an object array): a NaN (`X != X`; a None is a category to it) replaced by
    the column's statistic; columns whose statistic is NaN (all missing in training) dropped."""
    if not (isinstance(est.missing_values, float) and math.isnan(est.missing_values)):
        raise _refuse(step, est, f"imputes missing_values={est.missing_values!r}; only NaN is supported")
    if est.add_indicator:
        raise _refuse(step, est, "adds a missing indicator to category columns, not supported")
    statistics = list(est.statistics_)
    missing = [isinstance(v, float | np.floating) and math.isnan(v) for v in statistics]
    keep = [j for j, m in enumerate(missing) if not m or est.keep_empty_features]
    values = _json_values(step, est, [None if m else v for v, m in zip(statistics, missing, strict=True)])
    op = {"op": "impute_categories", "statistics": values, "keep": keep}
    return op, [False] * len(keep)


def _scaler(step: str, est: Any, arrays: _Arrays, *, sparse: bool) -> tuple[dict, int]:
    """The in-place steps of each scaler's `transform`, in scikit-learn 1.9.1's order. On a sparse matrix a scaler
    multiplies by the reciprocal (`inplace_column_scale(X, 1 / scale_)`) instead of dividing, and cannot center."""
    steps: list[list] = []
    kind = type(est)

    def divide(scale: np.ndarray) -> list:
        return ["mul", arrays.add(1.0 / scale)] if sparse else ["div", arrays.add(scale)]

    if sparse and (
        kind is MinMaxScaler
        or (kind is StandardScaler and est.with_mean)
        or (kind is RobustScaler and est.with_centering)
    ):
        raise _refuse(step, est, "would center a sparse matrix, which scikit-learn refuses")
    if kind is StandardScaler:
        if est.with_mean:
            steps.append(["sub", arrays.add(est.mean_)])
        if est.with_std:
            steps.append(divide(est.scale_))
    elif kind is MinMaxScaler:
        steps += [["mul", arrays.add(est.scale_)], ["add", arrays.add(est.min_)]]
        if est.clip:
            steps.append(["clip", float(est.feature_range[0]), float(est.feature_range[1])])
    elif kind is MaxAbsScaler:
        steps.append(divide(est.scale_))
        if getattr(est, "clip", False):
            steps.append(["clip", -1.0, 1.0])
    else:
        if est.with_centering:
            steps.append(["sub", arrays.add(est.center_)])
        if est.with_scaling:
            steps.append(divide(est.scale_))
    return {"op": "arithmetic", "steps": steps}, int(est.n_features_in_)


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


def _estimator(step: str, est: Any, width: int, arrays: _Arrays, *, sparse: bool) -> dict:
    """The final estimator's operation; `sparse`: scikit-learn gives it a sparse matrix (trees then refuse NaN, as
    `_support_missing_values` is False for sparse input; HistGradientBoosting refuses sparse input altogether)."""
    kind = type(est)
    if kind is LogisticRegression:
        link = "logistic" if len(est.classes_) == 2 else "softmax"
        coef, intercept = arrays.add(est.coef_), arrays.add(est.intercept_)
        return {"op": "linear", "coef": coef, "intercept": intercept, "link": link, "sparse": sparse}
    if kind in LINEAR_REGRESSORS:
        if np.ndim(est.coef_) != 1:
            raise _refuse(step, est, "has several targets; only one is supported")
        return {
            "op": "linear",
            "coef": arrays.add(est.coef_),
            "intercept": arrays.add(est.intercept_),
            "link": "identity",
            "sparse": sparse,
        }
    if kind in TREES or kind in FORESTS:
        trees = [est] if kind in TREES else list(est.estimators_)
        if est.n_outputs_ != 1:
            raise _refuse(step, est, "has several outputs; only one is supported")
        classifier = is_classifier(est)
        nodes = [_Nodes.of_tree(t, t.tree_.value[:, 0, : (t.n_classes_ if classifier else 1)]) for t in trees]
        # As BaseForest._validate_X_predict / BaseDecisionTree._support_missing_values.
        allow_nan = bool(trees[0].__sklearn_tags__().input_tags.allow_nan) and not sparse
        op = _trees(nodes, arrays, allow_nan=allow_nan)
        return {**op, "combine": "mean", "link": "proba" if classifier else "identity", "init": None}
    if kind in HIST_BOOSTING:
        if sparse:
            raise _refuse(step, est, "is given a sparse matrix, which scikit-learn refuses")
        return _hist_boosting(step, est, arrays)
    if kind in BOOSTING:
        return _boosting(step, est, width, arrays)
    raise _refuse(step, est, "is not supported as the final estimator")


def _boosting(step: str, est: Any, width: int, arrays: _Arrays) -> dict:
    """Gradient boosting: its constant initial raw prediction, then each stage's trees scaled by learning_rate (in
    predict_stages, `out[i, k] += scale * value[leaf]`): tree k of a stage writes column k, zeros elsewhere."""
    if not (est.init_ == "zero" or type(est.init_) in (DummyClassifier, DummyRegressor)):
        raise _refuse(
            step, est, f"has an init estimator {_qualname(est.init_)}; only the default or 'zero' is supported"
        )
    # The initial raw prediction of a dummy (prior or mean) init does not depend on X: computed once here, exactly.
    init = est._raw_predict_init(np.zeros((1, width), dtype=np.float32))[0]
    stages = est.estimators_  # [n_stages, K]
    K = stages.shape[1]
    trees = []
    for stage in stages:
        for k, tree in enumerate(stage):
            scaled = est.learning_rate * tree.tree_.value[:, 0, 0]
            value = np.zeros((len(scaled), K))
            value[:, k] = scaled
            trees.append(_Nodes.of_tree(tree, value))
    op = _trees(trees, arrays, allow_nan=False)  # validate_data refuses NaN in boosting's predict
    if not is_classifier(est):
        link = "identity"
    elif K > 1:
        link = "softmax"
    else:
        link = "exponential" if est.loss == "exponential" else "logistic"
    return {**op, "combine": "sum", "link": link, "init": arrays.add(init), "binary_decision": ">="}


def _hist_boosting(step: str, est: Any, arrays: _Arrays) -> dict:
    """HistGradientBoosting on numbers: float64 input (no float32 cast, NaN and infinity accepted), zeros plus
    `_baseline_prediction`, then each iteration's predictors' outputs added to their class's column
    (`_predict_iterations`); splits compare `x <= num_threshold`."""
    if est._preprocessor is not None or (est.is_categorical_ is not None and np.any(est.is_categorical_)):
        raise _refuse(step, est, "has categorical features; only numeric splits are supported")
    classifier = is_classifier(est)
    if not classifier and type(est._loss.link).__name__ != "IdentityLink":
        raise _refuse(step, est, f"has loss {est.loss!r}, whose inverse link is not the identity: not supported")
    K = est.n_trees_per_iteration_
    trees = []
    for iteration in est._predictors:
        for k, predictor in enumerate(iteration):
            if predictor.nodes["is_categorical"].any():
                raise _refuse(step, est, "has categorical splits; only numeric splits are supported")
            value = np.zeros((len(predictor.nodes), K))
            value[:, k] = predictor.nodes["value"]
            trees.append(_Nodes.of_predictor(predictor, value))
    init = np.zeros(K) + np.asarray(est._baseline_prediction, dtype=np.float64).reshape(-1)
    link = "identity" if not classifier else ("softmax" if K > 1 else "logistic")
    op = _trees(trees, arrays, allow_nan=True, dtype="float64")
    # predict is `raw > 0` here (np.argmax([0.5, 0.5]) is 0), `raw >= 0` in GradientBoostingClassifier.
    return {
        **op,
        "combine": "sum",
        "link": link,
        "init": arrays.add(init),
        "binary_decision": ">",
        "check_finite": False,
    }


class _Nodes:
    """One tree's nodes as the evaluator reads them: split feature, threshold, children (a leaf has none),
    missing_go_to_left, and each node's output row (read at leaves only)."""

    def __init__(self, feature, threshold, left, right, leaf, missing_left, value, depth) -> None:
        self.feature, self.threshold, self.left, self.right = feature, threshold, left, right
        self.leaf, self.missing_left, self.value, self.depth = leaf, missing_left, value, depth

    @classmethod
    def of_tree(cls, tree: Any, value: np.ndarray) -> _Nodes:
        """A fitted sklearn.tree estimator's `tree_` (a leaf has children_left == -1)."""
        t = tree.tree_
        leaf = t.children_left == -1
        return cls(
            t.feature, t.threshold, t.children_left, t.children_right, leaf, t.missing_go_to_left, value, t.max_depth
        )

    @classmethod
    def of_predictor(cls, predictor: Any, value: np.ndarray) -> _Nodes:
        """A HistGradientBoosting TreePredictor's `nodes` (a structured array with is_leaf, left, right...)."""
        n = predictor.nodes
        return cls(
            n["feature_idx"],
            n["num_threshold"],
            n["left"].astype(np.int64),
            n["right"].astype(np.int64),
            n["is_leaf"].astype(bool),
            n["missing_go_to_left"],
            value,
            int(n["depth"].max()),
        )


def _trees(trees: list[_Nodes], arrays: _Arrays, *, allow_nan: bool, dtype: str = "float32") -> dict:
    """Every tree's nodes stacked, node ids global; a leaf's children are itself (see evaluate._trees)."""
    features, thresholds, children, missing_left, values, roots = [], [], [], [], [], []
    offset, depth = 0, 0
    for t in trees:
        n = len(t.leaf)
        ids = np.arange(n) + offset
        roots.append(offset)
        features.append(np.where(t.leaf, 0, t.feature))
        thresholds.append(np.where(t.leaf, 0.0, t.threshold))
        left = np.where(t.leaf, ids, np.asarray(t.left) + offset)
        right = np.where(t.leaf, ids, np.asarray(t.right) + offset)
        children.append(np.stack([left, right], axis=1))
        missing_left.append(np.asarray(t.missing_left, dtype=bool))
        values.append(t.value)
        depth = max(depth, t.depth)
        offset += n
    index = np.int32 if offset < 2**31 else np.int64
    return {
        "op": "trees",
        "feature": arrays.add(np.concatenate(features), index),
        "threshold": arrays.add(np.concatenate(thresholds)),
        "children": arrays.add(np.concatenate(children), index),
        "missing_go_to_left": arrays.add(np.concatenate(missing_left), bool),
        "value": arrays.add(np.concatenate(values)),
        "roots": arrays.add(roots, index),
        "depth": int(depth),
        "n_trees": len(trees),
        "allow_nan": allow_nan,
        "dtype": dtype,
    }
