"""Run each AWS::Lambda::Function of the translated template in its own long-lived worker process, like a Lambda
container.

`function_specs` reads what a function needs from the translated template (handler, code, layers, timeout, memory,
environment: SAM has already merged Globals into each function), and finds its code and layers' local folders
through the translation's packaged artifacts. A layer that `sam build` builds from a requirements.txt runs on its
host-Python copy (`sklambda_infra.layer.local_env`: the same pins, built once into .sklambda/runtime/), and a
boto3-only folder stands in for what the Lambda runtime ships, so a worker imports exactly what the deployed
function can.
`FunctionRunner` keeps one warm worker per function, starts it on first use (a cold start), kills it when the
function's Timeout passes, and starts a fresh one after a crash.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sklambda_infra import layer
from sklambda_infra.template import (
    LAMBDA_FUNCTION,
    LAMBDA_LAYER,
    Pseudo,
    Resolver,
    TemplateError,
    environment_variables,
    resources_of_type,
)
from sklambda_infra.translation import Translation

WORKER_SCRIPT = Path(__file__).with_name("worker.py")
DEFAULT_TIMEOUT_S = 3
DEFAULT_MEMORY_MB = 128
# Lambda gives the init phase 10 s; past that it retries the init inside the invoke, under the function Timeout.
INIT_TIMEOUT_S = 10.0
FAKE_ACCESS_KEY_ID = "testing"
FAKE_SECRET_ACCESS_KEY = "testing"  # moto accepts any credentials
# Where Lambda puts the layers' python/ folders (Lambda Developer Guide, "Layer paths for each Lambda runtime").
LAMBDA_LAYER_ROOT = "/opt/python"

LOCAL_RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"

Log = Callable[[str], None]


class InvocationError(Exception):
    """The function did not return a result."""


class FunctionError(InvocationError):
    """The handler raised (or failed to import); `error` is Lambda's error payload."""

    def __init__(self, error: Mapping[str, Any]) -> None:
        self.error = dict(error)
        super().__init__(f"{error.get('errorType', 'Error')}: {error.get('errorMessage', '')}")


class FunctionTimeout(InvocationError):
    """The function ran past its Timeout and its worker was killed."""


class CallerTimeout(InvocationError):
    """The caller (API Gateway's integration timeout) gave up before the function answered."""


class FunctionCrashed(InvocationError):
    """The worker process died or spoke nonsense; the next invocation starts a new one."""


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    name: str
    arn: str
    handler: str
    runtime: str
    code_dir: Path
    python_path: tuple[Path, ...]  # code dir, then layers, in Lambda's order
    timeout_s: int
    memory_mb: int
    environment: dict[str, str]  # exactly what the template gives the function
    notes: tuple[str, ...] = ()


def dependency_layer(folder: Path, log: Log | None = None) -> Path:
    """The host-Python copy (a `python/` folder) of the layer that `sam build` builds in `folder` from its
    requirements.txt and extra-requirements.txt; built on first use (~15 s), then reused. Raises what
    `layer.local_env` raises (LayerBuildError, ValueError, FileNotFoundError)."""
    files = [folder / "requirements.txt", folder / layer.EXTRA_REQUIREMENTS.name]
    return layer.local_env([f for f in files if f.is_file()], log=log)


def runtime_stand_in(log: Log | None = None) -> Path:
    """boto3 and the rest of what the Lambda Python runtime ships, for this interpreter (after the layers on
    sys.path, as in Lambda). Raises LayerBuildError when pip fails."""
    return layer.local_runtime_stand_in(log=log)


def _layer_paths(
    template: Mapping[str, Any], translation: Translation, layer_ids: list[str], notes: list[str], log: Log | None
) -> list[Path]:
    paths: list[Path] = []
    for layer_id in layer_ids:
        content = (template["Resources"][layer_id].get("Properties") or {}).get("Content")
        folder = translation.local_folder(content)
        if folder is None:
            raise TemplateError(f"layer {layer_id}: ContentUri must be a local folder to run locally, got {content!r}")
        name = content["S3Key"]  # the layer's logical id in template.yaml (SAM adds a hash to the translated one)
        python = folder / "python"
        if python.is_dir():
            paths.append(python)
            continue
        if not (folder / "requirements.txt").is_file():
            raise TemplateError(f"layer {name}: {_display(folder)} has neither a python/ folder nor a requirements.txt")
        copy = dependency_layer(folder, log)
        manifest = layer.runtime_env().RuntimeManifest.read(copy)
        notes.append(
            f"layer {name}: built by sam build; runs on its host-Python copy {_display(copy)} "
            f"({len(manifest.packages)} packages, scikit-learn {manifest.sklearn_version}, "
            f"fingerprint {manifest.fingerprint[:12]})"
        )
        paths.append(copy)
    return paths


