"""Open Inference Protocol (KServe v2) codec: tensors in, rows for the scorer; scored rows, tensors out.

Two input layouts are accepted, as MLServer's sklearn runtime and KServe clients send them:
one input per feature named after it (shape [N] or [N, 1]), or a single input of shape [N, F] holding
the features in the card's schema order.

Tensors come as JSON `data`, or with the binary tensor data extension (Triton's `binary_tensor_data`, the default of
`tritonclient.http`): the JSON header, then each tensor's raw little-endian bytes. Pure functions over bytes and header
values; the handler passes the raw body and the Inference-Header-Content-Length header.

Missing values (nullable features): JSON null anywhere; NaN in a floating-point tensor (FP16, FP32, FP64, BF16); an
empty string in a BYTES tensor of a category feature (binary BYTES elements cannot be null). Each only for a feature
whose schema allows nulls; elsewhere the value goes to the schema check and is refused there, naming row and field.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sklambda.errors import FieldError, InvalidInput, MalformedRequest, PayloadTooLarge
from sklambda.registry.card import ModelCard
from sklambda.registry.schema import BOOLEAN, CATEGORY, INTEGER, NUMBER, FeatureSpec
from sklambda.serving import ids
from sklambda.serving.contracts import InferRequest, parse_body
from sklambda.serving.scoring import Scored, Scorer

PLATFORM = "sklearn"
SERVER_NAME = "sklambda"
# Protocol extensions this server implements, as GET /v2 lists them (names from Triton's server metadata).
EXTENSIONS = ("binary_tensor_data",)
# The binary tensor data extension's header: the length in bytes of the JSON part of a body that carries binary tensors.
HEADER_LENGTH = "Inference-Header-Content-Length"
# The Content-Type of a response with binary tensors, as Triton answers.
BINARY_CONTENT_TYPE = "application/octet-stream"
_DATATYPE = {BOOLEAN: "BOOL", CATEGORY: "BYTES", INTEGER: "INT64"}
# Fixed-size tensor datatypes as little-endian numpy dtypes (BOOL: one byte, 0 or 1; BF16: the top half of an FP32).
_NUMPY = {
    "BOOL": "u1",
    "UINT8": "u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "BF16": "<u2",
}
FLOAT_DATATYPES = frozenset({"FP16", "FP32", "FP64", "BF16"})
# How a missing value may be sent for a nullable feature, per feature type (GET /v2/models/{name} parameters.missing):
# "null" = JSON null in data; "NaN" = NaN in a floating-point tensor; "" = an empty string in a BYTES tensor.
_MISSING = {NUMBER: ["null", "NaN"], INTEGER: ["null", "NaN"], CATEGORY: ["null", ""], BOOLEAN: ["null"]}


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


# --- the binary tensor data extension: request ------------------------------------------------------------------
def read_request(body: bytes, header_length: str | int, *, max_bytes: int) -> InferRequest:
    """An inference request sent with the binary tensor data extension, its binary tensors read into `data`.

    body: the raw HTTP body: `header_length` bytes of JSON (the "Inference Request JSON Object"), then the binary data
        of each input whose `parameters.binary_data_size` is set, in the order of `inputs`, with nothing in between or
        after. Tensor bytes are little-endian, row-major; BOOL is one byte (0 or 1) per element; each BYTES element is
        a 4-byte little-endian unsigned length followed by that many bytes, here UTF-8 text. Spec: Triton's
        docs/protocol/extension_binary_data.md.
    header_length: the Inference-Header-Content-Length header's value.

    Raises PayloadTooLarge (413) when the body is over `max_bytes`; MalformedRequest (400) when the header length is
    not a byte count within the body, the JSON part is not a valid request, a binary_data_size is not a byte count or
    goes beyond the body, or the sizes do not add up to the body; InvalidInput (422) naming the input when its bytes
    do not hold the elements its shape and datatype need, its datatype is unknown, a BOOL byte is not 0 or 1, or a
    BYTES element is not UTF-8 text.
    """
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"request body is {len(body)} bytes, the limit is {max_bytes}")
    text = str(header_length).strip()
    if not text.isdigit():
        raise MalformedRequest(f"{HEADER_LENGTH} must be a byte count, got {text[:40]!r}")
    length = int(text)
    if length > len(body):
        raise MalformedRequest(f"{HEADER_LENGTH} is {length} but the body has only {len(body)} bytes")
    try:
        header = body[:length].decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedRequest(f"the JSON header (the first {length} bytes of the body) is not UTF-8 text") from None
    request = parse_body(header, InferRequest, max_bytes=max_bytes)
    offset = length
    for inp in request.inputs:
        size = (inp.parameters or {}).get("binary_data_size")
        if size is None:
            continue
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise MalformedRequest(
                f"input {inp.name!r}: parameters.binary_data_size must be a byte count, got {size!r}",
                errors=[FieldError(f"binary_data_size {size!r} is not a byte count", field=inp.name)],
            )
        if inp.data is not None:
            raise MalformedRequest(
                f"input {inp.name!r} has both data and parameters.binary_data_size: send one",
                errors=[FieldError("both data and binary_data_size", field=inp.name)],
            )
        if offset + size > len(body):
            message = f"binary_data_size is {size} but only {len(body) - offset} bytes of the body are left"
            raise MalformedRequest(f"input {inp.name!r}: {message}", errors=[FieldError(message, field=inp.name)])
        inp.data = _tensor_values(inp.name, inp.datatype, inp.shape, body[offset : offset + size])
        offset += size
    if offset != len(body):
        raise MalformedRequest(
            f"the body has {len(body) - offset} bytes after the JSON header and the binary inputs it declares "
            f"({HEADER_LENGTH} {length} plus the inputs' binary_data_size): every byte must belong to an input"
        )
    return request


def _tensor_values(name: str, datatype: str, shape: list[int], raw: bytes) -> list[Any]:
    """The elements of one binary tensor as Python values (bool, int, float, str), row-major."""

    def refuse(message: str) -> InvalidInput:
        return InvalidInput(f"input {name!r}: {message}", errors=[FieldError(message, field=name)])

    if any(d < 0 for d in shape):
        raise refuse(f"shape {shape} has a negative dimension")
    count = _size(shape)
    if datatype == "BYTES":
        return _bytes_elements(raw, count, shape, refuse)
    dtype = _NUMPY.get(datatype)
    if dtype is None:
        known = ", ".join([*_NUMPY, "BYTES"])
        raise refuse(f"unknown datatype {datatype!r} (the protocol's are {known})")
    width = np.dtype(dtype).itemsize
    if len(raw) != count * width:
        raise refuse(
            f"binary_data_size is {len(raw)} bytes but shape {shape} of {datatype} needs {count} x {width} = "
            f"{count * width}"
        )
    array = np.frombuffer(raw, dtype=dtype)
    if datatype == "BOOL":
        bad = np.flatnonzero(array > 1)
        if len(bad):
            raise refuse(f"BOOL element {int(bad[0])} is byte {int(array[bad[0]])}; true is 1 and false is 0")
        return array.astype(bool).tolist()
    if datatype == "BF16":  # the upper 16 bits of an FP32
        array = (array.astype("<u4") << 16).view("<f4")
    return array.tolist()


def _bytes_elements(raw: bytes, count: int, shape: list[int], refuse: Callable[[str], InvalidInput]) -> list[str]:
    """BYTES elements: each a 4-byte little-endian length, then that many bytes of UTF-8 text."""
    out: list[str] = []
    offset = 0
    while offset < len(raw):
        if len(out) == count:
            raise refuse(f"holds more than the {count} BYTES elements shape {shape} needs")
        if offset + 4 > len(raw):
            raise refuse(f"BYTES element {len(out)} is cut inside its 4-byte length")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise refuse(f"BYTES element {len(out)} declares {length} bytes but {len(raw) - offset} are left")
        try:
            out.append(raw[offset : offset + length].decode("utf-8"))
        except UnicodeDecodeError:
            raise refuse(f"BYTES element {len(out)} is not UTF-8 text") from None
        offset += length
    if len(out) != count:
        raise refuse(f"holds {len(out)} BYTES elements but shape {shape} needs {count}")
    return out


# --- tensors -> rows ----------------------------------------------------------------------------------------------
def _with_missing(values: list[Any], spec: FeatureSpec, datatype: str) -> list[Any]:
    """A feature's values with this protocol's missing markers turned into None, where the schema allows a null: NaN
    in a floating-point tensor, an empty string in a BYTES tensor of a category (unless it is a training category).
    Elsewhere the values are left as they are, for the schema check to refuse (naming row and field)."""
    if not spec.null_allowed:
        return values
    if datatype in FLOAT_DATATYPES:
        return [None if isinstance(v, float) and math.isnan(v) else v for v in values]
    if datatype == "BYTES" and spec.type == CATEGORY and "" not in (spec.categories or ()):
        return [None if v == "" else v for v in values]
    return values


def decode(request: InferRequest, card: ModelCard) -> list[dict[str, Any]]:
    """The rows (one {feature: value} dict per row, in schema order) that an inference request's tensors hold.

    Two layouts, as MLServer's sklearn runtime and KServe clients send them: one input per feature, named after it, of
    shape [N] (or [N, 1]), where a feature the model never reads may have none; or a single input of shape [N, F]
    with the F features in the card's schema order, row-major. Missing values of nullable features become None (module
    docstring: JSON null, NaN in a floating-point tensor, an empty string in a BYTES tensor of a category). Values are
    not type-checked here: the Scorer validates the rows against the schema.

    Raises MalformedRequest (HTTP 400) naming an input that has no data (or binary_data_size without the binary
    extension's header); InvalidInput (HTTP 422) naming the input when a shape does not match its data, a single unnamed
    input is not [N, F], an input is not a feature or a feature the model reads has no input, or the per-feature inputs
    have different lengths.
    """
    schema = card.input_schema
    names = schema.names
    by_name = {i.name: i for i in request.inputs}
    errors: list[FieldError] = []
    for inp in request.inputs:
        if inp.data is None:
            binary = "binary_data_size" in (inp.parameters or {})
            why = f"binary_data_size without the {HEADER_LENGTH} header" if binary else "no data"
            raise MalformedRequest(f"input {inp.name!r} has {why}", errors=[FieldError(why, field=inp.name)])
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
        flat = _flatten(inp.data or [])
        width = len(names)
        columns = {f.name: _with_missing(flat[j::width], f, inp.datatype) for j, f in enumerate(schema.features)}
        n_rows = inp.shape[0]
    else:
        unknown = [n for n in by_name if n not in names]
        missing = [n for n in schema.required_names if n not in by_name]  # one the model never reads may be left out
        errors = [FieldError("unknown input: not a feature of this model", field=n) for n in unknown]
        errors += [FieldError("missing input for this feature", field=n) for n in missing]
        if errors:
            raise InvalidInput(f"{len(errors)} problem(s) with the inputs: {errors[0]}", errors=errors)
        columns = {
            f.name: _with_missing(_flatten(by_name[f.name].data or []), f, by_name[f.name].datatype)
            for f in schema.features
            if f.name in by_name
        }
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


def inference_ids(request: InferRequest, n: int, request_id: str) -> list[str]:
    """The prediction ids of a v2 request's `n` rows (sklambda.serving.ids): the caller's `parameters.inference_ids`
    (one per row), else derived from its `parameters.inference_id`, else `<request_id>-<row>` (`request_id`: the API
    request id). The request's own `id` is not used: v2 clients often send the same one every time (it is only echoed).

    Raises InvalidInput (HTTP 422) naming the row of a bad or repeated id.
    """
    parameters = request.parameters or {}
    return ids.request_ids(
        n,
        row_ids=parameters.get("inference_ids"),
        request_id=parameters.get("inference_id"),
        generated_prefix=request_id,
        row_field="parameters.inference_ids",
        request_field="parameters.inference_id",
    )


def caller_key(request: InferRequest, event: Any) -> str:
    """The caller key that routes a whole v2 request on an alias with a canary (sklambda.serving.routing): the caller's
    `parameters.inference_id`, else the first of its `parameters.inference_ids`, else the request's `id`, else the API
    request id of `event` (a new one per request). The caller's prediction ids come first: v2 clients often send the
    same `id` every time (see `inference_ids`), which would pin every request on one version. The v2 answer names one
    model_version, so a request is not split between versions; the canary key feature is not used here."""
    parameters = request.parameters or {}
    first = parameters.get("inference_ids")
    for candidate in (
        parameters.get("inference_id"),
        first[0] if isinstance(first, list) and first else None,
        request.id,
    ):
        if isinstance(candidate, str) and candidate:
            return candidate
    return str(event.request_context.request_id)


def encode(
    scored: Scored, card: ModelCard, request: InferRequest, *, inference_ids: list[str] | None = None
) -> dict[str, Any]:
    """The inference response for scored rows (Open Inference Protocol v2 "Inference Response JSON Object").

    Outputs: "predict", shape [N], datatype from the labels (BOOL, INT64, FP64 or BYTES); for classifiers with
    probabilities also "predict_proba", shape [N, C], FP64, row-major, with parameters.classes naming the C columns.
    `request.outputs` selects among them; `request.id` is echoed; the rows' prediction ids (`inference_ids`, see
    `inference_ids()`) go in the response's free-form `parameters.inference_ids`, and data-quality warnings, if any, in
    its `parameters.warnings`. Ids are a parameter rather than an output so that a client asking for outputs by name
    gets exactly those.

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
    parameters: dict[str, Any] = {}
    if inference_ids is not None:
        parameters["inference_ids"] = inference_ids
    if scored.warnings:  # the protocol's free-form response parameters carry the data-quality warnings
        parameters["warnings"] = [w.to_dict() for w in scored.warnings]
    if parameters:
        body["parameters"] = parameters
    return body


