"""Local explanations: how much each ORIGINAL input feature moved one row's prediction away from the background.

Attributions are Shapley values of the interventional game v(S) = mean over background rows b of f(x_S, b_~S):
the model output when the features in S take the row's values and all others a background row's values,
averaged over the background (the card's sample, see sklambda.serving.background). The players are the columns of the
input frame, in schema order, never one-hot or scaled columns. Efficiency holds for every row and output:

    base_value + sum of attributions over features == model output

where the output is the probability of each class for classifiers with predict_proba and the prediction for
regressors, and base_value is the mean output over the background (except linear_exact classifiers, below).

Methods, chosen once per model by `Explainer`:

- ``linear_exact``: a pipeline ending in a linear regressor, or a binary logistic-type classifier, whose
  preprocessing maps every transformed column to one input column. Attribution of input feature j is the sum of
  coef_c * (z_c - mean of z_c over the background) over the transformed columns c made from j. Exact in
  prediction space for regressors. For classifiers it is exact in log-odds space (kept in ``Explanations.log_odds``)
  and converted to probability space by one common factor per row, (p - p_base) / (logit - logit_base) with
  p_base = sigmoid(logit_base) (the slope p(1 - p) when logit == logit_base): signs and proportions stay those of
  the log-odds attributions, and the probability attributions sum exactly to p - p_base. Note that this base
  value is the probability at the mean log-odds, not the mean probability over the background.
- ``tree_exact``: a pipeline ending in a DecisionTree, RandomForest or ExtraTrees classifier or regressor (single
  output). Exact interventional Shapley values computed from the tree structure: for a row x, a background row b
  and a leaf, the leaf is reached by the hybrid (x_S, b_~S) iff S holds every feature whose path conditions only
  x meets (set A) and none of those only b meets (set B); that game gives each feature of A
  value * (|A|-1)! |B|! / (|A|+|B|)! and each of B minus value * |A|! (|B|-1)! / (|A|+|B|)!. The reachable leaves
  are found by one breadth-first walk over all trees at once, in numpy; background rows that share a path and
  its commitments travel together as one set of bits. Predictions come from the same walk (the estimator's
  predict_proba / predict to rounding) instead of a call that would cost as much as the explanation.
- ``shapley_exact``: any other model with few features (<= ``exact_max_features``): v(S) for every coalition,
  all coalition rows built into one array and scored in one call (chunked for memory).
- ``shapley_sampling``: any other model: antithetic permutation sampling (each permutation and its reverse) with
  a fixed seed, so an explanation is reproducible and does not depend on the other rows of the batch; efficiency
  holds by construction (each permutation's marginal contributions telescope to f(x) - base).

When the preprocessing maps each transformed column to one input column (ColumnTransformer or Pipeline of
scalers, imputers, one-hot/ordinal encoders, binning; dropped columns get no outputs and attribution 0),
coalitions are built in the transformed space and only the final estimator is called. Otherwise (a transformer fed
several input columns whose outputs mix them, or an unknown transformer) coalitions are built as input frames and
the whole estimator is called.

The background is capped to ``max_background`` rows (default 16, a seeded sample of the card's 32): the cost of
every method but linear_exact grows with it, and a 100-tree forest on 20 features must explain a row in 25 ms
(see infra/sklambda_infra/bench/explain.py). A bare estimator (no Pipeline) is explained from input rows.
``Explainer.from_card(estimator, card)`` builds the explainer from a model card's stored background.

JSON shape of one row (``Explanations.row(i)``); every inner dict is keyed by output (class label as a string, or
"prediction" for a regressor)::

    {
      "method": "tree_exact",
      "base_value": {"no": 0.74, "yes": 0.26},
      "value": {"no": 0.31, "yes": 0.69},
      "attributions": {"age": {"no": 0.01, "yes": -0.01}, "tenure_months": {"no": -0.2, "yes": 0.2}, ...}
    }

``value`` is the model output being explained (base_value plus the attributions). Linear classifiers add
``"log_odds": {"of": "yes", "base_value": -1.0, "value": 0.8, "attributions": {"age": 0.1, ...}}``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import is_classifier

from sklambda.registry.card import CLASSIFICATION, REGRESSION
from sklambda.serving.background import background_frame

LINEAR_EXACT, TREE_EXACT = "linear_exact", "tree_exact"
SHAPLEY_EXACT, SHAPLEY_SAMPLING = "shapley_exact", "shapley_sampling"
AUTO = "auto"
PREDICTION = "prediction"

DEFAULT_MAX_BACKGROUND = 16
DEFAULT_EXACT_MAX_FEATURES = 10
DEFAULT_PERMUTATIONS = 16
# Coalition rows scored per call of the model: bounds memory on wide models and big backgrounds.
CHUNK_ROWS = 65_536
# Rows whose decisions at every tree node tree_exact holds at once ([rows, nodes] booleans).
TREE_CHUNK_ROWS = 8


@dataclass(frozen=True)
class LogOdds:
    """Attributions of a binary linear classifier in log-odds space, for the class `of` (the second class)."""

    of: str
    base_value: float
    values: np.ndarray  # [rows, features]
    logits: np.ndarray  # [rows]


@dataclass(frozen=True, eq=False)
class Explanations:
    """Attributions of a batch of rows, as numpy arrays (JSON per row with `row`).

    method: which method produced them (linear_exact, tree_exact, shapley_exact, shapley_sampling).
    feature_names: the input features, in schema order. outputs: class labels as strings, or ("prediction",).
    base_values: [outputs], the output at the background. values: [rows, features, outputs], the attributions.
    predictions: [rows, outputs], the output explained: base_values + values summed over features, to float rounding.
    log_odds: linear classifiers only, the same attributions in log-odds space.
    """

    method: str
    feature_names: tuple[str, ...]
    outputs: tuple[str, ...]
    base_values: np.ndarray  # [outputs]
    values: np.ndarray  # [rows, features, outputs]
    predictions: np.ndarray  # [rows, outputs]: the model output explained (base + sum of values)
    log_odds: LogOdds | None = None

    def __len__(self) -> int:
        return self.values.shape[0]

    def row(self, i: int) -> dict[str, Any]:
        """Row i as JSON-ready dicts (see the module docstring for the shape)."""
        out = {
            "method": self.method,
            "base_value": self._by_output(self.base_values),
            "value": self._by_output(self.predictions[i]),
            "attributions": {f: self._by_output(v) for f, v in zip(self.feature_names, self.values[i], strict=True)},
        }
        if self.log_odds is not None:
            lo = self.log_odds
            out["log_odds"] = {
                "of": lo.of,
                "base_value": float(lo.base_value),
                "value": float(lo.logits[i]),
                "attributions": dict(zip(self.feature_names, map(float, lo.values[i]), strict=True)),
            }
        return out

    def rows(self) -> list[dict[str, Any]]:
        """Every row as JSON-ready dicts, in order (see `row`)."""
        return [self.row(i) for i in range(len(self))]

    def _by_output(self, v: np.ndarray) -> dict[str, float]:
        return dict(zip(self.outputs, map(float, v), strict=True))


class Explainer:
    """Explains one loaded model; build it once per model (it transforms the background and inspects the trees).

    estimator: a fitted estimator or Pipeline taking a DataFrame with the background's columns.
    background: reference rows (e.g. ``background_frame(card records, schema)``), columns in schema order.
    task: "classification" or "regression"; inferred from the estimator when None.
    classes: output keys of a classifier, in predict_proba column order; the estimator's classes_ when None.
    method: "auto", or force "shapley_exact" / "shapley_sampling" (model-agnostic) for any model.
    max_background: background rows kept (a seeded sample beyond it). exact_max_features: above this many players, auto
        uses sampling. n_permutations: permutations per row for sampling (even: antithetic pairs). seed: for the
        background sample and the permutations.

    Raises ValueError for an unknown method or task, an empty background, an odd n_permutations, or a classifier without
    predict_proba.

    Sources: Shapley values as feature attributions (Lundberg and Lee 2017, "A Unified Approach to Interpreting Model
    Predictions"), of the interventional game (Janzing, Minorics and Blöbaum 2020, "Feature relevance quantification in
    explainable AI: a causal problem"); exact interventional values from tree structure (Lundberg et al. 2020, "From
    local explanations to global understanding with explainable AI for trees"); permutation sampling (Štrumbelj and
    Kononenko 2014) with antithetic pairs (Mitchell et al. 2022, "Sampling permutations for Shapley value estimation").
    The module docstring gives each method's formula.
    """

    def __init__(
        self,
        estimator: Any,
        background: pd.DataFrame,
        *,
        task: str | None = None,
        classes: Sequence | None = None,
        method: str = AUTO,
        max_background: int = DEFAULT_MAX_BACKGROUND,
        exact_max_features: int = DEFAULT_EXACT_MAX_FEATURES,
        n_permutations: int = DEFAULT_PERMUTATIONS,
        seed: int = 0,
    ) -> None:
        if method not in (AUTO, SHAPLEY_EXACT, SHAPLEY_SAMPLING):
            raise ValueError(f"method must be auto, shapley_exact or shapley_sampling, got {method!r}")
        if len(background) == 0:
            raise ValueError("the background needs at least one row")
        if n_permutations < 2 or n_permutations % 2:
            raise ValueError("n_permutations must be even (permutations come in antithetic pairs)")
        self.estimator = estimator
        self.feature_names = tuple(str(c) for c in background.columns)
        self.task = task or (CLASSIFICATION if is_classifier(estimator) else REGRESSION)
        if self.task == CLASSIFICATION:
            if not hasattr(estimator, "predict_proba"):
                raise ValueError("only classifiers with predict_proba can be explained (probabilities are explained)")
            keys = classes if classes is not None else estimator.classes_
            self.outputs = tuple(str(c) for c in keys)
        elif self.task == REGRESSION:
            self.outputs = (PREDICTION,)
        else:
            raise ValueError(f"task must be classification or regression, got {self.task!r}")
        self.exact_max_features = exact_max_features
        self.n_permutations = n_permutations
        self.seed = seed
        if len(background) > max_background:
            keep = np.sort(np.random.default_rng(seed).choice(len(background), max_background, replace=False))
            background = background.iloc[keep]
        self.background = background.reset_index(drop=True)

        self._prep, self._final = _split_pipeline(estimator)
        self._space = _TransformedSpace.build(self._prep, self._final, self.background, self.feature_names)
        if self._space is None:
            self._space = _InputSpace(estimator, self.background)
        self.method = method if method != AUTO else self._auto_method()
        if self.method == LINEAR_EXACT:
            self._linear = _Linear(self._final, self._space, self.task)
        if self.method == TREE_EXACT:
            self._trees = _Trees(self._final, self._space, self.task)
            self._base = self._trees.outputs(self._space.Zb).mean(axis=0)
        else:
            self._base = self._space.base(self._output_of(self._space.model))

    @classmethod
    def from_card(cls, estimator: Any, card: Any, **options: Any) -> Explainer:
        """The explainer of a loaded model, against the background sample its card stores (see serving.background)."""
        section = card.explanation or {}
        if not section.get("background"):
            raise ValueError(f"the card of {getattr(card, 'name', 'this model')} has no background sample")
        background = background_frame(section["background"], card.input_schema)
        classes = card.classes if card.task == CLASSIFICATION else None
        return cls(estimator, background, task=card.task, classes=classes, **options)

    # --- model outputs -----------------------------------------------------------------------------------------

    def _output(self, model: Any, data: Any) -> np.ndarray:
        if self.task == CLASSIFICATION:
            return np.asarray(model.predict_proba(data), dtype=float)
        return np.asarray(model.predict(data), dtype=float).reshape(-1, 1)

    def _output_of(self, model: Any):
        return lambda data: self._output(model, data)

    def _auto_method(self) -> str:
        space = self._space
        if isinstance(space, _TransformedSpace):
            if _Linear.applies(self._final, space, self.task, len(self.outputs)):
                return LINEAR_EXACT
            if _Trees.applies(self._final, space):
                return TREE_EXACT
        return SHAPLEY_EXACT if space.n_players <= self.exact_max_features else SHAPLEY_SAMPLING

    # --- explaining --------------------------------------------------------------------------------------------

    def explain(self, X: pd.DataFrame) -> Explanations:
        """Attributions of every row of `X` (a DataFrame with at least the background's columns; others are ignored).

        Returns Explanations with values of shape [rows, features, outputs]; efficiency holds per row and output (base
        value plus the attributions equals the output explained). Cost: linear_exact is one vectorized pass over all
        rows; the others grow with the background's size, tree_exact with the trees' size, shapley_exact with
        2**features coalitions per row, shapley_sampling with n_permutations per row.
        Raises ValueError naming the features `X` lacks. Errors of the estimator itself propagate.
        """
        missing = [f for f in self.feature_names if f not in X.columns]
        if missing:
            raise ValueError(f"the frame lacks feature(s): {', '.join(missing)}")
        X = X[list(self.feature_names)]
        space = self._space
        data = space.encode(X)
        f = self._output_of(space.model)
        values = np.zeros((len(X), len(self.feature_names), len(self.outputs)))
        log_odds = None
        base = self._base
        if self.method == TREE_EXACT:
            # The trees' own outputs (the estimator's predict_proba / predict, to rounding), without its
            # per-tree call overhead: on one row that overhead costs about as much as the whole explanation.
            predictions = np.empty((len(X), len(self.outputs)))
            for start in range(0, len(X), TREE_CHUNK_ROWS):
                rows = slice(start, start + TREE_CHUNK_ROWS)
                values[rows, space.players, :], predictions[rows] = self._trees.explain(data[rows])
            return Explanations(self.method, self.feature_names, self.outputs, base, values, predictions)
        predictions = f(data)
        if self.method == LINEAR_EXACT:
            base, player_values, log_odds = self._linear.explain(
                data, predictions, self.feature_names, self.outputs[-1]
            )
            values[:, space.players, :] = player_values
        else:
            shapley = _exact if self.method == SHAPLEY_EXACT else self._sampled
            for i in range(len(X)):
                values[i, space.players, :] = shapley(
                    lambda masks, i=i: space.coalitions(data, i, masks, f), space.n_players, base, predictions[i]
                )
        return Explanations(self.method, self.feature_names, self.outputs, base, values, predictions, log_odds)

    def _sampled(self, v, n: int, base: np.ndarray, fx: np.ndarray) -> np.ndarray:
        """Antithetic permutation sampling: the same seeded permutations for every row."""
        rng = np.random.default_rng(self.seed)
        half = [rng.permutation(n) for _ in range(self.n_permutations // 2)]
        perms = np.array([p for q in half for p in (q, q[::-1])])
        # Prefix k of permutation p (k = 1..n-1 features switched to x); k = 0 is the base, k = n is f(x).
        ranks = np.argsort(perms, axis=1)  # rank of each feature within each permutation
        k = np.arange(1, n)
        masks = ranks[:, None, :] < k[None, :, None]  # [perms, n-1, features]
        inner = v(masks.reshape(-1, n)).reshape(len(perms), n - 1, -1)
        chain = np.concatenate(
            [np.broadcast_to(base, (len(perms), 1, len(base))), inner, np.broadcast_to(fx, (len(perms), 1, len(fx)))],
            axis=1,
        )
        steps = np.diff(chain, axis=1)  # [perms, n, outputs]: step t adds feature perms[p, t]
        phi = np.zeros((n, len(base)))
        for p in range(len(perms)):
            phi[perms[p]] += steps[p]
        return phi / len(perms)


def _exact(v, n: int, base: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """Shapley values from v(S) for all 2^n coalitions (coalition = bit mask over players)."""
    codes = np.arange(2**n)
    masks = ((codes[:, None] >> np.arange(n)) & 1).astype(bool)
    values = np.empty((2**n, len(base)))
    values[0], values[-1] = base, fx
    if n > 1:
        values[1:-1] = v(masks[1:-1])
    size = masks.sum(axis=1)
    weight = np.array([math.factorial(s) * math.factorial(n - s - 1) / math.factorial(n) for s in range(n)])
    phi = np.empty((n, len(base)))
    for j in range(n):
        without = codes[(codes >> j) & 1 == 0]
        phi[j] = weight[size[without]] @ (values[without | (1 << j)] - values[without])
    return phi


# --- where coalitions are built ------------------------------------------------------------------------------------


def _split_pipeline(estimator: Any) -> tuple[Any, Any]:
    steps = getattr(estimator, "steps", None)
    if not steps or len(steps) < 2:
        return None, estimator
    return estimator[:-1], steps[-1][1]


class _TransformedSpace:
    """Coalitions as hybrids of transformed rows: column c of a hybrid comes from x iff its input feature is in S."""

    def __init__(self, prep: Any, final: Any, Zb: np.ndarray, groups: np.ndarray, n_features: int) -> None:
        self.prep, self.model, self.Zb = prep, final, Zb
        # Players: the input features that produce at least one transformed column; the others get 0.
        self.players = np.unique(groups)
        self.n_players = len(self.players)
        self.player_of_column = np.searchsorted(self.players, groups)
        self.n_features = n_features

    @classmethod
    def build(cls, prep: Any, final: Any, background: pd.DataFrame, names: tuple[str, ...]):
        if prep is None:
            return None
        sources = _sources(prep, list(range(len(names))), names)
        if sources is None:
            return None
        Zb = _dense(prep.transform(background))
        if Zb.ndim != 2 or Zb.shape[1] != len(sources):
            return None
        return cls(prep, final, Zb, np.asarray(sources, dtype=int), len(names))

    def encode(self, X: pd.DataFrame) -> np.ndarray:
        return _dense(self.prep.transform(X))

    def base(self, f) -> np.ndarray:
        return f(self.Zb).mean(axis=0)

    def coalitions(self, Z: np.ndarray, i: int, masks: np.ndarray, f) -> np.ndarray:
        """v(S) for each row of `masks` ([coalitions, players]): the mean of f over the background hybrids."""
        out = []
        B = len(self.Zb)
        per = max(1, CHUNK_ROWS // B)
        for start in range(0, len(masks), per):
            cols = masks[start : start + per][:, self.player_of_column]  # [k, columns]
            hybrid = np.where(cols[:, None, :], Z[i][None, None, :], self.Zb[None, :, :])
            out.append(f(hybrid.reshape(-1, self.Zb.shape[1])).reshape(len(cols), B, -1).mean(axis=1))
        return np.concatenate(out)


class _InputSpace:
    """Coalitions as input frames scored by the whole estimator (preprocessing the model-agnostic path can't see)."""

    def __init__(self, estimator: Any, background: pd.DataFrame) -> None:
        self.model, self.background = estimator, background
        self.n_players = background.shape[1]
        self.players = np.arange(self.n_players)
        self._columns = [background[c].to_numpy(dtype=object) for c in background.columns]

    def encode(self, X: pd.DataFrame) -> pd.DataFrame:
        return X

    def base(self, f) -> np.ndarray:
        return f(self.background).mean(axis=0)

    def coalitions(self, X: pd.DataFrame, i: int, masks: np.ndarray, f) -> np.ndarray:
        out = []
        B = len(self.background)
        per = max(1, CHUNK_ROWS // B)
        row = X.iloc[i]
        for start in range(0, len(masks), per):
            chunk = masks[start : start + per]
            take_x = np.repeat(chunk, B, axis=0)  # [k * B, features]
            frame = {}
            for j, name in enumerate(self.background.columns):
                bg = np.tile(self._columns[j], len(chunk))
                values = np.where(take_x[:, j], np.full(len(bg), row.iloc[j], dtype=object), bg)
                frame[name] = pd.Series(values, dtype=self.background.dtypes.iloc[j])
            out.append(f(pd.DataFrame(frame)).reshape(len(chunk), B, -1).mean(axis=1))
        return np.concatenate(out)


def _dense(Z: Any) -> np.ndarray:
    return np.asarray(Z.toarray() if hasattr(Z, "toarray") else Z, dtype=float)


# Transformers whose output column j is made from input column j only (as long as the column count is kept).
_ONE_TO_ONE = {
    "StandardScaler",
    "MinMaxScaler",
    "MaxAbsScaler",
    "RobustScaler",
    "PowerTransformer",
    "QuantileTransformer",
    "OrdinalEncoder",
    "Binarizer",
}


def _sources(step: Any, inputs: list, names: Sequence[str] | None = None) -> list | None:
    """For each output column of the fitted `step`, which element of `inputs` it is made from; None if unknown.

    `inputs` labels the step's input columns (feature indices at the top level). `names` are the input frame's
    column names when the step reads that frame (a ColumnTransformer selects columns by name). None means some
    output mixes several inputs or the step is not recognised: the caller then builds coalitions from input rows.
    """
    name = type(step).__name__
    if step is None or (isinstance(step, str) and step == "passthrough"):
        return list(inputs)
    if name == "Pipeline":
        labels: list | None = list(inputs)
        for k, (_, sub) in enumerate(step.steps):
            if labels is None:
                return None
            labels = _sources(sub, labels, names if k == 0 else None)
        return labels
    if name == "ColumnTransformer":
        return _column_transformer_sources(step, inputs, names)
    if name in _ONE_TO_ONE or (name == "FunctionTransformer" and step.func is None):
        # An identity FunctionTransformer is how a fitted ColumnTransformer stores "passthrough".
        return list(inputs)
    if name == "SimpleImputer":
        if getattr(step, "add_indicator", False):
            return None
        kept = _imputer_kept(step, len(inputs))
        return [c for c, k in zip(inputs, kept, strict=True) if k] if kept is not None else None
    if name == "OneHotEncoder":
        counts = getattr(step, "_n_features_outs", None)
        if counts is None or len(counts) != len(inputs):
            return None
        return [c for c, n in zip(inputs, counts, strict=True) for _ in range(n)]
    if name == "KBinsDiscretizer":
        if step.encode == "ordinal":
            return list(inputs)
        return [c for c, n in zip(inputs, step.n_bins_, strict=True) for _ in range(int(n))]
    return None


def _imputer_kept(step: Any, n: int) -> np.ndarray | None:
    stats = getattr(step, "statistics_", None)
    if stats is None or len(stats) != n:
        return None
    if getattr(step, "keep_empty_features", False) or step.strategy == "constant":
        return np.ones(n, dtype=bool)
    return ~pd.isna(pd.Series(stats, dtype=object)).to_numpy()


def _column_transformer_sources(ct: Any, inputs: list, names: Sequence[str] | None) -> list | None:
    by_name = getattr(ct, "_transformer_to_input_indices", None)
    output_slices = getattr(ct, "output_indices_", None)
    if by_name is None or output_slices is None:
        return None
    fitted_names = getattr(ct, "feature_names_in_", None)
    if names is not None and fitted_names is not None:
        # Fitted on a frame: it picks columns by name, whatever their order in the frame it is given.
        position = {n: k for k, n in enumerate(names)}
        if any(str(n) not in position for n in fitted_names):
            return None
        inputs = [inputs[position[str(n)]] for n in fitted_names]
    total = max((s.stop for s in output_slices.values()), default=0)
    sources: list = [None] * total
    for name, trans, _ in ct.transformers_:
        out = output_slices.get(name, slice(0, 0))
        n_out = out.stop - out.start
        if n_out == 0 or trans == "drop":
            continue
        cols = [inputs[k] for k in by_name[name]]
        if len(set(cols)) == 1:
            labels: list | None = [cols[0]] * n_out
        else:
            labels = _sources(trans, cols)
        if labels is None or len(labels) != n_out:
            return None
        sources[out] = labels
    return None if any(s is None for s in sources) else sources


# --- linear models ---------------------------------------------------------------------------------------------------


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class _Linear:
    @staticmethod
    def applies(final: Any, space: _TransformedSpace, task: str, n_outputs: int) -> bool:
        coef = getattr(final, "coef_", None)
        intercept = getattr(final, "intercept_", 0.0)
        if coef is None or np.ndim(coef) > 2 or (np.ndim(coef) == 2 and np.shape(coef)[0] != 1):
            return False
        w = np.ravel(coef).astype(float)
        if w.size != space.Zb.shape[1]:
            return False
        b = float(np.ravel(intercept)[0]) if np.size(intercept) else 0.0
        lin = space.Zb @ w + b
        # Check the model really is this linear function (GLMs with a log link also have coef_).
        try:
            if task == REGRESSION:
                return bool(np.allclose(final.predict(space.Zb), lin, rtol=1e-9, atol=1e-9))
            if n_outputs != 2 or not hasattr(final, "decision_function"):
                return False
            proba = final.predict_proba(space.Zb)[:, 1]
            return bool(
                np.allclose(final.decision_function(space.Zb), lin, rtol=1e-9, atol=1e-9)
                and np.allclose(proba, _sigmoid(lin), rtol=1e-9, atol=1e-12)
            )
        except (AttributeError, ValueError, TypeError):
            return False

    def __init__(self, final: Any, space: _TransformedSpace, task: str) -> None:
        self.task = task
        self.w = np.ravel(final.coef_).astype(float)
        intercept = getattr(final, "intercept_", 0.0)
        self.b = float(np.ravel(intercept)[0]) if np.size(intercept) else 0.0
        self.mean = space.Zb.mean(axis=0)
        self.space = space
        self.of = None

    def explain(self, Z: np.ndarray, predictions: np.ndarray, names: tuple[str, ...], names_of_class: str):
        space = self.space
        contrib = self.w * (Z - self.mean)  # [rows, columns]
        per_player = np.zeros((len(Z), space.n_players))
        np.add.at(per_player.T, space.player_of_column, contrib.T)
        linear_base = float(self.mean @ self.w + self.b)
        if self.task == REGRESSION:
            return np.array([linear_base]), per_player[:, :, None], None
        logit = Z @ self.w + self.b
        p, p_base = predictions[:, 1], _sigmoid(linear_base)
        gap = logit - linear_base
        tiny = np.abs(gap) < 1e-12
        scale = np.where(tiny, p * (1 - p), (p - p_base) / np.where(tiny, 1.0, gap))
        positive = per_player * scale[:, None]
        values = np.stack([-positive, positive], axis=2)
        full_log_odds = np.zeros((len(Z), len(names)))
        full_log_odds[:, space.players] = per_player
        log_odds = LogOdds(names_of_class, linear_base, full_log_odds, logit)
        return np.array([1 - p_base, p_base]), values, log_odds


# --- tree ensembles --------------------------------------------------------------------------------------------------

_TREE_MODELS = {
    "DecisionTreeClassifier",
    "DecisionTreeRegressor",
    "ExtraTreeClassifier",
    "ExtraTreeRegressor",
    "RandomForestClassifier",
    "RandomForestRegressor",
    "ExtraTreesClassifier",
    "ExtraTreesRegressor",
}


class _Trees:
    """Exact interventional Shapley values of an average of trees (see the module docstring)."""

    @staticmethod
    def applies(final: Any, space: _TransformedSpace) -> bool:
        if type(final).__name__ not in _TREE_MODELS or getattr(final, "n_outputs_", 1) != 1:
            return False
        return space.n_players <= 63  # coalitions are bit masks in an int64 (int32 up to 31 players)

    def __init__(self, final: Any, space: _TransformedSpace, task: str) -> None:
        trees = [e.tree_ for e in getattr(final, "estimators_", [final])]
        offsets = np.cumsum([0] + [t.node_count for t in trees])
        self.n_trees = len(trees)
        self.roots = offsets[:-1].astype(np.int32)
        left = np.concatenate(
            [np.where(t.children_left >= 0, t.children_left + o, -1) for t, o in zip(trees, offsets, strict=False)]
        )
        right = np.concatenate(
            [np.where(t.children_right >= 0, t.children_right + o, -1) for t, o in zip(trees, offsets, strict=False)]
        )
        self.left, self.right = left.astype(np.int32), right.astype(np.int32)
        self.leaf = left < 0
        feature = np.concatenate([t.feature for t in trees])
        self.feature = np.where(self.leaf, 0, feature)
        threshold = np.concatenate([t.threshold for t in trees])
        # Trees compare float32 features with float64 thresholds; the largest float32 <= the threshold gives the
        # same decisions in float32 (half the memory traffic per comparison).
        below = threshold.astype(np.float32)
        too_big = below.astype(np.float64) > threshold
        below[too_big] = np.nextafter(below[too_big], np.float32(-np.inf))
        self.threshold = below
        self.missing_left = np.concatenate(
            [getattr(t, "missing_go_to_left", np.zeros(t.node_count, dtype=np.uint8)) for t in trees]
        ).astype(bool)
        # Narrow integers where they suffice: the walk is memory bound.
        self.mask_dtype = np.int32 if space.n_players <= 31 else np.int64
        self.bit = np.left_shift(1, space.player_of_column[self.feature]).astype(self.mask_dtype)
        value = np.concatenate([t.value[:, 0, :] for t in trees]).astype(float)
        if task == CLASSIFICATION:
            total = value.sum(axis=1, keepdims=True)
            value = value / np.where(total == 0, 1.0, total)
        self.value = value
        self.Zb = space.Zb
        # Which background rows go left at each node, as bits of words of 32 or 64 background rows.
        b_left = self._goes_left(space.Zb)
        size, self.word_dtype = (32, np.uint32) if len(b_left) <= 32 else (64, np.uint64)
        self.all_ones = self.word_dtype(2**size - 1)
        self.background_words = []
        for start in range(0, len(b_left), size):
            block = b_left[start : start + size].astype(self.word_dtype)
            word = np.bitwise_or.reduce(block << np.arange(len(block), dtype=self.word_dtype)[:, None], axis=0)
            self.background_words.append((word, self.word_dtype(2 ** len(block) - 1)))
        self.n_players = space.n_players
        n = space.n_players
        lg = [math.lgamma(k + 1) for k in range(n + 2)]  # log k!
        self.w_in = np.zeros((n + 1, n + 1))
        self.w_out = np.zeros((n + 1, n + 1))
        for a in range(n + 1):
            for c in range(n + 1 - a):
                if a:
                    self.w_in[a, c] = math.exp(lg[a - 1] + lg[c] - lg[a + c])
                if c:
                    self.w_out[a, c] = math.exp(lg[a] + lg[c - 1] - lg[a + c])

    def _goes_left(self, Z: np.ndarray) -> np.ndarray:
        """[rows, nodes]: whether each row goes left at each internal node (as the trees decide: in float32)."""
        z = Z.astype(np.float32)[:, self.feature]
        goes_left = z <= self.threshold
        if np.isnan(z).any():
            goes_left = np.where(np.isnan(z), self.missing_left, goes_left)
        return goes_left

    def outputs(self, Z: np.ndarray) -> np.ndarray:
        """[rows, outputs]: the average of the trees' leaf values, as the estimator predicts."""
        return np.stack([self._leaf_mean(np.where(go_left, self.left, self.right)) for go_left in self._goes_left(Z)])

    def _leaf_mean(self, x_way: np.ndarray) -> np.ndarray:
        node = self.roots
        while not self.leaf[node].all():
            node = np.where(self.leaf[node], node, x_way[node])
        return self.value[node].mean(axis=0)

    def explain(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Attributions [rows, players, outputs] and the model outputs [rows, outputs] of the rows of Z."""
        x_left = self._goes_left(Z)
        phi = np.zeros((len(Z), self.n_players, self.value.shape[1]))
        predictions = np.empty((len(Z), self.value.shape[1]))
        for r in range(len(Z)):
            x_way = np.where(x_left[r], self.left, self.right)
            other_way = self.left + self.right - x_way
            x_bits = np.where(x_left[r], self.all_ones, self.word_dtype(0))
            for left_of_b, everyone in self.background_words:
                phi[r] += self._walk(x_way, other_way, x_bits, left_of_b, everyone)
            predictions[r] = self._leaf_mean(x_way)
        return phi / (self.n_trees * len(self.Zb)), predictions

    def _walk(self, x_way, other_way, x_bits, left_of_b, everyone) -> np.ndarray:
        """Sum over trees, background rows (one word of up to 64) and reachable leaves of the leaf games' values.

        A state is (node, features committed to x, features committed to b, set of background rows as bits):
        background rows that reach a node with the same commitments travel together.
        """
        node = self.roots
        cx = np.zeros(len(node), dtype=self.mask_dtype)
        cb = np.zeros(len(node), dtype=self.mask_dtype)
        rows = np.full(len(node), everyone, dtype=self.word_dtype)
        done: list[tuple[np.ndarray, ...]] = []
        while len(node):
            at_leaf = self.leaf[node]
            if at_leaf.any():
                done.append((node[at_leaf], cx[at_leaf], cb[at_leaf], rows[at_leaf]))
                keep = ~at_leaf
                node, cx, cb, rows = node[keep], cx[keep], cb[keep], rows[keep]
            bit = self.bit[node]
            with_x = ~(left_of_b[node] ^ x_bits[node]) & rows  # background rows going x's way here
            against = rows ^ with_x
            to_x = (cx & bit) != 0
            free = ((cb & bit) == 0) & ~to_x
            along = np.where(to_x, rows, with_x)
            # 1. x's way, commitments unchanged: every row if the feature follows x, else the rows agreeing with x.
            # 2. the other way, following b: rows against x, committing the feature to b if it was free.
            # 3. x's way for rows against x, committing a free feature to x.
            first = along != 0
            second = (against != 0) & ~to_x
            third = second & free
            ahead = x_way[node]
            node = np.concatenate([ahead[first], other_way[node[second]], ahead[third]])
            cx = np.concatenate([cx[first], cx[second], cx[third] | bit[third]])
            cb = np.concatenate([cb[first], np.where(free, cb | bit, cb)[second], cb[third]])
            rows = np.concatenate([along[first], against[second], against[third]])
        if not done:
            return np.zeros((self.n_players, self.value.shape[1]))
        node, cx, cb, rows = (np.concatenate(parts) for parts in zip(*done, strict=True))
        a = np.bitwise_count(cx).astype(np.intp)
        c = np.bitwise_count(cb).astype(np.intp)
        weighted = self.value[node] * np.bitwise_count(rows)[:, None]
        gain = weighted * self.w_in[a, c][:, None]
        loss = weighted * self.w_out[a, c][:, None]
        return _per_player(cx, gain, self.n_players) - _per_player(cb, loss, self.n_players)


def _per_player(masks: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """[n, outputs]: for each player j, the sum of `weights` over the entries whose mask has bit j.

    Scatter-adds over the set bits (a few per entry) rather than a product with a dense entries x players
    matrix: cheaper, and no BLAS call (whose threads compete with this one on a small, busy machine).
    """
    width = masks.dtype.itemsize
    as_bytes = masks.astype(f"<i{width}").view(np.uint8).reshape(len(masks), width)
    entry, player = np.nonzero(np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :n])
    return np.stack([np.bincount(player, weights=weights[entry, o], minlength=n) for o in range(weights.shape[1])], 1)