def _display(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def function_specs(resolver: Resolver, translation: Translation, log: Log | None = None) -> dict[str, FunctionSpec]:
    """A spec for each enabled AWS::Lambda::Function of `translation`; `resolver` (over `translation.template`) must
    know the provisioned physical ids.

    Builds the host-Python copies the functions' layers need (once per machine; `log` hears about it). Raises
    TemplateError for what cannot run locally (an image, code or a layer not in a local folder), LayerBuildError when
    a layer's copy cannot be built.
    """
    template = resolver.template
    layer_by_arn = {
        resolver.refs[layer_id]: layer_id
        for layer_id in resources_of_type(template, LAMBDA_LAYER)
        if layer_id in resolver.refs
    }
    specs: dict[str, FunctionSpec] = {}
    for logical_id in resources_of_type(template, LAMBDA_FUNCTION):
        if not resolver.enabled(logical_id):
            continue
        props = template["Resources"][logical_id].get("Properties") or {}
        notes: list[str] = []
        if props.get("PackageType", "Zip") != "Zip":
            raise TemplateError(f"{logical_id}: only Zip functions run locally")
        code_dir = translation.local_folder(props.get("Code"))
        if code_dir is None:
            raise TemplateError(
                f"{logical_id}: CodeUri must be a local folder to run locally, got {props.get('Code')!r}"
            )
        layers = resolver.resolve(props.get("Layers") or [])
        layer_ids = [layer_by_arn[arn] for arn in layers if arn in layer_by_arn]
        external = [arn for arn in layers if arn not in layer_by_arn]
        layer_paths = _layer_paths(template, translation, layer_ids, notes, log)
        if external:
            notes.append(f"external layers {external} are not available locally: their imports fail here")
        layer_paths.append(runtime_stand_in(log))
        runtime = str(resolver.resolve(props.get("Runtime", LOCAL_RUNTIME)))
        if runtime != LOCAL_RUNTIME:
            notes.append(f"Runtime {runtime}: runs locally on {LOCAL_RUNTIME} ({sys.executable})")
        name = str(resolver.refs[logical_id])
        specs[logical_id] = FunctionSpec(
            logical_id=logical_id,
            name=name,
            arn=str(resolver.attributes[(logical_id, "Arn")]),
            handler=str(resolver.resolve(props.get("Handler", "app.handler"))),
            runtime=runtime,
            code_dir=code_dir,
            python_path=(code_dir, *layer_paths),
            timeout_s=int(resolver.resolve(props.get("Timeout", DEFAULT_TIMEOUT_S))),
            memory_mb=int(resolver.resolve(props.get("MemorySize", DEFAULT_MEMORY_MB))),
            environment=environment_variables(resolver, logical_id),
            notes=tuple(notes),
        )
    return specs


def local_layer_root(spec: FunctionSpec) -> str:
    """What Lambda's layer folder (LAMBDA_LAYER_ROOT) is for this function locally: its layers' folders and the
    runtime stand-in, os.pathsep-separated, the one holding the runtime manifest first (publishing.parity.Runtime
    reads it there)."""
    folders = list(spec.python_path[1:])
    manifest = layer.runtime_env().MANIFEST_NAME
    folders.sort(key=lambda folder: not (folder / manifest).is_file())  # stable: Lambda's order otherwise
    return os.pathsep.join(str(folder) for folder in folders)


def worker_environment(spec: FunctionSpec, pseudo: Pseudo, endpoint_url: str) -> dict[str, str]:
    """The template's variables plus only the local plumbing; nothing from the parent's environment but PATH,
    HOME and LANG. A variable naming Lambda's layer folder (/opt/python: the retraining train function's
    SKLAMBDA_RUNTIME_PATH) names the function's layers' local folders instead (local_layer_root)."""
    env = dict(spec.environment)
    for name, value in env.items():
        if value == LAMBDA_LAYER_ROOT:
            env[name] = local_layer_root(spec)
    env.update(
        {
            "AWS_ENDPOINT_URL": endpoint_url,
            "AWS_REGION": pseudo.region,
            "AWS_DEFAULT_REGION": pseudo.region,
            "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_ACCESS_KEY,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout_s),
            "AWS_LAMBDA_FUNCTION_HANDLER": spec.handler,
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": "local",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "_HANDLER": spec.handler,
            "TZ": ":UTC",
            # No X-Ray daemon locally.
            "POWERTOOLS_TRACE_DISABLED": "true",
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
        }
    )
    return env


def context_data(spec: FunctionSpec, request_id: str, deadline: float) -> dict[str, Any]:
    return {
        "function_name": spec.name,
        "function_version": "$LATEST",
        "invoked_function_arn": spec.arn,
        "memory_limit_in_mb": spec.memory_mb,
        "aws_request_id": request_id,
        "log_group_name": f"/aws/lambda/{spec.name}",
        "log_stream_name": "local",
        "deadline_ms": int(deadline * 1000),
    }


_EOF = object()


class Worker:
    """One worker process: JSON lines on stdin/stdout, the handler's output on stderr (sent to `log`)."""

    def __init__(self, spec: FunctionSpec, env: Mapping[str, str], log: Log, output: Log | None = None) -> None:
        self.spec = spec
        self._log = log
        self._output = output
        self._replies: queue.Queue[Any] = queue.Queue()
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-B", str(WORKER_SCRIPT), spec.handler, *map(str, spec.python_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            cwd=spec.code_dir if spec.code_dir.is_dir() else None,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            start_new_session=True,
        )
        threading.Thread(target=self._read_replies, daemon=True, name=f"{spec.logical_id}-out").start()
        threading.Thread(target=self._read_logs, daemon=True, name=f"{spec.logical_id}-err").start()

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def _read_replies(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                self._replies.put(json.loads(line))
            except ValueError:
                self._replies.put({"protocol_error": line.strip()})
        self._replies.put(_EOF)

    def _read_logs(self) -> None:
        assert self.process.stderr is not None
        try:
            for line in self.process.stderr:
                self._log(f"[{self.spec.logical_id}] {line.rstrip()}")
                if self._output is not None:
                    self._output(line.rstrip("\r\n"))
        except ValueError:  # the pipe was closed under us (a crashed worker being cleaned up): its log has ended
            return

    def wait_reply(self, timeout: float) -> Any:
        """The next message, `_EOF` if the worker exited, or raises queue.Empty after `timeout` seconds."""
        return self._replies.get(timeout=max(0.0, timeout))

    def send(self, message: Mapping[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def stop(self, grace_s: float = 2.0) -> None:
        """Close stdin (the worker returns from its loop) and kill it if it lingers."""
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
            self.process.wait(timeout=grace_s)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


@dataclass
class Invocation:
    request_id: str
    result: Any = None
    duration_ms: float = 0.0
    cold_start: bool = False
    init_ms: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class FunctionRunner:
    """One function's worker: started on first use, reused while warm, replaced after a crash or timeout.

    Invocations are serialised (a Lambda container handles one request at a time).
    """

    def __init__(self, spec: FunctionSpec, env: Mapping[str, str], log: Log, output: Log | None = None) -> None:
        self.spec = spec
        self.env = dict(env)
        self._log = log
        self.output = output  # receives the function's raw log lines (CloudWatch Logs subscriptions)
        self._lock = threading.Lock()
        self._worker: Worker | None = None
        self._closed = False
        self.cold_starts = 0

    @property
    def worker_pid(self) -> int | None:
        worker = self._worker
        return worker.pid if worker is not None and worker.alive() else None

    def invoke(self, event: Any, *, caller_timeout_s: float | None = None, request_id: str | None = None) -> Invocation:
        """Run the handler once. Raises FunctionError, FunctionTimeout, CallerTimeout or FunctionCrashed.

        `caller_timeout_s` is how long the caller waits in all (queueing, cold start, run); when it is shorter
        than the function's Timeout and runs out first, CallerTimeout is raised instead of FunctionTimeout.
        """
        request_id = request_id or str(uuid.uuid4())
        started = time.monotonic()
        caller_deadline = None if caller_timeout_s is None else started + caller_timeout_s
        if not self._lock.acquire(timeout=-1 if caller_timeout_s is None else caller_timeout_s):
            raise CallerTimeout(f"{self.spec.logical_id} was busy for {caller_timeout_s:.1f} s")
        try:
            if self._closed:
                raise FunctionCrashed(f"{self.spec.logical_id}: the local stack is stopping")
            invocation = Invocation(request_id)
            worker = self._ensure_worker(invocation, caller_deadline)
            return self._run(worker, invocation, event, caller_deadline)
        finally:
            self._lock.release()

    def _ensure_worker(self, invocation: Invocation, caller_deadline: float | None) -> Worker:
        if self._worker is not None and self._worker.alive():
            return self._worker
        if self._worker is not None:
            self._worker.kill()
            self._worker = None
        t0 = time.monotonic()
        worker = Worker(self.spec, self.env, self._log, self.output)
        self.cold_starts += 1
        limit = max(INIT_TIMEOUT_S, float(self.spec.timeout_s))
        deadline = t0 + limit if caller_deadline is None else min(t0 + limit, caller_deadline)
        try:
            message = worker.wait_reply(deadline - time.monotonic())
        except queue.Empty:
            worker.kill()
            if caller_deadline is not None and deadline >= caller_deadline:
                raise CallerTimeout(f"{self.spec.logical_id} was still starting when the caller gave up") from None
            self._log(f"[{self.spec.logical_id}] INIT timed out after {limit:.2f} seconds")
            raise FunctionTimeout(f"{self.spec.logical_id} did not finish its init in {limit:.0f} s") from None
        if message is _EOF or not isinstance(message, dict) or "ready" not in message:
            worker.kill()
            raise FunctionCrashed(
                f"{self.spec.logical_id}: worker exited during init (exit {worker.process.returncode})"
            )
        if not message["ready"]:
            worker.kill()
            raise FunctionError(message.get("error") or {"errorType": "Runtime.Unknown"})
        invocation.cold_start = True
        invocation.init_ms = (time.monotonic() - t0) * 1000
        self._worker = worker
        return worker

    def _run(self, worker: Worker, invocation: Invocation, event: Any, caller_deadline: float | None) -> Invocation:
        spec = self.spec
        start_wall, start = time.time(), time.monotonic()
        function_deadline = start + spec.timeout_s
        deadline = function_deadline if caller_deadline is None else min(function_deadline, caller_deadline)
        rid = invocation.request_id
        self._log(f"[{spec.logical_id}] START RequestId: {rid} Version: $LATEST")
        try:
            worker.send({"id": rid, "event": event, "context": context_data(spec, rid, start_wall + spec.timeout_s)})
            message = worker.wait_reply(deadline - time.monotonic())
        except (OSError, ValueError):
            message = _EOF
        except queue.Empty:
            worker.kill()
            self._worker = None
            if deadline < function_deadline:
                self._log(f"[{spec.logical_id}] END RequestId: {rid} (caller timed out; worker stopped)")
                raise CallerTimeout(f"{spec.logical_id} did not answer before the caller's timeout") from None
            self._log(f"[{spec.logical_id}] {rid} Task timed out after {spec.timeout_s:.2f} seconds")
            raise FunctionTimeout(f"Task timed out after {spec.timeout_s:.2f} seconds") from None
        invocation.duration_ms = (time.monotonic() - start) * 1000
        if message is _EOF or not isinstance(message, dict) or message.get("id") != rid:
            worker.kill()
            self._worker = None
            code = worker.process.returncode
            self._log(f"[{spec.logical_id}] RequestId: {rid} Error: Runtime exited with error: exit status {code}")
            raise FunctionCrashed(f"{spec.logical_id}: worker exited (exit status {code})")
        init = f" Init Duration: {invocation.init_ms:.2f} ms" if invocation.init_ms is not None else ""
        self._log(f"[{spec.logical_id}] END RequestId: {rid}")
        self._log(
            f"[{spec.logical_id}] REPORT RequestId: {rid} Duration: {invocation.duration_ms:.2f} ms "
            f"Memory Size: {spec.memory_mb} MB{init}"
        )
        if "error" in message:
            raise FunctionError(message["error"])
        invocation.result = message.get("result")
        return invocation

    def recycle(self) -> None:
        """Stop the warm worker; the next invocation is a cold start (like a new Lambda container)."""
        with self._lock:
            worker, self._worker = self._worker, None
            if worker is not None:
                worker.stop()

    def stop(self) -> None:
        self._closed = True
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.stop()
