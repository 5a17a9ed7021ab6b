"""Publishing: turn a fitted estimator and its data into a signed, immutable registry version.

Before anything is written, `sklambda.publishing.quality` checks the data and every problem is reported in one
PublishRejected (its `errors` list one FieldError per problem). Besides schema, metrics and baseline, the card
records permutation importance per input feature, the background sample for per-prediction explanations, the
decision threshold of a binary classifier (given, or chosen to minimize the expected cost of its errors on the
holdout set), the model's documentation, the data quality warnings and, for a classifier with predict_proba
published with a holdout (binary with its decision, or multiclass), the calibration map that estimates its
performance before labels arrive (`estimation`).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import platform
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
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

from sklambda import config, connection
from sklambda.errors import (
    FieldError,
    InvalidInput,
    PublishRejected,
    RegistryConflict,
    SklambdaError,
)
from sklambda.monitoring.model_quality.estimation import EstimationUnavailable
from sklambda.monitoring.model_quality.estimation import card_section as estimation_section
from sklambda.monitoring.model_quality.estimation import multiclass_card_section as multiclass_estimation_section
from sklambda.monitoring.model_quality.metrics import class_indices
from sklambda.publishing.artifact import ArtifactUnreadable, check_needs, installed_modules, scan_artifact
from sklambda.publishing.baseline import card_baseline
from sklambda.publishing.parity import Runtime, check_parity, select_rows, server_for
from sklambda.publishing.quality import Problem, QualityReport, check_metric_gates, check_training_data, rank_auc
from sklambda.publishing.segments import (
    check_fairness_bounds,
    check_segment_columns,
    flagged_warnings,
    segments_section,
)
from sklambda.publishing.unread import confirm_unread, encoder_categories, unread_columns
from sklambda.registry.card import CLASSIFICATION, REGRESSION, ArtifactRef, ModelCard
from sklambda.registry.schema import (
    BOOLEAN,
    CATEGORY,
    INTEGER,
    NUMBER,
    InputSchema,
    infer_schema,
    infer_type,
    to_records,
)
from sklambda.registry.signing import CardSigner
from sklambda.registry.store import Registry, check_name, check_version
from sklambda.registry.usercode import CodeProblem, collect, describe, importable, materialize, top_level_module
from sklambda.serving.background import background_sample
from sklambda.serving.data_quality import probe_null_tolerance

# Permutation importance: rows are subsampled (seeded) to at most this many, each feature shuffled n_repeats times.
IMPORTANCE_MAX_ROWS = 2000
IMPORTANCE_REPEATS = 5
IMPORTANCE_SEED = 0
DEFAULT_THRESHOLD = 0.5
# Thresholds tried when choosing one from costs, besides every predicted probability of the evaluation set.
THRESHOLD_GRID = np.round(np.linspace(0.001, 0.999, 999), 6)

StageHook = Callable[[str], None]  # told each step of publishing as it starts (STAGES; a step may be told twice)
# The steps, in order: the parity gate takes seconds (a process of the target runtime scores the artifact), and
# KMS signing and the upload a round trip each; the checks before take well under a second for most models.
CHECKING, DESCRIBING, PARITY, SIGNING, UPLOADING = (
    "checking the model and its data",
    "computing metrics, baseline and importance",
    "parity gate: serving the artifact in the target runtime",
    "signing the card with KMS",
    "uploading the version",
)
STAGES = (CHECKING, DESCRIBING, PARITY, SIGNING, UPLOADING)


def _no_stage(text: str) -> None:
    """The default stage hook: publishing never prints; a caller that shows progress passes its own."""


def library_versions() -> dict[str, str]:
    """The publisher's versions; the card's "scikit-learn" is then replaced by the artifact's own (see build_card)."""
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "joblib": joblib.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "scipy": scipy.__version__,
    }


def describe_estimator(model: Any) -> str:
    """The card's `estimator`: the class's module and qualified name, with a Pipeline's steps, e.g.
    "sklearn.pipeline.Pipeline(prep=ColumnTransformer -> model=LogisticRegression)".
    """
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
    raise PublishRejected(f"[model] {type(model).__name__} is neither a classifier nor a regressor")


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


