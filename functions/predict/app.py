"""Prediction API: routing, request parsing at the edge, metrics, and mapping domain errors to statuses.

Domain work (validation, verified loading, scoring) lives in the `sklambda` layer package.
"""

from sklambda import coldstart

# Before the imports below: in Lambda the cold start (these imports, and the first request, which loads scikit-learn
# with the model) runs without the cyclic garbage collector (sklambda.coldstart says why and what it costs).
coldstart.pause()

import time
import warnings
from typing import Any, Self

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext

import sklambda
from sklambda import tracing
from sklambda.config import SERVING_COMPILED, PredictSettings
from sklambda.errors import InvalidInput, ModelNotFound, ModelRefused, PayloadTooLarge, SklambdaError, http_status
from sklambda.monitoring.capture import Capturer
from sklambda.registry.signing import CardVerifier
from sklambda.registry.store import AliasRecord, Registry
from sklambda.runtime_env import find_manifest
from sklambda.serving import data_quality, ids, oip, routing
from sklambda.serving.contracts import (
    InferRequest,
    ModelSelector,
    PredictRequest,
    PredictResponse,
    body_bytes,
    check_row_count,
    decode_body,
    parse_body,
    parse_selector,
)
from sklambda.serving.scoring import Scored
from sklambda.serving.server import LoadedModel, ModelServer, runtime_sklearn_version

logger = Logger()
tracer = tracing.tracer()
metrics = Metrics()
# Query strings and bodies are parsed by sklambda.serving.contracts (pydantic), not by the resolver's OpenAPI
# validation: the size limit must be checked before parsing, errors must name rows and fields, and the
# resolver's validation layer cost ~0.3 ms per warm request.
app = APIGatewayRestResolver()
# Routes such as /health emit no metric on purpose; powertools would warn on every such request.
warnings.filterwarnings("ignore", message="No application metrics to publish")

# Read at import so a missing variable fails the cold start loudly instead of the first request.
settings = PredictSettings.from_env()
capturer = Capturer(settings.capture)
_server: ModelServer | None = None


class _MetricEvents:
    def model_loaded(self, name: str, version: str, seconds: float) -> None:
        metrics.add_metric(name="ModelLoadTime", unit=MetricUnit.Milliseconds, value=seconds * 1000)
        logger.info("model loaded", extra={"model": name, "version": version, "seconds": round(seconds, 3)})

    def model_refused(self, name: str, version: str, reason: str) -> None:
        _count("ModelRefused", model=name, reason=reason)
        logger.error("model refused", extra={"model": name, "version": version, "reason": reason})


def _count(metric_name: str, value: int = 1, **dimensions: str) -> None:
    """A metric with its own dimensions (reason), emitted at once rather than with the request's batch."""
    with single_metric(name=metric_name, unit=MetricUnit.Count, value=value, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="service", value=metrics.service or "sklambda")
        for key, value in dimensions.items():
            metric.add_dimension(name=key, value=value)


def server() -> ModelServer:
    """One per container, created on first use (so tests can start moto before it)."""
    global _server
    if _server is None:
        _server = ModelServer(
            Registry(settings.model_bucket),
            CardVerifier(settings.signing_key_id),
            alias_ttl_seconds=settings.alias_ttl_seconds,
            cache_size=settings.model_cache_size,
            events=_MetricEvents(),
            compiled=settings.serving_runtime == SERVING_COMPILED,
        )
    return _server


def _pick(version: str | None = None, selector: ModelSelector | None = None) -> dict[str, str | None]:
    """Which model version a request means: a path version, else ?version=, else ?alias=, else the default."""
    selector = selector or parse_selector(app.current_event.query_string_parameters)
    return {"alias": selector.alias or settings.default_alias, "version": version or selector.version}


def _body() -> str | None:
    event = app.current_event
    return decode_body(event.body, is_base64=event.is_base64_encoded)


def _tag(name: str, version: str | None) -> None:
    """The request's metric dimensions and log keys; `version` None when rows of the request were answered by several
    versions (each version's figures are then emitted with their own dimensions: _version_metric)."""
    metrics.add_dimension(name="model", value=name)
    if version is not None:
        metrics.add_dimension(name="version", value=version)
    logger.append_keys(model=name, model_version=version)


