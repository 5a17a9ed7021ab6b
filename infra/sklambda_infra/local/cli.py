"""`sklambda local up|down|status|invoke`.

The main CLI calls `register(sub)` with its `add_subparsers(dest="command")` result; each subcommand sets
`func`, called as `args.func(args)` and returning the exit code.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from sklambda.connection import Target, process_running
from sklambda_infra.local.functions import (
    LOCAL_RUNTIME,
    FunctionRunner,
    FunctionSpec,
    InvocationError,
    worker_environment,
)
from sklambda_infra.local.provision import ProvisionError
from sklambda_infra.local.stack import (
    DEFAULT_API_PORT,
    DEFAULT_AWS_PORT,
    DETAILS_DIR,
    LocalStack,
    LocalStackError,
    details_path,
    read_details,
    summary,
    wait_until_stopped,
)
from sklambda_infra.template import DEFAULT_REGION, DEFAULT_STACK_NAME, Pseudo, TemplateError

EXIT_NOT_RUNNING = 3  # as `systemctl status` / LSB init scripts say "not running"
# `local up` publishes the sample model (sklambda_infra.penguins, imported only then: it loads pandas and
# scikit-learn) and points this alias at it, so the stack answers predictions as soon as it is up.
SAMPLE_ALIAS = "production"
TEMPLATE = "template.yaml"
# `sklambda local invoke <name>`: the template function and the event file (in the project) it is invoked with.
# Function -> (logical id, the on-demand event for one --model, the scheduled event that checks every model).
INVOCABLE = {
    "drift-check": (
        "DriftCheckFunction",
        Path("events") / "drift_check_on_demand.json",
        Path("events") / "drift_check_scheduled.json",
    ),
    "quality-check": (
        "QualityCheckFunction",
        Path("events") / "quality_check_on_demand.json",
        Path("events") / "quality_check_scheduled.json",
    ),
    "rollout-check": (
        "RolloutCheckFunction",
        Path("events") / "rollout_check_on_demand.json",
        Path("events") / "rollout_check_scheduled.json",
    ),
}
# Answers of a function run on demand that mean it could not do its work (anything else is a result: a rollout
# check's on-demand answer is a verdict such as collecting or rolled_back).
FAILED_ANSWERS = ("failed", "invalid_request")


# Ports for `make local` when the defaults are taken (a second checkout, a test running the README as printed).
ENV_AWS_PORT = "SKLAMBDA_LOCAL_AWS_PORT"
ENV_API_PORT = "SKLAMBDA_LOCAL_API_PORT"


def _port(text: str) -> int:
    """argparse type of a port option: 0-65535 (0 picks a free port)."""
    if not text.strip().isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0-65535; 0 picks a free port)")
    return int(text)


def register(subparsers: Any) -> argparse.ArgumentParser:
    local = subparsers.add_parser("local", help="run the stack on this machine (moto + local API Gateway)")
    local.set_defaults(func=lambda args: _usage(local))
    commands = local.add_subparsers(dest="local_command")

    up = commands.add_parser("up", help="start the local stack in the foreground (Ctrl-C stops it)")
    _root_option(up)
    up.add_argument("--template", default=TEMPLATE, help="template file inside the project root (default: %(default)s)")
    up.add_argument(
        "--aws-port",
        type=_port,  # argparse converts a string default with it too: a bad variable is a usage error
        default=os.environ.get(ENV_AWS_PORT, str(DEFAULT_AWS_PORT)),
        help=f"moto's port (0: any free port; default ${ENV_AWS_PORT}, else {DEFAULT_AWS_PORT})",
    )
    up.add_argument(
        "--api-port",
        type=_port,
        default=os.environ.get(ENV_API_PORT, str(DEFAULT_API_PORT)),
        help=f"the API's port (0: any free port; default ${ENV_API_PORT}, else {DEFAULT_API_PORT})",
    )
    up.add_argument("--region", default=DEFAULT_REGION, help=f"AWS::Region of the stack (default: {DEFAULT_REGION})")
    up.add_argument(
        "--stack-name",
        default=DEFAULT_STACK_NAME,
        help=f"AWS::StackName, in resource names (default: {DEFAULT_STACK_NAME})",
    )
    up.add_argument(
        "--parameter-overrides",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="template parameter values, as for `sam deploy`",
    )
    up.add_argument("--log-file", help=f"also write the log here (default: {DETAILS_DIR}/local.log)")
    up.add_argument(
        "--no-sample",
        dest="sample",
        action="store_false",
        help=f"do not publish the sample model (Palmer penguins, sklambda_infra.penguins) to {SAMPLE_ALIAS} once up "
        "(default: publish it)",
    )
    up.set_defaults(func=cmd_up)

    down = commands.add_parser("down", help="stop the local stack started by `local up`")
    _root_option(down)
    down.add_argument(
        "--timeout", type=float, default=20.0, help="seconds to wait for it to stop (default: %(default)s)"
    )
    down.set_defaults(func=cmd_down)

    status = commands.add_parser("status", help="is the local stack running, and where")
    _root_option(status)
    status.add_argument("--json", action="store_true", help="print the details file")
    status.set_defaults(func=cmd_status)

    env = commands.add_parser(
        "env", help='shell exports to reach the running local stack: eval "$(sklambda local env)"'
    )
    _root_option(env)
    env.set_defaults(func=cmd_env)

    invoke = commands.add_parser("invoke", help="invoke a function of the running local stack with its event")
    _root_option(invoke)
    invoke.add_argument("function", choices=sorted(INVOCABLE), help="the function to run once")
    invoke.add_argument(
        "--model", help="model to check (default: every model with the default alias, as the schedule does)"
    )
    invoke.add_argument("--window-hours", type=float, help="window length, with --model (default: the function's)")
    invoke.add_argument("--end", help="ISO time the window ends, with --model (default: now)")
    invoke.add_argument(
        "--alias", help="alias to check, with --model (default: the event file's, else the function's default alias)"
    )
    invoke.add_argument("--event", type=Path, help="another event file, used as given (default: the events/ file)")
    invoke.set_defaults(func=cmd_invoke)
    return local


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _root_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--project-root",
        type=Path,
        default=None,
        help=f"folder holding {TEMPLATE} (default: the nearest one at or above the current folder)",
    )


def project_root(given: Path | None) -> Path:
    if given is not None:
        return given.resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / TEMPLATE).is_file():
            return folder
    return here


def _parameters(pairs: list[str]) -> dict[str, str]:
    parameters = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--parameter-overrides takes KEY=VALUE, got {pair!r}")
        parameters[key.removeprefix("ParameterKey=")] = value
    return parameters


def _alive(pid: int) -> bool:
    return pid > 0 and process_running(pid)


def _logger(log_file: Path) -> tuple[Callable[[str], None], TextIO]:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    stream = log_file.open("a", encoding="utf-8", buffering=1)
    lock = threading.Lock()

    def log(line: str) -> None:
        with lock:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
            stream.write(line + "\n")

    return log, stream


def cmd_up(args: argparse.Namespace) -> int:
    root = project_root(args.project_root)
    running = read_details(root)
    if running is not None and _alive(int(running.get("pid", 0))):
        print(f"the local stack is already running (pid {running['pid']}): {running['api_url']}", file=sys.stderr)
        return 1
    log, log_stream = _logger(Path(args.log_file) if args.log_file else root / DETAILS_DIR / "local.log")
    stop = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    stack = LocalStack(
        root,
        template=args.template,
        stack_name=args.stack_name,
        region=args.region,
        aws_port=args.aws_port,
        api_port=args.api_port,
        parameters=_parameters(args.parameter_overrides),
        log=log,
        write_details=True,
    )
    try:
        try:
            stack.start()
        except (LocalStackError, ProvisionError, TemplateError) as e:
            print(f"sklambda local up: {e}", file=sys.stderr)
            return 1
        print(summary(stack.details), flush=True)
        if args.sample:
            publish_sample(stack, log)
        while not stop.wait(0.5):
            pass
        print("stopping the local stack ...", file=sys.stderr, flush=True)
        return 0
    finally:
        stack.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log_stream.close()


def publish_sample(stack: LocalStack, log: Callable[[str], None]) -> dict[str, str] | None:
    """Publish the sample model (Palmer penguins, sklambda_infra.penguins) into the running stack's registry and
    point SAMPLE_ALIAS at it; print its name and a curl command to paste after `eval "$(sklambda local env)"`.

    Returns {"name", "version", "alias"}, also added to the stack's details (`sample_model` in
    .sklambda/local.json) once the model is served and these lines are printed. A stack without a model registry
    gets no sample (None). A failure is printed as one line and returns None: the stack keeps running without it.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from sklambda.errors import SklambdaError
    from sklambda.registry.schema import to_records
    from sklambda.registry.signing import CardSigner
    from sklambda.registry.store import Registry
    from sklambda_infra import penguins
    from sklambda_infra.layer import LayerBuildError
    from sklambda_infra.runtime import ensure_runtime_path

    details = stack.details
    if not (details.get("model_bucket") and details.get("signing_key_id")):
        log("no sample model: this template has no model bucket and signing key")
        return None
    log(f"publishing the sample model '{penguins.NAME}' (Palmer penguins) to {SAMPLE_ALIAS} ...")
    try:
        # Publish checks the model in the layer's host copy, which the stack's workers already run on (built once).
        ensure_runtime_path(log)
        card = penguins.publish_sample(
            Registry(details["model_bucket"], s3=lambda: stack.client("s3")),
            CardSigner(details["signing_key_id"], kms=lambda: stack.client("kms")),
            alias=SAMPLE_ALIAS,
        )
    except (SklambdaError, LayerBuildError, ClientError, BotoCoreError, ModuleNotFoundError) as e:
        message = getattr(e, "message", None) or str(e)
        if isinstance(e, ModuleNotFoundError):
            message = f"it needs the module {e.name!r}, a dev dependency: pip install -e '.[dev]' (as make does)"
        print(f"sklambda local up: the sample model was not published: {message}", file=sys.stderr, flush=True)
        return None
    sample = {"name": card.name, "version": card.version, "alias": SAMPLE_ALIAS}
    _, _, X_holdout, _ = penguins.split(*penguins.load())
    bird = to_records(X_holdout.dropna().head(1))[0]
    body = json.dumps({"instances": [bird]})
    threshold = card.decision["threshold"] if card.decision else None
    lines = [
        "",
        f"  Sample model     {card.name} version {card.version} -> {SAMPLE_ALIAS}: P({penguins.POSITIVE_CLASS}) "
        f"of a real penguin from its measurements (Palmer penguins; {', '.join(penguins.PII)} is pii)",
        f"                   holdout ROC AUC {card.metrics['roc_auc']:.3f}"
        + (f", decision threshold {threshold:.3f} (from costs)" if threshold is not None else ""),
        "  Predict (in another shell, from this folder):",
        f'    eval "$({_sklambda_command()} local env)"',
        f'    curl -s -X POST "$SKLAMBDA_API_URL/models/{card.name}/predict" -H "x-api-key: $SKLAMBDA_API_KEY" \\',
        f"         -H 'content-type: application/json' -d '{body}'",
    ]
    print("\n".join(lines), flush=True)
    # Recorded after the lines are printed: whoever waits for `sample_model` in local.json (a script, the README
    # walkthrough's test) can then rely on the curl command being on the screen too.
    stack.add_details(sample_model=sample)
    return sample


