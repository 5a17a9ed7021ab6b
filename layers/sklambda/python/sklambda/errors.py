"""Domain exceptions and the single table that maps them to HTTP statuses.

Handlers never choose a status by reading an error's text: they look the exception's class up here.
"""

from __future__ import annotations

from dataclasses import dataclass


def is_unicode(text: str) -> bool:
    """False when `text` holds a lone surrogate (JSON allows the escape "\\ud800"; UTF-8 cannot encode it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str) -> str:
    """`text` safe to put in an answer, a report or a log: lone surrogates written as their escapes (\\ud800)."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of one row (row and field are None when not applicable)."""

    message: str
    row: int | None = None
    field: str | None = None

    def to_dict(self) -> dict:
        """The problem as an API error detail: {"row"?, "field"?, "message"} (row and field only when known)."""
        out: dict = {}
        if self.row is not None:
            out["row"] = self.row
        if self.field is not None:
            out["field"] = self.field
        out["message"] = self.message
        return out

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class SklambdaError(Exception):
    """Base class: every error sklambda raises on purpose. `code` is a stable machine-readable reason."""

    code = "error"

    def __init__(self, message: str, *, errors: tuple[FieldError, ...] | list[FieldError] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.errors: tuple[FieldError, ...] = tuple(errors)


class ConfigurationError(SklambdaError):
    """Required configuration is missing or malformed: fail loudly at start."""

    code = "configuration"


class MalformedRequest(SklambdaError):
    """The request body is not valid JSON or not the expected shape."""

    code = "malformed_request"


class InvalidInput(SklambdaError):
    """Rows do not match the model's input schema; `errors` names each row and field."""

    code = "invalid_input"


class PayloadTooLarge(SklambdaError):
    """Body larger than the configured limit, or more rows than allowed."""

    code = "payload_too_large"


class ModelNotFound(SklambdaError):
    """Unknown model name, alias or version."""

    code = "model_not_found"


class ModelRefused(SklambdaError):
    """An artifact failed integrity, signature or compatibility checks and was not loaded."""

    code = "model_refused"

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class RegistryConflict(SklambdaError):
    """A write would break immutability (version exists) or lost a concurrent update race."""

    code = "conflict"


class PublishRejected(SklambdaError):
    """The model or data given to publish cannot produce a valid model card."""

    code = "publish_rejected"


# The one place that maps domain errors to HTTP statuses (most specific class first wins via MRO).
class ExplanationUnavailable(SklambdaError):
    """The model cannot be explained (its card has no background sample, or the explainer cannot run it)."""

    code = "explanation_unavailable"


HTTP_STATUS: dict[type[SklambdaError], int] = {
    MalformedRequest: 400,
    ModelNotFound: 404,
    RegistryConflict: 409,
    ExplanationUnavailable: 409,
    PayloadTooLarge: 413,
    InvalidInput: 422,
    PublishRejected: 422,
    ModelRefused: 503,
    ConfigurationError: 500,
}


def http_status(exc: SklambdaError) -> int:
    """The HTTP status of a domain error: the HTTP_STATUS entry of its class or nearest base class, else 500."""
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500
