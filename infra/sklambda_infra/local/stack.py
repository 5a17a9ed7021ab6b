"""The local stack: moto + the template's resources + a local API Gateway + one worker per function.

with LocalStack(project_root, aws_port=0, api_port=0) as stack:
    stack.details["api_url"], stack.details["api_key"], stack.details["model_bucket"]
    stack.invoke("PredictFunction", event)
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import boto3
from botocore.config import Config

from sklambda.connection import process_running
from sklambda_infra.local.eventbridge import StateMachineRule, create_rules, state_machine_rules
from sklambda_infra.local.eventbridge import describe as describe_rules
from sklambda_infra.local.events import ExecutionWatcher, SqsPoller, service_integrations, sqs_event_sources
from sklambda_infra.local.functions import (
    FAKE_ACCESS_KEY_ID,
    FAKE_SECRET_ACCESS_KEY,
    FunctionRunner,
    FunctionSpec,
    function_specs,
    worker_environment,
)
from sklambda_infra.local.gateway import Gateway, GatewayServer, Route, api_routes
from sklambda_infra.local.provision import GENERATED_PARAMETERS, Provisioner, ProvisionResult
from sklambda_infra.local.scheduler import Scheduler, schedule_every_from_env, schedule_sources
from sklambda_infra.local.states import DEFAULT_MAX_LOCAL_WAIT_S, TaskTokens
from sklambda_infra.local.subscriptions import LogForwarder, subscriptions
from sklambda_infra.template import (
    DEFAULT_REGION,
    DEFAULT_STACK_NAME,
    Pseudo,
    Resolver,
    load_template,
    parameter_values,
)
from sklambda_infra.translation import Translation, translate

HOST = "127.0.0.1"
DEFAULT_AWS_PORT = 4566
DEFAULT_API_PORT = 3000
DETAILS_DIR = ".sklambda"
DETAILS_FILE = "local.json"
# Logical ids of the sklambda template that get their own key in the details.
MODEL_BUCKET = "ModelBucket"
SIGNING_KEY = "SigningKey"
DATA_BUCKET = "DataBucket"
DATA_KEY = "DataKey"
STATE_MACHINE_TYPES = ("AWS::StepFunctions::StateMachine",)
# Workers one function may run at once for a state machine's Map (like Lambda containers; each is a process).
DEFAULT_MAX_PARALLEL_WORKERS = 4


class LocalStackError(Exception):
    """The local stack could not start."""


def details_path(project_root: str | Path) -> Path:
    return Path(project_root) / DETAILS_DIR / DETAILS_FILE


def _tools_folder() -> str:
    """The folder of this interpreter's console scripts as a prefix ("" when it is not a venv's with sklambda in it),
    relative to the current folder when under it (".venv/bin/")."""
    folder = Path(sys.executable).parent
    if not (folder / "sklambda").exists():
        return ""
    try:
        return f"{folder.relative_to(Path.cwd())}/"
    except ValueError:
        return f"{folder}/"


def read_details(project_root: str | Path) -> dict[str, Any] | None:
    """The running stack's details (`.sklambda/local.json`), or None when there is no such file."""
    try:
        return json.loads(details_path(project_root).read_text())
    except (OSError, ValueError):
        return None


_stderr_lock = threading.Lock()


def _stderr_log(line: str) -> None:
    with _stderr_lock:  # workers' output and the gateway's lines come from several threads
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