def _version_metric(metric_name: str, unit: MetricUnit, value: float, name: str, version: str) -> None:
    """A metric of one version of a request whose rows several versions answered (the request's own dimension set
    can name only one version)."""
    with single_metric(name=metric_name, unit=unit, value=value, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="service", value=metrics.service or "sklambda")
        metric.add_dimension(name="model", value=name)
        metric.add_dimension(name="version", value=version)


def _check_explain(rows: int, explain: bool) -> None:
    if explain and rows > settings.max_explain_rows:
        raise PayloadTooLarge(
            f"explain=true is limited to {settings.max_explain_rows} rows per request, got {rows}: "
            "split the request or score without explanations"
        )


def _score(loaded: LoadedModel, rows: list[Any], *, explain: bool = False, split: bool = False) -> tuple[Scored, float]:
    """Score `rows` with one version, with its metrics: tagged on the request, or, when `split` (the request's rows
    go to several versions), as metrics of their own naming the version. Returns the Scored and the scoring time in
    ms (the capture records' latency_ms)."""
    check_row_count(len(rows), settings.max_rows)
    _check_explain(len(rows), explain)
    name, version = loaded.card.name, loaded.card.version
    if not split:
        _tag(name, version)
    started = time.perf_counter()
    scored = loaded.scorer.score(rows, explain=explain)
    elapsed_ms = (time.perf_counter() - started) * 1e3
    latency = "ExplainLatency" if explain else "PredictLatency"
    if split:
        _version_metric(latency, MetricUnit.Milliseconds, elapsed_ms, name, version)
        _version_metric("Predictions", MetricUnit.Count, len(rows), name, version)
    else:
        metrics.add_metric(name=latency, unit=MetricUnit.Milliseconds, value=elapsed_ms)
        metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=len(rows))
    if scored.fallback:  # the compiled evaluator failed on these rows and scikit-learn answered (Scored.fallback)
        _count("CompiledFallbacks", model=name, version=version)
        logger.warning("compiled evaluator failed, scikit-learn answered", extra={"reason": scored.fallback[:500]})
    if scored.warnings:
        for code, n in data_quality.counts(scored.warnings).items():
            _count("DataQualityWarnings", n, model=scored.model_name, check=code)
    return scored, elapsed_ms


def _capture(
    loaded: LoadedModel,
    rows: list[Any],
    scored: Scored,
    inference_ids: list[str],
    *,
    latency_ms: float,
    alias: str | None,
    row_numbers: list[int] | None = None,
    sample: bool = True,
) -> None:
    """Write the scored rows (pii pseudonymized) as capture lines to the log; a failure is counted, never raised.

    Called last, once the successful answer is fully built: a request answered with an error writes an error record
    instead (_Failure). `sample=False`: the request was drawn already (its rows answered by several versions).
    """
    if not capturer.enabled:
        return
    schema = loaded.card.input_schema
    outcome = capturer.capture(
        model=scored.model_name,
        version=scored.model_version,
        request_id=app.current_event.request_context.request_id,
        rows=rows,
        predictions=scored.predictions,
        probabilities=scored.probabilities,
        feature_names=schema.names,
        pii=schema.pii_features,
        inference_ids=inference_ids,
        row_numbers=row_numbers,
        sample=sample,
        latency_ms=round(latency_ms, 3),
        alias=alias,
    )
    _count_capture(outcome)


def _count_capture(outcome: Any) -> None:
    if outcome.sent:
        metrics.add_metric(name="CapturedRecords", unit=MetricUnit.Count, value=outcome.sent)
    if outcome.failed:
        metrics.add_metric(name="CaptureFailures", unit=MetricUnit.Count, value=outcome.failed)
        logger.warning("capture failed", extra={"records": outcome.failed, "errors": outcome.errors[:3]})


class _Failure:
    """Around the work one resolved version does for a request: an exception leaving it writes one error record
    (sklambda.monitoring.capture.ErrorRecord: status, code, rows) naming that version, then propagates to the
    exception handlers. The rollout check compares error rates per version with them."""

    __slots__ = ("alias", "name", "rows", "version")

    def __init__(self, name: str, version: str, alias: str | None, rows: int) -> None:
        self.name, self.version, self.alias, self.rows = name, version, alias, rows

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> bool:
        # ModelNotFound: an explicit version that does not exist was never a version to count an error against.
        if isinstance(error, Exception) and not isinstance(error, ModelNotFound):
            self.record(error)
        return False

    def record(self, error: Exception) -> None:
        """Write the error record of `error` (never raises)."""
        if not capturer.enabled:
            return
        status, code = (http_status(error), error.code) if isinstance(error, SklambdaError) else (500, "internal")
        outcome = capturer.capture_error(
            model=self.name,
            version=self.version,
            request_id=app.current_event.request_context.request_id,
            status=status,
            code=code,
            rows=self.rows,
            alias=self.alias,
        )
        _count_capture(outcome)