def _unavailable(output: str, card: ModelCard) -> str:
    if output == "predict_proba":
        return f"not available: this model's estimator ({card.estimator}) has no predict_proba"
    return "unknown output"


# --- the binary tensor data extension: response -----------------------------------------------------------------
@dataclass(frozen=True)
class BinaryResponse:
    """An inference response with binary outputs: `body` is `header_length` bytes of JSON, then the outputs' bytes.
    Sent with Content-Type BINARY_CONTENT_TYPE and the header HEADER_LENGTH: `header_length`."""

    body: bytes
    header_length: int


def _binary_outputs(request: InferRequest) -> set[str] | bool:
    """Which outputs the request wants as binary data: a request-level `parameters.binary_data_output`, overridden per
    output by its `parameters.binary_data` (the binary tensor data extension). True means every output."""
    default = (request.parameters or {}).get("binary_data_output") is True
    wanted = {o.name: (o.parameters or {}).get("binary_data") for o in request.outputs or ()}
    if not any(v is not None for v in wanted.values()):
        return default
    return {name for name, flag in wanted.items() if flag is True or (flag is None and default)}


def _tensor_bytes(datatype: str, data: list[Any]) -> bytes:
    """One output's flat data as binary tensor bytes (little-endian; BOOL one byte; BYTES length-prefixed UTF-8)."""
    if datatype == "BYTES":
        parts = []
        for value in data:
            raw = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")
            parts.append(struct.pack("<I", len(raw)))
            parts.append(raw)
        return b"".join(parts)
    if datatype == "BOOL":
        return np.asarray(data, dtype=bool).tobytes()
    return np.asarray(data, dtype=_NUMPY[datatype]).tobytes()


