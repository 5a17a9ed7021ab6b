"""The bytes a batch job writes: each scored row's own text followed by its prediction columns, and one JSON line
per rejected row.

Scored CSV rows are the input line as read plus `,prediction[,proba_<class>...][,decision],model_version
[,explain_base,explain_<feature>...]`; scored JSON Lines rows are the input object with those keys appended.
Floats are written with repr (shortest round-trip text), so a row's output is the same in every path (single pass,
fan-out chunks, the publish-time parity gate) and parses back to the very float the model produced.
"""

from __future__ import annotations

import json
import math
from typing import Any

from sklambda.batch.errors import JobFailure
from sklambda.batch.keys import CSV, CSV_GZ
from sklambda.batch.parse import CsvLayout, Reasons
from sklambda.errors import ExplanationUnavailable
from sklambda.serving.server import LoadedModel


def output_columns(loaded: LoadedModel, *, explain: bool = False) -> list[str]:
    """The columns appended to each scored row, in order: prediction, proba_<class> per class key (classifiers
    with predict_proba), decision (binary classifiers with a decision threshold in the card), model_version, and with
    `explain` explain_base plus explain_<feature> per input feature of the card's schema."""
    scorer = loaded.scorer
    probas = [f"proba_{k}" for k in scorer.class_keys] if scorer.has_probabilities else []
    decision = ["decision"] if scorer.decision_rule is not None else []
    explained = ["explain_base", *(f"explain_{n}" for n in loaded.card.input_schema.names)] if explain else []
    return ["prediction", *probas, *decision, "model_version", *explained]


def explained_output(loaded: LoadedModel) -> str:
    """Which model output the explanation columns attribute: the positive class of a binary classifier (the
    card's decision rule, else the second class), or "prediction" for a regressor.

    Raises JobFailure before any row is read: `explain_unavailable` when the model cannot be explained (no
    background sample in the card, no predict_proba), `explain_unsupported` for more than two classes (one column
    set per class would be needed; the API's ?explain=true returns every class).
    """
    scorer = loaded.scorer
    try:
        scorer.explainer()
    except ExplanationUnavailable as e:
        raise JobFailure("explain_unavailable", e.message) from None
    if not scorer.has_probabilities:
        return "prediction"
    keys = scorer.class_keys
    if len(keys) != 2:
        raise JobFailure(
            "explain_unsupported",
            f"explanation columns are written for binary classifiers and regressors; {loaded.card.name} has "
            f"{len(keys)} classes (use the API's ?explain=true, which returns every class)",
        )
    rule = scorer.decision_rule
    return str(rule["positive_class"]) if rule else keys[1]


class RowFormatter:
    """Appends the prediction columns (`output_columns`) to each scored row's raw text, for one model and format.

    Raises JobFailure (see explained_output) when built with `explain` for a model that cannot be explained.
    """

    def __init__(self, loaded: LoadedModel, fmt: str, *, explain: bool = False) -> None:
        self.csv = fmt in (CSV, CSV_GZ)
        self.scorer = loaded.scorer
        self.version = loaded.card.version
        self.columns = output_columns(loaded, explain=explain)
        self.explain_output = explained_output(loaded) if explain else None
        self.decides = self.scorer.decision_rule is not None
        if self.csv:
            self.class_text = {c: csv_cell(str(c)) for c in self.scorer.classes}
            self.tail = "," + csv_cell(self.version)
        else:
            self.class_text = {c: json.dumps(c) for c in self.scorer.classes}
            self.tail = ',"model_version":' + json.dumps(self.version)
            self.keys = [json.dumps(c) for c in self.columns]

    def header(self, layout: CsvLayout) -> bytes:
        """The scored CSV's header line: the input's header as read, then the output columns; ends with a newline."""
        return layout.header_bytes + ("," + ",".join(csv_cell(c) for c in self.columns)).encode() + b"\n"

    def rows(self, raws: list[bytes], scored: Any, explanations: Any = None) -> bytes:
        """The output lines of `raws` (the scored rows' raw records, without newline), newline-terminated.

        `scored` is the rows' ScoredArrays (probabilities of shape [rows, classes]); `explanations` their
        Explanation (values of shape [rows, features, outputs]) when the job writes explanation columns. A
        non-finite regression prediction is written as an empty CSV cell or a JSON null.
        """
        preds = scored.predictions
        ctext = self.class_text
        if scored.probabilities is not None:
            pred_s = [ctext.get(p) or self._value(p) for p in preds]
            cols = [list(map(float.__repr__, column)) for column in scored.probabilities.T.tolist()]
            if self.decides:
                cols.append([ctext.get(d) or self._value(d) for d in self.scorer.decide(scored.probabilities)])
        else:
            pred_s = [self._value(p) for p in preds]
            cols = []
        after: list[list[str]] = []  # columns after model_version
        if explanations is not None:
            j = list(explanations.outputs).index(self.explain_output)
            after.append([float.__repr__(float(explanations.base_values[j]))] * len(raws))
            after.extend(list(map(float.__repr__, c)) for c in explanations.values[:, :, j].T.tolist())
        if self.csv:
            tail = self.tail
            heads = map(",".join, zip(pred_s, *cols, strict=True))
            if after:
                rests = map(",".join, zip(*after, strict=True))
                suffixes = [("," + h + tail + "," + r).encode() for h, r in zip(heads, rests, strict=True)]
            else:
                suffixes = [("," + h + tail).encode() for h in heads]
            return b"\n".join(map(bytes.__add__, raws, suffixes)) + b"\n"
        out = []
        k = self.keys
        n_before = 1 + len(cols)
        for i, raw in enumerate(raws):
            body = raw.rstrip()[:-1]
            parts = [f",{k[0]}:{pred_s[i]}"] + [f",{k[j + 1]}:{cols[j][i]}" for j in range(len(cols))]
            extra = [f",{k[n_before + 1 + j]}:{after[j][i]}" for j in range(len(after))]
            out.append(body + ("".join(parts) + self.tail + "".join(extra) + "}").encode())
        return b"\n".join(out) + b"\n"

    def _value(self, v: Any) -> str:
        if isinstance(v, float):
            return float.__repr__(v) if math.isfinite(v) else ("" if self.csv else "null")
        return csv_cell(str(v)) if self.csv else json.dumps(v)


def csv_cell(text: str) -> str:
    """`text` as one CSV cell: quoted (inner quotes doubled, RFC 4180) when it holds a comma, quote or line break."""
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def error_line(line: int, raw: bytes, reasons: Reasons, max_raw: int, reader_cut: bool) -> bytes:
    """One line of the errors file: {"line", "raw", "raw_truncated", "reasons": [{"field", "message"}]}.

    `line` is the 1-based physical line of the row in the input; `raw` its first `max_raw` bytes (invalid UTF-8
    replaced); `raw_truncated` says whether the reader (`reader_cut`, a line over the limit) or this cut shortened it.
    """
    entry = {
        "line": line,
        "raw": raw[:max_raw].decode("utf-8", "replace"),
        "raw_truncated": reader_cut or len(raw) > max_raw,
        "reasons": [{"field": f, "message": m} for f, m in reasons],
    }
    return json.dumps(entry, ensure_ascii=False).encode() + b"\n"