@app.post("/models/<name>/predict")
@tracer.capture_method
def predict(name: str) -> dict:
    body = parse_body(_body(), PredictRequest, max_bytes=settings.max_body_bytes)
    rows = body.instances
    check_row_count(len(rows), settings.max_rows)
    selector = parse_selector(app.current_event.query_string_parameters)
    _check_explain(len(rows), selector.explain)
    inference_ids = ids.request_ids(
        len(rows),
        row_ids=body.inference_ids,
        request_id=body.inference_id,
        generated_prefix=app.current_event.request_context.request_id,
    )
    if selector.version is not None:  # an explicit version bypasses the alias and its canary
        alias, version = None, server().registry.resolve(name, version=selector.version)
    else:
        alias = selector.alias or settings.default_alias
        record = server().alias_record(name, alias)
        if record.canary is not None:
            return _predict_routed(record, rows, inference_ids, selector.explain)
        version = record.version
    return _predict_with(name, version, alias, rows, inference_ids, selector.explain)


def _predict_with(
    name: str,
    version: str,
    alias: str | None,
    rows: list[Any],
    inference_ids: list[str],
    explain: bool,
    model_versions: list[str] | None = None,
) -> dict:
    """Every row scored by one version; `model_versions` (one per row) only when the alias has a canary."""
    with _Failure(name, version, alias, len(rows)):
        loaded = server().load(name, version)
        scored, latency_ms = _score(loaded, rows, explain=explain)
    answer = _without_absent(PredictResponse.from_scored(scored, inference_ids, model_versions).model_dump())
    _capture(loaded, rows, scored, inference_ids, latency_ms=latency_ms, alias=alias)
    return answer


def _without_absent(answer: dict) -> dict:
    """The answer without the optional fields the model, the request or the alias do not have."""
    for key in ("model_versions", "decisions", "decision_threshold", "decision_thresholds", "explanations"):
        if answer[key] is None:
            del answer[key]
    return answer


def _predict_routed(record: AliasRecord, rows: list[Any], inference_ids: list[str], explain: bool) -> dict:
    """A predict request on an alias with a canary: each row routed by its caller key (sklambda.serving.routing), each
    version's rows scored by it, the answers merged in row order and each version's rows captured with it. Rows one
    version refuses are reported with those of the other, numbered in the request."""
    name, alias = record.name, record.alias
    versions = routing.route_rows(record, rows, inference_ids)
    if not versions or versions.count(versions[0]) == len(versions):  # one version answers every row (one row: always)
        version = versions[0] if versions else record.version  # no rows: the stable version's validation refuses them
        return _predict_with(name, version, alias, rows, inference_ids, explain, model_versions=versions)
    groups = routing.group_rows(versions)
    _tag(name, None)
    parts, refused, done = [], [], []
    for group in groups:
        failure = _Failure(name, group.version, alias, len(group.rows))
        with failure:
            loaded = server().load(name, group.version)
            group_rows = [rows[i] for i in group.rows]
            try:
                scored, latency_ms = _score(loaded, group_rows, explain=explain, split=True)
            except InvalidInput as e:  # the other version's rows are still checked, to name every problem at once
                failure.record(e)
                refused.append((e, group))
                continue
        parts.append((group, scored))
        done.append((loaded, group_rows, scored, latency_ms, group))
    if refused:
        raise routing.in_request(refused)
    answer = _without_absent(
        PredictResponse.from_routed(routing.merge(name, len(rows), parts), inference_ids).model_dump()
    )
    if capturer.enabled and capturer.sampled():  # one draw for the request, as without a canary
        for loaded, group_rows, scored, latency_ms, group in done:
            ids_of = [inference_ids[i] for i in group.rows]
            _capture(loaded, group_rows, scored, ids_of, latency_ms=latency_ms, alias=alias, row_numbers=group.rows,
                     sample=False)  # fmt: skip
    return answer


