"""When an alias change reaches running functions, and waiting for it (`sklambda promote|rollback --wait`).

Each predict container caches what an alias points at for the alias TTL (template parameter AliasTtlSeconds, the
function's SKLAMBDA_ALIAS_TTL_SECONDS; sklambda.serving.server.ModelServer), so a promote is served by every warm
container at the latest one TTL after the alias was written: S3 reads after a write see it (S3's strong
read-after-write consistency), and an entry cached before the write expires within one TTL.

A canary (start, ramp, drop) leaves the stable version as it was: `served_rollout` reads what the API says of the
alias's canary too (GET /models/{name}'s `canary`), so `--wait` waits for the whole record to be served.

The TTL is the one given (--alias-ttl), else the running local stack's (its PredictFunction environment), else the
template's default for AliasTtlSeconds, else the function's own default.
"""

from __future__ import annotations

import functools
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklambda import config
from sklambda.connection import ENV_API_KEY, ENV_API_URL

TTL_PARAMETER = "AliasTtlSeconds"
# Where the API is, as `sklambda local env` exports it (a deployed stack: the ApiUrl output and its key).
API_URL_ENV = ENV_API_URL  # sklambda.connection names the variables `sklambda local env` exports
API_KEY_ENV = ENV_API_KEY
WAIT_MARGIN_SECONDS = 60.0  # --wait's default timeout is the alias TTL plus this (cold starts, a slow first load)
POLL_SECONDS = 1.0  # between two GET /models/{name} while waiting
REQUEST_TIMEOUT_SECONDS = 10.0  # one GET; a cold start loading the model takes a few seconds


@dataclass(frozen=True)
class AliasTtl:
    """seconds: how long a container may serve the previous version; source: where that number comes from."""

    seconds: float
    source: str


@dataclass(frozen=True)
class Api:
    """The prediction API to poll: its base URL (the stage's, ending before /models) and its API key (None: IAM
    mode or no key known; the request is then sent without one)."""

    url: str
    key: str | None


@dataclass(frozen=True)
class Served:
    """The outcome of a wait: `served` the version the API answered with last (None: no answer), `ok` whether it is
    the one expected, `seconds` waited, `checked` whether the API was asked (False: the TTL was slept instead),
    `problem` the last error or refusal when not ok."""

    ok: bool
    seconds: float
    served: str | None = None
    checked: bool = True
    problem: str | None = None


def function_default_ttl() -> float:
    """The predict function's own default for SKLAMBDA_ALIAS_TTL_SECONDS (sklambda.config, stated there once)."""
    import dataclasses

    from sklambda.config import ModelServerSettings

    return float(next(f.default for f in dataclasses.fields(ModelServerSettings) if f.name == "alias_ttl_seconds"))


def alias_ttl(given: float | None, stack: Mapping[str, Any] | None, template: Path | None) -> AliasTtl:
    """The alias TTL that applies (see the module docstring). `stack`: the running local stack's details, when the
    command talks to it; `template`: the project's template.yaml (its parameter default), when there is one."""
    if given is not None:
        return AliasTtl(float(given), "--alias-ttl")
    for function in (stack or {}).get("functions", {}).values():
        value = function.get("environment", {}).get(config.ALIAS_TTL_SECONDS)
        if value not in (None, ""):
            return AliasTtl(float(value), f"the running local stack's {TTL_PARAMETER}")
    default = _template_default(template)
    if default is not None:
        return AliasTtl(default, f"the template's default {TTL_PARAMETER}; a deployed stack may set another")
    return AliasTtl(function_default_ttl(), f"the function's default for {config.ALIAS_TTL_SECONDS}")


