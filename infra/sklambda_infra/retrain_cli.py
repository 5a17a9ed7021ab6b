"""`sklambda retrain` and `sklambda approve`: start (or resume) a run of the retraining pipeline, and decide the
approval a run waits on. Registered by sklambda_infra.cli.

Where: the registry and data bucket as every command resolves them (options, environment, a running local stack),
and the state machine from --state-machine, else SKLAMBDA_RETRAIN_STATE_MACHINE_ARN (the stack's
RetrainStateMachineArn output), else the running local stack's RetrainStateMachine.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
import time
from datetime import UTC, datetime
from typing import Any

from sklambda import config
from sklambda.connection import ENV_DATA_BUCKET, Target, resolve
from sklambda.errors import ConfigurationError, SklambdaError

TERMINAL = ("SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")


def _target(args: argparse.Namespace) -> Target:
    try:
        target = resolve(
            model_bucket=args.bucket, endpoint_url=args.endpoint_url, need_signing_key=False, arguments="--bucket"
        )
    except ConfigurationError as e:
        raise SklambdaError(e.message) from None
    if target.local_file is not None:
        print(f"using the local stack from {target.local_file}", file=sys.stderr)
    if not target.data_bucket:
        raise SklambdaError(f"no data bucket: set {ENV_DATA_BUCKET} (the DataBucketName output)")
    target.use()
    return target


def _state_machine(args: argparse.Namespace, target: Target) -> str:
    arn = args.state_machine or os.environ.get(config.RETRAIN_STATE_MACHINE_ARN, "").strip()
    if not arn:  # the target's: `sklambda local env` exports it, a running local stack's details name it
        arn = target.retrain_state_machine_arn or ""
    if not arn:
        raise SklambdaError(
            f"no retraining state machine: pass --state-machine or set {config.RETRAIN_STATE_MACHINE_ARN} (the "
            'stack\'s RetrainStateMachineArn output; for the local stack, `eval "$(sklambda local env)"` exports it)'
        )
    return arn


def new_run_id(model: str, now: datetime | None = None) -> str:
    """A run id for a run started by hand: `<model>-<UTC yyyymmddThhmmss>-<4 hex>` (an execution name)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
    return f"{model[:50]}-{stamp}-{secrets.token_hex(2)}"


def _request(args: argparse.Namespace, previous: dict[str, Any] | None) -> dict[str, Any]:
    """The execution input: the options given, or (--resume) the resumed run's request as its report recorded it, with
    --max-refused over it (a run whose assemble step refused too many rows is resumed allowing more)."""
    refused = {} if args.max_refused is None else {"max_refused_share": args.max_refused / 100}
    if previous is not None:
        return {**previous, "run_id": args.resume, **refused}
    rollout = "shadow" if args.shadow else "none" if args.no_rollout else "canary"
    request: dict[str, Any] = {
        "model": args.model,
        "alias": args.alias,
        "run_id": args.run_id or new_run_id(args.model),
        "rollout": rollout,
        "approval": args.approval,
        "trigger": {"source": "manual"},
    }
    if args.canary is not None:
        request["canary_weight"] = args.canary
    if args.check_interval is not None:
        request["check_interval_seconds"] = args.check_interval
    return {**request, **refused}


def _retrain(args: argparse.Namespace) -> int:
    from sklambda import aws
    from sklambda.updating.retraining import RunStore

    target = _target(args)
    arn = _state_machine(args, target)
    s3, sfn = aws.client("s3"), aws.client("stepfunctions")
    previous = None
    if args.resume:
        report = RunStore(s3, target.data_bucket, args.model, args.resume).get_json(
            f"{config.RETRAINING_PREFIX}{args.model}/{args.resume}/report.json"
        )
        previous = (report or {}).get("request")
        if previous is None:
            raise SklambdaError(f"run {args.resume} of {args.model} has no report: nothing to resume (is it running?)")
    request = _request(args, previous)
    run_id = request["run_id"]
    # Execution names are unique per state machine: a resumed run keeps its run id in the input, not as the name.
    name = run_id if not args.resume else f"{run_id[:60]}-resume-{datetime.now(UTC).strftime('%H%M%S')}"
    started = sfn.start_execution(stateMachineArn=arn, name=name, input=json.dumps(request))
    print(f"{args.model}: retraining run {run_id} started ({started['executionArn']})")
    if not args.wait:
        return 0
    store = RunStore(s3, target.data_bucket, args.model, run_id)
    progress = Progress(store)
    deadline = time.monotonic() + args.timeout
    while True:
        status = sfn.describe_execution(executionArn=started["executionArn"])["status"]
        for line in progress.news():
            print(line, file=sys.stderr)  # stderr: stdout stays the report (--json)
        if status in TERMINAL:
            break
        if time.monotonic() > deadline:
            raise SklambdaError(f"run {run_id} still {status} after {args.timeout:g} s (see its records)")
        time.sleep(1.0)
    key = f"{config.RETRAINING_PREFIX}{args.model}/{run_id}/report.json"
    report = store.get_json(key)
    if report is None:
        print(f"{args.model}: run {run_id} ended {status} without a report", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2) if args.json else summary(report, f"s3://{target.data_bucket}/{key}"))
    return 0 if report.get("status") == "succeeded" else 1