@app.get("/models/<name>")
def model_info(name: str) -> dict:
    """The public card of the version the predict route would serve (an alias's stable version), verified and loaded
    exactly as it does (a card that fails is the same 503 model_refused), with what was checked and what the loaded
    model can give; and the alias's canary as this container routes it, while there is one (`sklambda promote --wait`
    reads it)."""
    picked = _pick()
    record = None if picked["version"] else server().alias_record(name, picked["alias"])
    loaded = server().get(name, **picked)
    scorer = loaded.scorer
    model = {
        **loaded.card.public_dict(),
        "signature": server().verifier.passed().to_dict(),
        "capabilities": {
            "outputs": scorer.outputs,
            "runtime": scorer.runtime,
            "decisions": scorer.decision_rule is not None,
            "explanations": scorer.can_explain,
        },
    }
    registry = server().registry
    info = {"model": model, "aliases": registry.list_aliases(name), "versions": registry.list_versions(name)}
    if record is not None and record.canary is not None:  # as this container routes it (its alias TTL)
        canary = record.canary
        info["canary"] = {"version": canary.version, "weight": canary.weight, "key": canary.key}
    return info


_runtime: dict | None = None
_runtime_read = False


def _runtime_info() -> dict | None:
    """The package set of the layer this container runs on (its sklambda-runtime.json), read on first use; None when
    there is no manifest on sys.path (a developer's venv)."""
    global _runtime, _runtime_read
    if not _runtime_read:
        manifest = find_manifest()
        _runtime = None
        if manifest is not None:
            _runtime = {
                "fingerprint": manifest.fingerprint,
                "python": manifest.python,
                "platform": manifest.platform,
                "packages": dict(sorted(manifest.packages.items())),
            }
        _runtime_read = True
    return _runtime


@app.get("/health")
def health() -> dict:
    return {
        "status": "ok",
        "sklambda": sklambda.__version__,
        "scikit_learn": runtime_sklearn_version(),
        "runtime": _runtime_info(),
    }


# --- OpenAPI description -----------------------------------------------------------------------------------------
_documents: Any = None  # sklambda.serving.openapi.Documents, made on first use


def _openapi() -> Any:
    """The container's OpenAPI documents (sklambda.serving.openapi.Documents), made on first use: importing the module
    costs ~90 ms that a cold start need not pay."""
    global _documents
    if _documents is None:
        from sklambda.serving import openapi

        limits = openapi.Limits(settings.max_rows, settings.max_explain_rows, settings.max_body_bytes)
        _documents = openapi.Documents(limits, keep=settings.model_cache_size)
    return _documents


def _served(doc: dict) -> dict:
    """`doc` with this API's URL and the caller's way in. The URL is the one the caller used up to the route (its
    stage included: requestContext.path less the resource's path). The security is what the request came with: an API
    key (AuthMode API_KEY) or a SigV4 signature (AuthMode IAM)."""
    event = app.current_event
    context = event.request_context
    prefix = context.path.removesuffix(event.path) if context.path else f"/{context.stage}"
    scheme = event.headers.get("X-Forwarded-Proto") or "https"  # API Gateway sets it; the local gateway too
    identity = context.identity
    return _openapi().served(
        doc,
        server_url=f"{scheme}://{context.domain_name}{prefix}",
        api_key=bool(identity.api_key_id),
        signed=bool(identity.access_key or identity.user_arn),
    )


@app.get("/openapi.json")
def openapi_document() -> dict:
    return _served(_openapi().general())


@app.get("/models/<name>/openapi.json")
def model_openapi_document(name: str) -> dict:
    """The document with the row schema of the version the predict route would serve (verified and loaded as it
    does: an unknown model is the same 404, a refused one the same 503)."""
    return _served(_openapi().of_model(server().get(name, **_pick()).card))


# --- Open Inference Protocol v2 ---------------------------------------------------------------------------------
@app.get("/v2")
def v2_server_metadata() -> dict:
    return oip.server_metadata(sklambda.__version__)


@app.get("/v2/health/live")
def v2_live() -> dict:
    return {"live": True}


@app.get("/v2/health/ready")
def v2_ready() -> dict:
    return {"ready": True}


@app.get("/v2/models/<name>")
@app.get("/v2/models/<name>/versions/<version>")
def v2_metadata(name: str, version: str | None = None) -> dict:
    loaded = server().get(name, **_pick(version))
    return oip.metadata(loaded.card, server().registry.list_versions(name), loaded.scorer)


