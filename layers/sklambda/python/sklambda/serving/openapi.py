"""The OpenAPI 3.1 description of the prediction API, generated from the code that serves it.

Request bodies and query strings come from the pydantic models that parse them (sklambda.serving.contracts), so a
field added there is documented here without anyone remembering to. The answers the handler builds as plain dicts
(model info, health, the Open Inference Protocol v2 answers) and the error bodies are described by the pydantic models
below; the end-to-end test runs schemathesis against the running API with response schema conformance checks, so a
description that drifts from an answer fails there. A model's own document (`for_model`) makes the row schema exact
from its card: one property per feature with its JSON type, null where the feature allows it, the training categories,
the required features (registry.schema.is_required) and no other property (the API refuses unknown features).

OpenAPI 3.1 rather than 3.0: its schemas are JSON Schema 2020-12, which pydantic emits (`"type": ["number", "null"]`
instead of 3.0's `nullable`). The template's API Gateway body is separate (OpenAPI 3.0.1, security per method only).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.json_schema import models_json_schema

import sklambda
from sklambda.errors import FieldError
from sklambda.registry.card import ModelCard
from sklambda.registry.schema import (
    BOOLEAN,
    CATEGORY,
    FLOAT64_MAX,
    INT64_MAX,
    INT64_MIN,
    INTEGER,
    FeatureSpec,
    InputSchema,
    is_required,
)
from sklambda.registry.store import NAME_RE, VERSION_RE
from sklambda.serving.contracts import (
    FeedbackRequest,
    FeedbackResponse,
    InferRequest,
    ModelSelector,
    PredictRequest,
    PredictResponse,
)

OPENAPI_VERSION = "3.1.0"
# Security schemes: API Gateway's API key (AuthMode API_KEY) and AWS Signature Version 4 (AuthMode IAM).
API_KEY, SIGV4 = "api_key", "sigv4"
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    API_KEY: {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "The stack's API key (AuthMode API_KEY; output ApiKeyId).",
    },
    SIGV4: {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "AWS Signature Version 4, service execute-api (AuthMode IAM); the caller needs "
        "execute-api:Invoke.",
        "x-amazon-apigateway-authtype": "awsSigv4",
    },
}
_REF = "#/components/schemas/{model}"


# --- answers built as dicts elsewhere, described here -------------------------------------------------------------
class ErrorBody(BaseModel):
    """`error` of a REST error answer: a stable `code` (sklambda.errors), a message, one detail per problem."""

    code: str
    message: str
    details: list[FieldError]


class Error(BaseModel):
    """Every error answer of the REST routes (functions/predict/app.py `_error`)."""

    error: ErrorBody


class V2Error(BaseModel):
    """Every error answer of the /v2 routes: the Open Inference Protocol's shape, with our details when there are."""

    error: str
    details: list[FieldError] | None = None


class GatewayError(BaseModel):
    """An answer of API Gateway itself, not of the function: 403 (no or a wrong API key, or a bad signature), 429
    (throttled by the stage or the usage plan)."""

    message: str


class ModelInfo(BaseModel):
    """GET /models/{name}: the public card with what was checked and what the loaded model gives, its aliases
    (alias -> version) and versions."""

    model: dict[str, Any]
    aliases: dict[str, str]
    versions: list[str]
    canary: dict[str, Any] | None = Field(
        None,
        description="Only while the alias has a canary: {version, weight (percent of callers), key (the feature "
        "whose value is the caller key, null: each row's inference_id)}, as this container routes it.",
    )


class Health(BaseModel):
    """GET /health: versions, and the dependency layer's package set (null outside a built layer)."""

    status: Literal["ok"]
    sklambda: str
    scikit_learn: str
    runtime: dict[str, Any] | None


class V2ServerMetadata(BaseModel):
    """GET /v2: the server's name, version and the protocol extensions it supports (e.g. binary_tensor_data)."""

    name: str
    version: str
    extensions: list[str]


class V2Live(BaseModel):
    """GET /v2/health/live."""

    live: bool


class V2Ready(BaseModel):
    """GET /v2/health/ready."""

    ready: bool


