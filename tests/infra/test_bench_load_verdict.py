"""The load benchmark's verdict on recorded runs, with no stack (the real run is in tests/e2e/test_bench_load.py)."""

from __future__ import annotations

from sklambda_infra.bench import load, report


def _results(errors: dict[str, int], ok: int) -> dict:
    stats = {"n": ok, "p50": 12.5, "p99": 80.25, "max": 120.0}
    return {
        "requests": 5000,
        "clients": 50,
        "wall_s": 25.0,
        "ok": ok,
        "errors": errors,
        "latency_ms": {"all": stats, "keep-alive": stats, "new connection": stats},
    }


def _machine() -> dict:
    return {
        "date": "2026-11-30T00:00:00+00:00",
        "cpu": "Test CPU",
        "cores": 2,
        "usable_cores": 2,
        "memory_gib": 4.0,
        "os": "Linux",
        "python": "CPython 3.11.7",
        "libraries": {},
        "thread_env": {},
        "blas": [],
        "load_average_start": "0.1 0.1 0.1",
    }


def test_a_load_run_without_errors_passes_and_reports_latency_and_throughput():
    # GIVEN a run where every request was answered
    results = _results({}, 5000)
    # THEN its summary passes and shows p50 / p99 and requests per second
    errors_row, latency_row = load.summary_rows(results)
    assert errors_row[1:] == ["0", "0", "PASS"]
    assert latency_row[1] == "12.5 / 80.2 ms, 200 req/s"
    # AND its section is numbered in BENCHMARKS.md, after the parity gate
    rendered = report.render({"machine": _machine(), "elapsed_s": 30, "load": results})
    assert "## 9. The local API under load" in rendered
    assert "| 5000 | 5000 | 0 | 25.0 s | 200 req/s |" in rendered


def test_a_load_run_with_a_reset_or_a_lost_request_is_a_miss_that_names_the_errors():
    # GIVEN a run where one connection was reset and another request was not sent
    results = _results({"ConnectionResetError": 1, "not sent: deadline passed": 1}, 4998)
    # THEN it misses and the report lists the errors by kind
    assert load.summary_rows(results)[0][1:] == ["2", "0", "MISS"]
    assert "Errors: ConnectionResetError x1, not sent: deadline passed x1" in load.markdown(results)
    # AND answered requests alone are not enough: every request must have been answered
    assert load.summary_rows(_results({}, 4999))[0][3] == "MISS"