def build_card(
    model: Any,
    X: pd.DataFrame,
    y: Any,
    *,
    name: str,
    version: str,
    runtime: Runtime | None = None,
    artifact: bytes | None = None,
    code: Sequence[str | os.PathLike[str]] | Mapping[str, bytes] = (),
    X_holdout: pd.DataFrame | None = None,
    y_holdout: Any = None,
    pii: Iterable[str] = (),
    nullable: Iterable[str] = (),
    categorical: Iterable[str] = (),
    description: str = "",
    tags: Mapping[str, str] | None = None,
    owner: str = "",
    intended_use: str = "",
    limitations: Iterable[str] = (),
    threshold: float | None = None,
    costs: tuple[float, float] | None = None,
    positive_class: Any = None,
    min_metrics: Mapping[str, float] | None = None,
    on_stage: StageHook | None = None,
    allow_holdout_overlap: bool = False,
    segments: Iterable[str] = (),
    sensitive: Iterable[str] = (),
    fairness_bounds: Mapping[str, float] | None = None,
    compile: bool | None = None,
) -> tuple[ModelCard, bytes, dict[str, bytes], bytes | None]:
    """Check the model, its artifact and its data; compute schema, metrics, baseline, importance and decision;
    prove with the parity gate that the target runtime serves the artifact as the estimator answers in memory.
    Returns (unsigned card, artifact bytes, user code {path: bytes}, compiled artifact bytes or None).

    model: a fitted estimator; `artifact`, when given, is the exact joblib bytes it was loaded from (uploaded
    as they are), else publish pickles `model` with joblib. runtime: the target runtime's packages for this
    machine (default: SKLAMBDA_RUNTIME_PATH, see sklambda.publishing.parity.Runtime). code: files and packages
    the pickle imports (custom transformers, FunctionTransformer functions), shipped with the model.
    threshold / costs / positive_class: binary classifiers with predict_proba only. `threshold` in (0, 1) is the
    probability of `positive_class` (default: the second of `classes_`) at or above which a row is positive;
    `costs=(false_positive, false_negative)` instead chooses the threshold minimizing the total cost on the
    holdout set (training set without one). min_metrics: {"roc_auc": 0.8, ...}, refused below (for mae, rmse and
    log_loss: above) the gate. on_stage: called with a short description as each step starts (the CLI shows them
    as progress; see STAGES). allow_holdout_overlap: publish a holdout that is mostly copies of training rows (the
    `holdout_overlap` refusal of sklambda.publishing.quality) with a warning; the card's `quality.overrides` says so.
    Columns the model never reads (sklambda.publishing.unread) are optional in the schema (`FeatureSpec.required`
    False), listed in the card's `quality.measurements.unused_feature` and, unless pii, warned about.
    segments / sensitive: categorical columns of X (not pii) whose groups get their own metrics in the card's
    `segments` section (sklambda.publishing.segments), with demographic parity and equal opportunity differences
    for the sensitive ones; fairness_bounds: {metric or difference: largest acceptable gap} over
    fairness.DEFAULT_BOUNDS. A flagged gap is a data-quality warning, never a refusal.
    compile: try the compiled evaluator (sklambda.compiled; default True unless SKLAMBDA_COMPILE is "false"). The
    pipeline is compiled, then scored by the parity gate in the target runtime beside the artifact; it is used (the
    card's `compiled` section, with the agreement) only when it agrees with the estimator within
    parity.COMPILED_RTOL/ATOL and exactly in class. Otherwise the card's `compiled` says why not, and scikit-learn
    serves the version as before: never a refusal.

    Raises PublishRejected (its message names the check in brackets, e.g. "[parity] ..."), never a raw error from
    pickle, numpy or the estimator.
    """
    check_name(name)
    check_version(version)
    stage = on_stage or _no_stage
    stage(CHECKING)
    runtime = runtime or Runtime.from_env()
    server_for(runtime)  # the target runtime's process imports its packages while the checks below run
    try:
        check_is_fitted(model)
    except NotFittedError:
        raise PublishRejected(f"[model] {type(model).__name__} is not fitted: fit it before publishing") from None
    except Exception as e:
        raise PublishRejected(f"[model] {type(model).__name__} is not a scikit-learn estimator: {e}") from None
    task = _task(model)
    code_files = _code_files(code)
    blob, needs = _artifact(model, artifact, code_files, runtime)
    pii, nullable, categorical = list(pii), list(nullable), list(categorical)
    options, positive = _decision_options(model, task, threshold, costs, positive_class, min_metrics)
    with _check("data"):
        unread = _unread_confirmed(model, X, pii, nullable, categorical)
        report = options.merge(
            check_training_data(
                X,
                y,
                task=task,
                X_holdout=X_holdout,
                y_holdout=y_holdout if X_holdout is not None else None,
                pii=pii,
                nullable=nullable,
                categorical=categorical,
                model_features=[str(f) for f in getattr(model, "feature_names_in_", ())],
                allow_holdout_overlap=allow_holdout_overlap,
                unread=unread,
            )
        )
    report.raise_if_refused()
    y = pd.Series(np.asarray(y), name=getattr(y, "name", None))
    schema = infer_schema(X, pii=pii, nullable=nullable, categorical=categorical)

    # Prove the serving path works before publishing: JSON-shaped rows → schema → frame → model.
    sample = to_records(X.head(5))
    try:
        frame = schema.validate(sample)
        model.predict(frame)
    except InvalidInput as e:
        raise PublishRejected(f"[schema] training rows do not pass the inferred schema: {e.message}") from None
    except Exception as e:
        mismatched = _fitted_type_mismatches(model, X)
        if mismatched:  # name the column rather than pass on numpy's message (e.g. "ufunc 'isnan' not supported")
            raise PublishRejected(
                f"{len(mismatched)} problem(s) with the training data:\n"
                + "\n".join(f"  - [column_type] {c!r}: {m}" for c, m in mismatched),
                errors=[FieldError(f"[column_type] {m}", field=c) for c, m in mismatched],
            ) from None
        raise PublishRejected(f"[schema] the model cannot score rows rebuilt from its schema: {_why(e)}") from None
    # Which features without nulls in training the model still scores a null for (an imputer): such a null is
    # then scored with a data-quality warning at inference instead of refused (sklambda.serving.data_quality).
    with _check("schema"):
        schema = probe_null_tolerance(model, X, schema)
        schema, unused = _optional_unread(model, X, schema)
    report = report.merge(unused)
    segments, sensitive = list(segments), list(sensitive)
    refused = check_fairness_bounds(fairness_bounds) + check_segment_columns(X, X_holdout, schema, segments, sensitive)
    QualityReport(refusals=tuple(refused)).raise_if_refused()

    if X_holdout is not None and y_holdout is not None:
        X_eval, y_eval, split = X_holdout[list(X.columns)], pd.Series(np.asarray(y_holdout)), "holdout"
    else:
        X_eval, y_eval, split = X, y, "training"
    stage(DESCRIBING)
    with _check("metrics"):
        metrics = {"split": split, "rows": len(X_eval), **_metrics(model, task, X_eval, y_eval)}
    metrics["training_rows"] = len(X)
    gates = check_metric_gates(metrics, min_metrics)
    gates.raise_if_refused()
    report = report.merge(gates)

    classes = [c.item() if isinstance(c, np.generic) else c for c in model.classes_] if task == CLASSIFICATION else None
    with _check("baseline"):
        pred = np.asarray(model.predict(X))
        proba = np.asarray(model.predict_proba(X)) if classes is not None and hasattr(model, "predict_proba") else None
        baseline = card_baseline(X, schema, pred, proba, classes)

    extra: list[Problem] = []
    decision = None
    if positive is not None:
        with _check("decision"):
            decision = _decision(model, positive, threshold, costs, X_eval, y_eval, split)
        if split == "training" and costs is not None:
            extra.append(Problem("decision", None, "the threshold was chosen on the training data (no holdout)"))
        if decision is not None:
            metrics.update(_positive_class_metrics(model, positive, X_eval, y_eval))
    try:
        importance = _importance(model, task, positive, X_eval, y_eval, split)
    except Exception as e:  # an exotic estimator must not block publishing; the card says why it has none
        importance = None
        extra.append(Problem("importance", None, f"permutation importance could not be computed: {e}"))
    estimation = None
    multiclass = classes is not None and len(classes) > 2 and hasattr(model, "predict_proba")
    if (decision is not None or multiclass) and split == "holdout":
        try:
            estimation = (
                _multiclass_estimation(model, X_eval, y_eval)
                if multiclass
                else _estimation(model, decision, X_eval, y_eval)
            )
        except EstimationUnavailable as e:
            extra.append(Problem("estimation", None, f"performance cannot be estimated before labels arrive: {e}"))
    segment_section = None
    if segments or sensitive:
        with _check("segments"):
            segment_section = segments_section(
                model,
                task,
                X_eval,
                y_eval,
                split,
                segments,
                sensitive,
                positive=positive,
                threshold=decision["threshold"] if decision else None,
                bounds=fairness_bounds,
            )
        extra.extend(flagged_warnings(segment_section))
    report = report.merge(QualityReport(warnings=tuple(extra)))

    sha = hashlib.sha256(blob).hexdigest()
    versions = library_versions()
    versions["scikit-learn"] = needs.sklearn_version or versions["scikit-learn"]
    card = ModelCard(
        name=name,
        version=version,
        task=task,
        classes=tuple(classes) if classes is not None else None,
        target=str(y.name) if y.name is not None else None,
        estimator=describe_estimator(model),
        library_versions=versions,
        input_schema=schema,
        metrics=metrics,
        baseline=baseline,
        artifact=ArtifactRef(key=Registry.artifact_key(name, version, sha), sha256=sha, size=len(blob)),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        description=description,
        tags=dict(tags or {}),
        importance=importance,
        explanation={
            "background": (background := background_sample(X, schema)),
            "size": len(background),
            "pii_replaced": list(schema.pii_features),
        },
        decision=decision,
        documentation={"owner": owner, "intended_use": intended_use, "limitations": [str(x) for x in limitations]},
        quality=report.card_section(),
        code=describe(code_files) if code_files else None,
        estimation=estimation,
        segments=segment_section,
    )
    stage(PARITY)
    with _check("parity"):
        rows = select_rows(X_eval if split == "holdout" else X, X if split == "holdout" else None)
        compiled, section = _compile(model, schema, name, version) if _compiling(compile) else (None, None)
        parity = check_parity(
            model, card, blob, rows, runtime, code=code_files, needs=needs.to_dict(), compiled=compiled
        )
    if parity.compiled is not None and section is not None:
        if parity.compiled.agreement is not None:
            section = {**section, "agreement": parity.compiled.agreement}
        else:
            section, compiled = {"used": False, "reason": parity.compiled.reason}, None
    return replace(card, parity=parity.card_section(), compiled=section), blob, code_files, compiled