def _sklambda_command() -> str:
    """How to call this `sklambda` from the current folder: the venv's script beside this Python when there is one
    (`make local` runs it without activating the venv), else the name on PATH."""
    script = Path(sys.executable).parent / "sklambda"
    if not script.is_file():
        return "sklambda"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return shlex.quote(str(script))


def cmd_down(args: argparse.Namespace) -> int:
    root = project_root(args.project_root)
    details = read_details(root)
    if details is None:
        print("the local stack is not running")
        return 0
    pid = int(details.get("pid", 0))
    if pid <= 0 or not _alive(pid):
        details_path(root).unlink(missing_ok=True)
        print(f"the local stack is not running (removed the stale {details_path(root)})")
        return 0
    os.kill(pid, signal.SIGTERM)
    if not wait_until_stopped(pid, args.timeout, details_path(root)):
        print(f"pid {pid} did not stop within {args.timeout:.0f} s", file=sys.stderr)
        return 1
    print(f"stopped the local stack (pid {pid})")
    return 0


def _listening(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=1):
            return True
    except OSError:
        return False


def cmd_status(args: argparse.Namespace) -> int:
    root = project_root(args.project_root)
    details = read_details(root)
    if details is None:
        print("the local stack is not running")
        return EXIT_NOT_RUNNING
    if not _alive(int(details.get("pid", 0))):
        print(f"the local stack is not running (stale {details_path(root)}, pid {details.get('pid')})")
        return EXIT_NOT_RUNNING
    if args.json:
        print(json.dumps(details, indent=2))
        return 0
    api = "up" if _listening(details["api_url"]) else "NOT LISTENING"
    aws = "up" if _listening(details["aws_endpoint_url"]) else "NOT LISTENING"
    print(f"the local stack '{details['stack_name']}' is running (pid {details['pid']})")
    print(f"  API URL       {details['api_url']}  [{api}]")
    print(f"  API key       {details['api_key']}")
    print(f"  AWS endpoint  {details['aws_endpoint_url']}  [{aws}]  region {details['region']}")
    if details.get("model_bucket"):
        print(f"  model bucket  {details['model_bucket']}")
    if details.get("signing_key_id"):
        print(f"  signing key   {details['signing_key_id']}")
    return 0 if api == aws == "up" else 1


