"""The load benchmark (`make bench`, kind `load`): its report, and a small run of it on the local stack (no timing
asserted: latency and throughput are reported, never checked)."""

from __future__ import annotations

import pytest

from sklambda_infra.bench import load


@pytest.mark.e2e
def test_a_small_load_run_on_the_project_stack_answers_every_prediction():
    # A stack of its own: load.run() is the benchmark's whole run as `make bench` does it (start, publish, clients).
    # GIVEN the project's stack with the churn model published WHEN 10 clients send 100 predictions
    results = load.run(requests=100, clients=10)
    # THEN every request got two predictions, on kept-alive and on new connections alike
    assert results["errors"] == {}
    assert results["ok"] == 100
    assert results["latency_ms"]["keep-alive"]["n"] == 50 and results["latency_ms"]["new connection"]["n"] == 50
