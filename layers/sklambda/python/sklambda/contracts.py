"""Request and response bodies of the prediction API (pydantic at the edge), and body parsing.

Parsing is done here rather than by the resolver so that the size limit is checked before the body is
parsed, and so that every client mistake comes back as one of our own errors with field-level details.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sklambda.errors import FieldError, MalformedRequest, PayloadTooLarge
from sklambda.scoring import Scored


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


def _field_errors(e: ValidationError) -> list[FieldError]:
    return [
        FieldError(err["msg"].removeprefix("Value error, "), field=".".join(str(p) for p in err["loc"]) or None)
        for err in e.errors(include_url=False)
    ]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instances: list[Any] = Field(description="Rows to score: one object of feature values per row.")


class PredictResponse(BaseModel):
    model_name: str
    model_version: str
    predictions: list[Any]
    probabilities: list[dict[str, float]] | None = None
    # Values unlike the training data (scored anyway): {row, field, code, message}; empty when none.
    warnings: list[dict[str, Any]] = Field(default_factory=list)
    # Binary classifiers: the class each row is decided as, from P(positive class) >= the card's threshold.
    decisions: list[Any] | None = None
    decision_threshold: dict[str, Any] | None = None
    # ?explain=true: per row, base value + attributions per input feature (sklambda.explain).
    explanations: list[dict[str, Any]] | None = None

    @classmethod
    def from_scored(cls, scored: Scored) -> PredictResponse:
        return cls(
            model_name=scored.model_name,
            model_version=scored.model_version,
            predictions=scored.predictions,
            probabilities=scored.probabilities,
            warnings=[f.to_dict() for f in scored.flags],
            decisions=scored.decisions,
            decision_threshold=scored.decision_rule,
            explanations=scored.explanations,
        )


class RequestInput(BaseModel):
    """One input tensor of an Open Inference Protocol v2 request."""

    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any]


class RequestOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


def parse_body(raw: str | None, model: type[BaseModel], *, max_bytes: int) -> Any:
    """Size check, JSON parse and shape validation, each failure a client error naming what is wrong."""
    size = len(raw.encode()) if raw else 0
    if size > max_bytes:
        raise PayloadTooLarge(f"request body is {size} bytes, the limit is {max_bytes}")
    if not raw or not raw.strip():
        raise MalformedRequest("request body is empty: send a JSON object")
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as e:
        raise MalformedRequest(f"request body is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise MalformedRequest("request body is nested too deeply") from None
    if not isinstance(obj, dict):
        raise MalformedRequest(f"request body must be a JSON object, got {type(obj).__name__}")
    try:
        return model.model_validate(obj)
    except ValidationError as e:
        errors = _field_errors(e)
        raise MalformedRequest(f"request body does not have the expected shape: {errors[0]}", errors=errors) from None


def check_row_count(n: int, max_rows: int) -> None:
    if n > max_rows:
        raise PayloadTooLarge(f"got {n} rows, the limit is {max_rows} per request: split the request")
