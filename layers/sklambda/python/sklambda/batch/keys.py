"""Where batch inputs come from and where their outputs go.

Input keys (URL-decoded by the caller, see decode_s3_key):
    incoming/<model>/<relative path>                   scored with the default alias
    incoming/<model>@<alias>/<relative path>           a name starting with a letter and without '.' is an alias
    incoming/<model>@<version>/<relative path>         all digits, or containing '.', is a version ("3", "1.2")
Outputs, in the data bucket, keyed by what produced them: <source> is the input's folder as uploaded,
<model> or <model>@<alias or version>, so two models (or two aliases of one model) never share an output key:
    scored/<source>/<relative path>                    input columns as read + prediction, proba_<class>...
    scored/<source>/<relative path>.summary.json       the job summary (also for failed jobs)
    scored/<source>/<relative path>.superseded.json    the last delivery of an older upload that was not published
    errors/<source>/<relative path>.jsonl              one line per rejected row
    tmp/<job id>/...                                   parts written by score_chunk, deleted by merge_chunks
Until issue 10 the outputs were scored/<relative path> etc. without <source>; old outputs stay where they are.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from sklambda.batch.errors import BatchInputError

INCOMING = "incoming/"
CSV, CSV_GZ, JSONL, JSONL_GZ = "csv", "csv.gz", "jsonl", "jsonl.gz"
FORMATS = (CSV_GZ, JSONL_GZ, CSV, JSONL)  # longest suffix first
_VERSION_RE = re.compile(r"^(\d+|.*\..*)$")


@dataclass(frozen=True)
class Target:
    """What an incoming/ key asks for (model, alias or version, relative path) and the output keys it gets."""

    model: str
    alias: str | None
    version: str | None
    relative_path: str

    @property
    def format(self) -> str:
        """The input's format from its suffix: csv, csv.gz, jsonl or jsonl.gz."""
        return detect_format(self.relative_path)

    @property
    def source(self) -> str:
        """The model and selector as written in the input key: churn, churn@staging, churn@3."""
        selector = self.alias or self.version
        return f"{self.model}@{selector}" if selector else self.model

    @property
    def scored_key(self) -> str:
        """scored/<source>/<relative path>: the input's rows with their predictions."""
        return f"scored/{self.source}/{self.relative_path}"

    @property
    def summary_key(self) -> str:
        """<scored key>.summary.json: the job summary (every job ends with one)."""
        return f"{self.scored_key}.summary.json"

    @property
    def superseded_key(self) -> str:
        """<scored key>.superseded.json: the summary of an older upload's job that published nothing."""
        return f"{self.scored_key}.superseded.json"

    @property
    def errors_key(self) -> str:
        """errors/<source>/<relative path>.jsonl: one line per rejected row."""
        return f"errors/{self.source}/{self.relative_path}.jsonl"


def decode_s3_key(raw: str) -> str:
    """S3 event notifications URL-encode keys (spaces as '+'); this gives the real key."""
    return urllib.parse.unquote_plus(raw)


def detect_format(key: str) -> str:
    """The format named by the key's suffix (case-insensitive): csv, csv.gz, jsonl or jsonl.gz.

    Raises BatchInputError for any other suffix.
    """
    lower = key.lower()
    for fmt in FORMATS:
        if lower.endswith("." + fmt):
            return fmt
    raise BatchInputError(
        f"cannot score {key!r}: unknown file type; use .csv, .csv.gz, .jsonl or .jsonl.gz",
    )


def parse_incoming_key(key: str) -> Target:
    """Model, alias or version, and relative path from an incoming/ key (already URL-decoded).

    Raises BatchInputError naming the key when it is not incoming/<model>[@<alias or version>]/<file> with a
    known suffix.
    """
    if not key.startswith(INCOMING):
        raise BatchInputError(f"cannot score {key!r}: batch inputs must be under {INCOMING}<model>/")
    rest = key[len(INCOMING) :]
    head, sep, relative = rest.partition("/")
    if not sep or not head or not relative or relative.endswith("/"):
        raise BatchInputError(
            f"cannot score {key!r}: expected incoming/<model>[@<alias or version>]/<file>, e.g. incoming/churn/day.csv"
        )
    model, at, selector = head.partition("@")
    if not model or (at and not selector):
        raise BatchInputError(f"cannot score {key!r}: {head!r} is not <model> or <model>@<alias or version>")
    alias = version = None
    if selector:
        if _VERSION_RE.match(selector):
            version = selector
        else:
            alias = selector
    detect_format(relative)
    return Target(model=model, alias=alias, version=version, relative_path=relative)