class V2ModelReady(BaseModel):
    """GET /v2/models/{name}/ready: the version the default alias resolved to, loaded."""

    name: str
    ready: bool
    version: str


class V2TensorMetadata(BaseModel):
    """One input or output of the v2 metadata: its name, datatype (BOOL, INT64, FP64, BYTES) and shape (-1: any)."""

    name: str
    datatype: str
    shape: list[int]


class V2Metadata(BaseModel):
    """Open Inference Protocol "Model Metadata Response JSON Object" (sklambda.serving.oip.metadata)."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[V2TensorMetadata]
    outputs: list[V2TensorMetadata]
    parameters: dict[str, Any] | None = None


class V2ResponseOutput(BaseModel):
    """One output tensor of a v2 inference answer, its data row-major."""

    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any]


class InferResponse(BaseModel):
    """Open Inference Protocol "Inference Response JSON Object" (sklambda.serving.oip.encode)."""

    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[V2ResponseOutput]


class OpenApiDocument(BaseModel):
    """An OpenAPI document (this one): its version and paths; the rest as the OpenAPI specification says."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


# --- operations ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Operation:
    """One route as documented: method and OpenAPI path, the body it parses, the query it reads, what it answers.

    errors: the statuses the function itself may answer besides 200 (sklambda.errors.http_status); each gets the
        error shape of its family (REST or v2). API Gateway's own 403 and 429 are added to every operation.
    """

    method: str
    path: str
    operation_id: str
    summary: str
    response: type[BaseModel]
    request: type[BaseModel] | None = None
    query: tuple[str, ...] = ()
    errors: tuple[int, ...] = ()
    tags: tuple[str, ...] = ("rest",)
    # 201 Created besides 200: a route that may store something new (the feedback route)
    creates: bool = False

    @property
    def v2(self) -> bool:
        """An Open Inference Protocol route (its errors have the protocol's shape)."""
        return self.path.startswith("/v2/")


_MODEL = (400, 404, 503)  # a query string or path it refuses, an unknown model / alias / version, a refused model
OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "post",
        "/models/{name}/predict",
        "predict",
        "Score rows with a model version (default alias: production; on an alias with a canary each row is routed "
        "by its caller key and model_versions names the version of each row)",
        PredictResponse,
        request=PredictRequest,
        query=("alias", "version", "explain"),
        errors=(*_MODEL, 409, 413, 422),
    ),
    Operation(
        "post",
        "/models/{name}/feedback",
        "feedback",
        "Send ground-truth labels of served predictions, by inference_id (201 stored, 200 already stored)",
        FeedbackResponse,
        request=FeedbackRequest,
        query=("alias", "version"),
        errors=(*_MODEL, 413, 422),
        tags=("rest", "ground-truth"),
        creates=True,
    ),
    Operation(
        "get",
        "/models/{name}",
        "describeModel",
        "The public model card of the version that would answer, verified and loaded",
        ModelInfo,
        query=("alias", "version"),
        errors=_MODEL,
    ),
    Operation(
        "get",
        "/models/{name}/openapi.json",
        "modelOpenApi",
        "This document, with the row schema of one model version made exact from its card",
        OpenApiDocument,
        query=("alias", "version"),
        errors=_MODEL,
        tags=("rest", "openapi"),
    ),
    Operation("get", "/openapi.json", "openApi", "This document", OpenApiDocument, tags=("openapi",)),
    Operation("get", "/health", "health", "Liveness, versions and the runtime's package set", Health),
    Operation(
        "get", "/v2", "v2ServerMetadata", "Open Inference Protocol: server metadata", V2ServerMetadata, tags=("v2",)
    ),
    Operation("get", "/v2/health/live", "v2Live", "Open Inference Protocol: server live", V2Live, tags=("v2",)),
    Operation("get", "/v2/health/ready", "v2Ready", "Open Inference Protocol: server ready", V2Ready, tags=("v2",)),
    Operation(
        "get",
        "/v2/models/{name}",
        "v2ModelMetadata",
        "Open Inference Protocol: model metadata (inputs and outputs with datatypes)",
        V2Metadata,
        query=("alias", "version"),
        errors=_MODEL,
        tags=("v2",),
    ),
    Operation(
        "get",
        "/v2/models/{name}/versions/{version}",
        "v2VersionMetadata",
        "Open Inference Protocol: metadata of one version",
        V2Metadata,
        errors=_MODEL,
        tags=("v2",),
    ),
    Operation(
        "get",
        "/v2/models/{name}/ready",
        "v2ModelReady",
        "Open Inference Protocol: whether the default alias's version loads",
        V2ModelReady,
        errors=(404, 503),
        tags=("v2",),
    ),
    Operation(
        "post",
        "/v2/models/{name}/infer",
        "v2Infer",
        "Open Inference Protocol: inference (default alias unless ?version= or ?alias=; on an alias with a canary "
        "the whole request goes to the version of its parameters.inference_id, else inference_ids[0], else its id)",
        InferResponse,
        request=InferRequest,
        query=("alias", "version"),
        errors=(*_MODEL, 413, 422),
        tags=("v2",),
    ),
    Operation(
        "post",
        "/v2/models/{name}/versions/{version}/infer",
        "v2VersionInfer",
        "Open Inference Protocol: inference with one version",
        InferResponse,
        request=InferRequest,
        errors=(*_MODEL, 413, 422),
        tags=("v2",),
    ),
)
_STATUS_TEXT = {
    400: "The request is malformed (body, query string); details name each problem",
    403: "API Gateway refused the call: no or a wrong API key, or a bad signature",
    404: "No such model, alias or version (or route)",
    409: "The version cannot explain (no background sample, or a classifier without predict_proba)",
    413: "The body or the number of rows (labels) is over the limit",
    422: "Rows (labels) that do not match the model's schema (classes), one detail per row and field",
    429: "Throttled by the stage or the usage plan",
    503: "The model was refused: bad signature, tampered artifact, scikit-learn version mismatch",
}