def _compiling(compile: bool | None) -> bool:
    """publish's `compile`, defaulting to SKLAMBDA_COMPILE (anything but "false" / "0" / "no" compiles)."""
    if compile is not None:
        return compile
    return os.environ.get(config.COMPILE, "true").strip().lower() not in ("false", "0", "no")


def _compile(model: Any, schema: InputSchema, name: str, version: str) -> tuple[bytes | None, dict[str, Any]]:
    """(compiled artifact bytes, the card's `compiled` section before the parity gate's agreement), or (None, the
    section saying why the model is not compiled: a step the compiled evaluator does not support)."""
    from sklambda.compiled.compile import NotCompilable, compile_model
    from sklambda.compiled.evaluate import CompiledModel
    from sklambda.compiled.program import FORMAT

    try:
        program = compile_model(model, schema)
        blob = program.to_bytes()
        steps = list(CompiledModel(program).steps)
    except NotCompilable as e:
        return None, {"used": False, "reason": str(e)}
    except Exception as e:  # a compiler bug must not block a publish the scikit-learn path can serve
        return None, {"used": False, "reason": f"the compiler failed: {type(e).__name__}: {e}"}
    sha = hashlib.sha256(blob).hexdigest()
    return blob, {
        "used": True,
        "format": FORMAT,
        "artifact": {"key": Registry.compiled_key(name, version, sha), "sha256": sha, "size": len(blob)},
        "steps": steps,
    }


