"""A local stand-in for API Gateway REST APIs (v1) with Lambda proxy integration.

Routes come from the translated template: each AWS::ApiGateway::RestApi's OpenAPI body (SAM writes one from the
functions' `Type: Api` events), served under its AWS::ApiGateway::Stage. Requests become REST API proxy events,
answers are mapped back to HTTP, and the gateway's own errors have API Gateway's statuses and bodies:
    no route / method                403 {"message": "Missing Authentication Token"}
    API key required, missing/wrong  403 {"message": "Forbidden"}
    the function raised or crashed   502 {"message": "Internal server error"}
    integration timeout (29 s)       504 {"message": "Endpoint request timed out"}
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from sklambda_infra.local.functions import CallerTimeout, FunctionError, InvocationError
from sklambda_infra.template import (
    ACCOUNT_ID,
    API_STAGE,
    LAMBDA_FUNCTION,
    REST_API,
    Resolver,
    referenced_function,
    resources_of_type,
)

INTEGRATION_TIMEOUT_S = 29.0
DEPLOYMENT = "AWS::ApiGateway::Deployment"
# API Gateway's OpenAPI extensions.
INTEGRATION = "x-amazon-apigateway-integration"
ANY_METHOD = "x-amazon-apigateway-any-method"
BINARY_MEDIA_TYPES = "x-amazon-apigateway-binary-media-types"
# A Lambda integration's URI: arn:aws:apigateway:<region>:lambda:path/2015-03-31/functions/<function ARN>/invocations
_INVOCATIONS = re.compile(r":lambda:path/[^/]+/functions/(?P<function>.+)/invocations$")
# The listen backlog: connections the kernel completes before the server accepts them. socketserver's default of 5
# overflows when tens of clients connect at once: Linux then drops their SYNs (the client retries after 1, 3, 7 s),
# other systems reset them. The kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 1024
# Every method a client may send: API Gateway has routes for the first seven; any other (TRACE) finds none, and is
# answered as an unknown route is (403 Missing Authentication Token), never with the stdlib server's 501 page.
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")


@dataclass(frozen=True)
class ApiSettings:
    logical_id: str
    stage: str = "Prod"
    binary_media_types: tuple[str, ...] = ()
    stage_variables: dict[str, str] | None = None


@dataclass(frozen=True)
class Route:
    method: str  # upper case, or ANY
    resource: str  # "/models/{name}/predict"
    function: str  # logical id
    api: ApiSettings
    api_key_required: bool
    timeout_s: float = INTEGRATION_TIMEOUT_S
    authorizer: str | None = None  # a security scheme other than the API key (AWS_IAM, Cognito, Lambda): not enforced

    @property
    def segments(self) -> list[str]:
        return [s for s in self.resource.split("/") if s]


@dataclass
class GatewayResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> Any:
        return json.loads(self.body)


class BadProxyResponse(Exception):
    """The function's answer is not a valid Lambda proxy response."""


# ---------------------------------------------------------------------------------------------------------------
# Routes from the translated template


def _api_settings(resolver: Resolver, api_id: str, body: Mapping[str, Any]) -> ApiSettings | None:
    """The API as its first AWS::ApiGateway::Stage (else a Deployment with a StageName) serves it; None when nothing
    deploys it."""
    api = resolver.ref(api_id)
    candidates = [*resources_of_type(resolver.template, API_STAGE), *resources_of_type(resolver.template, DEPLOYMENT)]
    for logical_id in candidates:
        stage = resolver.template["Resources"][logical_id].get("Properties") or {}
        if "StageName" not in stage or not resolver.enabled(logical_id):
            continue
        if resolver.resolve(stage.get("RestApiId")) != api:
            continue
        variables = resolver.resolve(stage.get("Variables") or {})
        properties = resolver.template["Resources"][api_id].get("Properties") or {}
        binary = resolver.resolve(properties.get("BinaryMediaTypes") or body.get(BINARY_MEDIA_TYPES) or [])
        return ApiSettings(
            logical_id=api_id,
            stage=str(resolver.resolve(stage["StageName"])),
            binary_media_types=tuple(str(t).replace("~1", "/") for t in binary),
            stage_variables={str(k): str(v) for k, v in variables.items()} or None,
        )
    return None


