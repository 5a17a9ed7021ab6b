"""The retraining pipeline's steps, minus Lambda and Step Functions: assemble the training set, refit a clone of the
champion, publish it through the normal publish path, gate it against the champion, start a rollout (canary or
shadow), watch it, ask for an approval, promote, and report.

Every step takes plain inputs, writes a step record in the data bucket and first reads its own record, so a rerun
with the same run id resumes: a step whose record says `succeeded` returns its recorded outcome and is not redone.

Layout in the data bucket (SSE-KMS by the bucket's default encryption, as the monitoring reports):
    retraining/<model>/<run id>/steps/<nn>-<step>.json   one record per step (STEP_FORMAT): input, outcome, status,
                                                          started_at, finished_at, seconds, attempt, error
    retraining/<model>/<run id>/train.jsonl.gz            the training rows (features + target), gzip JSON Lines
    retraining/<model>/<run id>/holdout.jsonl.gz          the gate's holdout
    retraining/<model>/<run id>/refused.jsonl             the training rows left out for a value the champion's
                                                          schema refuses (training_data.RefusedRow, one per line)
    retraining/<model>/<run id>/approval.json             the task token an approval waits on (the CLI reads it)
    retraining/<model>/<run id>/report.json               the run's report (REPORT_FORMAT), written by every run

A step that fails raises a StepFailed subclass whose class name is the error Step Functions sees (GateFailed,
PublishRefused...): the state machine's Catch routes every failure to the report step, which undoes a rollout the run
started (rolls the canary back, clears the shadow), writes the report and puts RetrainingFailed.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sklearn.base import clone

from sklambda.config import RETRAINING_PREFIX
from sklambda.errors import ModelNotFound, PublishRejected, RegistryConflict, SklambdaError
from sklambda.publishing.parity import Runtime
from sklambda.publishing.publisher import publish
from sklambda.registry.card import CLASSIFICATION, ModelCard
from sklambda.registry.schema import infer_schema, is_required
from sklambda.registry.signing import CardSigner, CardVerifier
from sklambda.registry.store import Registry
from sklambda.serving.server import load_verified
from sklambda.updating.gate import REPLACE, gate_config_from
from sklambda.updating.training_data import (
    MAX_REFUSED_SHARE,
    SOURCE,
    TrainingDataError,
    assemble,
    frame_to_jsonl,
    jsonl_to_frame,
    read_labeled_captures,
    read_prefix,
    refused_summary,
    unseen_categories,
    unseen_notes,
)
from sklambda.updating.versions import gate_versions

STEP_FORMAT = "sklambda.updating.retraining-step/v1"
REPORT_FORMAT = "sklambda.updating.retraining-report/v1"
EVENT_SOURCE = "sklambda.updating"
SUCCEEDED_EVENT, FAILED_EVENT, PROMOTED_EVENT = "RetrainingSucceeded", "RetrainingFailed", "ModelPromoted"
# The steps in run order; a record's number is its place here (01-assemble ... 07-promote).
STEPS = ("assemble", "train", "gate", "rollout", "watch", "approval", "promote")
RUNNING, SUCCEEDED, FAILED, UNDONE = "running", "succeeded", "failed", "undone"
CANARY, SHADOW, NO_ROLLOUT = "canary", "shadow", "none"
# What the rollout check answers (sklambda.updating.rollout.CanaryVerdict.status).
COLLECTING, HEALTHY, ROLLED_BACK = "collecting", "healthy", "rolled_back"
# read_check's other answers: a shadow the comparison would reject, an answer no check gives.
REJECTED, UNREADABLE = "rejected", "unreadable"
# A card tag naming the run that published a version: a rerun of the train step adopts the version its run published
# before a crash instead of publishing another one.
RUN_TAG, PARENT_TAG = "retraining.run", "retraining.parent"
# Step Functions execution names: 1-80 of these (the run id is the execution name of a run started by hand).
RUN_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


# --- errors: the class name is the error name the state machine sees ----------------------------------------------
class StepFailed(SklambdaError):
    """A step ended the run. `outcome` is what the step found (recorded with the failure, JSON-ready)."""

    code = "retraining_step_failed"

    def __init__(self, message: str, *, outcome: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.outcome = dict(outcome or {})


class InvalidRetrainRequest(StepFailed):
    """The execution's input is not a valid retraining request (the message names each field)."""


class TrainingDataUnusable(StepFailed):
    """Too few rows, a file that cannot be read, a column missing, or a champion whose card names no target."""


class PublishRefused(StepFailed):
    """publish refused the candidate (quality gate, parity gate, metric gates): the refusal's reasons."""


class GateFailed(StepFailed):
    """The champion/challenger gate did not decide `replace`: the GateResult is the outcome."""


class CanaryRolledBack(StepFailed):
    """The rollout check rolled the canary back (a bound was violated): its reasons."""


class ShadowRejected(StepFailed):
    """The shadow comparison's paired gate decided `reject`: the candidate is not shown non-inferior to the stable
    version (it may be worse by more than the gate's margin)."""


class RolloutCheckFailed(StepFailed):
    """The rollout check answered something no check answers (an invalid request, an unknown status)."""


class RolloutTimedOut(StepFailed):
    """The rollout kept collecting for the run's max_rounds checks: the canary is rolled back."""


class ApprovalRejected(StepFailed):
    """An operator rejected the candidate (`sklambda approve --reject`)."""