def stack_environment(details: dict[str, Any]) -> dict[str, str]:
    """The environment that points boto3, the AWS CLI, `sklambda.publish` and curl at a running local stack.

    The variables are sklambda.connection's (Target.environment): the standard AWS SDK ones (AWS_ENDPOINT_URL, region,
    the stack's fake credentials), the registry's (SKLAMBDA_MODEL_BUCKET, SKLAMBDA_SIGNING_KEY_ID), SKLAMBDA_API_URL,
    SKLAMBDA_API_KEY and SKLAMBDA_DATA_BUCKET for the README's curl and `aws s3` commands, and SKLAMBDA_RUNTIME_PATH
    for publish's parity gate. Values missing from the details are left out.
    """
    return Target.from_local_details(details).environment()


def cmd_env(args: argparse.Namespace) -> int:
    """Print `export NAME=value` lines (shell-quoted) for the running stack; exit 3 when none is running."""
    root = project_root(args.project_root)
    details = read_details(root)
    if details is None or not _alive(int(details.get("pid", 0))):
        print("the local stack is not running: start it with `make local` (or `sklambda local up`)", file=sys.stderr)
        return EXIT_NOT_RUNNING
    for name, value in stack_environment(details).items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def _spec_from_details(details: dict[str, Any], logical_id: str) -> FunctionSpec:
    """The function as the running stack runs it (code, layers, environment), from .sklambda/local.json."""
    function = details["functions"][logical_id]
    return FunctionSpec(
        logical_id=logical_id,
        name=function["name"],
        arn=details.get("arns", {}).get(logical_id, ""),
        handler=function["handler"],
        runtime=LOCAL_RUNTIME,
        code_dir=Path(function["code_dir"]),
        python_path=tuple(Path(p) for p in function["python_path"]),
        timeout_s=int(function["timeout_s"]),
        memory_mb=int(function["memory_mb"]),
        environment=dict(function["environment"]),
    )