@app.get("/v2/models/<name>/ready")
def v2_model_ready(name: str) -> dict:
    loaded = server().get(name, alias=settings.default_alias)
    return {"name": name, "ready": True, "version": loaded.card.version}


@app.post("/v2/models/<name>/infer")
@app.post("/v2/models/<name>/versions/<version>/infer")
@tracer.capture_method
def v2_infer(name: str, version: str | None = None) -> dict | Response:
    event = app.current_event
    header_length = event.headers.get(oip.HEADER_LENGTH)
    if header_length is None:
        request = parse_body(_body(), InferRequest, max_bytes=settings.max_body_bytes)
    else:  # the binary tensor data extension: a JSON header, then raw tensor bytes
        raw = body_bytes(event.body, is_base64=event.is_base64_encoded)
        request = oip.read_request(raw, header_length, max_bytes=settings.max_body_bytes)
    picked = _pick(version)
    alias = None if picked["version"] else picked["alias"]
    if alias is None:  # an explicit version bypasses the alias and its canary
        resolved = server().registry.resolve(name, version=picked["version"])
    else:  # the whole request goes to one version: the v2 answer has one model_version
        record = server().alias_record(name, alias)
        resolved = record.version if record.canary is None else record.route(oip.caller_key(request, event))
    shape = request.inputs[0].shape
    with _Failure(name, resolved, alias, shape[0] if shape else 0) as failure:
        loaded = server().load(name, resolved)
        rows = oip.decode(request, loaded.card)
        failure.rows = len(rows)
        inference_ids = oip.inference_ids(request, len(rows), event.request_context.request_id)
        scored, latency_ms = _score(loaded, rows)
        # may still refuse (an output the model does not give)
        answer = oip.encode(scored, loaded.card, request, inference_ids=inference_ids)
        binary = oip.encode_binary(answer, request)
    _capture(loaded, rows, scored, inference_ids, latency_ms=latency_ms, alias=alias)
    if binary is None:
        return answer
    return Response(
        status_code=200,
        content_type=oip.BINARY_CONTENT_TYPE,
        body=binary.body,  # bytes: the resolver base64-encodes them and sets isBase64Encoded
        headers={oip.HEADER_LENGTH: str(binary.header_length)},
    )


# --- errors: the one place that turns exceptions into responses ------------------------------------------------
def _error(status: int, code: str, message: str, details: list[dict] | None = None) -> Response:
    path = app.current_event.path
    if path == "/v2" or path.startswith("/v2/"):
        body: dict[str, Any] = {"error": message}  # Open Inference Protocol error shape
        if details:
            body["details"] = details
    else:
        body = {"error": {"code": code, "message": message, "details": details or []}}
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


@app.exception_handler(SklambdaError)
def domain_error(e: SklambdaError) -> Response:
    status = http_status(e)
    if status < 500:
        _count("InvalidRequests", reason=e.code)
        logger.info("request refused", extra={"status": status, "reason": e.code, "problems": len(e.errors)})
    elif isinstance(e, ModelRefused):
        logger.warning("serving refused", extra={"status": status, "reason": e.reason})
    return _error(status, e.code, e.message, [x.to_dict() for x in e.errors])


@app.not_found
def route_not_found(_: NotFoundError) -> Response:
    return _error(404, "route_not_found", f"no route for {app.current_event.http_method} {app.current_event.path}")


@app.exception_handler(Exception)
def unexpected(e: Exception) -> Response:
    logger.exception("unexpected error")
    return _error(500, "internal", "internal error; the request id is in the response headers and logs")


# --- SnapStart: load the production models before the snapshot is taken ------------------------------------------
def _before_snapshot() -> None:
    outcome = server().preload(settings.preload_models, settings.default_alias)
    logger.info("preloaded models before snapshot", extra={"models": outcome})


try:  # provided by the Lambda Python runtime when SnapStart is on; absent locally
    from snapshot_restore_py import register_before_snapshot
except ImportError:
    register_before_snapshot = None
if register_before_snapshot is not None and settings.preload_models:
    register_before_snapshot(_before_snapshot)


# clear_state: keys appended for one request (model, version) must not leak into the next one's logs.
@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict, context: LambdaContext) -> dict:
    try:
        return app.resolve(event, context)
    finally:
        coldstart.resume()  # acts after the container's first request only
