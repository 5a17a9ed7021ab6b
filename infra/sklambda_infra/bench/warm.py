"""Warm single-row latency: the predict handler against predict_proba called directly, in one process.

moto runs in-process (`mock_aws`), the models are published and signed as in production, the handler module is
imported fresh with the function's environment, the first call loads the model, and then handler calls and raw
`predict_proba` calls alternate in blocks (ABBA) so that drift and noise hit both arms alike.
"""

from __future__ import annotations

import cProfile
import gc
import json
import pstats
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sklambda_infra.bench import common
from sklambda_infra.bench.stats import Spread, percentile, ratio, verdict

# Targets: handler p50 / raw p50.
TARGETS = {common.LR: 1.5, common.FOREST: 1.1}
LABELS = {common.LR: "logistic regression pipeline", common.FOREST: f"random forest ({common.FOREST_TREES} trees)"}


@dataclass(frozen=True)
class Plan:
    rounds: int
    block: int
    warmup: int
    profile_calls: int

    @property
    def calls(self) -> int:
        return self.rounds * self.block


FULL = Plan(rounds=40, block=30, warmup=50, profile_calls=300)
QUICK = Plan(rounds=8, block=25, warmup=20, profile_calls=100)


@dataclass
class Latency:
    p50_ms: float
    p99_ms: float
    mean_ms: float
    n: int

    @classmethod
    def of(cls, samples_ns: list[int]) -> Latency:
        ms = [s / 1e6 for s in samples_ns]
        return cls(percentile(ms, 50), percentile(ms, 99), sum(ms) / len(ms), len(ms))


@dataclass
class WarmResult:
    model: str
    label: str
    handler: Latency
    raw: Latency
    ratio_p50: float
    ratio_p99: float
    block_ratios: Spread
    target: float
    verdict: str
    plan: dict
    stages: list[dict] = field(default_factory=list)
    hotspots: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def arm_orders(arms: Sequence[str], rounds: int) -> list[tuple[str, ...]]:
    """The arms' order per round: as given on even rounds, reversed on odd ones (ABC, CBA, ...), so that no arm
    always runs first or last (warm caches, turbo, drift). With two arms this is ABBA (stats.interleaved_order)."""
    return [tuple(arms) if r % 2 == 0 else tuple(reversed(arms)) for r in range(rounds)]


def measure_arms(
    calls: Mapping[str, Callable[[], Any]], baseline: str, plan: Plan
) -> tuple[dict[str, list[int]], dict[str, list[float]]]:
    """Blocks of `plan.block` calls of each arm in `arm_orders`; returns (ns samples per arm, per-round p50 ratio of
    each other arm to `baseline`)."""
    samples: dict[str, list[int]] = {arm: [] for arm in calls}
    per_round: dict[str, list[float]] = {arm: [] for arm in calls if arm != baseline}
    clock = time.perf_counter_ns
    for order in arm_orders(list(calls), plan.rounds):
        this_round: dict[str, list[int]] = {}
        for arm in order:
            fn, taken = calls[arm], []
            for _ in range(plan.block):
                t0 = clock()
                fn()
                taken.append(clock() - t0)
            this_round[arm] = taken
            samples[arm].extend(taken)
        base = percentile(this_round[baseline], 50)
        for arm in per_round:
            per_round[arm].append(ratio(percentile(this_round[arm], 50), base))
    return samples, per_round


def measure(subject: Callable[[], Any], baseline: Callable[[], Any], plan: Plan) -> tuple[list, list, list]:
    """Alternate blocks of the two calls (ABBA); returns (subject ns, baseline ns, per-round p50 ratios)."""
    samples, per_round = measure_arms({"subject": subject, "baseline": baseline}, "baseline", plan)
    return samples["subject"], samples["baseline"], per_round["subject"]