# --- the request ---------------------------------------------------------------------------------------------------
class RetrainRequest(BaseModel):
    """One run's request (the state machine's input, after defaults).

    model, alias: the model retrained and the alias whose version is the champion (and that is promoted).
    run_id: the run's id (the execution name by default); a rerun with the same id resumes.
    rollout: "canary" (canary_weight percent of the alias's callers, sticky per canary_key, rolled back beyond
    `bounds`: sklambda.updating.rollout.RolloutBounds' keys), "shadow" (scored on captured traffic, never answers), or
    "none" (promoted after the gate). approval: wait for `sklambda approve` before promoting. max_rounds: rollout
    checks before the run gives up (RolloutTimedOut). gate: GateConfig settings over its defaults. trigger: what
    started the run (an event's detail-type and id, "schedule" or "manual"), reported as given.
    """

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=63)
    run_id: str
    alias: str = "production"
    rollout: str = CANARY
    canary_weight: float = Field(default=10.0, gt=0, lt=100)
    canary_key: str | None = None
    bounds: dict[str, float] = Field(default_factory=dict)
    approval: bool = False
    max_rounds: int = Field(default=48, ge=1, le=1000)
    check_interval_seconds: int = Field(default=3600, ge=1, le=86_400)
    gate: dict[str, Any] = Field(default_factory=dict)
    trigger: dict[str, Any] = Field(default_factory=lambda: {"source": "manual"})
    max_refused_share: float = Field(default=MAX_REFUSED_SHARE, ge=0, le=1)

    @field_validator("run_id")
    @classmethod
    def _run_id(cls, value: str) -> str:
        if not RUN_ID_RE.match(value):
            raise ValueError("a run id is 1-80 letters, digits, '-' or '_' (a Step Functions execution name)")
        return value

    @field_validator("rollout")
    @classmethod
    def _rollout(cls, value: str) -> str:
        if value not in (CANARY, SHADOW, NO_ROLLOUT):
            raise ValueError(f"rollout is {CANARY}, {SHADOW} or {NO_ROLLOUT}, not {value!r}")
        return value

    @field_validator("gate")
    @classmethod
    def _gate(cls, value: dict[str, Any]) -> dict[str, Any]:
        gate_config_from(value)  # unknown keys or values out of range raise ValueError here, not at the gate step
        return value


def parse_request(
    execution_input: Any, execution_name: str, *, automatic: Mapping[str, Any] | None = None
) -> RetrainRequest:
    """The RetrainRequest of a state machine input, with `run_id` defaulting to the execution's name.

    The input is either a request's fields (a run started by hand or by a schedule's constant input) or an EventBridge
    event (a DriftDetected or PerformanceDegraded event, whose detail names the model): an event's run takes the
    `automatic` fields (the stack's rollout and approval for automatic runs) and records the event as its trigger.
    Raises InvalidRetrainRequest naming each field that is missing, unknown or out of range (pydantic's messages).
    """
    if not isinstance(execution_input, Mapping):
        raise InvalidRetrainRequest(f"the input is a {type(execution_input).__name__}, not a JSON object")
    if "detail-type" in execution_input and "source" in execution_input:  # an EventBridge event
        detail = execution_input.get("detail")
        detail = detail if isinstance(detail, Mapping) else {}
        trigger = {
            "event": execution_input["detail-type"],
            "source": execution_input["source"],
            "event_id": execution_input.get("id"),
            "version": detail.get("version"),
        }
        given = {**dict(automatic or {}), "model": detail.get("model"), "trigger": trigger}
    else:
        given = dict(execution_input)
    given = {k: v for k, v in given.items() if v is not None}
    given.setdefault("run_id", execution_name)
    try:
        return RetrainRequest.model_validate(given)
    except ValidationError as e:
        problems = [
            f"{'.'.join(map(str, err['loc'])) or 'input'}: {err['msg'].removeprefix('Value error, ')}"
            for err in e.errors()
        ]
        raise InvalidRetrainRequest(
            "invalid retraining request: " + "; ".join(problems), outcome={"problems": problems}
        ) from None


# --- records -------------------------------------------------------------------------------------------------------
def run_prefix(model: str, run_id: str) -> str:
    """The S3 prefix of one run's files: `retraining/<model>/<run id>/`."""
    return f"{RETRAINING_PREFIX}{model}/{run_id}/"


def step_key(model: str, run_id: str, step: str) -> str:
    """The key of a step's record: `retraining/<model>/<run id>/steps/<nn>-<step>.json` (nn its place in STEPS)."""
    return f"{run_prefix(model, run_id)}steps/{STEPS.index(step) + 1:02d}-{step}.json"


def _is_missing(e: ClientError) -> bool:
    return str(e.response.get("Error", {}).get("Code", "")) in ("NoSuchKey", "404", "NotFound")


class RunStore:
    """One run's records and files in the data bucket (module docstring). `s3` is a boto3 S3 client."""

    def __init__(self, s3: Any, bucket: str, model: str, run_id: str) -> None:
        self.s3, self.bucket, self.model, self.run_id = s3, bucket, model, run_id
        self.prefix = run_prefix(model, run_id)

    def get_json(self, key: str) -> dict | None:
        """The JSON object at `key`, None when there is none."""
        try:
            return json.loads(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except ClientError as e:
            if _is_missing(e):
                return None
            raise

    def put_json(self, key: str, document: Mapping[str, Any]) -> str:
        """Write `document` at `key` (JSON, NaN refused); returns the key."""
        body = json.dumps(document, indent=2, allow_nan=False, default=str).encode()
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType="application/json")
        return key

    def record(self, step: str) -> dict | None:
        """The step's record, None before the step first ran."""
        return self.get_json(step_key(self.model, self.run_id, step))

    def write_record(self, step: str, record: Mapping[str, Any]) -> None:
        """Replace the step's record."""
        self.put_json(step_key(self.model, self.run_id, step), record)

    def records(self) -> dict[str, dict]:
        """Every step's record that exists, by step name, in run order."""
        return {step: r for step in STEPS if (r := self.record(step)) is not None}

    def put_file(self, name: str, body: bytes, content_type: str) -> str:
        """Write a run file `name` under the run's prefix; returns its key."""
        key = self.prefix + name
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)
        return key

    def get_file(self, key: str) -> bytes:
        """A run file's bytes (S3 errors propagate: a file a recorded step wrote must be there)."""
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()


def _now(clock: Callable[[], datetime]) -> str:
    return clock().astimezone(UTC).isoformat(timespec="milliseconds")


def seconds_between(started_at: str | None, finished_at: str | None) -> float | None:
    """Seconds from one record time (ISO 8601, as `_now` writes them) to another; None when either is missing. The
    steps that span several invocations (watch: its rounds; approval: until the decision) are timed so, from their
    first start."""
    if not started_at or not finished_at:
        return None
    return round((datetime.fromisoformat(finished_at) - datetime.fromisoformat(started_at)).total_seconds(), 3)


