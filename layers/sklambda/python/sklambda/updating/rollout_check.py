"""The rollout check, minus its Lambda: for one alias with a canary or a shadow, evaluate the canary (updating.rollout),
roll it back when the verdict says so (a conditional write: only the alias as it was evaluated), write the verdict's
report, and compare the shadow (updating.shadow).

The result of `check_alias` is the rollout check function's answer for one alias (README, "Automatic rollback and
shadow reports"):

    {"model", "alias", "status": collecting | healthy | rolled_back | no_canary,
     "stable_version", "canary_version" (or null), "shadow_version" (or null),
     "verdict": rollout.CanaryVerdict.to_dict() | null,
     "rollback": {"applied": bool, "message"} | null            (rolled_back verdicts only),
     "report": {"json", "html"} | null                          (the canary verdict's report keys),
     "shadow": {"status": "compared", "summary", "quality", "agreement", "latency", "fidelity", "report"}
               | {"status": "failed", "error": {"code", "message"}} | null}
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from sklambda.errors import RegistryConflict, SklambdaError
from sklambda.registry.signing import CardVerifier
from sklambda.registry.store import AliasRecord, Registry
from sklambda.serving.server import LoadedModel
from sklambda.updating.page import render_canary_report, render_shadow_report
from sklambda.updating.rollout import ROLLED_BACK, CanaryVerdict, check_canary, write_canary_report
from sklambda.updating.shadow import run_shadow

NO_CANARY = "no_canary"


def aliases_in_rollout(registry: Registry, on_error: Callable[[str, Exception], None]) -> Iterator[AliasRecord]:
    """Every alias of every model that has a canary or a shadow. A model whose aliases cannot be read is reported to
    `on_error(name, error)` and skipped, so it does not stop the others."""
    for name in registry.list_models():
        try:
            records = [registry.get_alias(name, alias) for alias in registry.list_aliases(name)]
        except Exception as e:  # an unreadable alias of one model must not hide the other models' canaries
            on_error(name, e)
            continue
        yield from (r for r in records if r.canary is not None or r.shadow is not None)


def roll_back(registry: Registry, record: AliasRecord) -> dict[str, Any]:
    """Drop the canary of `record`, only if the alias is still as it was read (its ETag): a promote, ramp or finish
    made since was decided on newer facts and is left alone. Returns {"applied", "message"}."""
    canary = record.canary
    assert canary is not None
    try:
        registry.rollback(record.name, record.alias, expected_etag=record.etag)
    except RegistryConflict:
        return {
            "applied": False,
            "message": f"alias {record.alias!r} changed since the canary v{canary.version} was evaluated: "
            "nothing rolled back (the next check evaluates it as it is now)",
        }
    return {
        "applied": True,
        "message": f"canary v{canary.version} removed: stable v{record.version} answers every caller of "
        f"{record.alias!r} again",
    }


def check_alias(
    registry: Registry,
    record: AliasRecord,
    *,
    s3: Any,
    data_bucket: str,
    verifier: CardVerifier | None,
    load: Callable[[str, str], LoadedModel],
    shadow_window_hours: float,
    shadow_max_rows: int,
    now: datetime | None = None,
) -> tuple[dict[str, Any], CanaryVerdict | None]:
    """Check one alias (module docstring for the answer's shape); returns the answer and the canary verdict (None
    without a canary).

    The canary is evaluated first and, when rolled back, its report names what was done. A shadow comparison that
    fails is an entry of the answer (status failed), never an exception: it must not stop a rollback. Raises what
    rollout.check_canary raises (ModelNotFound, ModelRefused, ValueError for invalid bounds, ClientError).
    """
    now = now or datetime.now(UTC)
    answer: dict[str, Any] = {
        "model": record.name,
        "alias": record.alias,
        "status": NO_CANARY,
        "stable_version": record.version,
        "canary_version": record.canary.version if record.canary else None,
        "shadow_version": record.shadow.version if record.shadow else None,
        "verdict": None,
        "rollback": None,
        "report": None,
        "shadow": None,
    }
    verdict = None
    if record.canary is not None:
        verdict, _ = check_canary(registry, record, s3=s3, data_bucket=data_bucket, verifier=verifier, now=now)
        document = verdict.to_dict()
        answer |= {"status": verdict.status, "verdict": document}
        if verdict.status == ROLLED_BACK:
            answer["rollback"] = roll_back(registry, record)
        answer["report"] = write_canary_report(
            s3, data_bucket, verdict, {**document, "rollback": answer["rollback"]}, render_canary_report
        )
    if record.shadow is not None:
        answer["shadow"] = _shadow(record, s3, data_bucket, load, shadow_window_hours, shadow_max_rows, now)
    return answer, verdict


def _shadow(
    record: AliasRecord,
    s3: Any,
    bucket: str,
    load: Callable[[str, str], LoadedModel],
    hours: float,
    max_rows: int,
    now: datetime,
) -> dict[str, Any]:
    try:
        document = run_shadow(
            record,
            load=load,
            s3=s3,
            data_bucket=bucket,
            window_hours=hours,
            max_rows=max_rows,
            render=render_shadow_report,
            now=now,
        )
    except SklambdaError as e:
        return {"status": "failed", "error": {"code": e.code, "message": e.message}}
    except Exception as e:  # a shadow that cannot be compared must not hide the canary's verdict
        return {"status": "failed", "error": {"code": "internal", "message": f"{type(e).__name__}: {e}"}}
    keys = ("summary", "quality", "agreement", "latency", "fidelity", "replay", "report")
    return {"status": "compared", **{k: document.get(k) for k in keys}}