def encode_binary(answer: dict[str, Any], request: InferRequest) -> BinaryResponse | None:
    """The response `encode` built, with the outputs the request wants as binary data moved out of the JSON: each gets
    `parameters.binary_data_size` instead of `data`, and its bytes follow the JSON in the order of `outputs` (spec:
    Triton's docs/protocol/extension_binary_data.md). None when the request wants no binary output (plain JSON)."""
    wanted = _binary_outputs(request)
    if not wanted:
        return None
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for output in answer["outputs"]:
        if wanted is True or output["name"] in wanted:
            raw = _tensor_bytes(output["datatype"], output["data"])
            output = {key: value for key, value in output.items() if key != "data"}
            output["parameters"] = {**output.get("parameters", {}), "binary_data_size": len(raw)}
            chunks.append(raw)
        outputs.append(output)
    header = json.dumps({**answer, "outputs": outputs}, separators=(",", ":")).encode()
    return BinaryResponse(header + b"".join(chunks), len(header))


# --- metadata -----------------------------------------------------------------------------------------------------
def server_metadata(version: str) -> dict[str, Any]:
    """GET /v2: the protocol's "Server Metadata Response JSON Object": this server's name, its version and the
    protocol extensions it implements (EXTENSIONS)."""
    return {"name": SERVER_NAME, "version": version, "extensions": list(EXTENSIONS)}


