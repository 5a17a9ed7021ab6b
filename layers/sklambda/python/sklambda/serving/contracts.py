"""Request and response bodies of the prediction API (pydantic at the edge), and body parsing.

Parsing is done here rather than by the resolver so that the size limit is checked before the body is
parsed, and so that every client mistake comes back as one of our own errors with field-level details.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, model_validator

from sklambda.errors import FieldError, MalformedRequest, PayloadTooLarge, is_unicode, printable
from sklambda.serving.routing import Routed
from sklambda.serving.scoring import Scored


class ModelSelector(BaseModel):
    """The query string: which version answers (an explicit version wins over the default alias)."""

    model_config = ConfigDict(extra="ignore")

    alias: str | None = Field(None, min_length=1, max_length=63)
    version: str | None = Field(None, min_length=1, max_length=64)
    explain: bool = Field(False, description="add per-row feature attributions (?explain=true)")

    @model_validator(mode="after")
    def _one_of(self) -> ModelSelector:
        if self.alias and self.version:
            raise ValueError("give either ?alias= or ?version=, not both")
        return self


def parse_selector(query: Mapping[str, str] | None) -> ModelSelector:
    """The query string of a model route as a ModelSelector (`alias`, `version`, `explain`); other parameters are
    ignored.

    Raises MalformedRequest (HTTP 400) naming the parameter when both alias and version are given, one is empty or too
    long (alias over 63, version over 64 characters), or explain is not a boolean.
    """
    try:
        return ModelSelector.model_validate(dict(query or {}))
    except ValidationError as e:
        errors = _field_errors(e)
        raise MalformedRequest(f"invalid query string: {errors[0]}", errors=errors) from None


def decode_body(body: str | None, *, is_base64: bool) -> str | None:
    """The body as text; API Gateway base64-encodes binary bodies."""
    if not body or not is_base64:
        return body
    try:
        return base64.b64decode(body, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise MalformedRequest("request body is not UTF-8 encoded JSON") from None


def body_bytes(body: str | None, *, is_base64: bool) -> bytes:
    """The body as the client sent it, for the binary tensor data of Open Inference Protocol requests: API Gateway
    base64-encodes a body whose Content-Type is one of the API's BinaryMediaTypes; any other body arrives as text.

    Raises MalformedRequest (HTTP 400) when a body marked base64 is not base64.
    """
    if not body:
        return b""
    if not is_base64:
        return body.encode("utf-8", "surrogatepass")
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error:
        raise MalformedRequest("request body is marked base64 but is not") from None


def _field_errors(e: ValidationError) -> list[FieldError]:
    return [
        FieldError(err["msg"].removeprefix("Value error, "), field=".".join(str(p) for p in err["loc"]) or None)
        for err in e.errors(include_url=False)
    ]


# An inference id as sklambda.serving.ids accepts it: 1-64 printable ASCII characters without spaces.
_ID_SCHEMA = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[!-~]+$"}


class PredictRequest(BaseModel):
    """The body of POST /models/{name}/predict: {"instances": [row, ...]}, each row an object of feature values
    (validated later against the card's schema), and optionally the caller's prediction ids: `inference_ids`, one per
    row, or `inference_id` for the request (sklambda.serving.ids checks them and derives the rows' ids). Any other
    top-level key is refused.
    """

    model_config = ConfigDict(extra="forbid")

    instances: list[Any] = Field(description="Rows to score: one object of feature values per row.")
    # Checked by sklambda.serving.ids (HTTP 422 naming the row), not here: pydantic's errors would be a 400 without
    # one. The documented schema (OpenAPI) is the shape ids.py accepts.
    inference_ids: Annotated[Any, WithJsonSchema({"type": "array", "items": _ID_SCHEMA})] = Field(
        None, description="One prediction id per row (unique in the request), returned as the rows' ids."
    )
    inference_id: Annotated[Any, WithJsonSchema(_ID_SCHEMA)] = Field(
        None,
        description="One prediction id for the request: a one-row request's row gets it, rows of a longer one "
        "<inference_id>-<row>. Not with inference_ids.",
    )


class PredictResponse(BaseModel):
    """The answer of POST /models/{name}/predict; README "API reference" describes each field.

    model_version: the version that answered every row; null only when the alias has a canary and the request's rows
        were answered by both versions (then `model_versions` says which answered each row).
    model_versions: only when the alias has a canary (sklambda.serving.routing): the version that answered each row.
    inference_ids: one prediction id per row (sklambda.serving.ids), the key that joins a ground-truth label to it.
    predictions: one per row, the estimator's own `predict` output as JSON values.
    probabilities: classifiers only, one {class: probability} per row, else None.
    warnings: values unlike the training data, scored anyway, one {row, field, code, message} each.
    decisions, decision_threshold: binary classifiers only: the class each row is decided as from P(positive class) >=
        the card's threshold, and that rule. decision_thresholds: instead of decision_threshold when the versions that
        answered have different rules: {version: rule}.
    explanations: with ?explain=true, one per row (sklambda.serving.explain).
    """

    model_name: str
    model_version: str | None = Field(
        description="The version that answered every row; null only when an alias's canary and stable versions both "
        "answered rows of this request (model_versions then names the version of each row)."
    )
    model_versions: list[str] | None = Field(
        None,
        description="Only while the alias has a canary: the version that answered each row (row order). A row's "
        "caller key is the value of the canary's key feature in the row, else its inference_id.",
    )
    inference_ids: list[str]
    predictions: list[Any]
    probabilities: list[dict[str, float] | None] | None = None
    # Values unlike the training data (scored anyway): {row, field, code, message}; empty when none.
    warnings: list[dict[str, Any]] = Field(default_factory=list)
    # Binary classifiers: the class each row is decided as, from P(positive class) >= the card's threshold.
    decisions: list[Any] | None = None
    decision_threshold: dict[str, Any] | None = None
    decision_thresholds: dict[str, dict[str, Any] | None] | None = Field(
        None,
        description="Instead of decision_threshold when the versions that answered (model_versions) have different "
        "decision rules: each version's rule.",
    )
    # ?explain=true: per row, base value + attributions per input feature (sklambda.serving.explain).
    explanations: list[dict[str, Any] | None] | None = None

    @classmethod
    def from_scored(
        cls, scored: Scored, inference_ids: list[str], model_versions: list[str] | None = None
    ) -> PredictResponse:
        """The response for a Scored result of Scorer.score and the rows' ids (same rows, same order);
        `model_versions` (its version once per row) when the rows were routed on an alias with a canary."""
        return cls(
            model_name=scored.model_name,
            model_version=scored.model_version,
            model_versions=model_versions,
            inference_ids=inference_ids,
            predictions=scored.predictions,
            probabilities=scored.probabilities,
            warnings=[w.to_dict() for w in scored.warnings],
            decisions=scored.decisions,
            decision_threshold=scored.decision_rule,
            explanations=scored.explanations,
        )

    @classmethod
    def from_routed(cls, routed: Routed, inference_ids: list[str]) -> PredictResponse:
        """The response for rows routed between an alias's stable and canary versions (sklambda.serving.routing):
        `model_versions` names each row's version; `model_version` is set only when one version answered them all;
        one `decision_threshold` when every answering version has the same rule, else `decision_thresholds`."""
        rules = list(routed.decision_rules.values())
        shared = all(r == rules[0] for r in rules)
        return cls(
            model_name=routed.model_name,
            model_version=routed.model_version,
            model_versions=routed.versions,
            inference_ids=inference_ids,
            predictions=routed.predictions,
            probabilities=routed.probabilities,
            warnings=[w.to_dict() for w in routed.warnings],
            decisions=routed.decisions,
            decision_threshold=rules[0] if shared else None,
            decision_thresholds=None if shared else routed.decision_rules,
            explanations=routed.explanations,
        )


# One label row as sklambda.monitoring.ground_truth.labels accepts it (documented here; checked there, naming rows).
_LABEL_ROW_SCHEMA = {
    "type": "object",
    "description": "One ground-truth label: the prediction's inference_id (or id, not both), the true label (a class "
    "of the model, as its value or its text, or a finite number for a regressor) and optionally when it was observed.",
    "properties": {
        "inference_id": _ID_SCHEMA,
        "id": _ID_SCHEMA,
        "label": {"description": 'A class of the model (value or text, e.g. 1 or "1"), or a finite number.'},
        "time": {
            "type": ["string", "null"],
            "format": "date-time",
            "description": "ISO 8601 with a timezone, not in the future.",
        },
    },
    "required": ["label"],
}


class FeedbackRequest(BaseModel):
    """The body of POST /models/{name}/feedback: {"labels": [row, ...]}. Rows are checked by
    sklambda.monitoring.ground_truth.labels (HTTP 422 naming row and field), not here: pydantic's errors would be a
    400 without the row. Other top-level keys are ignored."""

    model_config = ConfigDict(extra="ignore")

    labels: list[Annotated[Any, WithJsonSchema(_LABEL_ROW_SCHEMA)]] = Field(
        description="Ground-truth labels, one per prediction (ids unique in the request); all are stored or none. "
        "At most SKLAMBDA_FEEDBACK_MAX_LABELS (template parameter FeedbackMaxLabels)."
    )


class FeedbackResponse(BaseModel):
    """The answer of POST /models/{name}/feedback: 201 when the labels were stored as new, 200 when the same labels
    were already stored today (`repeat` true: a retried request, or labels sent again after a correction; they are
    stored again with this arrival, so they are the newest labels of their ids). `stored` is true in both.
    `version`: the model version whose card the labels were checked against; `key`: the S3 key of the object holding
    them (ground-truth/model=<name>/dt=<day>/...)."""

    model: str
    version: str
    accepted: int
    stored: bool
    repeat: bool
    key: str


class RequestInput(BaseModel):
    """One input tensor of an Open Inference Protocol v2 request: its values in `data` (JSON), or, with the binary
    tensor data extension, `parameters.binary_data_size` bytes after the JSON header (sklambda.serving.oip fills
    `data` from them)."""

    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class RequestOutput(BaseModel):
    """One output an Open Inference Protocol v2 request asks for, by name ("predict" or "predict_proba")."""

    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    """The body of POST /v2/models/{name}[/versions/{version}]/infer (Open Inference Protocol v2, KServe's "Inference
    Request JSON Object").

    inputs: at least one tensor (sklambda.serving.oip.decode says which layouts are accepted). outputs: the outputs
        wanted; None for all. id: echoed in the response. parameters.inference_ids / parameters.inference_id: the
        caller's prediction ids (sklambda.serving.oip.inference_ids).
    """

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


# Python refuses to convert integer literals longer than this (sys.get_int_max_str_digits(), CVE-2020-10735).
_INT_DIGIT_LIMIT = 4300
# Reported problems of one body (a hostile body can have millions; the first ones say enough).
_MAX_PROBLEMS = 20


class _TooManyDigits:
    """Stands in for an integer literal Python will not convert, so the body can still be parsed and it located."""

    def __init__(self, digits: int) -> None:
        self.digits = digits


def _parse_int(text: str) -> int | _TooManyDigits:
    digits = len(text.lstrip("-"))
    return _TooManyDigits(digits) if digits > _INT_DIGIT_LIMIT else int(text)


def _where(root: Any, path: tuple, message: str) -> FieldError:
    """A problem at `path` of a predict or v2 request: instances.<row>.<feature> as (row, feature); in v2
    inputs.<i>.data.<j>... as that input's name (and the place in its data); elsewhere the dotted path."""
    if len(path) >= 2 and path[0] == "instances" and isinstance(path[1], int):
        return FieldError(message, row=path[1], field=".".join(printable(str(p)) for p in path[2:]) or None)
    if len(path) >= 3 and path[0] == "inputs" and path[2] == "data" and isinstance(root, dict):
        try:
            name = root["inputs"][path[1]]["name"]
        except (KeyError, IndexError, TypeError):
            name = None
        if isinstance(name, str):
            place = "".join(f"[{p}]" for p in path[3:])
            return FieldError(f"data{place}: {message}", field=printable(name))
    return FieldError(message, field=".".join(printable(str(p)) for p in path) or None)


def _unreadable_values(obj: Any) -> list[FieldError]:
    """Every lone-surrogate string (key or value) and over-long integer in a parsed body, located (iterative: a
    body nested as deep as json.loads allows is walked without recursion)."""
    problems: list[FieldError] = []
    stack: list[tuple[tuple, Any]] = [((), obj)]
    while stack and len(problems) < _MAX_PROBLEMS:
        path, value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if not is_unicode(key):
                    message = "this name is not valid Unicode text: it holds a lone surrogate (UTF-8 cannot encode it)"
                    problems.append(_where(obj, (*path, key), message))
                stack.append(((*path, key), item))
        elif isinstance(value, list):
            stack.extend(((*path, i), item) for i, item in reversed(list(enumerate(value))))
        elif isinstance(value, str) and not is_unicode(value):
            message = "not valid Unicode text: it holds a lone surrogate (such as \\ud800), which UTF-8 cannot encode"
            problems.append(_where(obj, path, message))
        elif isinstance(value, _TooManyDigits):
            message = f"an integer of {value.digits} digits is too long to read (the limit is {_INT_DIGIT_LIMIT})"
            problems.append(_where(obj, path, message))
    return problems


def _loads(raw: str) -> tuple[Any, bool]:
    """The parsed body, and whether it holds integer literals too long to convert (then as _TooManyDigits)."""
    try:
        return json.loads(raw), False
    except json.JSONDecodeError:
        raise
    except ValueError:  # Python's digit limit (not a syntax error): parse again so that the place can be named
        return json.loads(raw, parse_int=_parse_int), True


def parse_body(raw: str | None, model: type[BaseModel], *, max_bytes: int) -> Any:
    """Size check, JSON parse and shape validation, each failure a client error naming what is wrong.

    Raises PayloadTooLarge over `max_bytes`; MalformedRequest when the body is not a JSON object of `model`'s shape,
    is nested too deeply, or holds text that is not valid Unicode (a lone surrogate) or an integer literal too long
    to read: those name each place (row and field in `instances`, the input's name in v2 `inputs`).
    """
    suspect = False  # could the body hold a lone surrogate? Only then is every string of it checked.
    if raw:
        try:
            size = len(raw.encode())
        except UnicodeEncodeError:  # the body itself holds a lone surrogate (not as an escape)
            size, suspect = len(raw.encode("utf-8", "surrogatepass")), True
    else:
        size = 0
    if size > max_bytes:
        raise PayloadTooLarge(f"request body is {size} bytes, the limit is {max_bytes}")
    if not raw or not raw.strip():
        raise MalformedRequest("request body is empty: send a JSON object")
    try:
        obj, long_ints = _loads(raw)
    except json.JSONDecodeError as e:
        raise MalformedRequest(f"request body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise MalformedRequest("request body is nested too deeply") from None
    if suspect or long_ints or "\\u" in raw:
        problems = _unreadable_values(obj)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise MalformedRequest(f"request body cannot be read: {problems[0]}{more}", errors=problems)
    if not isinstance(obj, dict):
        raise MalformedRequest(f"request body must be a JSON object, got {type(obj).__name__}")
    try:
        return model.model_validate(obj)
    except ValidationError as e:
        errors = _field_errors(e)
        raise MalformedRequest(f"request body does not have the expected shape: {errors[0]}", errors=errors) from None


def check_row_count(n: int, max_rows: int) -> None:
    """Raise PayloadTooLarge (HTTP 413) when a request has more than `max_rows` rows."""
    if n > max_rows:
        raise PayloadTooLarge(f"got {n} rows, the limit is {max_rows} per request: split the request")
