"""Runs a compiled program (sklambda.compiled.program) with numpy alone: no scikit-learn, scipy or pandas import.

Every operation repeats scikit-learn 1.9.1's own float64 arithmetic in the same order, so the answers are scikit-learn's
bit for bit on every model the tests fit (they allow 1e-12, for BLAS builds that sum a product in another order):
- scalers run scikit-learn's in-place steps in order (`X -= mean_; X /= scale_`; on a sparse matrix `X *= 1 / scale_`);
- trees cast their input to float32 (`sklearn.tree._tree.DTYPE`) and compare `x <= threshold` against the float64
  thresholds, a NaN going where `missing_go_to_left` sends it (sklearn/tree/_tree.pyx `_apply_dense`); forests add the
  trees' outputs in tree order, starting from zero, then divide by the number of trees (`ForestClassifier.
  predict_proba`), which `np.add.accumulate` reproduces (a scan is sequential; `np.sum` may sum pairwise); boosting
  adds each stage's scaled leaf value to its initial raw prediction the same way (`predict_stages`,
  `_predict_iterations`);
- binary logistic regression is `scipy.special.expit` of the decision function, which is `1 / (1 + exp(-x))` with the
  C library's exp, i.e. Python's `math.exp` (numpy's vectorized exp differs in the last bit for ~2% of inputs);
  multinomial is `sklearn.utils.extmath.softmax`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from sklambda.compiled.program import ARRAY_DTYPES, CompiledFormatError, CompiledProgram


class UnknownCategory(ValueError):
    """A category the encoder never saw in training, given to an encoder with handle_unknown="error" (scikit-learn
    raises ValueError there too)."""


class InvalidModelInput(ValueError):
    """Input scikit-learn itself would refuse: a column missing, columns of unequal lengths, or a NaN or infinity
    reaching an estimator that does not accept one."""


# Rows computed at once where an operation holds an array per row and tree or feature (trees: [trees, rows, outputs],
# 6.5 MB for 100 trees and 2 classes; the sparse linear product: [rows, features, outputs]), so a batch of a million
# rows does not hold gigabytes. Rows are independent: slicing changes no answer.
ROWS_AT_ONCE = 4096

# The state flowing between operations: the input columns, a list of 1-D columns, or a 2-D float64 matrix.
Operation = Callable[[Any], Any]


class CompiledModel:
    """A fitted pipeline ready to score, built from a CompiledProgram.

    Attributes: `features` (the schema's names), `steps` (step names, nested ones as "outer/inner"), `classes` (the
    fitted classes_ as JSON values, or None), `has_proba`, `is_classifier`.

    Input everywhere is `columns`: every feature name of the card's schema mapped to a 1-D numpy array, all of one
    length (float64 for numbers with NaN for null, int64, bool, or object holding str categories and the schema's
    missing marker), i.e. the columns of the DataFrame scikit-learn would be given.
    """

    def __init__(self, program: CompiledProgram) -> None:
        header, arrays = program.header, program.arrays
        try:
            self.features: tuple[str, ...] = tuple(header["features"])
            self.steps: tuple[str, ...] = tuple(s["name"] for s in header["steps"])
            estimator = header["estimator"]
            self.classes: list | None = estimator.get("classes")
            self.has_proba: bool = bool(estimator.get("has_proba"))
            self.is_classifier: bool = estimator["kind"] == "classifier"
            if self.classes is not None:
                dtype = _choice(estimator.get("classes_dtype"), (None, *ARRAY_DTYPES), "classes_dtype")
                self._labels = np.array(self.classes, dtype=dtype or object)
            self._transforms: list[Operation] = []
            for step in header["steps"][:-1]:
                self._transforms.extend(_build_ops(step, arrays))
            *head, self._final = _build_ops(header["steps"][-1], arrays)
            self._transforms.extend(head)
        except (KeyError, TypeError, ValueError, IndexError) as e:
            if isinstance(e, CompiledFormatError):
                raise
            raise CompiledFormatError(f"compiled program steps malformed: {e!r}") from None

    @classmethod
    def from_bytes(cls, blob: bytes) -> CompiledModel:
        """The model of `CompiledProgram.to_bytes` output. Raises CompiledFormatError for damaged bytes."""
        return cls(CompiledProgram.from_bytes(blob))

    def _transform(self, columns: Mapping[str, np.ndarray]) -> Any:
        rows = None
        for name in self.features:
            if name not in columns:
                raise InvalidModelInput(f"column {name!r} missing from the input")
            n = len(columns[name])
            if rows is None:
                rows = n
            elif n != rows:
                raise InvalidModelInput(f"column {name!r} has {n} rows, others {rows}")
        state: Any = columns
        for op in self._transforms:
            state = op(state)
        return state

    def predict_proba(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Class probabilities, float64 of shape [rows, len(classes)], columns in `classes` order (scikit-learn's
        `predict_proba`). Raises AttributeError when the estimator has none (a regressor), InvalidModelInput or
        UnknownCategory (ValueErrors) for input scikit-learn would refuse."""
        if not self.has_proba:
            raise AttributeError("this compiled model has no predict_proba (not a probabilistic classifier)")
        return self._final(self._transform(columns))[0]

    def predict(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Predictions of shape [rows]: class labels (the fitted `classes_` values, as scikit-learn's `predict`) or
        float64 regression values. Raises as `predict_proba`."""
        return self.predict_and_proba(columns)[0]

    def predict_and_proba(self, columns: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """(`predict`, `predict_proba` or None without one) from one pass through the pipeline. Each is exactly what
        its own method returns: predict is scikit-learn's rule (e.g. `decision > 0` for a binary linear model, raw >=
        0 for binary gradient boosting), which is not always the argmax of the rounded probabilities at a tie."""
        proba, decided = self._final(self._transform(columns))
        labels = self._labels.take(decided, axis=0) if self.is_classifier else decided
        return labels, proba if self.has_proba else None


def _build_ops(step: dict, arrays: Mapping[str, np.ndarray]) -> list[Operation]:
    """The operations of one program step (the last one returns (probabilities or None, class index or value)).
    Raises CompiledFormatError for an operation this version does not know."""
    ops = []
    for spec in step["ops"]:
        builder = _BUILDERS.get(spec["op"])
        if builder is None:
            raise CompiledFormatError(f"step {step['name']!r}: unknown operation {spec['op']!r}")
        ops.append(builder(spec, arrays))
    return ops


def _choice(value: Any, allowed: tuple, what: str) -> Any:
    """`value` if it is one of `allowed`; CompiledFormatError otherwise (a program of a later version, or damaged)."""
    if value not in allowed:
        raise CompiledFormatError(f"compiled program has {what} {value!r}, not one of {allowed}")
    return value


def _ref(arrays: Mapping[str, np.ndarray], name: str | None) -> np.ndarray | None:
    if name is None:
        return None
    if name not in arrays:
        raise CompiledFormatError(f"compiled program names array {name!r}, which it does not hold")
    return arrays[name]


def _to_matrix(state: Any) -> np.ndarray:
    """A list of columns as the float64 matrix scikit-learn's validation makes of them (int64 and bool cast)."""
    if isinstance(state, np.ndarray):
        return state
    out = np.empty((len(state[0]), len(state)), dtype=np.float64)
    for j, column in enumerate(state):
        out[:, j] = column
    return out


def _column_transformer(spec: dict, arrays: Mapping[str, np.ndarray]) -> Operation:
    """ColumnTransformer: each block's columns through its operations, outputs side by side in block order."""
    blocks = [(list(b["columns"]), _build_ops(b, arrays)) for b in spec["blocks"]]

    def run(columns: Mapping[str, np.ndarray]) -> np.ndarray:
        outs = []
        for names, ops in blocks:
            state: Any = [columns[n] for n in names]
            for op in ops:
                state = op(state)
            outs.append(_to_matrix(state))
        return outs[0] if len(outs) == 1 else np.hstack(outs)

    return run


def _select(spec: dict, arrays: Mapping[str, np.ndarray]) -> Operation:
    """A DataFrame given straight to a step: its columns in `feature_names_in_` order (numbers become a float64
    matrix at the first step that needs one)."""
    names = list(spec["columns"])
    return lambda columns: [columns[n] for n in names]


def _impute(spec: dict, arrays: Mapping[str, np.ndarray]) -> Operation:
    """SimpleImputer(missing_values=nan) on numbers: NaN replaced by `statistics_`; columns whose statistic is NaN
    (all missing in training) dropped; `add_indicator` appends the missing mask of `indicator` columns as 0/1."""
    statistics = _ref(arrays, spec["statistics"])
    keep = _ref(arrays, spec.get("keep"))
    indicator = _ref(arrays, spec.get("indicator"))

    def run(state: Any) -> np.ndarray:
        X = _to_matrix(state)
        missing = np.isnan(X)
        out = np.where(missing, statistics, X)
        if keep is not None:
            out = out[:, keep]
        if indicator is not None:
            out = np.hstack([out, missing[:, indicator].astype(np.float64)])
        return out

    return run


def _impute_categories(spec: dict, arrays: Mapping[str, np.ndarray]) -> Operation:
    """SimpleImputer on category columns: NaN (a float NaN, not None, as scikit-learn's `X != X` mask) replaced by
    the column's statistic; only the `keep` columns go on."""
    statistics, keep = list(spec["statistics"]), [int(j) for j in spec["keep"]]

    def run(state: Any) -> list[np.ndarray]:
        out = []
        for j in keep:
            column = np.array(state[j], dtype=object)
            for i, v in enumerate(column.tolist()):
                if isinstance(v, float) and v != v:
                    column[i] = statistics[j]
            out.append(column)
        return out

    return run


def _arithmetic(spec: dict, arrays: Mapping[str, np.ndarray]) -> Operation:
    """A scaler's elementwise steps in scikit-learn's order: each ("sub"|"div"|"mul"|"add", array) or ("clip", lo,
    hi) applied to a float64 copy."""
    steps = [
        (_choice(s[0], ("sub", "div", "mul", "add", "clip"), "arithmetic step"), _ref(arrays, s[1]))
        if s[0] != "clip"
        else (s[0], (float(s[1]), float(s[2])))
        for s in spec["steps"]
    ]

    def run(state: Any) -> np.ndarray:
        X = np.array(_to_matrix(state), dtype=np.float64)
        for kind, operand in steps:
            if kind == "sub":
                X -= operand
            elif kind == "div":
                X /= operand
            elif kind == "mul":
                X *= operand
            elif kind == "add":
                X += operand
            else:
                np.clip(X, operand[0], operand[1], out=X)
        return X

    return run


def _category_table(feature: dict) -> tuple[dict, int | None]:
    table = {}
    for i, value in enumerate(feature["categories"]):
        if i != feature.get("nan_index"):
            table.setdefault(value, i)
    return table, feature.get("nan_index")


def _codes(values: np.ndarray, table: dict, nan_index: int | None) -> list[int]:
    """Each value's category index (-1 unknown), matching as scikit-learn's encoders do: by equality (a dict, as
    `sklearn.utils._encode._map_to_integer`), NaN matching the NaN category."""
    codes = []
    for v in values.tolist():
        i = table.get(v)
        if i is None:
            i = nan_index if (nan_index is not None and isinstance(v, float) and v != v) else -1
        codes.append(i)
    return codes


def _unknown(name: str, values: np.ndarray, codes: list[int]) -> UnknownCategory:
    value = values[codes.index(-1)]
    return UnknownCategory(f"found unknown category {value!r} in feature {name!r} during transform")


def _one_hot(spec: dict, arrays: Mapping[str, np.ndarray]) -> Operation:
    """OneHotEncoder: one 1.0 per feature at its category's output column (`map` gives the column of each category,
    -1 for the dropped one); an unknown category gives zeros (handle_unknown "ignore") or UnknownCategory."""
    features = []
    for f in spec["features"]:
        table, nan_index = _category_table(f)
        out_columns = np.append(_ref(arrays, f["map"]), -1)  # index -1 (unknown) maps to no column
        features.append((f["name"], table, nan_index, out_columns))
    width = int(spec["width"])
    error = _choice(spec["handle_unknown"], ("error", "ignore"), "handle_unknown") == "error"

    def run(state: Any) -> np.ndarray:
        columns = state if isinstance(state, list) else list(state.T)
        rows = len(columns[0])
        out = np.zeros((rows, width), dtype=np.float64)
        index = np.arange(rows)
        for (name, table, nan_index, out_columns), values in zip(features, columns, strict=True):
            codes = _codes(values, table, nan_index)
            if error and -1 in codes:
                raise _unknown(name, values, codes)
            where = out_columns[codes]
            hit = where >= 0
            out[index[hit], where[hit]] = 1.0
        return out

    return run


def _ordinal(spec: dict, arrays: Mapping[str, np.ndarray]) -> Operation:
    """OrdinalEncoder: each category's index as float64; the NaN category as `encoded_missing_value`; an unknown one
    as `unknown_value` (handle_unknown "use_encoded_value") or UnknownCategory."""
    features = [(f["name"], *_category_table(f)) for f in spec["features"]]
    unknown_value = spec.get("unknown_value")
    error = _choice(spec["handle_unknown"], ("error", "use_encoded_value"), "handle_unknown") == "error"
    missing = spec["encoded_missing_value"]
    missing = float("nan") if missing is None else float(missing)
    unknown = float("nan") if unknown_value is None else float(unknown_value)

    def run(state: Any) -> np.ndarray:
        columns = state if isinstance(state, list) else list(state.T)
        out = np.empty((len(columns[0]), len(features)), dtype=np.float64)
        for j, ((name, table, nan_index), values) in enumerate(zip(features, columns, strict=True)):
            codes = _codes(values, table, nan_index)
            if error and -1 in codes:
                raise _unknown(name, values, codes)
            coded = [unknown if c == -1 else (missing if c == nan_index else float(c)) for c in codes]
            out[:, j] = coded
        return out

    return run


def _in_slices(compute: Callable[[np.ndarray], np.ndarray], X: np.ndarray) -> np.ndarray:
    """compute(X) for X's rows in slices of ROWS_AT_ONCE, stacked."""
    if X.shape[0] <= ROWS_AT_ONCE:
        return compute(X)
    return np.concatenate([compute(X[i : i + ROWS_AT_ONCE]) for i in range(0, X.shape[0], ROWS_AT_ONCE)])


def _expit(scores: np.ndarray) -> np.ndarray:
    # scipy.special.expit computes 1 / (1 + exp(-x)) with the C library's exp; math.exp is that exp, except that it
    # raises OverflowError where C's exp returns inf (-x above ~709.78), and 1 / (1 + inf) is 0.0.
    return np.array([1.0 / (1.0 + _c_exp(-s)) for s in scores.tolist()], dtype=np.float64)


def _c_exp(x: float) -> float:
    """The C library's exp(x): math.exp, with inf where math.exp raises OverflowError (C99: exp returns HUGE_VAL)."""
    try:
        return math.exp(x)
    except OverflowError:
        return math.inf


def _linear(spec: dict, arrays: Mapping[str, np.ndarray]) -> Operation:
    """A linear model's decision function `X @ coef_.T + intercept_` (LinearModel/LinearClassifierMixin), then:
    "identity" (regression), "logistic" (binary LogisticRegression: expit, [1 - p, p]), "softmax" (multinomial).

    When scikit-learn is given a sparse matrix (`sparse`), scipy's CSR product adds each row's products in column
    order, one by one from zero; the products of the zeros it skips are zeros, which add nothing, so a sequential
    sum over all columns (`np.add.accumulate`) gives its result bit for bit (a dense BLAS product sums otherwise)."""
    coef = _ref(arrays, spec["coef"])
    coef_t = coef.T if coef.ndim == 2 else coef
    intercept = _ref(arrays, spec["intercept"])
    link, sparse = _choice(spec["link"], ("identity", "logistic", "softmax"), "link"), bool(spec.get("sparse"))

    def sequential_products(X: np.ndarray) -> np.ndarray:
        products = X[:, :, None] * (coef_t if coef_t.ndim == 2 else coef_t[:, None])  # [rows, features, outputs]
        return np.add.accumulate(products, axis=1)[:, -1, :]

    def run(state: Any) -> tuple[np.ndarray | None, np.ndarray]:
        X = _to_matrix(state)
        _require_finite(X, "the linear model")
        scores = (_in_slices(sequential_products, X) if sparse else X @ coef_t) + intercept
        if scores.ndim > 1 and scores.shape[1] == 1:
            scores = scores.reshape(-1)
        if link == "identity":
            return None, scores
        decided = (scores > 0).astype(np.intp) if scores.ndim == 1 else scores.argmax(axis=1)
        if link == "logistic":
            p = _expit(scores)
            return np.stack([1 - p, p], axis=1), decided
        proba = scores - scores.max(axis=1).reshape((-1, 1))
        np.exp(proba, out=proba)
        proba /= proba.sum(axis=1).reshape((-1, 1))
        return proba, decided

    return run


def _require_finite(X: np.ndarray, what: str, *, allow_nan: bool = False, float32: bool = False) -> None:
    bad = ~np.isfinite(X)
    if allow_nan:
        bad &= ~np.isnan(X)
    if bad.any():
        beyond = " or a value too large for float32 (above ~3.4e38 in size: the float32 cast makes it infinite)"
        raise InvalidModelInput(
            f"input to {what} contains NaN, infinity{beyond if float32 else ''}; scikit-learn refuses it too"
        )


def _trees(spec: dict, arrays: Mapping[str, np.ndarray]) -> Operation:
    """Decision trees, forests and gradient boosting (all trees at once). Nodes of every tree are stacked:
    `children[2 * node + right]` is the next node (a leaf points to itself, so every row takes `depth` steps),
    `value[node]` a leaf's output row (class fractions; a regression value; a boosting tree's learning_rate * value in
    its class's column, zeros elsewhere). The trees' outputs are added in tree order to `init` (zeros, or a boosting
    model's constant initial raw prediction), then divided by `n_trees` ("mean": forests, a lone tree) or not ("sum":
    boosting, `sklearn/ensemble/_gradient_boosting.pyx predict_stages`). `link` turns the result into the answer:
    "proba" (tree class fractions: argmax decides), "identity" (regression), "logistic"/"exponential" (binary boosting:
    expit(raw) or expit(2 * raw), decided by raw >= 0, or raw > 0 for HistGradientBoosting), "softmax" (multiclass
    boosting: argmax decides). The input is cast to float32 (`dtype`; float64 for HistGradientBoosting)."""
    feature = _ref(arrays, spec["feature"]).astype(np.intp)
    threshold = _ref(arrays, spec["threshold"])
    children = _ref(arrays, spec["children"]).astype(np.intp).reshape(-1)
    missing_left = _ref(arrays, spec["missing_go_to_left"])
    value = _ref(arrays, spec["value"])
    roots = _ref(arrays, spec["roots"]).astype(np.intp)
    init = _ref(arrays, spec.get("init"))
    depth, n_trees, allow_nan = int(spec["depth"]), int(spec["n_trees"]), bool(spec["allow_nan"])
    mean = _choice(spec["combine"], ("mean", "sum"), "combine") == "mean"
    link = _choice(spec["link"], ("proba", "identity", "logistic", "exponential", "softmax"), "link")
    strictly = _choice(spec.get("binary_decision"), (None, ">", ">="), "binary_decision") == ">"
    dtype = np.float64 if _choice(spec["dtype"], ("float32", "float64"), "dtype") == "float64" else np.float32
    check_finite = spec.get("check_finite", True)

    def combined(X: np.ndarray) -> np.ndarray:
        """The trees' outputs of the rows of X, combined: [rows, outputs]."""
        rows, width = X.shape
        flat = X.reshape(-1)
        has_nan = allow_nan and bool(np.isnan(flat).any())
        # One row (the hot path) walks a 1-D array of nodes, one per tree; more rows a [rows, trees] array.
        node = roots.copy() if rows == 1 else np.tile(roots, (rows, 1))
        offsets = (np.arange(rows) * width)[:, None] if rows > 1 else None
        for _ in range(depth):
            at = feature.take(node)
            x = flat.take(at if offsets is None else at + offsets)
            # float32 against float64: promoted exactly, as C compares them. NaN > t is False, so with NaN present
            # the test is written as scikit-learn's: NaN goes by missing_go_to_left, else `x <= t` goes left.
            if has_nan:
                right = ~(x <= threshold.take(node)) & ~(np.isnan(x) & missing_left.take(node))
            else:
                right = x > threshold.take(node)
            node = children.take(2 * node + right)
        outputs = value[node.T if rows > 1 else node[:, None]]  # [trees, rows, outputs]
        if init is not None:
            outputs = np.concatenate([np.broadcast_to(init, (1, *outputs.shape[1:])), outputs])
        out = np.add.accumulate(outputs, axis=0)[-1]
        if mean:
            out /= n_trees
        return out

    def run(state: Any) -> tuple[np.ndarray | None, np.ndarray]:
        # scikit-learn's tree input is float32 (validate_data(dtype=np.float32)), checked after the cast;
        # HistGradientBoosting's is float64, not checked.
        X = np.asarray(_to_matrix(state), dtype=dtype)
        if check_finite:
            _require_finite(X, "the trees", allow_nan=allow_nan, float32=True)
        rows = X.shape[0]
        out = _in_slices(combined, X)
        if link == "proba":
            return out, out.argmax(axis=1)
        if link == "softmax":
            decided = out.argmax(axis=1)
            proba = out - out.max(axis=1).reshape((-1, 1))
            np.exp(proba, out=proba)
            proba /= proba.sum(axis=1).reshape((-1, 1))
            return proba, decided
        raw = out[:, 0]
        if link == "identity":
            return None, raw
        p = _expit(raw if link == "logistic" else 2 * raw)
        proba = np.empty((rows, 2))
        proba[:, 1] = p
        proba[:, 0] = 1 - proba[:, 1]
        return proba, ((raw > 0) if strictly else (raw >= 0)).astype(np.intp)

    return run


_BUILDERS: dict[str, Callable[[dict, Mapping[str, np.ndarray]], Operation]] = {
    "column_transformer": _column_transformer,
    "select": _select,
    "impute": _impute,
    "impute_categories": _impute_categories,
    "arithmetic": _arithmetic,
    "one_hot": _one_hot,
    "ordinal": _ordinal,
    "linear": _linear,
    "trees": _trees,
}