def run_step(
    store: RunStore,
    step: str,
    given: Mapping[str, Any],
    action: Callable[[], dict[str, Any]],
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, Any]:
    """Run `action` as `step` of the run, or return the outcome its record holds when it already succeeded (a rerun
    resumes). The record is written `running` before the action, then `succeeded` with the outcome, or `failed` with
    the error (a StepFailed's outcome kept) before the exception propagates."""
    previous = store.record(step)
    if previous is not None and previous.get("status") == SUCCEEDED:
        return dict(previous["outcome"])
    record: dict[str, Any] = {
        "format": STEP_FORMAT,
        "model": store.model,
        "run_id": store.run_id,
        "step": step,
        "attempt": int((previous or {}).get("attempt", 0)) + 1,
        "status": RUNNING,
        "input": dict(given),
        "started_at": _now(clock),
        "finished_at": None,
        "seconds": None,
        "outcome": None,
        "error": None,
    }
    store.write_record(step, record)
    started = time.perf_counter()
    try:
        outcome = action()
    except Exception as e:
        record.update(
            status=FAILED,
            finished_at=_now(clock),
            seconds=round(time.perf_counter() - started, 3),
            outcome=e.outcome if isinstance(e, StepFailed) else None,
            error={"error": type(e).__name__, "message": getattr(e, "message", None) or str(e)},
        )
        store.write_record(step, record)
        raise
    record.update(
        status=SUCCEEDED, finished_at=_now(clock), seconds=round(time.perf_counter() - started, 3), outcome=outcome
    )
    store.write_record(step, record)
    return outcome


# --- the pipeline --------------------------------------------------------------------------------------------------
Events = Callable[[str, dict[str, Any]], "str | None"]  # (detail-type, detail) -> the event id
Notify = Callable[[str, str], None]  # (subject, message)