class LocalStack:
    """Starts everything in `start()` (or `with`), stops it all in `stop()`; ports 0 pick free ports.

    moto keeps its state per process, so stacks running in one process share it: like CloudFormation stacks in
    one account, they need different stack names. moto's state is reset when the last of them stops.
    """

    _running: ClassVar[set[str]] = set()
    _running_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        project_root: str | Path = ".",
        *,
        template: str = "template.yaml",
        stack_name: str = DEFAULT_STACK_NAME,
        region: str = DEFAULT_REGION,
        aws_port: int = DEFAULT_AWS_PORT,
        api_port: int = DEFAULT_API_PORT,
        parameters: Mapping[str, Any] | None = None,
        log: Callable[[str], None] | None = None,
        write_details: bool = False,
        max_parallel_workers: int = DEFAULT_MAX_PARALLEL_WORKERS,
        max_wait_s: float = DEFAULT_MAX_LOCAL_WAIT_S,
    ) -> None:
        self.project_root = Path(project_root).resolve()
        self.template_path = self.project_root / template
        self.pseudo = Pseudo(region=region, stack_name=stack_name)
        self.aws_port = aws_port
        self.api_port = api_port
        self.parameters = dict(parameters or {})
        self.log = log if log is not None else _stderr_log
        self.write_details = write_details
        self.details: dict[str, Any] = {}
        self.provisioned: ProvisionResult | None = None
        self.generated_parameters: dict[str, Any] = {}
        self.functions: dict[str, FunctionSpec] = {}
        self.routes: list[Route] = []
        self.runners: dict[str, FunctionRunner] = {}
        self.max_parallel_workers = max(1, max_parallel_workers)
        self.pollers: list[SqsPoller] = []
        self.watcher: ExecutionWatcher | None = None
        # Each Wait state of a local execution sleeps at most this long (seconds); see states.py.
        self.max_wait_s = max_wait_s
        self.task_tokens = TaskTokens()
        self.event_rules: list[StateMachineRule] = []
        self.forwarder: LogForwarder | None = None
        self.scheduler: Scheduler | None = None
        self._pools: dict[str, queue.LifoQueue[FunctionRunner]] = {}
        self._pool_runners: dict[str, list[FunctionRunner]] = {}
        self._pool_lock = threading.Lock()
        self._moto: Any = None
        self._gateway: GatewayServer | None = None
        self._endpoint = ""
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self._session: boto3.session.Session | None = None
        self._registered = False

    # -- lifecycle -------------------------------------------------------------------------------------------

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        template = load_template(self.template_path)
        with LocalStack._running_lock:
            if self.pseudo.stack_name in LocalStack._running:
                raise LocalStackError(
                    f"a local stack named {self.pseudo.stack_name!r} is already running in this process "
                    "(they share moto's state); give this one another stack_name"
                )
            LocalStack._running.add(self.pseudo.stack_name)
            self._registered = True
        self._start_moto()
        translation = self._translate(template)
        resolver = Resolver(translation.template, parameters=self.parameters, pseudo=self.pseudo)
        self.provisioned = Provisioner(resolver, self.client).provision()
        self.generated_parameters = {name: resolver.parameters[name] for name in self.provisioned.generated}
        self.routes = api_routes(resolver)
        api_keys = self._create_api_keys()
        self.functions = function_specs(resolver, translation, self.log)
        self.forwarder = LogForwarder(subscriptions(resolver, self.log), self.client("firehose"), self.log)
        self.forwarder.start()
        for logical_id, spec in self.functions.items():
            env = worker_environment(spec, self.pseudo, self._endpoint)
            output = self.forwarder.sink(log_group_of(resolver, logical_id, spec))
            self.runners[logical_id] = FunctionRunner(spec, env, self.log, output)
        self._start_event_sources(resolver)
        gateway = Gateway(self.routes, self._invoke_for_gateway, self._enabled_api_keys, self.log)
        try:
            self._gateway = GatewayServer(gateway, HOST, self.api_port)
        except OSError as e:
            raise LocalStackError(f"cannot listen on {HOST}:{self.api_port} for the API: {e}") from None
        self._gateway.start()
        self.details = self._build_details(api_keys)
        self._save_details()

    def add_details(self, **fields: Any) -> None:
        """Add `fields` to the details (e.g. the sample model `sklambda local up` published), and to
        .sklambda/local.json when this stack writes it."""
        self.details.update(fields)
        self._save_details()

    def _save_details(self) -> None:
        if self.write_details:
            path = details_path(self.project_root)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.details, indent=2) + "\n")
            tmp.replace(path)

    def _translate(self, template: dict[str, Any]) -> Translation:
        """The CloudFormation SAM makes of the template with this stack's parameters. A parameter the provisioner
        will generate (GENERATED_PARAMETERS, when not given) is not known yet: its conditions stay to be decided."""
        values = parameter_values(template, self.parameters)
        pending = [name for name in GENERATED_PARAMETERS if name in values and not values[name]]
        return translate(
            template, project_root=self.project_root, parameters=self.parameters, unknown=pending, pseudo=self.pseudo
        )

    def _start_event_sources(self, resolver: Resolver) -> None:
        """SQS event source mappings and the state machines' executions (see events.py)."""
        assert self.provisioned is not None
        region = self.pseudo.region
        for source in sqs_event_sources(resolver):
            poller = SqsPoller(source, self.client("sqs"), self._invoke_pooled, region, self.log)
            self.pollers.append(poller)
            poller.start()
        machines = {
            created.physical_id: logical_id
            for logical_id, created in self.provisioned.created.items()
            if self.provisioned.types.get(logical_id) in STATE_MACHINE_TYPES
        }
        from sklambda_infra.local.moto_patches import route_task_tokens

        route_task_tokens(self.task_tokens)  # SendTaskSuccess/Failure/Heartbeat against moto reach the executions
        self.watcher = ExecutionWatcher(
            machines,
            self.client("stepfunctions"),
            self._invoke_arn,
            self.log,
            account_id=self.pseudo.account_id,
            region=region,
            services=service_integrations(self.client),
            task_tokens=self.task_tokens,
            max_wait_s=self.max_wait_s,
        )
        self.watcher.start()
        # EventBridge rules whose targets are state machines: a matching PutEvents starts an execution.
        self.event_rules = state_machine_rules(resolver)
        create_rules(self.client("events"), self.event_rules)
        for rule in self.event_rules:
            self.provisioned.cloud_only.pop(rule.rule, None)
            self.provisioned.local[rule.rule] = "in moto's EventBridge: a matching PutEvents starts the state machine"
            self.provisioned.notes.setdefault(rule.rule, []).extend(rule.notes)
        # EventBridge schedules (the drift check); SKLAMBDA_LOCAL_SCHEDULE_EVERY=<seconds> speeds them up.
        self.scheduler = Scheduler(
            schedule_sources(resolver),
            self._invoke_pooled,
            self.log,
            every_s=schedule_every_from_env(),
            start_execution=self._start_execution,
        )
        self.scheduler.start()

    def _start_execution(self, state_machine_arn: str, execution_input: Any) -> str:
        """StartExecution in moto (the watcher runs it), as EventBridge does for a state machine target."""
        started = self.client("stepfunctions").start_execution(
            stateMachineArn=state_machine_arn, input=json.dumps(execution_input)
        )
        return str(started["executionArn"])

    def _invoke_pooled(self, logical_id: str, event: Any) -> Any:
        """Invoke on an idle worker of the function, starting another one (up to max_parallel_workers) when all
        are busy: concurrent callers (a Map's items) run in parallel processes, like Lambda containers."""
        with self._pool_lock:
            if logical_id not in self._pools:
                self._pools[logical_id] = queue.LifoQueue()
                self._pools[logical_id].put(self.runners[logical_id])
                self._pool_runners[logical_id] = [self.runners[logical_id]]
            pool = self._pools[logical_id]
            try:
                runner = pool.get_nowait()
            except queue.Empty:
                runner = None
                if len(self._pool_runners[logical_id]) < self.max_parallel_workers:
                    spec = self.functions[logical_id]
                    first = self.runners[logical_id]
                    runner = FunctionRunner(spec, first.env, self.log, first.output)
                    self._pool_runners[logical_id].append(runner)
        if runner is None:
            runner = pool.get()
        try:
            return runner.invoke(event).result
        finally:
            pool.put(runner)

    def _invoke_arn(self, function: str, event: Any) -> Any:
        """Invoke a template function by ARN (optionally qualified), name or logical id."""
        for logical_id, spec in self.functions.items():
            if function in (logical_id, spec.name, spec.arn) or function.startswith(spec.arn + ":"):
                return self._invoke_pooled(logical_id, event)
        raise KeyError(f"no local function {function!r}; functions: {sorted(self.functions)}")

    def _start_moto(self) -> None:
        from moto.server import ThreadedMotoServer

        from sklambda_infra.local.moto_patches import enrich_s3_notifications  # importing it checks moto's version

        # ThreadedMotoServer binds in its own thread and would wait forever if the port is taken: check first.
        if self.aws_port:
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((HOST, self.aws_port))
                except OSError as e:
                    raise LocalStackError(f"cannot listen on {HOST}:{self.aws_port} for moto: {e}") from None
        # One line per moto request would drown the functions' logs.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        enrich_s3_notifications()  # versionId and sequencer in S3 notifications, as S3 sends them
        self._moto = ThreadedMotoServer(ip_address=HOST, port=self.aws_port, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        self._endpoint = f"http://{host}:{port}"

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        # Each stop waits for a thread or a process (a poller for its long poll, a worker for its interpreter's
        # exit: about a second each). The event sources first, so no invocation starts on a stopping worker; then
        # the workers. Stopped together, each group takes its longest wait rather than the sum.
        stop_together([*self.pollers, *([self.watcher] if self.watcher is not None else [])])
        self.pollers, self.watcher = [], None
        if self._moto is not None:
            from sklambda_infra.local.moto_patches import unroute_task_tokens

            unroute_task_tokens(self.task_tokens)
        stop_together([*(r for runners in self._pool_runners.values() for r in runners), *self.runners.values()])
        self._pools, self._pool_runners = {}, {}
        self.runners = {}
        if self.forwarder is not None:  # after the workers: their last lines are still delivered
            self.forwarder.stop()
            self.forwarder = None
        if self._gateway is not None:
            self._gateway.stop()
            self._gateway = None
        last = False
        if self._registered:
            with LocalStack._running_lock:
                LocalStack._running.discard(self.pseudo.stack_name)
                last = not LocalStack._running
            self._registered = False
        if self._moto is not None:
            if last:
                self._reset_moto()
            self._moto.stop()
            self._moto = None
        if self.write_details and self.details:
            path = details_path(self.project_root)
            current = read_details(self.project_root)
            if current is not None and current.get("pid") == self.details.get("pid"):
                path.unlink(missing_ok=True)
        self._clients = {}

    def _reset_moto(self) -> None:
        """Leave no state behind in this process's moto backends (the server runs in-process)."""
        try:
            request = urllib.request.Request(f"{self._endpoint}/moto-api/reset", method="POST")
            urllib.request.urlopen(request, timeout=5).close()
        except OSError:
            pass

    # -- use -------------------------------------------------------------------------------------------------

    @property
    def aws_endpoint_url(self) -> str:
        return self._endpoint

    @property
    def api_url(self) -> str:
        return self.details.get("api_url", "")

    @property
    def api_key(self) -> str | None:
        return self.details.get("api_key")

    def client(self, service: str) -> Any:
        """A boto3 client for the local stack's moto."""
        with self._clients_lock:
            if service not in self._clients:
                # One session for all of them: each new session reads botocore's endpoint and service data again
                # (~50 ms a client, ~40 clients to provision the project's template). Creating clients from one
                # session is not thread-safe: the lock covers it.
                if self._session is None:
                    self._session = boto3.session.Session()
                self._clients[service] = self._session.client(
                    service,
                    endpoint_url=self._endpoint,
                    region_name=self.pseudo.region,
                    aws_access_key_id=FAKE_ACCESS_KEY_ID,
                    aws_secret_access_key=FAKE_SECRET_ACCESS_KEY,
                    config=Config(retries={"max_attempts": 2}),
                )
            return self._clients[service]

    def invoke(self, function_logical_id: str, event: Any, *, timeout_s: float | None = None) -> Any:
        """Invoke a function directly (no gateway); returns its result or raises an InvocationError."""
        if function_logical_id not in self.runners:
            raise KeyError(f"no function {function_logical_id!r}; functions: {sorted(self.runners)}")
        return self.runners[function_logical_id].invoke(event, caller_timeout_s=timeout_s).result

    def _invoke_for_gateway(self, function_id: str, event: dict[str, Any], timeout_s: float, request_id: str) -> Any:
        return self.runners[function_id].invoke(event, caller_timeout_s=timeout_s, request_id=request_id).result

    def _enabled_api_keys(self) -> dict[str, str]:
        """value -> id of every enabled API key in moto (keys created later with the CLI count too)."""
        keys: dict[str, str] = {}
        paginator = self.client("apigateway").get_paginator("get_api_keys")
        for page in paginator.paginate(includeValues=True):
            for key in page.get("items", []):
                if key.get("enabled") and key.get("value"):
                    keys[key["value"]] = key["id"]
        return keys

    def _create_api_keys(self) -> dict[str, dict[str, str]]:
        """The template's enabled API keys (SAM declares `<Api>ApiKey` when the API's Auth.UsagePlan creates one);
        when it has none, an enabled key in moto's API Gateway for each API whose routes need one."""
        apigateway = self.client("apigateway")
        keys: dict[str, dict[str, str]] = {}
        assert self.provisioned is not None
        for logical_id, created in self.provisioned.created.items():
            if self.provisioned.types.get(logical_id) == "AWS::ApiGateway::ApiKey":
                key = apigateway.get_api_key(apiKey=created.physical_id, includeValue=True)
                if key.get("enabled"):
                    keys[logical_id] = {"id": key["id"], "value": key["value"]}
        if keys:
            return keys
        for api_id in sorted({r.api.logical_id for r in self.routes if r.api_key_required}):
            key = apigateway.create_api_key(name=f"{self.pseudo.stack_name}-{api_id}-local", enabled=True)
            keys[api_id] = {"id": key["id"], "value": key["value"]}
        return keys

    # -- details ---------------------------------------------------------------------------------------------

    def _runtime_path(self) -> str | None:
        """The target runtime publish checks models in (the layer's host copy, the runtime stand-in), os.pathsep
        separated; None when this checkout cannot build it (a wheel install without layers/deps)."""
        from sklambda_infra.layer import LayerBuildError
        from sklambda_infra.runtime import runtime_paths  # pandas and numpy: only once the stack is up

        try:
            return os.pathsep.join(runtime_paths())
        except LayerBuildError:
            return None

    def _build_details(self, api_keys: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
        assert self.provisioned is not None and self._gateway is not None
        p = self.provisioned
        api_url = f"http://{HOST}:{self._gateway.port}"
        resources = {logical_id: created.physical_id for logical_id, created in p.created.items()}
        arns = {
            logical_id: created.attributes["Arn"]
            for logical_id, created in p.created.items()
            if "Arn" in created.attributes
        }

        def arn_of(logical_id: str) -> str | None:
            return arns.get(logical_id)

        first_key = next(iter(api_keys.values()), None)
        return {
            "stack_name": self.pseudo.stack_name,
            "region": self.pseudo.region,
            "account_id": self.pseudo.account_id,
            "aws_endpoint_url": self._endpoint,
            "access_key_id": FAKE_ACCESS_KEY_ID,
            "secret_access_key": FAKE_SECRET_ACCESS_KEY,
            "api_url": api_url,
            "api_key": first_key["value"] if first_key else None,
            "api_key_id": first_key["id"] if first_key else None,
            "api_keys": {api: dict(key) for api, key in api_keys.items()},
            "model_bucket": resources.get(MODEL_BUCKET),
            "data_bucket": resources.get(DATA_BUCKET),
            "signing_key_id": arn_of(SIGNING_KEY),
            # Where publish's parity gate finds the functions' packages (sklambda.connection reads it).
            "runtime_path": self._runtime_path(),
            "data_key_id": arn_of(DATA_KEY),
            "resources": resources,
            "arns": arns,
            # Parameters the local stack generated (e.g. the wrapped pseudonymization key) and where captured
            # predictions land locally (prefix empty: partitioned per model as in the cloud).
            "generated_parameters": dict(self.generated_parameters),
            "captures": [
                {
                    "stream": created.physical_id,
                    "prefix": created.attributes.get("LocalPrefix", ""),
                    "bucket": created.attributes.get("BucketName"),
                }
                for logical_id, created in p.created.items()
                if p.types.get(logical_id) == "AWS::KinesisFirehose::DeliveryStream"
            ],
            "resource_types": dict(p.types),
            "buckets": {k: v for k, v in resources.items() if p.types.get(k) == "AWS::S3::Bucket"},
            "kms_keys": {
                k: {"key_id": v, "arn": arns[k]} for k, v in resources.items() if p.types.get(k) == "AWS::KMS::Key"
            },
            "functions": {
                logical_id: {
                    "name": spec.name,
                    "handler": spec.handler,
                    "code_dir": str(spec.code_dir),
                    "timeout_s": spec.timeout_s,
                    "memory_mb": spec.memory_mb,
                    "environment": spec.environment,
                    "python_path": [str(path) for path in spec.python_path],
                    "notes": list(spec.notes),
                }
                for logical_id, spec in self.functions.items()
            },
            "sqs_event_sources": [
                {
                    "function": poller.source.function,
                    "event": poller.source.event,
                    "queue_url": poller.queue_url,
                    "batch_size": poller.source.batch_size,
                    "report_batch_item_failures": poller.source.report_batch_item_failures,
                }
                for poller in self.pollers
            ],
            "state_machines": {
                logical_id: created.physical_id
                for logical_id, created in p.created.items()
                if p.types.get(logical_id) in STATE_MACHINE_TYPES
            },
            "routes": [
                {
                    "method": r.method,
                    "path": r.resource,
                    "function": r.function,
                    "api": r.api.logical_id,
                    "stage": r.api.stage,
                    "api_key_required": r.api_key_required,
                    "authorizer": r.authorizer,
                }
                for r in self.routes
            ],
            "log_subscriptions": self.forwarder.describe() if self.forwarder else [],
            "schedules": self.scheduler.describe() if self.scheduler else [],
            "event_rules": describe_rules(self.event_rules),
            "state_machine_max_wait_s": self.max_wait_s,
            "local_equivalents": dict(p.local),
            "cloud_only": dict(p.cloud_only),
            "skipped_by_condition": dict(p.skipped),
            "placeholders": dict(p.placeholders),
            "notes": {k: list(v) for k, v in p.notes.items()},
            "project_root": str(self.project_root),
            "template": str(self.template_path),
            "pid": os.getpid(),
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }


def summary(details: Mapping[str, Any]) -> str:
    """What `sklambda local up` prints: where things are and what to try."""
    endpoint = details["aws_endpoint_url"]
    lines = [
        f"sklambda local stack '{details['stack_name']}' is up (pid {details['pid']})",
        "",
        f"  API URL          {details['api_url']}",
        f"  API key          {details['api_key'] or '(no route requires one)'}",
        f"  AWS endpoint     {endpoint}   region {details['region']}",
        f"  credentials      AWS_ACCESS_KEY_ID={details['access_key_id']} "
        f"AWS_SECRET_ACCESS_KEY={details['secret_access_key']}",
    ]
    if details.get("model_bucket"):
        lines.append(f"  model bucket     {details['model_bucket']}")
    for logical_id, bucket in details["buckets"].items():
        if logical_id != MODEL_BUCKET:
            lines.append(f"  {logical_id:<16} {bucket}")
    for logical_id, key in details["kms_keys"].items():
        lines.append(f"  KMS {logical_id:<12} {key['arn']}")
    lines += ["", "  Routes:"]
    for route in details["routes"]:
        key = "  (x-api-key)" if route["api_key_required"] else ""
        lines.append(f"    {route['method']:<7} {route['path']:<32} -> {route['function']}{key}")
    for source in details.get("sqs_event_sources", []):
        lines.append(f"  SQS {source['queue_url']} -> {source['function']} (batch size {source['batch_size']})")
    for logical_id, arn in details.get("state_machines", {}).items():
        cap = details.get("state_machine_max_wait_s")
        waits = f"; each Wait at most {cap:g} s" if cap is not None else ""
        lines.append(f"  state machine {logical_id}: {arn} (run by the local interpreter{waits})")
    for sub in details.get("log_subscriptions", []):
        lines.append(f"  log {sub['log_group']} -> Firehose {sub['stream']} ({sub['filter']})")
    for rule in details.get("event_rules", []):
        machines = ", ".join(rule["state_machines"])
        lines.append(f"  rule {rule['rule']} ({rule['event_bus']} bus) -> state machine {machines}")
    for sched in details.get("schedules", []):
        when = sched["local_schedule"] or "disabled"
        lines.append(f"  schedule {sched['expression']} -> {sched['function']} ({when}; next {sched['next']})")
    if details["local_equivalents"]:
        lines += ["", "  Run locally:"]
        by_how: dict[str, list[str]] = {}
        for logical_id, how in details["local_equivalents"].items():
            by_how.setdefault(how, []).append(logical_id)
        lines += [f"    {', '.join(ids)}: {how}" for how, ids in by_how.items()]
    created = [k for k in details["resources"]]
    lines += ["", f"  Created in moto: {', '.join(created) or '(nothing)'}"]
    if details["cloud_only"]:
        lines.append("  Cloud-only (not emulated):")
        lines += [f"    {k} ({v})" for k, v in details["cloud_only"].items()]
    if details["skipped_by_condition"]:
        lines.append("  Skipped, condition false: " + ", ".join(details["skipped_by_condition"]))
    notes = [f"    {k}: {n}" for k, ns in details["notes"].items() for n in ns]
    notes += [f"    {k}: {n}" for k, f in details["functions"].items() for n in f["notes"]]
    authorizers = sorted({r["authorizer"] for r in details["routes"] if r["authorizer"]})
    if authorizers:
        notes.append(f"    authorizer {', '.join(authorizers)} is NOT enforced locally: those routes are open")
    if notes:
        lines += ["  Notes:", *notes]
    tools = _tools_folder()  # this venv's sklambda and aws, which need nothing else on PATH
    lines += [
        "",
        "  Try (in another shell, from this folder):",
        f'    eval "$({tools}sklambda local env)"   # AWS_ENDPOINT_URL, region, credentials, API URL and key, buckets',
        f"    {tools}aws s3 ls",
    ]
    first_get = next((r for r in details["routes"] if r["method"] in ("GET", "ANY") and "{" not in r["path"]), None)
    if first_get is not None:
        header = f" -H 'x-api-key: {details['api_key']}'" if first_get["api_key_required"] else ""
        lines.append(f"    curl -s{header} {details['api_url']}{first_get['path']}")
    lines += ["", "  Details: .sklambda/local.json   Stop: Ctrl-C or `sklambda local down`"]
    return "\n".join(lines)


def stop_together(parts: list[Any]) -> None:
    """Call every part's stop() at once, each in a thread of its own, and return when all have returned."""
    threads = [threading.Thread(target=part.stop, name=f"stop-{i}") for i, part in enumerate(parts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def wait_until_stopped(pid: int, timeout_s: float, details_file: Path | None = None) -> bool:
    """True once `pid` has exited (a zombie counts) or has removed its details file, within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if details_file is not None and not details_file.exists():
            return True
        if not process_running(pid):
            return True
        time.sleep(0.1)
    return False


def log_group_of(resolver: Resolver, logical_id: str, spec: FunctionSpec) -> str:
    """The function's log group: LoggingConfig.LogGroup, else Lambda's default /aws/lambda/<name>."""
    properties = resolver.template["Resources"][logical_id].get("Properties") or {}
    logging_config = properties.get("LoggingConfig") or {}
    group = resolver.resolve(logging_config.get("LogGroup")) if logging_config.get("LogGroup") else None
    return str(group) if group else f"/aws/lambda/{spec.name}"
