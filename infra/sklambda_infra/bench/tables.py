"""Markdown helpers every benchmark section shares (report.py and the kinds that render their own tables)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

MIB = 1024 * 1024


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], right: Sequence[int] = ()) -> str:
    """A GitHub markdown table; columns whose index is in `right` are right-aligned (numbers)."""
    rows = [[_cell(c) for c in row] for row in rows]
    rule = ["---:" if i in right else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def mib(value: int | None) -> str:
    if value is None:
        return "n/a"
    return f"{value / MIB:.1f} MiB" if abs(value) >= MIB else f"{value / 1024:.0f} KiB"


def spread(s: Mapping[str, float], digits: int = 2) -> str:
    """A ratio's median and interquartile range, e.g. "1.21x (1.13-1.36)"."""
    return f"{s['median']:.{digits}f}x ({s['p25']:.{digits}f}-{s['p75']:.{digits}f})"