def _template_default(template: Path | None) -> float | None:
    if template is None or not template.is_file():
        return None
    return _parameter_default(str(template), template.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _parameter_default(path: str, mtime_ns: int) -> float | None:
    """The template's AliasTtlSeconds default, parsed once per file version (a parse takes ~0.4 s)."""
    try:
        from sklambda_infra.template import load_template

        value = load_template(Path(path)).get("Parameters", {}).get(TTL_PARAMETER, {}).get("Default")
        return float(value) if value is not None else None
    except Exception:  # PyYAML absent (no dev extra) or an unreadable template: fall back to the function's default
        return None


def _model_info(api: Api, name: str, alias: str) -> tuple[str, dict]:
    """(`model.version`, the whole body) of `GET /models/{name}?alias=...`."""
    query = urllib.parse.urlencode({"alias": alias})
    url = f"{api.url.rstrip('/')}/models/{urllib.parse.quote(name)}?{query}"
    request = urllib.request.Request(url, headers={"x-api-key": api.key} if api.key else {})
    with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
        body = json.loads(response.read() or b"{}")
    version = (body.get("model") or {}).get("version") if isinstance(body, dict) else None
    if version is None:
        raise ValueError(f"the API's answer has no model version: {str(body)[:200]}")
    return str(version), body


def served_version(api: Api, name: str, alias: str) -> str:
    """The version `GET /models/{name}?alias=...` answers with (the API's `model.version`).

    Raises urllib.error.HTTPError for an error status, urllib.error.URLError / OSError when the API cannot be
    reached, ValueError when the answer has no version.
    """
    return _model_info(api, name, alias)[0]


def rollout_state(version: str, canary_version: str | None = None, weight: float | None = None) -> str:
    """How an alias's routing reads in messages and is compared while waiting: "3", or "3 + canary 4 at 10 %"."""
    return version if canary_version is None else f"{version} + canary {canary_version} at {weight:g} %"


def served_rollout(api: Api, name: str, alias: str) -> str:
    """What `GET /models/{name}?alias=...` answers of the alias: rollout_state of its `model.version` and its `canary`
    (absent without one). Raises as served_version."""
    version, body = _model_info(api, name, alias)
    canary = body.get("canary") or {}
    return rollout_state(version, canary.get("version"), canary.get("weight"))


def _error_text(error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        try:
            body = json.loads(error.read() or b"{}")
            message = (body.get("error") or {}).get("message") if isinstance(body.get("error"), dict) else None
            message = message or body.get("message")
        except (ValueError, AttributeError, OSError):
            message = None
        return f"HTTP {error.code}{f': {message}' if message else ''}"
    if isinstance(error, urllib.error.URLError):
        return f"cannot reach the API ({error.reason})"
    return str(error)


def wait_until_served(
    api: Api | None,
    name: str,
    alias: str,
    version: str,
    *,
    ttl: AliasTtl,
    timeout: float,
    ask: Callable[[Api, str, str], str] = served_version,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    poll_seconds: float = POLL_SECONDS,
) -> Served:
    """Wait until `alias` of `name` is served as `version`, at most `timeout` seconds.

    With an `api`: ask it (GET /models/{name}?alias=) every `poll_seconds` until it answers with `version`. A 503
    (the function refuses the new version: signature, sha256, scikit-learn version) ends the wait at once, as waiting
    cannot change it. Without one: sleep the TTL, after which every container has re-read the alias; `checked` is
    then False. Never raises for the API's errors: they are in the result's `problem`.
    """
    start = clock()
    if api is None:
        if ttl.seconds > timeout:
            sleep(timeout)
            return Served(False, clock() - start, checked=False, problem=f"the timeout ({timeout:g} s) is shorter "
                          f"than the alias TTL ({ttl.seconds:g} s)")  # fmt: skip
        sleep(ttl.seconds)
        return Served(True, clock() - start, checked=False)
    served, problem = None, None
    while True:
        try:
            served, problem = ask(api, name, alias), None
        except urllib.error.HTTPError as e:
            problem = _error_text(e)
            if e.code == 503:
                return Served(False, clock() - start, served, problem=problem)
        except (OSError, ValueError) as e:  # URLError is an OSError
            problem = _error_text(e)
        if served == version and problem is None:
            return Served(True, clock() - start, served)
        if clock() - start + poll_seconds > timeout:
            return Served(False, clock() - start, served, problem=problem)
        sleep(poll_seconds)