def run(plan: Plan = FULL, models: common.Models | None = None) -> list[WarmResult]:
    from moto import mock_aws

    from sklambda import aws

    models = models or common.fit_models()
    with common.environ(common.FAKE_AWS, remove=("AWS_ENDPOINT_URL", "AWS_PROFILE")), mock_aws():
        aws.reset_clients()
        key = common.make_bucket_and_key()
        common.publish_models(models, common.BUCKET, key)
        # The scikit-learn path (the compiled path's warm p50: section 16, bench/compiled.py).
        with common.environ(common.function_env(common.BUCKET, key, common.SKLEARN_PATH)):
            app = common.import_predict_app()
            try:
                return [_bench_model(app, name, plan) for name in models.fitted]
            finally:
                app.metrics.clear_metrics()
                aws.reset_clients()


def _bench_model(app: Any, name: str, plan: Plan) -> WarmResult:
    import numpy as np
    import pandas as pd

    row = common.one_row()
    event, context = common.predict_event(name, [row]), common.lambda_context()
    with common.stdout_sunk():
        first = app.handler(event, context)  # loads and verifies the model
    if first["statusCode"] != 200:
        raise RuntimeError(f"the handler answered {first['statusCode']} for {name}: {first.get('body')}")
    # The raw arm calls the very estimator the handler loaded, on a one-row DataFrame built once.
    estimator = app.server().get(name, alias="production").scorer.estimator
    frame = pd.DataFrame([row])
    expected = estimator.predict_proba(frame)[0]
    got = json.loads(first["body"])["probabilities"][0]
    if not np.allclose([got[str(c)] for c in estimator.classes_], expected, rtol=0, atol=1e-12):
        raise RuntimeError(f"the handler and predict_proba disagree for {name}: {got} vs {expected}")

    def handler_call() -> None:
        app.handler(event, context)

    def raw_call() -> None:
        estimator.predict_proba(frame)

    common.log(f"warm: {name}: {plan.rounds} rounds x {plan.block} calls per arm")
    with common.stdout_sunk():
        for _ in range(plan.warmup):
            handler_call()
            raw_call()
        gc.collect()
        handler_ns, raw_ns, block_ratios = measure(handler_call, raw_call, plan)
        status = app.handler(event, context)["statusCode"]
        stages, hotspots = profile(handler_call, raw_call, plan.profile_calls)
    if status != 200:
        raise RuntimeError(f"the handler stopped answering 200 for {name}: {status}")
    handler, raw = Latency.of(handler_ns), Latency.of(raw_ns)
    r50 = ratio(handler.p50_ms, raw.p50_ms)
    result = WarmResult(
        model=name,
        label=LABELS.get(name, name),
        handler=handler,
        raw=raw,
        ratio_p50=r50,
        ratio_p99=ratio(handler.p99_ms, raw.p99_ms),
        block_ratios=Spread.of(block_ratios),
        target=TARGETS[name],
        verdict=verdict(r50, TARGETS[name]),
        plan=asdict(plan),
        stages=stages,
        hotspots=hotspots,
    )
    common.log(
        f"warm: {name}: handler p50 {handler.p50_ms:.3f} ms, raw p50 {raw.p50_ms:.3f} ms, "
        f"ratio {r50:.2f}x (target {result.target}x) {result.verdict}"
    )
    return result


# Where a handler call spends its time, by the functions that make up its stages: (label, file suffix, function).
# The first is the outermost decorator (Logger.inject_lambda_context), so it is the whole handler call.
STAGES = (
    ("whole handler call (powertools logger, tracer, metrics decorators included)", "logging/logger.py", "decorate"),
    ("  metrics flush: EMF JSON printed to stdout", "cloudwatch_emf/cloudwatch.py", "flush_metrics"),
    (
        "  APIGatewayRestResolver.resolve: routing, OpenAPI validation, response",
        "event_handler/api_gateway.py",
        "resolve",
    ),
    ("    route function predict()", "functions/predict/app.py", "predict"),
    ("      parse_body: size check, json.loads, pydantic", "sklambda/serving/contracts.py", "parse_body"),
    ("      InputSchema.validate: per-field checks and the DataFrame", "sklambda/registry/schema.py", "validate"),
    ("        InputSchema.frame: the DataFrame", "sklambda/registry/schema.py", "frame"),
    ("      Pipeline.predict_proba: the model", "sklearn/pipeline.py", "predict_proba"),
    ("      PredictResponse.from_scored", "sklambda/serving/contracts.py", "from_scored"),
)
PREDICT = STAGES[7][0]
HOTSPOTS = 15