def _key_schemes(body: Mapping[str, Any]) -> set[str]:
    """Security schemes that are API Gateway's API key (the x-api-key header), not an authorizer."""
    schemes = {
        **(body.get("securityDefinitions") or {}),  # Swagger 2.0
        **((body.get("components") or {}).get("securitySchemes") or {}),  # OpenAPI 3
    }
    return {
        name
        for name, scheme in schemes.items()
        if isinstance(scheme, dict)
        and scheme.get("type") == "apiKey"
        and str(scheme.get("name", "")).lower() == "x-api-key"
        and "x-amazon-apigateway-authtype" not in scheme
    }


def api_routes(resolver: Resolver) -> list[Route]:
    """Every Lambda proxy integration of the template's enabled REST APIs that invokes one of its functions, as the
    API's OpenAPI body declares it (SAM writes the body from `Type: Api` events): method, path, security (API key,
    authorizer) and integration timeout (timeoutInMillis). `resolver` must know the provisioned physical ids (an
    integration URI names the function, or its version or alias, by ARN)."""
    routes: list[Route] = []
    functions = resources_of_type(resolver.template, LAMBDA_FUNCTION)
    for api_id in resources_of_type(resolver.template, REST_API):
        properties = resolver.template["Resources"][api_id].get("Properties") or {}
        if not resolver.enabled(api_id) or "Body" not in properties:
            continue
        body = resolver.resolve(properties["Body"])
        api = _api_settings(resolver, api_id, body)
        if api is None:
            continue
        key_schemes = _key_schemes(body)
        for path, operations in (body.get("paths") or {}).items():
            for method, operation in (operations or {}).items():
                integration = operation.get(INTEGRATION) if isinstance(operation, dict) else None
                if not isinstance(integration, dict) or integration.get("type") != "aws_proxy":
                    continue
                invoked = _INVOCATIONS.search(str(integration.get("uri")))
                function = referenced_function(resolver, invoked.group("function")) if invoked else None
                if function is None:
                    continue
                security = operation.get("security", body.get("security")) or []
                schemes = [name for requirement in security for name in requirement]
                authorizers = [name for name in schemes if name not in key_schemes and name != "NONE"]
                timeout_ms = integration.get("timeoutInMillis")
                routes.append(
                    Route(
                        method="ANY" if method == ANY_METHOD else method.upper(),
                        resource="/" + str(path).strip("/"),
                        function=function,
                        api=api,
                        api_key_required=any(name in key_schemes for name in schemes),
                        timeout_s=INTEGRATION_TIMEOUT_S if timeout_ms is None else int(timeout_ms) / 1000,
                        authorizer=authorizers[0] if authorizers else None,
                    )
                )
    # Listed by function in the template's order, then by path (SAM writes the body's paths in its own order).
    return sorted(routes, key=lambda r: (functions.index(r.function), r.resource, r.method))


def _segment_pattern(segment: str) -> tuple[int, str]:
    """(rank, regex) for one resource path segment; literals rank before {params}, {greedy+} last."""
    if segment.startswith("{") and segment.endswith("+}"):
        return 2, "(.+)"
    if segment.startswith("{") and segment.endswith("}"):
        return 1, "([^/]+)"
    return 0, re.escape(segment)


class RouteTable:
    """API Gateway's matching: the most specific resource wins, then its method (or ANY) is looked up."""

    def __init__(self, routes: Iterable[Route]) -> None:
        by_resource: dict[str, list[Route]] = {}
        for route in routes:
            by_resource.setdefault(route.resource, []).append(route)
        self._resources: list[tuple[tuple[int, ...], re.Pattern[str], list[str], list[Route]]] = []
        for resource_routes in by_resource.values():
            segments = resource_routes[0].segments
            parts = [_segment_pattern(s) for s in segments]
            names = [s.strip("{}").rstrip("+") for s in segments if s.startswith("{")]
            regex = re.compile(("/" + "/".join(p for _, p in parts)) if parts else "/")
            self._resources.append((tuple(rank for rank, _ in parts), regex, names, resource_routes))
        self._resources.sort(key=lambda entry: entry[0])
        self.routes = [r for entry in self._resources for r in entry[3]]

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        path = "/" + path.strip("/")
        for _, regex, names, routes in self._resources:
            found = regex.fullmatch(path)
            if found is None:
                continue
            by_method = {r.method: r for r in routes}
            route = by_method.get(method.upper()) or by_method.get("ANY")
            if route is None:
                return None
            params = {name: unquote(value) for name, value in zip(names, found.groups(), strict=True)}
            return route, params
        return None