@dataclass(frozen=True)
class Limits:
    """What the function accepts per request (its settings): rows (SKLAMBDA_MAX_ROWS), rows with explain=true
    (SKLAMBDA_MAX_EXPLAIN_ROWS), body bytes (SKLAMBDA_MAX_BODY_BYTES)."""

    max_rows: int
    max_explain_rows: int
    max_body_bytes: int


def document(limits: Limits) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route (OPERATIONS), without `servers` or `security` (see `for_request`).

    Request bodies, query parameters and response bodies are the JSON schemas of their pydantic models
    (`models_json_schema`, shared definitions under components.schemas); path parameters carry the registry's name and
    version patterns. Pure and deterministic: callers build it once per container.
    """
    models: list[type[BaseModel]] = [Error, V2Error, GatewayError]
    for op in OPERATIONS:
        models += [m for m in (op.request, op.response) if m is not None]
    unique = list(dict.fromkeys(models))
    refs, definitions = models_json_schema(
        [(m, "validation" if _is_request(m) else "serialization") for m in unique], ref_template=_REF
    )
    components = dict(definitions.get("$defs", {}))
    ref = {m: refs[(m, "validation" if _is_request(m) else "serialization")] for m in unique}
    _limit_instances(components, limits)

    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        item: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "tags": list(op.tags),
            "parameters": _path_parameters(op.path) + _query_parameters(op.query),
            "responses": _responses(op, ref),
        }
        if op.request is not None:
            item["requestBody"] = {
                "required": True,
                "description": f"At most {limits.max_body_bytes} bytes.",
                "content": {"application/json": {"schema": ref[op.request]}},
            }
        if not item["parameters"]:
            del item["parameters"]
        paths.setdefault(op.path, {})[op.method] = item
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "sklambda prediction API",
            "version": sklambda.__version__,
            "description": "scikit-learn models served from AWS Lambda behind API Gateway. REST routes answer errors "
            'as {"error": {"code", "message", "details"}}; /v2 routes follow the Open Inference Protocol. '
            "GET /models/{name}/openapi.json gives a model's exact row schema.",
        },
        "tags": [
            {"name": "rest", "description": "sklambda's own routes"},
            {"name": "v2", "description": "Open Inference Protocol v2 (KServe, MLServer, Triton clients)"},
            {"name": "ground-truth", "description": "Labels of served predictions, for model-quality monitoring"},
            {"name": "openapi", "description": "This description"},
        ],
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": copy.deepcopy(SECURITY_SCHEMES)},
    }


def for_model(base: Mapping[str, Any], card: ModelCard) -> dict[str, Any]:
    """`base` (from `document`) for calling one model version: the predict route's rows follow its card
    (`instance_schema`), the `name` parameter is that model and `version` (path or query) that version. The `alias`
    query parameter is left out: an alias may move to a version with another schema. Without ?version= a call is
    answered by the default alias, which served this version when the document was made. `base` is not changed."""
    out = copy.deepcopy(dict(base))
    schemas = out["components"]["schemas"]
    schemas["Instance"] = instance_schema(card.input_schema)
    request = schemas[PredictRequest.__name__]
    request["properties"]["instances"]["items"] = {"$ref": _REF.format(model="Instance")}
    request["properties"]["instances"]["minItems"] = 1  # an empty list is refused (422)
    exact = {"name": card.name, "version": card.version}
    for item in out["paths"].values():
        for operation in item.values():
            parameters = [p for p in operation.get("parameters", []) if p["name"] != "alias"]
            for parameter in parameters:
                if parameter["name"] in exact:
                    parameter["schema"] = {"type": "string", "enum": [exact[parameter["name"]]]}
            if parameters:
                operation["parameters"] = parameters
    out["info"] = {
        **out["info"],
        "title": f"sklambda prediction API: model {card.name} version {card.version}",
        "x-sklambda-model": {"name": card.name, "version": card.version, "task": card.task},
    }
    return out


def for_request(doc: Mapping[str, Any], *, server_url: str, schemes: Iterable[str]) -> dict[str, Any]:
    """`doc` as served to one caller: `servers` is the API's base URL with its stage (e.g.
    https://abc.execute-api.eu-west-1.amazonaws.com/v1), `security` the given schemes (API_KEY, SIGV4) as alternatives,
    and only those under components.securitySchemes. A shallow copy: `doc` is not changed."""
    schemes = [s for s in schemes if s in SECURITY_SCHEMES]
    components = {**doc["components"], "securitySchemes": {s: SECURITY_SCHEMES[s] for s in schemes}}
    return {
        **doc,
        "servers": [{"url": server_url}],
        "security": [{s: []} for s in schemes],
        "components": components,
    }


class Documents:
    """The documents one container serves: the general one built on first use (about 10 ms), one per model version
    (a version is immutable) for at most `keep` versions, the oldest dropped first."""

    def __init__(self, limits: Limits, *, keep: int) -> None:
        self.limits = limits
        self.keep = keep
        self._general: dict[str, Any] | None = None
        self._models: dict[tuple[str, str], dict[str, Any]] = {}

    def general(self) -> dict[str, Any]:
        """`document(limits)`, built once."""
        if self._general is None:
            self._general = document(self.limits)
        return self._general

    def of_model(self, card: ModelCard) -> dict[str, Any]:
        """`for_model(general(), card)`, built once per (name, version)."""
        key = (card.name, card.version)
        if key not in self._models:
            if len(self._models) >= self.keep:
                del self._models[next(iter(self._models))]
            self._models[key] = for_model(self.general(), card)
        return self._models[key]

    @staticmethod
    def served(doc: Mapping[str, Any], *, server_url: str, api_key: bool, signed: bool) -> dict[str, Any]:
        """`doc` for a caller that came with an API key (AuthMode API_KEY) or a SigV4 signature (AuthMode IAM); a
        caller with neither is shown both (`for_request`)."""
        schemes = [API_KEY] if api_key else [SIGV4] if signed else [API_KEY, SIGV4]
        return for_request(doc, server_url=server_url, schemes=schemes)


def instance_schema(schema: InputSchema) -> dict[str, Any]:
    """The JSON Schema of one row for `schema`: an object of the model's features, each `feature_schema`, the
    required ones (`is_required`) listed, no other property (InputSchema.validate refuses an unknown feature)."""
    return {
        "type": "object",
        "description": "One row: the model's features (training column order).",
        "properties": {f.name: feature_schema(f) for f in schema.features},
        "required": [f.name for f in schema.features if is_required(f)],
        "additionalProperties": False,
    }


def feature_schema(spec: FeatureSpec) -> dict[str, Any]:
    """The JSON Schema of one feature's value, as FeatureSpec.check accepts it.

    number: a JSON number within float64; integer: an integer within int64 (1.0 counts, as in JSON Schema); boolean:
    true or false; category: a string, with the training categories as `enum` (other strings are scored with an
    unseen_category warning; a pii feature never lists values, the card keeps none). null is allowed where the card
    allows one (FeatureSpec.null_allowed). The training range is told in the description, not enforced: a value
    outside it is scored with an out_of_range warning.
    """
    about = [f"{spec.type} feature"]
    if spec.type == INTEGER:
        out: dict[str, Any] = {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX}
    elif spec.type == BOOLEAN:
        out = {"type": "boolean"}
    elif spec.type == CATEGORY:
        out = {"type": "string"}
        if spec.categories is not None and not spec.pii:
            out["enum"] = list(spec.categories)
            about.append("other strings are scored with an unseen_category warning")
    else:
        out = {"type": "number", "minimum": -FLOAT64_MAX, "maximum": FLOAT64_MAX}
    if spec.minimum is not None and spec.maximum is not None and not spec.pii:
        about.append(f"training range {spec.minimum:g} to {spec.maximum:g} (outside it: an out_of_range warning)")
    if spec.pii:
        about.append("personal data: pseudonymized when captured")
    if spec.null_allowed:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    out["description"] = "; ".join(about)
    return out


# --- pieces ------------------------------------------------------------------------------------------------------
def _is_request(model: type[BaseModel]) -> bool:
    return model in (PredictRequest, InferRequest, FeedbackRequest)


def _limit_instances(components: dict[str, Any], limits: Limits) -> None:
    instances = components[PredictRequest.__name__]["properties"]["instances"]
    instances["maxItems"] = limits.max_rows
    instances["description"] = (
        f"{instances.get('description', '')} At most {limits.max_rows} rows, "
        f"{limits.max_explain_rows} with explain=true."
    ).strip()


def _path_parameters(path: str) -> list[dict[str, Any]]:
    patterns = {"name": NAME_RE.pattern, "version": VERSION_RE.pattern}
    described = {"name": "Model name", "version": "Model version"}
    return [
        {
            "name": name,
            "in": "path",
            "required": True,
            "description": described[name],
            "schema": {"type": "string", "pattern": patterns[name]},
        }
        for name in ("name", "version")
        if "{" + name + "}" in path
    ]


def _query_parameters(names: tuple[str, ...]) -> list[dict[str, Any]]:
    """The query parameters `names` as ModelSelector (the model that parses the query string) declares them."""
    properties = TypeAdapter(ModelSelector).json_schema()["properties"]
    out = []
    for name in names:
        schema = dict(properties[name])
        description = schema.pop("description", None)
        schema.pop("title", None)
        schema.pop("default", None)
        if "anyOf" in schema:  # `str | None`: a query parameter is absent rather than null
            (schema,) = [s for s in schema.pop("anyOf") if s.get("type") != "null"]
        parameter = {"name": name, "in": "query", "required": False, "schema": schema}
        if description:
            parameter["description"] = description
        out.append(parameter)
    return out


def _responses(op: Operation, ref: Mapping[type[BaseModel], dict[str, Any]]) -> dict[str, Any]:
    error = ref[V2Error] if op.v2 else ref[Error]
    responses: dict[str, Any] = {
        "200": {"description": "OK", "content": {"application/json": {"schema": ref[op.response]}}}
    }
    if op.creates:
        responses["200"]["description"] = "Already stored (the same request was stored before)"
        responses["201"] = {"description": "Stored", "content": {"application/json": {"schema": ref[op.response]}}}
    for status in sorted({*op.errors, 403, 429}):
        schema = ref[GatewayError] if status in (403, 429) else error
        responses[str(status)] = {
            "description": _STATUS_TEXT[status],
            "content": {"application/json": {"schema": schema}},
        }
    return responses