def _profiled(call: Callable[[], Any], calls: int) -> dict:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        call()
    profiler.disable()
    return pstats.Stats(profiler).stats


def profile(call: Callable[[], Any], baseline: Callable[[], Any], calls: int) -> tuple[list[dict], list[dict]]:
    """cProfile `calls` handler calls: cumulative time of the stages above, and what the handler adds.

    The hotspots are a differential profile: each function's own time in the handler profile minus its own time
    in a profile of as many raw predict_proba calls, so the model's internals cancel out and what is left is the
    handler's own cost. cProfile inflates Python-heavy code more than C-heavy code: read proportions, not latencies.
    """
    stats = _profiled(call, calls)
    raw = _profiled(baseline, calls)
    total = common.cumulative_seconds(stats, STAGES[0][1], STAGES[0][2]) or 1e-12
    stages = []
    for label, path, func in STAGES:
        ct = common.cumulative_seconds(stats, path, func)
        if ct is not None:
            stages.append({"stage": label, "ms_per_call": ct / calls * 1e3, "share": ct / total})
    model = next((s for s in stages if s["stage"] == PREDICT), None)
    if model is not None:
        ms = total / calls * 1e3 - model["ms_per_call"]
        stages.append(
            {
                "stage": "everything but the model (the handler's own cost)",
                "ms_per_call": ms,
                "share": 1 - model["share"],
            }
        )
    added = {key: v[2] - raw.get(key, (0, 0, 0.0))[2] for key, v in stats.items()}
    top = sorted(added.items(), key=lambda kv: -kv[1])[:HOTSPOTS]
    hotspots = [
        {
            "function": f"{_short_path(file)}:{line}({func})",
            "own_ms_per_call": tt / calls * 1e3,
            "share": tt / total,
            "calls_per_request": (stats[(file, line, func)][1] - raw.get((file, line, func), (0, 0))[1]) / calls,
        }
        for (file, line, func), tt in top
        if tt > 0
    ]
    return stages, hotspots


def _short_path(file: str) -> str:
    for marker in ("site-packages/", "layers/sklambda/python/", "/work/main/", "lib/python3"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file


def _frame_as_dict_of_series(schema: Any, rows: list[dict]) -> Any:
    """InputSchema.frame as it was before the benchmark (kept here only to measure the optimisation against)."""
    import numpy as np
    import pandas as pd

    columns = {
        f.name: pd.Series([r[f.name] if r[f.name] is not None else np.nan for r in rows], dtype=f.dtype)
        if f.type != "category"
        else pd.Series([r[f.name] for r in rows], dtype=object)
        for f in schema.features
    }
    return pd.DataFrame(columns)


@dataclass
class FrameResult:
    rows: int
    current: Latency
    previous: Latency
    ratio_p50: float

    def to_dict(self) -> dict:
        return asdict(self)


def frame_comparison(plan: Plan = FULL, rows: int = 1) -> FrameResult:
    """One-request DataFrame build: InputSchema.frame now vs the dict-of-Series build it replaced, interleaved."""
    import pandas as pd

    from sklambda.registry.schema import infer_schema
    from sklambda_infra import sample

    X, _ = sample.churn_data(500)
    schema = infer_schema(X, pii=sample.PII)
    batch = [common.one_row()] * rows
    pd.testing.assert_frame_equal(schema.frame(batch), _frame_as_dict_of_series(schema, batch))
    current, previous, _ = measure(lambda: schema.frame(batch), lambda: _frame_as_dict_of_series(schema, batch), plan)
    now, before = Latency.of(current), Latency.of(previous)
    return FrameResult(rows, now, before, ratio(now.p50_ms, before.p50_ms))