@dataclass
class Retraining:
    """The services a run's steps use, and the steps (one method each).

    registry, verifier: the model registry and the key its cards are verified with. s3, data_bucket: where records,
    run files, training data, captures and labels are. training_prefix: `<prefix><model>/` holds training-data files.
    label_days / lookback_days: labeled captured rows are those whose labels arrived in the last `label_days` days,
    their predictions looked for `lookback_days` further back. min_training_rows: fewer training rows fail the assemble
    step. holdout_fraction / min_holdout_rows: training_data.assemble. signer, runtime: the train step's (kms:Sign and
    the parity gate's target runtime; None elsewhere). put_event: puts an EventBridge event, returns its id. notify:
    sends the approval message (SNS). clock: now, timezone-aware.
    """

    registry: Registry
    verifier: CardVerifier
    s3: Any
    data_bucket: str
    training_prefix: str = "training-data/"
    label_days: float = 30.0
    lookback_days: float = 14.0
    min_training_rows: int = 200
    holdout_fraction: float = 0.2
    min_holdout_rows: int = 50
    signer: CardSigner | None = None
    runtime: Runtime | None = None
    put_event: Events = field(default=lambda detail_type, detail: None)
    notify: Notify = field(default=lambda subject, message: None)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def store(self, request: RetrainRequest) -> RunStore:
        """The run's records and files."""
        return RunStore(self.s3, self.data_bucket, request.model, request.run_id)

    def _run(self, request: RetrainRequest, step: str, given: Mapping[str, Any], action: Callable[[], dict]) -> dict:
        return run_step(self.store(request), step, given, action, clock=self.clock)

    # --- 01 assemble
    def assemble(self, request: RetrainRequest) -> dict[str, Any]:
        """Training rows (the prefix's, plus labeled captured rows unless the model has pii features) and the gate's
        holdout, written as the run's train/holdout files; rows the champion's schema refuses (training_data module
        docstring) are left out and written to the run's refused.jsonl. Outcome: champion, target, train_key,
        holdout_key, counts (TrainingData.summary), refused_rows, refused_captured_rows, unlabeled_rows, refused_key,
        unseen_categories ({feature: {value: rows}}) and notes. Raises TrainingDataUnusable (too few rows, more than
        the request's max_refused_share of the prefix's rows refused, unreadable file, missing column, no target on
        the champion's card); ModelNotFound when the alias does not exist."""
        given = {"alias": request.alias, "training_prefix": self.training_prefix}
        return self._run(request, "assemble", given, lambda: self._assemble(request))

    def _assemble(self, request: RetrainRequest) -> dict[str, Any]:
        champion = self.registry.resolve(request.model, alias=request.alias)
        card = self.registry.get_card(request.model, champion)
        self.verifier.verify(card)
        target = card.target
        if not target:
            raise TrainingDataUnusable(
                f"the card of {request.model} version {champion} names no target column: publish it with a named "
                "target (y as a pandas Series with a name) so training-data files can be read"
            )
        prefix = f"{self.training_prefix}{request.model}/"
        store = self.store(request)
        try:
            read = read_prefix(self.s3, self.data_bucket, prefix, card, target)
            captured = read_labeled_captures(
                self.s3, self.data_bucket, card, target,
                end=self.clock(), label_days=self.label_days, lookback_days=self.lookback_days,
            )  # fmt: skip
        except TrainingDataError as e:
            raise TrainingDataUnusable(str(e)) from None
        # A model reading a pii feature trains on no captured row (assemble): their pseudonyms are not refusals.
        if any(f.pii and is_required(f) for f in card.input_schema.features):
            captured = replace(captured, refused=[])
        refused = [*read.refused, *captured.refused]
        refused_key = None
        if refused:  # kept whatever happens next: nothing read is lost
            lines = b"".join(json.dumps(r.to_dict(), default=str).encode() + b"\n" for r in refused)
            refused_key = store.put_file("refused.jsonl", lines, "application/x-ndjson")
        checked = {
            "refused_rows": len(read.refused),
            "refused_captured_rows": len(captured.refused),
            "unlabeled_rows": read.unlabeled + captured.unlabeled,
            "refused_key": refused_key,
        }
        if read.read and len(read.refused) > request.max_refused_share * read.read:
            raise TrainingDataUnusable(
                f"{len(read.refused)} of {read.read} row(s) ({len(read.refused) / read.read:.1%}) under "
                f"s3://{self.data_bucket}/{prefix} do not match the champion's (version {champion}) input schema, over "
                f"the {request.max_refused_share:.1%} allowed: {refused_summary(read.refused, card, target)}. Every "
                f"refused row is in s3://{self.data_bucket}/{refused_key}",
                outcome={"champion": champion, "target": target, "training_prefix": prefix, "prefix_rows": read.read,
                         **checked},
            )  # fmt: skip
        data = assemble(
            read.frame, captured.frame, card, target, objects=read.objects,
            holdout_fraction=self.holdout_fraction, min_holdout_rows=self.min_holdout_rows,
        )  # fmt: skip
        notes = list(data.notes)
        if refused:
            notes.append(
                f"{len(refused)} row(s) left out for values the champion's input schema refuses "
                f"({refused_summary(refused, card, target)}): see {refused_key}"
            )
        if checked["unlabeled_rows"]:
            notes.append(f"{checked['unlabeled_rows']} row(s) without a label left out")
        assembled = pd.concat([data.train, data.holdout], ignore_index=True)
        unseen = unseen_categories(assembled, card)
        notes += unseen_notes(unseen, card, len(assembled))
        summary = {
            "champion": champion, "target": target, "training_prefix": prefix, **data.summary(), "notes": notes,
            "prefix_rows": read.read, **checked, "unseen_categories": unseen,
        }  # fmt: skip
        if len(data.train) < self.min_training_rows or not len(data.holdout):
            raise TrainingDataUnusable(
                f"too few rows to retrain {request.model}: {len(data.train)} training row(s) (at least "
                f"{self.min_training_rows}) and {len(data.holdout)} holdout row(s) from {len(read.objects)} object(s) "
                f"under s3://{self.data_bucket}/{prefix} and {data.captured_used} labeled captured row(s)",
                outcome=summary,
            )
        columns = [*card.input_schema.names, target]
        train_key = store.put_file("train.jsonl.gz", frame_to_jsonl(data.train[columns]), "application/gzip")
        holdout_key = store.put_file("holdout.jsonl.gz", frame_to_jsonl(data.holdout[columns]), "application/gzip")
        by_source = data.train[SOURCE].value_counts().to_dict()
        return {**summary, "train_key": train_key, "holdout_key": holdout_key, "training_rows_by_source": by_source}

    # --- 02 train
    def train(self, request: RetrainRequest, assembled: Mapping[str, Any]) -> dict[str, Any]:
        """Refit `sklearn.base.clone` of the champion's estimator (loaded verified) on the training rows and publish it
        as a new version through publish (quality gate, parity gate, signing), with the holdout as X_holdout/y_holdout
        and the champion's card options that apply (card_options). Outcome: version, champion, rows, fit_seconds,
        publish_seconds, metrics, warnings. Raises PublishRefused with the refusal's reasons."""
        given = {k: assembled[k] for k in ("champion", "target", "train_key", "holdout_key")}
        return self._run(request, "train", given, lambda: self._train(request, given))

    def _train(self, request: RetrainRequest, given: Mapping[str, Any]) -> dict[str, Any]:
        if self.signer is None:
            raise RuntimeError("the train step needs a signer (kms:Sign): run it in the training function")
        champion = str(given["champion"])
        store = self.store(request)
        loaded = load_verified(self.registry, self.verifier, request.model, champion)
        card, target = loaded.card, str(given["target"])
        try:
            train = jsonl_to_frame(store.get_file(given["train_key"]), card, target)
            holdout = jsonl_to_frame(store.get_file(given["holdout_key"]), card, target)
        except TrainingDataError as e:
            raise TrainingDataUnusable(str(e)) from None
        _check_types(card, train)
        adopted = self._published_by_run(request)
        names = list(card.input_schema.names)
        if adopted is not None:  # a rerun after a crash between publish and the record: the version exists
            return {**_train_outcome(adopted, champion, len(train), len(holdout)), "adopted": True}
        started = time.perf_counter()
        candidate = clone(loaded.scorer.estimator).fit(train[names], train[target])
        fitted = time.perf_counter()
        try:
            published = publish(
                candidate, train[names], train[target].rename(target),
                name=request.model, registry=self.registry, signer=self.signer, runtime=self.runtime,
                X_holdout=holdout[names], y_holdout=holdout[target].to_numpy(),
                **card_options(card, run_id=request.run_id),
            )  # fmt: skip
        except PublishRejected as e:
            reasons = [str(err) for err in e.errors] or [e.message]
            raise PublishRefused(
                f"publish refused the retrained {request.model}: {e.message}", outcome={"reasons": reasons}
            ) from None
        outcome = _train_outcome(published, champion, len(train), len(holdout))
        return {
            **outcome,
            "fit_seconds": round(fitted - started, 3),
            "publish_seconds": round(time.perf_counter() - fitted, 3),
            "adopted": False,
        }

    def _published_by_run(self, request: RetrainRequest) -> ModelCard | None:
        """The version this run published already (its card's RUN_TAG), among the model's last few versions."""
        for version in reversed(self.registry.list_versions(request.model)[-5:]):
            card = self.registry.get_card(request.model, version)
            if (card.tags or {}).get(RUN_TAG) == request.run_id:
                self.verifier.verify(card)
                return card
        return None

    # --- 03 gate
    def gate(self, request: RetrainRequest, assembled: Mapping[str, Any], trained: Mapping[str, Any]) -> dict:
        """Gate the candidate against the champion on the holdout (updating.versions.gate_versions, the run's gate
        settings). Outcome: the GateResult (to_dict: its champion and challenger are the metric's values) with
        champion_version and candidate_version. Raises GateFailed unless the decision is `replace`."""
        given = {
            "champion": trained["champion"],
            "candidate": trained["version"],
            "holdout_key": assembled["holdout_key"],
            "settings": request.gate,
        }
        return self._run(request, "gate", given, lambda: self._gate(request, given, str(assembled["target"])))

    def _gate(self, request: RetrainRequest, given: Mapping[str, Any], target: str) -> dict[str, Any]:
        card = self.registry.get_card(request.model, str(given["champion"]))
        holdout = jsonl_to_frame(self.store(request).get_file(given["holdout_key"]), card, target)
        settings = dict(request.gate)
        if card.task == CLASSIFICATION and len(card.classes or ()) > 2 and "metric" not in settings:
            settings["metric"] = "accuracy"  # the default, ROC AUC, is binary; the outcome names the metric used
        try:
            result = gate_versions(
                self.registry, self.verifier, request.model, str(given["champion"]), str(given["candidate"]),
                holdout[list(card.input_schema.names)], holdout[target].to_numpy(),
                config=gate_config_from(settings),
            )  # fmt: skip
        except ValueError as e:  # one class in the holdout, different tasks: the gate cannot decide
            raise GateFailed(f"the gate cannot compare the versions: {e}") from None
        # GateResult's champion/challenger are the metric's values; the versions are named beside them.
        outcome = {**result.to_dict(), "champion_version": given["champion"], "candidate_version": given["candidate"]}
        if result.decision != REPLACE:
            raise GateFailed(f"gate: {result.decision}: {result.reason}", outcome=outcome)
        return outcome

    # --- 04 rollout
    def rollout(self, request: RetrainRequest, trained: Mapping[str, Any]) -> dict[str, Any]:
        """Start the run's rollout of the candidate on the alias: a canary (Registry.start_canary with the weight, key
        and bounds), a shadow (Registry.set_shadow), or nothing ("none"). Outcome: mode, version, alias, weight."""
        given = {"mode": request.rollout, "version": trained["version"], "alias": request.alias}
        return self._run(request, "rollout", given, lambda: self._rollout(request, str(trained["version"])))

    def _rollout(self, request: RetrainRequest, version: str) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": request.rollout, "version": version, "alias": request.alias}
        if request.rollout == CANARY:
            record = self.registry.start_canary(
                request.model, request.alias, version, request.canary_weight,
                key=request.canary_key, bounds=dict(request.bounds) or None,
            )  # fmt: skip
            out.update(weight=request.canary_weight, key=request.canary_key, stable=record.version)
        elif request.rollout == SHADOW:
            record = self.registry.set_shadow(request.model, request.alias, version)
            out.update(stable=record.version)
        return out

    # --- 05 watch
    def watch(self, request: RetrainRequest, answer: Any, previous: Mapping[str, Any] | None) -> dict[str, Any]:
        """One round of watching the rollout: `answer` is the rollout check's answer for the alias (read_check);
        `previous` this step's last result (None on the first round). Returns {"status": "collecting" | "healthy",
        "round", "reasons"}. Raises CanaryRolledBack (the check rolled the canary back, or it is gone: the reasons),
        ShadowRejected (the shadow is not shown non-inferior), RolloutCheckFailed (an answer that is no check's),
        RolloutTimedOut after max_rounds rounds still collecting."""
        store = self.store(request)
        recorded = store.record("watch")
        if recorded is not None and recorded.get("status") == SUCCEEDED:
            return dict(recorded["outcome"])
        number = int((previous or {}).get("round", 0)) + 1
        status, reasons = read_check(answer, request.rollout)
        outcome = {"status": status, "round": number, "max_rounds": request.max_rounds, "reasons": reasons}
        record = {
            "format": STEP_FORMAT,
            "model": request.model,
            "run_id": request.run_id,
            "step": "watch",
            "attempt": number,
            "status": RUNNING,
            "input": {"round": number, "answer": answer},
            # The step spans its rounds: its first round's start (a rerun's first round starts it anew).
            "started_at": (previous is not None and (recorded or {}).get("started_at")) or _now(self.clock),
            "finished_at": None,
            "seconds": None,
            "outcome": outcome,
            "error": None,
        }
        why = "; ".join(reasons) or "no reason given"
        failure: StepFailed | None = None
        if status == HEALTHY:
            record.update(status=SUCCEEDED, finished_at=_now(self.clock))
            record["seconds"] = seconds_between(record["started_at"], record["finished_at"])
        elif status == ROLLED_BACK:
            failure = CanaryRolledBack(f"the canary was rolled back: {why}", outcome=outcome)
        elif status == REJECTED:
            failure = ShadowRejected(
                f"the shadow is not shown non-inferior to the stable version: {why}", outcome=outcome
            )
        elif status != COLLECTING:
            failure = RolloutCheckFailed(f"the rollout check's answer cannot be read: {why}", outcome=outcome)
        elif number >= request.max_rounds:
            failure = RolloutTimedOut(
                f"the rollout was still collecting after {number} check(s) (max_rounds {request.max_rounds}): {why}",
                outcome=outcome,
            )
        if failure is not None:
            record.update(
                status=FAILED,
                finished_at=_now(self.clock),
                error={"error": type(failure).__name__, "message": failure.message},
            )
            record["seconds"] = seconds_between(record["started_at"], record["finished_at"])
        store.write_record("watch", record)
        if failure is not None:
            raise failure
        return {"status": status, "round": number, "reasons": reasons}

    # --- 06 approval
    def recall_approval(self, request: RetrainRequest) -> dict[str, Any]:
        """An approval recorded by an earlier execution of this run: {"approved": bool}, approved only when the
        approval step's record succeeded (a rerun does not ask again)."""
        recorded = self.store(request).record("approval")
        return {"approved": bool(recorded and recorded.get("status") == SUCCEEDED)}

    def request_approval(
        self, request: RetrainRequest, steps: Mapping[str, Any], task_token: str, *, command: str = "sklambda approve"
    ) -> dict[str, Any]:
        """Store the task token the execution waits on (`approval.json`), record the approval step as running and send
        the approval message naming the run, the gate's result and the command to approve or reject. Returns what was
        sent: {"approval_key", "subject"}."""
        store = self.store(request)
        key = store.put_json(
            store.prefix + "approval.json",
            {
                "model": request.model,
                "run_id": request.run_id,
                "task_token": task_token,
                "requested_at": _now(self.clock),
            },
        )
        gate = steps.get("gate") or {}
        version = (steps.get("train") or {}).get("version")
        rollout = steps.get("watch") or steps.get("rollout") or {}
        record = {
            "format": STEP_FORMAT,
            "model": request.model,
            "run_id": request.run_id,
            "step": "approval",
            "attempt": int((store.record("approval") or {}).get("attempt", 0)) + 1,
            "status": RUNNING,
            "input": {"candidate": version, "gate": gate.get("decision"), "approval_key": key},
            "started_at": _now(self.clock),
            "finished_at": None,
            "seconds": None,
            "outcome": None,
            "error": None,
        }
        store.write_record("approval", record)
        subject = f"sklambda: approve {request.model} version {version}? (retraining run {request.run_id})"[:100]
        message = "\n".join(
            [
                f"Retraining run {request.run_id} of model {request.model} waits for an approval.",
                f"Candidate: version {version}; champion: version {gate.get('champion_version')} ({request.alias}).",
                f"Gate: {gate.get('decision')}: {gate.get('reason')}",
                f"Rollout: {request.rollout}" + (f", last check: {rollout.get('status')}" if rollout else ""),
                "",
                f"Approve:  {command} {request.model} {request.run_id}",
                f"Reject:   {command} {request.model} {request.run_id} --reject --reason TEXT",
                f"Records:  s3://{self.data_bucket}/{store.prefix}",
            ]
        )
        self.notify(subject, message)
        return {"approval_key": key, "subject": subject}

    # --- 07 promote
    def promote(self, request: RetrainRequest, trained: Mapping[str, Any], rollout: Mapping[str, Any]) -> dict:
        """Move the alias to the candidate: finish the canary, or (shadow, none) clear the shadow and set the alias;
        then put a ModelPromoted event. Outcome: version, previous, alias, event_id."""
        given = {"version": trained["version"], "alias": request.alias, "mode": request.rollout}
        return self._run(request, "promote", given, lambda: self._promote(request, str(trained["version"])))

    def _promote(self, request: RetrainRequest, version: str) -> dict[str, Any]:
        current = self.registry.get_alias(request.model, request.alias)
        previous = current.version
        if current.canary is not None and current.canary.version == version:
            record = self.registry.finish_canary(request.model, request.alias)
        else:
            if current.shadow is not None and current.shadow.version == version:
                self.registry.clear_shadow(request.model, request.alias)
            record = self.registry.set_alias(request.model, request.alias, version)
        detail = {
            "model": request.model,
            "alias": request.alias,
            "version": record.version,
            "previous": previous,
            "run_id": request.run_id,
            "rollout": request.rollout,
        }
        return {**detail, "event_id": self.put_event(PROMOTED_EVENT, detail)}

    # --- report
    def report(self, state: Mapping[str, Any], execution_name: str) -> dict[str, Any]:
        """End the run: on a failure, undo the rollout it started (roll the canary back, clear the shadow); write
        `report.json`; put RetrainingSucceeded or RetrainingFailed (detail: model, run_id, status, failed_step,
        reason, report_key, version, champion), and write the report again with the event's `event_id`. `state` is
        the state machine's data: run (the request), steps (the outcomes so far) and error ({"Error", "Cause"}, set
        by a Catch). Returns {"status", "report_key",
        "failed_step", "reason", "event_id"}."""
        error = state.get("error")
        raw = state.get("run") or {k: v for k, v in state.items() if k != "error"}  # Prepare failed: the input
        try:
            request = parse_request(raw, execution_name)
        except InvalidRetrainRequest as e:
            return self._invalid_report(raw, execution_name, error, e)
        store = self.store(request)
        records = store.records()
        steps = dict(state.get("steps") or {})
        failed = error is not None
        failed_step, reason = None, None
        if failed:
            failed_step = next((s for s, r in records.items() if r.get("status") in (FAILED, RUNNING)), None)
            failed_step = failed_step or ("prepare" if not records else next(s for s in STEPS if s not in records))
            reason = _reason(error, records.get(failed_step))
        undone = self._undo_rollout(request, store, records) if failed else None
        version = (records.get("train", {}).get("outcome") or {}).get("version") or (steps.get("train") or {}).get(
            "version"
        )
        champion = (records.get("assemble", {}).get("outcome") or {}).get("champion")
        key = store.prefix + "report.json"
        document = {
            "format": REPORT_FORMAT,
            "model": request.model,
            "run_id": request.run_id,
            "execution": execution_name,
            "status": FAILED if failed else SUCCEEDED,
            "failed_step": failed_step,
            "reason": reason,
            "error": error,
            "request": request.model_dump(),
            "champion": champion,
            "candidate": version,
            "gate": _gate_summary(records.get("gate")),
            "rollout": {"mode": request.rollout, "undone": undone},
            "promoted": (records.get("promote") or {}).get("outcome"),
            "steps": [_step_summary(s, r) for s, r in records.items()],
            # What a step left out or saw and did not refuse (refused rows, unseen categories, holdout copies...).
            "notes": [f"{s}: {n}" for s, r in records.items() for n in ((r.get("outcome") or {}).get("notes") or [])],
            "seconds": round(sum(float(r.get("seconds") or 0) for r in records.values()), 3),
            "reported_at": _now(self.clock),
        }
        store.put_json(key, document)
        detail = {
            "model": request.model,
            "run_id": request.run_id,
            "status": document["status"],
            "failed_step": failed_step,
            "reason": reason,
            "report_key": key,
            "version": version,
            "champion": champion,
        }
        event_id = self.put_event(FAILED_EVENT if failed else SUCCEEDED_EVENT, detail)
        if event_id is not None:  # written again with the event's id: the report comes first, nothing is lost
            store.put_json(key, {**document, "event_id": event_id})
        return {"status": document["status"], "report_key": key, "failed_step": failed_step, "reason": reason,
                "event_id": event_id}  # fmt: skip

    def _invalid_report(self, raw: Any, execution_name: str, error: Any, e: InvalidRetrainRequest) -> dict[str, Any]:
        """The report of a run whose input is not a request: under the model's folder when the model name is usable,
        else under `retraining/_invalid/`."""
        model = raw.get("model") if isinstance(raw, Mapping) else None
        folder = model if isinstance(model, str) and RUN_ID_RE.match(model) else "_invalid"
        run_id = execution_name if RUN_ID_RE.match(execution_name) else "unnamed"
        store = RunStore(self.s3, self.data_bucket, folder, run_id)
        key = store.prefix + "report.json"
        reason = e.message
        store.put_json(
            key,
            {
                "format": REPORT_FORMAT,
                "model": model,
                "run_id": run_id,
                "execution": execution_name,
                "status": FAILED,
                "failed_step": "prepare",
                "reason": reason,
                "error": error,
                "steps": [],
                "reported_at": _now(self.clock),
            },
        )
        detail = {"model": model, "run_id": run_id, "status": FAILED, "failed_step": "prepare", "reason": reason,
                  "report_key": key, "version": None, "champion": None}  # fmt: skip
        event_id = self.put_event(FAILED_EVENT, detail)
        return {"status": FAILED, "report_key": key, "failed_step": "prepare", "reason": reason, "event_id": event_id}

    def _undo_rollout(self, request: RetrainRequest, store: RunStore, records: Mapping[str, dict]) -> str | None:
        """Roll back the canary or clear the shadow this run started, if still there; mark the rollout and watch
        records undone (so a rerun starts and watches a new rollout). Returns what was done: "canary_rolled_back",
        "shadow_cleared", "already_ended" or None when the run started no rollout."""
        started = records.get("rollout")
        if started is None or started.get("status") != SUCCEEDED:
            return None
        outcome = started.get("outcome") or {}
        version, mode = str(outcome.get("version")), outcome.get("mode")
        if mode == NO_ROLLOUT:
            return None
        done = "already_ended"
        try:
            alias = self.registry.get_alias(request.model, request.alias)
        except ModelNotFound:
            alias = None
        if alias is not None and mode == CANARY and alias.canary is not None and alias.canary.version == version:
            self.registry.rollback(request.model, request.alias)
            done = "canary_rolled_back"
        elif alias is not None and mode == SHADOW and alias.shadow is not None and alias.shadow.version == version:
            self.registry.clear_shadow(request.model, request.alias)
            done = "shadow_cleared"
        # A rerun starts the rollout again and watches the new one: neither record may be reused.
        for step in ("rollout", "watch"):
            if (record := records.get(step)) is not None:
                store.write_record(step, {**record, "status": UNDONE, "undone": done, "undone_at": _now(self.clock)})
        return done