def _fitted_type_mismatches(model: Any, X: pd.DataFrame) -> list[tuple[str, str]]:
    """(column, message) for each training column whose values are text where the model's encoder was fitted on
    numbers, or numbers or booleans where it was fitted on text categories (sklambda.publishing.unread)."""
    out = []
    for column, (where, categories) in encoder_categories(model, [str(c) for c in X.columns]).items():
        fitted_text = categories.dtype.kind in "OUS" and all(isinstance(v, str) for v in categories.tolist())
        fitted_numbers = categories.dtype.kind in "iuf"
        kind = infer_type(X[column])
        if (fitted_text and kind in (INTEGER, NUMBER, BOOLEAN)) or (fitted_numbers and kind == CATEGORY):
            shown = ", ".join(repr(v) for v in categories.tolist()[:3]) + (", ..." if len(categories) > 3 else "")
            values = X[column].dropna()
            first = values.iloc[0].item() if isinstance(values.iloc[0], np.generic) else values.iloc[0]
            out.append(
                (
                    column,
                    f"the training data has {kind} values (e.g. {first!r}) where the model's {where} was fitted on "
                    f"{'text categories' if fitted_text else 'numbers'} ({shown}): pass the data the model was "
                    "fitted on",
                )
            )
    return out


def _unread_confirmed(
    model: Any, X: Any, pii: Iterable[str], nullable: Iterable[str], categorical: Iterable[str]
) -> list[str]:
    """The training columns the model never reads, as the schema step finds them (`_optional_unread`: the structure's
    unread columns, confirmed by scoring without them), for the holdout overlap check, which runs before the schema
    step; [] when the data is not a frame or its schema cannot be inferred (the data checks refuse that)."""
    if not isinstance(X, pd.DataFrame):
        return []
    unread = unread_columns(model, [str(c) for c in X.columns])
    if not unread:
        return []
    try:
        schema = infer_schema(X, pii=pii, nullable=nullable, categorical=categorical)
    except PublishRejected:
        return []
    return list(unread) if confirm_unread(model, X, schema, list(unread)) is not None else []


def _optional_unread(model: Any, X: pd.DataFrame, schema: InputSchema) -> tuple[InputSchema, QualityReport]:
    """The schema with the columns the model never reads made optional (none when the model's answers change without
    them: then they stay required), and the `unused_feature` check's report: every such column with why in its
    measurements, and a warning for each one not marked pii (a pii column is usually kept on purpose, for capture)."""
    unread = unread_columns(model, [str(c) for c in X.columns])
    confirmed = confirm_unread(model, X, schema, list(unread)) if unread else None
    if confirmed is None:
        return schema, QualityReport(checks_passed=("unused_feature",))
    warnings = tuple(
        Problem("unused_feature", name, f"the model never reads it: {why}; requests and batch files may leave it out")
        for name, why in unread.items()
        if not schema.feature(name).pii
    )
    passed = () if warnings else ("unused_feature",)
    return confirmed, QualityReport(warnings=warnings, checks_passed=passed, measurements={"unused_feature": unread})


