"""The parity gate: before a version is published, prove that the deployed runtime serves the artifact with the
answers the estimator gives in memory, or refuse the publish with the rows, the feature and both values.

Expected: the user's estimator on the original DataFrame rows. Served: the same rows sent as clients send them
(JSON to the REST and Open Inference Protocol v2 routes, CSV and JSON Lines to batch scoring), decoded by the
serving code, scored by the artifact unpickled **from the bytes that will be uploaded** in a fresh process whose
packages are the target runtime's (the dependency layer's host copy, never the publisher's site-packages; see
parity_child). Classes must be equal; probabilities and regression outputs equal within RTOL (relative), with an
ATOL floor for values near zero whose last bits come from cancellation.

Rows: `select_rows` takes, from the holdout data (else training), every null pattern, every category and the
extremes of each numeric feature, and fills up to PARITY_ROWS with a seeded sample.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sklambda import config
from sklambda.errors import FieldError, PublishRejected
from sklambda.publishing.parity_child import CSV_ROUTE, JSONL_ROUTE, REST, V2
from sklambda.registry.card import ModelCard
from sklambda.registry.schema import to_records
from sklambda.runtime_env import RuntimeManifest

PARITY_ROWS = 256
PARITY_SEED = 0
# Per feature: at most this many rows chosen for its nulls, and categories covered.
ROWS_PER_NULL = 3
MAX_CATEGORY_ROWS = 64
RTOL = 1e-9
ATOL = 1e-12
ROUTES = (REST, V2, CSV_ROUTE, JSONL_ROUTE)
# The compiled evaluator (sklambda.compiled) serves the predict function's routes only (batch scoring unpickles the
# estimator), and is used only when it agrees with the estimator within these, classes exactly (issue 15's bar: 1e-6 in
# probability). It is float64 arithmetic like scikit-learn's, so it usually agrees to the last bits.
COMPILED_ROUTES = (REST, V2)
COMPILED_RTOL = 1e-6
COMPILED_ATOL = 1e-6
START_TIMEOUT_S = 120.0
JOB_TIMEOUT_S = 300
SHOWN_ROWS = 5
ENV_RUNTIME_PATH = config.RUNTIME_PATH  # os.pathsep-separated folders: the target runtime's packages


@dataclass(frozen=True)
class Runtime:
    """Where the target runtime's packages are for this machine's interpreter: `paths` go on sys.path in order
    (the dependency layer's host copy first, then what the Lambda runtime itself ships); the first holds the
    manifest."""

    paths: tuple[Path, ...]
    manifest: RuntimeManifest

    @classmethod
    def at(cls, paths: Sequence[str | os.PathLike[str]]) -> Runtime:
        """Raises PublishRejected when the first folder has no readable runtime manifest."""
        folders = tuple(Path(p) for p in paths if str(p))
        if not folders:
            raise PublishRejected("[parity] no runtime folders were given")
        try:
            manifest = RuntimeManifest.read(folders[0])
        except (OSError, ValueError, KeyError) as e:
            raise PublishRejected(
                f"[parity] {folders[0]} holds no readable runtime manifest ({e}): build the layer's host copy "
                "with `python -m sklambda_infra.layer --local`"
            ) from None
        return cls(folders, manifest)

    @classmethod
    def from_env(cls) -> Runtime:
        """The runtime named by SKLAMBDA_RUNTIME_PATH (os.pathsep-separated folders, see `at`).

        Raises PublishRejected when the variable is unset or blank, or its first folder has no readable manifest.
        """
        value = os.environ.get(ENV_RUNTIME_PATH, "").strip()
        if not value:
            raise PublishRejected(
                f"[parity] publish checks the model in the deployed runtime's packages, and {ENV_RUNTIME_PATH} "
                "does not say where they are: pass runtime=Runtime.at([...]) or set it to the folders printed by "
                "`python -m sklambda_infra.layer --local` (the sklambda CLI, demo and local stack set it)"
            )
        return cls.at(value.split(os.pathsep))


@dataclass
class ParityReport:
    """The card's `parity` section."""

    rows: int
    routes: list[str]
    max_abs_difference: float
    max_rel_difference: float
    runtime: dict[str, Any]
    needs: dict[str, Any]
    seconds: float
    problems: list[FieldError] = field(default_factory=list)
    compiled: CompiledCheck | None = None

    def card_section(self) -> dict[str, Any]:
        """The card's `parity` section (module docstring of sklambda.registry.card): rows, routes, largest differences,
        tolerances, runtime, needs, seconds.
        """
        return {
            "rows": self.rows,
            "routes": list(self.routes),
            "max_abs_difference": self.max_abs_difference,
            "max_rel_difference": self.max_rel_difference,
            "tolerance": {"rtol": RTOL, "atol": ATOL},
            "runtime": dict(self.runtime),
            "needs": dict(self.needs),
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class CompiledCheck:
    """How the compiled artifact scored the parity rows in the target runtime: `agreement` ({"rows", "routes",
    "max_abs_difference", "max_rel_difference", "class_flips", "tolerance"}) when it agreed with the estimator within
    COMPILED_RTOL/COMPILED_ATOL and exactly in class on every route of COMPILED_ROUTES, else `reason` (why it is not
    used)."""

    agreement: dict[str, Any] | None = None
    reason: str | None = None


def select_rows(X: pd.DataFrame, extra: pd.DataFrame | None = None, size: int = PARITY_ROWS) -> pd.DataFrame:
    """Up to `size` rows (more when coverage needs them) of X, then `extra`: for each feature its nulls (up to
    ROWS_PER_NULL), its smallest and largest value, one row per category (up to MAX_CATEGORY_ROWS), then a seeded
    sample of X. Returned in their original dtypes with a fresh RangeIndex."""
    pool = pd.concat([X, extra[list(X.columns)]], ignore_index=True) if extra is not None else X.reset_index(drop=True)
    chosen: list[int] = []
    for col in pool.columns:
        s = pool[col]
        isna = s.isna().to_numpy()
        chosen.extend(np.flatnonzero(isna)[:ROWS_PER_NULL].tolist())
        present = s[~isna]
        if not len(present):
            continue
        if pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_bool_dtype(present):
            chosen.extend([int(present.idxmin()), int(present.idxmax())])
        else:
            firsts = present.astype(str).drop_duplicates()
            chosen.extend(int(i) for i in firsts.index[:MAX_CATEGORY_ROWS])
    chosen = list(dict.fromkeys(chosen))
    rest = np.setdiff1d(np.arange(len(X)), chosen)
    want = max(0, size - len(chosen))
    if want and len(rest):
        rng = np.random.default_rng(PARITY_SEED)
        chosen.extend(np.sort(rng.choice(rest, min(want, len(rest)), replace=False)).tolist())
    return pool.iloc[sorted(chosen)].reset_index(drop=True)


def payloads(rows: pd.DataFrame, card: ModelCard) -> dict[str, str]:
    """The rows as clients send them to each route. Features the model never reads (`is_required` False) are left
    out as a client that lacks them would: from every other row of the REST and JSON Lines payloads (so both forms
    are checked), and from the v2 inputs and the CSV columns altogether."""
    records = to_records(rows)
    schema = card.input_schema
    optional = set(schema.optional_names)
    names = [n for n in schema.names if n not in optional]
    sparse = [{k: v for k, v in r.items() if k not in optional} if i % 2 else r for i, r in enumerate(records)]
    v2 = {
        "inputs": [
            {"name": n, "shape": [len(records)], "datatype": _v2_datatype(card, n), "data": [r[n] for r in records]}
            for n in names
        ]
    }
    return {
        REST: json.dumps({"instances": sparse}),
        V2: json.dumps(v2),
        CSV_ROUTE: rows.drop(columns=[c for c in rows.columns if c in optional]).to_csv(index=False),
        JSONL_ROUTE: "".join(json.dumps(r) + "\n" for r in sparse),
    }


def _v2_datatype(card: ModelCard, name: str) -> str:
    from sklambda.serving.oip import feature_datatype

    return feature_datatype(card.input_schema.feature(name))


class _Server:
    """One parity_child fork server per runtime, per publishing process (reused across publishes)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._shim = Path(tempfile.mkdtemp(prefix="sklambda-parity-"))
        # Only the sklambda package itself from the publisher's install, never the folder it sits in.
        (self._shim / "sklambda").symlink_to(Path(__file__).resolve().parents[1], target_is_directory=True)
        boot = "import sys; sys.path[:0] = sys.argv[1:]; from sklambda.publishing.parity_child import main; main()"
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-B", "-c", boot, str(self._shim), *map(str, runtime.paths)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=_child_environment(),
            start_new_session=True,
        )
        self._stderr: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()
        self._hello: dict[str, Any] | None = None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    def _drain(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line.rstrip())
            del self._stderr[:-40]

    def hello(self) -> dict[str, Any]:
        if self._hello is None:
            line = _readline(self.process, START_TIMEOUT_S)
            self._hello = json.loads(line) if line else {"ready": False, "error": "the runtime process exited"}
        return self._hello

    def alive(self) -> bool:
        return self.process.poll() is None

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        hello = self.hello()
        if not hello.get("ready"):
            tail = "\n".join(self._stderr[-10:])
            raise PublishRejected(
                f"[parity] the target runtime could not start: {hello.get('error')}\n{hello.get('traceback', '')}{tail}"
            )
        with self._lock, tempfile.TemporaryDirectory(prefix="sklambda-parity-job-") as tmp:
            job_path, result_path = Path(tmp) / "job.json", Path(tmp) / "result.json"
            job_path.write_text(json.dumps({**job, "result": str(result_path), "timeout_s": JOB_TIMEOUT_S}))
            assert self.process.stdin is not None
            ident = next(self._ids)
            self.process.stdin.write(json.dumps({"id": ident, "job": str(job_path)}) + "\n")
            self.process.stdin.flush()
            line = _readline(self.process, JOB_TIMEOUT_S + 30)
            reply = json.loads(line) if line else {"exit": None}
            if not result_path.exists():
                tail = "\n".join(self._stderr[-10:])
                raise PublishRejected(
                    f"[parity] the runtime process ended without an answer (exit {reply.get('exit')}): "
                    f"the model crashed or ran past {JOB_TIMEOUT_S} s while loading or scoring\n{tail}"
                )
            return json.loads(result_path.read_text())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.process.stdin:
                self.process.stdin.close()
            self.process.wait(timeout=5)
        with contextlib.suppress(Exception):
            self.process.kill()
        (self._shim / "sklambda").unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self._shim.rmdir()


# Passed through to the runtime process: numeric-library settings change which kernels run (and on some CPUs
# whether OpenBLAS computes correctly), so the gate must run with the publisher's. Nothing else of the
# publisher's environment (PYTHONPATH, credentials) reaches it.
_PASSED_PREFIXES = ("OPENBLAS_", "OMP_", "MKL_", "GOTO", "BLIS_")


def _child_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.startswith(_PASSED_PREFIXES)}
    env.update(PATH=os.environ.get("PATH", "/usr/bin:/bin"), LANG="C.UTF-8", HOME=tempfile.gettempdir())
    if "TMPDIR" in os.environ:
        env["TMPDIR"] = os.environ["TMPDIR"]
    return env


def _readline(process: subprocess.Popen, timeout: float) -> str:
    out: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        out.append(process.stdout.readline())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    return out[0] if out else ""


_servers: dict[tuple[Path, ...], _Server] = {}
_servers_lock = threading.Lock()


def server_for(runtime: Runtime) -> _Server:
    """The fork server for `runtime`, started on first use (call early: it imports the layer in the background)."""
    with _servers_lock:
        server = _servers.get(runtime.paths)
        if server is None or not server.alive():
            server = _servers[runtime.paths] = _Server(runtime)
        return server


@atexit.register
def _close_servers() -> None:
    for server in list(_servers.values()):
        server.close()
    _servers.clear()


def check_parity(
    model: Any,
    card: ModelCard,
    blob: bytes,
    rows: pd.DataFrame,
    runtime: Runtime,
    *,
    code: dict[str, bytes] | None = None,
    needs: dict[str, Any] | None = None,
    compiled: bytes | None = None,
) -> ParityReport:
    """Score `rows` in memory and through every route in the target runtime; raise PublishRejected naming the
    rows, the feature (where one explains them) and both values on any difference, else return the report.

    compiled: the compiled artifact (sklambda.compiled) of `model`, scored in the same job through COMPILED_ROUTES by
    the compiled evaluator of the target runtime; the report's `compiled` says whether it agrees (a difference never
    refuses the publish: the version is then served by scikit-learn, and the card says why).
    """
    started = time.perf_counter()
    expected_pred, expected_proba = _expected(model, card, rows)
    _check_finite(expected_pred, expected_proba, rows, "the estimator in memory")
    with tempfile.TemporaryDirectory(prefix="sklambda-parity-") as tmp:
        artifact = Path(tmp) / "artifact.joblib"
        artifact.write_bytes(blob)
        job = {
            "card": card.to_dict(include_signature=False),
            "artifact": str(artifact),
            "code": {p: data.decode("utf-8") for p, data in code.items()} if code else None,
            "payloads": payloads(rows, card),
        }
        if compiled is not None:
            path = Path(tmp) / "compiled.bin"
            path.write_bytes(compiled)
            job["compiled"] = str(path)
        answer = server_for(runtime).run(job)
    if answer.get("load_error"):
        raise PublishRejected(
            f"[parity] the target runtime cannot load the artifact: {answer['load_error']} (runtime "
            f"{runtime.manifest.fingerprint[:12]}, scikit-learn {runtime.manifest.sklearn_version})"
        )
    max_abs = max_rel = 0.0
    for route in ROUTES:
        served = answer["routes"].get(route)
        if served is None:
            raise PublishRejected(f"[parity] route {route} gave no answer")
        if "error" in served:
            _refuse_route_error(route, served)
        a, r = _compare(route, rows, expected_pred, expected_proba, served, card)
        max_abs, max_rel = max(max_abs, a), max(max_rel, r)
    manifest = runtime.manifest
    return ParityReport(
        rows=len(rows),
        routes=list(ROUTES),
        max_abs_difference=max_abs,
        max_rel_difference=max_rel,
        runtime={
            "fingerprint": manifest.fingerprint,
            "python": manifest.python,
            "platform": manifest.platform,
            "scikit-learn": manifest.sklearn_version,
        },
        needs=dict(needs or {}),
        seconds=time.perf_counter() - started,
        compiled=_check_compiled(answer, rows, expected_pred, expected_proba, card) if compiled is not None else None,
    )


def _check_compiled(
    answer: dict[str, Any], rows: pd.DataFrame, pred: list, proba: np.ndarray | None, card: ModelCard
) -> CompiledCheck:
    """Compare the compiled evaluator's answers (answer["compiled"]) with the estimator's in memory."""
    served = answer.get("compiled") or {}
    if served.get("load_error"):
        return CompiledCheck(reason=f"the target runtime cannot read the compiled artifact: {served['load_error']}")
    max_abs = max_rel = 0.0
    for route in COMPILED_ROUTES:
        got = (served.get("routes") or {}).get(route)
        if got is None:
            return CompiledCheck(reason=f"the compiled evaluator gave no answer through the {route} route")
        if "error" in got:
            return CompiledCheck(reason=f"the compiled evaluator refuses rows the estimator scores ({route}): "
                                 f"{got['error']}")  # fmt: skip
        try:
            a, r = _compare(route, rows, pred, proba, got, card, rtol=COMPILED_RTOL, atol=COMPILED_ATOL)
        except PublishRejected as e:
            return CompiledCheck(reason=f"the compiled evaluator {e.message.removeprefix('[parity] served ')}")
        max_abs, max_rel = max(max_abs, a), max(max_rel, r)
    return CompiledCheck(
        agreement={
            "rows": len(rows),
            "routes": list(COMPILED_ROUTES),
            "max_abs_difference": max_abs,
            "max_rel_difference": max_rel,
            "class_flips": 0,
            "tolerance": {"rtol": COMPILED_RTOL, "atol": COMPILED_ATOL},
        }
    )


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _expected(model: Any, card: ModelCard, rows: pd.DataFrame) -> tuple[list, np.ndarray | None]:
    try:
        if card.classes is not None and hasattr(model, "predict_proba"):
            proba = np.asarray(model.predict_proba(rows), dtype=float)
            return [_plain(v) for v in np.asarray(model.predict(rows)).tolist()], proba
        return [_plain(v) for v in np.asarray(model.predict(rows)).tolist()], None
    except Exception as e:
        raise PublishRejected(
            f"[parity] the estimator cannot score rows of its own data: {type(e).__name__}: {e}"
        ) from None


def _check_finite(pred: list, proba: np.ndarray | None, rows: pd.DataFrame, where: str) -> None:
    bad = [i for i, p in enumerate(pred) if isinstance(p, float) and not np.isfinite(p)]
    if proba is not None:
        bad += np.flatnonzero(~np.isfinite(proba).all(axis=1)).tolist()
    if bad:
        bad = sorted(set(bad))
        raise PublishRejected(
            f"[parity] {where} gives a non-finite prediction or probability for {len(bad)} of {len(rows)} rows of "
            f"its own data (first: {_row_text(rows, bad[0])}); such an answer would be refused for every client",
            errors=[FieldError("non-finite output", row=i) for i in bad[:SHOWN_ROWS]],
        )


def _refuse_route_error(route: str, served: dict[str, Any]) -> None:
    errors = [FieldError(e["message"], row=e.get("row"), field=e.get("field")) for e in served.get("errors", [])]
    detail = served.get("rejected") or ""
    raise PublishRejected(
        f"[parity] the {route} route refuses rows of the model's own data: {served['error']}"
        + (f"; {detail[:500]}" if detail else ""),
        errors=errors[:20],
    )


def _compare(
    route: str,
    rows: pd.DataFrame,
    pred: list,
    proba: np.ndarray | None,
    served: dict[str, Any],
    card: ModelCard,
    *,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> tuple[float, float]:
    got_pred = served["predictions"]
    if len(got_pred) != len(pred):
        raise PublishRejected(f"[parity] the {route} route answered {len(got_pred)} rows for {len(pred)}")
    as_text = route == CSV_ROUTE
    bad_class = [
        i for i, (e, g) in enumerate(zip(pred, got_pred, strict=True)) if not _same_label(e, g, as_text=as_text)
    ]
    diffs_abs = np.zeros(len(pred))
    diffs_rel = np.zeros(len(pred))
    what = "prediction"
    if proba is not None:
        got = np.asarray(served["probabilities"], dtype=float)
        if got.shape != proba.shape:
            raise PublishRejected(f"[parity] the {route} route answered probabilities of shape {got.shape}")
        diff = np.abs(got - proba)
        scale = np.maximum(np.abs(got), np.abs(proba))
        bad_value = np.flatnonzero(((diff > rtol * scale + atol) | ~np.isfinite(got)).any(axis=1)).tolist()
        diffs_abs = diff.max(axis=1)
        diffs_rel = (diff / np.where(scale > 0, scale, 1)).max(axis=1)
        what, expected_values, served_values = "probabilities", proba.tolist(), got.tolist()
    elif all(isinstance(p, int | float) and not isinstance(p, bool) for p in pred):
        e = np.asarray(pred, dtype=float)
        g = np.asarray([np.nan if v in (None, "") else float(v) for v in got_pred], dtype=float)
        diff = np.abs(g - e)
        scale = np.maximum(np.abs(g), np.abs(e))
        bad_value = np.flatnonzero((diff > rtol * scale + atol) | ~np.isfinite(g)).tolist()
        diffs_abs, diffs_rel = diff, diff / np.where(scale > 0, scale, 1)
        bad_class = []
        expected_values, served_values = e.tolist(), g.tolist()
    else:
        bad_value, expected_values, served_values = [], pred, got_pred
    bad = sorted(set(bad_class) | set(bad_value))
    if bad:
        feature = _feature_involved(rows, bad, card)
        shown = "; ".join(
            f"row {i} ({_row_text(rows, i)}): in memory {_fmt(expected_values[i], pred[i])}, "
            f"served {_fmt(served_values[i], got_pred[i])}"
            for i in bad[:SHOWN_ROWS]
        )
        because = f"; the rows that differ share feature {feature!r} ({_why(rows, feature, bad)})" if feature else ""
        raise PublishRejected(
            f"[parity] served {what} differ from the estimator's in memory on {len(bad)} of {len(pred)} rows "
            f"through the {route} route{because}: {shown}",
            errors=[
                FieldError(f"served answer differs from the estimator's ({route})", row=i, field=feature)
                for i in bad[:20]
            ],
        )
    finite_abs = diffs_abs[np.isfinite(diffs_abs)]
    finite_rel = diffs_rel[np.isfinite(diffs_rel)]
    return (float(finite_abs.max()) if len(finite_abs) else 0.0, float(finite_rel.max()) if len(finite_rel) else 0.0)


def _same_label(expected: Any, got: Any, *, as_text: bool) -> bool:
    if as_text:
        return str(expected) == str(got)
    return expected == got or (type(expected) is not type(got) and str(expected) == str(got))


def _fmt(value: Any, label: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(f"{v:.6g}" if isinstance(v, float) else repr(v) for v in value) + f"] (class {label!r})"
    return f"{value!r}"


def _row_text(rows: pd.DataFrame, i: int) -> str:
    record = to_records(rows.iloc[[i]])[0]
    text = ", ".join(f"{k}={v!r}" for k, v in record.items())
    return text if len(text) <= 200 else text[:197] + "..."


def _feature_involved(rows: pd.DataFrame, bad: list[int], card: ModelCard) -> str | None:
    """A feature that sets the differing rows apart: null in all of them and less often elsewhere; holding
    categories the matching rows never hold; or beyond a threshold the matching rows stay within. pii and
    identifier-like columns (no category list in the card) are never named. None when no feature explains it."""
    mask = np.zeros(len(rows), dtype=bool)
    mask[bad] = True
    if mask.all():
        return None
    features = [f for f in card.input_schema.features if not f.pii and f.name in rows.columns]
    for f in features:
        isna = rows[f.name].isna().to_numpy()
        if isna[mask].all() and isna[~mask].mean() < 1:
            return f.name
    for f in features:
        if f.categories is not None:
            s = rows[f.name].astype(str)
            if not set(s[mask]) & set(s[~mask]):
                return f.name
    for f in features:
        if f.minimum is not None:
            values = pd.to_numeric(rows[f.name], errors="coerce").to_numpy(dtype=float)
            bad_v, good_v = values[mask & np.isfinite(values)], values[~mask & np.isfinite(values)]
            if len(bad_v) and len(good_v) and (bad_v.min() > good_v.max() or bad_v.max() < good_v.min()):
                return f.name
    return None


def _why(rows: pd.DataFrame, feature: str, bad: list[int]) -> str:
    values = rows[feature].iloc[bad]
    if values.isna().all():
        return "null in every one of them"
    if pd.api.types.is_numeric_dtype(values):
        others = rows[feature].drop(index=rows.index[bad])
        side = "above" if values.min() > others.max() else "below"
        edge = others.max() if side == "above" else others.min()
        return (
            f"{side} {_plain(edge)!r} in every one of them, from {_plain(values.min())!r} to {_plain(values.max())!r}"
        )
    return "values: " + ", ".join(sorted({repr(v) for v in values})[:5])