def _input_metadata(spec: FeatureSpec) -> dict[str, Any]:
    """One input of the model metadata; `parameters` says whether it takes missing values and how they are sent."""
    parameters: dict[str, Any] = {"nullable": spec.null_allowed}
    if spec.null_allowed:
        parameters["missing"] = _MISSING[spec.type]
    return {"name": spec.name, "datatype": feature_datatype(spec), "shape": [-1], "parameters": parameters}


def metadata(card: ModelCard, versions: list[str], scorer: Scorer) -> dict[str, Any]:
    """The model's v2 metadata: only the outputs the loaded model really gives, with the datatypes `encode` uses; each
    input with `parameters.nullable` and, for a nullable one, `parameters.missing`: how a missing value is sent
    ("null": JSON null; "NaN": NaN in a floating-point tensor; "": an empty string in a BYTES tensor)."""
    classes = scorer.classes
    label_type = _label_datatype(classes) if card.classes and classes else "FP64"
    outputs = [{"name": "predict", "datatype": label_type, "shape": [-1]}]
    if scorer.has_probabilities:
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(classes)]})
    return {
        "name": card.name,
        "versions": versions,
        "platform": PLATFORM,
        "inputs": [_input_metadata(f) for f in card.input_schema.features],
        "outputs": outputs,
        "parameters": {"version": card.version, "task": card.task},
    }