@contextlib.contextmanager
def _check(name: str) -> Iterator[None]:
    """Any error of the estimator, numpy or pandas inside becomes a PublishRejected naming the check."""
    try:
        yield
    except PublishRejected:
        raise
    except SklambdaError as e:
        raise PublishRejected(f"[{name}] {e.message}", errors=e.errors) from None
    except Exception as e:
        raise PublishRejected(f"[{name}] {_why(e)}") from None


def _why(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _code_files(code: Sequence[str | os.PathLike[str]] | Mapping[str, bytes]) -> dict[str, bytes]:
    if isinstance(code, Mapping):
        return {str(k): bytes(v) for k, v in code.items()}
    if isinstance(code, str | os.PathLike):
        code = [code]
    try:
        files = collect(code)
    except CodeProblem as e:
        raise PublishRejected(f"[code] {e}") from None
    except OSError as e:
        raise PublishRejected(f"[code] cannot read the code to ship: {e}") from None
    return files


def _artifact(model: Any, artifact: bytes | None, code_files: dict[str, bytes], runtime: Runtime) -> tuple[bytes, Any]:
    """The bytes to upload and what they need, checked against the target runtime before anything else."""
    if artifact is None:
        buf = io.BytesIO()
        try:
            joblib.dump(model, buf)
        except Exception as e:
            raise PublishRejected(f"[artifact] the model cannot be pickled: {_why(e)}") from None
        artifact = buf.getvalue()
    try:
        needs = scan_artifact(artifact)
    except ArtifactUnreadable as e:
        raise PublishRejected(f"[artifact] {e}") from None
    manifest = runtime.manifest
    shipped = {top_level_module(p) for p in code_files}
    clashes = sorted(m for m in shipped if manifest.provides(m) or m == "sklambda")
    problems = [
        f"[code] the shipped module {m!r} has the name of a module of the runtime (standard library or layer): "
        "rename it"
        for m in clashes
    ]
    problems += [f"[{p.check}] {p.message}" for p in check_needs(needs, manifest, shipped, installed_modules)]
    target = manifest.sklearn_version
    if len(needs.sklearn_versions) > 1:
        problems.append(
            f"[sklearn_version] the artifact mixes estimators pickled with scikit-learn "
            f"{', '.join(needs.sklearn_versions)}: re-fit it with one version ({target}, the target runtime's)"
        )
    elif needs.sklearn_version and target and needs.sklearn_version != target:
        problems.append(
            f"[sklearn_version] the artifact was pickled with scikit-learn {needs.sklearn_version} but the target "
            f"runtime has scikit-learn {target}: re-fit and save the model with scikit-learn {target}, or build the "
            f"layer with scikit-learn {needs.sklearn_version} if it is a supported one (`python -m "
            f"sklambda_infra.layer --sklearn {needs.sklearn_version}` says which are)"
        )
    if problems:
        raise PublishRejected(
            f"{len(problems)} problem(s) refuse this artifact:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return artifact, needs


def load_artifact(
    path: str | os.PathLike[str], code: Mapping[str, bytes] | None = None, runtime: Runtime | None = None
) -> tuple[Any, bytes]:
    """(estimator, exact bytes) of a joblib file, for publishing a model saved elsewhere. The bytes are what is
    uploaded and checked; the estimator, loaded here with `code` ({path: bytes}) importable, gives the expected
    answers. What the pickle needs and the scikit-learn version it records are checked against `runtime` before
    it is loaded, so a missing module or another version is refused by name rather than by the error loading it
    would raise. Raises PublishRejected."""
    try:
        blob = Path(path).read_bytes()
    except OSError as e:
        raise PublishRejected(f"[artifact] cannot read {path}: {e.strerror or e}") from None
    try:
        scan_artifact(blob)
    except ArtifactUnreadable as e:
        raise PublishRejected(f"[artifact] {path} is not a model saved with joblib.dump: {e}") from None
    _artifact(None, blob, dict(code or {}), runtime or Runtime.from_env())
    folder = materialize(dict(code), label="publish") if code else None
    try:
        with warnings.catch_warnings(), importable(folder, {top_level_module(p) for p in code or ()}):
            warnings.simplefilter("ignore")  # InconsistentVersionWarning cannot happen: the version was checked
            model = joblib.load(io.BytesIO(blob))
    except Exception as e:
        raise PublishRejected(f"[artifact] {path} cannot be loaded here: {_why(e)}") from None
    return model, blob


def _decision_options(
    model: Any,
    task: str,
    threshold: float | None,
    costs: tuple[float, float] | None,
    positive_class: Any,
    min_metrics: Mapping[str, float] | None,
) -> tuple[QualityReport, Any]:
    """Check the decision and gate options; return the problems and the positive class (None: no decision)."""
    problems: list[Problem] = []
    classes = list(getattr(model, "classes_", ())) if task == CLASSIFICATION else []
    binary = len(classes) == 2 and hasattr(model, "predict_proba")
    given = [
        n for n, v in (("threshold", threshold), ("costs", costs), ("positive_class", positive_class)) if v is not None
    ]
    if given and not binary:
        if task == REGRESSION:
            what = "a regressor"
        elif len(classes) != 2:
            what = f"a classifier with {len(classes)} classes"
        else:
            what = "a classifier without predict_proba"
        problems.append(
            Problem(
                "decision",
                None,
                f"{' and '.join(given)} {'apply' if len(given) > 1 else 'applies'} only to binary classifiers with "
                f"predict_proba; "
                f"{type(model).__name__} is {what}",
            )
        )
    if threshold is not None and costs is not None:
        problems.append(Problem("decision", None, "give a threshold or costs, not both: costs choose the threshold"))
    if threshold is not None and not (isinstance(threshold, int | float) and 0 < threshold < 1):
        problems.append(
            Problem(
                "decision",
                None,
                f"the threshold must be a probability strictly between 0 and 1, got {threshold!r}",
            )
        )
    if costs is not None:
        try:
            fp, fn = (float(c) for c in costs)
            valid = np.isfinite([fp, fn]).all() and fp >= 0 and fn >= 0 and (fp > 0 or fn > 0)
        except (TypeError, ValueError):
            valid = False
        if not valid:
            problems.append(
                Problem(
                    "decision",
                    None,
                    f"costs must be (false_positive, false_negative), both >= 0 and not both zero, got {costs!r}",
                )
            )
    positive = None
    if binary:
        positive = classes[1]
        if positive_class is not None:
            match = [c for c in classes if c == positive_class or str(c) == str(positive_class)]
            if match:
                positive = match[0]
            else:
                problems.append(
                    Problem(
                        "decision",
                        None,
                        f"positive class {positive_class!r} is not one of the "
                        f"model's classes {[_plain(c) for c in classes]}",
                    )
                )
    for metric, gate in (min_metrics or {}).items():
        if isinstance(gate, bool) or not isinstance(gate, int | float) or not np.isfinite(gate):
            problems.append(Problem("metric_gate", None, f"the gate for {metric!r} must be a number, got {gate!r}"))
    ran = ("decision",) if given and not problems else ()
    return QualityReport(refusals=tuple(problems), checks_passed=ran), _plain(positive)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def cost_optimal_threshold(
    probability: np.ndarray, is_positive: np.ndarray, false_positive: float, false_negative: float
) -> tuple[float, float]:
    """The threshold t in (0, 1) minimizing false_positive * FP + false_negative * FN when rows with
    probability >= t are called positive, and that minimal total cost.

    Tried: every predicted probability strictly inside (0, 1) (each is where the confusion matrix changes) and a
    grid of 0.001 steps; of equally cheap thresholds the one nearest 0.5 wins.
    """
    p = np.asarray(probability, dtype=float)
    pos = np.asarray(is_positive, dtype=bool)
    candidates = np.unique(np.concatenate([p[(p > 0) & (p < 1)], THRESHOLD_GRID]))
    negatives, positives = np.sort(p[~pos]), np.sort(p[pos])
    fp = len(negatives) - np.searchsorted(negatives, candidates, side="left")
    fn = np.searchsorted(positives, candidates, side="left")
    cost = false_positive * fp + false_negative * fn
    best = np.flatnonzero(np.isclose(cost, cost.min(), rtol=1e-12, atol=1e-12))
    i = best[np.argmin(np.abs(candidates[best] - 0.5))]
    return float(candidates[i]), float(cost[i])


def _decision(
    model: Any,
    positive: Any,
    threshold: float | None,
    costs: tuple[float, float] | None,
    X_eval: pd.DataFrame,
    y_eval: pd.Series,
    split: str,
) -> dict[str, Any]:
    out: dict[str, Any] = {"positive_class": positive, "rule": "positive when P(positive_class) >= threshold"}
    if costs is None:
        out.update(threshold=float(threshold if threshold is not None else DEFAULT_THRESHOLD))
        out.update(source="user" if threshold is not None else "default", costs=None)
        return out
    fp, fn = (float(c) for c in costs)
    column = [_plain(c) for c in model.classes_].index(positive)
    proba = np.asarray(model.predict_proba(X_eval))[:, column]
    is_positive = np.array([_plain(v) == positive for v in y_eval])
    chosen, total = cost_optimal_threshold(proba, is_positive, fp, fn)
    out.update(threshold=chosen, source="costs", costs={"false_positive": fp, "false_negative": fn})
    out[f"{split}_expected_cost"] = total / len(y_eval)  # mean cost per row at the chosen threshold
    return out


def _positive_class_metrics(model: Any, positive: Any, X_eval: pd.DataFrame, y_eval: pd.Series) -> dict[str, float]:
    """Precision, recall and F1 of the decision's positive class (on model.predict's labels, as served and captured)
    and the Brier score of its probability, by scikit-learn's definitions: the holdout values the model-quality check
    compares each window's with (sklambda.monitoring.model_quality.degradation.holdout_references)."""
    is_positive = np.array([_plain(v) == positive for v in y_eval])
    predicted = np.array([_plain(v) == positive for v in np.asarray(model.predict(X_eval))])
    out = {
        "precision": float(skm.precision_score(is_positive, predicted, zero_division=0)),
        "recall": float(skm.recall_score(is_positive, predicted, zero_division=0)),
        "f1": float(skm.f1_score(is_positive, predicted, zero_division=0)),
    }
    if hasattr(model, "predict_proba"):
        column = [_plain(c) for c in model.classes_].index(positive)
        out["brier"] = float(skm.brier_score_loss(is_positive, np.asarray(model.predict_proba(X_eval))[:, column]))
    return out


def _estimation(model: Any, decision: Mapping[str, Any], X_eval: pd.DataFrame, y_eval: pd.Series) -> dict[str, Any]:
    """The card's `estimation` section: the CBPE calibration map fitted on the holdout at the card's threshold
    (sklambda.monitoring.model_quality.estimation). Raises EstimationUnavailable for too few rows of a class."""
    positive = decision["positive_class"]
    column = [_plain(c) for c in model.classes_].index(positive)
    is_positive = np.array([_plain(v) == positive for v in y_eval])
    proba = np.asarray(model.predict_proba(X_eval))
    return estimation_section(proba, is_positive, positive_index=column, threshold=float(decision["threshold"]))


def _multiclass_estimation(model: Any, X_eval: pd.DataFrame, y_eval: pd.Series) -> dict[str, Any]:
    """The card's `estimation` section of a multiclass classifier: one-vs-rest CBPE calibration maps fitted on the
    holdout (sklambda.monitoring.model_quality.estimation). Raises EstimationUnavailable for too few rows of a class
    or a predict that is not predict_proba's argmax."""
    classes = [_plain(c) for c in model.classes_]
    y_index = class_indices([_plain(v) for v in y_eval], classes)
    predicted = class_indices([_plain(v) for v in model.predict(X_eval)], classes, "predicted")
    return multiclass_estimation_section(np.asarray(model.predict_proba(X_eval)), y_index, predicted)


def _importance(
    model: Any, task: str, positive: Any, X_eval: pd.DataFrame, y_eval: pd.Series, split: str
) -> dict[str, Any]:
    """Permutation importance per original input column: how much the score drops when it is shuffled."""
    rows = len(X_eval)
    if rows > IMPORTANCE_MAX_ROWS:
        keep = np.sort(np.random.default_rng(IMPORTANCE_SEED).choice(rows, IMPORTANCE_MAX_ROWS, replace=False))
        X_eval, y_eval = X_eval.iloc[keep], y_eval.iloc[keep]
    y_eval = y_eval.reset_index(drop=True)
    X_eval = X_eval.reset_index(drop=True)
    # The metrics as plain numpy: sklearn's validate their inputs at a cost larger than the metric here.
    if task == REGRESSION:
        scoring_name, respond, score = "r2", model.predict, _r2
    elif positive is not None and y_eval.nunique() == 2:
        column = [_plain(c) for c in model.classes_].index(positive)
        y_eval = pd.Series([_plain(v) == positive for v in y_eval])
        scoring_name, score = "roc_auc", rank_auc

        def respond(X: pd.DataFrame) -> np.ndarray:
            return np.asarray(model.predict_proba(X))[:, column]
    else:
        scoring_name, respond, score = "accuracy", model.predict, _accuracy
    y_values = y_eval.to_numpy()
    means, stds = permutation_drops(respond, score, X_eval, y_values, IMPORTANCE_REPEATS, IMPORTANCE_SEED)
    features = [
        {"name": str(col), "mean": _finite(m), "std": _finite(s)}
        for col, m, s in zip(X_eval.columns, means, stds, strict=True)
    ]
    features.sort(key=lambda f: -f["mean"])
    return {
        "method": "permutation",
        "split": split,
        "scoring": scoring_name,
        "n_repeats": IMPORTANCE_REPEATS,
        "rows": len(X_eval),
        "seed": IMPORTANCE_SEED,
        "features": features,
    }


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    y, pred = np.asarray(y, dtype=float), np.asarray(pred, dtype=float)
    total = float(((y - y.mean()) ** 2).sum())
    residual = float(((y - pred) ** 2).sum())
    return 1.0 - residual / total if total > 0 else (1.0 if residual == 0 else 0.0)


def _accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y, dtype=object) == np.asarray(pred, dtype=object)))