def read_check(answer: Any, mode: str) -> tuple[str, list[str]]:
    """(status, reasons) of the rollout check's answer for the run's alias (the RolloutCheckFunction's on-demand
    answer, updating.rollout_check: {"status": collecting | healthy | rolled_back | no_canary | failed |
    invalid_request, "verdict": {"reasons": [{"text", ...}]}, "shadow": {"status": "compared", "summary", "quality":
    {"available", "decision", "reason"}} | {"status": "failed", "error"} | null, "error"}).

    A canary run: the verdict's status and reasons; no canary any more is ROLLED_BACK (rolled back or finished
    outside the run). A shadow run: HEALTHY when the shadow's paired gate on labeled rows decides `replace`, REJECTED
    when `reject`, COLLECTING otherwise (too few labeled rows, not shown better yet, no comparison this round); no
    shadow any more is ROLLED_BACK. Either: a `failed` check (an S3 error, a window it could not read) is COLLECTING
    with its message, so the next round tries again; an invalid request or an unknown status is UNREADABLE.
    """
    if not isinstance(answer, Mapping):
        return UNREADABLE, [f"the answer is a {type(answer).__name__}, not an object"]
    status = answer.get("status")
    error = answer.get("error") if isinstance(answer.get("error"), Mapping) else {}
    if status == "failed":
        return COLLECTING, [f"the check failed this round: {error.get('code')}: {error.get('message')}"]
    if status == "invalid_request":
        return UNREADABLE, [f"the check refused the request: {json.dumps(error)[:500]}"]
    if mode == SHADOW:
        shadow = answer.get("shadow")
        if not isinstance(shadow, Mapping):
            return ROLLED_BACK, ["the alias has no shadow any more"]
        if shadow.get("status") != "compared":
            failed = shadow.get("error") if isinstance(shadow.get("error"), Mapping) else {}
            return COLLECTING, [f"the shadow was not compared this round: {failed.get('message')}"]
        quality = shadow.get("quality") if isinstance(shadow.get("quality"), Mapping) else {}
        summary = [str(shadow.get("summary") or "")]
        if not quality.get("available"):  # too few labeled rows, or nothing replayed (the summary says)
            return COLLECTING, [f"quality not compared yet: {quality.get('reason') or shadow.get('summary')}"]
        decision = quality.get("decision")
        return (HEALTHY if decision == REPLACE else REJECTED if decision == "reject" else COLLECTING), summary
    if status == "no_canary":
        return ROLLED_BACK, ["the alias has no canary any more (rolled back or finished outside this run)"]
    if status not in (COLLECTING, HEALTHY, ROLLED_BACK):
        return UNREADABLE, [f"unknown status {status!r}"]
    verdict = answer.get("verdict") if isinstance(answer.get("verdict"), Mapping) else {}
    found = verdict.get("reasons") or answer.get("reasons") or []
    return status, [str(r.get("text") or json.dumps(r)) if isinstance(r, Mapping) else str(r) for r in found]


