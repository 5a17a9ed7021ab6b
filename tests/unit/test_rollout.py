"""When an alias change reaches running functions: the TTL that applies, and waiting until the API serves it."""

from __future__ import annotations

import io
import urllib.error
from pathlib import Path

import pytest

from sklambda_infra import rollout
from sklambda_infra.rollout import AliasTtl, Api

ROOT = Path(__file__).resolve().parents[2]
API = Api("http://127.0.0.1:3000", "key")
TTL = AliasTtl(60.0, "test")


class FakeTime:
    """A clock that only `sleep` moves."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def answers(*replies):
    """An `ask` that gives each reply in turn (a version, or an exception to raise), repeating the last."""
    queue = list(replies)

    def ask(api: Api, name: str, alias: str) -> str:
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(reply, Exception):
            raise reply
        return reply

    return ask


def http_error(status: int, body: bytes) -> urllib.error.HTTPError:
    return urllib.error.HTTPError("http://api/models/churn", status, "error", {}, io.BytesIO(body))


def test_the_ttl_is_the_running_local_stacks_then_the_templates_default():
    # GIVEN a local stack whose predict function caches aliases for 2 s, and the project's template
    stack = {"functions": {"PredictFunction": {"environment": {"SKLAMBDA_ALIAS_TTL_SECONDS": "2"}}}}
    template = ROOT / "template.yaml"
    # WHEN the TTL is looked up with and without the stack, and with --alias-ttl
    from_stack = rollout.alias_ttl(None, stack, template)
    from_template = rollout.alias_ttl(None, None, template)
    given = rollout.alias_ttl(7, stack, template)
    nothing = rollout.alias_ttl(None, None, None)
    # THEN the stack's value wins over the template's default, and --alias-ttl over both; each says where it is from
    from sklambda_infra.template import load_template

    default = float(load_template(template)["Parameters"]["AliasTtlSeconds"]["Default"])
    assert (from_stack.seconds, from_stack.source) == (2.0, "the running local stack's AliasTtlSeconds")
    assert from_template.seconds == default and "template's default AliasTtlSeconds" in from_template.source
    assert given == AliasTtl(7.0, "--alias-ttl")
    assert nothing.seconds == rollout.function_default_ttl() and "SKLAMBDA_ALIAS_TTL_SECONDS" in nothing.source


def test_waiting_polls_until_the_api_serves_the_new_version():
    # GIVEN an API that serves the old version twice, is unreachable once, then serves the new one
    time = FakeTime()
    ask = answers("3", "3", urllib.error.URLError("refused"), "4")
    # WHEN waiting for production -> 4
    served = rollout.wait_until_served(API, "churn", "production", "4", ttl=TTL, timeout=30, ask=ask,
                                       clock=time.clock, sleep=time.sleep, poll_seconds=1.0)  # fmt: skip
    # THEN it is served after three polls one second apart, checked against the API
    assert served == rollout.Served(True, 3.0, "4")
    assert time.slept == [1.0, 1.0, 1.0]


def test_waiting_gives_up_at_the_timeout_with_the_last_answer():
    # GIVEN an API that keeps serving the old version
    time = FakeTime()
    # WHEN waiting at most 5 s
    served = rollout.wait_until_served(API, "churn", "production", "4", ttl=TTL, timeout=5, ask=answers("3"),
                                       clock=time.clock, sleep=time.sleep, poll_seconds=1.0)  # fmt: skip
    # THEN it gives up within the timeout, saying what the API served last
    assert not served.ok and served.served == "3" and served.seconds <= 5


def test_a_refused_version_ends_the_wait_at_once():
    # GIVEN an API that refuses the new version (503 model_refused: waiting cannot change that)
    time = FakeTime()
    refused = http_error(503, b'{"error": {"code": "model_refused", "message": "failed signature verification"}}')
    # WHEN waiting
    served = rollout.wait_until_served(API, "churn", "production", "4", ttl=TTL, timeout=60, ask=answers(refused),
                                       clock=time.clock, sleep=time.sleep)  # fmt: skip
    # THEN it stops without sleeping and says why
    assert not served.ok and time.slept == []
    assert served.problem == "HTTP 503: failed signature verification"


@pytest.mark.parametrize(("timeout", "ok", "slept"), [(90, True, [60.0]), (10, False, [10.0])])
def test_without_an_api_the_wait_is_the_ttl(timeout, ok, slept):
    # GIVEN no API URL known
    time = FakeTime()
    # WHEN waiting with a timeout longer, then shorter, than the TTL
    served = rollout.wait_until_served(None, "churn", "production", "4", ttl=TTL, timeout=timeout,
                                       clock=time.clock, sleep=time.sleep)  # fmt: skip
    # THEN it sleeps the TTL (or gives up at the timeout), and says the API was not asked
    assert (served.ok, served.checked, time.slept) == (ok, False, slept)


def test_a_canary_is_part_of_what_wait_compares():
    # GIVEN an alias's routing with and without a canary THEN they read differently, so --wait tells them apart
    assert rollout.rollout_state("3") == "3"
    assert rollout.rollout_state("3", "4", 10.0) == "3 + canary 4 at 10 %"
    # AND a wait for a canary ends when the API reports it
    served = rollout.wait_until_served(API, "churn", "production", "3 + canary 4 at 10 %", ttl=TTL, timeout=0,
                                       ask=lambda *_: "3 + canary 4 at 10 %")  # fmt: skip
    assert served.ok