def _invoke_event(args: argparse.Namespace, root: Path, on_demand: Path, scheduled: Path) -> Any:
    """The event given with --event; else the scheduled one (every model) or, with --model, the on-demand one."""
    if args.event is not None:
        try:
            return json.loads(args.event.read_text(encoding="utf-8"))
        except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
            raise SystemExit(f"--event {args.event} is not a JSON file: {e}") from None
    if args.model is None:
        if args.window_hours is not None or args.end is not None or args.alias is not None:
            raise SystemExit(
                "--window-hours, --end and --alias need --model: without it every model is checked as the schedule "
                "does (the default alias over the function's own window ending now; for rollout-check every alias in "
                "a rollout)"
            )
        return json.loads((root / scheduled).read_text(encoding="utf-8"))
    event = json.loads((root / on_demand).read_text(encoding="utf-8"))
    event.pop("end", None)  # the file's end is fixed for tests; by default the window ends now
    given = {"model": args.model, "window_hours": args.window_hours, "end": args.end, "alias": args.alias}
    for key, value in given.items():
        if value is not None:
            event[key] = value
    return event


def cmd_invoke(args: argparse.Namespace) -> int:
    """Run the function once in a worker process of its own, with the running stack's configuration and AWS
    endpoint (the stack's resources and data), and print its result."""
    root = project_root(args.project_root)
    details = read_details(root)
    if details is None or not _alive(int(details.get("pid", 0))):
        print("the local stack is not running (start it with `sklambda local up`)", file=sys.stderr)
        return EXIT_NOT_RUNNING
    logical_id, on_demand, scheduled = INVOCABLE[args.function]
    if logical_id not in details.get("functions", {}):
        print(f"the running local stack has no {logical_id}; restart it with the current template", file=sys.stderr)
        return 1
    spec = _spec_from_details(details, logical_id)
    pseudo = Pseudo(region=details["region"], account_id=details["account_id"], stack_name=details["stack_name"])
    runner = FunctionRunner(spec, worker_environment(spec, pseudo, details["aws_endpoint_url"]), _stderr_line)
    try:
        result = runner.invoke(_invoke_event(args, root, on_demand, scheduled)).result
    except InvocationError as e:
        print(f"{logical_id} failed: {e}", file=sys.stderr)
        return 1
    finally:
        runner.stop()
    print(json.dumps(result, indent=2))
    return 0 if isinstance(result, dict) and result.get("status") not in FAILED_ANSWERS else 1


def _stderr_line(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()