def card_options(card: ModelCard, *, run_id: str) -> dict[str, Any]:
    """publish's card options that carry over from the champion's card to its retrained version: pii, nullable and
    categorical features (the schema), the decision (costs choose a new threshold on the new holdout; a threshold
    given by hand is kept), segments and sensitive features with their fairness bounds, documentation, description
    and tags (plus RUN_TAG and PARENT_TAG naming the run and the champion)."""
    schema = card.input_schema.features
    options: dict[str, Any] = {
        "pii": [f.name for f in schema if f.pii],
        "nullable": [f.name for f in schema if f.nullable],
        "description": card.description,
        "tags": {**dict(card.tags or {}), RUN_TAG: run_id, PARENT_TAG: card.version},
    }
    decision = card.decision or {}
    if decision:
        options["positive_class"] = decision.get("positive_class")
        if decision.get("source") == "costs" and decision.get("costs"):
            costs = decision["costs"]
            options["costs"] = (float(costs["false_positive"]), float(costs["false_negative"]))
        elif decision.get("source") == "user":
            options["threshold"] = float(decision["threshold"])
    segments = card.segments or {}
    if segments.get("features"):
        options["segments"] = [str(f["name"]) for f in segments["features"]]
        options["sensitive"] = [str(f["name"]) for f in segments["features"] if f.get("sensitive")]
        if segments.get("bounds"):
            options["fairness_bounds"] = dict(segments["bounds"])
    documentation = card.documentation or {}
    for key in ("owner", "intended_use"):
        if documentation.get(key):
            options[key] = documentation[key]
    if documentation.get("limitations"):
        options["limitations"] = list(documentation["limitations"])
    return options