class Progress:
    """What a waiting `retrain --wait` says while the run goes on, read from the run's step records (RunStore): one
    line when the run starts waiting for its approval (with the command that decides it), one per new round of the
    rollout watch (its status, round/max_rounds and reasons). Two S3 reads per poll."""

    def __init__(self, store: Any) -> None:
        self.store, self.round, self.asked = store, 0, False

    def news(self) -> list[str]:
        """The lines not said yet."""
        lines = []
        watch = self.store.record("watch") or {}
        outcome = watch.get("outcome") or {}
        number = int(outcome.get("round") or 0)
        if watch.get("status") != "undone" and number > self.round:
            self.round = number
            reasons = "; ".join(outcome.get("reasons") or [])
            lines.append(
                f"  rollout check {number}/{outcome.get('max_rounds')}: {outcome.get('status')}"
                + (f" ({reasons})" if reasons else "")
            )
        if not self.asked and (self.store.record("approval") or {}).get("status") == "running":
            self.asked = True
            model, run = self.store.model, self.store.run_id
            lines.append(
                f"  waiting for an approval: sklambda approve {model} {run}   "
                f"(or: sklambda approve {model} {run} --reject --reason TEXT)"
            )
        return lines


def summary(report: dict[str, Any], location: str) -> str:
    """A run's report in a few lines: status, the failure's step and reason, each step's status and seconds, the gate
    (its reason only when the failure did not already say it), the promotion, where the report is and the event's
    id. `location` is where the report was read (s3://bucket/key)."""
    lines = [f"{report['model']}: run {report['run_id']} {report['status']}"]
    reason = report.get("reason") or ""
    if report.get("failed_step"):
        step = report["failed_step"]
        lines.append(f"  failed at {step}: {reason.removeprefix(f'{step}: ')}")
    for step in report.get("steps") or []:
        lines.append(f"  {step['step']:<9} {step['status']:<10} {step.get('seconds') or 0:8.2f} s")
    lines += [f"  note: {note}" for note in report.get("notes") or []]
    gate = report.get("gate") or {}
    if gate:
        figures = ""
        if isinstance(gate.get("gain"), int | float) and isinstance(gate.get("gain_lower"), int | float):
            figures = f" ({gate.get('metric')} gain {gate['gain']:+.4f}, lower bound {gate['gain_lower']:+.4f})"
        said = bool(gate.get("reason")) and str(gate["reason"]) in reason
        lines.append(f"  gate: {gate.get('decision')}{figures}" + ("" if said else f": {gate.get('reason')}"))
    if report.get("promoted"):
        lines.append(f"  promoted: {report['promoted'].get('alias')} -> {report['promoted'].get('version')}")
    lines.append(f"  report: {location}")
    if report.get("event_id"):
        event = "RetrainingFailed" if report["status"] == "failed" else "RetrainingSucceeded"
        lines.append(f"  event: {event} {report['event_id']}")
    return "\n".join(lines)


def _approve(args: argparse.Namespace) -> int:
    from sklambda import aws
    from sklambda.updating.retraining import RunStore, decide_approval

    target = _target(args)
    store = RunStore(aws.client("s3"), target.data_bucket, args.model, args.run)
    by = os.environ.get("USER") or os.environ.get("USERNAME") or ""
    decision = decide_approval(
        store, aws.client("stepfunctions"), approved=not args.reject, reason=args.reason or "", by=by
    )
    verb = "approved" if decision["approved"] else "rejected"
    print(f"{args.model}: run {args.run} {verb}" + (f" ({args.reason})" if args.reason else ""))
    return 0


def register(sub: Any) -> None:
    """Add `retrain` and `approve` to the `sklambda` command's subparsers."""
    p = sub.add_parser(
        "retrain", help="retrain a model: refit its champion, publish, gate, roll out and promote (RetrainStateMachine)"
    )
    p.add_argument("model", help="model name")
    p.add_argument(
        "--alias", default="production", help="the alias whose version is the champion (default: production)"
    )
    rollout = p.add_mutually_exclusive_group()
    rollout.add_argument("--canary", type=float, metavar="PCT", help="canary weight in percent (default rollout: 10)")
    rollout.add_argument("--shadow", action="store_true", help="shadow the candidate instead of a canary")
    rollout.add_argument("--no-rollout", action="store_true", help="promote after the gate, without a rollout")
    p.add_argument("--approval", action="store_true", help="wait for `sklambda approve` before promoting")
    p.add_argument("--check-interval", type=int, metavar="SECONDS", help="between rollout checks (default: 3600)")
    p.add_argument(
        "--max-refused",
        type=float,
        metavar="PCT",
        help="percent of the training-data rows that may be left out for values the champion's schema refuses "
        "before the run fails (default: 1)",
    )
    p.add_argument("--run-id", help="the new run's id (default: <model>-<UTC time>-<4 hex>)")
    p.add_argument("--resume", metavar="RUN", help="rerun RUN with its request: its succeeded steps are not redone")
    p.add_argument("--state-machine", help=f"the state machine ARN (default: ${config.RETRAIN_STATE_MACHINE_ARN})")
    p.add_argument("--wait", action="store_true", help="wait for the run to end and print its report (exit 1: failed)")
    p.add_argument("--timeout", type=float, default=3600.0, metavar="SECONDS", help="with --wait (default: 3600)")
    p.add_argument("--json", action="store_true", help="with --wait: print the whole report as JSON")
    p.set_defaults(func=_retrain)

    p = sub.add_parser("approve", help="approve (or --reject) the candidate a retraining run waits on")
    p.add_argument("model", help="model name")
    p.add_argument("run", help="the run id")
    p.add_argument("--reject", action="store_true", help="reject it: the run ends, its canary rolled back")
    p.add_argument("--reason", help="why (recorded in the run's report)")
    p.set_defaults(func=_approve)