# ---------------------------------------------------------------------------------------------------------------
# Events and responses


# What API Gateway takes a request without a Content-Type for ("None (default to application/json)", API Gateway
# developer guide, "Integration passthrough behaviors").
DEFAULT_CONTENT_TYPE = "application/json"


def _binary(media_type: str, binary_types: Iterable[str]) -> bool:
    """Whether `media_type` (a Content-Type or Accept value; parameters ignored) is one of the API's binary media
    types, which may use wildcards (`*/*`, `image/*`)."""
    mime = media_type.split(";")[0].strip().lower()
    for pattern in binary_types:
        pattern = pattern.lower()
        if pattern in ("*/*", mime) or (pattern.endswith("/*") and mime.startswith(pattern[:-1])):
            return True
    return False


def decodes_base64_response(accept: str | None, content_type: str | None, binary_types: Iterable[str]) -> bool:
    """Whether API Gateway turns a Lambda proxy answer with isBase64Encoded back into bytes, else passes the base64
    text on as the body. It "uses the first Accept header from clients to determine if a response should return
    binary media" (API Gateway developer guide, "Binary media types for REST APIs"): the first media type of Accept
    must be a binary media type. A request without Accept, or whose first one is a wildcard, is matched on the
    answer's Content-Type instead, as SAM CLI's local API does (it takes the best match of Accept among the
    answer's Content-Types)."""
    first = (accept or "").split(",")[0].split(";")[0].strip()
    if not first or "*" in first:
        first = content_type or DEFAULT_CONTENT_TYPE
    return _binary(first, binary_types)


def _header(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The last value of a header, matched case-insensitively."""
    found = None
    for key, value in headers:
        if key.lower() == name.lower():
            found = value
    return found


def proxy_event(
    route: Route,
    *,
    method: str,
    raw_path: str,
    headers: list[tuple[str, str]],
    body: bytes,
    path_parameters: Mapping[str, str],
    source_ip: str = "127.0.0.1",
    request_id: str | None = None,
    api_id: str = "local",
    api_key: str | None = None,
    api_key_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The REST API (v1) Lambda proxy integration event for one request."""
    now = now or datetime.now(UTC)
    request_id = request_id or str(uuid.uuid4())
    split = urlsplit(raw_path)
    path = split.path or "/"
    # API Gateway tells the function the scheme the client used (X-Forwarded-Proto: https); this gateway serves HTTP.
    headers = [(n, v) for n, v in headers if n.lower() != "x-forwarded-proto"] + [("X-Forwarded-Proto", "http")]
    single_headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        single_headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    query = parse_qsl(split.query, keep_blank_values=True)
    single_query: dict[str, str] = {}
    multi_query: dict[str, list[str]] = {}
    for name, value in query:
        single_query[name] = value
        multi_query.setdefault(name, []).append(value)
    content_type = _header(headers, "Content-Type") or DEFAULT_CONTENT_TYPE
    is_binary = bool(body) and _binary(content_type, route.api.binary_media_types)
    if not body:
        event_body = None
    elif is_binary:
        event_body = base64.b64encode(body).decode()
    else:
        event_body = body.decode("utf-8", errors="replace")
    user_agent = _header(headers, "User-Agent")
    host = _header(headers, "Host") or "127.0.0.1"
    return {
        "resource": route.resource,
        "path": path,
        "httpMethod": method.upper(),
        "headers": single_headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": single_query or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": dict(path_parameters) or None,
        "stageVariables": route.api.stage_variables,
        "requestContext": {
            "resourceId": hashlib.sha1(route.resource.encode()).hexdigest()[:6],
            "resourcePath": route.resource,
            "httpMethod": method.upper(),
            "extendedRequestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            # The path the client requested: API Gateway's has the stage first (/v1/...), this gateway serves none.
            "path": path,
            "accountId": ACCOUNT_ID,
            "protocol": "HTTP/1.1",
            "stage": route.api.stage,
            "domainPrefix": host.split(".")[0].split(":")[0],
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": source_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": user_agent,
                "user": None,
                "apiKey": api_key,
                "apiKeyId": api_key_id,
            },
            "domainName": host,
            "apiId": api_id,
        },
        "body": event_body,
        "isBase64Encoded": is_binary,
    }


