"""Prediction ids: one per scored row, returned with the prediction and written in its capture record, so that a
ground-truth label sent later can be joined to the prediction it judges.

Shape (after SageMaker's `InferenceId`: 1 to 64 characters, first one not blank, all printable): an id here is 1 to
64 printable ASCII characters without spaces or control characters (letters, digits and punctuation: a UUID, an
order number, `cust-17/2026-11-30`). ASCII only, so an id is the same text in a URL, a CSV cell and a log line.

Where an id comes from, in order:
- the caller's, per row (`inference_ids` in a REST or v2 request, an `inference_id` column or key in a batch file):
  used as is; two rows of one request (or one batch file) may not share one;
- the caller's, for a request (`inference_id`): its one row gets it as is (SageMaker's one id per invocation); each
  row of a request of several rows gets `<inference_id>-<row>` (row counted from 0);
- generated: `<request id>-<row>` for an API request (API Gateway's request id, a UUID, unique per request) and
  `<job id>-<line>` for a batch job (line of the input object, counted from 1 as in the error output). Derived ids
  rather than random UUIDs: they are unique as long as their prefix is, they say where a prediction came from
  (the request in the logs, the line of the file), and a retried batch job writes the same ids again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sklambda.errors import FieldError, InvalidInput, printable

MAX_ID_LENGTH = 64
# Printable ASCII without the space: ! (0x21) to ~ (0x7E).
_ID = re.compile(r"[\x21-\x7e]{1,64}")
# Problems reported for one request (a hostile body can have thousands; the first ones say enough).
_MAX_PROBLEMS = 20


def id_problem(value: Any) -> str | None:
    """Why `value` cannot be an inference id, or None when it can (a str of 1-64 printable ASCII characters without
    spaces)."""
    if not isinstance(value, str):
        return f"an inference id must be a string, got {type(value).__name__}"
    if not value:
        return "an inference id cannot be empty"
    if len(value) > MAX_ID_LENGTH:
        return f"an inference id is at most {MAX_ID_LENGTH} characters, got {len(value)}"
    if not _ID.fullmatch(value):
        return (
            f"an inference id holds only printable ASCII characters without spaces (letters, digits, punctuation), "
            f"got {printable(value)!r}"
        )
    return None


def check_ids(ids: Sequence[Any], *, field: str = "inference_id", rows: Sequence[int] | None = None) -> list[str]:
    """`ids` (one per row) checked: each a valid id (`id_problem`), none repeated. `rows` numbers the rows in the
    errors (default 0, 1, ...).

    Raises InvalidInput (HTTP 422) naming each bad or repeated id's row and `field` (a repeat names the row it
    repeats).
    """
    rows = list(rows) if rows is not None else list(range(len(ids)))
    problems: list[FieldError] = []
    first: dict[str, int] = {}
    for row, value in zip(rows, ids, strict=True):
        problem = id_problem(value)
        if problem is None and value in first:
            problem = f"inference id {value!r} is already the id of row {first[value]}: ids must be unique"
        if problem is not None:
            problems.append(FieldError(problem, row=row, field=field))
            if len(problems) >= _MAX_PROBLEMS:
                break
        else:
            first[value] = row
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InvalidInput(f"invalid inference id: {problems[0]}{more}", errors=problems)
    return list(ids)


def request_ids(
    n: int,
    *,
    row_ids: Sequence[Any] | None,
    request_id: Any | None,
    generated_prefix: str,
    row_field: str = "inference_ids",
    request_field: str = "inference_id",
) -> list[str]:
    """The ids of a request's `n` rows (see the module docstring for the rules): the caller's `row_ids` (one per row),
    else derived from the caller's `request_id`, else `<generated_prefix>-<row>`. `row_field` and `request_field`
    name where the caller sent them (`inference_ids` / `inference_id` in REST, under `parameters.` in v2), for the
    errors.

    Raises InvalidInput (HTTP 422) when both kinds are given, when `row_ids` is not a list of one id per row, or when
    an id is bad or repeated (naming its row).
    """
    if row_ids is not None and request_id is not None:
        raise InvalidInput(
            "give either one inference id per row or one for the request, not both",
            errors=[FieldError(f"given together with {row_field}", field=request_field)],
        )
    if row_ids is not None:
        if not isinstance(row_ids, list) or len(row_ids) != n:
            got = f"{len(row_ids)} ids" if isinstance(row_ids, list) else type(row_ids).__name__
            raise InvalidInput(
                f"{row_field} must be a list of one inference id per row: {n} rows, got {got}",
                errors=[FieldError(f"expected a list of {n} ids, got {got}", field=row_field)],
            )
        return check_ids(row_ids, field=row_field)
    if request_id is not None:
        problem = id_problem(request_id)
        if problem is not None:
            raise InvalidInput(f"invalid inference id: {problem}", errors=[FieldError(problem, field=request_field)])
        return [request_id] if n == 1 else [f"{request_id}-{i}" for i in range(n)]
    return [f"{generated_prefix}-{i}" for i in range(n)]