def permutation_drops(
    respond: Any, score: Any, X: pd.DataFrame, y: np.ndarray, n_repeats: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over `n_repeats` of score(y, respond(X)) minus the same with one column shuffled, per column.

    The quantity of sklearn.inspection.permutation_importance, computed with one model call per column (its
    `n_repeats` shuffled copies stacked) instead of one per column and repeat: 5x fewer calls, which is what a
    pipeline's cost is made of at these sizes (measured: 0.45 s -> 0.1 s for the churn pipeline).
    """
    rng = np.random.default_rng(seed)
    n = len(X)
    base = score(y, respond(X))
    tiled = pd.concat([X] * n_repeats, ignore_index=True)
    drops = np.zeros((X.shape[1], n_repeats))
    for j, col in enumerate(X.columns):
        original = tiled[col]
        tiled[col] = pd.concat([X[col].iloc[rng.permutation(n)] for _ in range(n_repeats)], ignore_index=True)
        response = np.asarray(respond(tiled))
        tiled[col] = original
        for r in range(n_repeats):
            drops[j, r] = base - score(y, response[r * n : (r + 1) * n])
    return drops.mean(axis=1), drops.std(axis=1)


def _finite(value: float) -> float:
    value = float(value)
    return value if np.isfinite(value) else 0.0


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
    code: Sequence[str | os.PathLike[str]] = (),
    runtime: Runtime | None = None,
    on_stage: StageHook | None = None,
    **card_options: Any,
) -> ModelCard:
    """Publish a fitted model as a new immutable version; optionally point `alias` at it. Never on the request path.

    model: a fitted scikit-learn estimator or Pipeline, or the path of a joblib file (its exact bytes are uploaded).
    X: the training data, a pandas DataFrame with the columns the model was fit on (the schema and baseline are inferred
        from it).
    y: the training target, [rows].
    name: the model (1-63 of a-z, 0-9, '-', '_'). version: default one more than the highest numeric version.
    code: module files and package folders the model's pickle imports, shipped with it (`["feature_utils.py",
        "mypkg/"]`).
    registry, signer: where to publish and the KMS key that signs; by default the stack `sklambda.connection.resolve`
        finds (the environment's SKLAMBDA_MODEL_BUCKET and SKLAMBDA_SIGNING_KEY_ID, else a running local stack's
        `.sklambda/local.json`, whose endpoint, region and credentials are then used too).
    runtime: the target runtime's packages (default SKLAMBDA_RUNTIME_PATH, else the running local stack's), where the
        parity gate unpickles and scores the artifact before anything is uploaded.
    on_stage: called with a short description as each step starts (see STAGES), for progress.
    card_options: build_card's (X_holdout, y_holdout, pii, threshold, costs, min_metrics, owner, ...).

    In order: build_card checks and describes the model (data quality, schema, metrics, baseline, importance,
    background, the parity gate in the target runtime); KMS signs the card; the artifact and code are uploaded, then the
    card (the commit point); the alias moves last.

    Returns the signed ModelCard; data-quality warnings are in its `quality["warnings"]`.
    Raises PublishRejected (naming every problem: data quality, parity, a schema that cannot be inferred, metrics below
    min_metrics) before anything is written; RegistryConflict when the version exists (versions are immutable) or two
    publishers race; ConfigurationError when neither `registry`/`signer`, nor
    SKLAMBDA_MODEL_BUCKET/SKLAMBDA_SIGNING_KEY_ID, nor a running local stack say where to publish; ModelNotFound for an
    invalid name, version or alias. S3 and KMS errors propagate as botocore's ClientError.
    """
    if registry is None or signer is None:
        target = connection.resolve()
        if target.local_file is not None:  # only then: a cloud publisher's boto3 chain is left alone
            target.use()
        registry = registry or Registry(target.model_bucket)
        signer = signer or CardSigner(target.signing_key_id)
        if runtime is None and target.runtime_path and not os.environ.get(config.RUNTIME_PATH, "").strip():
            runtime = Runtime.at(target.runtime_path.split(os.pathsep))
    stage = on_stage or _no_stage
    artifact = None
    code = _code_files(code)
    if isinstance(model, str | os.PathLike):
        stage(CHECKING)
        model, artifact = load_artifact(model, code, runtime)
    version = version or registry.next_version(name)
    if registry.version_exists(name, version):
        raise RegistryConflict(f"model {name!r} version {version!r} already exists; versions are immutable")
    if isinstance(y, pd.Series) and y.name is None:
        y = y.rename("target")
    card, blob, code_files, compiled = build_card(
        model,
        X,
        y,
        name=name,
        version=version,
        runtime=runtime,
        artifact=artifact,
        code=code,
        on_stage=stage,
        **card_options,
    )
    stage(SIGNING)
    signed = signer.sign(card)
    stage(UPLOADING)
    registry.put_version(signed, blob, code_files, compiled)
    if alias:
        registry.set_alias(name, alias, version)
    return signed