def _check_types(card: ModelCard, train: Any) -> None:
    """Refuse training rows from which publish would infer another type than the champion's for a feature (a retrained
    version served with another type would refuse, or accept, rows the champion does not during a canary): raises
    TrainingDataUnusable naming each feature and both types."""
    try:
        inferred = infer_schema(train[list(card.input_schema.names)])
    except PublishRejected as e:
        raise TrainingDataUnusable(f"the training rows have no schema publish can infer: {e.message}") from None
    changed = [
        f"{f.name}: {g.type} (the champion's: {f.type})"
        for f, g in zip(card.input_schema.features, inferred.features, strict=True)
        if f.type != g.type
    ]
    if changed:
        raise TrainingDataUnusable(
            f"the training rows would give the retrained version other feature types than the champion's: "
            f"{'; '.join(changed)}"
        )


def _train_outcome(card: ModelCard, champion: str, train_rows: int, holdout_rows: int) -> dict[str, Any]:
    metrics = {k: v for k, v in (card.metrics or {}).items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return {
        "version": card.version,
        "champion": champion,
        "training_rows": train_rows,
        "holdout_rows": holdout_rows,
        "metrics": metrics,
        "warnings": len((card.quality or {}).get("warnings") or []),
    }


def _reason(error: Any, record: Mapping[str, Any] | None) -> str:
    """One line: the failed step's recorded message, else the error's cause (a Lambda error's errorMessage)."""
    if record and record.get("error"):
        return str(record["error"].get("message"))
    if isinstance(error, Mapping):
        cause = error.get("Cause") or ""
        try:
            decoded = json.loads(cause)
            cause = decoded.get("errorMessage", cause) if isinstance(decoded, dict) else cause
        except (TypeError, ValueError):
            pass
        return f"{error.get('Error')}: {cause}" if cause else str(error.get("Error"))
    return "the run failed"


def _gate_summary(record: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not record or not record.get("outcome"):
        return None
    out = record["outcome"]
    keys = ("champion_version", "candidate_version", "metric", "champion", "challenger", "rows", "gain", "gain_lower",
            "decision", "reason")  # fmt: skip
    return {k: out.get(k) for k in keys}


def _step_summary(step: str, record: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "step": step,
        "status": record.get("status"),
        "attempt": record.get("attempt"),
        "started_at": record.get("started_at"),
        "finished_at": record.get("finished_at"),
        "seconds": record.get("seconds"),
        "error": record.get("error"),
    }


def decide_approval(
    store: RunStore,
    sfn: Any,
    *,
    approved: bool,
    reason: str = "",
    by: str = "",
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> dict[str, Any]:
    """Approve or reject the candidate a run waits on: SendTaskSuccess with {"approved": true, "reason", "by",
    "decided_at"} as the approval step's result, or SendTaskFailure with the error ApprovalRejected and `reason` as
    its cause; then record the decision in the approval step's record (succeeded or failed), so a rerun of an approved
    run does not ask again. `sfn` is a boto3 Step Functions client.

    Raises ModelNotFound when the run is unknown (no step record at all) or waits for no approval (no task token
    stored); RegistryConflict when it was decided already. Step Functions errors (a token that timed out:
    TaskTimedOut) propagate as botocore's ClientError, and nothing is recorded then.
    """
    waiting = store.get_json(store.prefix + "approval.json")
    record = store.record("approval")
    if (waiting is None or record is None) and not store.records():
        raise ModelNotFound(
            f"model {store.model} has no retraining run {store.run_id} (no records under "
            f"s3://{store.bucket}/{store.prefix}): check the run id (the one `sklambda retrain` printed)"
        )
    if waiting is None or record is None:
        raise ModelNotFound(f"run {store.run_id} of model {store.model} waits for no approval (no task token stored)")
    if record.get("status") != RUNNING:
        raise RegistryConflict(
            f"the approval of run {store.run_id} of {store.model} was decided already: {record['status']}"
        )
    decision = {"approved": approved, "reason": reason, "by": by, "decided_at": _now(clock)}
    if approved:
        sfn.send_task_success(taskToken=waiting["task_token"], output=json.dumps(decision))
    else:
        sfn.send_task_failure(
            taskToken=waiting["task_token"], error=ApprovalRejected.__name__, cause=(reason or "rejected")[:32768]
        )
    record.update(
        status=SUCCEEDED if approved else FAILED,
        outcome=decision,
        finished_at=decision["decided_at"],
        seconds=seconds_between(record.get("started_at"), decision["decided_at"]),
    )
    if not approved:
        record["error"] = {
            "error": ApprovalRejected.__name__,
            "message": f"rejected by {by or 'an operator'}: {reason}",
        }
    store.write_record("approval", record)
    return decision
