"""Open Inference Protocol (KServe v2) codec: tensors in, rows for the scorer; scored rows, tensors out.

Two input layouts are accepted, as MLServer's sklearn runtime and KServe clients send them:
one input per feature named after it (shape [N] or [N, 1]), or a single input of shape [N, F] holding
the features in the card's schema order.
"""

from __future__ import annotations

from typing import Any

from sklambda.errors import FieldError, InvalidInput
from sklambda.registry.card import ModelCard
from sklambda.registry.schema import BOOLEAN, CATEGORY, INTEGER, FeatureSpec
from sklambda.serving.contracts import InferRequest
from sklambda.serving.scoring import Scored, Scorer

PLATFORM = "sklearn"
_DATATYPE = {BOOLEAN: "BOOL", CATEGORY: "BYTES", INTEGER: "INT64"}


def feature_datatype(spec: FeatureSpec) -> str:
    """The Open Inference Protocol tensor datatype of a feature: BOOL, INT64, BYTES (categories, as strings) or FP64."""
    return _DATATYPE.get(spec.type, "FP64")


def _flatten(data: list[Any]) -> list[Any]:
    """Row-major values of a nested tensor; iterative, so data nested as deep as the body parser allows is fine."""
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            out.append(item)
        else:
            stack.pop()
    return out


def _size(shape: list[int]) -> int:
    size = 1
    for d in shape:
        size *= d
    return size


def decode(request: InferRequest, card: ModelCard) -> list[dict[str, Any]]:
    """The rows (one {feature: value} dict per row, in schema order) that an inference request's tensors hold.

    Two layouts, as MLServer's sklearn runtime and KServe clients send them: one input per feature, named after it, of
    shape [N] (or [N, 1]), where a feature the model never reads may have none; or a single input of shape [N, F]
    with the F features in the card's schema order, row-major.
    Values are not type-checked here: the Scorer validates the rows against the schema.

    Raises InvalidInput (HTTP 422) naming the input when a shape does not match its data, a single unnamed input is not
    [N, F], an input is not a feature or a feature the model reads has no input, or the per-feature inputs have
    different lengths.
    """
    schema = card.input_schema
    names = schema.names
    by_name = {i.name: i for i in request.inputs}
    errors: list[FieldError] = []
    for inp in request.inputs:
        flat = _flatten(inp.data)
        if any(d < 0 for d in inp.shape) or _size(inp.shape) != len(flat):
            errors.append(FieldError(f"shape {inp.shape} does not match {len(flat)} data values", field=inp.name))
    if errors:
        raise InvalidInput(f"inference request is inconsistent: {errors[0]}", errors=errors)

    if len(request.inputs) == 1 and request.inputs[0].name not in names:
        inp = request.inputs[0]
        if len(inp.shape) != 2 or inp.shape[1] != len(names):
            raise InvalidInput(
                f"input {inp.name!r} must have shape [N, {len(names)}] with features in this order: "
                f"{', '.join(names)}; or send one input per feature, named after it",
                errors=[FieldError(f"shape {inp.shape} is not [N, {len(names)}]", field=inp.name)],
            )
        flat = _flatten(inp.data)
        width = len(names)
        return [dict(zip(names, flat[r * width : (r + 1) * width], strict=True)) for r in range(inp.shape[0])]

    unknown = [n for n in by_name if n not in names]
    missing = [n for n in schema.required_names if n not in by_name]  # one the model never reads may be left out
    errors = [FieldError("unknown input: not a feature of this model", field=n) for n in unknown]
    errors += [FieldError("missing input for this feature", field=n) for n in missing]
    if errors:
        raise InvalidInput(f"{len(errors)} problem(s) with the inputs: {errors[0]}", errors=errors)
    columns = {n: _flatten(by_name[n].data) for n in names if n in by_name}
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        detail = ", ".join(f"{n}={len(v)}" for n, v in columns.items())
        raise InvalidInput(f"inputs have different numbers of rows: {detail}")
    n_rows = lengths.pop()
    return [{n: values[r] for n, values in columns.items()} for r in range(n_rows)]


def _label_datatype(values: list[Any]) -> str:
    if all(isinstance(v, bool) for v in values):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "INT64"
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return "FP64"
    return "BYTES"


def encode(scored: Scored, card: ModelCard, request: InferRequest) -> dict[str, Any]:
    """The inference response for scored rows (Open Inference Protocol v2 "Inference Response JSON Object").

    Outputs: "predict", shape [N], datatype from the labels (BOOL, INT64, FP64 or BYTES); for classifiers with
    probabilities also "predict_proba", shape [N, C], FP64, row-major, with parameters.classes naming the C columns.
    `request.outputs` selects among them; `request.id` is echoed; data-quality warnings, if any, go in the response's
    free-form `parameters.warnings`.

    Raises InvalidInput (HTTP 422) naming each requested output the model cannot give.
    """
    n = len(scored.predictions)
    outputs = [
        {
            "name": "predict",
            "shape": [n],
            "datatype": _label_datatype(scored.predictions),
            "data": scored.predictions,
        }
    ]
    if scored.probabilities is not None:
        classes = list(scored.probabilities[0].keys()) if n else [str(c) for c in card.classes or ()]
        outputs.append(
            {
                "name": "predict_proba",
                "shape": [n, len(classes)],
                "datatype": "FP64",
                "parameters": {"classes": classes},
                "data": [p[c] for p in scored.probabilities for c in classes],
            }
        )
    if request.outputs:
        wanted = {o.name for o in request.outputs}
        unknown = wanted - {o["name"] for o in outputs}
        if unknown:
            available = ", ".join(o["name"] for o in outputs)
            raise InvalidInput(
                f"output(s) not available from model {card.name} version {card.version}: "
                f"{', '.join(sorted(unknown))}; available: {available}",
                errors=[FieldError(_unavailable(u, card), field=u) for u in sorted(unknown)],
            )
        outputs = [o for o in outputs if o["name"] in wanted]
    body: dict[str, Any] = {"model_name": scored.model_name, "model_version": scored.model_version, "outputs": outputs}
    if request.id is not None:
        body["id"] = request.id
    if scored.warnings:  # the protocol's free-form response parameters carry the data-quality warnings
        body["parameters"] = {"warnings": [w.to_dict() for w in scored.warnings]}
    return body


def _unavailable(output: str, card: ModelCard) -> str:
    if output == "predict_proba":
        return f"not available: this model's estimator ({card.estimator}) has no predict_proba"
    return "unknown output"


def metadata(card: ModelCard, versions: list[str], scorer: Scorer) -> dict[str, Any]:
    """The model's v2 metadata: only the outputs the loaded model really gives, with the datatypes `encode` uses."""
    classes = scorer.classes
    label_type = _label_datatype(classes) if card.classes and classes else "FP64"
    outputs = [{"name": "predict", "datatype": label_type, "shape": [-1]}]
    if scorer.has_probabilities:
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(classes)]})
    return {
        "name": card.name,
        "versions": versions,
        "platform": PLATFORM,
        "inputs": [
            {"name": f.name, "datatype": feature_datatype(f), "shape": [-1]} for f in card.input_schema.features
        ],
        "outputs": outputs,
        "parameters": {"version": card.version, "task": card.task},
    }