def http_response(
    result: Any, request_id: str, *, accept: str | None = None, binary_media_types: Iterable[str] = ()
) -> GatewayResponse:
    """Map a Lambda proxy response to HTTP; raises BadProxyResponse as API Gateway would answer 502.

    A body with isBase64Encoded is decoded to bytes when the request's `accept` (else the answer's Content-Type) is
    one of the API's `binary_media_types` (decodes_base64_response), else passed on as its base64 text.
    """
    if not isinstance(result, dict):
        raise BadProxyResponse(f"response is not an object: {type(result).__name__}")
    unknown = set(result) - {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded", "cookies"}
    if unknown:
        raise BadProxyResponse(f"unexpected keys in the response: {sorted(unknown)}")
    try:
        status = int(result.get("statusCode", 200))
    except (TypeError, ValueError):
        raise BadProxyResponse(f"statusCode is not a number: {result.get('statusCode')!r}") from None
    if not 100 <= status <= 599:
        raise BadProxyResponse(f"statusCode out of range: {status}")
    body = result.get("body")
    if body is not None and not isinstance(body, str):
        raise BadProxyResponse("body must be a string")
    multi = result.get("multiValueHeaders") or {}
    single = result.get("headers") or {}
    if not isinstance(multi, dict) or not isinstance(single, dict):
        raise BadProxyResponse("headers and multiValueHeaders must be objects")
    headers: list[tuple[str, str]] = []
    for name, values in multi.items():
        for value in values if isinstance(values, list) else [values]:
            headers.append((str(name), str(value)))
    multi_lower = {name.lower() for name in multi}
    for name, value in single.items():
        if name.lower() not in multi_lower:
            headers.append((str(name), str(value)))
    names = {name.lower() for name, _ in headers}
    if "content-type" not in names:
        headers.append(("Content-Type", DEFAULT_CONTENT_TYPE))
    content_type = _header(headers, "Content-Type")
    if body is None:
        payload = b""
    elif result.get("isBase64Encoded") and decodes_base64_response(accept, content_type, binary_media_types):
        try:
            payload = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadProxyResponse("isBase64Encoded is true but body is not base64") from None
    else:
        payload = body.encode()
    headers.append(("x-amzn-RequestId", request_id))
    return GatewayResponse(status, headers, payload)


def gateway_error(status: int, message: str, error_type: str, request_id: str) -> GatewayResponse:
    body = json.dumps({"message": message}).encode()
    headers = [
        ("Content-Type", "application/json"),
        ("x-amzn-RequestId", request_id),
        ("x-amzn-ErrorType", error_type),
    ]
    return GatewayResponse(status, headers, body)


# ---------------------------------------------------------------------------------------------------------------
# The gateway

Invoke = Callable[[str, dict[str, Any], float, str], Any]
ApiKeys = Callable[[], Mapping[str, str]]  # value -> id of every enabled key


class Gateway:
    """Matches, authorises, invokes and maps; `handle` is the whole request path without any socket."""

    def __init__(
        self, routes: Iterable[Route], invoke: Invoke, api_keys: ApiKeys, log: Callable[[str], None] = print
    ) -> None:
        self.table = RouteTable(routes)
        self._invoke = invoke
        self._api_keys = api_keys
        self.log = log

    def handle(
        self, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes, source_ip: str = "127.0.0.1"
    ) -> GatewayResponse:
        request_id = str(uuid.uuid4())
        path = urlsplit(raw_path).path
        matched = self.table.match(method, path)
        if matched is None:
            return gateway_error(403, "Missing Authentication Token", "MissingAuthenticationTokenException", request_id)
        route, params = matched
        api_key = api_key_id = None
        if route.api_key_required:
            api_key = _header(headers, "x-api-key")
            api_key_id = self._api_keys().get(api_key) if api_key else None
            if api_key_id is None:
                return gateway_error(403, "Forbidden", "ForbiddenException", request_id)
        event = proxy_event(
            route,
            method=method,
            raw_path=raw_path,
            headers=headers,
            body=body,
            path_parameters=params,
            source_ip=source_ip,
            request_id=request_id,
            api_key=api_key,
            api_key_id=api_key_id,
        )
        try:
            result = self._invoke(route.function, event, route.timeout_s, request_id)
        except CallerTimeout:
            return gateway_error(504, "Endpoint request timed out", "InternalServerErrorException", request_id)
        except FunctionError as e:
            self.log(f"[gateway] {route.function} failed: {e}")
            return gateway_error(502, "Internal server error", "InternalServerErrorException", request_id)
        except InvocationError as e:
            self.log(f"[gateway] {route.function}: {e}")
            return gateway_error(502, "Internal server error", "InternalServerErrorException", request_id)
        try:
            accept = _header(headers, "Accept")
            return http_response(result, request_id, accept=accept, binary_media_types=route.api.binary_media_types)
        except BadProxyResponse as e:
            self.log(f"[gateway] Execution failed due to configuration error: Malformed Lambda proxy response ({e})")
            return gateway_error(502, "Internal server error", "InternalServerErrorException", request_id)


class _BadFraming(Exception):
    """The request's body cannot be delimited (bad Content-Length or chunk size, or it ends early)."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as API Gateway
    disable_nagle_algorithm = True
    server: GatewayServer

    def _serve(self) -> None:
        started = time.monotonic()
        try:
            body = self._read_body()
        except _BadFraming as e:
            # As a front door does: a 400 and a closed connection, never a half-read body passed to the function.
            self.close_connection = True
            self._answer(400, b'{"message": "Bad Request"}', started, note=str(e))
            return
        headers = list(self.headers.items())
        forwarded = [("X-Forwarded-For", self.client_address[0]), ("X-Forwarded-Proto", "http")]
        forwarded.append(("X-Forwarded-Port", str(self.server.server_address[1])))
        names = {k.lower() for k, _ in headers}
        headers += [(k, v) for k, v in forwarded if k.lower() not in names]
        response = self.server.gateway.handle(self.command, self.path, headers, body, self.client_address[0])
        self._answer(response.status, response.body, started, response.headers)

    def _answer(
        self, status: int, body: bytes, started: float, headers: Iterable[tuple[str, str]] = (), note: str = ""
    ) -> None:
        try:
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            if not headers:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client left before its answer: say so in one line
            self.close_connection = True
            note = "the client closed the connection before the answer"
        elapsed = (time.monotonic() - started) * 1000
        extra = f": {note}" if note else ""
        self.server.gateway.log(f"[gateway] {self.command} {self.path} -> {status} ({elapsed:.0f} ms){extra}")

    def _read_body(self) -> bytes:
        """The request body. Raises _BadFraming for a malformed Content-Length or chunk size, or a body that ends
        before its declared length (RFC 9112, section 6)."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                line = self.rfile.readline()
                try:
                    size = int(line.split(b";")[0].strip() or b"", 16)
                except ValueError:
                    raise _BadFraming(f"bad chunk size {line[:20]!r}") from None
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunk = self.rfile.read(size)
                if len(chunk) < size:
                    raise _BadFraming("the body ended inside a chunk")
                chunks.append(chunk)
                self.rfile.readline()
        declared = self.headers.get("Content-Length")
        if declared is None:
            return b""
        if not declared.strip().isdigit():
            raise _BadFraming(f"bad Content-Length {declared[:20]!r}")
        length = int(declared)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise _BadFraming(f"the body has {len(body)} of its {length} declared bytes")
        return body

    def log_message(self, format: str, *args: Any) -> None:
        pass


for _method in _METHODS:
    setattr(_Handler, f"do_{_method}", _Handler._serve)


class GatewayServer(ThreadingHTTPServer):
    """One thread per connection (keep-alive connections hold theirs); requests for a function queue at its runner."""

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(self, gateway: Gateway, host: str = "127.0.0.1", port: int = 3000) -> None:
        self.gateway = gateway
        super().__init__((host, port), _Handler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True, name="sklambda-gateway"
        )
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
